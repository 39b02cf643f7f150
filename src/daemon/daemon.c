/* The running daemon: sets up the loop, the notification channel, the
 * thread pool, the lifecycle (signals), the reaper and the status upkeep,
 * gives up root, starts the jobs, runs until the lifecycle is done, and
 * tears it all down in order. Also the reload: re-read the config, apply
 * it to the jobs. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sysexits.h>
#include <unistd.h>

#include "daemon.h"
#include "exec_spawn.h"
#include "http.h"
#include "identity.h"
#include "proctree.h"

/* The signals the lifecycle handles. */
static const int handled_signals[] = { SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2 };

/* Blocks the handled signals (how = SIG_BLOCK), or unblocks those that have
 * a handler now: the lifecycle's, and libev's where there is no signalfd.
 * Those the lifecycle reads from a signalfd keep the default action, and
 * must stay blocked. */
static void handled_signals_mask(int how) {
        sigset_t set;

        sigemptyset(&set);
        for (size_t i = 0; i < ARRAY_SIZE(handled_signals); i++) {
                struct sigaction sa;

                if (how == SIG_BLOCK || (sigaction(handled_signals[i], NULL, &sa) == 0 &&
                                         sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN))
                        sigaddset(&set, handled_signals[i]);
        }
        sigprocmask(how, &set, NULL);
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

/* A daemon started with stdin, stdout or stderr closed would hand those
 * numbers to the first descriptors it opens: a job's pipe at 0, a socket
 * at 2 that an error message then writes into. They are /dev/null
 * instead, as a service manager would have set them. */
static void std_fds_open(void) {
        for (int fd = STDIN_FILENO; fd <= STDERR_FILENO; fd++) {
                int null;

                if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
                        continue;
                /* The lowest free number: fd itself. */
                null = open("/dev/null", O_RDWR);
                if (null >= 0 && null != fd)
                        close(null);
        }
}

void evd_daemon_prepare(void) {
        std_fds_open();
        /* Until the lifecycle takes them (run), signals wait. */
        handled_signals_mask(SIG_BLOCK);
        ev_set_allocator(ev_alloc);
}

/* ---- reload (SIGHUP) ---- */

/* [daemon] settings are read once, at the start; slow_step_warn applies at
 * once. */
static void reload_daemon_keys(evd_daemon *d, const evd_config *next) {
        char keys[256];

        if (d->config->slow_step_warn != next->slow_step_warn) {
                d->config->slow_step_warn = next->slow_step_warn;
                evt_loop_slow_step_set(d->loop, d->config->slow_step_warn, evd_records_slow_step, d);
        }
        evd_config_daemon_changes(d->config, next, keys, sizeof(keys));
        if (keys[0])
                evd_log_emit(d->log, LOG_WARNING, EVD_EV_CHANGED, NULL, EVD_NO_FIELDS,
                             "[daemon] settings changed (%s ); they apply at the next start", keys);
}

int evd_daemon_reload_answer(evd_daemon *d, evd_jobs_changes *ret, char *err, size_t errlen) {
        const char *path = d->config_path ? d->config_path : EVD_DEMO_NAME;
        evd_config *next = NULL;
        evd_jobs_changes n = { 0 };
        int r;

        if (evt_lifecycle_phase(d->lc) != EVT_PHASE_RUNNING) {
                snprintf(err, errlen, "not reloading during a shutdown");
                evd_log_emit(d->log, LOG_WARNING, EVD_EV_RELOAD_FAILED, NULL, EVD_NO_FIELDS, "%s", err);
                return -EBUSY;
        }
        evd_notify_send(d->notify, "RELOADING=1\nMONOTONIC_USEC=%lld", (long long) (evt_time_now() / 1000));
        evd_log_emit(d->log, LOG_NOTICE, EVD_EV_RELOADING, NULL, EVD_FIELDS(EVD_STR("config", path)), "re-reading %s",
                     path);
        if (d->config_path)
                r = evd_config_load_file(d->config_path, d->overrides, &next, err, errlen);
        else
                r = evd_config_load_string(path, evd_demo_conf, d->overrides, &next, err, errlen);
        if (r < 0) {
                evd_log_emit(d->log, LOG_ERR, EVD_EV_RELOAD_FAILED, NULL, EVD_FIELDS(EVD_STR("config", path)),
                             "%s; still running the config loaded before", err);
        } else {
                evd_jobs_apply(d->jobs, next, &n);
                reload_daemon_keys(d, next);
                evd_config_free(next);
                evd_log_emit(d->log, LOG_NOTICE, EVD_EV_RELOADED, NULL,
                             EVD_FIELDS(EVD_NUM("added", n.added), EVD_NUM("removed", n.removed),
                                        EVD_NUM("changed", n.changed), EVD_NUM("unchanged", n.kept)),
                             "%u added, %u removed, %u changed, %u unchanged", n.added, n.removed, n.changed, n.kept);
        }
        evd_notify_send(d->notify, "READY=1");
        evd_status_update(d);
        if (ret)
                *ret = n;
        return r;
}

void evd_daemon_reload(evd_daemon *d) {
        char err[512];

        evd_daemon_reload_answer(d, NULL, err, sizeof(err));
}

/* ---- set-up, run, teardown ---- */

/* A failure before the tasks start: said on stderr and to the service
 * manager. */
static int fatal(evd_daemon *d, int r, const char *what) {
        fprintf(stderr, "evtaskd: %s: %s\n", what, strerror(-r));
        evd_notify_send(d->notify, "ERRNO=%d", -r);
        return EX_OSERR;
}

/* The lifecycle, with the daemon's callbacks and the record the third
 * shutdown signal writes from its handler. */
static int lifecycle_new(evd_daemon *d) {
        char emergency[512]; /* the lifecycle keeps a copy */
        evt_lifecycle_ops ops = evd_records_lifecycle_ops;
        evt_lifecycle_opts opts = {
                .drain_timeout = d->config->drain_timeout,
                .abandon_grace = d->config->abandon_grace,
                .exit_when_idle = d->config->exit_when_done,
                .emergency_fd = evd_log_get_target(d->log) == EVD_LOG_JSON ? STDOUT_FILENO : STDERR_FILENO,
        };

        int r;

        ops.data = d;
        if (evd_log_format(d->log, emergency, sizeof(emergency), LOG_CRIT, EVD_EV_EXIT, NULL, EVD_NO_FIELDS,
                           "third shutdown signal: exiting at once") > 0)
                opts.emergency_message = emergency;
        r = evt_lifecycle_new(d->loop, &opts, &ops, &d->lc);
        if (r == 0 && d->config->sigint == EVD_SIGINT_SHUTDOWN)
                r = evt_lifecycle_signal_set(d->lc, SIGINT, EVT_SIGNAL_ROLE_SHUTDOWN);
        return r;
}

/* After the switch to [daemon] user: the environment jobs inherit is the
 * user's, as a job's own `user` would make it. */
static int become_user(evd_daemon *d) {
        evd_identity id;
        char why[256];
        int r = evd_identity_get(d->config->user, d->config->group, &id, why, sizeof(why));

        if (r == 0)
                r = evd_exec_environment_become(&id);
        evd_identity_clear(&id);
        return r < 0 ? fatal(d, r, "cannot take [daemon] user's environment") : 0;
}

/* The log's sink failed (said on stderr): the jobs are stopped as at a
 * shutdown, and the exit status says EX_IOERR. */
static void log_failed(void *data) {
        evd_daemon *d = data;

        if (d->lc)
                evt_lifecycle_shutdown(d->lc, false);
}

static int set_up(evd_daemon *d) {
        evt_loop_opts opts = { .stack_size = d->config->stack_size, .pause_stops_deadlines = true };
        char err[PATH_MAX + 256];
        int r;

        /* A log reader that goes away must not kill the daemon. The
         * handled signals are blocked since main's start: one sent during
         * the start-up waits for the lifecycle, instead of killing the
         * daemon (the default action) or being lost (ignoring it would
         * discard it). */
        signal(SIGPIPE, SIG_IGN);
        evd_fatal_start(d);

        r = evt_loop_new(NULL, &opts, &d->loop);
        if (r < 0)
                return fatal(d, r, "cannot create the loop");
        evt_loop_slow_step_set(d->loop, d->config->slow_step_warn, evd_records_slow_step, d);
        evd_log_set_overflow(d->log, d->config->log_overflow);
        evd_log_attach(d->log, evt_loop_ev(d->loop), log_failed, d);
        /* Counted from the records, for /metrics and evtaskctl status. */
        if (evd_metrics_new(&d->metrics) == 0)
                evd_log_set_observer(d->log, evd_metrics_observe, d->metrics);
        r = evd_notify_new(evt_loop_ev(d->loop), &d->notify);
        if (r < 0)
                return fatal(d, r, "cannot set up notification");
        /* Threads start blocked on every signal, lifecycle or not. */
        r = evt_pool_new(d->loop, &(evt_pool_opts) { .threads = d->config->threads }, &d->pool);
        if (r < 0)
                return fatal(d, r, "cannot create the thread pool");
        r = evd_jobs_new(d->loop, d->pool, d->log, &d->jobs);
        if (r < 0)
                return fatal(d, r, "cannot create the jobs");
        r = lifecycle_new(d);
        if (r < 0)
                return fatal(d, r, "cannot set up signal handling");
        handled_signals_mask(SIG_UNBLOCK); /* the handlers take what waited */
        if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0 && getpid() != 1)
                evd_log_emit(d->log, LOG_WARNING, EVD_EV_STARTED, NULL, EVD_NO_FIELDS,
                             "cannot become child subreaper: orphans of jobs go to init");
        evd_records_orphans_start(d);
        evd_status_start(d);

        r = evd_control_open(d, err, sizeof(err));
        if (r == 0)
                r = evd_http_open(d, err, sizeof(err));
        if (r == 0)
                r = evd_watch_start(d, err, sizeof(err));
        if (r < 0) {
                fprintf(stderr, "evtaskd: %s\n", err);
                return EX_CONFIG;
        }

        /* [daemon] user and group: once everything that needs root is open
         * (the loop, signal handling, notification, the log, the control
         * socket), the daemon
         * gives root up for good, supplementary groups included. */
        r = evd_identity_drop(d->config->user, d->config->group);
        if (r < 0)
                return fatal(d, r, "cannot switch to [daemon] user and group");
        r = d->config->user ? become_user(d) : 0;
        if (r != 0)
                return r;
        /* As that user: a cgroup the daemon may divide is one it can
         * write to now. */
        d->cgroups = evd_proctree_setup(d->no_cgroups, sizeof(d->no_cgroups));
        return 0;
}

