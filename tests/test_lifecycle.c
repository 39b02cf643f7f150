/* Layer 4: the signal router, pause on SIGINT, the shutdown phases. Real
 * signals, raised in the process itself. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#define MAX_EVENTS 32

/* What the callbacks saw, in order. */
static struct {
        evt_signal_action actions[MAX_EVENTS];
        int signals[MAX_EVENTS];
        pid_t senders[MAX_EVENTS];
        int n_signals;
        evt_phase phases[MAX_EVENTS];
        int n_phases;
        char forced[MAX_EVENTS][64];    /* copies: the tasks may be gone */
        int n_forced;
        bool raise_again;       /* signal_cb raises one more SIGINT, once */
} seen;

static void signal_cb(evt_lifecycle *lc, const evt_signal_info *si, void *data) {
        (void) lc;
        (void) data;
        ck_assert_int_lt(seen.n_signals, MAX_EVENTS);
        seen.actions[seen.n_signals] = si->action;
        seen.signals[seen.n_signals] = si->signo;
        seen.senders[seen.n_signals] = si->sender_pid;
        seen.n_signals++;
        if (seen.raise_again) {
                seen.raise_again = false;
                raise(SIGINT);
        }
}

static void phase_cb(evt_lifecycle *lc, evt_phase phase, size_t left, void *data) {
        (void) lc;
        (void) left;
        (void) data;
        ck_assert_int_lt(seen.n_phases, MAX_EVENTS);
        seen.phases[seen.n_phases++] = phase;
}

static void forced_cb(evt_lifecycle *lc, evt_task *t, void *data) {
        (void) lc;
        (void) data;
        snprintf(seen.forced[seen.n_forced++], sizeof(seen.forced[0]), "%s", evt_task_name(t));
}

static const evt_lifecycle_ops ops = {
        .signal_cb = signal_cb,
        .phase_cb = phase_cb,
        .forced_cb = forced_cb,
};

static evt_lifecycle *lifecycle_new(evt_loop *loop, int64_t drain_timeout, bool exit_when_idle) {
        evt_lifecycle_opts opts = {
                .drain_timeout = drain_timeout,
                .exit_when_idle = exit_when_idle,
                .emergency_fd = -1,
        };
        evt_lifecycle *lc = NULL;

        memset(&seen, 0, sizeof(seen));
        ck_assert_int_eq(evt_lifecycle_new(loop, &opts, &ops, &lc), 0);
        return lc;
}

static int nap(void *arg) {
        return evt_sleep(*(int64_t *) arg);
}

/* ---- SIGINT ---- */

struct pauser {
        evt_loop *loop;
        bool paused_after_first, paused_after_second;
};

static int raise_sigints(void *arg) {
        struct pauser *p = arg;

        raise(SIGINT);
        evt_sleep(EVT_MSEC(20));
        p->paused_after_first = evt_loop_is_paused(p->loop);
        raise(SIGINT);
        evt_sleep(EVT_MSEC(20));
        p->paused_after_second = evt_loop_is_paused(p->loop);
        return 0;
}

START_TEST(sigint_pauses_and_resumes) {
        evt_loop *loop = test_loop_new();
        evt_lifecycle *lc = lifecycle_new(loop, 0, true);
        struct pauser p = { .loop = loop };

        evt_task_unref(test_spawn(loop, raise_sigints, &p, "pauser", EVT_TASK_NOPAUSE));
        ck_assert_int_eq(evt_lifecycle_run(lc), EVT_EXIT_CLEAN);
        ck_assert(p.paused_after_first);
        ck_assert(!p.paused_after_second);
        ck_assert_int_eq(seen.n_signals, 2);
        ck_assert_int_eq(seen.actions[0], EVT_SIGNAL_PAUSED);
        ck_assert_int_eq(seen.actions[1], EVT_SIGNAL_RESUMED);
        ck_assert_int_eq(seen.senders[0], getpid()); /* raise() is a kill from us */
        ck_assert_int_eq(seen.phases[seen.n_phases - 1], EVT_PHASE_DONE);
        evt_lifecycle_free(lc);
        test_loop_free(loop);
}
END_TEST

