/* The order between jobs: a job starts once the tasks it names in `after`
 * and `requires` are ready, stops when one it requires fails or stops,
 * and in a shutdown is cancelled only once no task that needs it is left
 * (reverse order), through the guard around its body. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "jobs.h"

static bool names_has(char *const *names, const char *name) {
        for (; names && *names; names++)
                if (strcmp(*names, name) == 0)
                        return true;
        return false;
}

/* Whether a job that has not ended starts after this one. */
static bool has_dependents(evd_jobs *jobs, const evd_job *job) {
        evt__list *n;

        evt__list_for_each(n, &jobs->all) {
                const evd_job *other = EVD_JOB(n);

                if (other == job || other->ended || evt_task_is_done(other->task))
                        continue;
                if (names_has(other->conf.after, job->conf.name) || names_has(other->conf.requires, job->conf.name))
                        return true;
        }
        return false;
}

/* In a shutdown, the guard of each job that no live job needs any more is
 * cancelled: the job ends, and so frees the jobs it needs in turn. */
static void release_guards(evd_jobs *jobs) {
        evt__list *n;

        evt__list_for_each(n, &jobs->all) {
                evd_job *job = EVD_JOB(n);

                if (job->guard && !evt_scope_cancel_called(job->guard) && !has_dependents(jobs, job))
                        evt_scope_cancel(job->guard);
        }
}

void evd_jobs_changed(evd_jobs *jobs) {
        evt_event_set(jobs->changed);
        evt_event_clear(jobs->changed);
        if (jobs->stopping)
                release_guards(jobs);
}

void evd_jobs_stopping(evd_jobs *jobs) {
        jobs->stopping = true;
        release_guards(jobs);
}

void evd_job_cancel(evd_job *job, unsigned flags) {
        evt_task_cancel(job->task, flags);
        if (job->guard)
                evt_scope_cancel(job->guard);
}

void evd_job_ready(evd_job *job, const char *how) {
        if (job->ready)
                return;
        job->ready = true;
        evd_log_emit(job->log, LOG_INFO, EVD_EV_READY, job->conf.name, EVD_FIELDS(EVD_STR("how", how)),
                     "ready (%s)", how);
        evd_jobs_changed(job->jobs);
}

/* What the job waits for before it starts: the first task of `after` and
 * `requires` not ready yet, or NULL; *ret_failed names a required one
 * that ended without being ready, or failed. */
static const char *first_unready(evd_job *job, const char **ret_failed) {
        char **lists[] = { job->conf.requires, job->conf.after };

        *ret_failed = NULL;
        for (size_t l = 0; l < ARRAY_SIZE(lists); l++)
                for (char **name = lists[l]; name && *name; name++) {
                        evd_job *dep = evd_jobs_find(job->jobs, *name);
                        int result = 0;

                        /* Gone (ended, and a reload forgot it): it ran. */
                        if (!dep || dep == job)
                                continue;
                        if (evt_task_result(dep->task, &result) == 0 && l == 0 && result != 0) {
                                *ret_failed = *name;
                                return NULL;
                        }
                        if (!dep->ready && !evt_task_is_done(dep->task))
                                return *name;
                }
        return NULL;
}

/* Until every task of `after` and `requires` is ready: 0; -ECANCELED
 * (logged) when one it requires failed or stopped first; or the cancel. */
static int wait_for_dependencies(evd_job *job) {
        for (;;) {
                const char *failed, *name = first_unready(job, &failed);
                int r;

                if (failed) {
                        evd_log_emit(job->log, LOG_NOTICE, EVD_EV_DEPENDENCY, job->conf.name,
                                     EVD_FIELDS(EVD_STR("requires", failed)),
                                     "not starting: it requires %s, which failed or stopped", failed);
                        job->waiting_for[0] = '\0';
                        return -ECANCELED;
                }
                if (!name) {
                        job->waiting_for[0] = '\0';
                        return 0;
                }
                if (strcmp(name, job->waiting_for) != 0) {
                        snprintf(job->waiting_for, sizeof(job->waiting_for), "%s", name);
                        evd_log_emit(job->log, LOG_INFO, EVD_EV_DEPENDENCY, job->conf.name,
                                     EVD_FIELDS(EVD_STR("waiting_for", name)), "waiting for %s to be ready", name);
                }
                r = evt_event_wait(job->jobs->changed, EVT_FOREVER);
                if (r < 0)
                        return r;
        }
}

int evd_job_wait_to_start(evd_job *job) {
        int r = 0;

        /* A task flagged shielded drains anyway; any other holds a
         * shutdown's cancel while tasks that need it run. */
        if (!(evt_task_flags(job->task) & EVT_TASK_SHIELDED))
                r = evt_scope_push(EVT_FOREVER, EVT_SCOPE_SHIELD, &job->guard);
        if (r == 0)
                r = wait_for_dependencies(job);
        return r;
}

/* A job that ended other than done (failed, cancelled, stopped) takes down
 * the jobs that require it, unless a reload replaced it (the replacement
 * is what they require now). */
void evd_job_ended(evd_job *job, int result) {
        evd_jobs *jobs = job->jobs;
        evt__list *n;

        if (job->guard) {
                evt_scope_pop(job->guard, NULL);
                job->guard = NULL;
        }
        job->ended = true; /* its task ends as this returns */
        if (result != 0 && evd_jobs_find(jobs, job->conf.name) == job) {
                evt__list_for_each(n, &jobs->all) {
                        evd_job *other = EVD_JOB(n);

                        /* One not started yet sees it itself, and does not start. */
                        if (other->retired || !other->started || evt_task_is_done(other->task) ||
                            !names_has(other->conf.requires, job->conf.name))
                                continue;
                        evd_log_emit(jobs->log, LOG_NOTICE, EVD_EV_DEPENDENCY, other->conf.name,
                                     EVD_FIELDS(EVD_STR("requires", job->conf.name)),
                                     "stopping: it requires %s, which %s", job->conf.name,
                                     result == -ECANCELED ? "stopped" : "failed");
                        evd_job_cancel(other, 0);
                }
        }
        evd_jobs_changed(jobs);
}
