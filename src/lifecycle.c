/* Layer 4, lifecycle: the signal router, pause and resume, and the shutdown
 * policy with its phases.
 *
 *   kernel -> sigaction handler -> self-pipe -> ev_io   (INT, TERM, QUIT)
 *   kernel -> signalfd ------------------------> ev_io  (HUP, USR1, USR2)
 *
 * The handler is async-signal-safe and never blocks: it counts, writes a
 * record to the pipe and, on the third shutdown signal, writes the
 * emergency message if there is room for it and _exit()s. Because it runs even while a task has wedged the loop, it is the
 * escape hatch. HUP, USR1 and USR2 need no escape hatch; they go through
 * signalfd, or libev's ev_signal where signalfd does not exist. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#if EVT_HAVE_SIGNALFD
#include <sys/signalfd.h>
#endif

#include "pool.h"
#include "scheduler.h"

#define DEFAULT_DRAIN_TIMEOUT EVT_SEC(20)
#define DEFAULT_ABANDON_GRACE EVT_SEC(1)
/* Iterations the loop gets, past the drain deadline, to handle what was
 * ready when the deadline passed, if it never goes idle. */
#define SETTLE_ROUNDS_MAX 64

/* The signals of the self-pipe, and those only reported. */
static const int pipe_signals[] = { SIGINT, SIGTERM, SIGQUIT };
static const int reported_signals[] = { SIGHUP, SIGUSR1, SIGUSR2 };
#define N_PIPE_SIGNALS (sizeof(pipe_signals) / sizeof(pipe_signals[0]))
#define N_REPORTED_SIGNALS (sizeof(reported_signals) / sizeof(reported_signals[0]))

struct pipe_record {
        int signo;
        pid_t pid;
        uid_t uid;
};

struct evt_lifecycle {
        evt_loop *loop;
        evt_lifecycle_ops ops;
        int64_t drain_timeout;
        int64_t abandon_grace;
        bool exit_when_idle;
        char *emergency_message;
        evt_phase phase;
        bool forced_any;        /* a task was force-cancelled */
        bool abandoned_any;     /* blocking calls were abandoned */
        size_t n_abandoned;     /* ... how many */
        unsigned shutdowns;     /* shutdown requests acted on */
        unsigned handled[N_PIPE_SIGNALS]; /* handler invocations accounted for */
        int pipe[2];            /* the self-pipe, both ends non-blocking */
        ev_io pipe_watcher;
        ev_timer drain_timer;   /* the drain deadline */
        ev_timer grace_timer;   /* from forcing to abandoning calls */
        ev_check done_check;    /* after each iteration: is the work over? */
        ev_idle settle_idle;    /* past the deadline: the loop has caught up */
        unsigned settle_rounds; /* ... iterations since the deadline */
#if EVT_HAVE_SIGNALFD
        int sigfd;
        ev_io sigfd_watcher;
#else
        ev_signal reported_watchers[N_REPORTED_SIGNALS];
#endif
        struct sigaction old_actions[N_PIPE_SIGNALS];
        size_t n_installed;     /* old_actions saved so far */
        struct sigaction old_reported[N_REPORTED_SIGNALS];
        bool reported_saved;    /* old_reported holds the dispositions */
        sigset_t old_mask;
        bool mask_saved;        /* old_mask is to be restored */
};

/* ---- the signal handler and its state ------------------------------------ */

/* State the handler reads or writes: set up before the handler is
 * installed, torn down after it is removed. */
static evt_lifecycle *the_lifecycle;
static int handler_pipe = -1;
static volatile sig_atomic_t handler_count[N_PIPE_SIGNALS];
static volatile sig_atomic_t handler_shutdowns;
/* Each pipe signal's evt_signal_role, in pipe_signals' order: by default
 * INT pauses, TERM and QUIT shut down. */
