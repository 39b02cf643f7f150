/* The jobs: started from the config, found by name or task, retired and
 * replaced by a reload, pruned once their task has ended, paused with the
 * daemon; and the task body they all share (the order between them is
 * jobs_order.c's). */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "calendar.h"
#include "exec_calendar.h"
#include "jobs.h"
#include "kind.h"
#include "name_index.h"
#include "proctree.h"

int evd_jobs_new(evt_loop *loop, evt_pool *pool, evd_log *log, evd_jobs **ret) {
        evd_jobs *jobs = calloc(1, sizeof(*jobs));

        if (!jobs)
                return -ENOMEM;
        jobs->loop = loop;
        jobs->pool = pool;
        jobs->log = log;
        evt__list_init(&jobs->all);
        if (evt_event_new(loop, &jobs->changed) < 0) {
                free(jobs);
                return -ENOMEM;
        }
        evd_proctree_open_daemon(&jobs->strays, log);
        *ret = jobs;
        return 0;
}

static void job_free(evd_jobs *jobs, evd_job *job) {
        if (job->retired)
                jobs->n_retired--;
        evt__list_remove(&job->link);
        evt_task_unref(job->task);
        evt_task_unref(job->after);
        evt_event_free(job->run_now);
        free(job->notify_status);
        evd_task_conf_clear(&job->conf);
        free(job);
}

void evd_jobs_free(evd_jobs *jobs) {
        if (!jobs)
                return;
        while (!evt__list_empty(&jobs->all))
                job_free(jobs, EVD_JOB(jobs->all.next));
        evd_name_index_free(&jobs->current);
        free(jobs->state_directory);
        evd_proctree_close(&jobs->strays);
        evt_event_free(jobs->changed);
        free(jobs);
}

/* ---- starting ---- */

/* The flags of a job's task. An exec job shields each run, not the task:
 * a cancel lets the current run complete and starts no other. */
static unsigned task_flags(const evd_task_conf *c) {
        bool shielded = c->shield && c->kind != EVD_KIND_EXEC;

        return (shielded ? EVT_TASK_SHIELDED : 0) | (c->pausable ? 0 : EVT_TASK_NOPAUSE);
}

/* Starts a job for task settings c; with `after`, once that task has ended
 * (a reload's replacement). Logs `spawned`. */
static int job_start(evd_jobs *jobs, const evd_task_conf *c, evt_task *after) {
        evt_task_opts opts = { .name = c->name, .flags = task_flags(c) };
        evd_field f[EVD_TASK_KEY_COUNT];
        evd_job *job;
        int r;

        job = calloc(1, sizeof(*job));
        r = job ? evd_task_conf_copy(&job->conf, c) : -ENOMEM;
        if (r == 0) {
                evt__list_init(&job->link);
                r = evd_name_index_put(&jobs->current, job->conf.name, (uintptr_t) job, NULL);
                if (r < 0)
                        evd_task_conf_clear(&job->conf);
        }
        if (r < 0) {
                evd_log_emit(jobs->log, LOG_ERR, EVD_EV_FAILED, c->name, EVD_NO_FIELDS, "cannot start: %s",
                             strerror(-r));
                free(job);
                return r;
        }
        job->jobs = jobs;
        job->log = jobs->log;
        job->loop = jobs->loop;
        job->pool = jobs->pool;
        job->after = evt_task_ref(after);
        r = c->kind == EVD_KIND_EXEC ? evt_event_new(jobs->loop, &job->run_now) : 0;
        if (r == 0)
                r = evt_task_spawn(jobs->loop, evd_job_run, job, &opts, &job->task);
        if (r < 0) {
                evd_log_emit(jobs->log, LOG_ERR, EVD_EV_FAILED, c->name, EVD_NO_FIELDS, "cannot start: %s",
                             strerror(-r));
                evd_name_index_remove(&jobs->current, job->conf.name);
                job_free(jobs, job);
                return r;
        }
        evt__list_push_back(&jobs->all, &job->link);
        evd_log_emit(jobs->log, LOG_INFO, EVD_EV_SPAWNED, c->name, f, evd_task_conf_fields(c, f, ARRAY_SIZE(f)),
                     "%s%s%s", evd_kind_name(c->kind), c->shield ? ", shielded" : "",
                     c->pausable ? "" : ", not pausable");
        return 0;
}

