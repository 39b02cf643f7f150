/* Layer 3: time, deadlines, and sleeping tasks. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* Tasks run inside evt_loop_run: they record what they saw here, and the
 * test body asserts on it afterwards. Reset by every test (under CK_FORK=no
 * all tests share one process). */
static evt_loop *loop;

/* ---- time and deadlines ---- */

START_TEST(time_now_monotonic) {
        int64_t prev = evt_time_now();

        ck_assert_int_gt(prev, 0);
        for (int i = 0; i < 100000; i++) {
                int64_t now = evt_time_now();

                ck_assert_int_ge(now, prev);
                prev = now;
        }
}
END_TEST

START_TEST(deadline_in_saturates) {
        int64_t before = evt_time_now();

        ck_assert(evt_deadline_is_forever(evt_deadline_in(INT64_MAX)));
        ck_assert(evt_deadline_is_forever(evt_deadline_in(INT64_MAX - 1)));
        /* now + ns would overflow for any now > before / 2. */
        ck_assert(evt_deadline_is_forever(evt_deadline_in(INT64_MAX - before / 2)));
        /* A large delay that fits is not saturated. */
        ck_assert_int_ge(evt_deadline_in(INT64_MAX / 2).at, before + INT64_MAX / 2);
        ck_assert(!evt_deadline_is_forever(evt_deadline_in(INT64_MAX / 2)));
        /* Nor does a delay far in the past wrap round: it has passed. */
        ck_assert_int_eq(evt_deadline_in(INT64_MIN).at, EVT_NOW.at);
        ck_assert_int_eq(evt_deadline_in(-evt_time_now() - EVT_SEC(1)).at, EVT_NOW.at);
        /* A time: taken as it is, a negative one as EVT_NOW. */
        ck_assert(evt_deadline_is_forever(evt_deadline_at(INT64_MAX)));
        ck_assert_int_eq(evt_deadline_at(before).at, before);
        ck_assert_int_eq(evt_deadline_at(INT64_MIN).at, EVT_NOW.at);
        ck_assert_int_eq(evt_deadline_left(EVT_FOREVER), INT64_MAX);
        ck_assert_int_eq(evt_deadline_left(EVT_NOW), 0);
        ck_assert_int_eq(evt_deadline_min(EVT_FOREVER, EVT_NOW).at, EVT_NOW.at);
}
END_TEST

/* The constants are initialisers too, of automatic and static objects. */
static const evt_deadline static_forever = EVT_FOREVER;

START_TEST(deadline_constants) {
        evt_deadline now = EVT_NOW, at[2] = { EVT_FOREVER, EVT_NOW };
        struct { evt_deadline d; } s = { EVT_FOREVER };

        ck_assert(evt_deadline_is_forever(static_forever));
        ck_assert_int_eq(now.at, 0);
        ck_assert(evt_deadline_is_forever(at[0]) && !evt_deadline_is_forever(at[1]));
        ck_assert(evt_deadline_is_forever(s.d));
}
END_TEST

START_TEST(deadline_in_adds) {
        int64_t before = evt_time_now();
        int64_t d5 = evt_deadline_in(EVT_MSEC(5)).at;
        int64_t d0 = evt_deadline_in(0).at;
        int64_t past = evt_deadline_in(-EVT_MSEC(5)).at;
        int64_t after = evt_time_now();

        ck_assert_int_ge(d5, before + EVT_MSEC(5));
        ck_assert_int_le(d5, after + EVT_MSEC(5));
        ck_assert_int_ge(d0, before);
        ck_assert_int_le(d0, after);
        /* A negative delay is a deadline that has passed, not an overflow. */
        ck_assert_int_lt(past, after);
        ck_assert_int_ge(past, before - EVT_MSEC(5));
}
END_TEST

/* ---- sleeping until a deadline ---- */

struct sleeper {
        bool until;             /* evt_sleep_until(deadline), else evt_sleep(ns) */
        int64_t ns;
        int64_t deadline;       /* the deadline, or the earliest evt_sleep's can be */
        int64_t end;
        int r;
};

static int sleeper_fn(void *arg) {
        struct sleeper *s = arg;

        if (s->until) {
                s->r = evt_sleep_until(evt_deadline_at(s->deadline));
        } else {
                /* evt_sleep computes its own deadline a little later. */
                s->deadline = evt_time_now() + s->ns;
                s->r = evt_sleep(s->ns);
        }
        s->end = evt_time_now();
        return 0;
}