static const evt_signal_role default_roles[] = { EVT_SIGNAL_ROLE_PAUSE, EVT_SIGNAL_ROLE_SHUTDOWN,
                                                 EVT_SIGNAL_ROLE_SHUTDOWN };
static volatile sig_atomic_t handler_role[N_PIPE_SIGNALS];
static const char *handler_message;
static size_t handler_message_len;
static int handler_message_fd = -1;

static int pipe_index(int signo) {
        for (size_t i = 0; i < N_PIPE_SIGNALS; i++)
                if (pipe_signals[i] == signo)
                        return (int) i;
        return -1;
}

/* The escape hatch must not wait for a reader that does not read (a full
 * pipe, a terminal on hold): the message is written non-blocking, or not
 * at all. The flag is on the file description, which other processes may
 * share: it is put back before the exit. */
static void emergency_write(void) {
        int flags = fcntl(handler_message_fd, F_GETFL);

        if (flags < 0)
                return;
        if (!(flags & O_NONBLOCK) && fcntl(handler_message_fd, F_SETFL, flags | O_NONBLOCK) < 0)
                return;
        (void) !write(handler_message_fd, handler_message, handler_message_len);
        if (!(flags & O_NONBLOCK))
                fcntl(handler_message_fd, F_SETFL, flags);
}

static void handler(int signo, siginfo_t *si, void *ucontext) {
        int saved_errno = errno;
        struct pipe_record rec = { .signo = signo };
        int i = pipe_index(signo);

        (void) ucontext;
        if (i < 0)
                return;
        /* The sender is known only for signals a process sent. */
        if (si && si->si_code <= 0) {
                rec.pid = si->si_pid;
                rec.uid = si->si_uid;
        }
        /* All three signals are blocked while this runs (sa_mask), so these
         * increments do not interleave. */
        handler_count[i]++;
        if (handler_role[i] == EVT_SIGNAL_ROLE_SHUTDOWN && ++handler_shutdowns >= 3) {
                if (handler_message_len > 0)
                        emergency_write();
                _exit(128 + signo);
        }
        /* A full pipe loses the record, not the signal: the count has it. */
        (void) !write(handler_pipe, &rec, sizeof(rec));
        errno = saved_errno;
}

/* ---- phases -------------------------------------------------------------- */

const char *evt_phase_name(evt_phase phase) {
        switch (phase) {
        case EVT_PHASE_RUNNING:
                return "running";
        case EVT_PHASE_STOPPING:
                return "stopping";
        case EVT_PHASE_DRAINING:
                return "draining";
        case EVT_PHASE_FORCING:
                return "forcing";
        case EVT_PHASE_DONE:
                return "done";
        }
        return "unknown";
}

int evt_lifecycle_signal_set(evt_lifecycle *lc, int signo, evt_signal_role role) {
        int i = pipe_index(signo);

        if (!lc || i < 0 || (role != EVT_SIGNAL_ROLE_PAUSE && role != EVT_SIGNAL_ROLE_SHUTDOWN))
                return -EINVAL;
        /* One word the handler reads: no signal needs blocking for it. */
        handler_role[i] = role;
        return 0;
}

evt_phase evt_lifecycle_phase(const evt_lifecycle *lc) {
        return lc ? lc->phase : EVT_PHASE_RUNNING;
}

static size_t tasks_left(evt_lifecycle *lc) {
        return lc->loop->n_tasks;
}

/* Work is tasks, and blocking calls until they are abandoned: a call whose
 * task gave up on it still runs on a thread, and it gets its chance to end
 * cleanly. */
static size_t work_left(evt_lifecycle *lc) {
        return lc->loop->n_tasks + (lc->abandoned_any ? 0 : evt__pool_calls_in_flight(lc->loop));
}

static void set_phase(evt_lifecycle *lc, evt_phase phase) {
        lc->phase = phase;
        if (lc->ops.phase_cb)
                lc->ops.phase_cb(lc, phase, tasks_left(lc), lc->ops.data);
}

