/* Layer 2: loops, tasks, the run queue, wait and wake. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "coro.h"
#include "sanitizer.h"
#include "stack.h"

#include "testutil.h"

static int ret_value(void *arg) {
        return (int) (intptr_t) arg;
}

static int park(void *arg) {
        (void) arg;
        return evt_sleep(EVT_SEC(60));
}

/* ---- spawn and join ---- */

struct joiner {
        evt_task *target;
        evt_deadline deadline;
        int r;
        int result;
};

static int join_it(void *arg) {
        struct joiner *j = arg;

        j->r = evt_task_join(j->target, j->deadline, &j->result);
        return 0;
}

START_TEST(join_returns_result) {
        evt_loop *loop = test_loop_new();
        evt_task *t = test_spawn(loop, ret_value, (void *) (intptr_t) -ENOENT, "value", 0);
        struct joiner j = { .target = t, .deadline = EVT_FOREVER, .r = 1 };

        evt_task_unref(test_spawn(loop, join_it, &j, "joiner", 0));
        ck_assert(!evt_task_is_done(t));
        test_loop_run(loop);
        ck_assert_int_eq(j.r, 0);
        ck_assert_int_eq(j.result, -ENOENT);
        ck_assert(evt_task_is_done(t));
        evt_task_unref(t);
        test_loop_free(loop);
}
END_TEST

START_TEST(join_after_end) {
        evt_loop *loop = test_loop_new();
        evt_task *t = test_spawn(loop, ret_value, (void *) (intptr_t) 42, "value", 0);
        struct joiner j = { .target = t, .deadline = EVT_FOREVER, .r = 1 };
        int res = 0;

        ck_assert_int_eq(evt_task_result(t, &res), -EBUSY);
        test_loop_run(loop);
        ck_assert_int_eq(evt_task_result(t, &res), 0);
        ck_assert_int_eq(res, 42);
        evt_task_unref(test_spawn(loop, join_it, &j, "late joiner", 0));
        test_loop_run(loop);
        ck_assert_int_eq(j.r, 0);
        ck_assert_int_eq(j.result, 42);
        evt_task_unref(t);
        test_loop_free(loop);
}
END_TEST

static int join_self(void *arg) {
        int *r = arg;

        *r = evt_task_join(evt_task_current(), EVT_FOREVER, NULL);
        return 0;
}

/* The joiner holds the task while it waits, even when the last other
 * reference goes meanwhile (ASan and valgrind would see a use after free). */
struct dropper {
        evt_task *target;
};

static int drop_target(void *arg) {
        struct dropper *d = arg;

        evt_task_unref(d->target);
        d->target = NULL;
        return 0;
}

static int finish_later(void *arg) {
        (void) arg;
        evt_sleep(EVT_MSEC(10));
        return 7;
}

START_TEST(join_survives_last_unref) {
        evt_loop *loop = test_loop_new();
        evt_task *t = test_spawn(loop, finish_later, NULL, "target", 0);
        struct joiner j = { .target = t, .deadline = EVT_FOREVER, .r = 1 };
        struct dropper d = { .target = t };

        evt_task_unref(test_spawn(loop, join_it, &j, "joiner", 0));
        evt_task_unref(test_spawn(loop, drop_target, &d, "dropper", 0));
        test_loop_run(loop);
        ck_assert_ptr_null(d.target);
        ck_assert_int_eq(j.r, 0);
        ck_assert_int_eq(j.result, 7);
        test_loop_free(loop);
}
END_TEST

START_TEST(join_errors) {
        evt_loop *loop = test_loop_new();
        evt_task *slow = test_spawn(loop, park, NULL, "slow", 0);
        struct joiner j = { .target = slow, .r = 1, .result = 7 };
        int self_r = 1, res = 7;
        int64_t start;

        ck_assert_int_eq(evt_task_join(slow, EVT_FOREVER, &res), -EINVAL); /* not in a task */
        ck_assert_int_eq(evt_task_join(NULL, EVT_FOREVER, &res), -EINVAL);
        ck_assert_int_eq(res, 7);
        evt_task_unref(test_spawn(loop, join_self, &self_r, "self", 0));
        /* Taken before the deadline is: the 30 ms are measured from here. */
        start = evt_time_now();
        j.deadline = evt_deadline_in(EVT_MSEC(30));
        evt_task_unref(test_spawn(loop, join_it, &j, "joiner", 0));

        /* Run until the joiner has given up; the slow task still parks. */
        while (j.r == 1)
                ev_run(evt_loop_ev(loop), EVRUN_ONCE);
        ck_assert_int_eq(self_r, -EDEADLK);
        ck_assert_int_eq(j.r, -ETIMEDOUT);
        ck_assert_int_eq(j.result, 7); /* untouched on failure */
        ck_assert_int_ge(test_ms_since(start), 29);
        ck_assert(!evt_task_is_done(slow));

        ck_assert_int_eq(evt_task_cancel(slow, 0), 0);
        test_loop_run(loop);
        ck_assert_int_eq(evt_task_result(slow, &res), 0);
        ck_assert_int_eq(res, -ECANCELED);
        evt_task_unref(slow);
        test_loop_free(loop);
}
END_TEST

START_TEST(spawn_bad_arguments) {
        evt_loop *loop = test_loop_new();
        evt_task *t = (evt_task *) 0x1;
        evt_loop_stats st;

        ck_assert_int_eq(evt_task_spawn(NULL, ret_value, NULL, NULL, &t), -EINVAL);
        ck_assert_int_eq(evt_task_spawn(loop, NULL, NULL, NULL, &t), -EINVAL);
        ck_assert_int_eq(evt_task_spawn(loop, ret_value, NULL, &(evt_task_opts) { .flags = 1u << 7 }, &t),
                         -EINVAL);
        ck_assert_int_eq(evt_task_spawn(loop, ret_value, NULL, &(evt_task_opts) { .stack_size = 100 }, &t),
                         -EINVAL);
        ck_assert_ptr_eq(t, (evt_task *) 0x1);
        ck_assert_int_eq(evt_loop_stats_get(loop, &st), 0);
        ck_assert_uint_eq(st.tasks, 0);
        ck_assert_uint_eq(st.stacks_used, 0);
        test_loop_free(loop);
}
END_TEST

