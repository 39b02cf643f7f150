/* Layer 3: waiting for file descriptors and child processes. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

/* Tasks run inside evt_loop_run: they record what they saw here, and the
 * test body asserts on it afterwards. Reset by every test (under CK_FORK=no
 * all tests share one process). */
static struct {
        evt_loop *loop;
        int fds[2];             /* a pipe: [0] read end, [1] write end */
        evt_task *reader;
        int r, r2;
        unsigned events;        /* ret_events, or a sentinel */
        evt_deadline deadline;
        int64_t written_at, woke, cancelled_at, resumed_at;
        char byte;
        /* The pause test. */
        bool reader_woke;
        bool woke_during_pause;
        uint64_t switches_during_pause;
        unsigned iterations_during_pause;
        int r_ctl;
} st;

#define NO_EVENTS 0xdeadu

static void reset(void) {
        memset(&st, 0, sizeof(st));
        st.r = st.r2 = st.r_ctl = 1;
        st.events = NO_EVENTS;
        st.deadline = EVT_FOREVER;
        st.fds[0] = st.fds[1] = -1;
}

static void open_pipe(void) {
        ck_assert_int_eq(pipe2(st.fds, O_NONBLOCK | O_CLOEXEC), 0);
}

static void close_pipe(void) {
        close(st.fds[0]);
        close(st.fds[1]);
}

/* Waits for the read end with st.deadline, then reads what came. */
static int reader_fn(void *arg) {
        (void) arg;
        st.r = evt_fd_wait(st.fds[0], EVT_READ, st.deadline, &st.events);
        st.woke = evt_time_now();
        st.reader_woke = true;
        st.woke_during_pause = evt_loop_is_paused(st.loop);
        if (st.r == 0 && read(st.fds[0], &st.byte, 1) != 1)
                st.byte = '?';
        return st.r;
}

static int writer_fn(void *arg) {
        (void) arg;
        if (evt_sleep(EVT_MSEC(20)) < 0)
                return -1;
        st.written_at = evt_time_now();
        return write(st.fds[1], "x", 1) == 1 ? 0 : -errno;
}

/* ---- evt_fd_wait ---- */

START_TEST(fd_wait_read) {
        reset();
        open_pipe();
        st.loop = test_loop_new();
        ck_assert_int_eq(evt_task_spawn(st.loop, reader_fn, NULL, NULL, NULL), 0);
        ck_assert_int_eq(evt_task_spawn(st.loop, writer_fn, NULL, NULL, NULL), 0);
        test_loop_run(st.loop);
        ck_assert_int_eq(st.r, 0);
        ck_assert_uint_eq(st.events, EVT_READ);
        ck_assert_int_ne(st.written_at, 0);
        /* Not before there was something to read. */
        ck_assert_int_ge(st.woke, st.written_at);
        ck_assert_int_lt(st.woke, st.written_at + EVT_SEC(1));
        ck_assert_int_eq(st.byte, 'x');
        close_pipe();
        test_loop_free(st.loop);
}
END_TEST

/* Readable already: the wait still returns, with the events. */
START_TEST(fd_wait_read_ready) {
        reset();
        open_pipe();
        ck_assert_int_eq(write(st.fds[1], "y", 1), 1);
        st.loop = test_loop_new();
        st.deadline = evt_deadline_in(EVT_SEC(10));
        ck_assert_int_eq(evt_task_spawn(st.loop, reader_fn, NULL, NULL, NULL), 0);
        test_loop_run(st.loop);
        ck_assert_int_eq(st.r, 0);
        ck_assert_uint_eq(st.events, EVT_READ);
        ck_assert_int_eq(st.byte, 'y');
        close_pipe();
        test_loop_free(st.loop);
}
END_TEST

static struct {
        int r_write, r_both, r_null;
        unsigned ev_write, ev_both;
        int64_t took;
} wr;