static void timer_start(evt_lifecycle *lc, ev_timer *w, int64_t ns) {
        /* libev counts from the time it cached at the start of this
         * iteration: refresh it, or the timer would be cut short. */
        ev_now_update(lc->loop->ev);
        ev_timer_set(w, (double) ns / 1e9, 0.);
        ev_timer_start(lc->loop->ev, w);
        evt__watcher_started(lc->loop);
}

static void timer_stop(evt_lifecycle *lc, ev_timer *w) {
        if (ev_is_active(w)) {
                ev_timer_stop(lc->loop->ev, w);
                evt__watcher_stopped(lc->loop);
        }
}

static void settle_stop(evt_lifecycle *lc) {
        if (ev_is_active(&lc->settle_idle)) {
                ev_idle_stop(lc->loop->ev, &lc->settle_idle);
                evt__watcher_stopped(lc->loop);
        }
}

/* The work is over when no task is left and either a shutdown is under way
 * or the caller asked to stop when idle. */
static void check_done(evt_lifecycle *lc) {
        if (lc->phase == EVT_PHASE_DONE || work_left(lc) > 0)
                return;
        if (lc->phase == EVT_PHASE_RUNNING && !lc->exit_when_idle)
                return;
        timer_stop(lc, &lc->drain_timer);
        timer_stop(lc, &lc->grace_timer);
        settle_stop(lc);
        set_phase(lc, EVT_PHASE_DONE);
        ev_break(lc->loop->ev, EVBREAK_ONE);
}

static void cancel_one(evt_task *t, void *data) {
        (void) data;
        evt_task_cancel(t, 0);
}

static void force_one(evt_task *t, void *data) {
        evt_lifecycle *lc = data;

        lc->forced_any = true;
        if (lc->ops.forced_cb)
                lc->ops.forced_cb(lc, t, lc->ops.data);
        evt_task_cancel(t, EVT_CANCEL_FORCE);
}

static void force(evt_lifecycle *lc) {
        timer_stop(lc, &lc->drain_timer);
        settle_stop(lc);
        set_phase(lc, EVT_PHASE_FORCING);
        /* A forced cancel passes the pause gate too, but resume anyway: a
         * forced task's cleanup must not wait for a SIGINT. */
        evt_loop_resume(lc->loop);
        /* Each forced task gives up on its blocking call, if it has one,
         * which sets the call's stop flag; calls whose task gave up earlier
         * have it already. They get abandon_grace to return. */
        evt_loop_foreach_task(lc->loop, force_one, lc);
        if (evt__pool_calls_in_flight(lc->loop) > 0)
                timer_start(lc, &lc->grace_timer, lc->abandon_grace);
}

static void abandon_one(const evt_call_info *info, void *data) {
        evt_lifecycle *lc = data;

        lc->n_abandoned++;
        if (lc->ops.abandoned_cb)
                lc->ops.abandoned_cb(lc, info, lc->ops.data);
}

static void grace_cb(struct ev_loop *ev, ev_timer *w, int revents) {
        evt_lifecycle *lc = w->data;

        (void) ev;
        (void) revents;
        evt__watcher_stopped(lc->loop);
        /* The calls left ignore their stop flag: they are not waited for,
         * and the process may exit while their threads run. (The walk
         * collects calls that returned just now: those are not left.) */
        evt_loop_foreach_call(lc->loop, abandon_one, lc);
        lc->abandoned_any = lc->n_abandoned > 0;
        check_done(lc);
}

/* The drain deadline passed: before forcing, the loop handles what is
 * ready already. A process that was stopped (SIGSTOP) past the deadline
 * finds, when it continues, the deadline passed together with the output
 * and the exits that came meanwhile; those are the tasks' last steps, and
 * a task they end was not late. The idle watcher, at the lowest priority,
 * runs once nothing else is pending and no task is ready; a loop that
 * never goes idle is forced after SETTLE_ROUNDS_MAX iterations. */
