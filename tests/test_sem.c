/* Layer 3: counting semaphores, permits handed out in FIFO order. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define N 4
#define N_WORKERS 1000
#define PERMITS 2

static struct {
        evt_loop *loop;
        evt_sem *sem;
        evt_task *task[N];
        int r[N];
        int order[N];
        int n_order;
        int inside, most_inside; /* tasks holding a permit */
} st;

static void reset(size_t permits) {
        memset(&st, 0, sizeof(st));
        for (int i = 0; i < N; i++)
                st.r[i] = 1;
        st.loop = test_loop_new();
        ck_assert_int_eq(evt_sem_new(st.loop, permits, &st.sem), 0);
}

static void finish(void) {
        for (int i = 0; i < N; i++)
                evt_task_unref(st.task[i]);
        evt_sem_free(st.sem);
        test_loop_free(st.loop);
}

/* Takes a permit, notes its turn, keeps it (the test releases). */
static int taker_fn(void *arg) {
        int i = (int) (intptr_t) arg;

        st.r[i] = evt_sem_acquire(st.sem, EVT_FOREVER);
        if (st.r[i] == 0)
                st.order[st.n_order++] = i;
        return st.r[i];
}

static bool await_waiting(int i) {
        return POLL_UNTIL(test_is_waiting(st.task[i]));
}

/* Waiters take permits in the order they came; a release outside any task
 * (here, the test body between runs) wakes exactly one. A waiter cancelled
 * while it waits, or handed a permit and cancelled before it ran, takes
 * none: the permit goes on to the next. */
static int line_ctl(void *arg) {
        (void) arg;
        for (int i = 0; i < N; i++) {
                st.task[i] = test_spawn(st.loop, taker_fn, (void *) (intptr_t) i, "taker", 0);
                if (!await_waiting(i))
                        return -1;
        }
        evt_task_cancel(st.task[0], 0);
        if (evt_sem_release(st.sem) < 0) /* handed to 1 ... */
                return -1;
        evt_task_cancel(st.task[1], 0);  /* ... cancelled before it runs */
        if (evt_sem_release(st.sem) < 0) /* handed to 3 once 2 has it */
                return -1;
        return 0;
}

START_TEST(sem_fifo_and_cancel) {
        reset(0);
        evt_task_unref(test_spawn(st.loop, line_ctl, NULL, "ctl", 0));
        test_loop_run(st.loop);
        ck_assert_int_eq(st.r[0], -ECANCELED);
        ck_assert_int_eq(st.r[1], -ECANCELED);
        ck_assert_int_eq(st.r[2], 0);
        ck_assert_int_eq(st.r[3], 0);
        ck_assert_int_eq(st.n_order, 2);
        ck_assert_int_eq(st.order[0], 2);
        ck_assert_int_eq(st.order[1], 3);
        ck_assert_uint_eq(evt_sem_value(st.sem), 0);
        finish();
}
END_TEST

/* A release from outside a task, with nobody waiting, counts. */
START_TEST(sem_release_outside_task) {
        reset(0);
        ck_assert_int_eq(evt_sem_release(st.sem), 0);
        ck_assert_uint_eq(evt_sem_value(st.sem), 1);
        st.task[0] = test_spawn(st.loop, taker_fn, (void *) 0, "taker", 0);
        test_loop_run(st.loop);
        ck_assert_int_eq(st.r[0], 0);
        ck_assert_uint_eq(evt_sem_value(st.sem), 0);
        finish();
}
END_TEST

/* 1,000 tasks through a semaphore of 2: never more than 2 inside, and each
 * wakes once; built from events this took hundreds of thousands of
 * switches where a few thousand are needed. */
static int worker_fn(void *arg) {
        (void) arg;
        if (evt_sem_acquire(st.sem, EVT_FOREVER) < 0)
                return -1;
        if (++st.inside > st.most_inside)
                st.most_inside = st.inside;
        evt_yield();
        st.inside--;
        return evt_sem_release(st.sem);
}

