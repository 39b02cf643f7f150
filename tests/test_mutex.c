/* Layer 3: mutexes, handed to waiters one at a time in FIFO order. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define N 5
#define N_CONTENDERS 200

static struct {
        evt_loop *loop;
        evt_mutex *m;
        evt_task *task[N];
        int r[N];
        int order[N];           /* who got the mutex, in order */
        int n_order;
        evt_deadline deadline;
        bool holding;           /* a task is between lock and unlock */
        bool overlap;           /* two were at once */
} st;

static void reset(void) {
        memset(&st, 0, sizeof(st));
        for (int i = 0; i < N; i++)
                st.r[i] = 1;
        st.deadline = EVT_FOREVER;
        st.loop = test_loop_new();
        ck_assert_int_eq(evt_mutex_new(st.loop, &st.m), 0);
}

static void finish(void) {
        for (int i = 0; i < N; i++)
                evt_task_unref(st.task[i]);
        evt_mutex_free(st.m);
        test_loop_free(st.loop);
}

/* Locks, notes its turn, yields while it holds the lock, unlocks. */
static int locker_fn(void *arg) {
        int i = (int) (intptr_t) arg;

        st.r[i] = evt_mutex_lock(st.m, st.deadline);
        if (st.r[i] < 0)
                return st.r[i];
        if (st.holding)
                st.overlap = true;
        st.holding = true;
        st.order[st.n_order++] = i;
        evt_yield();
        st.holding = false;
        return evt_mutex_unlock(st.m);
}

static bool await_waiting(int i) {
        return POLL_UNTIL(test_is_waiting(st.task[i]));
}

/* Waiters get the mutex in the order they came; one holds it at a time. */
static int fifo_ctl(void *arg) {
        (void) arg;
        if (evt_mutex_lock(st.m, EVT_FOREVER) < 0)
                return -1;
        for (int i = 0; i < N; i++) {
                st.task[i] = test_spawn(st.loop, locker_fn, (void *) (intptr_t) i, "locker", 0);
                if (!await_waiting(i))
                        return -1;
        }
        return evt_mutex_unlock(st.m);
}

START_TEST(mutex_fifo) {
        reset();
        evt_task_unref(test_spawn(st.loop, fifo_ctl, NULL, "ctl", 0));
        test_loop_run(st.loop);
        ck_assert(!st.overlap);
        ck_assert_int_eq(st.n_order, N);
        for (int i = 0; i < N; i++) {
                ck_assert_int_eq(st.r[i], 0);
                ck_assert_int_eq(st.order[i], i);
        }
        ck_assert_ptr_null(evt_mutex_owner(st.m));
        finish();
}
END_TEST

/* Relocking is -EDEADLK; unlocking a mutex one does not hold is -EPERM. */
static int misuse_fn(void *arg) {
        (void) arg;
        st.r[0] = evt_mutex_unlock(st.m);
        if (evt_mutex_lock(st.m, EVT_FOREVER) < 0)
                return -1;
        st.r[1] = evt_mutex_lock(st.m, EVT_FOREVER);
        st.r[2] = evt_mutex_owner(st.m) == evt_task_current();
        return evt_mutex_unlock(st.m);
}

START_TEST(mutex_misuse) {
        reset();
        evt_task_unref(test_spawn(st.loop, misuse_fn, NULL, "misuse", 0));
        test_loop_run(st.loop);
        ck_assert_int_eq(st.r[0], -EPERM);
        ck_assert_int_eq(st.r[1], -EDEADLK);
        ck_assert_int_eq(st.r[2], 1);
        ck_assert_int_eq(evt_mutex_unlock(st.m), -EPERM); /* outside a task */
        finish();
}
END_TEST

/* A waiter cancelled while it waits, or handed the mutex and cancelled
 * before it ran, never holds it: it goes to the next in line. A waiter
 * whose deadline passes leaves the line too. */
static int cancel_ctl(void *arg) {
        (void) arg;
        if (evt_mutex_lock(st.m, EVT_FOREVER) < 0)
                return -1;
        for (int i = 0; i < 4; i++) {
                st.task[i] = test_spawn(st.loop, locker_fn, (void *) (intptr_t) i, "locker", 0);
                if (!await_waiting(i))
                        return -1;
        }
        evt_task_cancel(st.task[0], 0);         /* while waiting */
        if (evt_mutex_unlock(st.m) < 0)         /* handed to 1 ... */
                return -1;
        evt_task_cancel(st.task[1], 0);         /* ... who is cancelled first */
        return 0;
}