static void settle_cb(struct ev_loop *ev, ev_idle *w, int revents) {
        evt_lifecycle *lc = w->data;

        (void) ev;
        (void) revents;
        force(lc);
        check_done(lc);
}

static void drain_cb(struct ev_loop *ev, ev_timer *w, int revents) {
        evt_lifecycle *lc = w->data;

        (void) revents;
        evt__watcher_stopped(lc->loop);
        lc->settle_rounds = 0;
        ev_idle_start(ev, &lc->settle_idle);
        evt__watcher_started(lc->loop);
}

int evt_lifecycle_shutdown(evt_lifecycle *lc, bool force_now) {
        if (!lc)
                return -EINVAL;
        if (lc->phase == EVT_PHASE_DONE || lc->phase == EVT_PHASE_FORCING)
                return 0;

        lc->shutdowns++;
        if (lc->phase == EVT_PHASE_RUNNING && !force_now) {
                /* Phase 1 and 2: stop, cancel every unshielded task, paused
                 * ones too (a cancelled task passes the pause gate). */
                set_phase(lc, EVT_PHASE_STOPPING);
                evt_loop_foreach_task(lc->loop, cancel_one, NULL);
                /* Phase 3: resume and drain the shielded ones. */
                evt_loop_resume(lc->loop);
                timer_start(lc, &lc->drain_timer, lc->drain_timeout);
                set_phase(lc, EVT_PHASE_DRAINING);
        } else {
                /* Phase 4 at once. */
                force(lc);
        }
        check_done(lc);
        return 0;
}

int evt_lifecycle_shutdown_within(evt_lifecycle *lc, int64_t drain_timeout) {
        if (!lc || drain_timeout <= 0)
                return -EINVAL;
        /* Read when the drain begins: a shutdown under way keeps its own. */
        if (lc->phase == EVT_PHASE_RUNNING)
                lc->drain_timeout = drain_timeout;
        return evt_lifecycle_shutdown(lc, false);
}

static void done_cb(struct ev_loop *ev, ev_check *w, int revents) {
        evt_lifecycle *lc = w->data;

        (void) ev;
        (void) revents;
        check_done(lc);
        if (ev_is_active(&lc->settle_idle) && ++lc->settle_rounds > SETTLE_ROUNDS_MAX) {
                force(lc);
                check_done(lc);
        }
}

/* ---- acting on signals --------------------------------------------------- */

static void report(evt_lifecycle *lc, int signo, evt_signal_action action, pid_t pid, uid_t uid) {
        evt_signal_info info = {
                .signo = signo,
                .action = action,
                .sender_pid = pid,
                .sender_uid = uid,
                .count = lc->shutdowns,
        };

        if (lc->ops.signal_cb)
                lc->ops.signal_cb(lc, &info, lc->ops.data);
}

static void act(evt_lifecycle *lc, int signo, pid_t pid, uid_t uid) {
        evt_loop *loop = lc->loop;

        if (handler_role[pipe_index(signo)] == EVT_SIGNAL_ROLE_PAUSE) {
                if (lc->phase != EVT_PHASE_RUNNING) {
                        report(lc, signo, EVT_SIGNAL_IGNORED, pid, uid);
                } else if (evt_loop_is_paused(loop)) {
                        evt_loop_resume(loop);
                        report(lc, signo, EVT_SIGNAL_RESUMED, pid, uid);
                } else {
                        evt_loop_pause(loop);
                        report(lc, signo, EVT_SIGNAL_PAUSED, pid, uid);
                }
                return;
        }

        /* A shutdown signal: report first, so that the signal's record comes
         * before the phase records it causes. */
        report(lc, signo, lc->shutdowns == 0 ? EVT_SIGNAL_SHUTDOWN : EVT_SIGNAL_FORCED, pid, uid);
        evt_lifecycle_shutdown(lc, lc->shutdowns > 0);
}

/* Records read per call: a storm of one signal must leave libev time for
 * the others (signalfd's), for tasks and for timers. */
