/* Cancellation and shields: level-triggered delivery at await points,
 * shield scopes, shielded tasks, forced cancels. */
#include <errno.h>
#include <stdlib.h>

#include "testutil.h"

/* What a task saw at each of its await points after the cancel. */
struct seen {
        evt_event *never;       /* an event nobody sets */
        evt_event *ready;       /* set by the victim right before the await
                                 * point the cancel is meant for */
        evt_task *victim;       /* the task the canceller cancels */
        evt_task *other;        /* a task that runs for a while */
        int sleep_r, yield_r, wait_r, join_r, sleep2_r, pop_r;
        int64_t cancelled_at, woke_at;
        int steps;
};

static int sleeper_then_cleanup(void *arg) {
        struct seen *s = arg;

        evt_event_set(s->ready);
        s->sleep_r = evt_sleep(EVT_SEC(10));
        s->woke_at = evt_time_now();
        /* Level-triggered: every later await point fails at once. */
        s->yield_r = evt_yield();
        s->wait_r = evt_event_wait(s->never, EVT_FOREVER);
        s->join_r = evt_task_join(s->other, EVT_FOREVER, NULL);
        s->sleep2_r = evt_sleep(EVT_SEC(10));
        return s->sleep_r;
}

/* Cancels the victim once it has reached its await point. */
static int canceller(void *arg) {
        struct seen *s = arg;

        ck_assert_int_eq(evt_event_wait(s->ready, EVT_FOREVER), 0);
        s->cancelled_at = evt_time_now();
        return evt_task_cancel(s->victim, 0);
}

static int nap(void *arg) {
        (void) arg;
        return evt_sleep(EVT_MSEC(50));
}

START_TEST(cancel_at_next_and_every_later_await) {
        evt_loop *loop = test_loop_new();
        struct seen s = { 0 };
        evt_task *victim, *c;
        int res = 0;

        ck_assert_int_eq(evt_event_new(loop, &s.never), 0);
        ck_assert_int_eq(evt_event_new(loop, &s.ready), 0);
        s.other = test_spawn(loop, nap, NULL, "other", 0);
        victim = s.victim = test_spawn(loop, sleeper_then_cleanup, &s, "victim", 0);
        c = test_spawn(loop, canceller, &s, "canceller", 0);
        test_loop_run(loop);
        ck_assert_int_eq(s.sleep_r, -ECANCELED);
        ck_assert_int_lt(s.woke_at - s.cancelled_at, EVT_MSEC(100)); /* at once, not after 10 s */
        ck_assert_int_eq(s.yield_r, -ECANCELED);
        ck_assert_int_eq(s.wait_r, -ECANCELED);
        ck_assert_int_eq(s.join_r, -ECANCELED);
        ck_assert_int_eq(s.sleep2_r, -ECANCELED);
        ck_assert_int_eq(evt_task_result(victim, &res), 0);
        ck_assert_int_eq(res, -ECANCELED);
        ck_assert(evt_task_is_cancelled(victim));
        evt_task_unref(victim);
        evt_task_unref(c);
        evt_task_unref(s.other);
        evt_event_free(s.never);
        evt_event_free(s.ready);
        test_loop_free(loop);
}
END_TEST

static int self_cancel(void *arg) {
        struct seen *s = arg;

        /* A cancel of the running task is delivered at its next await point;
         * the code between runs on. */
        ck_assert_int_eq(evt_task_cancel(evt_task_current(), 0), 0);
        s->steps++;
        s->yield_r = evt_yield();
        s->sleep_r = evt_sleep(EVT_MSEC(1));
        return 0;
}

START_TEST(cancel_running_task_at_next_await) {
        evt_loop *loop = test_loop_new();
        struct seen s = { 0 };

        evt_task_unref(test_spawn(loop, self_cancel, &s, "self", 0));
        test_loop_run(loop);
        ck_assert_int_eq(s.steps, 1);
        ck_assert_int_eq(s.yield_r, -ECANCELED);
        ck_assert_int_eq(s.sleep_r, -ECANCELED);
        test_loop_free(loop);
}
END_TEST

static int must_not_run(void *arg) {
        (*(int *) arg)++;
        return 0;
}

START_TEST(cancel_before_start) {
        evt_loop *loop = test_loop_new();
        int runs = 0, res = 0;
        evt_task *t = test_spawn(loop, must_not_run, &runs, "unborn", 0);

        ck_assert_int_eq(evt_task_cancel(t, 0), 0);
        test_loop_run(loop);
        ck_assert_int_eq(runs, 0);
        ck_assert_int_eq(evt_task_result(t, &res), 0);
        ck_assert_int_eq(res, -ECANCELED);
        /* Cancelling an ended task changes nothing. */
        ck_assert_int_eq(evt_task_cancel(t, EVT_CANCEL_FORCE), 0);
        ck_assert_int_eq(evt_task_cancel(NULL, 0), -EINVAL);
        ck_assert_int_eq(evt_task_cancel(t, 1u << 5), -EINVAL);
        evt_task_unref(t);
        test_loop_free(loop);
}
END_TEST