/* Kept for the jobs a config starts; an old value stays if there is no
 * memory for the new. */
static void take_state_directory(evd_jobs *jobs, const evd_config *c) {
        char *dir = c->state_directory ? strdup(c->state_directory) : NULL;

        if (dir || !c->state_directory) {
                free(jobs->state_directory);
                jobs->state_directory = dir;
        }
}

const char *evd_jobs_state_directory(const evd_jobs *jobs) {
        return jobs->state_directory;
}

int evd_jobs_start_all(evd_jobs *jobs, const evd_config *c) {
        take_state_directory(jobs, c);
        evd_timezone_reload(); /* the system's zone, for calendar jobs */
        for (size_t i = 0; i < c->n_tasks; i++) {
                int r = job_start(jobs, &c->tasks[i], NULL);

                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---- finding ---- */

static evd_job *job_current(evd_jobs *jobs, const char *name) {
        uintptr_t job;

        return evd_name_index_get(&jobs->current, name, &job) == 0 ? (evd_job *) job : NULL;
}

evd_job *evd_jobs_find(evd_jobs *jobs, const char *name) {
        return job_current(jobs, name);
}

evd_job *evd_jobs_find_task(evd_jobs *jobs, const evt_task *t) {
        evd_job *job = job_current(jobs, evt_task_name(t));
        evt__list *n;

        if (job && job->task == t)
                return job;
        /* Not a job's task (an exec run's reader), or a retired job's. */
        if (jobs->n_retired == 0)
                return NULL;
        evt__list_for_each(n, &jobs->all)
                if (EVD_JOB(n)->retired && EVD_JOB(n)->task == t)
                        return EVD_JOB(n);
        return NULL;
}

bool evd_jobs_has_pid(evd_jobs *jobs, pid_t pid) {
        evt__list *n;

        evt__list_for_each(n, &jobs->all)
                if (EVD_JOB(n)->pid == pid)
                        return true;
        return false;
}

void evd_jobs_kill_runs(evd_jobs *jobs) {
        evt__list *n;

        evt__list_for_each(n, &jobs->all)
                if (EVD_JOB(n)->procs)
                        evd_proctree_kill_now(EVD_JOB(n)->procs);
}

/* ---- ending ---- */

/* A task that could not get its stack ends without running its body (the
 * library's contract), so evd_job_run never logged its end: say so here,
 * once. A task cancelled before it started is not a failure. */
void evd_jobs_report_unstarted(evd_jobs *jobs) {
        evt__list *n;

        evt__list_for_each(n, &jobs->all) {
                evd_job *job = EVD_JOB(n);
                int result;

                if (job->began || evt_task_result(job->task, &result) < 0)
                        continue;
                job->began = true;
                if (result != -ECANCELED)
                        evd_log_emit(jobs->log, LOG_ERR, EVD_EV_FAILED, job->conf.name,
                                     EVD_FIELDS(EVD_NUM("result", result)), "cannot start: %s", strerror(-result));
        }
}

static void job_retire(evd_jobs *jobs, evd_job *job) {
        job->retired = true;
        jobs->n_retired++;
        evd_name_index_remove(&jobs->current, job->conf.name);
}

/* Jobs whose task has ended are of no more use (a replacement holds its
 * own reference to the task it waits for). */
static void jobs_prune(evd_jobs *jobs) {
        evt__list *n, *next;

        evd_jobs_report_unstarted(jobs); /* before their jobs go */
        for (n = jobs->all.next; n != &jobs->all; n = next) {
                evd_job *job = EVD_JOB(n);

                next = n->next;
                if (!evt_task_is_done(job->task))
                        continue;
                if (!job->retired)
                        evd_name_index_remove(&jobs->current, job->conf.name);
                job_free(jobs, job);
        }
}

/* ---- pause ---- */

int64_t evd_jobs_unpaused_now(const evd_jobs *jobs) {
        int64_t now = evt_time_now();

        return now - jobs->paused_total - (jobs->paused ? now - jobs->paused_since : 0);
}

/* Whether a process is a member of some run, as its last walk found. */
static bool in_a_run(void *data, pid_t pid, unsigned long long start) {
        evd_jobs *jobs = data;
        evt__list *n;

        evt__list_for_each(n, &jobs->all)
                if (EVD_JOB(n)->procs && evd_proctree_has(EVD_JOB(n)->procs, pid, start))
                        return true;
        return false;
}

void evd_jobs_pause(evd_jobs *jobs, bool pause) {
        evt__list *n;

        if (pause != jobs->paused) {
                jobs->paused = pause;
                if (pause)
                        jobs->paused_since = evt_time_now();
                else
                        jobs->paused_total += evt_time_now() - jobs->paused_since;
        }
        /* A continue reaches every run, paused or not: one that someone
         * else stopped must act on a shutdown too. */
        evt__list_for_each(n, &jobs->all) {
                evd_job *job = EVD_JOB(n);

                /* A suspended job's processes wait for its own resume. */
                if (job->procs && !job->suspended && (job->conf.pausable || !pause))
                        evd_proctree_freeze(job->procs, pause);
                else if (job->procs && pause)
                        evd_proctree_scan(job->procs); /* for in_a_run */
        }
        evd_proctree_freeze_strays(&jobs->strays, pause, in_a_run, jobs);
}

int evd_job_suspend(evd_jobs *jobs, evd_job *job, bool suspend) {
        int r = suspend ? evt_task_suspend(job->task) : evt_task_resume(job->task);

        if (r < 0 || job->suspended == suspend)
                return r;
        job->suspended = suspend;
        if (job->procs && (suspend || !(jobs->paused && job->conf.pausable)))
                evd_proctree_freeze(job->procs, suspend);
        return 0;
}

void evd_jobs_resume_all(evd_jobs *jobs) {
        evt__list *n;

        evt__list_for_each(n, &jobs->all)
                if (EVD_JOB(n)->suspended)
                        evd_job_suspend(jobs, EVD_JOB(n), false);
}

/* ---- evtaskctl's orders ---- */

int evd_jobs_restart(evd_jobs *jobs, evd_job *job) {
        int r;

        job_retire(jobs, job);
        /* Spawned before the cancel, to be there to see the old one end. */
        r = job_start(jobs, &job->conf, job->task);
        evd_job_cancel(job, 0);
        return r;
}

int evd_jobs_start_again(evd_jobs *jobs, const char *name) {
        evd_job *job = job_current(jobs, name);

        if (!job)
                return -ENOENT;
        if (!evt_task_is_done(job->task))
                return -EBUSY;
        job_retire(jobs, job);
        return job_start(jobs, &job->conf, NULL);
}

int evd_job_run_now(evd_job *job) {
        if (!job->run_now)
                return -ENOTSUP;
        if (job->pid > 0)
                return -EBUSY;
        if (job->calendar)
                evd_exec_calendar_poke(job->calendar);
        return evt_event_set(job->run_now);
}

/* ---- reload ---- */

void evd_jobs_apply(evd_jobs *jobs, const evd_config *next, evd_jobs_changes *ret) {
        evd_jobs_changes n = { 0 };
        evt__list *last, *node;

        jobs_prune(jobs);
        take_state_directory(jobs, next);
        evd_timezone_reload();
        /* The waits for calendar runs ask for their due times again: the
         * system's zone may have changed. */
        evt__list_for_each(node, &jobs->all)
                if (EVD_JOB(node)->calendar)
                        evd_exec_calendar_rezone(EVD_JOB(node)->calendar);
        /* Only the jobs there were: replacements are appended as it goes. */
        last = jobs->all.prev;
        for (node = jobs->all.next; node != &jobs->all; node = node == last ? &jobs->all : node->next) {
                evd_job *job = EVD_JOB(node);
                const evd_task_conf *c;

                if (job->retired)
                        continue;
                c = evd_config_find_task(next, job->conf.name);
                if (c && evd_task_conf_same_run(c, &job->conf)) {
                        char keys[128];

                        n.kept++;
                        if (!evd_task_conf_equal(c, &job->conf) &&
                            evd_task_conf_take_live(&job->conf, c, keys, sizeof(keys)) == 0)
                                evd_log_emit(jobs->log, LOG_NOTICE, EVD_EV_CHANGED, job->conf.name, EVD_NO_FIELDS,
                                             "settings changed (%s ): applied without a restart", keys);
                        continue;
                }
                job_retire(jobs, job);
                if (!c) {
                        n.removed++;
                        evd_log_emit(jobs->log, LOG_NOTICE, EVD_EV_REMOVED, job->conf.name, EVD_NO_FIELDS,
                                     "no longer in the config: cancelling%s",
                                     job->conf.shield ? " (shielded: it runs to its end)" : "");
                } else {
                        n.changed++;
                        evd_log_emit(jobs->log, LOG_NOTICE, EVD_EV_CHANGED, job->conf.name, EVD_NO_FIELDS,
                                     "settings changed: restarting it%s",
                                     job->conf.shield ? " once the shielded run has ended" : "");
                        /* Starts when the old run ends; spawned before the
                         * cancel so that it is there to see it end. */
                        if (job_start(jobs, c, job->task) < 0)
                                n.changed--;
                }
                evd_job_cancel(job, 0);
        }
        /* Edges a reload added or removed: the waiting jobs look again. */
        evd_jobs_changed(jobs);
        for (size_t i = 0; i < next->n_tasks; i++) {
                if (job_current(jobs, next->tasks[i].name))
                        continue;
                evd_log_emit(jobs->log, LOG_NOTICE, EVD_EV_ADDED, next->tasks[i].name, EVD_NO_FIELDS,
                             "new in the config");
                if (job_start(jobs, &next->tasks[i], NULL) == 0)
                        n.added++;
        }
        *ret = n;
}

/* ---- the task body ---- */

/* A job that replaces one (a reload changed its settings) starts once that
 * one has ended, so that the two never run at once: a shielded one may
 * take a while. */
static int wait_for_predecessor(evd_job *job) {
        int r = evt_task_join(job->after, EVT_FOREVER, NULL);

        evt_task_unref(job->after);
        job->after = NULL;
        return r;
}

int evd_job_run(void *arg) {
        evd_job *job = arg;
        const evd_kind *kind = evd_kind_get(job->conf.kind);
        const char *name = job->conf.name;
        int64_t start = evt_time_now();
        bool ran = false;
        long long ms;
        int r;

        job->began = true;
        r = job->after ? wait_for_predecessor(job) : 0;
        if (r == 0)
                r = evd_job_wait_to_start(job);
        if (r == 0) {
                ran = job->started = true;
                /* Built-in kinds are ready once started; exec and module
                 * jobs say when. */
                if (job->conf.kind != EVD_KIND_EXEC && job->conf.kind != EVD_KIND_MODULE)
                        evd_job_ready(job, "started");
                r = kind->run(job);
        }
        evd_job_ended(job, r);
        /* Each run has logged how it ended; only a cancel is left. */
        if (ran && kind->logs_own_end && r != -ECANCELED)
                return r;

        /* This is the task's cleanup path: it runs even after a cancel
         * (level-triggered, so nothing here may block). */
        ms = (evt_time_now() - start) / 1000000;
        {
                evd_field f[] = { EVD_NUM("duration_ms", ms), EVD_NUM("result", r) };

                if (r == 0)
                        evd_log_emit(job->log, LOG_INFO, EVD_EV_FINISHED, name, f, ARRAY_SIZE(f),
                                     "finished after %lld ms", ms);
                else if (r == -ECANCELED)
                        evd_log_emit(job->log, LOG_NOTICE, EVD_EV_CANCELLED, name, f, ARRAY_SIZE(f),
                                     "cancelled after %lld ms", ms);
                else
                        evd_log_emit(job->log, LOG_ERR, EVD_EV_FAILED, name, f, ARRAY_SIZE(f),
                                     "failed after %lld ms: %s", ms, strerror(-r));
        }
        return r;
}
