/* The pause gate: while the loop is paused, no pausable task runs a step;
 * wake-ups that fall due are held and delivered on resume. The same gate
 * holds one suspended task (evt_task_suspend). */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testutil.h"

struct ticker {
        bool stop;
        int steps;
        int64_t last_step;      /* time of the latest step */
        int64_t steps_in_pause; /* steps that ran while paused (must be 0) */
        evt_loop *loop;
};

/* One step per turn, until told to stop: never checks any pause flag. A
 * turn ends with a yield, or with a 1 ms sleep. */
static int tick(struct ticker *tk, bool sleep) {
        while (!tk->stop) {
                tk->steps++;
                if (evt_loop_is_paused(tk->loop))
                        tk->steps_in_pause++;
                tk->last_step = evt_time_now();
                if ((sleep ? evt_sleep(EVT_MSEC(1)) : evt_yield()) < 0)
                        return -ECANCELED;
        }
        return 0;
}

static int tick_yield(void *arg) {
        return tick(arg, false);
}

static int tick_sleep(void *arg) {
        return tick(arg, true);
}

struct controller {
        struct ticker *tk;
        int steps_at_pause, steps_at_resume;
        int64_t paused_at, resumed_at;
        bool is_paused_seen;
};

/* A housekeeping task (not pausable): pauses while every ticker stands in
 * the run queue, waits, resumes. */
static int control(void *arg) {
        struct controller *c = arg;
        evt_loop *loop = c->tk->loop;

        ck_assert_int_eq(evt_sleep(EVT_MSEC(20)), 0);
        ck_assert_int_eq(evt_loop_pause(loop), 0);
        ck_assert_int_eq(evt_loop_pause(loop), 0); /* idempotent */
        c->is_paused_seen = evt_loop_is_paused(loop);
        c->paused_at = evt_time_now();
        c->steps_at_pause = c->tk->steps;
        /* The controller keeps running: it is not pausable. */
        for (int i = 0; i < 100; i++)
                ck_assert_int_eq(evt_yield(), 0);
        ck_assert_int_eq(evt_sleep(EVT_MSEC(50)), 0);
        c->steps_at_resume = c->tk->steps;
        c->resumed_at = evt_time_now();
        ck_assert_int_eq(evt_loop_resume(loop), 0);
        ck_assert_int_eq(evt_loop_resume(loop), 0);
        ck_assert_int_eq(evt_sleep(EVT_MSEC(20)), 0);
        c->tk->stop = true;
        return 0;
}

static void run_paused_tickers(evt_task_fn ticker_fn) {
        evt_loop *loop = test_loop_new();
        struct ticker tk = { .loop = loop };
        struct controller c = { .tk = &tk };

        for (int i = 0; i < 100; i++)
                ck_assert_int_eq(evt_task_spawn(loop, ticker_fn, &tk, NULL, NULL), 0);
        evt_task_unref(test_spawn(loop, control, &c, "control", EVT_TASK_NOPAUSE));
        test_loop_run(loop);

        ck_assert(c.is_paused_seen);
        ck_assert_int_gt(c.steps_at_pause, 0);
        /* Not a single step between the pause and the resume... */
        ck_assert_int_eq(c.steps_at_resume, c.steps_at_pause);
        ck_assert_int_eq(tk.steps_in_pause, 0);
        /* ...and the tickers went on after it. */
        ck_assert_int_gt(tk.steps, c.steps_at_resume);
        ck_assert(!evt_loop_is_paused(loop));
        test_loop_free(loop);
}

/* The tickers stand in the run queue when the pause comes: the steps already
 * scheduled must not run (Python's Event pattern lets them). */
START_TEST(no_queued_step_runs_while_paused) {
        run_paused_tickers(tick_yield);
}
END_TEST

START_TEST(no_timer_step_runs_while_paused) {
        run_paused_tickers(tick_sleep);
}
END_TEST

/* ---- wake-ups held until resume ---- */

struct sleeper {
        evt_loop *loop;
        bool asleep;            /* its deadline is set: the next poll may see it */
        evt_deadline deadline;
        int64_t woke_at;
        int r;
        /* Pause and resume from libev callbacks, outside any task, as a
         * signal watcher would. */
        ev_prepare pause_w;
        ev_timer resume_w;
        int64_t resumed_at;
};