START_TEST(loop_bad_arguments) {
        evt_loop *loop = (evt_loop *) 0x1;

        ck_assert_int_eq(evt_loop_new(NULL, NULL, NULL), -EINVAL);
        ck_assert_int_eq(evt_loop_new(NULL, &(evt_loop_opts) { .stack_size = 1 }, &loop), -EINVAL);
        ck_assert_ptr_eq(loop, (evt_loop *) 0x1);
        ck_assert_int_eq(evt_loop_run(NULL), -EINVAL);
        ck_assert_int_eq(evt_loop_pause(NULL), -EINVAL);
        ck_assert_int_eq(evt_loop_stats_get(NULL, NULL), -EINVAL);
        evt_loop_free(NULL);
}
END_TEST

static int count_runs(void *arg) {
        (*(int *) arg)++;
        return 0;
}

START_TEST(detached_tasks_end_and_go) {
        evt_loop *loop = test_loop_new();
        int runs = 0;

        for (int i = 0; i < 100; i++)
                ck_assert_int_eq(evt_task_spawn(loop, count_runs, &runs, NULL, NULL), 0);
        test_loop_run(loop);
        ck_assert_int_eq(runs, 100);
        test_loop_free(loop);
}
END_TEST

START_TEST(names) {
        evt_loop *loop = test_loop_new();
        char buf[16] = "worker";
        evt_task *a = test_spawn(loop, ret_value, NULL, buf, EVT_TASK_SHIELDED);
        evt_task *b = test_spawn(loop, ret_value, NULL, NULL, 0);

        strcpy(buf, "changed");
        ck_assert_str_eq(evt_task_name(a), "worker"); /* copied at spawn */
        ck_assert_str_eq(evt_task_name(b), "task-2");
        ck_assert_uint_eq(evt_task_flags(a), EVT_TASK_SHIELDED);
        ck_assert_ptr_eq(evt_task_ref(a), a);
        evt_task_unref(a);
        test_loop_run(loop);
        evt_task_unref(a);
        evt_task_unref(b);
        evt_task_unref(NULL);
        test_loop_free(loop);
}
END_TEST

/* ---- scheduling order and per-task state ---- */

static int order[32];
static int norder;

static int yielder(void *arg) {
        for (int i = 0; i < 3; i++) {
                order[norder++] = (int) (intptr_t) arg;
                ck_assert_int_eq(evt_yield(), 0);
        }
        return 0;
}

START_TEST(yield_is_round_robin) {
        evt_loop *loop = test_loop_new();

        norder = 0;
        for (intptr_t i = 0; i < 3; i++)
                ck_assert_int_eq(evt_task_spawn(loop, yielder, (void *) i, NULL, NULL), 0);
        test_loop_run(loop);
        ck_assert_int_eq(norder, 9);
        for (int i = 0; i < 9; i++)
                ck_assert_int_eq(order[i], i % 3);
        test_loop_free(loop);
}
END_TEST

static int errno_keeper(void *arg) {
        int mine = (int) (intptr_t) arg;

        for (int i = 0; i < 5; i++) {
                errno = mine;
                ck_assert_int_eq(evt_yield(), 0);
                ck_assert_int_eq(errno, mine);
                errno = mine;
                ck_assert_int_eq(evt_sleep(EVT_MSEC(1)), 0);
                ck_assert_int_eq(errno, mine);
        }
        return 0;
}

START_TEST(errno_is_per_task) {
        evt_loop *loop = test_loop_new();

        errno = 0;
        evt_task_unref(test_spawn(loop, errno_keeper, (void *) (intptr_t) EAGAIN, "a", 0));
        evt_task_unref(test_spawn(loop, errno_keeper, (void *) (intptr_t) ENOENT, "b", 0));
        evt_task_unref(test_spawn(loop, errno_keeper, (void *) (intptr_t) EPIPE, "c", 0));
        test_loop_run(loop);
        test_loop_free(loop);
}
END_TEST

static int steady(void *arg) {
        for (int i = 0; i < 10; i++)
                if (evt_sleep(EVT_MSEC(1)) < 0)
                        return -EIO;
        *(int *) arg = 1;
        return 0;
}

/* A task that fails (returns an error, or is cancelled) disturbs no other. */
START_TEST(failure_is_contained) {
        evt_loop *loop = test_loop_new();
        int done = 0, res = 0;
        evt_task *bad = test_spawn(loop, ret_value, (void *) (intptr_t) -EIO, "bad", 0);
        evt_task *cancelled = test_spawn(loop, park, NULL, "cancelled", 0);
        evt_task *good = test_spawn(loop, steady, &done, "good", 0);

        evt_task_cancel(cancelled, 0);
        test_loop_run(loop);
        ck_assert_int_eq(evt_task_result(bad, &res), 0);
        ck_assert_int_eq(res, -EIO);
        ck_assert_int_eq(evt_task_result(cancelled, &res), 0);
        ck_assert_int_eq(res, -ECANCELED);
        ck_assert_int_eq(evt_task_result(good, &res), 0);
        ck_assert_int_eq(res, 0);
        ck_assert_int_eq(done, 1);
        evt_task_unref(bad);
        evt_task_unref(cancelled);
        evt_task_unref(good);
        test_loop_free(loop);
}
END_TEST

/* The task drops the last reference to itself while it runs (a callback
 * that destroys its own watcher): it runs on, and goes when it ends. */
static int drop_own_handle(void *arg) {
        evt_task **self = arg;

        evt_task_unref(*self);
        *self = NULL;
        for (int i = 0; i < 3; i++)
                ck_assert_int_eq(evt_yield(), 0);
        ck_assert_str_eq(evt_task_name(evt_task_current()), "dropper");
        return 0;
}

START_TEST(task_drops_own_reference) {
        evt_loop *loop = test_loop_new();
        evt_task *t = NULL;

        ck_assert_int_eq(evt_task_spawn(loop, drop_own_handle, &t,
                                        &(evt_task_opts) { .name = "dropper" }, &t), 0);
        test_loop_run(loop);
        ck_assert_ptr_null(t);
        test_loop_free(loop);
}
END_TEST

START_TEST(await_outside_task) {
        ck_assert_int_eq(evt_yield(), -EINVAL);
        ck_assert_int_eq(evt_sleep(EVT_MSEC(1)), -EINVAL);
        ck_assert_int_eq(evt_shield_push(), -EINVAL);
        ck_assert_ptr_null(evt_task_current());
}
END_TEST