/* ---- the last sweep ---- */

/* What no run ended (a process that left its run's session and lost its
 * parent between two looks, or one a forced cancel had no time to see go)
 * gets SIGTERM, then SIGKILL after the longest kill_timeout: the daemon
 * exits only when none is left. */
static int sweep_task(void *arg) {
        evd_daemon *d = arg;
        evd_task_conf dflt;
        int64_t timeout;
        evd_proctree t;

        evd__task_conf_defaults(&dflt);
        timeout = dflt.kill_timeout;
        for (size_t i = 0; i < d->config->n_tasks; i++)
                if (d->config->tasks[i].kill_timeout > timeout)
                        timeout = d->config->tasks[i].kill_timeout;
        evd_proctree_open_daemon(&t, d->log);
        evd_proctree_end(&t, SIGTERM, timeout);
        evd_proctree_close(&t);
        return 0;
}

static void sweep(evd_daemon *d) {
        evt_task_opts opts = { .name = "sweep" };
        evd_proctree t;
        evt_task *task;
        size_t left;

        evd_proctree_open_daemon(&t, d->log);
        left = evd_proctree_scan(&t);
        evd_proctree_close(&t);
        if (left > 0 && evt_task_spawn(d->loop, sweep_task, d, &opts, &task) == 0) {
                evt_loop_run(d->loop);
                evt_task_unref(task);
        }
        evd_proctree_cleanup();
}