static int write_ready_fn(void *arg) {
        int64_t start = evt_time_now();

        (void) arg;
        wr.r_write = evt_fd_wait(st.fds[1], EVT_WRITE, EVT_FOREVER, &wr.ev_write);
        /* Only the ready direction is reported. */
        wr.r_both = evt_fd_wait(st.fds[1], EVT_READ | EVT_WRITE, EVT_FOREVER, &wr.ev_both);
        wr.r_null = evt_fd_wait(st.fds[1], EVT_WRITE, EVT_FOREVER, NULL);
        wr.took = evt_time_now() - start;
        return 0;
}

START_TEST(fd_wait_write_ready) {
        reset();
        memset(&wr, 0, sizeof(wr));
        wr.r_write = wr.r_both = wr.r_null = 1;
        wr.ev_write = wr.ev_both = NO_EVENTS;
        open_pipe();
        st.loop = test_loop_new();
        ck_assert_int_eq(evt_task_spawn(st.loop, write_ready_fn, NULL, NULL, NULL), 0);
        test_loop_run(st.loop);
        ck_assert_int_eq(wr.r_write, 0);
        ck_assert_uint_eq(wr.ev_write, EVT_WRITE);
        ck_assert_int_eq(wr.r_both, 0);
        ck_assert_uint_eq(wr.ev_both, EVT_WRITE);
        ck_assert_int_eq(wr.r_null, 0);
        /* At once: an empty pipe has room. */
        ck_assert_int_lt(wr.took, EVT_MSEC(500));
        close_pipe();
        test_loop_free(st.loop);
}
END_TEST

START_TEST(fd_wait_deadline) {
        reset();
        open_pipe();
        st.loop = test_loop_new();
        st.deadline = evt_deadline_in(EVT_MSEC(30));
        ck_assert_int_eq(evt_task_spawn(st.loop, reader_fn, NULL, NULL, NULL), 0);
        test_loop_run(st.loop);
        ck_assert_int_eq(st.r, -ETIMEDOUT);
        ck_assert_int_ge(st.woke, st.deadline.at);
        ck_assert_int_lt(st.woke, st.deadline.at + EVT_SEC(1));
        /* Output parameters are written only on success. */
        ck_assert_uint_eq(st.events, NO_EVENTS);
        close_pipe();
        test_loop_free(st.loop);
}
END_TEST

/* EVT_NOW polls: nothing to read times out at once. */
START_TEST(fd_wait_now_polls) {
        int64_t start;

        reset();
        open_pipe();
        st.loop = test_loop_new();
        st.deadline = EVT_NOW;
        ck_assert_int_eq(evt_task_spawn(st.loop, reader_fn, NULL, NULL, NULL), 0);
        start = evt_time_now();
        test_loop_run(st.loop);
        ck_assert_int_eq(st.r, -ETIMEDOUT);
        ck_assert_int_lt(test_ms_since(start), 500);
        ck_assert_uint_eq(st.events, NO_EVENTS);
        close_pipe();
        test_loop_free(st.loop);
}
END_TEST

/* EVT_NOW on a descriptor that is ready reports it. */
START_TEST(fd_wait_now_sees_ready) {
        reset();
        open_pipe();
        ck_assert_int_eq(write(st.fds[1], "x", 1), 1);
        st.loop = test_loop_new();
        st.deadline = EVT_NOW;
        ck_assert_int_eq(evt_task_spawn(st.loop, reader_fn, NULL, NULL, NULL), 0);
        test_loop_run(st.loop);
        ck_assert_int_eq(st.r, 0);
        ck_assert_uint_eq(st.events, EVT_READ);
        ck_assert_int_eq(st.byte, 'x');
        close_pipe();
        test_loop_free(st.loop);
}
END_TEST

static int reader_canceller_fn(void *arg) {
        (void) arg;
        if (evt_sleep(EVT_MSEC(20)) < 0)
                return -1;
        st.cancelled_at = evt_time_now();
        st.r_ctl = evt_task_cancel(st.reader, 0);
        return 0;
}