static int big_frame(void *arg) {
        volatile char buf[200 * 1024];

        memset((char *) buf, 1, sizeof(buf));
        *(int *) arg = buf[sizeof(buf) - 1];
        return evt_yield();
}

START_TEST(stack_size_option) {
        evt_loop *loop = test_loop_new();
        int seen = 0;
        evt_task *t = NULL;

        ck_assert_int_eq(evt_task_spawn(loop, big_frame, &seen,
                                        &(evt_task_opts) { .stack_size = 512 * 1024 }, &t), 0);
        test_loop_run(loop);
        ck_assert_int_eq(seen, 1);
        evt_task_unref(t);
        test_loop_free(loop);
}
END_TEST

static int yield_twice(void *arg) {
        (*(int *) arg)++;
        evt_yield();
        evt_yield();
        return 0;
}

START_TEST(many_tasks) {
        evt_loop *loop = test_loop_new();
        evt_loop_stats st;
        int runs = 0;

        for (int i = 0; i < 10000; i++)
                ck_assert_int_eq(evt_task_spawn(loop, yield_twice, &runs, NULL, NULL), 0);
        ck_assert_int_eq(evt_loop_stats_get(loop, &st), 0);
        ck_assert_uint_eq(st.tasks, 10000);
        ck_assert_uint_eq(st.stacks_used, 0); /* a task's stack comes at its first run */
        test_loop_run(loop);
        ck_assert_int_eq(runs, 10000);
        ck_assert_int_eq(evt_loop_stats_get(loop, &st), 0);
        ck_assert_uint_eq(st.switches, 30000);
        ck_assert_uint_le(st.stacks_free, 1024); /* the pool is bounded */
        test_loop_free(loop);
}
END_TEST

/* ---- running and freeing loops ---- */

static int wait_forever(void *arg) {
        evt_event *ev = arg;

        return evt_event_wait(ev, EVT_FOREVER);
}

START_TEST(run_reports_deadlock) {
        evt_loop *loop = test_loop_new();
        evt_event *ev;
        evt_task *t;
        int res = 0;

        ck_assert_int_eq(evt_event_new(loop, &ev), 0);
        t = test_spawn(loop, wait_forever, ev, "stuck", 0);
        ck_assert_int_eq(evt_loop_run(loop), -EDEADLK);
        ck_assert(!evt_task_is_done(t));
        /* Freeing the loop ends the task through a forced cancel. */
        evt_loop_free(loop);
        ck_assert_int_eq(evt_task_result(t, &res), 0);
        ck_assert_int_eq(res, -ECANCELED);
        evt_task_unref(t);
        evt_event_free(ev);
}
END_TEST

START_TEST(free_ends_running_tasks) {
        evt_loop *loop = test_loop_new();
        evt_task *t[3];
        int res;

        t[0] = test_spawn(loop, park, NULL, "sleeper", 0);
        t[1] = test_spawn(loop, park, NULL, "shielded", EVT_TASK_SHIELDED);
        t[2] = test_spawn(loop, park, NULL, "never started", 0);
        /* Let the first two start, so they free while waiting. */
        ev_run(evt_loop_ev(loop), EVRUN_NOWAIT);
        evt_loop_free(loop);
        for (int i = 0; i < 3; i++) {
                ck_assert_int_eq(evt_task_result(t[i], &res), 0);
                ck_assert_int_eq(res, -ECANCELED);
                evt_task_unref(t[i]);
        }
}
END_TEST

/* ---- arg_free: the argument of a task that never runs ---- */

/* How often each argument was given back; an argument is an index. */
static int arg_freed[8];

static void count_arg_free(void *arg) {
        arg_freed[(intptr_t) arg]++;
}

static evt_task *spawn_owning(evt_loop *loop, evt_task_fn fn, intptr_t i, unsigned flags) {
        evt_task *t = NULL;

        ck_assert_int_eq(evt_task_spawn(loop, fn, (void *) i,
                                        &(evt_task_opts) { .flags = flags, .arg_free = count_arg_free }, &t), 0);
        return t;
}

/* Cancelled before its first step: the argument goes to arg_free, once; a
 * task that ran (even one cancelled later) owns its argument, and so does a
 * shielded task that a plain cancel lets start. A failed spawn takes
 * nothing. */
START_TEST(arg_free_when_never_run) {
        evt_loop *loop = test_loop_new();
        evt_task *t[4];

        memset(arg_freed, 0, sizeof(arg_freed));
        t[0] = spawn_owning(loop, park, 0, 0);
        t[1] = spawn_owning(loop, ret_value, 1, 0);
        t[2] = spawn_owning(loop, ret_value, 2, EVT_TASK_SHIELDED);
        t[3] = spawn_owning(loop, park, 3, 0);
        ck_assert_int_eq(evt_task_cancel(t[0], 0), 0);
        ck_assert_int_eq(evt_task_cancel(t[2], 0), 0);
        ck_assert_int_eq(evt_task_spawn(loop, ret_value, (void *) 4,
                                        &(evt_task_opts) { .flags = 1u << 7, .arg_free = count_arg_free }, NULL),
                         -EINVAL);
        /* t[3] starts and parks; then it is cancelled while it waits. */
        ev_run(evt_loop_ev(loop), EVRUN_NOWAIT);
        ck_assert(evt_task_is_done(t[0]));
        ck_assert_int_eq(arg_freed[0], 1);
        ck_assert_int_eq(evt_task_cancel(t[3], 0), 0);
        test_loop_run(loop);
        ck_assert_int_eq(arg_freed[0], 1);
        for (int i = 1; i < 5; i++)
                ck_assert_int_eq(arg_freed[i], 0);
        for (int i = 0; i < 4; i++)
                evt_task_unref(t[i]);
        test_loop_free(loop);
}
END_TEST

/* The loop freed with tasks that never ran, a shielded one and a detached
 * one among them: each argument goes back once; the running task's not. */