/* The self-pipe is full, so the first SIGINT's record is lost and only the
 * handler's counter has it; a second SIGINT comes while the first is acted
 * on. Two signals must give two actions: paused, then resumed. */
START_TEST(full_pipe_loses_no_signal_and_doubles_none) {
        evt_loop *loop = test_loop_new();
        bool was_open[1024];
        int wfd = -1, rec[3] = { 0, 0, 0 };
        evt_lifecycle *lc;

        /* The self-pipe's write end: the write-only FIFO the lifecycle opens. */
        for (int fd = 0; fd < 1024; fd++)
                was_open[fd] = fcntl(fd, F_GETFD) >= 0;
        lc = lifecycle_new(loop, 0, false);
        for (int fd = 0; fd < 1024; fd++) {
                struct stat st;
                int fl = fcntl(fd, F_GETFL);

                if (!was_open[fd] && fl >= 0 && fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode) &&
                    (fl & O_ACCMODE) == O_WRONLY)
                        wfd = fd;
        }
        ck_assert_int_ge(wfd, 0);
        ck_assert(fcntl(wfd, F_GETFL) & O_NONBLOCK);
        while (write(wfd, rec, sizeof(rec)) == (ssize_t) sizeof(rec))
                ; /* records of no signal, which the reader skips */
        seen.raise_again = true;
        raise(SIGINT);

        ev_run(evt_loop_ev(loop), EVRUN_NOWAIT);
        for (int i = 0; i < 20 && seen.n_signals < 2; i++)
                ev_run(evt_loop_ev(loop), EVRUN_NOWAIT);
        /* Give a doubled action every chance to show. */
        for (int i = 0; i < 20; i++)
                ev_run(evt_loop_ev(loop), EVRUN_NOWAIT);
        ck_assert_int_eq(seen.n_signals, 2);
        ck_assert_int_eq(seen.actions[0], EVT_SIGNAL_PAUSED);
        ck_assert_int_eq(seen.actions[1], EVT_SIGNAL_RESUMED);
        ck_assert(!evt_loop_is_paused(loop));
        evt_lifecycle_free(lc);
        test_loop_free(loop);
}
END_TEST

/* ---- shutdown ---- */

START_TEST(term_cancels_and_drains) {
        evt_loop *loop = test_loop_new();
        evt_lifecycle *lc = lifecycle_new(loop, EVT_SEC(10), false);
        int64_t short_nap = EVT_MSEC(50), long_nap = EVT_SEC(30);
        evt_task *shielded = test_spawn(loop, nap, &short_nap, "shielded", EVT_TASK_SHIELDED);
        evt_task *plain = test_spawn(loop, nap, &long_nap, "plain", 0);
        int res;

        evt_loop_pause(loop); /* a shutdown while paused resumes */
        raise(SIGTERM);
        ck_assert_int_eq(evt_lifecycle_run(lc), EVT_EXIT_CLEAN);
        ck_assert_int_eq(seen.n_signals, 1);
        ck_assert_int_eq(seen.actions[0], EVT_SIGNAL_SHUTDOWN);
        ck_assert_int_eq(seen.n_phases, 3);
        ck_assert_int_eq(seen.phases[0], EVT_PHASE_STOPPING);
        ck_assert_int_eq(seen.phases[1], EVT_PHASE_DRAINING);
        ck_assert_int_eq(seen.phases[2], EVT_PHASE_DONE);
        ck_assert_int_eq(seen.n_forced, 0);
        ck_assert_int_eq(evt_task_result(shielded, &res), 0);
        ck_assert_int_eq(res, 0);
        ck_assert_int_eq(evt_task_result(plain, &res), 0);
        ck_assert_int_eq(res, -ECANCELED);
        ck_assert_int_eq(evt_lifecycle_phase(lc), EVT_PHASE_DONE);
        evt_task_unref(shielded);
        evt_task_unref(plain);
        evt_lifecycle_free(lc);
        test_loop_free(loop);
}
END_TEST