START_TEST(fd_wait_cancelled) {
        reset();
        open_pipe();
        st.loop = test_loop_new();
        st.deadline = evt_deadline_in(EVT_SEC(10));
        st.reader = test_spawn(st.loop, reader_fn, NULL, "reader", 0);
        ck_assert_int_eq(evt_task_spawn(st.loop, reader_canceller_fn, NULL, NULL, NULL), 0);
        test_loop_run(st.loop);
        ck_assert_int_eq(st.r_ctl, 0);
        ck_assert_int_eq(st.r, -ECANCELED);
        ck_assert_int_ge(st.woke, st.cancelled_at);
        ck_assert_int_lt(st.woke, st.cancelled_at + EVT_SEC(1));
        ck_assert_uint_eq(st.events, NO_EVENTS);
        /* The watcher went with the wait: test_loop_run found none left. */
        evt_task_unref(st.reader);
        close_pipe();
        test_loop_free(st.loop);
}
END_TEST

static struct {
        int r_neg, r_none, r_unknown, r_unknown_mixed, r_closed;
        unsigned events;
} args;

static int args_fn(void *arg) {
        (void) arg;
        args.r_neg = evt_fd_wait(-1, EVT_READ, EVT_FOREVER, &args.events);
        args.r_none = evt_fd_wait(st.fds[0], 0, EVT_FOREVER, &args.events);
        args.r_unknown = evt_fd_wait(st.fds[0], 1u << 4, EVT_FOREVER, &args.events);
        /* Even with a valid bit that would be ready at once. */
        args.r_unknown_mixed = evt_fd_wait(st.fds[1], EVT_WRITE | (1u << 4), EVT_FOREVER, &args.events);
        /* A descriptor that is not open: an error, not libev's assertion. */
        args.r_closed = evt_fd_wait(1000, EVT_READ, EVT_FOREVER, &args.events);
        return 0;
}

START_TEST(fd_wait_args) {
        unsigned events = NO_EVENTS;

        reset();
        memset(&args, 0, sizeof(args));
        args.events = NO_EVENTS;
        open_pipe();
        /* Outside a task. */
        ck_assert_int_eq(evt_fd_wait(st.fds[1], EVT_WRITE, EVT_FOREVER, &events), -EINVAL);
        ck_assert_uint_eq(events, NO_EVENTS);

        st.loop = test_loop_new();
        ck_assert_int_eq(evt_task_spawn(st.loop, args_fn, NULL, NULL, NULL), 0);
        test_loop_run(st.loop);
        ck_assert_int_eq(args.r_neg, -EINVAL);
        ck_assert_int_eq(args.r_none, -EINVAL);
        ck_assert_int_eq(args.r_unknown, -EINVAL);
        ck_assert_int_eq(args.r_unknown_mixed, -EINVAL);
        ck_assert_int_eq(args.r_closed, -EBADF);
        ck_assert_uint_eq(args.events, NO_EVENTS);
        close_pipe();
        test_loop_free(st.loop);
}
END_TEST

/* ---- the pause gate ---- */

/* Pauses the loop while the reader waits, makes the pipe readable, and
 * holds the pause for 50 ms. Runs through the gate (EVT_TASK_NOPAUSE). */
static int pauser_fn(void *arg) {
        struct ev_loop *ev = evt_loop_ev(st.loop);
        evt_loop_stats before, after;
        unsigned it;

        (void) arg;
        if (evt_sleep(EVT_MSEC(10)) < 0)
                return -1;
        st.r_ctl = evt_loop_pause(st.loop);
        st.written_at = evt_time_now();
        if (write(st.fds[1], "z", 1) != 1)
                return -1;
        evt_loop_stats_get(st.loop, &before);
        it = ev_iteration(ev);
        if (evt_sleep(EVT_MSEC(50)) < 0)
                return -1;
        evt_loop_stats_get(st.loop, &after);
        st.iterations_during_pause = ev_iteration(ev) - it;
        st.switches_during_pause = after.switches - before.switches;
        st.resumed_at = evt_time_now();
        /* Still held at this point? */
        st.r2 = st.reader_woke ? -EBUSY : 0;
        return evt_loop_resume(st.loop);
}

