/* Layer 3: events, a flag that tasks wait for. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define N_WAITERS 4

/* Tasks run inside evt_loop_run: they record what they saw here, and the
 * test body asserts on it afterwards. Reset by every test (under CK_FORK=no
 * all tests share one process). */
static struct {
        evt_loop *loop;
        evt_event *ev;
        evt_task *task[N_WAITERS];
        int r[N_WAITERS];
        int64_t woke[N_WAITERS];
        uint64_t switches[N_WAITERS]; /* switches seen inside a wait */
        bool set_seen[N_WAITERS];     /* evt_event_is_set after the wait */
        int n_woke;
        int first;                    /* the first waiter to wake */
        int64_t set_at;
        evt_deadline deadline;
        int r_ctl;
} st;

static void reset(void) {
        memset(&st, 0, sizeof(st));
        for (int i = 0; i < N_WAITERS; i++)
                st.r[i] = 1;
        st.first = -1;
        st.r_ctl = 1;
        st.deadline = EVT_FOREVER;
}

static uint64_t switches(void) {
        evt_loop_stats s;

        ck_assert_int_eq(evt_loop_stats_get(st.loop, &s), 0);
        return s.switches;
}

/* Waits with st.deadline and records the result. */
static int waiter_fn(void *arg) {
        int i = (int) (intptr_t) arg;
        uint64_t before = switches();

        st.r[i] = evt_event_wait(st.ev, st.deadline);
        st.woke[i] = evt_time_now();
        st.switches[i] = switches() - before;
        st.set_seen[i] = evt_event_is_set(st.ev);
        st.n_woke++;
        return st.r[i];
}

static void spawn_waiters(int n) {
        for (int i = 0; i < n; i++)
                st.task[i] = test_spawn(st.loop, waiter_fn, (void *) (intptr_t) i, "waiter", 0);
}

static void unref_waiters(int n) {
        for (int i = 0; i < n; i++)
                evt_task_unref(st.task[i]);
}

/* Sets the event after 20 ms, when every waiter is blocked. */
static int setter_fn(void *arg) {
        (void) arg;
        if (evt_sleep(EVT_MSEC(20)) < 0)
                return -1;
        st.set_at = evt_time_now();
        st.r_ctl = evt_event_set(st.ev);
        return 0;
}

/* ---- set before and after a wait ---- */

START_TEST(event_set_before_wait) {
        reset();
        st.loop = test_loop_new();
        ck_assert_int_eq(evt_event_new(st.loop, &st.ev), 0);
        ck_assert(!evt_event_is_set(st.ev));
        ck_assert_int_eq(evt_event_set(st.ev), 0);
        ck_assert(evt_event_is_set(st.ev));
        spawn_waiters(2);
        test_loop_run(st.loop);
        for (int i = 0; i < 2; i++) {
                ck_assert_int_eq(st.r[i], 0);
                /* At once: the task never left the CPU. */
                ck_assert_uint_eq(st.switches[i], 0);
        }
        /* Waiting does not consume the flag. */
        ck_assert(evt_event_is_set(st.ev));
        evt_event_free(st.ev);
        unref_waiters(2);
        test_loop_free(st.loop);
}
END_TEST

START_TEST(event_set_wakes_every_waiter) {
        reset();
        st.loop = test_loop_new();
        ck_assert_int_eq(evt_event_new(st.loop, &st.ev), 0);
        spawn_waiters(N_WAITERS);
        ck_assert_int_eq(evt_task_spawn(st.loop, setter_fn, NULL, NULL, NULL), 0);
        test_loop_run(st.loop);
        ck_assert_int_eq(st.r_ctl, 0);
        ck_assert_int_eq(st.n_woke, N_WAITERS);
        for (int i = 0; i < N_WAITERS; i++) {
                ck_assert_int_eq(st.r[i], 0);
                ck_assert_int_ge(st.woke[i], st.set_at);
                ck_assert_uint_ge(st.switches[i], 1); /* it did block */
                ck_assert(st.set_seen[i]);
        }
        evt_event_free(st.ev);
        unref_waiters(N_WAITERS);
        test_loop_free(st.loop);
}
END_TEST

/* ---- clear ---- */

static struct {
        int r1, r2;
        bool set_after_clear;
        int64_t set2_at, woke2;
} clr;

static int clearing_waiter_fn(void *arg) {
        (void) arg;
        clr.r1 = evt_event_wait(st.ev, EVT_FOREVER);
        evt_event_clear(st.ev);
        clr.set_after_clear = evt_event_is_set(st.ev);
        /* Cleared: this wait blocks until the next set. */
        clr.r2 = evt_event_wait(st.ev, EVT_FOREVER);
        clr.woke2 = evt_time_now();
        return 0;
}