START_TEST(arg_free_at_loop_free) {
        evt_loop *loop = test_loop_new();
        evt_task *running, *waiting;
        int res;

        memset(arg_freed, 0, sizeof(arg_freed));
        running = spawn_owning(loop, park, 0, 0);
        ev_run(evt_loop_ev(loop), EVRUN_NOWAIT);
        waiting = spawn_owning(loop, park, 1, EVT_TASK_SHIELDED);
        ck_assert_int_eq(evt_task_spawn(loop, park, (void *) 2,
                                        &(evt_task_opts) { .arg_free = count_arg_free }, NULL), 0);
        ck_assert_int_eq(evt_loop_pause(loop), 0);
        ck_assert_int_eq(evt_task_spawn(loop, park, (void *) 3,
                                        &(evt_task_opts) { .arg_free = count_arg_free }, NULL), 0);
        evt_loop_free(loop);
        ck_assert_int_eq(arg_freed[0], 0);
        for (int i = 1; i < 4; i++)
                ck_assert_int_eq(arg_freed[i], 1);
        ck_assert_int_eq(evt_task_result(waiting, &res), 0);
        ck_assert_int_eq(res, -ECANCELED);
        evt_task_unref(running);
        evt_task_unref(waiting);
}
END_TEST

/* ---- eager start (EVT_TASK_EAGER) ---- */

static struct {
        evt_loop *loop;
        char log[64];
        int n;
        evt_task *t[4];
        int r[4];
} eg;

static void eg_note(char c) {
        if (eg.n < (int) sizeof(eg.log) - 1)
                eg.log[eg.n++] = c;
}

static int eg_noter(void *arg) {
        eg_note((char) (intptr_t) arg);
        return (int) (intptr_t) arg;
}

/* Notes its letter, yields once, notes it in upper case. */
static int eg_yielder(void *arg) {
        char c = (char) (intptr_t) arg;

        eg_note(c);
        if (evt_yield() < 0)
                return -1;
        eg_note((char) (c - 'a' + 'A'));
        return 0;
}

static evt_task *eg_spawn(evt_task_fn fn, char c, unsigned flags) {
        evt_task *t = NULL;

        ck_assert_int_eq(evt_task_spawn(eg.loop, fn, (void *) (intptr_t) c,
                                        &(evt_task_opts) { .flags = flags }, &t), 0);
        return t;
}

/* The spawner: a plain task q is ready first; the eager e runs at once,
 * before the spawner's next statement and before q, and comes back after
 * q when it yields; the eager d ends in its first step: done, with its
 * result, when evt_task_spawn returns. */
static int eg_spawner(void *arg) {
        int res;

        (void) arg;
        eg.t[0] = eg_spawn(eg_noter, 'q', 0);
        eg.t[1] = eg_spawn(eg_yielder, 'e', EVT_TASK_EAGER);
        eg_note('s');
        eg.t[2] = eg_spawn(eg_noter, 'd', EVT_TASK_EAGER);
        eg.r[0] = evt_task_is_done(eg.t[2]);
        eg.r[1] = evt_task_result(eg.t[2], &res) == 0 ? res : -1;
        eg_note('S');
        return 0;
}

START_TEST(eager_ordering) {
        memset(&eg, 0, sizeof(eg));
        eg.loop = test_loop_new();
        evt_task_unref(test_spawn(eg.loop, eg_spawner, NULL, "spawner", 0));
        test_loop_run(eg.loop);
        ck_assert_str_eq(eg.log, "esdSqE");
        ck_assert_int_eq(eg.r[0], 1);
        ck_assert_int_eq(eg.r[1], 'd');
        for (int i = 0; i < 3; i++)
                evt_task_unref(eg.t[i]);
        test_loop_free(eg.loop);
}
END_TEST

/* An eager task spawns an eager one that yields: the inner one's first step
 * comes back to the outer, the outer's end to the spawner. */
static int eg_outer(void *arg) {
        (void) arg;
        eg_note('o');
        eg.t[1] = eg_spawn(eg_yielder, 'i', EVT_TASK_EAGER);
        eg_note('O');
        return 0;
}

static int eg_nest_spawner(void *arg) {
        (void) arg;
        eg.t[0] = eg_spawn(eg_outer, 0, EVT_TASK_EAGER);
        eg_note('s');
        return 0;
}

START_TEST(eager_nested) {
        memset(&eg, 0, sizeof(eg));
        eg.loop = test_loop_new();
        evt_task_unref(test_spawn(eg.loop, eg_nest_spawner, NULL, "spawner", 0));
        test_loop_run(eg.loop);
        ck_assert_str_eq(eg.log, "oiOsI");
        evt_task_unref(eg.t[0]);
        evt_task_unref(eg.t[1]);
        test_loop_free(eg.loop);
}
END_TEST

/* From outside any task, before evt_loop_run: the first step runs in the
 * spawn; a task that waits there goes on in evt_loop_run. 10,000 tasks
 * that end at once never hold more than one stack, and take no switch
 * through the run queue. */
START_TEST(eager_outside_tasks) {
        evt_loop_stats stats;
        evt_task *t;

        memset(&eg, 0, sizeof(eg));
        eg.loop = test_loop_new();
        t = eg_spawn(eg_yielder, 'a', EVT_TASK_EAGER);
        ck_assert_str_eq(eg.log, "a");
        for (int i = 0; i < 10000; i++)
                ck_assert_int_eq(evt_task_spawn(eg.loop, ret_value, NULL,
                                                &(evt_task_opts) { .flags = EVT_TASK_EAGER }, NULL), 0);
        ck_assert_int_eq(evt_loop_stats_get(eg.loop, &stats), 0);
        ck_assert_uint_eq(stats.tasks, 1);
        ck_assert_uint_eq(stats.stacks_used, 1);
        ck_assert_uint_le(stats.stacks_free, 1);
        ck_assert_uint_eq(stats.switches, 10001);
        ck_assert_int_eq(evt_task_flags(t) & EVT_TASK_EAGER, EVT_TASK_EAGER);
        test_loop_run(eg.loop);
        ck_assert_str_eq(eg.log, "aA");
        evt_task_unref(t);
        test_loop_free(eg.loop);
}
END_TEST

/* Eager changes nothing for a task that would not run now: spawned into a
 * cancelled group it never runs, and its argument goes to arg_free once;
 * under the pause gate it is queued, and a cancel before its first step
 * ends it there, arg_free again once. A task that runs eagerly owns its
 * argument from then on, though cancelled later. */