/* ---- shield scopes ---- */

static int shielded_section(void *arg) {
        struct seen *s = arg;

        ck_assert_int_eq(evt_shield_push(), 0);
        ck_assert_int_eq(evt_shield_push(), 0); /* scopes nest */
        /* Inside the scope, the cancel that arrives is not seen: the sleep
         * runs its full length. */
        evt_event_set(s->ready);
        s->sleep_r = evt_sleep(EVT_MSEC(60));
        s->woke_at = evt_time_now();
        ck_assert_int_eq(evt_shield_pop(), 0); /* still inside the outer */
        s->yield_r = evt_yield();
        s->steps++;
        /* The end of the outermost scope delivers it... */
        s->pop_r = evt_shield_pop();
        /* ...and every later await point fails. */
        s->sleep2_r = evt_sleep(EVT_MSEC(1));
        return 0;
}

/* The canceller starts first and waits for the victim: woken before the
 * victim's 60 ms sleep is armed, it runs ahead of that sleep's end however
 * slow the machine (a task that had not started yet could be passed by
 * it), so the cancel comes during the sleep. */
START_TEST(shield_scope_defers_cancel) {
        evt_loop *loop = test_loop_new();
        struct seen s = { 0 };
        int64_t start = evt_time_now();
        evt_task *t;

        ck_assert_int_eq(evt_event_new(loop, &s.ready), 0);
        evt_task_unref(test_spawn(loop, canceller, &s, "canceller", 0));
        t = s.victim = test_spawn(loop, shielded_section, &s, "shielded section", 0);
        test_loop_run(loop);
        ck_assert_int_eq(s.sleep_r, 0);
        ck_assert_int_ge(s.woke_at - start, EVT_MSEC(60));
        ck_assert_int_eq(s.yield_r, 0);
        ck_assert_int_eq(s.steps, 1);
        ck_assert_int_eq(s.pop_r, -ECANCELED);
        ck_assert_int_eq(s.sleep2_r, -ECANCELED);
        ck_assert_int_eq(evt_shield_pop(), -EINVAL); /* not in a task */
        evt_task_unref(t);
        evt_event_free(s.ready);
        test_loop_free(loop);
}
END_TEST

static int pop_without_push(void *arg) {
        *(int *) arg = evt_shield_pop();
        return 0;
}

START_TEST(shield_pop_without_push) {
        evt_loop *loop = test_loop_new();
        int r = 0;

        evt_task_unref(test_spawn(loop, pop_without_push, &r, "pop", 0));
        test_loop_run(loop);
        ck_assert_int_eq(r, -EINVAL);
        test_loop_free(loop);
}
END_TEST

static int forced_in_scope(void *arg) {
        struct seen *s = arg;

        evt_shield_push();
        s->sleep_r = evt_sleep(EVT_SEC(10));
        s->woke_at = evt_time_now();
        s->yield_r = evt_yield();
        evt_shield_pop();
        return 0;
}

static int force_canceller(void *arg) {
        struct seen *s = arg;

        evt_sleep(EVT_MSEC(20));
        s->cancelled_at = evt_time_now();
        return evt_task_cancel(s->victim, EVT_CANCEL_FORCE);
}

START_TEST(forced_cancel_pierces_scope) {
        evt_loop *loop = test_loop_new();
        struct seen s = { 0 };
        evt_task *t = test_spawn(loop, forced_in_scope, &s, "scoped", 0);

        s.victim = t;
        evt_task_unref(test_spawn(loop, force_canceller, &s, "forcer", 0));
        test_loop_run(loop);
        ck_assert_int_eq(s.sleep_r, -ECANCELED);
        ck_assert_int_lt(s.woke_at - s.cancelled_at, EVT_MSEC(100));
        ck_assert_int_eq(s.yield_r, -ECANCELED);
        evt_task_unref(t);
        test_loop_free(loop);
}
END_TEST

/* ---- shielded tasks in groups ---- */

struct group_canceller {
        evt_group *group;
        unsigned first, second; /* flags of the two cancels */
        int64_t second_after;   /* ns after the first; 0: no second */
        evt_event *all_started; /* set by the last of the workers to start */
        int workers, started;
        int wait_r;
};

struct worker {
        struct group_canceller *gc;
        int64_t duration;
        int r;
        bool finished;
        bool saw_cancel;        /* cancelled by the time its sleep ended */
};

