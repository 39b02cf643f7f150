/* evtaskd: runs the tasks a config file declares. SIGINT pauses and
 * resumes them; SIGTERM or SIGQUIT drains them (unshielded tasks are
 * cancelled, shielded ones finish) and exits. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include "config.h"
#include "evtask.h"
#include "exec.h"
#include "identity.h"
#include "jobs.h"
#include "log.h"
#include "notify.h"

#include "demo-conf.h" /* DEMO_CONF: conf/demo.conf, embedded at build time */

struct daemon {
        evd_config *config;     /* as loaded at the start: [daemon] settings */
        const char *config_path; /* NULL: the built-in demo config */
        evd_log *log;
        evd_notify *notify;
        evt_loop *loop;
        evt_pool *pool;         /* for blocking jobs; freed with the loop */
        evt_lifecycle *lc;
        evd_job *jobs;          /* every job whose task may not have ended */
        ev_timer tick;          /* STATUS= and EXTEND_TIMEOUT_USEC= upkeep */
        ev_child orphans;       /* any child: those that are not a run's */
        size_t drain_total;     /* tasks when the drain began */
        int64_t drain_deadline; /* when the drain turns to forcing */
        int64_t stop_bound;     /* the latest a shutdown should take */
        bool shutdown_seen;     /* a shutdown was requested */
        bool abandoned;         /* threads may still run: keep what they use */
};

/* The signals the lifecycle handles. */
static const int handled_signals[] = { SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2 };

/* Blocks the handled signals (how = SIG_BLOCK), or unblocks those that have
 * a handler now: the lifecycle's, and libev's where there is no signalfd.
 * Those the lifecycle reads from a signalfd keep the default action, and
 * must stay blocked. */
static void handled_signals_mask(int how) {
        sigset_t set;

        sigemptyset(&set);
        for (size_t i = 0; i < sizeof(handled_signals) / sizeof(handled_signals[0]); i++) {
                struct sigaction sa;

                if (how == SIG_BLOCK || (sigaction(handled_signals[i], NULL, &sa) == 0 &&
                                         sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN))
                        sigaddset(&set, handled_signals[i]);
        }
        sigprocmask(how, &set, NULL);
}

/* ---- the task table (SIGUSR1) ---- */

static void table_row(evt_task *t, void *data) {
        struct daemon *d = data;
        unsigned flags = evt_task_flags(t);
        long long age_ms = evt_task_age(t) / 1000000;
        pid_t pid = 0;
        char child[32] = "";

        for (evd_job *job = d->jobs; job; job = job->next)
                if (job->task == t)
                        pid = job->pid;
        if (pid > 0)
                snprintf(child, sizeof(child), ", child %ld", (long) pid);

        evd_field f[] = {
                EVD_STR("state", evt_task_state_name(t)),
                EVD_NUM("shielded", (flags & EVT_TASK_SHIELDED) != 0),
                EVD_NUM("pausable", (flags & EVT_TASK_NOPAUSE) == 0),
                EVD_NUM("age_ms", age_ms),
                EVD_NUM("pid", pid), /* last: only for a run's child */
        };

        evd_log_emit(d->log, LOG_INFO, EVD_EV_TASK_TABLE, evt_task_name(t), f,
                     ARRAY_SIZE(f) - (pid > 0 ? 0 : 1), "%s, %s, %s, age %lld ms%s", evt_task_state_name(t),
                     (flags & EVT_TASK_SHIELDED) ? "shielded" : "unshielded",
                     (flags & EVT_TASK_NOPAUSE) ? "not pausable" : "pausable", age_ms, child);
}

/* A blocking call, under the name of the task that made it (which may have
 * given up on it and ended). */
static void call_row(const evt_call_info *ci, void *data) {
        struct daemon *d = data;
        long long age_ms = ci->age / 1000000, running_ms = ci->running / 1000000;
        evd_field f[] = {
                EVD_STR("state", ci->running ? "running" : "queued"),
                EVD_NUM("blocking_call", 1),
                EVD_NUM("age_ms", age_ms),
                EVD_NUM("running_ms", running_ms),
                EVD_NUM("stop_requested", ci->stop_requested),
                EVD_NUM("awaited", ci->awaited),
        };

        evd_log_emit(d->log, LOG_INFO, EVD_EV_TASK_TABLE, ci->task, f, ARRAY_SIZE(f),
                     "blocking call %s, age %lld ms, running %lld ms%s%s", ci->running ? "running" : "queued",
                     age_ms, running_ms, ci->stop_requested ? ", stop requested" : "",
                     ci->awaited ? "" : ", its task gave up on it");
}