START_TEST(mutex_cancelled_waiter_takes_nothing) {
        reset();
        evt_task_unref(test_spawn(st.loop, cancel_ctl, NULL, "ctl", 0));
        test_loop_run(st.loop);
        ck_assert_int_eq(st.r[0], -ECANCELED);
        ck_assert_int_eq(st.r[1], -ECANCELED);
        ck_assert_int_eq(st.r[2], 0);
        ck_assert_int_eq(st.r[3], 0);
        ck_assert_int_eq(st.n_order, 2);
        ck_assert_int_eq(st.order[0], 2);
        ck_assert_int_eq(st.order[1], 3);
        finish();
}
END_TEST

static int deadline_ctl(void *arg) {
        (void) arg;
        if (evt_mutex_lock(st.m, EVT_FOREVER) < 0)
                return -1;
        st.deadline = evt_deadline_in(EVT_MSEC(20));
        st.task[0] = test_spawn(st.loop, locker_fn, (void *) 0, "locker", 0);
        if (evt_task_join(st.task[0], EVT_FOREVER, NULL) < 0)
                return -1;
        st.r[1] = evt_mutex_owner(st.m) == evt_task_current();
        return evt_mutex_unlock(st.m);
}

START_TEST(mutex_deadline) {
        reset();
        evt_task_unref(test_spawn(st.loop, deadline_ctl, NULL, "ctl", 0));
        test_loop_run(st.loop);
        ck_assert_int_eq(st.r[0], -ETIMEDOUT);
        ck_assert_int_eq(st.r[1], 1);
        finish();
}
END_TEST

static int free_ctl(void *arg) {
        (void) arg;
        if (evt_mutex_lock(st.m, EVT_FOREVER) < 0)
                return -1;
        st.task[0] = test_spawn(st.loop, locker_fn, (void *) 0, "locker", 0);
        if (!await_waiting(0))
                return -1;
        evt_mutex_free(st.m);
        st.m = NULL;
        return 0;
}

START_TEST(mutex_free_wakes_waiters) {
        reset();
        evt_task_unref(test_spawn(st.loop, free_ctl, NULL, "ctl", 0));
        test_loop_run(st.loop);
        ck_assert_int_eq(st.r[0], -EIDRM);
        finish();
}
END_TEST

/* Contention costs a switch per handoff, not a wake-up of every waiter. */
static int contender_fn(void *arg) {
        int *n = arg;

        if (evt_mutex_lock(st.m, EVT_FOREVER) < 0)
                return -1;
        (*n)++;
        evt_yield();
        return evt_mutex_unlock(st.m);
}

START_TEST(mutex_contention_switches) {
        int n = 0;

        reset();
        for (int i = 0; i < N_CONTENDERS; i++)
                ck_assert_int_eq(evt_task_spawn(st.loop, contender_fn, &n, NULL, NULL), 0);
        test_loop_run(st.loop);
        ck_assert_int_eq(n, N_CONTENDERS);
        /* Each task: its first step, the yield, and one wake-up at most. */
        ck_assert_uint_le(test_switches(st.loop), 3 * N_CONTENDERS);
        finish();
}
END_TEST

static int args_fn(void *arg) {
        evt_mutex *other = arg;

        st.r[0] = evt_mutex_lock(NULL, EVT_FOREVER);
        st.r[1] = evt_mutex_lock(other, EVT_FOREVER);
        return 0;
}

START_TEST(mutex_args) {
        evt_mutex *m = (evt_mutex *) &m, *other;
        evt_loop *l2 = test_other_loop_new();

        reset();
        ck_assert_int_eq(evt_mutex_new(NULL, &m), -EINVAL);
        ck_assert_int_eq(evt_mutex_new(st.loop, NULL), -EINVAL);
        ck_assert_ptr_eq(m, (evt_mutex *) &m);
        ck_assert_int_eq(evt_mutex_unlock(NULL), -EINVAL);
        ck_assert_ptr_null(evt_mutex_owner(NULL));
        evt_mutex_free(NULL);
        ck_assert_int_eq(evt_mutex_new(l2, &other), 0);
        evt_task_unref(test_spawn(st.loop, args_fn, other, "args", 0));
        test_loop_run(st.loop);
        ck_assert_int_eq(st.r[0], -EINVAL);
        ck_assert_int_eq(st.r[1], -EINVAL);
        evt_mutex_free(other);
        test_other_loop_free(l2);
        finish();
}
END_TEST

Suite *evt_test_suite(void) {
        Suite *s = suite_create("mutex");
        TCase *tc = tcase_create("mutex");

        tcase_add_test(tc, mutex_fifo);
        tcase_add_test(tc, mutex_misuse);
        tcase_add_test(tc, mutex_cancelled_waiter_takes_nothing);
        tcase_add_test(tc, mutex_deadline);
        tcase_add_test(tc, mutex_free_wakes_waiters);
        tcase_add_test(tc, mutex_contention_switches);
        tcase_add_test(tc, mutex_args);
        suite_add_tcase(s, tc);
        return s;
}