START_TEST(drain_deadline_forces) {
        evt_loop *loop = test_loop_new();
        evt_lifecycle *lc = lifecycle_new(loop, EVT_MSEC(50), false);
        int64_t long_nap = EVT_SEC(30);
        int64_t start = evt_time_now();

        evt_task_unref(test_spawn(loop, nap, &long_nap, "stubborn", EVT_TASK_SHIELDED));
        ck_assert_int_eq(evt_lifecycle_shutdown(lc, false), 0);
        ck_assert_int_eq(evt_lifecycle_run(lc), EVT_EXIT_FORCED);
        ck_assert_int_ge(test_ms_since(start), 50);
        ck_assert_int_eq(seen.n_forced, 1);
        ck_assert_str_eq(seen.forced[0], "stubborn");
        ck_assert_int_eq(seen.phases[2], EVT_PHASE_FORCING);
        ck_assert_int_eq(seen.phases[3], EVT_PHASE_DONE);
        evt_lifecycle_free(lc);
        test_loop_free(loop);
}
END_TEST

/* Issue 18, finding 5: a process stopped (SIGSTOP) past the drain deadline
 * finds, when it continues, the deadline passed together with the work
 * that became ready meanwhile. Here a task holds the loop past the deadline
 * (as a stopped process does) after making a shielded reader's pipe
 * readable: the reader runs before the deadline is judged, and nothing is
 * forced. */
struct late {
        int fds[2];
        ssize_t got;
};

static int late_reader(void *arg) {
        struct late *l = arg;
        char buf[16];
        int r = evt_fd_wait(l->fds[0], EVT_READ, EVT_FOREVER, NULL);

        if (r < 0)
                return r;
        l->got = read(l->fds[0], buf, sizeof(buf));
        return 0;
}

static int late_holder(void *arg) {
        struct late *l = arg;

        evt_sleep(EVT_MSEC(10));
        ck_assert_int_eq(write(l->fds[1], "last", 4), 4);
        usleep(150 * 1000); /* no await point: the loop is held past the deadline */
        return 0;
}

START_TEST(late_deadline_lets_ready_work_end) {
        evt_loop *loop = test_loop_new();
        evt_lifecycle *lc = lifecycle_new(loop, EVT_MSEC(50), false);
        struct late l = { .got = -1 };

        ck_assert_int_eq(pipe2(l.fds, O_NONBLOCK), 0);
        evt_task_unref(test_spawn(loop, late_reader, &l, "reader", EVT_TASK_SHIELDED));
        evt_task_unref(test_spawn(loop, late_holder, &l, "holder", EVT_TASK_SHIELDED));
        ck_assert_int_eq(evt_lifecycle_shutdown(lc, false), 0);
        ck_assert_int_eq(evt_lifecycle_run(lc), EVT_EXIT_CLEAN);
        ck_assert_int_eq(seen.n_forced, 0);
        ck_assert_int_eq(l.got, 4);
        close(l.fds[0]);
        close(l.fds[1]);
        evt_lifecycle_free(lc);
        test_loop_free(loop);
}
END_TEST

