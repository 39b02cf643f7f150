/* What the service manager is told, and the task table: STATUS= in the
 * words of systemctl status, STOPPING=1, the stop timeout pushed out while
 * a shutdown drains (and only up to its bound), and, on SIGUSR1, a record
 * per task and per blocking call. */
#include <stdio.h>
#include <string.h>

#include "daemon.h"
#include "kind.h"

#define TICK_SEC 1.0
/* Each extension covers three ticks: a loop that misses them is wedged. */
#define EXTEND_NS EVT_SEC(3)

/* ---- STATUS= ---- */

void evd_status_update(evd_daemon *d) {
        evt_loop_stats st;
        char calls[48] = "";

        evt_loop_stats_get(d->loop, &st);
        if (st.calls > 0)
                snprintf(calls, sizeof(calls), ", %zu blocking calls", st.calls);
        switch (evt_lifecycle_phase(d->lc)) {
        case EVT_PHASE_RUNNING:
                if (evt_loop_is_paused(d->loop))
                        evd_notify_status(d->notify, "paused: %zu tasks held%s; SIGINT resumes", st.tasks, calls);
                else
                        evd_notify_status(d->notify, "running %zu tasks%s", st.tasks, calls);
                break;
        case EVT_PHASE_STOPPING:
                evd_notify_status(d->notify, "stopping: cancelling unshielded tasks");
                break;
        case EVT_PHASE_DRAINING: {
                int64_t left_ns = d->status.drain_deadline - evt_time_now();

                evd_notify_status(d->notify, "draining: %zu of %zu tasks left%s, forcing in %lld s", st.tasks,
                                  d->status.drain_total, calls,
                                  (long long) (left_ns > 0 ? left_ns / EVT_SEC(1) : 0));
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
static void extend_stop_timeout(evd_daemon *d) {
        evt_phase phase = evt_lifecycle_phase(d->lc);
        int64_t left = d->status.stop_bound - evt_time_now();

        if (phase == EVT_PHASE_RUNNING || phase == EVT_PHASE_DONE || left <= 0)
                return;
        evd_notify_send(d->notify, "EXTEND_TIMEOUT_USEC=%lld",
                        (long long) ((left < EXTEND_NS ? left : EXTEND_NS) + EVT_SEC(1)) / 1000);
}

static void stopping(evd_daemon *d) {
        if (!d->status.stopping_sent)
                evd_notify_send(d->notify, "STOPPING=1");
        d->status.stopping_sent = true;
}

void evd_status_phase(evd_daemon *d, evt_phase phase, size_t tasks_left) {
        evd_status *s = &d->status;

        switch (phase) {
        case EVT_PHASE_STOPPING:
                stopping(d);
                s->drain_deadline = evt_time_now() + d->config->drain_timeout;
                s->stop_bound = s->drain_deadline + d->config->abandon_grace;
                break;
        case EVT_PHASE_DRAINING:
                s->drain_total = tasks_left;
                break;
        case EVT_PHASE_FORCING:
                stopping(d);
                s->stop_bound = evt_time_now() + d->config->abandon_grace;
                break;
        default:
                break;
        }
        evd_status_update(d);
        extend_stop_timeout(d);
}

static void tick_cb(struct ev_loop *ev, ev_timer *w, int revents) {
        evd_daemon *d = w->data;

        (void) ev;
        (void) revents;
        evd_jobs_report_unstarted(d->jobs);
        evd_status_update(d);
        extend_stop_timeout(d);
}

void evd_status_start(evd_daemon *d) {
        struct ev_loop *ev = evt_loop_ev(d->loop);

        ev_timer_init(&d->status.tick, tick_cb, TICK_SEC, TICK_SEC);
        d->status.tick.data = d;
        ev_timer_start(ev, &d->status.tick);
        ev_unref(ev); /* upkeep: it keeps nothing running */
}

void evd_status_stop(evd_daemon *d) {
        if (d->loop && ev_is_active(&d->status.tick)) {
                ev_ref(evt_loop_ev(d->loop));
                ev_timer_stop(evt_loop_ev(d->loop), &d->status.tick);
        }
}

/* ---- the task table (SIGUSR1) ---- */

const char *evd_status_state(evd_daemon *d, evt_task *t) {
        static const struct {
                const char *library, *shown;
        } states[] = {
                { "new", "running" }, { "ready", "running" }, { "running", "running" },
                { "waiting", "waiting" }, { "held", "paused" }, { "done", "done" },
        };
        const char *s = evt_task_state_name(t);
        evt_phase phase = evt_lifecycle_phase(d->lc);

        if (strcmp(s, "done") != 0 && (phase == EVT_PHASE_DRAINING || phase == EVT_PHASE_FORCING))
                return "draining";
        if (strcmp(s, "done") != 0 && evt_task_is_suspended(t))
                return "suspended";
        /* Held at its next wake-up, if not yet: it takes no step. */
        if (strcmp(s, "done") != 0 && evt_loop_is_paused(d->loop) && !(evt_task_flags(t) & EVT_TASK_NOPAUSE))
                return "paused";
        for (size_t i = 0; i < ARRAY_SIZE(states); i++)
                if (strcmp(s, states[i].library) == 0)
                        return states[i].shown;
        return s;
}

/* Adds f to fields unless a field of its name is there already. */
static size_t field_add(evd_field *fields, size_t n, size_t max, evd_field f) {
        for (size_t i = 0; i < n; i++)
                if (strcmp(fields[i].key, f.key) == 0)
                        return n;
        if (n < max)
                fields[n++] = f;
        return n;
}

/* A task: its state in the scheduler, and what its job's settings show. */
static void table_row(evt_task *t, void *data) {
        evd_daemon *d = data;
        const evd_job *job = evd_jobs_find_task(d->jobs, t);
        unsigned flags = evt_task_flags(t);
        long long age_ms = evt_task_age(t) / 1000000;
        pid_t pid = job ? job->pid : 0;
        evd_field f[8 + EVD_TASK_KEY_COUNT], shown[EVD_TASK_KEY_COUNT];
        size_t n = 0, n_shown = job ? evd_task_conf_fields(&job->conf, shown, ARRAY_SIZE(shown)) : 0;
        char child[32] = "";

        f[n++] = EVD_STR("state", evd_status_state(d, t));
        f[n++] = EVD_NUM("shielded", (flags & EVT_TASK_SHIELDED) != 0);
        f[n++] = EVD_NUM("pausable", (flags & EVT_TASK_NOPAUSE) == 0);
        f[n++] = EVD_NUM("age_ms", age_ms);
        if (pid > 0) {
                f[n++] = EVD_NUM("pid", pid);
                snprintf(child, sizeof(child), ", child %ld", (long) pid);
        }
        for (size_t i = 0; i < n_shown; i++)
                n = field_add(f, n, ARRAY_SIZE(f), shown[i]);
        evd_log_emit(d->log, LOG_INFO, EVD_EV_TASK_TABLE, evt_task_name(t), f, n, "%s, %s, %s, age %lld ms%s",
                     evd_status_state(d, t), (flags & EVT_TASK_SHIELDED) ? "shielded" : "unshielded",
                     (flags & EVT_TASK_NOPAUSE) ? "not pausable" : "pausable", age_ms, child);
}

/* A blocking call, under the name of the task that made it (which may have
 * given up on it and ended). */
static void call_row(const evt_call_info *ci, void *data) {
        evd_daemon *d = data;
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

void evd_status_table(evd_daemon *d) {
        evt_loop_stats st;
        bool paused = evt_loop_is_paused(d->loop);

        evt_loop_stats_get(d->loop, &st);
        evd_log_emit(d->log, LOG_INFO, EVD_EV_TASK_TABLE, NULL,
                     EVD_FIELDS(EVD_NUM("tasks", st.tasks), EVD_NUM("blocking_calls", st.calls),
                                EVD_NUM("paused", paused)),
                     "%zu tasks, %zu blocking calls, %s", st.tasks, st.calls, paused ? "paused" : "running");
        evt_loop_foreach_task(d->loop, table_row, d);
        evt_loop_foreach_call(d->loop, call_row, d);
}