/* Never before the deadline: libev's timers measure from a time it cached at
 * the start of an iteration, which can make them fire early. */
START_TEST(sleep_not_before_deadline) {
        struct sleeper s[8] = {
                { .ns = EVT_MSEC(1) },
                { .ns = EVT_MSEC(10) },
                { .ns = EVT_MSEC(30) },
                { .ns = EVT_USEC(1) },
                { .until = true },
                { .until = true },
                { .until = true },
                { .until = true },
        };
        int64_t start;

        loop = test_loop_new();
        start = evt_time_now();
        s[4].deadline = start + EVT_MSEC(1);
        s[5].deadline = start + EVT_MSEC(7);
        s[6].deadline = start + EVT_MSEC(25);
        s[7].deadline = start + EVT_USEC(300);
        for (int i = 0; i < 8; i++) {
                s[i].r = 1;
                ck_assert_int_eq(evt_task_spawn(loop, sleeper_fn, &s[i], NULL, NULL), 0);
        }
        test_loop_run(loop);
        for (int i = 0; i < 8; i++) {
                ck_assert_int_eq(s[i].r, 0);
                ck_assert_int_ge(s[i].end, s[i].deadline);
                /* Generous: a lost timer would take forever. */
                ck_assert_int_lt(s[i].end, s[i].deadline + EVT_SEC(1));
        }
        test_loop_free(loop);
}
END_TEST

/* Python's asyncio seed: two tasks that each sleep 1 s finish after 1 s,
 * not 2: a sleep blocks its task, never the loop. */
START_TEST(sleep_tasks_run_concurrently) {
        struct sleeper s[2] = { { .ns = EVT_MSEC(200) }, { .ns = EVT_MSEC(200) } };
        int64_t start;

        loop = test_loop_new();
        for (int i = 0; i < 2; i++) {
                s[i].r = 1;
                ck_assert_int_eq(evt_task_spawn(loop, sleeper_fn, &s[i], NULL, NULL), 0);
        }
        start = evt_time_now();
        test_loop_run(loop);
        ck_assert_int_lt(test_ms_since(start), 390);
        for (int i = 0; i < 2; i++) {
                ck_assert_int_eq(s[i].r, 0);
                ck_assert_int_ge(s[i].end - start, EVT_MSEC(200));
        }
        test_loop_free(loop);
}
END_TEST

/* ---- a deadline that has passed still yields ---- */

static struct {
        int ticks;              /* steps of the ticker task */
        bool done;              /* the sleeper is finished */
        int r[4];
        int ticks_during[4];    /* ticks that happened inside each sleep */
} yld;

static int ticker_fn(void *arg) {
        (void) arg;
        while (!yld.done) {
                yld.ticks++;
                if (evt_yield() < 0)
                        return -1;
        }
        return 0;
}

static int past_sleeper_fn(void *arg) {
        (void) arg;
        for (int i = 0; i < 4; i++) {
                int before = yld.ticks;

                switch (i) {
                case 0:
                        yld.r[i] = evt_sleep_until(EVT_NOW);
                        break;
                case 1:
                        yld.r[i] = evt_sleep_until(evt_deadline_in(-EVT_MSEC(10)));
                        break;
                case 2:
                        yld.r[i] = evt_sleep(0);
                        break;
                default:
                        yld.r[i] = evt_sleep(-EVT_SEC(1));
                        break;
                }
                yld.ticks_during[i] = yld.ticks - before;
        }
        yld.done = true;
        return 0;
}

/* A task that falls behind its schedule must not starve the others: the
 * ticker, ready all along, gets a step inside every such sleep. */
START_TEST(sleep_past_deadline_yields) {
        int64_t start;

        memset(&yld, 0, sizeof(yld));
        loop = test_loop_new();
        ck_assert_int_eq(evt_task_spawn(loop, past_sleeper_fn, NULL, NULL, NULL), 0);
        ck_assert_int_eq(evt_task_spawn(loop, ticker_fn, NULL, NULL, NULL), 0);
        start = evt_time_now();
        test_loop_run(loop);
        /* A passed deadline never waits for a timer. */
        ck_assert_int_lt(test_ms_since(start), 500);
        for (int i = 0; i < 4; i++) {
                ck_assert_int_eq(yld.r[i], 0);
                ck_assert_int_ge(yld.ticks_during[i], 1);
        }
        test_loop_free(loop);
}
END_TEST