static int eg_arg_spawner(void *arg) {
        evt_group *g = arg;

        ck_assert_int_eq(evt_group_cancel(g, 0), 0);
        ck_assert_int_eq(evt_group_spawn(g, eg_noter, (void *) 0,
                                         &(evt_task_opts) { .flags = EVT_TASK_EAGER, .arg_free = count_arg_free },
                                         &eg.t[0]), 0);
        eg.r[0] = evt_task_is_done(eg.t[0]);
        return 0;
}

START_TEST(eager_cancel_before_first_step) {
        evt_group *g;
        int res;

        memset(&eg, 0, sizeof(eg));
        memset(arg_freed, 0, sizeof(arg_freed));
        eg.loop = test_loop_new();
        ck_assert_int_eq(evt_group_new(eg.loop, &g), 0);
        evt_task_unref(test_spawn(eg.loop, eg_arg_spawner, g, "spawner", 0));
        test_loop_run(eg.loop);
        ck_assert_int_eq(eg.r[0], 0); /* not run in the spawn */
        ck_assert_str_eq(eg.log, "");
        ck_assert_int_eq(arg_freed[0], 1);
        ck_assert_int_eq(evt_task_result(eg.t[0], &res), 0);
        ck_assert_int_eq(res, -ECANCELED);

        ck_assert_int_eq(evt_loop_pause(eg.loop), 0);
        eg.t[1] = spawn_owning(eg.loop, ret_value, 1, EVT_TASK_EAGER);
        ck_assert(!evt_task_is_done(eg.t[1]));
        ck_assert_int_eq(evt_task_cancel(eg.t[1], 0), 0);
        ck_assert_int_eq(evt_loop_resume(eg.loop), 0);
        eg.t[2] = spawn_owning(eg.loop, park, 2, EVT_TASK_EAGER);
        ck_assert_int_eq(evt_task_cancel(eg.t[2], 0), 0);
        test_loop_run(eg.loop);
        ck_assert_int_eq(arg_freed[1], 1);
        ck_assert_int_eq(evt_task_result(eg.t[1], &res), 0);
        ck_assert_int_eq(res, -ECANCELED);
        ck_assert_int_eq(arg_freed[2], 0);
        ck_assert_int_eq(evt_task_result(eg.t[2], &res), 0);
        ck_assert_int_eq(res, -ECANCELED);
        for (int i = 0; i < 3; i++)
                evt_task_unref(eg.t[i]);
        evt_group_free(g);
        test_loop_free(eg.loop);
}
END_TEST

/* A member that fails in its eager first step has cancelled its fail-fast
 * group by the time evt_group_spawn returns; a joiner parked on it is
 * woken. */
static int eg_join_fn(void *arg) {
        evt_task **target = arg;

        eg.r[2] = evt_task_join(*target, EVT_FOREVER, &eg.r[3]);
        return 0;
}

START_TEST(eager_failure_in_first_step) {
        evt_group *g;
        evt_task *member = NULL;

        memset(&eg, 0, sizeof(eg));
        eg.loop = test_loop_new();
        ck_assert_int_eq(evt_group_new_opts(eg.loop, &(evt_group_opts) { .flags = EVT_GROUP_FAIL_FAST }, &g), 0);
        ck_assert_int_eq(evt_group_spawn(g, ret_value, (void *) (intptr_t) -EDOM,
                                         &(evt_task_opts) { .flags = EVT_TASK_EAGER }, &member), 0);
        ck_assert(evt_task_is_done(member));
        ck_assert(evt_group_is_cancelled(g));
        ck_assert_ptr_eq(evt_group_failed(g), member);
        evt_task_unref(test_spawn(eg.loop, eg_join_fn, &member, "joiner", 0));
        test_loop_run(eg.loop);
        ck_assert_int_eq(eg.r[2], 0);
        ck_assert_int_eq(eg.r[3], -EDOM);
        evt_task_unref(member);
        evt_group_free(g);
        test_loop_free(eg.loop);
}
END_TEST

/* ---- stacks beyond the guard budget ---- */

static int park_on(void *arg) {
        return evt_event_wait(arg, EVT_FOREVER);
}

/* With the budget of guarded stacks used up, tasks run on slab stacks, as
 * the millionth task of a process would. */
START_TEST(tasks_on_slab_stacks) {
        size_t guarded = evt__stack_guarded_now();
        evt_loop *loop = test_loop_new();
        evt_event *ev;
        evt_loop_stats st;
        evt_task *t[300];
        int result;

        evt__stack_guarded_max_set(guarded + 10);
        ck_assert_int_eq(evt_event_new(loop, &ev), 0);
        for (int i = 0; i < 300; i++)
                ck_assert_int_eq(evt_task_spawn(loop, park_on, ev, NULL, &t[i]), 0);
        while (evt_loop_stats_get(loop, &st), st.stacks_used < 300)
                ev_run(evt_loop_ev(loop), EVRUN_NOWAIT);
        ck_assert_uint_eq(evt__stack_guarded_now(), guarded + 10);
        evt_event_set(ev);
        test_loop_run(loop);
        for (int i = 0; i < 300; i++) {
                ck_assert_int_eq(evt_task_result(t[i], &result), 0);
                ck_assert_int_eq(result, 0);
                evt_task_unref(t[i]);
        }
        evt_event_free(ev);
        test_loop_free(loop);
        evt__stack_guarded_max_set(SIZE_MAX);
        ck_assert_uint_eq(evt__stack_guarded_now(), guarded);
}
END_TEST

#if !EVT__ASAN
static int recurse(int depth) {
        volatile char frame[1024];

        memset((char *) frame, depth, sizeof(frame));
        if (depth == 0)
                return evt_yield();
        return recurse(depth - 1) + frame[0];
}

static int dive(void *arg) {
        return recurse(*(int *) arg);
}

static int *volatile nowhere; /* NULL, and the compiler cannot know */

static int fault(void *arg) {
        (void) arg;
        *nowhere = 1;
        return 0;
}

/* Runs `fn` as the task "deep-diver" on a 32 KiB stack in a child of its
 * own, next to a parked task spawned first; stores how the child ended and
 * what it wrote on stderr. Guarded: with guard pages, or from slabs. */