static void dump_task_table(struct daemon *d) {
        evt_loop_stats st;
        evd_field f[3];

        evt_loop_stats_get(d->loop, &st);
        f[0] = EVD_NUM("tasks", st.tasks);
        f[1] = EVD_NUM("blocking_calls", st.calls);
        f[2] = EVD_NUM("paused", evt_loop_is_paused(d->loop));
        evd_log_emit(d->log, LOG_INFO, EVD_EV_TASK_TABLE, NULL, f, ARRAY_SIZE(f),
                     "%zu tasks, %zu blocking calls, %s", st.tasks, st.calls,
                     evt_loop_is_paused(d->loop) ? "paused" : "running");
        evt_loop_foreach_task(d->loop, table_row, d);
        evt_loop_foreach_call(d->loop, call_row, d);
}

/* ---- the service manager: STATUS= and stop-timeout extensions ---- */

#define TICK_SEC 1.0
/* Each extension covers three ticks: a loop that misses them is wedged. */
#define EXTEND_NS EVT_SEC(3)

static size_t calls_in_flight(struct daemon *d);
static void reload(struct daemon *d);

/* STATUS= says what the daemon does, in the words of systemctl status. */
static void status_update(struct daemon *d) {
        evt_loop_stats st;
        char calls[48] = "";

        evt_loop_stats_get(d->loop, &st);
        if (st.calls > 0)
                snprintf(calls, sizeof(calls), ", %zu blocking calls", st.calls);
        switch (evt_lifecycle_phase(d->lc)) {
        case EVT_PHASE_RUNNING:
                if (evt_loop_is_paused(d->loop))
                        evd_notify_status(d->notify, "paused: %zu tasks held%s; SIGINT resumes", st.tasks,
                                          calls);
                else
                        evd_notify_status(d->notify, "running %zu tasks%s", st.tasks, calls);
                break;
        case EVT_PHASE_STOPPING:
                evd_notify_status(d->notify, "stopping: cancelling unshielded tasks");
                break;
        case EVT_PHASE_DRAINING: {
                int64_t left_ns = d->drain_deadline - evt_time_now();

                evd_notify_status(d->notify, "draining: %zu of %zu tasks left%s, forcing in %lld s", st.tasks,
                                  d->drain_total, calls, (long long) (left_ns > 0 ? left_ns / EVT_SEC(1) : 0));
                break;
        }
        case EVT_PHASE_FORCING:
                evd_notify_status(d->notify, "forcing: %zu tasks%s left", st.tasks, calls);
                break;
        case EVT_PHASE_DONE:
                evd_notify_status(d->notify, "exiting");
                break;
        }
}

/* While a shutdown is under way, and only up to its bound (the drain
 * deadline plus abandon_grace), systemd's stop timeout is pushed out a few
 * seconds at a time from the loop: a drain that outlasts TimeoutStopSec
 * completes, and a loop that wedges stops asking and is killed. */
static void extend_stop_timeout(struct daemon *d) {
        evt_phase phase = evt_lifecycle_phase(d->lc);
        int64_t left = d->stop_bound - evt_time_now();

        if (phase == EVT_PHASE_RUNNING || phase == EVT_PHASE_DONE || left <= 0)
                return;
        evd_notify_send(d->notify, "EXTEND_TIMEOUT_USEC=%lld",
                        (long long) ((left < EXTEND_NS ? left : EXTEND_NS) + EVT_SEC(1)) / 1000);
}

/* A task that could not get its stack ends without running its body (the
 * library's contract), so evd_job_run never logged its end: say so here,
 * once. A task cancelled before it started is not a failure. */
static void report_unstarted(struct daemon *d) {
        for (evd_job *job = d->jobs; job; job = job->next) {
                int result;

                if (job->began || evt_task_result(job->task, &result) < 0)
                        continue;
                job->began = true;
                if (result != -ECANCELED)
                        evd_log_emit(d->log, LOG_ERR, EVD_EV_FAILED, job->conf.name,
                                     EVD_FIELDS(EVD_NUM("result", result)), "cannot start: %s",
                                     strerror(-result));
        }
}

static void tick_cb(struct ev_loop *ev, ev_timer *w, int revents) {
        struct daemon *d = w->data;

        (void) ev;
        (void) revents;
        report_unstarted(d);
        status_update(d);
        extend_stop_timeout(d);
}

/* ---- lifecycle callbacks: everything the lifecycle does, logged ---- */