/* ---- argument errors ---- */

START_TEST(sleep_outside_task) {
        int64_t start = evt_time_now();

        ck_assert_int_eq(evt_sleep(EVT_MSEC(50)), -EINVAL);
        ck_assert_int_eq(evt_sleep_until(evt_deadline_in(EVT_MSEC(50))), -EINVAL);
        ck_assert_int_eq(evt_sleep_until(EVT_NOW), -EINVAL);
        /* ... and it did not sleep anyway. */
        ck_assert_int_lt(test_ms_since(start), 40);

        /* Not even with a loop around, outside its tasks. */
        loop = test_loop_new();
        ck_assert_int_eq(evt_sleep(0), -EINVAL);
        test_loop_free(loop);
}
END_TEST

/* ---- cancelling a sleeper ---- */

static struct {
        evt_task *sleeper;
        int r, r_again;
        int64_t cancelled_at, end;
} cs;

static int long_sleeper_fn(void *arg) {
        (void) arg;
        cs.r = evt_sleep(EVT_SEC(10));
        cs.end = evt_time_now();
        /* Level-triggered: every later await point fails too. */
        cs.r_again = evt_sleep(0);
        return cs.r;
}

static int canceller_fn(void *arg) {
        (void) arg;
        if (evt_sleep(EVT_MSEC(20)) < 0)
                return -1;
        cs.cancelled_at = evt_time_now();
        return evt_task_cancel(cs.sleeper, 0);
}

START_TEST(sleep_cancelled) {
        evt_task *c;
        int result = 1;

        memset(&cs, 0, sizeof(cs));
        cs.r = cs.r_again = 1;
        loop = test_loop_new();
        cs.sleeper = test_spawn(loop, long_sleeper_fn, NULL, "sleeper", 0);
        c = test_spawn(loop, canceller_fn, NULL, "canceller", 0);
        test_loop_run(loop);
        ck_assert_int_eq(cs.r, -ECANCELED);
        ck_assert_int_eq(cs.r_again, -ECANCELED);
        ck_assert_int_ne(cs.cancelled_at, 0);
        ck_assert_int_ge(cs.end, cs.cancelled_at);
        /* Promptly: the 10 s deadline is far off. */
        ck_assert_int_lt(cs.end - cs.cancelled_at, EVT_SEC(1));
        ck_assert_int_eq(evt_task_result(cs.sleeper, &result), 0);
        ck_assert_int_eq(result, -ECANCELED);
        ck_assert_int_eq(evt_task_result(c, &result), 0);
        ck_assert_int_eq(result, 0);
        evt_task_unref(cs.sleeper);
        evt_task_unref(c);
        test_loop_free(loop);
}
END_TEST

/* ---- many sleepers ---- */

#define N_SLEEPERS 2000

static struct {
        int started;
        int64_t first_start;
        int64_t start_round;    /* from the first task's start to the last's */
        int64_t base;           /* deadlines are base + offset */
        int64_t offset[N_SLEEPERS];
        int64_t deadline[N_SLEEPERS];
        int64_t end[N_SLEEPERS];
        int r[N_SLEEPERS];
        int order[N_SLEEPERS];  /* task indexes, in the order they woke */
        int n_woke;
} many;

static int many_fn(void *arg) {
        int i = (int) (intptr_t) arg;
        int64_t now = evt_time_now();

        /* Every task is asleep before the first deadline, so that the order
         * of wake-ups is the loop's doing: the last task to start sets the
         * base as far off as starting them all took (arming them again
         * takes no longer), whatever valgrind or ASan cost. */
        if (many.started++ == 0)
                many.first_start = now;
        if (many.started == N_SLEEPERS) {
                many.start_round = now - many.first_start;
                many.base = now + many.start_round + EVT_MSEC(10);
        }
        while (many.started < N_SLEEPERS)
                if (evt_yield() < 0)
                        return -1;
        many.deadline[i] = many.base + many.offset[i];
        many.r[i] = evt_sleep_until(evt_deadline_at(many.deadline[i]));
        many.end[i] = evt_time_now();
        many.order[many.n_woke++] = i;
        return 0;
}