static int work(void *arg) {
        struct worker *w = arg;

        if (++w->gc->started == w->gc->workers)
                evt_event_set(w->gc->all_started);
        w->r = evt_sleep(w->duration);
        w->finished = w->r == 0;
        w->saw_cancel = evt_task_is_cancelled(evt_task_current());
        return w->r;
}

/* Cancels the group once every worker sleeps. */
static int cancel_group(void *arg) {
        struct group_canceller *gc = arg;

        evt_event_wait(gc->all_started, EVT_FOREVER);
        evt_group_cancel(gc->group, gc->first);
        if (gc->second_after) {
                evt_sleep(gc->second_after);
                evt_group_cancel(gc->group, gc->second);
        }
        gc->wait_r = evt_group_wait(gc->group, EVT_FOREVER);
        return 0;
}

/* The canceller starts first and waits for the workers, so its cancel
 * comes before the shielded worker's 80 ms are up, however slow the
 * machine; the shielded worker sleeps them all the same. */
START_TEST(shielded_task_ignores_group_cancel) {
        evt_loop *loop = test_loop_new();
        struct group_canceller gc = { .first = 0, .workers = 2, .wait_r = 1 };
        struct worker shielded = { .gc = &gc, .duration = EVT_MSEC(80) },
                      plain = { .gc = &gc, .duration = EVT_SEC(10) };
        int64_t start = evt_time_now();

        ck_assert_int_eq(evt_event_new(loop, &gc.all_started), 0);
        ck_assert_int_eq(evt_group_new(loop, &gc.group), 0);
        evt_task_unref(test_spawn(loop, cancel_group, &gc, "canceller", 0));
        ck_assert_int_eq(evt_group_spawn(gc.group, work, &shielded,
                                         &(evt_task_opts) { .name = "shielded", .flags = EVT_TASK_SHIELDED },
                                         NULL), 0);
        ck_assert_int_eq(evt_group_spawn(gc.group, work, &plain, NULL, NULL), 0);
        test_loop_run(loop);
        ck_assert_int_eq(plain.r, -ECANCELED);
        ck_assert(!plain.finished);
        ck_assert_int_eq(shielded.r, 0);
        ck_assert(shielded.finished);
        ck_assert(shielded.saw_cancel); /* the cancel came during the sleep */
        ck_assert_int_ge(test_ms_since(start), 80);
        ck_assert_int_eq(gc.wait_r, 0);
        evt_group_free(gc.group);
        evt_event_free(gc.all_started);
        test_loop_free(loop);
}
END_TEST

START_TEST(shielded_task_yields_to_forced_cancel) {
        evt_loop *loop = test_loop_new();
        struct group_canceller gc = {
                .first = 0, .second = EVT_CANCEL_FORCE, .second_after = EVT_MSEC(30), .workers = 1, .wait_r = 1,
        };
        struct worker shielded = { .gc = &gc, .duration = EVT_SEC(10) };
        int64_t start = evt_time_now();

        ck_assert_int_eq(evt_event_new(loop, &gc.all_started), 0);
        ck_assert_int_eq(evt_group_new(loop, &gc.group), 0);
        ck_assert_int_eq(evt_group_spawn(gc.group, work, &shielded,
                                         &(evt_task_opts) { .flags = EVT_TASK_SHIELDED }, NULL), 0);
        evt_task_unref(test_spawn(loop, cancel_group, &gc, "canceller", 0));
        test_loop_run(loop);
        ck_assert_int_eq(shielded.r, -ECANCELED);
        ck_assert_int_lt(test_ms_since(start), 5000);
        ck_assert_int_eq(gc.wait_r, 0);
        evt_group_free(gc.group);
        evt_event_free(gc.all_started);
        test_loop_free(loop);
}
END_TEST

Suite *evt_test_suite(void) {
        Suite *s = suite_create("cancel");
        TCase *tc;

        tc = tcase_create("cancel");
        tcase_add_test(tc, cancel_at_next_and_every_later_await);
        tcase_add_test(tc, cancel_running_task_at_next_await);
        tcase_add_test(tc, cancel_before_start);
        suite_add_tcase(s, tc);

        tc = tcase_create("shield scope");
        tcase_add_test(tc, shield_scope_defers_cancel);
        tcase_add_test(tc, shield_pop_without_push);
        tcase_add_test(tc, forced_cancel_pierces_scope);
        suite_add_tcase(s, tc);

        tc = tcase_create("shielded task");
        tcase_add_test(tc, shielded_task_ignores_group_cancel);
        tcase_add_test(tc, shielded_task_yields_to_forced_cancel);
        suite_add_tcase(s, tc);
        return s;
}