static const char *exit_reason(int status) {
        switch (status) {
        case EVT_EXIT_CLEAN:
                return "clean";
        case EVT_EXIT_FORCED:
                return "tasks were force-cancelled";
        case EVT_EXIT_ABANDONED:
                return "blocking calls were abandoned";
        case EX_IOERR:
                return "the log's sink failed";
        default:
                return "error";
        }
}

void evd_stop_grace_say(const evd_config *c, char *buf, size_t size) {
        snprintf(buf, size, "drain_timeout plus abandon_grace (%lld ms) is more than stop_grace (%lld ms)",
                 (long long) ((c->drain_timeout + c->abandon_grace) / 1000000), (long long) (c->stop_grace / 1000000));
}

/* What the start-up warns of: a stop_grace shorter than the shutdown, and
 * the EVTASKD_* names that are no key, which were ignored. */
static void log_start_warnings(evd_daemon *d) {
        char said[128];

        if (evd_stop_grace_short(d->config)) {
                evd_stop_grace_say(d->config, said, sizeof(said));
                evd_log_emit(d->log, LOG_WARNING, EVD_EV_STARTED, NULL,
                             EVD_FIELDS(EVD_NUM("stop_grace_ms", d->config->stop_grace / 1000000),
                                        EVD_NUM("drain_timeout_ms", d->config->drain_timeout / 1000000),
                                        EVD_NUM("abandon_grace_ms", d->config->abandon_grace / 1000000)),
                             "%s: shielded work still running then is killed by the service manager", said);
        }
        if (d->overrides && d->overrides->unknown[0])
                evd_log_emit(d->log, LOG_WARNING, EVD_EV_STARTED, NULL,
                             EVD_FIELDS(EVD_STR("ignored", d->overrides->unknown + 1)),
                             "environment variables ignored, no [daemon] key:%s", d->overrides->unknown);
}