/* A reader whose fd becomes readable while the loop is paused is held until
 * the resume. Its readable fd must not make libev spin meanwhile (a
 * level-triggered watcher left active would fire on every iteration). */
START_TEST(fd_wait_held_by_pause) {
        reset();
        open_pipe();
        st.loop = test_loop_new();
        ck_assert_int_eq(evt_task_spawn(st.loop, reader_fn, NULL, NULL, NULL), 0);
        ck_assert_int_eq(evt_task_spawn(st.loop, pauser_fn, NULL,
                                        &(evt_task_opts) { .flags = EVT_TASK_NOPAUSE }, NULL), 0);
        test_loop_run(st.loop);
        ck_assert_int_eq(st.r_ctl, 0);
        ck_assert_int_eq(st.r2, 0);
        ck_assert(!evt_loop_is_paused(st.loop));
        ck_assert_int_eq(st.r, 0);
        ck_assert_uint_eq(st.events, EVT_READ);
        ck_assert_int_eq(st.byte, 'z');
        ck_assert(!st.woke_during_pause);
        ck_assert_int_ge(st.woke, st.resumed_at);
        /* A handful for the pauser's own sleep; a spin makes thousands. */
        ck_assert_uint_lt(st.switches_during_pause, 10);
        ck_assert_uint_lt(st.iterations_during_pause, 100);
        close_pipe();
        test_loop_free(st.loop);
}
END_TEST

/* ---- evt_child_wait ---- */

static struct {
        pid_t pid;
        int r, r2;
        int status, status2;
        evt_deadline deadline;
        int64_t woke;
} ch;

static void ch_reset(void) {
        memset(&ch, 0, sizeof(ch));
        ch.r = ch.r2 = 1;
        ch.status = ch.status2 = -1;
}

static int child_exit_fn(void *arg) {
        (void) arg;
        ch.pid = fork();
        if (ch.pid < 0)
                return -errno;
        if (ch.pid == 0)
                _exit(7);
        /* At once, before any other await point: libev reaps the child as
         * soon as the loop runs, and a status nobody waits for is lost. */
        ch.r = evt_child_wait(ch.pid, evt_deadline_in(EVT_SEC(10)), &ch.status);
        return 0;
}

START_TEST(child_wait_exit_status) {
        evt_loop *loop;

        ch_reset();
        loop = test_loop_new();
        ck_assert_int_eq(evt_task_spawn(loop, child_exit_fn, NULL, NULL, NULL), 0);
        test_loop_run(loop);
        ck_assert_int_gt(ch.pid, 0);
        ck_assert_int_eq(ch.r, 0);
        ck_assert(WIFEXITED(ch.status));
        ck_assert_int_eq(WEXITSTATUS(ch.status), 7);
        test_loop_free(loop);
}
END_TEST

static int child_timeout_fn(void *arg) {
        (void) arg;
        ch.pid = fork();
        if (ch.pid < 0)
                return -errno;
        if (ch.pid == 0) {
                for (;;)
                        pause();
        }
        ch.deadline = evt_deadline_in(EVT_MSEC(50));
        ch.r = evt_child_wait(ch.pid, ch.deadline, &ch.status);
        ch.woke = evt_time_now();
        /* Then kill it, and wait again before any other await point. */
        kill(ch.pid, SIGKILL);
        ch.r2 = evt_child_wait(ch.pid, evt_deadline_in(EVT_SEC(10)), &ch.status2);
        return 0;
}