static void run_in_child(evt_task_fn fn, void *arg, bool guarded, int *status, char *msg, size_t size) {
        int out[2];
        ssize_t n, got = 0;
        pid_t pid;

        ck_assert_int_eq(pipe(out), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                evt_loop *loop;
                evt_event *ev;

                dup2(out[1], STDERR_FILENO);
                if (!guarded)
                        evt__stack_guarded_max_set(evt__stack_guarded_now());
                if (evt_loop_new(NULL, &(evt_loop_opts) { .stack_size = 32 * 1024 }, &loop) < 0 ||
                    evt_event_new(loop, &ev) < 0)
                        _exit(2);
                /* Without guard pages, the first stack of the slab: the
                 * diver's overflow lands in it. */
                evt_task_spawn(loop, park_on, ev, NULL, NULL);
                evt_task_spawn(loop, fn, arg, &(evt_task_opts) { .name = "deep-diver" }, NULL);
                evt_loop_run(loop);
                _exit(3); /* not reached */
        }
        close(out[1]);
        while ((n = read(out[0], msg + got, size - 1 - (size_t) got)) > 0)
                got += n;
        msg[got] = '\0';
        close(out[0]);
        ck_assert_int_eq(waitpid(pid, status, 0), pid);
}

/* A task that overflows a slab stack (no guard page) is caught at its next
 * await point by the canary: named on stderr, then abort. */
START_TEST(slab_stack_overflow_is_named) {
        int depth = 48; /* 48 KiB of frames on a 32 KiB stack */
        char msg[512];
        int status;

        run_in_child(dive, &depth, false, &status, msg, sizeof(msg));
        ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "status %#x, stderr: %s", status, msg);
        ck_assert_msg(strstr(msg, "task 'deep-diver' overflowed its stack") != NULL, "stderr: %s", msg);
}
END_TEST

/* Unbounded recursion on a guarded stack hits the guard page: the fault
 * handler, on its alternate stack, names the task and aborts. */
START_TEST(guarded_stack_overflow_is_named) {
        int depth = 1 << 20;
        char msg[512];
        int status;

        if (EVT__ON_VALGRIND())
                return; /* memcheck reports the faulting write before any handler */

        run_in_child(dive, &depth, true, &status, msg, sizeof(msg));
        ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "status %#x, stderr: %s", status, msg);
        ck_assert_msg(strstr(msg, "task 'deep-diver' overflowed its stack (") != NULL, "stderr: %s", msg);
}
END_TEST

/* Any other fault in a task is not taken for an overflow: the process dies
 * of it as it would without the handler. */
START_TEST(other_faults_stay_faults) {
        char msg[512];
        int status;

        if (EVT__ON_VALGRIND())
                return; /* memcheck reports the faulting write before any handler */

        run_in_child(fault, NULL, true, &status, msg, sizeof(msg));
        ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV, "status %#x, stderr: %s", status, msg);
        ck_assert_msg(strstr(msg, "overflowed") == NULL, "stderr: %s", msg);
}
END_TEST
#endif

/* ---- slow steps ---- */

struct slow_report {
        char names[4][32];
        int64_t held[4];
        int n;
};

static void on_slow_step(evt_task *task, int64_t held_ns, void *data) {
        struct slow_report *r = data;

        if (r->n < 4) {
                snprintf(r->names[r->n], sizeof(r->names[0]), "%s", evt_task_name(task));
                r->held[r->n] = held_ns;
        }
        r->n++;
}

/* Holds the loop for `ms` milliseconds without an await point. */
static void hold_loop(int ms) {
        int64_t until = evt_time_now() + EVT_MSEC(ms);

        while (evt_time_now() < until)
                ;
}

static int hog(void *arg) {
        int r;

        evt_yield();
        hold_loop(*(int *) arg);
        r = evt_yield();        /* the step above ends here */
        hold_loop(*(int *) arg);
        return r;               /* and this one at the task's end */
}

static int quick(void *arg) {
        (void) arg;
        for (int i = 0; i < 100; i++)
                evt_yield();
        return 0;
}

/* A step that holds the loop past the threshold is reported, with the task
 * and the time, at the await point (or the end) that finishes it; short
 * steps are not; 0 turns reports off. */
START_TEST(slow_steps_are_reported) {
        evt_loop *loop = test_loop_new();
        struct slow_report r = { 0 };
        int ms = 150;

        ck_assert_int_eq(evt_loop_slow_step_set(NULL, EVT_MSEC(100), on_slow_step, &r), -EINVAL);
        ck_assert_int_eq(evt_loop_slow_step_set(loop, -1, on_slow_step, &r), -EINVAL);
        ck_assert_int_eq(evt_loop_slow_step_set(loop, EVT_MSEC(100), NULL, &r), -EINVAL);
        ck_assert_int_eq(evt_loop_slow_step_set(loop, EVT_MSEC(100), on_slow_step, &r), 0);

        evt_task_unref(test_spawn(loop, quick, NULL, "quick", 0));
        evt_task_unref(test_spawn(loop, hog, &ms, "hog", 0));
        test_loop_run(loop);
        ck_assert_int_eq(r.n, 2);
        for (int i = 0; i < 2; i++) {
                ck_assert_str_eq(r.names[i], "hog");
                /* The coarse clock is a few milliseconds off at most. */
                ck_assert_int_ge(r.held[i], EVT_MSEC(ms - 10));
                ck_assert_int_lt(r.held[i], EVT_SEC(30));
        }
        /* Every step was counted by its duration: the hog's two in the
         * 100 ms to 1 s bucket, the quick ones in the first. */
        evt_loop_stats st;
        uint64_t n = 0;

        ck_assert_int_eq(evt_loop_stats_get(loop, &st), 0);
        for (int i = 0; i <= EVT_STEP_BUCKETS; i++)
                n += st.steps[i];
        ck_assert_uint_eq(st.steps[3], 2);
        ck_assert_uint_ge(st.steps[0], 100);
        ck_assert_uint_ge(n, 103);
        ck_assert_int_ge(st.steps_ns, 2 * EVT_MSEC(ms - 10));

        ck_assert_int_eq(evt_loop_slow_step_set(loop, 0, NULL, NULL), 0);
        evt_task_unref(test_spawn(loop, hog, &ms, "hog", 0));
        test_loop_run(loop);
        ck_assert_int_eq(r.n, 2);
        ck_assert_int_eq(evt_loop_stats_get(loop, &st), 0);
        ck_assert_uint_eq(st.steps[3], 2); /* untimed while off */
        test_loop_free(loop);
}
END_TEST

/* The backend LIBEV_FLAGS asks for is the one in use, so that the suite's
 * poll and select runs really test those backends. */