static int sleep_once(void *arg) {
        struct sleeper *s = arg;

        s->deadline = evt_deadline_in(EVT_MSEC(40));
        s->asleep = true;
        s->r = evt_sleep_until(s->deadline);
        s->woke_at = evt_time_now();
        return s->r;
}

/* Before libev polls, once the sleeper sleeps: pauses, so the poll that
 * finds its deadline due (now, or after a slow moment) finds the loop
 * paused. Then resumes once the deadline has passed. */
static void pause_cb(struct ev_loop *ev, ev_prepare *w, int revents) {
        struct sleeper *s = w->data;

        (void) revents;
        if (!s->asleep)
                return;
        ev_prepare_stop(ev, w);
        evt_loop_pause(s->loop);
        ev_timer_set(&s->resume_w, (double) (s->deadline.at - evt_time_now()) / 1e9 + 0.010, 0.);
        ev_timer_start(ev, &s->resume_w);
}

static void resume_cb(struct ev_loop *ev, ev_timer *w, int revents) {
        struct sleeper *s = w->data;

        (void) revents;
        if (evt_time_now() <= s->deadline.at) {
                /* libev's clock, read at the start of the iteration, can
                 * be behind: again, a little later. */
                ev_timer_set(w, 0.001, 0.);
                ev_timer_start(ev, w);
                return;
        }
        s->resumed_at = evt_time_now();
        evt_loop_resume(s->loop);
}

START_TEST(timer_wakeup_held_until_resume) {
        evt_loop *loop = test_loop_new();
        struct ev_loop *ev = evt_loop_ev(loop);
        struct sleeper s = { .loop = loop, .r = 1 };

        ev_prepare_init(&s.pause_w, pause_cb);
        ev_timer_init(&s.resume_w, resume_cb, 0., 0.);
        s.pause_w.data = s.resume_w.data = &s;
        ev_prepare_start(ev, &s.pause_w);
        evt_task_unref(test_spawn(loop, sleep_once, &s, "sleeper", 0));
        test_loop_run(loop);
        ck_assert_int_eq(s.r, 0);
        /* The deadline passed during the pause; the wake-up came after the
         * resume, and it came (deadlines keep running through a pause). */
        ck_assert_int_gt(s.resumed_at, s.deadline.at);
        ck_assert_int_ge(s.woke_at, s.resumed_at);
        ck_assert(!ev_is_active(&s.pause_w));
        ck_assert(!ev_is_active(&s.resume_w));
        test_loop_free(loop);
}
END_TEST

struct event_pause {
        evt_event *event;
        evt_loop *loop;
        int64_t set_at, resumed_at, woke_at;
        int r;
};

static int event_waiter(void *arg) {
        struct event_pause *ep = arg;

        ep->r = evt_event_wait(ep->event, EVT_FOREVER);
        ep->woke_at = evt_time_now();
        return 0;
}

static int set_while_paused(void *arg) {
        struct event_pause *ep = arg;

        evt_yield(); /* let the waiter start waiting */
        evt_loop_pause(ep->loop);
        evt_event_set(ep->event);
        ep->set_at = evt_time_now();
        evt_sleep(EVT_MSEC(30));
        ep->resumed_at = evt_time_now();
        evt_loop_resume(ep->loop);
        return 0;
}

START_TEST(event_wakeup_held_until_resume) {
        evt_loop *loop = test_loop_new();
        struct event_pause ep = { .loop = loop, .r = 1 };

        ck_assert_int_eq(evt_event_new(loop, &ep.event), 0);
        evt_task_unref(test_spawn(loop, event_waiter, &ep, "waiter", 0));
        evt_task_unref(test_spawn(loop, set_while_paused, &ep, "setter", EVT_TASK_NOPAUSE));
        test_loop_run(loop);
        ck_assert_int_eq(ep.r, 0);
        ck_assert_int_ge(ep.woke_at, ep.resumed_at);
        evt_event_free(ep.event);
        test_loop_free(loop);
}
END_TEST

/* ---- what passes the gate ---- */

struct gate {
        evt_loop *loop;
        evt_task *victim;
        int64_t cancelled_at, victim_ended_at, resumed_at;
        int nopause_steps;
        int spawned_runs;
};

static int victim(void *arg) {
        struct gate *g = arg;
        int r = evt_sleep(EVT_SEC(10));

        g->victim_ended_at = evt_time_now();
        return r;
}

static int count_step(void *arg) {
        ((struct gate *) arg)->spawned_runs++;
        return 0;
}