START_TEST(second_signal_forces) {
        evt_loop *loop = test_loop_new();
        evt_lifecycle *lc = lifecycle_new(loop, EVT_SEC(60), false);
        int64_t long_nap = EVT_SEC(30);
        int64_t start = evt_time_now();

        evt_task_unref(test_spawn(loop, nap, &long_nap, "stubborn", EVT_TASK_SHIELDED));
        raise(SIGTERM);
        raise(SIGQUIT);
        ck_assert_int_eq(evt_lifecycle_run(lc), EVT_EXIT_FORCED);
        ck_assert_int_lt(test_ms_since(start), 5000);
        ck_assert_int_eq(seen.n_signals, 2);
        ck_assert_int_eq(seen.actions[0], EVT_SIGNAL_SHUTDOWN);
        ck_assert_int_eq(seen.actions[1], EVT_SIGNAL_FORCED);
        ck_assert_int_eq(seen.signals[1], SIGQUIT);
        ck_assert_int_eq(seen.n_forced, 1);
        evt_lifecycle_free(lc);
        test_loop_free(loop);
}
END_TEST

START_TEST(sigint_ignored_during_shutdown) {
        evt_loop *loop = test_loop_new();
        evt_lifecycle *lc = lifecycle_new(loop, EVT_SEC(10), false);
        int64_t short_nap = EVT_MSEC(50);

        evt_task_unref(test_spawn(loop, nap, &short_nap, "shielded", EVT_TASK_SHIELDED));
        raise(SIGTERM);
        raise(SIGINT);
        ck_assert_int_eq(evt_lifecycle_run(lc), EVT_EXIT_CLEAN);
        ck_assert_int_eq(seen.n_signals, 2);
        ck_assert_int_eq(seen.actions[1], EVT_SIGNAL_IGNORED);
        ck_assert(!evt_loop_is_paused(loop));
        evt_lifecycle_free(lc);
        test_loop_free(loop);
}
END_TEST

/* ---- SIGINT as a shutdown signal (evt_lifecycle_signal_set) ---- */

/* The first SIGINT drains, the second forces, as TERM's would; counted
 * together with TERM. */
START_TEST(sigint_as_shutdown) {
        evt_loop *loop = test_loop_new();
        evt_lifecycle *lc = lifecycle_new(loop, EVT_SEC(60), false);
        int64_t long_nap = EVT_SEC(30);
        int64_t start = evt_time_now();

        ck_assert_int_eq(evt_lifecycle_signal_set(lc, SIGINT, EVT_SIGNAL_ROLE_SHUTDOWN), 0);
        evt_task_unref(test_spawn(loop, nap, &long_nap, "stubborn", EVT_TASK_SHIELDED));
        raise(SIGINT);
        raise(SIGINT);
        ck_assert_int_eq(evt_lifecycle_run(lc), EVT_EXIT_FORCED);
        ck_assert_int_lt(test_ms_since(start), 5000);
        ck_assert(!evt_loop_is_paused(loop));
        ck_assert_int_eq(seen.n_signals, 2);
        ck_assert_int_eq(seen.signals[0], SIGINT);
        ck_assert_int_eq(seen.actions[0], EVT_SIGNAL_SHUTDOWN);
        ck_assert_int_eq(seen.actions[1], EVT_SIGNAL_FORCED);
        ck_assert_int_eq(seen.n_forced, 1);
        evt_lifecycle_free(lc);
        test_loop_free(loop);

        /* A new lifecycle starts from the default roles: SIGINT pauses. */
        loop = test_loop_new();
        lc = lifecycle_new(loop, 0, false);
        raise(SIGINT);
        for (int i = 0; i < 50 && seen.n_signals == 0; i++)
                ev_run(evt_loop_ev(loop), EVRUN_NOWAIT);
        ck_assert_int_eq(seen.n_signals, 1);
        ck_assert_int_eq(seen.actions[0], EVT_SIGNAL_PAUSED);
        evt_lifecycle_free(lc);
        test_loop_free(loop);
}
END_TEST