/* The start-up's record; which [daemon] keys came from outside the file,
 * and from where, are part of it. */
static void log_started(evd_daemon *d) {
        const evd_config *c = d->config;
        char from[512];
        evd_field started[] = {
                EVD_STR("config", c->path), EVD_NUM("tasks", c->n_tasks), EVD_NUM("pid", getpid()),
                EVD_NUM("uid", geteuid()), EVD_STR("processes", d->cgroups ? "cgroup" : "subreaper"),
                EVD_STR("overrides", from + 1), /* last: only when there are some */
        };

        evd_config_overrides_list(c, from, sizeof(from));
        evd_log_emit(d->log, LOG_INFO, EVD_EV_STARTED, NULL, started, ARRAY_SIZE(started) - !from[0],
                     "evtaskd %s, %zu tasks from %s%s%s; runs' processes tracked %s%s%s%s", EVTASK_VERSION,
                     c->n_tasks, c->path, c->user || c->group ? ", running as " : "",
                     c->user ? c->user : c->group ? c->group : "",
                     d->cgroups ? "in a cgroup each" : "by walking /proc: ", d->cgroups ? "" : d->no_cgroups,
                     from[0] ? "; [daemon] keys set outside it:" : "", from);
}

static int run(evd_daemon *d) {
        const evd_config *c = d->config;
        int r, status;

        r = set_up(d);
        if (r != 0)
                return r;
        log_started(d);
        log_start_warnings(d);
        r = evd_jobs_start_all(d->jobs, c);
        if (r < 0) {
                /* Nothing half-started stays: the tasks spawned so far end. */
                evd_notify_send(d->notify, "ERRNO=%d", -r);
                evt_lifecycle_shutdown(d->lc, true);
        } else {
                d->started = true;
                evd_notify_send(d->notify, "READY=1");
                evd_status_update(d);
        }

        status = evt_lifecycle_run(d->lc);
        sweep(d);
        if (r < 0)
                status = EX_OSERR;
        if (evd_log_error(d->log) < 0)
                status = EX_IOERR;
        evd_log_emit(d->log, LOG_INFO, EVD_EV_EXIT, NULL, EVD_FIELDS(EVD_NUM("exit_code", status)),
                     "exiting with status %d (%s)", status, exit_reason(status));
        return status;
}

static void tear_down(evd_daemon *d) {
        evd_watch_stop(d);
        evd_control_free(d->control);
        evd_http_free(d->http);
        /* The last records go out before anything else ends, while the
         * third signal can still end a wait for a sink that never reads. */
        evd_log_detach(d->log);
        if (evd_log_error(d->log) < 0 && d->exit_status != EX_IOERR)
                d->exit_status = EX_IOERR;
        evd_status_stop(d);
        evd_records_orphans_stop(d);
        evd_notify_free(d->notify);
        /* The lifecycle restores the default actions when it goes: from
         * here a signal waits, blocked, and a clean exit stays one. */
        handled_signals_mask(SIG_BLOCK);
        evt_lifecycle_free(d->lc);
        /* Frees the pool too, without waiting for an abandoned thread. */
        evt_loop_free(d->loop);
        evd_jobs_free(d->jobs);
        /* An abandoned thread may still log; the process exit frees it. */
        if (!d->abandoned) {
                evd_log_free(d->log);
                evd_metrics_free(d->metrics);
        }
        evd_config_free(d->config);
}

int evd_daemon_run(evd_config *config, const char *config_path, const evd_overrides *overrides, evd_log *log) {
        evd_daemon d = { .config = config, .config_path = config_path, .overrides = overrides, .log = log,
                         .watch = { .fd = -1 } };

        d.exit_status = run(&d);
        tear_down(&d);
        return d.exit_status;
}