static int gatekeeper(void *arg) {
        struct gate *g = arg;

        evt_sleep(EVT_MSEC(10));
        evt_loop_pause(g->loop);
        /* A task spawned during the pause does not start before resume. */
        evt_task_spawn(g->loop, count_step, g, NULL, NULL);
        /* A cancelled task runs its cleanup although the loop is paused. */
        g->cancelled_at = evt_time_now();
        evt_task_cancel(g->victim, 0);
        /* Steps of its own meanwhile, until the victim has ended (or 5 s,
         * which the test then reports). */
        for (int i = 0; i < 10 || (g->victim_ended_at == 0 && i < 1000); i++) {
                g->nopause_steps++;
                evt_sleep(EVT_MSEC(5));
        }
        ck_assert_int_eq(g->spawned_runs, 0);
        g->resumed_at = evt_time_now();
        evt_loop_resume(g->loop);
        return 0;
}

START_TEST(nopause_and_cancelled_pass_the_gate) {
        evt_loop *loop = test_loop_new();
        struct gate g = { .loop = loop };
        int res = 0;

        g.victim = test_spawn(loop, victim, &g, "victim", 0);
        evt_task_unref(test_spawn(loop, gatekeeper, &g, "keeper", EVT_TASK_NOPAUSE));
        test_loop_run(loop);
        ck_assert_int_ge(g.nopause_steps, 10);
        ck_assert_int_eq(g.spawned_runs, 1);
        ck_assert_int_eq(evt_task_result(g.victim, &res), 0);
        ck_assert_int_eq(res, -ECANCELED);
        /* The victim ended while the loop was still paused. */
        ck_assert_int_gt(g.victim_ended_at, 0);
        ck_assert_int_lt(g.victim_ended_at, g.resumed_at);
        evt_task_unref(g.victim);
        test_loop_free(loop);
}
END_TEST

/* Freeing a paused loop gives libev back the reference the pause took: the
 * caller's libev loop then runs out of work and returns. */
START_TEST(free_paused_loop_releases_libev) {
        evt_loop *loop = test_loop_new();
        struct ev_loop *ev = evt_loop_ev(loop);

        ck_assert_int_eq(evt_loop_pause(loop), 0);
        evt_loop_free(loop);
        ev_run(ev, 0); /* would block for ever with the reference left */
        ck_assert_uint_eq(ev_iteration(ev) > 0, 1);
}
END_TEST


/* ---- a pause that stops the clock of deadlines ---- */

#define CLOCK_D EVT_MSEC(600)           /* every deadline below */
#define CLOCK_PAUSE EVT_MSEC(800)       /* longer than CLOCK_D */
#define CLOCK_STEPS 30                  /* of 1 ms: the pool call's work */

enum { C_SLEEPER, C_SCOPED, C_CALLER, C_NOPAUSE, C_N };

static struct {
        evt_loop *loop;
        evt_pool *pool;
        evt_event *never;
        evt_task *task[C_N];
        int64_t start, woke[C_N];
        int r[C_N], result;
        int64_t paused_at, resumed_at;
        atomic_int steps;
} ck;

static int clock_sleeper_fn(void *arg) {
        int i = (int) (intptr_t) arg;

        ck.r[i] = evt_sleep(CLOCK_D);
        ck.woke[i] = evt_time_now();
        return 0;
}

static int clock_scoped_fn(void *arg) {
        evt_scope *s;

        (void) arg;
        if (evt_move_on_after(CLOCK_D, &s) < 0)
                return -1;
        ck.r[C_SCOPED] = evt_event_wait(ck.never, EVT_FOREVER);
        ck.woke[C_SCOPED] = evt_time_now();
        return evt_scope_pop(s, NULL);
}

/* CLOCK_STEPS steps of 1 ms, each after a checkpoint (which waits while
 * the loop is paused). */
static int clock_work_fn(evt_token *token, void *arg) {
        (void) arg;
        for (int i = 0; i < CLOCK_STEPS; i++) {
                struct timespec ms = { 0, 1000000 };

                if (evt_token_checkpoint(token) < 0)
                        return -ECANCELED;
                nanosleep(&ms, NULL);
                atomic_fetch_add(&ck.steps, 1);
        }
        return 7;
}