#define PIPE_BATCH 64

static void pipe_cb(struct ev_loop *ev, ev_io *w, int revents) {
        evt_lifecycle *lc = w->data;
        struct pipe_record rec;

        (void) ev;
        (void) revents;
        /* The handler's counters say how many signals came; the records only
         * add who sent them. A record whose signal was already acted on (by
         * the catch-up below, before its record arrived) is dropped, so no
         * signal is acted on twice. */
        for (unsigned n = 0; n < PIPE_BATCH && read(lc->pipe[0], &rec, sizeof(rec)) == (ssize_t) sizeof(rec);
             n++) {
                int i = pipe_index(rec.signo);

                if (i < 0 || lc->handled[i] >= (unsigned) handler_count[i])
                        continue;
                lc->handled[i]++;
                act(lc, rec.signo, rec.pid, rec.uid);
        }
        /* Signals whose record did not fit in the pipe, or has not been read
         * yet: act on them too, with the sender unknown; those that come
         * meanwhile, at the next call. */
        for (size_t i = 0; i < N_PIPE_SIGNALS; i++) {
                unsigned came = (unsigned) handler_count[i];

                while (lc->handled[i] < came) {
                        lc->handled[i]++;
                        act(lc, pipe_signals[i], 0, 0);
                }
        }
}

#if EVT_HAVE_SIGNALFD
static void sigfd_cb(struct ev_loop *ev, ev_io *w, int revents) {
        evt_lifecycle *lc = w->data;
        struct signalfd_siginfo si;

        (void) ev;
        (void) revents;
        while (read(lc->sigfd, &si, sizeof(si)) == (ssize_t) sizeof(si)) {
                bool sent = (int) si.ssi_code <= 0;

                report(lc, (int) si.ssi_signo, EVT_SIGNAL_REPORTED,
                       sent ? (pid_t) si.ssi_pid : 0, sent ? (uid_t) si.ssi_uid : 0);
        }
}
#else
static void reported_cb(struct ev_loop *ev, ev_signal *w, int revents) {
        (void) ev;
        (void) revents;
        report(w->data, w->signum, EVT_SIGNAL_REPORTED, 0, 0);
}
#endif

/* ---- setting up and tearing down ------------------------------------------ */

static void teardown(evt_lifecycle *lc) {
        struct ev_loop *ev = lc->loop->ev;

        if (ev_is_active(&lc->pipe_watcher)) {
                ev_io_stop(ev, &lc->pipe_watcher);
                evt__watcher_stopped(lc->loop);
        }
        timer_stop(lc, &lc->drain_timer);
        timer_stop(lc, &lc->grace_timer);
        settle_stop(lc);
        if (ev_is_active(&lc->done_check)) {
                ev_check_stop(ev, &lc->done_check);
                evt__watcher_stopped(lc->loop);
        }
#if EVT_HAVE_SIGNALFD
        if (ev_is_active(&lc->sigfd_watcher)) {
                ev_io_stop(ev, &lc->sigfd_watcher);
                evt__watcher_stopped(lc->loop);
        }
        if (lc->sigfd >= 0)
                close(lc->sigfd);
        if (lc->mask_saved) {
                /* Unblock only what was not blocked before, and consume what
                 * is pending of it first, or the default action of a late
                 * SIGHUP would kill the process. A signal the caller had
                 * blocked stays blocked, and pending: it is the caller's. */
                sigset_t unblock;
                struct timespec zero = { 0, 0 };

                sigemptyset(&unblock);
                for (size_t i = 0; i < N_REPORTED_SIGNALS; i++)
                        if (!sigismember(&lc->old_mask, reported_signals[i]))
                                sigaddset(&unblock, reported_signals[i]);
                while (sigtimedwait(&unblock, NULL, &zero) > 0)
                        ;
                sigprocmask(SIG_UNBLOCK, &unblock, NULL);
        }
#else
        for (size_t i = 0; i < N_REPORTED_SIGNALS; i++)
                if (ev_is_active(&lc->reported_watchers[i])) {
                        ev_signal_stop(ev, &lc->reported_watchers[i]);
                        evt__watcher_stopped(lc->loop);
                }
#endif
        /* libev's ev_signal_stop leaves SIG_DFL behind: put back what was. */
        for (size_t i = 0; i < N_REPORTED_SIGNALS; i++)
                if (lc->reported_saved)
                        sigaction(reported_signals[i], &lc->old_reported[i], NULL);
        /* The handler goes before the state it uses. */
        for (size_t i = 0; i < lc->n_installed; i++)
                sigaction(pipe_signals[i], &lc->old_actions[i], NULL);
        handler_pipe = -1;
        handler_message = NULL;
        handler_message_len = 0;
        for (size_t i = 0; i < 2; i++)
                if (lc->pipe[i] >= 0)
                        close(lc->pipe[i]);
        free(lc->emergency_message);
        if (the_lifecycle == lc)
                the_lifecycle = NULL;
        free(lc);
}