START_TEST(backend_from_environment) {
        const char *flags = getenv("LIBEV_FLAGS");
        evt_loop *loop = test_loop_new();

        if (flags)
                ck_assert_uint_eq(ev_backend(evt_loop_ev(loop)), (unsigned) atoi(flags));
        else
                ck_assert_uint_ne(ev_backend(evt_loop_ev(loop)), 0);
        test_loop_free(loop);
}
END_TEST

/* ---- what a task waits on ---- */

struct waits {
        evt_loop *loop;
        evt_event *event;
        evt_channel *channel;
        int pipe[2];
        evt_task *sleeper, *eventer, *fder, *joiner, *receiver, *runner;
        evt_wait_info info[5], running;
        int64_t before;
};

static int w_sleeper(void *arg) {
        (void) arg;
        return evt_sleep(EVT_SEC(30));
}

static int w_eventer(void *arg) {
        return evt_event_wait(((struct waits *) arg)->event, EVT_FOREVER);
}

static int w_fder(void *arg) {
        struct waits *w = arg;

        return evt_fd_wait(w->pipe[0], EVT_READ, EVT_FOREVER, NULL);
}

static int w_joiner(void *arg) {
        return evt_task_join(((struct waits *) arg)->sleeper, EVT_FOREVER, NULL);
}

static int w_receiver(void *arg) {
        int v;

        return evt_channel_recv(((struct waits *) arg)->channel, &v, EVT_FOREVER);
}

/* Looks at every other task while they wait, then ends them. */
static int w_inspector(void *arg) {
        struct waits *w = arg;
        evt_task *tasks[] = { w->sleeper, w->eventer, w->fder, w->joiner, w->receiver };

        ck_assert_int_eq(evt_sleep(EVT_MSEC(20)), 0);
        for (int i = 0; i < 5; i++)
                ck_assert_int_eq(evt_task_wait_info(tasks[i], &w->info[i]), 0);
        ck_assert_int_eq(evt_task_wait_info(evt_task_current(), &w->running), 0);
        ck_assert_int_eq(evt_task_wait_info(NULL, &w->running), -EINVAL);
        for (int i = 0; i < 5; i++)
                evt_task_cancel(tasks[i], 0);
        return 0;
}

START_TEST(wait_info_says_what_a_task_waits_on) {
        evt_loop *loop = test_loop_new();
        struct waits w = { .loop = loop, .before = evt_time_now() };
        static const char *const what[] = { "sleep", "event", "fd", "join", "channel receive" };

        ck_assert_int_eq(evt_event_new(loop, &w.event), 0);
        ck_assert_int_eq(evt_channel_new(loop, sizeof(int), 0, &w.channel), 0);
        ck_assert_int_eq(pipe(w.pipe), 0);
        w.sleeper = test_spawn(loop, w_sleeper, &w, "sleeper", 0);
        w.eventer = test_spawn(loop, w_eventer, &w, "eventer", 0);
        w.fder = test_spawn(loop, w_fder, &w, "fder", 0);
        w.joiner = test_spawn(loop, w_joiner, &w, "joiner", 0);
        w.receiver = test_spawn(loop, w_receiver, &w, "receiver", 0);
        evt_task_unref(test_spawn(loop, w_inspector, &w, "inspector", 0));
        test_loop_run(loop);
        for (int i = 0; i < 5; i++) {
                ck_assert_str_eq(w.info[i].what, what[i]);
                ck_assert_int_ge(w.info[i].since, w.before - EVT_MSEC(10));
                ck_assert_int_le(w.info[i].since, evt_time_now());
        }
        ck_assert_int_gt(w.info[0].deadline.at, w.before + EVT_SEC(29));
        ck_assert(evt_deadline_is_forever(w.info[1].deadline));
        ck_assert_int_eq(w.info[2].arg, w.pipe[0]);
        ck_assert_str_eq(w.info[3].task, "sleeper");
        ck_assert_ptr_null(w.running.what); /* running, not waiting */
        evt_task *all[] = { w.sleeper, w.eventer, w.fder, w.joiner, w.receiver };
        for (int i = 0; i < 5; i++)
                evt_task_unref(all[i]);
        close(w.pipe[0]);
        close(w.pipe[1]);
        evt_channel_free(w.channel);
        evt_event_free(w.event);
        test_loop_free(loop);
}
END_TEST

/* ---- backtraces ---- */

/* A task parked three calls deep: each call is followed by more work, so
 * that none becomes a jump that leaves no frame. */
static __attribute__((noinline)) int bt_leaf(evt_event *e) {
        int r = evt_event_wait(e, EVT_FOREVER);

        __asm__ volatile("" ::: "memory");
        return r;
}

static __attribute__((noinline)) int bt_middle(evt_event *e) {
        int r = bt_leaf(e);

        __asm__ volatile("" ::: "memory");
        return r + 1;
}

static __attribute__((noinline)) int bt_top(void *arg) {
        int r = bt_middle(arg);

        __asm__ volatile("" ::: "memory");
        return r - 1;
}

struct bt_check {
        evt_task *parked;
        void *pcs[32];
        int n, r_self, r_null;
};

static int bt_inspector(void *arg) {
        struct bt_check *c = arg;

        ck_assert_int_eq(evt_yield(), 0);
        c->n = evt_task_backtrace(c->parked, c->pcs, 32);
        c->r_self = evt_task_backtrace(evt_task_current(), c->pcs, 32);
        c->r_null = evt_task_backtrace(NULL, c->pcs, 32);
        evt_task_cancel(c->parked, 0);
        return 0;
}

/* The index of the first return address into fn at or after pcs[from]:
 * fn is small, so an address just past its start is in it. -1: none. */
static int pc_in(void *const *pcs, int n, int from, int (*fn)()) {
        for (int i = from; i < n; i++) {
                uintptr_t d = (uintptr_t) pcs[i] - (uintptr_t) fn;

                if (d > 0 && d < 512)
                        return i;
        }
        return -1;
}

/* The walk from the parked task's saved context passes through its three
 * functions, innermost first, and ends on its stack. */