static int clock_caller_fn(void *arg) {
        (void) arg;
        ck.r[C_CALLER] = evt_pool_call(ck.pool, clock_work_fn, NULL, NULL, evt_deadline_in(CLOCK_D), &ck.result);
        ck.woke[C_CALLER] = evt_time_now();
        return 0;
}

/* Once every task waits and the call has begun its work, pauses for
 * CLOCK_PAUSE. */
static int clock_control_fn(void *arg) {
        (void) arg;
        for (int i = 0; i < C_N; i++)
                if (!POLL_UNTIL(test_is_waiting(ck.task[i])))
                        return -1;
        if (!POLL_UNTIL(atomic_load(&ck.steps) > 0))
                return -1;
        evt_loop_pause(ck.loop);
        ck.paused_at = evt_time_now();
        evt_sleep(CLOCK_PAUSE);
        ck.resumed_at = evt_time_now();
        return evt_loop_resume(ck.loop);
}

static void clock_scenario(bool stops) {
        static const evt_task_fn fns[C_N] = { clock_sleeper_fn, clock_scoped_fn, clock_caller_fn, clock_sleeper_fn };
        evt_loop_opts opts = { .pause_stops_deadlines = stops };

        memset(&ck, 0, sizeof(ck));
        ck_assert_int_eq(evt_loop_new(NULL, &opts, &ck.loop), 0);
        ck_assert_int_eq(evt_pool_new(ck.loop, &(evt_pool_opts) { .threads = 1 }, &ck.pool), 0);
        ck_assert_int_eq(evt_event_new(ck.loop, &ck.never), 0);
        ck.start = evt_time_now();
        for (int i = 0; i < C_N; i++)
                ck.task[i] = test_spawn(ck.loop, fns[i], (void *) (intptr_t) i, "clocked",
                                        i == C_NOPAUSE ? EVT_TASK_NOPAUSE : 0);
        evt_task_unref(test_spawn(ck.loop, clock_control_fn, NULL, "control", EVT_TASK_NOPAUSE));
        ck_assert_int_eq(evt_loop_run(ck.loop), 0);
        for (int i = 0; i < C_N; i++)
                evt_task_unref(ck.task[i]);
        evt_event_free(ck.never);
        evt_pool_free(ck.pool);
        test_loop_free(ck.loop);
}

/* By default deadlines keep running: those that passed during the pause
 * are delivered at the resume, the pool call's among them (the issue's
 * wave of timeouts). A task that is not pausable is not held. */
START_TEST(pause_deadlines_keep_running) {
        int64_t pause;

        clock_scenario(false);
        pause = ck.resumed_at - ck.paused_at;
        ck_assert_int_ge(pause, CLOCK_PAUSE);
        ck_assert_int_eq(ck.r[C_SLEEPER], 0);
        ck_assert_int_ge(ck.woke[C_SLEEPER], ck.resumed_at);
        ck_assert_int_lt(ck.woke[C_SLEEPER], ck.start + CLOCK_D + pause);
        ck_assert_int_eq(ck.r[C_SCOPED], -ECANCELED);
        ck_assert_int_lt(ck.woke[C_SCOPED], ck.start + CLOCK_D + pause);
        ck_assert_int_eq(ck.r[C_CALLER], -ETIMEDOUT);
        ck_assert_int_lt(ck.woke[C_NOPAUSE], ck.resumed_at);
}
END_TEST

/* With pause_stops_deadlines, the pause stops the clock of pausable tasks:
 * each deadline passes its length after the start plus the pause, and the
 * pool call, whose work needs far less than its deadline outside the
 * pause, returns its result. A task that is not pausable keeps its time. */
START_TEST(pause_stops_deadlines) {
        int64_t pause;

        clock_scenario(true);
        pause = ck.resumed_at - ck.paused_at;
        ck_assert_int_eq(ck.r[C_SLEEPER], 0);
        ck_assert_int_ge(ck.woke[C_SLEEPER], ck.start + CLOCK_D + pause);
        ck_assert_int_eq(ck.r[C_SCOPED], -ECANCELED);
        ck_assert_int_ge(ck.woke[C_SCOPED], ck.start + CLOCK_D + pause);
        ck_assert_int_eq(ck.r[C_CALLER], 0);
        ck_assert_int_eq(ck.result, 7);
        ck_assert_int_eq(ck.r[C_NOPAUSE], 0);
        ck_assert_int_lt(ck.woke[C_NOPAUSE], ck.resumed_at);
}
END_TEST