static void on_signal(evt_lifecycle *lc, const evt_signal_info *si, void *data) {
        struct daemon *d = data;
        const char *name = evd_signal_name(si->signo);
        const char *action;
        evd_field f[4];

        (void) lc;
        switch (si->action) {
        case EVT_SIGNAL_PAUSED:
                action = "pause";
                break;
        case EVT_SIGNAL_RESUMED:
                action = "resume";
                break;
        case EVT_SIGNAL_IGNORED:
                action = "ignored during shutdown";
                break;
        case EVT_SIGNAL_SHUTDOWN:
                action = "shutdown";
                break;
        case EVT_SIGNAL_FORCED:
                action = "force";
                break;
        default:
                action = si->signo == SIGUSR1 ? "task table" : si->signo == SIGHUP ? "reload" : "ignored";
                break;
        }
        f[0] = EVD_STR("signal", name);
        f[1] = EVD_STR("action", action);
        f[2] = EVD_NUM("sender_pid", si->sender_pid);
        f[3] = EVD_NUM("sender_uid", si->sender_uid);
        if (si->sender_pid > 0)
                evd_log_emit(d->log, si->action == EVT_SIGNAL_IGNORED ? LOG_WARNING : LOG_NOTICE, EVD_EV_SIGNAL,
                             NULL, f, ARRAY_SIZE(f), "%s from pid %ld: %s", name, (long) si->sender_pid,
                             action);
        else /* the kernel: a terminal's Ctrl-C, or a sender the platform hides */
                evd_log_emit(d->log, si->action == EVT_SIGNAL_IGNORED ? LOG_WARNING : LOG_NOTICE, EVD_EV_SIGNAL,
                             NULL, f, ARRAY_SIZE(f), "%s: %s", name, action);

        if (si->action == EVT_SIGNAL_PAUSED || si->action == EVT_SIGNAL_RESUMED)
                evd_exec_pause(d->jobs, si->action == EVT_SIGNAL_PAUSED);
        if (si->action == EVT_SIGNAL_PAUSED)
                evd_log_emit(d->log, LOG_NOTICE, EVD_EV_PAUSED, NULL, f, ARRAY_SIZE(f),
                             "every pausable task is paused; SIGINT resumes");
        else if (si->action == EVT_SIGNAL_RESUMED)
                evd_log_emit(d->log, LOG_NOTICE, EVD_EV_RESUMED, NULL, f, ARRAY_SIZE(f), "tasks resumed");
        else if (si->signo == SIGUSR1)
                dump_task_table(d);
        else if (si->signo == SIGHUP)
                reload(d);
        status_update(d);
}

static size_t calls_in_flight(struct daemon *d) {
        evt_loop_stats st;

        return evt_loop_stats_get(d->loop, &st) == 0 ? st.calls : 0;
}

static void on_phase(evt_lifecycle *lc, evt_phase phase, size_t left, void *data) {
        struct daemon *d = data;
        size_t calls = calls_in_flight(d);
        evd_field f[] = { EVD_NUM("tasks", left), EVD_NUM("blocking_calls", calls) };

        (void) lc;
        switch (phase) {
        case EVT_PHASE_STOPPING:
                d->shutdown_seen = true;
                d->drain_deadline = evt_time_now() + d->config->drain_timeout;
                d->stop_bound = d->drain_deadline + d->config->abandon_grace;
                evd_notify_send(d->notify, "STOPPING=1");
                evd_exec_pause(d->jobs, false); /* the shutdown resumes everything */
                evd_log_emit(d->log, LOG_NOTICE, EVD_EV_STOPPING, NULL, f, ARRAY_SIZE(f),
                             "shutting down: cancelling every unshielded task (%zu running)", left);
                break;
        case EVT_PHASE_DRAINING:
                d->drain_total = left;
                evd_log_emit(d->log, LOG_NOTICE, EVD_EV_DRAINING, NULL, f, ARRAY_SIZE(f),
                             "waiting up to %lld ms for the %zu tasks and %zu blocking calls still running",
                             (long long) (d->config->drain_timeout / 1000000), left, calls);
                break;
        case EVT_PHASE_FORCING:
                if (!d->shutdown_seen)
                        evd_notify_send(d->notify, "STOPPING=1");
                d->shutdown_seen = true;
                d->stop_bound = evt_time_now() + d->config->abandon_grace;
                evd_exec_pause(d->jobs, false);
                evd_log_emit(d->log, LOG_WARNING, EVD_EV_FORCING, NULL, f, ARRAY_SIZE(f),
                             "force-cancelling the %zu tasks left; %zu blocking calls get %lld ms to stop",
                             left, calls, (long long) (d->config->abandon_grace / 1000000));
                break;
        case EVT_PHASE_DONE:
                report_unstarted(d);
                if (d->abandoned)
                        evd_log_emit(d->log, LOG_WARNING, EVD_EV_DRAINED, NULL, EVD_NO_FIELDS,
                                     "every task has ended; abandoned threads run on until the exit");
                else if (d->shutdown_seen)
                        evd_log_emit(d->log, LOG_NOTICE, EVD_EV_DRAINED, NULL, EVD_NO_FIELDS,
                                     "every task has ended");
                else
                        evd_log_emit(d->log, LOG_NOTICE, EVD_EV_DONE, NULL, EVD_NO_FIELDS,
                                     "every task has ended (exit_when_done)");
                break;
        default:
                break;
        }
        status_update(d);
        extend_stop_timeout(d);
}

