/* The job kinds evtaskd runs as tasks. */
#pragma once

#include "config.h"
#include "evtask.h"
#include "log.h"

typedef struct evd_job {
        const evd_task_conf *conf;
        evd_log *log;
        evt_pool *pool;         /* for kind = blocking */
        evt_task *task;         /* the daemon's reference */
} evd_job;

/* The task function of every job: runs the job's kind, then logs how it
 * ended (finished, cancelled, failed). arg is the evd_job. */
int evd_job_run(void *arg);
const char *evd_kind_name(enum evd_kind kind);