/* ---- one task suspended ---- */

struct suspension {
        evt_loop *loop;
        evt_task *held;         /* the suspended ticker */
        struct ticker held_tk, other_tk;
        int steps_at_suspend, steps_at_resume, other_steps_while;
        int r_again, r_done, r_null;
        bool loop_resume_released;
        size_t stats_suspended, stats_resumed; /* evt_loop_stats' count */
};

static size_t suspended_count(evt_loop *loop) {
        evt_loop_stats st;

        ck_assert_int_eq(evt_loop_stats_get(loop, &st), 0);
        return st.suspended;
}

/* Not pausable: suspends the held ticker, lets the other run, pauses and
 * resumes the loop (which must not release the suspended one), resumes. */
static int suspender(void *arg) {
        struct suspension *sp = arg;
        int other_before;

        ck_assert_int_eq(evt_sleep(EVT_MSEC(10)), 0);
        ck_assert_int_eq(evt_task_suspend(sp->held), 0);
        sp->r_again = evt_task_suspend(sp->held);
        ck_assert(evt_task_is_suspended(sp->held));
        sp->stats_suspended = suspended_count(sp->loop);
        /* It was in the run queue or about to be: one step may be under
         * way no more. */
        ck_assert_int_eq(evt_sleep(EVT_MSEC(2)), 0);
        sp->steps_at_suspend = sp->held_tk.steps;
        other_before = sp->other_tk.steps;
        ck_assert_int_eq(evt_sleep(EVT_MSEC(30)), 0);
        evt_loop_pause(sp->loop);
        evt_loop_resume(sp->loop);
        ck_assert_int_eq(evt_sleep(EVT_MSEC(30)), 0);
        sp->loop_resume_released = sp->held_tk.steps != sp->steps_at_suspend;
        sp->steps_at_resume = sp->held_tk.steps;
        sp->other_steps_while = sp->other_tk.steps - other_before;
        ck_assert_int_eq(evt_task_resume(sp->held), 0);
        ck_assert_int_eq(evt_task_resume(sp->held), 0);
        ck_assert(!evt_task_is_suspended(sp->held));
        sp->stats_resumed = suspended_count(sp->loop);
        ck_assert_int_eq(evt_sleep(EVT_MSEC(20)), 0);
        sp->held_tk.stop = sp->other_tk.stop = true;
        return 0;
}

START_TEST(suspended_task_takes_no_step_others_go_on) {
        evt_loop *loop = test_loop_new();
        struct suspension sp = { .loop = loop, .held_tk.loop = loop, .other_tk.loop = loop };

        sp.held = test_spawn(loop, tick_sleep, &sp.held_tk, "held", 0);
        evt_task_unref(test_spawn(loop, tick_sleep, &sp.other_tk, "other", 0));
        evt_task_unref(test_spawn(loop, suspender, &sp, "suspender", EVT_TASK_NOPAUSE));
        test_loop_run(loop);
        ck_assert_int_eq(sp.r_again, 0);
        ck_assert_uint_eq(sp.stats_suspended, 1);
        ck_assert_uint_eq(sp.stats_resumed, 0);
        ck_assert_int_eq(sp.steps_at_resume, sp.steps_at_suspend);
        ck_assert(!sp.loop_resume_released);
        ck_assert_int_gt(sp.other_steps_while, 10);
        ck_assert_int_gt(sp.held_tk.steps, sp.steps_at_resume); /* it went on after */
        ck_assert_int_eq(evt_task_suspend(sp.held), -ESRCH);    /* ended */
        ck_assert_int_eq(evt_task_suspend(NULL), -EINVAL);
        ck_assert_int_eq(evt_task_resume(NULL), -EINVAL);
        evt_task_unref(sp.held);
        test_loop_free(loop);
}
END_TEST

/* A wake-up that falls due while suspended is kept, and a cancel gets the
 * task through to its cleanup. */
struct kept {
        evt_loop *loop;
        evt_event *event;
        evt_task *waiter, *victim;
        int waiter_r, victim_r;
        int64_t set_at, woke_at, resumed_at, victim_ended_at;
};

static int kept_waiter(void *arg) {
        struct kept *k = arg;

        k->waiter_r = evt_event_wait(k->event, EVT_FOREVER);
        k->woke_at = evt_time_now();
        return 0;
}