static void on_forced(evt_lifecycle *lc, evt_task *t, void *data) {
        struct daemon *d = data;
        long long age_ms = evt_task_age(t) / 1000000;
        evd_field f[] = { EVD_NUM("age_ms", age_ms) };

        (void) lc;
        evd_log_emit(d->log, LOG_WARNING, EVD_EV_FORCED, evt_task_name(t), f, ARRAY_SIZE(f),
                     "force-cancelled after %lld ms", age_ms);
}

static void on_abandoned(evt_lifecycle *lc, const evt_call_info *ci, void *data) {
        struct daemon *d = data;
        long long ran_ms = ci->running / 1000000;
        evd_field f[] = {
                EVD_NUM("ran_ms", ran_ms),
                EVD_NUM("stop_requested", ci->stop_requested),
        };

        (void) lc;
        d->abandoned = true;
        if (ci->running)
                evd_log_emit(d->log, LOG_ERR, EVD_EV_ABANDONED, ci->task, f, ARRAY_SIZE(f),
                             "abandoned a blocking call that ran %lld ms and ignored its stop request", ran_ms);
        else
                evd_log_emit(d->log, LOG_ERR, EVD_EV_ABANDONED, ci->task, f, ARRAY_SIZE(f),
                             "abandoned a blocking call that never started");
}

/* ---- running ---- */

static evd_job *jobs_last(struct daemon *d) {
        evd_job *job = d->jobs;

        while (job && job->next)
                job = job->next;
        return job;
}

/* Starts a job for task settings c; with `after`, once that task has ended
 * (a reload's replacement). Logs `spawned`. */
static int job_start(struct daemon *d, const evd_task_conf *c, evt_task *after) {
        evt_task_opts opts = { .name = c->name, .flags = evd_job_task_flags(c) };
        evd_field f[] = {
                EVD_STR("kind", evd_kind_name(c->kind)),
                EVD_NUM("shielded", c->shield),
                EVD_NUM("pausable", c->pausable),
        };
        evd_job *job, **tail;
        int r;

        job = calloc(1, sizeof(*job));
        r = job ? evd_task_conf_copy(&job->conf, c) : -ENOMEM;
        if (r < 0) {
                evd_log_emit(d->log, LOG_ERR, EVD_EV_FAILED, c->name, EVD_NO_FIELDS, "cannot start: %s",
                             strerror(-r));
                free(job);
                return r;
        }
        job->log = d->log;
        job->loop = d->loop;
        job->pool = d->pool;
        job->after = evt_task_ref(after);
        r = evt_task_spawn(d->loop, evd_job_run, job, &opts, &job->task);
        if (r < 0) {
                evd_log_emit(d->log, LOG_ERR, EVD_EV_FAILED, c->name, EVD_NO_FIELDS, "cannot start: %s",
                             strerror(-r));
                evt_task_unref(job->after);
                evd_task_conf_clear(&job->conf);
                free(job);
                return r;
        }
        tail = d->jobs ? &jobs_last(d)->next : &d->jobs;
        *tail = job;
        evd_log_emit(d->log, LOG_INFO, EVD_EV_SPAWNED, c->name, f, ARRAY_SIZE(f), "%s%s%s",
                     evd_kind_name(c->kind), c->shield ? ", shielded" : "",
                     c->pausable ? "" : ", not pausable");
        return 0;
}

static void job_free(evd_job *job) {
        evt_task_unref(job->task);
        evt_task_unref(job->after);
        evd_task_conf_clear(&job->conf);
        free(job);
}

/* Jobs whose task has ended are of no more use (a replacement holds its
 * own reference to the task it waits for). */
static void jobs_prune(struct daemon *d) {
        evd_job **p = &d->jobs;

        report_unstarted(d); /* before their jobs go */
        while (*p) {
                evd_job *job = *p;

                if (evt_task_is_done(job->task)) {
                        *p = job->next;
                        job_free(job);
                } else {
                        p = &job->next;
                }
        }
}

