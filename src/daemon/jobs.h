/* The job kinds evtaskd runs as tasks. */
#pragma once

#include <sys/types.h>

#include "config.h"
#include "evtask.h"
#include "log.h"

typedef struct evd_job {
        evd_task_conf conf;     /* a copy: a job outlives the config (reload) */
        evd_log *log;
        evt_loop *loop;
        evt_pool *pool;         /* for kind = blocking */
        pid_t pid;              /* kind = exec: the current run's child and
                                 * process group, 0 between runs */
        evt_task *task;         /* the daemon's reference */
        evt_task *after;        /* the job this one replaces: it starts once
                                 * that one has ended (a reference), or NULL */
        bool retired;           /* removed or replaced by a reload */
        bool began;             /* evd_job_run has begun, and logs the end;
                                 * a task that never ran (no stack) did not */
        struct evd_job *next;   /* the daemon's list of jobs */
} evd_job;

/* The task function of every job: runs the job's kind, then logs how it
 * ended (finished, cancelled, failed). arg is the evd_job. */
int evd_job_run(void *arg);
/* The flags of a job's task. An exec job shields each run, not the task:
 * a cancel lets the current run complete and starts no other. */
unsigned evd_job_task_flags(const evd_task_conf *c);