START_TEST(term_then_sigint_forces) {
        evt_loop *loop = test_loop_new();
        evt_lifecycle *lc = lifecycle_new(loop, EVT_SEC(60), false);
        int64_t long_nap = EVT_SEC(30);

        ck_assert_int_eq(evt_lifecycle_signal_set(lc, SIGINT, EVT_SIGNAL_ROLE_SHUTDOWN), 0);
        evt_task_unref(test_spawn(loop, nap, &long_nap, "stubborn", EVT_TASK_SHIELDED));
        raise(SIGTERM);
        raise(SIGINT);
        ck_assert_int_eq(evt_lifecycle_run(lc), EVT_EXIT_FORCED);
        ck_assert_int_eq(seen.n_signals, 2);
        ck_assert_int_eq(seen.actions[1], EVT_SIGNAL_FORCED);
        ck_assert_int_eq(seen.signals[1], SIGINT);
        evt_lifecycle_free(lc);
        test_loop_free(loop);
}
END_TEST

/* The third shutdown SIGINT exits from the handler with 128 + SIGINT, in
 * a child of the test's own: the exit is the process's. */
START_TEST(third_sigint_exits) {
        int status;
        pid_t pid = fork();

        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                evt_loop *loop = test_loop_new();
                evt_lifecycle *lc = NULL;

                if (evt_lifecycle_new(loop, NULL, NULL, &lc) < 0 ||
                    evt_lifecycle_signal_set(lc, SIGINT, EVT_SIGNAL_ROLE_SHUTDOWN) < 0)
                        _exit(1);
                raise(SIGINT);
                raise(SIGINT);
                raise(SIGINT);
                _exit(2);
        }
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGINT, "status %#x", status);
}
END_TEST

/* SIGQUIT set to pause: pauses and resumes as SIGINT does by default; and
 * the bad calls. */
START_TEST(signal_set_roles) {
        evt_loop *loop = test_loop_new();
        evt_lifecycle *lc = lifecycle_new(loop, 0, false);

        ck_assert_int_eq(evt_lifecycle_signal_set(lc, SIGQUIT, EVT_SIGNAL_ROLE_PAUSE), 0);
        raise(SIGQUIT);
        for (int i = 0; i < 50 && seen.n_signals == 0; i++)
                ev_run(evt_loop_ev(loop), EVRUN_NOWAIT);
        ck_assert_int_eq(seen.n_signals, 1);
        ck_assert_int_eq(seen.actions[0], EVT_SIGNAL_PAUSED);
        ck_assert(evt_loop_is_paused(loop));
        ck_assert_int_eq(evt_lifecycle_phase(lc), EVT_PHASE_RUNNING);

        ck_assert_int_eq(evt_lifecycle_signal_set(NULL, SIGINT, EVT_SIGNAL_ROLE_SHUTDOWN), -EINVAL);
        ck_assert_int_eq(evt_lifecycle_signal_set(lc, SIGHUP, EVT_SIGNAL_ROLE_SHUTDOWN), -EINVAL);
        ck_assert_int_eq(evt_lifecycle_signal_set(lc, 0, EVT_SIGNAL_ROLE_PAUSE), -EINVAL);
        ck_assert_int_eq(evt_lifecycle_signal_set(lc, SIGINT, (evt_signal_role) 7), -EINVAL);
        ck_assert_int_eq(evt_lifecycle_signal_set(lc, SIGINT, (evt_signal_role) -1), -EINVAL);
        evt_lifecycle_free(lc);
        test_loop_free(loop);
}
END_TEST

/* ---- reported signals and teardown ---- */

START_TEST(usr1_is_reported) {
        evt_loop *loop = test_loop_new();
        evt_lifecycle *lc = lifecycle_new(loop, 0, false);

        raise(SIGUSR1);
        for (int i = 0; i < 50 && seen.n_signals == 0; i++)
                ev_run(evt_loop_ev(loop), EVRUN_NOWAIT);
        ck_assert_int_eq(seen.n_signals, 1);
        ck_assert_int_eq(seen.signals[0], SIGUSR1);
        ck_assert_int_eq(seen.actions[0], EVT_SIGNAL_REPORTED);
        evt_lifecycle_free(lc);
        test_loop_free(loop);
}
END_TEST

