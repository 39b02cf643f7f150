/* What the lifecycle, the scheduler and the reaper report, as records: one
 * table says what each signal did (its action's name, priority, the record
 * that follows and what the daemon does next); the shutdown phases, forced
 * tasks, abandoned calls, slow steps and reaped orphans each have their
 * record. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "daemon.h"

static void pause_jobs(evd_daemon *d) {
        evd_jobs_pause(d->jobs, true);
}

static void resume_jobs(evd_daemon *d) {
        evd_jobs_pause(d->jobs, false);
}

/* From signal to action: the first row that matches what the lifecycle did
 * with the signal (and, for signals it only reports, which signal). */
static const struct signal_row {
        evt_signal_action action;
        int signo;              /* 0: any */
        const char *name;       /* the action, in the `signal` record */
        int priority;
        void (*then)(evd_daemon *d); /* what the daemon does next, or NULL */
        evd_event event;        /* the record that follows, or EVD_EVENT_COUNT */
        const char *message;    /* ... its message */
} signal_rows[] = {
        { EVT_SIGNAL_PAUSED, 0, "pause", LOG_NOTICE, pause_jobs, EVD_EV_PAUSED,
          "every pausable task is paused; SIGINT resumes" },
        { EVT_SIGNAL_RESUMED, 0, "resume", LOG_NOTICE, resume_jobs, EVD_EV_RESUMED, "tasks resumed" },
        { EVT_SIGNAL_IGNORED, 0, "ignored during shutdown", LOG_WARNING, NULL, EVD_EVENT_COUNT, NULL },
        { EVT_SIGNAL_SHUTDOWN, 0, "shutdown", LOG_NOTICE, NULL, EVD_EVENT_COUNT, NULL },
        { EVT_SIGNAL_FORCED, 0, "force", LOG_NOTICE, NULL, EVD_EVENT_COUNT, NULL },
        { EVT_SIGNAL_REPORTED, SIGUSR1, "task table", LOG_NOTICE, evd_status_table, EVD_EVENT_COUNT, NULL },
        { EVT_SIGNAL_REPORTED, SIGHUP, "reload", LOG_NOTICE, evd_daemon_reload, EVD_EVENT_COUNT, NULL },
        { EVT_SIGNAL_REPORTED, 0, "ignored", LOG_NOTICE, NULL, EVD_EVENT_COUNT, NULL },
};

static const struct signal_row *signal_row(const evt_signal_info *si) {
        for (size_t i = 0; i < ARRAY_SIZE(signal_rows); i++)
                if (signal_rows[i].action == si->action && (!signal_rows[i].signo || signal_rows[i].signo == si->signo))
                        return &signal_rows[i];
        return &signal_rows[ARRAY_SIZE(signal_rows) - 1];
}

static void on_signal(evt_lifecycle *lc, const evt_signal_info *si, void *data) {
        evd_daemon *d = data;
        const struct signal_row *row = signal_row(si);
        const char *name = evd_signal_name(si->signo);
        evd_field f[] = {
                EVD_STR("signal", name),
                EVD_STR("action", row->name),
                EVD_NUM("sender_pid", si->sender_pid),
                EVD_NUM("sender_uid", si->sender_uid),
        };

        (void) lc;
        if (si->sender_pid > 0)
                evd_log_emit(d->log, row->priority, EVD_EV_SIGNAL, NULL, f, ARRAY_SIZE(f), "%s from pid %ld: %s", name,
                             (long) si->sender_pid, row->name);
        else /* the kernel: a terminal's Ctrl-C, or a sender the platform hides */
                evd_log_emit(d->log, row->priority, EVD_EV_SIGNAL, NULL, f, ARRAY_SIZE(f), "%s: %s", name, row->name);
        if (row->then)
                row->then(d);
        if (row->event != EVD_EVENT_COUNT)
                evd_log_emit(d->log, LOG_NOTICE, row->event, NULL, f, ARRAY_SIZE(f), "%s", row->message);
        evd_status_update(d);
}

