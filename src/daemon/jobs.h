/* The jobs: one per task the config declares, each running its kind as a
 * task of the loop. The set starts them, finds them, retires them on a
 * reload ("apply this config"), forgets those that ended, and freezes and
 * thaws their processes with the daemon's pause (jobs.c); the order
 * between them, at the start and in a shutdown, is jobs_order.c's. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "config.h"
#include "evtask.h"
#include "list.h"
#include "log.h"
#include "name_index.h"
#include "proctree.h"

typedef struct evd_jobs evd_jobs;

typedef struct evd_job {
        evd_task_conf conf;     /* a copy: a job outlives the config (reload) */
        evd_jobs *jobs;         /* the set it belongs to */
        evd_log *log;
        evt_loop *loop;
        evt_pool *pool;         /* for kind = blocking */
        pid_t pid;              /* kind = exec: the current run's child and
                                 * process group, 0 between runs */
        struct evd_proctree *procs; /* kind = exec: every process of the
                                 * current run, NULL between runs */
        evt_task *task;         /* the set's reference */
        evt_task *after;        /* the job this one replaces: it starts once
                                 * that one has ended (a reference), or NULL */
        bool retired;           /* removed or replaced by a reload */
        bool suspended;         /* evtaskctl pause TASK: task and processes */
        evt_event *run_now;     /* evtaskctl run TASK: the schedule's wait
                                 * ends early (exec jobs), or NULL */
        bool start_limited;     /* kind = exec: gave up at start_limit */
        int64_t next_run;       /* schedule = calendar: when the next run
                                 * starts (wall clock, ns), 0: none */
        struct evd_exec_calendar *calendar; /* schedule = calendar: the
                                 * schedule while its wait is under way */
        bool started;           /* its dependencies were ready: its kind runs */
        bool ended;             /* its body has returned (its task is ending) */
        bool ready;             /* ready for the tasks `after` it (evd_job_ready) */
        evt_scope *guard;       /* around the body of an unshielded job: holds
                                 * a shutdown's cancel until no task that
                                 * needs this one is left; NULL outside */
        char waiting_for[EVD_TASK_NAME_MAX + 1]; /* the task it waits for to
                                 * be ready before it starts, or "" */
        char *notify_status;    /* kind = exec: its run's last STATUS=, or NULL */
        bool began;             /* evd_job_run has begun, and logs the end;
                                 * a task that never ran (no stack) did not */
        evt__list link;         /* on the set's list, in start order */
} evd_job;

/* The set. Its fields are for jobs.c and jobs_order.c only. */
struct evd_jobs {
        evt_loop *loop;
        evt_pool *pool;
        evd_log *log;
        evt__list all;          /* every job whose task may not have ended */
        evd_name_index current; /* the job running each task name now (not
                                 * retired), by its conf.name */
        size_t n_retired;       /* jobs on `all` that a reload retired */
        bool paused;            /* the processes of pausable jobs are stopped */
        evd_proctree strays;    /* while paused: what belongs to no run, stopped */
        bool stopping;          /* a shutdown has begun (evd_jobs_stopping) */
        evt_event *changed;     /* pulsed when a job becomes ready or ends,
                                 * or a reload changes the order: the jobs
                                 * waiting to start look again */
        int64_t paused_since, paused_total; /* the run timeouts' clock */
        char *state_directory;  /* the config's [daemon] state_directory */
};

/* The job on the set's list node n. */
#define EVD_JOB(n) evt__container_of(n, evd_job, link)

/* 0 or -ENOMEM. The pool is for blocking jobs; the log is borrowed. */
int evd_jobs_new(evt_loop *loop, evt_pool *pool, evd_log *log, evd_jobs **ret);
/* After the loop has ended: releases the jobs and their tasks. */
void evd_jobs_free(evd_jobs *jobs);

/* Starts a job for each task of c; the first that cannot start ends it
 * (and is logged): its -errno. */
int evd_jobs_start_all(evd_jobs *jobs, const evd_config *c);

/* The job that runs task `name` now (not a retired one), or NULL. */
evd_job *evd_jobs_find(evd_jobs *jobs, const char *name);
/* The [daemon] state_directory of the config applied last, or NULL. */
const char *evd_jobs_state_directory(const evd_jobs *jobs);
/* The job whose task is t (the one running it now, or a retired one), or
 * NULL. */