/* A SIGHUP still pending when the lifecycle goes must not kill the process,
 * and every disposition is what it was before. */
START_TEST(teardown_restores_signal_state) {
        evt_loop *loop = test_loop_new();
        struct sigaction before_hup, before_int, after;
        evt_lifecycle *lc;

        signal(SIGUSR2, SIG_IGN);
        sigaction(SIGHUP, NULL, &before_hup);
        sigaction(SIGINT, NULL, &before_int);
        lc = lifecycle_new(loop, 0, false);
        raise(SIGHUP); /* pending, never read */
        evt_lifecycle_free(lc);
        sigaction(SIGHUP, NULL, &after);
        ck_assert_ptr_eq((void *) after.sa_handler, (void *) before_hup.sa_handler);
        sigaction(SIGINT, NULL, &after);
        ck_assert_ptr_eq((void *) after.sa_handler, (void *) before_int.sa_handler);
        sigaction(SIGUSR2, NULL, &after);
        ck_assert_ptr_eq((void *) after.sa_handler, (void *) SIG_IGN);
        test_loop_free(loop);
        signal(SIGUSR2, SIG_DFL);
}
END_TEST

START_TEST(bad_arguments) {
        evt_loop *loop = test_loop_new();
        evt_lifecycle *lc = NULL, *other = (evt_lifecycle *) 0x1;

        ck_assert_int_eq(evt_lifecycle_new(NULL, NULL, NULL, &lc), -EINVAL);
        ck_assert_int_eq(evt_lifecycle_new(loop, &(evt_lifecycle_opts) { .drain_timeout = -1 }, NULL, &lc),
                         -EINVAL);
        ck_assert_int_eq(evt_lifecycle_new(loop,
                                           &(evt_lifecycle_opts) { .emergency_message = "x", .emergency_fd = -1 },
                                           NULL, &lc),
                         -EINVAL);
        ck_assert_ptr_null(lc);
        lc = lifecycle_new(loop, 0, false);
        ck_assert_int_eq(evt_lifecycle_new(loop, NULL, NULL, &other), -EBUSY); /* one per process */
        ck_assert_ptr_eq(other, (evt_lifecycle *) 0x1);
        ck_assert_int_eq(evt_lifecycle_shutdown(NULL, false), -EINVAL);
        ck_assert_str_eq(evt_phase_name(EVT_PHASE_DRAINING), "draining");
        evt_lifecycle_free(lc);
        evt_lifecycle_free(NULL);
        test_loop_free(loop);
}
END_TEST

Suite *evt_test_suite(void) {
        Suite *s = suite_create("lifecycle");
        TCase *tc;

        tc = tcase_create("sigint");
        tcase_add_test(tc, sigint_pauses_and_resumes);
        tcase_add_test(tc, full_pipe_loses_no_signal_and_doubles_none);
        suite_add_tcase(s, tc);

        tc = tcase_create("shutdown");
        tcase_add_test(tc, term_cancels_and_drains);
        tcase_add_test(tc, drain_deadline_forces);
        tcase_add_test(tc, late_deadline_lets_ready_work_end);
        tcase_add_test(tc, second_signal_forces);
        tcase_add_test(tc, sigint_ignored_during_shutdown);
        suite_add_tcase(s, tc);

        tc = tcase_create("roles");
        tcase_add_test(tc, sigint_as_shutdown);
        tcase_add_test(tc, term_then_sigint_forces);
        tcase_add_test(tc, third_sigint_exits);
        tcase_add_test(tc, signal_set_roles);
        suite_add_tcase(s, tc);

        tc = tcase_create("setup");
        tcase_add_test(tc, usr1_is_reported);
        tcase_add_test(tc, teardown_restores_signal_state);
        tcase_add_test(tc, bad_arguments);
        suite_add_tcase(s, tc);
        return s;
}