static int kept_victim(void *arg) {
        struct kept *k = arg;

        k->victim_r = evt_sleep(EVT_SEC(10));
        k->victim_ended_at = evt_time_now();
        return 0;
}

static int kept_driver(void *arg) {
        struct kept *k = arg;

        evt_sleep(EVT_MSEC(5));
        evt_task_suspend(k->waiter);
        evt_task_suspend(k->victim);
        evt_event_set(k->event);
        k->set_at = evt_time_now();
        evt_task_cancel(k->victim, 0);
        evt_sleep(EVT_MSEC(30));
        ck_assert_int_eq(k->woke_at, 0);
        ck_assert_int_gt(k->victim_ended_at, 0);
        k->resumed_at = evt_time_now();
        evt_task_resume(k->waiter);
        return 0;
}

START_TEST(suspended_wakeups_kept_and_cancel_passes) {
        evt_loop *loop = test_loop_new();
        struct kept k = { .loop = loop, .waiter_r = 1 };

        ck_assert_int_eq(evt_event_new(loop, &k.event), 0);
        k.waiter = test_spawn(loop, kept_waiter, &k, "waiter", 0);
        k.victim = test_spawn(loop, kept_victim, &k, "victim", 0);
        evt_task_unref(test_spawn(loop, kept_driver, &k, "driver", 0));
        test_loop_run(loop);
        ck_assert_int_eq(k.waiter_r, 0);
        ck_assert_int_ge(k.woke_at, k.resumed_at);
        ck_assert_int_eq(k.victim_r, -ECANCELED);
        evt_task_unref(k.waiter);
        evt_task_unref(k.victim);
        evt_event_free(k.event);
        test_loop_free(loop);
}
END_TEST

/* A loop whose only task is suspended does not run out of work: it waits
 * for the resume (here from a libev timer outside any task). */
static void task_resume_cb(struct ev_loop *ev, ev_timer *w, int revents) {
        (void) revents;
        ev_ref(ev); /* the timer, stopped, gives back the test's unref */
        evt_task_resume(w->data);
}

static int suspend_self(void *arg) {
        int *steps = arg;

        evt_task_suspend(evt_task_current());
        ck_assert_int_eq(evt_yield(), 0); /* held here until the timer */
        (*steps)++;
        return 0;
}

START_TEST(loop_waits_for_a_suspended_task) {
        evt_loop *loop = test_loop_new();
        int steps = 0;
        evt_task *t = test_spawn(loop, suspend_self, &steps, "self", 0);
        ev_timer timer;
        int64_t start = evt_time_now();

        ev_timer_init(&timer, task_resume_cb, 0.05, 0);
        timer.data = t;
        /* From now, not from the loop's cached time (older than start). */
        ev_now_update(evt_loop_ev(loop));
        ev_timer_start(evt_loop_ev(loop), &timer);
        ev_unref(evt_loop_ev(loop)); /* only the suspension keeps it alive */
        test_loop_run(loop);
        ck_assert_int_eq(steps, 1);
        ck_assert_int_ge(evt_time_now() - start, EVT_MSEC(40));
        evt_task_unref(t);
        test_loop_free(loop);
}
END_TEST

Suite *evt_test_suite(void) {
        Suite *s = suite_create("pause");
        TCase *tc;

        tc = tcase_create("no step while paused");
        tcase_add_test(tc, no_queued_step_runs_while_paused);
        tcase_add_test(tc, no_timer_step_runs_while_paused);
        suite_add_tcase(s, tc);

        tc = tcase_create("held wake-ups");
        tcase_add_test(tc, timer_wakeup_held_until_resume);
        tcase_add_test(tc, event_wakeup_held_until_resume);
        suite_add_tcase(s, tc);

        tc = tcase_create("one task suspended");
        tcase_add_test(tc, suspended_task_takes_no_step_others_go_on);
        tcase_add_test(tc, suspended_wakeups_kept_and_cancel_passes);
        tcase_add_test(tc, loop_waits_for_a_suspended_task);
        suite_add_tcase(s, tc);

        tc = tcase_create("gate");
        tcase_add_test(tc, nopause_and_cancelled_pass_the_gate);
        tcase_add_test(tc, free_paused_loop_releases_libev);
        suite_add_tcase(s, tc);

        tc = tcase_create("clock");
        tcase_add_test(tc, pause_deadlines_keep_running);
        tcase_add_test(tc, pause_stops_deadlines);
        suite_add_tcase(s, tc);
        return s;
}