START_TEST(backtrace_of_a_parked_task) {
        evt_loop *loop = test_loop_new();
        struct bt_check c = { 0 };
        evt_event *e;
        void *pcs[4];
        int leaf, middle, top;

        ck_assert_int_eq(evt_event_new(loop, &e), 0);
        c.parked = test_spawn(loop, bt_top, e, "parked", 0);
        ck_assert_int_eq(evt_task_backtrace(c.parked, pcs, 4), -ESRCH); /* not run yet */
        evt_task_unref(test_spawn(loop, bt_inspector, &c, "inspector", 0));
        test_loop_run(loop);
        if (c.n == -ENOTSUP) {
                fprintf(stderr, "evt_task_backtrace: not on this build, skipped\n");
        } else {
                ck_assert_int_gt(c.n, 3);
                leaf = pc_in(c.pcs, c.n, 0, (int (*)()) bt_leaf);
                middle = pc_in(c.pcs, c.n, leaf + 1, (int (*)()) bt_middle);
                top = pc_in(c.pcs, c.n, middle + 1, (int (*)()) bt_top);
                ck_assert_int_ge(leaf, 1); /* the switch's frames come first */
                ck_assert_int_eq(middle, leaf + 1);
                ck_assert_int_eq(top, middle + 1);
                ck_assert_int_lt(c.n, 32);  /* it ended, at the stack's first frame */
        }
        ck_assert_int_eq(c.r_self, -EBUSY);
        ck_assert_int_eq(c.r_null, -EINVAL);
        ck_assert_int_eq(evt_task_backtrace(c.parked, NULL, 4), -EINVAL);
        ck_assert_int_eq(evt_task_backtrace(c.parked, pcs, 4), -ESRCH); /* ended */
        evt_task_unref(c.parked);
        evt_event_free(e);
        test_loop_free(loop);
}
END_TEST

#if defined(__x86_64__) && !EVT_CORO_UCONTEXT
/* A broken chain ends the walk before a bad read: a record that leaves the
 * stack, one that does not climb, one out of line. */
START_TEST(backtrace_stops_at_a_broken_chain) {
        uintptr_t stack[64] = { 0 };
        uintptr_t lo = (uintptr_t) stack;
        evt__coro c = { .sp = stack };
        void *pcs[16];

        /* The switch's frame: r15 r14 r13 r12 rbx rbp ret. */
        stack[5] = lo + 16 * sizeof(uintptr_t);
        stack[6] = 0x1001;
        stack[16] = 0x7fff00000000;        /* the next record: off the stack */
        stack[17] = 0x1002;
        ck_assert_int_eq(evt__coro_backtrace(&c, stack, sizeof(stack), pcs, 16), 2);
        ck_assert_ptr_eq(pcs[1], (void *) 0x1002);
        stack[16] = lo + 16 * sizeof(uintptr_t); /* a loop */
        ck_assert_int_eq(evt__coro_backtrace(&c, stack, sizeof(stack), pcs, 16), 2);
        stack[16] = lo + 20 * sizeof(uintptr_t) + 3; /* misaligned */
        ck_assert_int_eq(evt__coro_backtrace(&c, stack, sizeof(stack), pcs, 16), 2);
        stack[5] = lo + 63 * sizeof(uintptr_t); /* its return address past the top */
        ck_assert_int_eq(evt__coro_backtrace(&c, stack, sizeof(stack), pcs, 16), 1);
        c.sp = stack + 60;                 /* the switch's frame past the top */
        ck_assert_int_eq(evt__coro_backtrace(&c, stack, sizeof(stack), pcs, 16), 0);
        c.sp = stack;
        ck_assert_int_eq(evt__coro_backtrace(&c, stack, sizeof(stack), pcs, 1), 1);
}
END_TEST
#endif

Suite *evt_test_suite(void) {
        Suite *s = suite_create("task");
        TCase *tc;

        tc = tcase_create("join");
        tcase_add_test(tc, join_returns_result);
        tcase_add_test(tc, join_after_end);
        tcase_add_test(tc, join_errors);
        tcase_add_test(tc, join_survives_last_unref);
        suite_add_tcase(s, tc);

        tc = tcase_create("spawn");
        tcase_add_test(tc, spawn_bad_arguments);
        tcase_add_test(tc, detached_tasks_end_and_go);
        tcase_add_test(tc, names);
        tcase_add_test(tc, task_drops_own_reference);
        tcase_add_test(tc, arg_free_when_never_run);
        tcase_add_test(tc, arg_free_at_loop_free);
        tcase_add_test(tc, stack_size_option);
        tcase_add_test(tc, many_tasks);
        suite_add_tcase(s, tc);

        tc = tcase_create("eager");
        tcase_add_test(tc, eager_ordering);
        tcase_add_test(tc, eager_nested);
        tcase_add_test(tc, eager_outside_tasks);
        tcase_add_test(tc, eager_cancel_before_first_step);
        tcase_add_test(tc, eager_failure_in_first_step);
        suite_add_tcase(s, tc);

        tc = tcase_create("slow");
        tcase_add_test(tc, slow_steps_are_reported);
        suite_add_tcase(s, tc);

        tc = tcase_create("stacks");
        tcase_add_test(tc, tasks_on_slab_stacks);
#if !EVT__ASAN
        tcase_add_test(tc, slab_stack_overflow_is_named);
        tcase_add_test(tc, guarded_stack_overflow_is_named);
        tcase_add_test(tc, other_faults_stay_faults);
#endif
        suite_add_tcase(s, tc);

        tc = tcase_create("schedule");
        tcase_add_test(tc, yield_is_round_robin);
        tcase_add_test(tc, errno_is_per_task);
        tcase_add_test(tc, failure_is_contained);
        tcase_add_test(tc, await_outside_task);
        suite_add_tcase(s, tc);

        tc = tcase_create("backtrace");
        tcase_add_test(tc, backtrace_of_a_parked_task);
#if defined(__x86_64__) && !EVT_CORO_UCONTEXT
        tcase_add_test(tc, backtrace_stops_at_a_broken_chain);
#endif
        suite_add_tcase(s, tc);

        tc = tcase_create("wait info");
        tcase_add_test(tc, wait_info_says_what_a_task_waits_on);
        suite_add_tcase(s, tc);

        tc = tcase_create("loop");
        tcase_add_test(tc, loop_bad_arguments);
        tcase_add_test(tc, run_reports_deadlock);
        tcase_add_test(tc, free_ends_running_tasks);
        tcase_add_test(tc, backend_from_environment);
        suite_add_tcase(s, tc);
        return s;
}