/* pipe2 where it exists; pipe and fcntl elsewhere (a thread that forks and
 * execs in between could leak the ends, which no caller here does). */
static int pipe_nonblock_cloexec(int fds[2]) {
#if EVT_HAVE_PIPE2
        return pipe2(fds, O_NONBLOCK | O_CLOEXEC);
#else
        if (pipe(fds) < 0)
                return -1;
        if (evt__fd_nonblock_cloexec(fds[0]) < 0 || evt__fd_nonblock_cloexec(fds[1]) < 0) {
                int e = errno;

                close(fds[0]);
                close(fds[1]);
                errno = e;
                return -1;
        }
        return 0;
#endif
}

static int install(evt_lifecycle *lc) {
        struct ev_loop *ev = lc->loop->ev;
        struct sigaction sa = { .sa_sigaction = handler, .sa_flags = SA_SIGINFO | SA_RESTART };

        if (pipe_nonblock_cloexec(lc->pipe) < 0)
                return -errno;
        for (size_t i = 0; i < N_REPORTED_SIGNALS; i++)
                if (sigaction(reported_signals[i], NULL, &lc->old_reported[i]) < 0)
                        return -errno;
        lc->reported_saved = true;

        ev_io_init(&lc->pipe_watcher, pipe_cb, lc->pipe[0], EV_READ);
        lc->pipe_watcher.data = lc;
        ev_io_start(ev, &lc->pipe_watcher);
        evt__watcher_started(lc->loop);

#if EVT_HAVE_SIGNALFD
        {
                sigset_t set;

                sigemptyset(&set);
                for (size_t i = 0; i < N_REPORTED_SIGNALS; i++)
                        sigaddset(&set, reported_signals[i]);
                /* Blocked here, and so in every thread started later. */
                if (sigprocmask(SIG_BLOCK, &set, &lc->old_mask) < 0)
                        return -errno;
                lc->mask_saved = true;
                lc->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
                if (lc->sigfd < 0)
                        return -errno;
                ev_io_init(&lc->sigfd_watcher, sigfd_cb, lc->sigfd, EV_READ);
                lc->sigfd_watcher.data = lc;
                ev_io_start(ev, &lc->sigfd_watcher);
                evt__watcher_started(lc->loop);
        }
#else
        for (size_t i = 0; i < N_REPORTED_SIGNALS; i++) {
                ev_signal_init(&lc->reported_watchers[i], reported_cb, reported_signals[i]);
                lc->reported_watchers[i].data = lc;
                ev_signal_start(ev, &lc->reported_watchers[i]);
                evt__watcher_started(lc->loop);
        }
#endif

        ev_check_init(&lc->done_check, done_cb);
        lc->done_check.data = lc;
        ev_check_start(ev, &lc->done_check);
        evt__watcher_started(lc->loop);

        /* The handler's state is complete before the handler goes in. */
        handler_pipe = lc->pipe[1];
        handler_message = lc->emergency_message;
        handler_message_len = lc->emergency_message ? strlen(lc->emergency_message) : 0;
        for (size_t i = 0; i < N_PIPE_SIGNALS; i++) {
                handler_count[i] = 0;
                handler_role[i] = default_roles[i];
        }
        handler_shutdowns = 0;
        sigemptyset(&sa.sa_mask);
        for (size_t i = 0; i < N_PIPE_SIGNALS; i++)
                sigaddset(&sa.sa_mask, pipe_signals[i]);
        for (; lc->n_installed < N_PIPE_SIGNALS; lc->n_installed++)
                if (sigaction(pipe_signals[lc->n_installed], &sa, &lc->old_actions[lc->n_installed]) < 0)
                        return -errno;
        return 0;
}