static int double_setter_fn(void *arg) {
        (void) arg;
        if (evt_sleep(EVT_MSEC(10)) < 0)
                return -1;
        evt_event_set(st.ev);
        if (evt_sleep(EVT_MSEC(30)) < 0)
                return -1;
        clr.set2_at = evt_time_now();
        evt_event_set(st.ev);
        return 0;
}

START_TEST(event_clear_blocks_again) {
        reset();
        memset(&clr, 0, sizeof(clr));
        clr.r1 = clr.r2 = 1;
        clr.set_after_clear = true;
        st.loop = test_loop_new();
        ck_assert_int_eq(evt_event_new(st.loop, &st.ev), 0);
        ck_assert_int_eq(evt_task_spawn(st.loop, clearing_waiter_fn, NULL, NULL, NULL), 0);
        ck_assert_int_eq(evt_task_spawn(st.loop, double_setter_fn, NULL, NULL, NULL), 0);
        test_loop_run(st.loop);
        ck_assert_int_eq(clr.r1, 0);
        ck_assert(!clr.set_after_clear);
        ck_assert_int_eq(clr.r2, 0);
        ck_assert_int_ne(clr.set2_at, 0);
        ck_assert_int_ge(clr.woke2, clr.set2_at);
        evt_event_free(st.ev);
        test_loop_free(st.loop);
}
END_TEST

/* Clearing a set event that nobody waits for; clearing a clear one. */
START_TEST(event_clear_is_set) {
        evt_loop *loop = test_loop_new();
        evt_event *e;

        ck_assert_int_eq(evt_event_new(loop, &e), 0);
        ck_assert_int_eq(evt_event_clear(e), 0);
        ck_assert(!evt_event_is_set(e));
        ck_assert_int_eq(evt_event_set(e), 0);
        ck_assert_int_eq(evt_event_set(e), 0);
        ck_assert(evt_event_is_set(e));
        ck_assert_int_eq(evt_event_clear(e), 0);
        ck_assert(!evt_event_is_set(e));
        evt_event_free(e);
        test_loop_free(loop);
}
END_TEST

/* ---- deadlines ---- */

START_TEST(event_wait_deadline) {
        reset();
        st.loop = test_loop_new();
        ck_assert_int_eq(evt_event_new(st.loop, &st.ev), 0);
        st.deadline = evt_deadline_in(EVT_MSEC(30));
        spawn_waiters(2);
        test_loop_run(st.loop);
        for (int i = 0; i < 2; i++) {
                ck_assert_int_eq(st.r[i], -ETIMEDOUT);
                ck_assert_int_ge(st.woke[i], st.deadline.at);
                ck_assert_int_lt(st.woke[i], st.deadline.at + EVT_SEC(1));
        }
        evt_event_free(st.ev);
        unref_waiters(2);
        test_loop_free(st.loop);
}
END_TEST

/* EVT_NOW polls: an unset event times out without the task ever blocking. */
START_TEST(event_wait_now_polls) {
        int64_t start;

        reset();
        st.loop = test_loop_new();
        ck_assert_int_eq(evt_event_new(st.loop, &st.ev), 0);
        st.deadline = EVT_NOW;
        spawn_waiters(1);
        start = evt_time_now();
        test_loop_run(st.loop);
        ck_assert_int_eq(st.r[0], -ETIMEDOUT);
        ck_assert_uint_eq(st.switches[0], 0);
        ck_assert_int_lt(test_ms_since(start), 500);
        evt_event_free(st.ev);
        unref_waiters(1);
        test_loop_free(st.loop);
}
END_TEST

/* ---- freeing an event ---- */

static int freer_fn(void *arg) {
        (void) arg;
        if (evt_sleep(EVT_MSEC(10)) < 0)
                return -1;
        st.set_at = evt_time_now();
        evt_event_free(st.ev);
        st.ev = NULL;
        return 0;
}

START_TEST(event_free_wakes_waiters) {
        reset();
        st.loop = test_loop_new();
        ck_assert_int_eq(evt_event_new(st.loop, &st.ev), 0);
        /* A deadline far off: -EIDRM must come before it. */
        st.deadline = evt_deadline_in(EVT_SEC(10));
        spawn_waiters(N_WAITERS);
        ck_assert_int_eq(evt_task_spawn(st.loop, freer_fn, NULL, NULL, NULL), 0);
        test_loop_run(st.loop);
        ck_assert_ptr_null(st.ev);
        for (int i = 0; i < N_WAITERS; i++) {
                int result = 0;

                ck_assert_int_eq(st.r[i], -EIDRM);
                ck_assert_int_ge(st.woke[i], st.set_at);
                ck_assert_int_lt(st.woke[i], st.set_at + EVT_SEC(1));
                ck_assert_int_eq(evt_task_result(st.task[i], &result), 0);
                ck_assert_int_eq(result, -EIDRM);
        }
        unref_waiters(N_WAITERS);
        test_loop_free(st.loop);
}
END_TEST