START_TEST(child_wait_timeout_then_kill) {
        evt_loop *loop;

        ch_reset();
        loop = test_loop_new();
        ck_assert_int_eq(evt_task_spawn(loop, child_timeout_fn, NULL, NULL, NULL), 0);
        test_loop_run(loop);
        ck_assert_int_gt(ch.pid, 0);
        ck_assert_int_eq(ch.r, -ETIMEDOUT);
        ck_assert_int_ge(ch.woke, ch.deadline.at);
        ck_assert_int_eq(ch.status, -1); /* untouched on failure */
        ck_assert_int_eq(ch.r2, 0);
        ck_assert(WIFSIGNALED(ch.status2));
        ck_assert_int_eq(WTERMSIG(ch.status2), SIGKILL);
        test_loop_free(loop);
}
END_TEST

static int child_other_loop_fn(void *arg) {
        (void) arg;
        ch.r = evt_child_wait(getpid(), EVT_NOW, &ch.status);
        return 0;
}

/* Only libev's default loop can wait for children. */
START_TEST(child_wait_non_default_loop) {
        struct ev_loop *ev2 = ev_loop_new(EVFLAG_AUTO);
        evt_loop *l2 = NULL;

        ch_reset();
        ck_assert_ptr_nonnull(ev2);
        ck_assert_int_eq(evt_loop_new(ev2, NULL, &l2), 0);
        ck_assert_int_eq(evt_task_spawn(l2, child_other_loop_fn, NULL, NULL, NULL), 0);
        test_loop_run(l2);
        ck_assert_int_eq(ch.r, -EOPNOTSUPP);
        ck_assert_int_eq(ch.status, -1);
        test_loop_free(l2);
        ev_loop_destroy(ev2);
}
END_TEST

static int child_args_fn(void *arg) {
        (void) arg;
        ch.r = evt_child_wait(0, EVT_FOREVER, &ch.status);
        ch.r2 = evt_child_wait(-1, EVT_FOREVER, &ch.status);
        return 0;
}

START_TEST(child_wait_args) {
        evt_loop *loop;
        int status = -1;

        ch_reset();
        /* Outside a task. */
        ck_assert_int_eq(evt_child_wait(getpid(), EVT_FOREVER, &status), -EINVAL);
        ck_assert_int_eq(evt_child_wait(0, EVT_FOREVER, &status), -EINVAL);
        ck_assert_int_eq(status, -1);

        loop = test_loop_new();
        ck_assert_int_eq(evt_task_spawn(loop, child_args_fn, NULL, NULL, NULL), 0);
        test_loop_run(loop);
        ck_assert_int_eq(ch.r, -EINVAL);
        ck_assert_int_eq(ch.r2, -EINVAL);
        ck_assert_int_eq(ch.status, -1);
        test_loop_free(loop);
}
END_TEST

Suite *evt_test_suite(void) {
        Suite *s = suite_create("io");
        TCase *tc;

        tc = tcase_create("fd");
        tcase_add_test(tc, fd_wait_read);
        tcase_add_test(tc, fd_wait_read_ready);
        tcase_add_test(tc, fd_wait_write_ready);
        suite_add_tcase(s, tc);

        tc = tcase_create("fd_deadline");
        tcase_add_test(tc, fd_wait_deadline);
        tcase_add_test(tc, fd_wait_now_polls);
        tcase_add_test(tc, fd_wait_now_sees_ready);
        suite_add_tcase(s, tc);

        tc = tcase_create("fd_cancel");
        tcase_add_test(tc, fd_wait_cancelled);
        suite_add_tcase(s, tc);

        tc = tcase_create("fd_args");
        tcase_add_test(tc, fd_wait_args);
        suite_add_tcase(s, tc);

        tc = tcase_create("fd_pause");
        tcase_add_test(tc, fd_wait_held_by_pause);
        suite_add_tcase(s, tc);

        tc = tcase_create("child");
        tcase_add_test(tc, child_wait_exit_status);
        tcase_add_test(tc, child_wait_timeout_then_kill);
        suite_add_tcase(s, tc);

        tc = tcase_create("child_args");
        tcase_add_test(tc, child_wait_non_default_loop);
        tcase_add_test(tc, child_wait_args);
        suite_add_tcase(s, tc);
        return s;
}