void evd_records_pause(evd_daemon *d, bool pause) {
        if (pause) {
                evt_loop_pause(d->loop);
                pause_jobs(d);
                evd_log_emit(d->log, LOG_NOTICE, EVD_EV_PAUSED, NULL, EVD_NO_FIELDS, "%s", signal_rows[0].message);
        } else {
                evt_loop_resume(d->loop);
                resume_jobs(d);
                evd_log_emit(d->log, LOG_NOTICE, EVD_EV_RESUMED, NULL, EVD_NO_FIELDS, "%s", signal_rows[1].message);
        }
        evd_status_update(d);
}

static size_t calls_in_flight(evd_daemon *d) {
        evt_loop_stats st;

        return evt_loop_stats_get(d->loop, &st) == 0 ? st.calls : 0;
}

struct names {
        char buf[1024];
        size_t len, n;
};

static void shielded_name(evt_task *t, void *data) {
        struct names *names = data;

        if (!(evt_task_flags(t) & EVT_TASK_SHIELDED) || evt_task_is_done(t))
                return;
        names->n++;
        if (names->len < sizeof(names->buf))
                names->len += (size_t) snprintf(names->buf + names->len, sizeof(names->buf) - names->len, "%s%s",
                                                names->len ? " " : "", evt_task_name(t) ? evt_task_name(t) : "?");
}

/* At the drain's start, when the service manager will not wait for its
 * end: the shielded work it will cut if that work runs so long, by name,
 * while the daemon can still say so. */
static void drain_cut(evd_daemon *d) {
        struct names names = { .len = 0 };

        if (!evd_stop_grace_short(d->config))
                return;
        evt_loop_foreach_task(d->loop, shielded_name, &names);
        if (names.n == 0)
                return;
        evd_log_emit(d->log, LOG_WARNING, EVD_EV_DRAINING, NULL,
                     EVD_FIELDS(EVD_STR("cut", names.buf), EVD_NUM("stop_grace_ms", d->config->stop_grace / 1000000)),
                     "the service manager kills evtaskd %lld ms after the stop, before the drain ends: "
                     "the shielded work of %s is cut if still running then",
                     (long long) (d->config->stop_grace / 1000000), names.buf);
}

static void on_phase(evt_lifecycle *lc, evt_phase phase, size_t left, void *data) {
        evd_daemon *d = data;
        size_t calls = calls_in_flight(d);
        evd_field f[] = { EVD_NUM("tasks", left), EVD_NUM("blocking_calls", calls) };
        bool shutdown = d->status.stopping_sent;

        (void) lc;
        evd_status_phase(d, phase, left);
        /* The shutdown resumes everything, suspended tasks too. */
        if (phase == EVT_PHASE_STOPPING || phase == EVT_PHASE_FORCING) {
                evd_jobs_pause(d->jobs, false);
                evd_jobs_resume_all(d->jobs);
        }
        switch (phase) {
        case EVT_PHASE_STOPPING:
                evd_log_emit(d->log, LOG_NOTICE, EVD_EV_STOPPING, NULL, f, ARRAY_SIZE(f),
                             "shutting down: cancelling every unshielded task (%zu running)", left);
                /* Those that others need last (after or requires). */
                evd_jobs_stopping(d->jobs);
                break;
        case EVT_PHASE_DRAINING:
                evd_log_emit(d->log, LOG_NOTICE, EVD_EV_DRAINING, NULL, f, ARRAY_SIZE(f),
                             "waiting up to %lld ms for the %zu tasks and %zu blocking calls still running",
                             (long long) (d->config->drain_timeout / 1000000), left, calls);
                drain_cut(d);
                break;
        case EVT_PHASE_FORCING:
                evd_log_emit(d->log, LOG_WARNING, EVD_EV_FORCING, NULL, f, ARRAY_SIZE(f),
                             "force-cancelling the %zu tasks left; %zu blocking calls get %lld ms to stop", left,
                             calls, (long long) (d->config->abandon_grace / 1000000));
                break;
        case EVT_PHASE_DONE:
                evd_jobs_report_unstarted(d->jobs);
                if (d->abandoned)
                        evd_log_emit(d->log, LOG_WARNING, EVD_EV_DRAINED, NULL, EVD_NO_FIELDS,
                                     "every task has ended; abandoned threads run on until the exit");
                else if (shutdown)
                        evd_log_emit(d->log, LOG_NOTICE, EVD_EV_DRAINED, NULL, EVD_NO_FIELDS, "every task has ended");
                else
                        evd_log_emit(d->log, LOG_NOTICE, EVD_EV_DONE, NULL, EVD_NO_FIELDS,
                                     "every task has ended (exit_when_done)");
                break;
        default:
                break;
        }
}

