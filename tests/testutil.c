#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

evt_loop *test_loop_new(void) {
        evt_loop *loop = NULL;
        int r = evt_loop_new(NULL, NULL, &loop);

        ck_assert_int_eq(r, 0);
        ck_assert_ptr_nonnull(loop);
        return loop;
}

static void assert_nothing_left(evt_loop *loop) {
        evt_loop_stats st;

        ck_assert_int_eq(evt_loop_stats_get(loop, &st), 0);
        ck_assert_uint_eq(st.tasks, 0);
        ck_assert_uint_eq(st.watchers, 0);
        ck_assert_uint_eq(st.stacks_used, 0);
        ck_assert_uint_eq(st.calls, 0);
}

void test_loop_run(evt_loop *loop) {
        ck_assert_int_eq(evt_loop_run(loop), 0);
        assert_nothing_left(loop);
}

void test_loop_free(evt_loop *loop) {
        assert_nothing_left(loop);
        evt_loop_free(loop);
}

evt_loop *test_other_loop_new(void) {
        struct ev_loop *ev = ev_loop_new(EVFLAG_AUTO);
        evt_loop *loop = NULL;

        ck_assert_ptr_nonnull(ev);
        ck_assert_int_eq(evt_loop_new(ev, NULL, &loop), 0);
        return loop;
}

void test_other_loop_free(evt_loop *loop) {
        struct ev_loop *ev = evt_loop_ev(loop);

        test_loop_free(loop);
        ev_loop_destroy(ev);
}

uint64_t test_switches(evt_loop *loop) {
        evt_loop_stats st;

        ck_assert_int_eq(evt_loop_stats_get(loop, &st), 0);
        return st.switches;
}

bool test_is_waiting(const evt_task *t) {
        return strcmp(evt_task_state_name(t), "waiting") == 0;
}

int64_t test_ms_since(int64_t start) {
        return (evt_time_now() - start) / 1000000;
}

evt_task *test_spawn(evt_loop *loop, evt_task_fn fn, void *arg, const char *name, unsigned flags) {
        evt_task *t = NULL;
        int r = evt_task_spawn(loop, fn, arg, &(evt_task_opts) { .name = name, .flags = flags }, &t);

        ck_assert_int_eq(r, 0);
        ck_assert_ptr_nonnull(t);
        return t;
}

static void *no_op(void *arg) {
        return arg;
}

bool test_thread_create_fails(void) {
        pthread_t t;

        if (pthread_create(&t, NULL, no_op, NULL) != 0)
                return true;
        pthread_join(t, NULL);
        return false;
}