evd_job *evd_jobs_find_task(evd_jobs *jobs, const evt_task *t);
/* Whether pid is the child of a job's current run. */
bool evd_jobs_has_pid(evd_jobs *jobs, pid_t pid);
/* evtaskctl pause TASK and resume TASK: the job's task suspended in the
 * scheduler (evt_task_suspend), and its run's processes stopped with it;
 * a resume continues them unless the daemon's own pause holds them. 0 or
 * the library's -errno. */
int evd_job_suspend(evd_jobs *jobs, evd_job *job, bool suspend);
/* A shutdown lifts every suspension, as it lifts the daemon's pause: a
 * shielded job drains, an unshielded one ends. */
void evd_jobs_resume_all(evd_jobs *jobs);

/* evtaskctl restart TASK: the job's task is cancelled and a new one with
 * the same settings starts once it has ended, as a reload's change does
 * (a shielded run completes first). 0, or -errno (logged). */
int evd_jobs_restart(evd_jobs *jobs, evd_job *job);
/* evtaskctl start TASK: the job of task `name`, which has ended (finished,
 * failed, stopped), starts again from its settings. 0; -EBUSY while it
 * runs; -ENOENT when there is no such job (a reload brings back a task of
 * the config whose job is gone). */
int evd_jobs_start_again(evd_jobs *jobs, const char *name);
/* evtaskctl run TASK: an exec job waiting for its next run (schedule,
 * restart) starts it now. 0; -EBUSY while a run is under way; -ENOTSUP
 * for a job of another kind. */
int evd_job_run_now(evd_job *job);

/* The daemon's last moment: SIGKILL to every process of every run
 * (proctree.c; async-signal-safe). */
void evd_jobs_kill_runs(evd_jobs *jobs);

/* Logs `failed` once for each job whose task ended without running its
 * body (it could not get a stack). */
void evd_jobs_report_unstarted(evd_jobs *jobs);

/* Stops every process of every pausable job's run (proctree.c), or
 * continues those of every run, and stops or restarts the clock of run
 * timeouts. */
void evd_jobs_pause(evd_jobs *jobs, bool paused);
/* A monotonic clock that stands still while the jobs are paused. */
int64_t evd_jobs_unpaused_now(const evd_jobs *jobs);

/* What a reload changed. */
typedef struct evd_jobs_changes {
        unsigned added, removed, changed, kept;
} evd_jobs_changes;

/* Applies config `next`: cancels the jobs it removed (shields respected),
 * restarts those whose settings changed (the new task starts when the old
 * one has ended), starts new ones and leaves the rest alone; one record per
 * change. */
void evd_jobs_apply(evd_jobs *jobs, const evd_config *next, evd_jobs_changes *ret);

/* The task function of every job: runs the job's kind, then logs how it
 * ended (finished, cancelled, failed). arg is the evd_job. */
int evd_job_run(void *arg);

/* ---- jobs_order.c ---- */

/* The job is ready for the tasks that start after it (a built-in kind once
 * it starts, an exec job per its `ready`, a module when it says so): one
 * `ready` record saying how, the first time. */
void evd_job_ready(evd_job *job, const char *how);
/* Cancels the job's task (flags as evt_task_cancel's), through the guard
 * that holds a shutdown's cancel: every cancel of a job goes here. */
void evd_job_cancel(evd_job *job, unsigned flags);
/* A shutdown has begun: from now on a job is cancelled only once none of
 * the tasks that start after it is left (reverse order), the shielded
 * ones drained first; the drain's deadline still forces them all. */
void evd_jobs_stopping(evd_jobs *jobs);
/* The order changed (a reload added or removed edges): the jobs waiting
 * to start look again; in a shutdown, guards no job needs are released. */
void evd_jobs_changed(evd_jobs *jobs);
/* The start of evd_job_run: the guard goes up (unless the task is
 * shielded), then 0 once every task of `after` and `requires` is ready;
 * -ECANCELED (logged) when one it requires failed or stopped first; or
 * the cancel. */
int evd_job_wait_to_start(evd_job *job);
/* The end of evd_job_run, result its body's: the guard comes down, and a
 * result other than 0 stops the jobs that require this one (logged). */
void evd_job_ended(evd_job *job, int result);