static void on_forced(evt_lifecycle *lc, evt_task *t, void *data) {
        evd_daemon *d = data;
        long long age_ms = evt_task_age(t) / 1000000;

        (void) lc;
        evd_log_emit(d->log, LOG_WARNING, EVD_EV_FORCED, evt_task_name(t), EVD_FIELDS(EVD_NUM("age_ms", age_ms)),
                     "force-cancelled after %lld ms", age_ms);
}

static void on_abandoned(evt_lifecycle *lc, const evt_call_info *ci, void *data) {
        evd_daemon *d = data;
        long long ran_ms = ci->running / 1000000;
        evd_field f[] = { EVD_NUM("ran_ms", ran_ms), EVD_NUM("stop_requested", ci->stop_requested) };

        (void) lc;
        d->abandoned = true;
        if (ci->running)
                evd_log_emit(d->log, LOG_ERR, EVD_EV_ABANDONED, ci->task, f, ARRAY_SIZE(f),
                             "abandoned a blocking call that ran %lld ms and ignored its stop request", ran_ms);
        else
                evd_log_emit(d->log, LOG_ERR, EVD_EV_ABANDONED, ci->task, f, ARRAY_SIZE(f),
                             "abandoned a blocking call that never started");
}

const evt_lifecycle_ops evd_records_lifecycle_ops = {
        .signal_cb = on_signal,
        .phase_cb = on_phase,
        .forced_cb = on_forced,
        .abandoned_cb = on_abandoned,
};

void evd_records_slow_step(evt_task *t, int64_t held_ns, void *data) {
        evd_daemon *d = data;
        long long held_ms = held_ns / 1000000;

        evd_log_emit(d->log, LOG_WARNING, EVD_EV_SLOW_STEP, evt_task_name(t), EVD_FIELDS(EVD_NUM("held_ms", held_ms)),
                     "held the loop for %lld ms without an await point (slow_step_warn is %lld ms)", held_ms,
                     (long long) (d->config->slow_step_warn / 1000000));
}

/* As child subreaper (and as PID 1 in a container), evtaskd inherits the
 * processes its jobs leave behind; libev reaps every child, and those that
 * are not a run's own are logged here. */
static void orphan_cb(struct ev_loop *ev, ev_child *w, int revents) {
        evd_daemon *d = w->data;
        int st = w->rstatus;
        bool exited = WIFEXITED(st);
        int code = exited ? WEXITSTATUS(st) : WTERMSIG(st);

        (void) ev;
        (void) revents;
        if (evd_jobs_has_pid(d->jobs, w->rpid))
                return;
        evd_log_emit(d->log, LOG_NOTICE, EVD_EV_REAPED, NULL,
                     EVD_FIELDS(EVD_NUM("pid", w->rpid), EVD_NUM(exited ? "exit_code" : "signal_number", code)),
                     "reaped orphaned process %ld (%s %d)", (long) w->rpid, exited ? "exit" : "signal", code);
}

void evd_records_orphans_start(evd_daemon *d) {
        struct ev_loop *ev = evt_loop_ev(d->loop);

        ev_child_init(&d->orphans, orphan_cb, 0, 0);
        d->orphans.data = d;
        ev_child_start(ev, &d->orphans);
        ev_unref(ev);
}

void evd_records_orphans_stop(evd_daemon *d) {
        if (d->loop && ev_is_active(&d->orphans)) {
                ev_ref(evt_loop_ev(d->loop));
                ev_child_stop(evt_loop_ev(d->loop), &d->orphans);
        }
}