/* The first waiter to wake frees the event that woke it while the others
 * are still queued to run: the callback that destroys its own watcher.
 * They must still see the set, and nothing may touch the freed event
 * (valgrind and ASan runs check that part). */
static int freeing_waiter_fn(void *arg) {
        int i = (int) (intptr_t) arg;

        st.r[i] = evt_event_wait(st.ev, EVT_FOREVER);
        st.woke[i] = evt_time_now();
        if (st.first < 0) {
                st.first = i;
                evt_event_free(st.ev);
                st.ev = NULL;
        }
        st.n_woke++;
        return 0;
}

START_TEST(event_waiter_frees_event) {
        reset();
        st.loop = test_loop_new();
        ck_assert_int_eq(evt_event_new(st.loop, &st.ev), 0);
        for (int i = 0; i < N_WAITERS; i++)
                st.task[i] = test_spawn(st.loop, freeing_waiter_fn, (void *) (intptr_t) i, "waiter", 0);
        ck_assert_int_eq(evt_task_spawn(st.loop, setter_fn, NULL, NULL, NULL), 0);
        test_loop_run(st.loop);
        ck_assert_int_eq(st.first, 0);
        ck_assert_ptr_null(st.ev);
        ck_assert_int_eq(st.n_woke, N_WAITERS);
        for (int i = 0; i < N_WAITERS; i++) {
                ck_assert_int_eq(st.r[i], 0);
                ck_assert_int_ge(st.woke[i], st.set_at);
        }
        unref_waiters(N_WAITERS);
        test_loop_free(st.loop);
}
END_TEST

/* ---- argument errors ---- */

START_TEST(event_args) {
        evt_loop *loop = test_loop_new();
        evt_event *e = (evt_event *) &e;

        ck_assert_int_eq(evt_event_new(NULL, &e), -EINVAL);
        ck_assert_ptr_eq(e, (evt_event *) &e); /* untouched on failure */
        ck_assert_int_eq(evt_event_new(loop, NULL), -EINVAL);
        ck_assert_int_eq(evt_event_set(NULL), -EINVAL);
        ck_assert_int_eq(evt_event_clear(NULL), -EINVAL);
        ck_assert(!evt_event_is_set(NULL));
        evt_event_free(NULL);

        /* Outside a task, set or not. */
        ck_assert_int_eq(evt_event_new(loop, &e), 0);
        ck_assert_int_eq(evt_event_wait(e, EVT_FOREVER), -EINVAL);
        ck_assert_int_eq(evt_event_set(e), 0);
        ck_assert_int_eq(evt_event_wait(e, EVT_FOREVER), -EINVAL);
        evt_event_free(e);
        test_loop_free(loop);
}
END_TEST

static struct {
        evt_event *other;       /* of another loop */
        int r_null, r_other, r_other_set;
} args;

static int args_fn(void *arg) {
        (void) arg;
        args.r_null = evt_event_wait(NULL, EVT_FOREVER);
        args.r_other = evt_event_wait(args.other, EVT_FOREVER);
        /* Not even when it is set and the wait would not block. */
        evt_event_set(args.other);
        args.r_other_set = evt_event_wait(args.other, EVT_FOREVER);
        return 0;
}

START_TEST(event_wait_args_in_task) {
        struct ev_loop *ev2 = ev_loop_new(EVFLAG_AUTO);
        evt_loop *loop = test_loop_new(), *l2 = NULL;

        memset(&args, 0, sizeof(args));
        ck_assert_ptr_nonnull(ev2);
        ck_assert_int_eq(evt_loop_new(ev2, NULL, &l2), 0);
        ck_assert_int_eq(evt_event_new(l2, &args.other), 0);
        ck_assert_int_eq(evt_task_spawn(loop, args_fn, NULL, NULL, NULL), 0);
        test_loop_run(loop);
        ck_assert_int_eq(args.r_null, -EINVAL);
        ck_assert_int_eq(args.r_other, -EINVAL);
        ck_assert_int_eq(args.r_other_set, -EINVAL);
        evt_event_free(args.other);
        test_loop_free(loop);
        evt_loop_free(l2);
        ev_loop_destroy(ev2);
}
END_TEST