START_TEST(sleep_many) {
        uint32_t seed = 12345;
        int64_t max_deadline = 0, slack;
        int late = 0;

        memset(&many, 0, sizeof(many));
        loop = test_loop_new();
        for (int i = 0; i < N_SLEEPERS; i++) {
                seed = seed * 1103515245 + 12345;
                many.offset[i] = (int64_t) ((seed >> 8) % 50001) * 1000; /* 0..50 ms */
                many.r[i] = 1;
                ck_assert_int_eq(evt_task_spawn(loop, many_fn, (void *) (intptr_t) i, NULL, NULL), 0);
        }
        test_loop_run(loop);
        ck_assert_int_eq(many.n_woke, N_SLEEPERS);
        for (int i = 0; i < N_SLEEPERS; i++) {
                ck_assert_int_eq(many.r[i], 0);
                ck_assert_int_ge(many.end[i], many.deadline[i]);
        }

        /* Wake-ups follow the deadlines exactly: the loop's heap wakes the
         * due tasks earliest first, and they run in the order they were
         * woken (a round cut in between keeps that order). */
        slack = 0;
        for (int k = 0; k < N_SLEEPERS; k++) {
                int i = many.order[k];

                if (many.deadline[i] < max_deadline - slack) {
                        if (late++ < 5)
                                fprintf(stderr, "task %d (deadline +%lld us) ran after one with deadline +%lld us\n",
                                        i, (long long) many.offset[i] / 1000,
                                        (long long) (max_deadline - many.base) / 1000);
                }
                if (many.deadline[i] > max_deadline)
                        max_deadline = many.deadline[i];
        }
        ck_assert_int_eq(late, 0);
        test_loop_free(loop);
}
END_TEST


/* ---- deadlines taken off the heap, and long rounds ---- */

#define N_WAITERS 1000

static struct {
        evt_event *ev[N_WAITERS];
        int64_t offset[N_WAITERS];
        int64_t deadline[N_WAITERS];
        int r[N_WAITERS];
        int64_t end[N_WAITERS];
        int order[N_WAITERS];
        int started, waiting, n_woke;
        int64_t first_start, base;
} rm;

static int rm_waiter(void *arg) {
        int i = (int) (intptr_t) arg;
        int64_t now = evt_time_now();

        /* As in sleep_many: every deadline is later than all the waits and
         * the events set, however slow the machine. */
        if (rm.started++ == 0)
                rm.first_start = now;
        if (rm.started == N_WAITERS)
                rm.base = now + 2 * (now - rm.first_start) + EVT_MSEC(20);
        while (rm.started < N_WAITERS)
                if (evt_yield() < 0)
                        return -1;
        rm.deadline[i] = rm.base + rm.offset[i];
        rm.waiting++;
        rm.r[i] = evt_event_wait(rm.ev[i], evt_deadline_at(rm.deadline[i]));
        rm.end[i] = evt_time_now();
        rm.order[rm.n_woke++] = i;
        return 0;
}

/* Half the waits end by their event, set in a scattered order while every
 * deadline is in the heap: the other half still time out, never early and
 * in deadline order, and no watcher is left behind. */
START_TEST(deadlines_taken_off) {
        uint32_t seed = 777;
        int64_t last = 0;
        int n_timed_out = 0;

        memset(&rm, 0, sizeof(rm));
        loop = test_loop_new();
        for (int i = 0; i < N_WAITERS; i++) {
                seed = seed * 1103515245 + 12345;
                rm.offset[i] = (int64_t) ((seed >> 8) % 20001) * 1000; /* 0..20 ms */
                ck_assert_int_eq(evt_event_new(loop, &rm.ev[i]), 0);
                ck_assert_int_eq(evt_task_spawn(loop, rm_waiter, (void *) (intptr_t) i, NULL, NULL), 0);
        }
        while (rm.waiting < N_WAITERS)
                ev_run(evt_loop_ev(loop), EVRUN_NOWAIT);
        for (int k = 0; k < N_WAITERS; k++) {
                int i = (k * 617) % N_WAITERS; /* 617 is prime to 1000 */

                if (i % 2 == 0)
                        ck_assert_int_eq(evt_event_set(rm.ev[i]), 0);
        }
        test_loop_run(loop);
        ck_assert_int_eq(rm.n_woke, N_WAITERS);
        for (int k = 0; k < N_WAITERS; k++) {
                int i = rm.order[k];

                if (i % 2 == 0) {
                        ck_assert_int_eq(rm.r[i], 0);
                        continue;
                }
                n_timed_out++;
                ck_assert_int_eq(rm.r[i], -ETIMEDOUT);
                ck_assert_int_ge(rm.end[i], rm.deadline[i]);
                ck_assert_int_ge(rm.deadline[i], last); /* in deadline order */
                last = rm.deadline[i];
        }
        ck_assert_int_eq(n_timed_out, N_WAITERS / 2);
        for (int i = 0; i < N_WAITERS; i++)
                evt_event_free(rm.ev[i]);
        test_loop_free(loop); /* checks that no watcher is left */
}
END_TEST

