/* The running daemon: one object owns the loop, the thread pool, the
 * lifecycle, the log, the service manager's channel and the jobs, and sets
 * them up and tears them down in order. Its files each take one concern:
 * daemon.c (set-up, reload, teardown), records.c (what the lifecycle and
 * the loop report, as records), status.c (what the service manager is
 * told, and the task table), fatal.c (a module that ends the daemon),
 * control.c and control_verbs.c (evtaskctl's socket). */
#pragma once

#include <ev.h>
#include <stdbool.h>
#include <sys/stat.h>

#include "config.h"
#include "control.h"
#include "evtask.h"
#include "jobs.h"
#include "log.h"
#include "notify.h"

/* What the service manager is told about a shutdown (status.c). */
typedef struct evd_status {
        ev_timer tick;          /* STATUS= and EXTEND_TIMEOUT_USEC= upkeep */
        size_t drain_total;     /* tasks when the drain began */
        int64_t drain_deadline; /* when the drain turns to forcing */
        int64_t stop_bound;     /* the latest a shutdown should take */
        bool stopping_sent;     /* STOPPING=1 went out */
} evd_status;

/* reload_on_change's watch of the config's directory (watch.c). */
typedef struct evd_watch {
        int fd;                 /* inotify; -1: none */
        ev_io io;
        ev_timer settle;        /* a burst of events is over */
        struct stat seen;       /* what the config path led to, last looked */
} evd_watch;

typedef struct evd_daemon {
        const char *config_path; /* NULL: the built-in demo config */
        const evd_overrides *overrides; /* [daemon] keys from outside the file, also on a reload */
        evd_config *config;     /* as loaded at the start: [daemon] settings */
        evd_log *log;
        evd_notify *notify;
        evt_loop *loop;
        evt_pool *pool;         /* for blocking jobs; freed with the loop */
        evt_lifecycle *lc;
        evd_jobs *jobs;
        evd_control *control;   /* the control socket, or NULL: none */
        struct evd_http *http;  /* http_listen's endpoint, or NULL: none */
        struct evd_metrics *metrics; /* what the records counted, with http_listen */
        bool started;           /* every task was started: ready (/readyz) */
        ev_child orphans;       /* any child: those that are not a run's */
        evd_status status;
        evd_watch watch;
        bool abandoned;         /* threads may still run: keep what they use */
        int exit_status;
        bool cgroups;           /* a cgroup per run, else a walk of /proc */
        char no_cgroups[160];   /* ... and why not */
} evd_daemon;

/* ---- daemon.c ---- */

/* The longest shutdown (the drain, then the grace of blocking calls) is
 * longer than the service manager waits before SIGKILL ([daemon]
 * stop_grace, when known). */
static inline bool evd_stop_grace_short(const evd_config *c) {
        return c->stop_grace > 0 && c->drain_timeout + c->abandon_grace > c->stop_grace;
}
/* Says so, for the start-up record and --check-config: "drain_timeout plus
 * abandon_grace (N ms) is more than stop_grace (M ms)". */
void evd_stop_grace_say(const evd_config *c, char *buf, size_t size);

/* The first thing main does: fds 0, 1 and 2 that are closed become
 * /dev/null; the signals the lifecycle will handle wait
 * (blocked) until it takes them, and libev gets an allocator that does not
 * abort when memory runs out. */
void evd_daemon_prepare(void);
/* Runs the jobs of config (taken over, as is log) until the daemon exits;
 * config_path NULL: the built-in demo, also for a reload, which applies
 * overrides (borrowed; NULL: none) again. Returns the exit status. */
int evd_daemon_run(evd_config *config, const char *config_path, const evd_overrides *overrides, evd_log *log);
/* SIGHUP: re-reads the config and applies it, or logs why not. */
void evd_daemon_reload(evd_daemon *d);
/* The same, answering: 0 with what changed, or -errno with the error
 * ("FILE:LINE: key ...", or why not now) in err. */
int evd_daemon_reload_answer(evd_daemon *d, evd_jobs_changes *ret, char *err, size_t errlen);

/* ---- watch.c ---- */

/* With [daemon] reload_on_change and a config file: watches its directory
 * and reloads, as SIGHUP does, when what its path leads to changes. 0, or
 * -errno with the message in err. */
int evd_watch_start(evd_daemon *d, char *err, size_t errlen);
/* Accepts a daemon whose watch never started. */
void evd_watch_stop(evd_daemon *d);

/* ---- fatal.c ---- */

/* From here, a module's task that calls exit() or faults ends the daemon
 * with a record naming it, its jobs' runs killed, and exit status 70.
 * Before the loop is made: the library's overflow handler passes the
 * faults that are not a stack overflow on to this one. */
void evd_fatal_start(evd_daemon *d);
/* The fault signals back to their default action, in a forked child
 * whose death by one should say which (not the daemon's handlers, nor a
 * sanitizer's). */
void evd_fatal_default(void);

/* ---- records.c ---- */

/* What SIGINT does, asked for by other means (evtaskctl): pauses or
 * resumes the loop and the jobs' processes, with the same record. */
void evd_records_pause(evd_daemon *d, bool pause);
/* The lifecycle's callbacks, as records (data: the daemon). */
extern const evt_lifecycle_ops evd_records_lifecycle_ops;
/* The loop's slow-step callback (data: the daemon). */
void evd_records_slow_step(evt_task *t, int64_t held_ns, void *data);
/* Starts reaping and logging the children that are not a run's. */
void evd_records_orphans_start(evd_daemon *d);
void evd_records_orphans_stop(evd_daemon *d);

/* ---- status.c ---- */

void evd_status_start(evd_daemon *d);
void evd_status_stop(evd_daemon *d);
/* STATUS= as the daemon stands now. */
void evd_status_update(evd_daemon *d);
/* A shutdown phase began: what the service manager must know of it. */
void evd_status_phase(evd_daemon *d, evt_phase phase, size_t tasks_left);
/* The task table, to the log. */
void evd_status_table(evd_daemon *d);
/* A task's state as evtaskd shows it: running, waiting, suspended
 * (evtaskctl pause TASK), paused (a pausable task while the loop-wide gate
 * is closed), draining (alive in a shutdown's drain) or done. The one mapping from the library's states,
 * for the table and evtaskctl. */
const char *evd_status_state(evd_daemon *d, evt_task *t);