/* ---- cancellation ---- */

/* Cancels waiter 0 after 10 ms and lets go of it. With `same_step`, sets
 * the event right away, when the cancelled waiter is woken but has not run
 * yet; else 10 ms later, when it has ended and, with no reference left,
 * been freed: if it were still on the list of waiters, that set would
 * touch freed memory (which the valgrind and ASan runs catch). */
static int cancel_then_set_fn(void *arg) {
        bool same_step = arg != NULL;

        if (evt_sleep(EVT_MSEC(10)) < 0)
                return -1;
        st.r_ctl = evt_task_cancel(st.task[0], 0);
        evt_task_unref(st.task[0]);
        st.task[0] = NULL;
        if (!same_step && evt_sleep(EVT_MSEC(10)) < 0)
                return -1;
        st.set_at = evt_time_now();
        evt_event_set(st.ev);
        return 0;
}

static void run_cancelled_waiter(bool same_step) {
        reset();
        st.loop = test_loop_new();
        ck_assert_int_eq(evt_event_new(st.loop, &st.ev), 0);
        spawn_waiters(2);
        ck_assert_int_eq(evt_task_spawn(st.loop, cancel_then_set_fn, same_step ? &st : NULL, NULL, NULL), 0);
        test_loop_run(st.loop);
        ck_assert_int_eq(st.r_ctl, 0);
        /* The cancel came first: a set must not turn it into a success. */
        ck_assert_int_eq(st.r[0], -ECANCELED);
        ck_assert_int_lt(st.woke[0], st.set_at + EVT_SEC(1));
        if (!same_step)
                ck_assert_int_lt(st.woke[0], st.set_at);
        /* The other waiter still gets the set. */
        ck_assert_int_eq(st.r[1], 0);
        ck_assert_int_ge(st.woke[1], st.set_at);
        ck_assert_int_eq(st.n_woke, 2);
        evt_event_free(st.ev);
        unref_waiters(2);
        test_loop_free(st.loop);
}

START_TEST(event_waiter_cancelled) {
        run_cancelled_waiter(false);
}
END_TEST

START_TEST(event_waiter_cancelled_then_set) {
        run_cancelled_waiter(true);
}
END_TEST

/* A task cancelled before it waits never blocks, even on a set event. */
static int cancelled_self_fn(void *arg) {
        (void) arg;
        evt_task_cancel(evt_task_current(), 0);
        st.r[0] = evt_event_wait(st.ev, EVT_FOREVER);
        st.r[1] = evt_event_wait(st.ev, EVT_NOW);
        return 0;
}

START_TEST(event_wait_when_cancelled) {
        reset();
        st.loop = test_loop_new();
        ck_assert_int_eq(evt_event_new(st.loop, &st.ev), 0);
        ck_assert_int_eq(evt_event_set(st.ev), 0);
        ck_assert_int_eq(evt_task_spawn(st.loop, cancelled_self_fn, NULL, NULL, NULL), 0);
        test_loop_run(st.loop);
        ck_assert_int_eq(st.r[0], -ECANCELED);
        ck_assert_int_eq(st.r[1], -ECANCELED);
        evt_event_free(st.ev);
        test_loop_free(st.loop);
}
END_TEST

Suite *evt_test_suite(void) {
        Suite *s = suite_create("event");
        TCase *tc;

        tc = tcase_create("set");
        tcase_add_test(tc, event_set_before_wait);
        tcase_add_test(tc, event_set_wakes_every_waiter);
        suite_add_tcase(s, tc);

        tc = tcase_create("clear");
        tcase_add_test(tc, event_clear_blocks_again);
        tcase_add_test(tc, event_clear_is_set);
        suite_add_tcase(s, tc);

        tc = tcase_create("deadline");
        tcase_add_test(tc, event_wait_deadline);
        tcase_add_test(tc, event_wait_now_polls);
        suite_add_tcase(s, tc);

        tc = tcase_create("free");
        tcase_add_test(tc, event_free_wakes_waiters);
        tcase_add_test(tc, event_waiter_frees_event);
        suite_add_tcase(s, tc);

        tc = tcase_create("args");
        tcase_add_test(tc, event_args);
        tcase_add_test(tc, event_wait_args_in_task);
        suite_add_tcase(s, tc);

        tc = tcase_create("cancel");
        tcase_add_test(tc, event_waiter_cancelled);
        tcase_add_test(tc, event_waiter_cancelled_then_set);
        tcase_add_test(tc, event_wait_when_cancelled);
        suite_add_tcase(s, tc);
        return s;
}