static int spawn_jobs(struct daemon *d) {
        for (size_t i = 0; i < d->config->n_tasks; i++) {
                int r = job_start(d, &d->config->tasks[i], NULL);

                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---- reload (SIGHUP) ---- */

/* The job that runs task NAME now: not retired by an earlier reload. */
static evd_job *job_find(struct daemon *d, const char *name) {
        for (evd_job *job = d->jobs; job; job = job->next)
                if (!job->retired && strcmp(job->conf.name, name) == 0)
                        return job;
        return NULL;
}

static const evd_task_conf *conf_find(const evd_config *c, const char *name) {
        for (size_t i = 0; i < c->n_tasks; i++)
                if (strcmp(c->tasks[i].name, name) == 0)
                        return &c->tasks[i];
        return NULL;
}

static bool str_differ(const char *a, const char *b) {
        return a || b ? !a || !b || strcmp(a, b) != 0 : false;
}

static void on_slow_step(evt_task *t, int64_t held_ns, void *data) {
        struct daemon *d = data;
        long long held_ms = held_ns / 1000000;
        evd_field f[] = { EVD_NUM("held_ms", held_ms) };

        evd_log_emit(d->log, LOG_WARNING, EVD_EV_SLOW_STEP, evt_task_name(t), f, ARRAY_SIZE(f),
                     "held the loop for %lld ms without an await point (slow_step_warn is %lld ms)", held_ms,
                     (long long) (d->config->slow_step_warn / 1000000));
}

/* [daemon] settings are read once, at the start; slow_step_warn applies at
 * once. */
static void reload_daemon_keys(struct daemon *d, const evd_config *next) {
        evd_config *c = d->config;
        char keys[128] = "";

        if (c->slow_step_warn != next->slow_step_warn) {
                c->slow_step_warn = next->slow_step_warn;
                evt_loop_slow_step_set(d->loop, c->slow_step_warn, on_slow_step, d);
        }

        if (c->drain_timeout != next->drain_timeout)
                strcat(keys, " drain_timeout");
        if (c->abandon_grace != next->abandon_grace)
                strcat(keys, " abandon_grace");
        if (c->exit_when_done != next->exit_when_done)
                strcat(keys, " exit_when_done");
        if (c->log != next->log)
                strcat(keys, " log");
        if (c->stack_size != next->stack_size)
                strcat(keys, " stack_size");
        if (c->threads != next->threads)
                strcat(keys, " threads");
        if (str_differ(c->user, next->user))
                strcat(keys, " user");
        if (str_differ(c->group, next->group))
                strcat(keys, " group");
        if (keys[0])
                evd_log_emit(d->log, LOG_WARNING, EVD_EV_CHANGED, NULL, EVD_NO_FIELDS,
                             "[daemon] settings changed (%s ); they apply at the next start", keys);
}

/* Re-reads the config. A bad one changes nothing; a good one cancels the
 * tasks it removed (shields respected), restarts those whose settings
 * changed (the new run starts when the old one has ended), starts new ones
 * and leaves the rest alone: one record per change. */
static void reload(struct daemon *d) {
        const char *path = d->config_path ? d->config_path : "<built-in demo.conf>";
        unsigned added = 0, removed = 0, changed = 0, kept = 0;
        evd_config *next = NULL;
        char err[512];
        int r;

        if (evt_lifecycle_phase(d->lc) != EVT_PHASE_RUNNING) {
                evd_log_emit(d->log, LOG_WARNING, EVD_EV_RELOAD_FAILED, NULL, EVD_NO_FIELDS,
                             "not reloading during a shutdown");
                return;
        }
        evd_notify_send(d->notify, "RELOADING=1\nMONOTONIC_USEC=%lld", (long long) (evt_time_now() / 1000));
        evd_log_emit(d->log, LOG_NOTICE, EVD_EV_RELOADING, NULL, EVD_FIELDS(EVD_STR("config", path)),
                     "re-reading %s", path);
        if (d->config_path)
                r = evd_config_load_file(d->config_path, &next, err, sizeof(err));
        else
                r = evd_config_load_string(path, DEMO_CONF, &next, err, sizeof(err));
        if (r < 0) {
                evd_log_emit(d->log, LOG_ERR, EVD_EV_RELOAD_FAILED, NULL, EVD_FIELDS(EVD_STR("config", path)),
                             "%s; still running the config loaded before", err);
                evd_notify_send(d->notify, "READY=1");
                status_update(d);
                return;
        }

        jobs_prune(d);
        /* Only the jobs there were: replacements are appended as it goes. */
        for (evd_job *job = d->jobs, *last = jobs_last(d); job; job = job == last ? NULL : job->next) {
                const evd_task_conf *c;

                if (job->retired)
                        continue;
                c = conf_find(next, job->conf.name);
                if (c && evd_task_conf_equal(c, &job->conf)) {
                        kept++;
                        continue;
                }
                job->retired = true;
                if (!c) {
                        removed++;
                        evd_log_emit(d->log, LOG_NOTICE, EVD_EV_REMOVED, job->conf.name, EVD_NO_FIELDS,
                                     "no longer in the config: cancelling%s",
                                     job->conf.shield ? " (shielded: it runs to its end)" : "");
                } else {
                        changed++;
                        evd_log_emit(d->log, LOG_NOTICE, EVD_EV_CHANGED, job->conf.name, EVD_NO_FIELDS,
                                     "settings changed: restarting it%s",
                                     job->conf.shield ? " once the shielded run has ended" : "");
                        /* Starts when the old run ends; spawned before the
                         * cancel so that it is there to see it end. */
                        if (job_start(d, c, job->task) < 0)
                                changed--;
                }
                evt_task_cancel(job->task, 0);
        }
        for (size_t i = 0; i < next->n_tasks; i++) {
                if (job_find(d, next->tasks[i].name))
                        continue;
                evd_log_emit(d->log, LOG_NOTICE, EVD_EV_ADDED, next->tasks[i].name, EVD_NO_FIELDS,
                             "new in the config");
                if (job_start(d, &next->tasks[i], NULL) == 0)
                        added++;
        }
        reload_daemon_keys(d, next);
        evd_config_free(next);

        {
                evd_field f[] = {
                        EVD_NUM("added", added), EVD_NUM("removed", removed),
                        EVD_NUM("changed", changed), EVD_NUM("unchanged", kept),
                };

                evd_log_emit(d->log, LOG_NOTICE, EVD_EV_RELOADED, NULL, f, ARRAY_SIZE(f),
                             "%u added, %u removed, %u changed, %u unchanged", added, removed, changed, kept);
        }
        evd_notify_send(d->notify, "READY=1");
        status_update(d);
}

/* As child subreaper (and as PID 1 in a container), evtaskd inherits the
 * processes its jobs leave behind; libev reaps every child, and those that
 * are not a run's own are logged here. */
static void orphan_cb(struct ev_loop *ev, ev_child *w, int revents) {
        struct daemon *d = w->data;
        int st = w->rstatus;
        evd_field f[] = {
                EVD_NUM("pid", w->rpid),
                EVD_NUM(WIFEXITED(st) ? "exit_code" : "signal_number", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st)),
        };

        (void) ev;
        (void) revents;
        for (evd_job *job = d->jobs; job; job = job->next)
                if (job->pid == w->rpid)
                        return;
        evd_log_emit(d->log, LOG_NOTICE, EVD_EV_REAPED, NULL, f, ARRAY_SIZE(f),
                     "reaped orphaned process %ld (%s %d)", (long) w->rpid, WIFEXITED(st) ? "exit" : "signal",
                     WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
}

/* A failure before the tasks start: said on stderr and to the service
 * manager. */
static int fatal(struct daemon *d, int r, const char *what) {
        fprintf(stderr, "evtaskd: %s: %s\n", what, strerror(-r));
        evd_notify_send(d->notify, "ERRNO=%d", -r);
        return EX_OSERR;
}

static int run(struct daemon *d) {
        char emergency[512];
        evt_lifecycle_opts lopts = {
                .drain_timeout = d->config->drain_timeout,
                .abandon_grace = d->config->abandon_grace,
                .exit_when_idle = d->config->exit_when_done,
                .emergency_fd = evd_log_get_target(d->log) == EVD_LOG_JSON ? STDOUT_FILENO : STDERR_FILENO,
        };
        evt_lifecycle_ops ops = {
                .signal_cb = on_signal,
                .phase_cb = on_phase,
                .forced_cb = on_forced,
                .abandoned_cb = on_abandoned,
                .data = d,
        };
        evt_loop_opts opts = { .stack_size = d->config->stack_size };
        int r, status;

        /* A log reader that goes away must not kill the daemon. The
         * handled signals are blocked since main's start: one sent during
         * the start-up waits for the lifecycle, instead of killing the
         * daemon (the default action) or being lost (ignoring it would
         * discard it). */
        signal(SIGPIPE, SIG_IGN);

        r = evt_loop_new(NULL, &opts, &d->loop);
        if (r < 0)
                return fatal(d, r, "cannot create the loop");
        evt_loop_slow_step_set(d->loop, d->config->slow_step_warn, on_slow_step, d);
        r = evd_notify_new(evt_loop_ev(d->loop), &d->notify);
        if (r < 0)
                return fatal(d, r, "cannot set up notification");
        /* Threads start blocked on every signal, lifecycle or not. */
        r = evt_pool_new(d->loop, &(evt_pool_opts) { .threads = d->config->threads }, &d->pool);
        if (r < 0)
                return fatal(d, r, "cannot create the thread pool");
        if (evd_log_format(d->log, emergency, sizeof(emergency), LOG_CRIT, EVD_EV_EXIT, NULL, EVD_NO_FIELDS,
                           "third shutdown signal: exiting at once") > 0)
                lopts.emergency_message = emergency;
        r = evt_lifecycle_new(d->loop, &lopts, &ops, &d->lc);
        if (r < 0)
                return fatal(d, r, "cannot set up signal handling");
        handled_signals_mask(SIG_UNBLOCK); /* the handlers take what waited */
        if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0 && getpid() != 1)
                evd_log_emit(d->log, LOG_WARNING, EVD_EV_STARTED, NULL, EVD_NO_FIELDS,
                             "cannot become child subreaper: orphans of jobs go to init");
        ev_child_init(&d->orphans, orphan_cb, 0, 0);
        d->orphans.data = d;
        ev_child_start(evt_loop_ev(d->loop), &d->orphans);
        ev_unref(evt_loop_ev(d->loop));
        ev_timer_init(&d->tick, tick_cb, TICK_SEC, TICK_SEC);
        d->tick.data = d;
        ev_timer_start(evt_loop_ev(d->loop), &d->tick);
        ev_unref(evt_loop_ev(d->loop)); /* upkeep: it keeps nothing running */

        /* [daemon] user and group: once everything that needs root is open
         * (the loop, signal handling, notification, the log), the daemon
         * gives root up for good, supplementary groups included. */
        r = evd_identity_drop(d->config->user, d->config->group);
        if (r < 0)
                return fatal(d, r, "cannot switch to [daemon] user and group");
        {
                evd_field f[] = {
                        EVD_STR("config", d->config->path),
                        EVD_NUM("tasks", d->config->n_tasks),
                        EVD_NUM("pid", getpid()),
                        EVD_NUM("uid", geteuid()),
                };
                evd_log_emit(d->log, LOG_INFO, EVD_EV_STARTED, NULL, f, ARRAY_SIZE(f),
                             "evtaskd %s, %zu tasks from %s%s%s", EVTASK_VERSION, d->config->n_tasks,
                             d->config->path, d->config->user || d->config->group ? ", running as " : "",
                             d->config->user ? d->config->user : d->config->group ? d->config->group : "");
        }
        r = spawn_jobs(d);
        if (r < 0) {
                /* Nothing half-started stays: the tasks spawned so far end. */
                evd_notify_send(d->notify, "ERRNO=%d", -r);
                evt_lifecycle_shutdown(d->lc, true);
        } else {
                evd_notify_send(d->notify, "READY=1");
                status_update(d);
        }

        status = evt_lifecycle_run(d->lc);
        if (r < 0)
                status = EX_OSERR;
        {
                evd_field f[] = { EVD_NUM("exit_code", status) };

                evd_log_emit(d->log, LOG_INFO, EVD_EV_EXIT, NULL, f, ARRAY_SIZE(f), "exiting with status %d (%s)",
                             status,
                             status == EVT_EXIT_CLEAN       ? "clean"
                             : status == EVT_EXIT_FORCED    ? "tasks were force-cancelled"
                             : status == EVT_EXIT_ABANDONED ? "blocking calls were abandoned"
                                                            : "error");
        }
        return status;
}

static void daemon_free(struct daemon *d) {
        if (d->loop && ev_is_active(&d->tick)) {
                ev_ref(evt_loop_ev(d->loop));
                ev_timer_stop(evt_loop_ev(d->loop), &d->tick);
        }
        if (d->loop && ev_is_active(&d->orphans)) {
                ev_ref(evt_loop_ev(d->loop));
                ev_child_stop(evt_loop_ev(d->loop), &d->orphans);
        }
        evd_notify_free(d->notify);
        /* The lifecycle restores the default actions when it goes: from
         * here a signal waits, blocked, and a clean exit stays one. */
        handled_signals_mask(SIG_BLOCK);
        evt_lifecycle_free(d->lc);
        /* Frees the pool too, without waiting for an abandoned thread. */
        evt_loop_free(d->loop);
        while (d->jobs) {
                evd_job *next = d->jobs->next;

                job_free(d->jobs);
                d->jobs = next;
        }
        /* An abandoned thread may still log; the process exit frees it. */
        if (!d->abandoned)
                evd_log_free(d->log);
        evd_config_free(d->config);
}

/* ---- the command line ---- */

static void usage(FILE *f) {
        fprintf(f,
                "Usage: evtaskd [OPTION]...\n"
                "Run the tasks a config file declares, as coroutines on one event loop.\n"
                "\n"
                "  -c, --config FILE      read FILE (default: the built-in demo config)\n"
                "      --check-config     validate the config, print a summary, and exit\n"
                "  -l, --log SINK         auto, console, json or journal (default: the\n"
                "                         config's [daemon] log, else auto)\n"
                "  -h, --help             show this help and exit\n"
                "  -V, --version          show the version and exit\n"
                "\n"
                "Signals:\n"
                "  SIGINT                 pause every pausable task; the next SIGINT resumes\n"
                "  SIGTERM, SIGQUIT       graceful shutdown: cancel unshielded tasks, drain\n"
                "                         shielded ones for up to drain_timeout; a second\n"
                "                         signal forces at once, a third exits at once\n"
                "  SIGHUP                 reload: re-read the config, apply what changed\n"
                "  SIGUSR1                write the task table to the log\n"
                "\n"
                "Exit status:\n"
                "  0   every task ended or was cancelled cleanly\n"
                "  3   some task had to be force-cancelled (drain deadline, second signal)\n"
                "  4   some blocking call ignored its stop request and was abandoned\n"
                "  64  usage error          78  configuration error\n"
                "  71  a system error (a task or the loop could not be created)\n"
                "  128+N  exited at once on the third shutdown signal N\n");
}

/* libev's own allocator aborts when memory runs out. This one tries again
 * for a moment (a job's exit may give memory back), then exits with
 * EX_OSERR and says why: a clean failure the service manager restarts. */
static void *ev_alloc(void *ptr, long size) {
        static const char msg[] = "evtaskd: out of memory in the event loop: exiting\n";

        if (size == 0) {
                free(ptr);
                return NULL;
        }
        for (int tries = 0; tries < 10; tries++) {
                void *p = realloc(ptr, (size_t) size);

                if (p)
                        return p;
                usleep(10000);
        }
        (void) !write(STDERR_FILENO, msg, sizeof(msg) - 1);
        _exit(EX_OSERR);
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "config", required_argument, NULL, 'c' },
                { "check-config", no_argument, NULL, 'C' },
                { "log", required_argument, NULL, 'l' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                {},
        };
        const char *config_path = NULL, *log_arg = NULL;
        bool check_only = false;
        struct daemon d = { 0 };
        enum evd_log_target target;
        char err[512];
        int c, r, status;

        /* Until the lifecycle takes them (run), signals wait. */
        handled_signals_mask(SIG_BLOCK);
        ev_set_allocator(ev_alloc);
        while ((c = getopt_long(argc, argv, "c:l:hV", options, NULL)) != -1) {
                switch (c) {
                case 'c':
                        config_path = optarg;
                        break;
                case 'C':
                        check_only = true;
                        break;
                case 'l':
                        log_arg = optarg;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                case 'V':
                        printf("evtaskd %s\n", EVTASK_VERSION);
                        return 0;
                default:
                        usage(stderr);
                        return EX_USAGE;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "evtaskd: unexpected argument '%s'\n", argv[optind]);
                usage(stderr);
                return EX_USAGE;
        }

        if (log_arg) {
                int i = evd_names_find(&evd_log_target_names, log_arg);
                char list[64];

                if (i < 0) {
                        evd_names_list(&evd_log_target_names, list, sizeof(list));
                        fprintf(stderr, "evtaskd: --log: unknown sink '%s' (%s)\n", log_arg, list);
                        return EX_USAGE;
                }
                target = (enum evd_log_target) i;
        }

        if (config_path)
                r = evd_config_load_file(config_path, &d.config, err, sizeof(err));
        else
                r = evd_config_load_string("<built-in demo.conf>", DEMO_CONF, &d.config, err, sizeof(err));
        if (r < 0) {
                fprintf(stderr, "evtaskd: %s\n", err);
                /* systemctl status shows it too. */
                evd_notify_send(NULL, "STATUS=bad config: %s\nERRNO=%d", err, -r);
                /* Out of memory is no fault of the config: a restart may do. */
                return r == -ENOMEM ? EX_OSERR : EX_CONFIG;
        }
        if (check_only) {
                printf("%s: ok, %zu tasks\n", d.config->path, d.config->n_tasks);
                evd_config_free(d.config);
                return 0;
        }

        if (!log_arg)
                target = d.config->log;
        r = evd_log_new(target, &d.log);
        if (r < 0) {
                fprintf(stderr, "evtaskd: cannot log to %s: %s\n", evd_log_target_names.names[target],
                        r == -EOPNOTSUPP ? "not supported by this build" : strerror(-r));
                evd_config_free(d.config);
                return log_arg ? EX_USAGE : EX_CONFIG;
        }

        d.config_path = config_path;
        status = run(&d);
        daemon_free(&d);
        return status;
}