#define N_SPINNERS 2000

static struct {
        int ran;                /* spinners that have run */
        int ran_at_wake;        /* ... when the sleeper woke */
        int ran_at_yield;       /* ... when the yielder ran again */
        int order[N_SPINNERS];
        bool woke, yielded;
} cut;

/* Holds the loop for 20 µs, like a task that computes. */
static int spinner_fn(void *arg) {
        int64_t until = evt_time_now() + EVT_USEC(20);

        while (evt_time_now() < until)
                ;
        cut.order[cut.ran++] = (int) (intptr_t) arg;
        return 0;
}

static int cut_sleeper_fn(void *arg) {
        (void) arg;
        if (evt_sleep(EVT_MSEC(2)) < 0)
                return -1;
        cut.ran_at_wake = cut.ran;
        cut.woke = true;
        return 0;
}

static int cut_yielder_fn(void *arg) {
        (void) arg;
        if (evt_yield() < 0)
                return -1;
        cut.ran_at_yield = cut.ran;
        cut.yielded = true;
        return 0;
}

/* A sleeper, a yielder and then 2,000 new tasks that compute for 20 µs
 * each: one round of 40 ms. The round is cut, so the sleeper runs when its
 * 2 ms are up and the yielder soon after its yield, both well before the
 * round's end, ahead of the tasks that have not started; those still run
 * in the order spawned. */
START_TEST(long_round_is_cut) {
        evt_task *sleeper, *yielder;

        memset(&cut, 0, sizeof(cut));
        loop = test_loop_new();
        sleeper = test_spawn(loop, cut_sleeper_fn, NULL, "sleeper", 0);
        yielder = test_spawn(loop, cut_yielder_fn, NULL, "yielder", 0);
        for (int i = 0; i < N_SPINNERS; i++)
                ck_assert_int_eq(evt_task_spawn(loop, spinner_fn, (void *) (intptr_t) i, NULL, NULL), 0);
        test_loop_run(loop);
        ck_assert(cut.woke);
        ck_assert_int_eq(cut.ran, N_SPINNERS);
        /* 2 ms is 100 spinners' worth: half the round is a wide margin. */
        ck_assert_int_lt(cut.ran_at_wake, N_SPINNERS / 2);
        ck_assert(cut.yielded);
        ck_assert_int_lt(cut.ran_at_yield, N_SPINNERS / 2);
        for (int i = 0; i < N_SPINNERS; i++)
                ck_assert_int_eq(cut.order[i], i);
        evt_task_unref(sleeper);
        evt_task_unref(yielder);
        test_loop_free(loop);
}
END_TEST

Suite *evt_test_suite(void) {
        Suite *s = suite_create("sleep");
        TCase *tc;

        tc = tcase_create("time");
        tcase_add_test(tc, time_now_monotonic);
        tcase_add_test(tc, deadline_in_saturates);
        tcase_add_test(tc, deadline_in_adds);
        tcase_add_test(tc, deadline_constants);
        suite_add_tcase(s, tc);

        tc = tcase_create("deadline");
        tcase_add_test(tc, sleep_not_before_deadline);
        tcase_add_test(tc, sleep_tasks_run_concurrently);
        suite_add_tcase(s, tc);

        tc = tcase_create("past");
        tcase_add_test(tc, sleep_past_deadline_yields);
        suite_add_tcase(s, tc);

        tc = tcase_create("args");
        tcase_add_test(tc, sleep_outside_task);
        suite_add_tcase(s, tc);

        tc = tcase_create("cancel");
        tcase_add_test(tc, sleep_cancelled);
        suite_add_tcase(s, tc);

        tc = tcase_create("many");
        tcase_add_test(tc, sleep_many);
        tcase_add_test(tc, deadlines_taken_off);
        tcase_add_test(tc, long_round_is_cut);
        suite_add_tcase(s, tc);
        return s;
}