START_TEST(sem_bounds_and_switches) {
        reset(PERMITS);
        for (int i = 0; i < N_WORKERS; i++)
                ck_assert_int_eq(evt_task_spawn(st.loop, worker_fn, NULL, NULL, NULL), 0);
        test_loop_run(st.loop);
        ck_assert_int_eq(st.most_inside, PERMITS);
        ck_assert_uint_le(test_switches(st.loop), 3 * N_WORKERS);
        ck_assert_uint_eq(evt_sem_value(st.sem), PERMITS);
        finish();
}
END_TEST

static int deadline_fn(void *arg) {
        (void) arg;
        st.r[0] = evt_sem_acquire(st.sem, evt_deadline_in(EVT_MSEC(20)));
        st.r[1] = evt_sem_acquire(st.sem, EVT_NOW);
        return 0;
}

START_TEST(sem_deadline) {
        reset(0);
        evt_task_unref(test_spawn(st.loop, deadline_fn, NULL, "deadline", 0));
        test_loop_run(st.loop);
        ck_assert_int_eq(st.r[0], -ETIMEDOUT);
        ck_assert_int_eq(st.r[1], -ETIMEDOUT);
        finish();
}
END_TEST

static int free_ctl(void *arg) {
        (void) arg;
        st.task[0] = test_spawn(st.loop, taker_fn, (void *) 0, "taker", 0);
        if (!await_waiting(0))
                return -1;
        evt_sem_free(st.sem);
        st.sem = NULL;
        return 0;
}

START_TEST(sem_free_wakes_waiters) {
        reset(0);
        evt_task_unref(test_spawn(st.loop, free_ctl, NULL, "ctl", 0));
        test_loop_run(st.loop);
        ck_assert_int_eq(st.r[0], -EIDRM);
        finish();
}
END_TEST

static int args_fn(void *arg) {
        evt_sem *other = arg;

        st.r[0] = evt_sem_acquire(NULL, EVT_FOREVER);
        st.r[1] = evt_sem_acquire(other, EVT_FOREVER);
        return 0;
}

START_TEST(sem_args) {
        evt_sem *s = (evt_sem *) &s, *other;
        evt_loop *l2 = test_other_loop_new();

        reset(SIZE_MAX);
        ck_assert_int_eq(evt_sem_release(st.sem), -EOVERFLOW);
        ck_assert_int_eq(evt_sem_new(NULL, 1, &s), -EINVAL);
        ck_assert_int_eq(evt_sem_new(st.loop, 1, NULL), -EINVAL);
        ck_assert_ptr_eq(s, (evt_sem *) &s);
        ck_assert_int_eq(evt_sem_release(NULL), -EINVAL);
        ck_assert_uint_eq(evt_sem_value(NULL), 0);
        evt_sem_free(NULL);
        ck_assert_int_eq(evt_sem_new(l2, 1, &other), 0);
        evt_task_unref(test_spawn(st.loop, args_fn, other, "args", 0));
        test_loop_run(st.loop);
        ck_assert_int_eq(st.r[0], -EINVAL);
        ck_assert_int_eq(st.r[1], -EINVAL);
        ck_assert_uint_eq(evt_sem_value(other), 1);
        evt_sem_free(other);
        test_other_loop_free(l2);
        finish();
}
END_TEST

Suite *evt_test_suite(void) {
        Suite *s = suite_create("sem");
        TCase *tc = tcase_create("sem");

        tcase_add_test(tc, sem_fifo_and_cancel);
        tcase_add_test(tc, sem_release_outside_task);
        tcase_add_test(tc, sem_bounds_and_switches);
        tcase_add_test(tc, sem_deadline);
        tcase_add_test(tc, sem_free_wakes_waiters);
        tcase_add_test(tc, sem_args);
        suite_add_tcase(s, tc);
        return s;
}