int evt_lifecycle_new(evt_loop *loop, const evt_lifecycle_opts *opts, const evt_lifecycle_ops *ops,
                      evt_lifecycle **ret_lc) {
        static const evt_lifecycle_opts default_opts = { .emergency_fd = -1 };
        evt_lifecycle *lc;
        int r;

        if (!loop || !ret_lc)
                return -EINVAL;
        if (!opts)
                opts = &default_opts;
        if (opts->drain_timeout < 0 || opts->abandon_grace < 0 ||
            (opts->emergency_message && opts->emergency_fd < 0))
                return -EINVAL;
        if (the_lifecycle)
                return -EBUSY;

        lc = calloc(1, sizeof(*lc));
        if (!lc)
                return -ENOMEM;
        lc->loop = loop;
        if (ops)
                lc->ops = *ops;
        lc->drain_timeout = opts->drain_timeout ? opts->drain_timeout : DEFAULT_DRAIN_TIMEOUT;
        lc->abandon_grace = opts->abandon_grace ? opts->abandon_grace : DEFAULT_ABANDON_GRACE;
        lc->exit_when_idle = opts->exit_when_idle;
        lc->pipe[0] = lc->pipe[1] = -1;
#if EVT_HAVE_SIGNALFD
        lc->sigfd = -1;
#endif
        ev_init(&lc->pipe_watcher, NULL);
        ev_init(&lc->drain_timer, drain_cb);
        lc->drain_timer.data = lc;
        ev_init(&lc->grace_timer, grace_cb);
        lc->grace_timer.data = lc;
        ev_init(&lc->done_check, NULL);
        ev_idle_init(&lc->settle_idle, settle_cb);
        ev_set_priority(&lc->settle_idle, EV_MINPRI);
        lc->settle_idle.data = lc;
#if EVT_HAVE_SIGNALFD
        ev_init(&lc->sigfd_watcher, NULL);
#else
        for (size_t i = 0; i < N_REPORTED_SIGNALS; i++)
                ev_init(&lc->reported_watchers[i], NULL);
#endif
        if (opts->emergency_message) {
                lc->emergency_message = strdup(opts->emergency_message);
                if (!lc->emergency_message) {
                        teardown(lc);
                        return -ENOMEM;
                }
                handler_message_fd = opts->emergency_fd;
        }
        the_lifecycle = lc;

        r = install(lc);
        if (r < 0) {
                teardown(lc);
                return r;
        }
        *ret_lc = lc;
        return 0;
}

void evt_lifecycle_free(evt_lifecycle *lc) {
        if (lc)
                teardown(lc);
}

int evt_lifecycle_run(evt_lifecycle *lc) {
        if (!lc || evt_task_current())
                return -EINVAL;
        check_done(lc);
        if (lc->phase != EVT_PHASE_DONE)
                ev_run(lc->loop->ev, 0);
        if (lc->abandoned_any)
                return EVT_EXIT_ABANDONED;
        return lc->forced_any ? EVT_EXIT_FORCED : EVT_EXIT_CLEAN;
}
