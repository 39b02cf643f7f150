/* Layer 2: cancel scopes, with deadlines and shields. Most cases are ports
 * of trio's and asyncio's test suites; each names its origin. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define TARGET EVT_MSEC(50)     /* trio's TARGET, shortened */
#define SLACK EVT_MSEC(500)     /* for "about TARGET", on a loaded machine */

/* What a scenario saw; the test body asserts. Reset by run(). */
static struct {
        int r[8];
        bool caught[4];
        bool called[4];
        int64_t took;
        evt_deadline deadline[4];
} st;

/* Runs fn in a task of a fresh loop, to its end. */
static void run(evt_task_fn fn) {
        evt_loop *loop = test_loop_new();

        memset(&st, 0, sizeof(st));
        for (int i = 0; i < 8; i++)
                st.r[i] = 1;
        evt_task_unref(test_spawn(loop, fn, NULL, "scenario", 0));
        test_loop_run(loop);
        test_loop_free(loop);
}

/* ---- move-on and fail scopes ---- */

/* Ported from trio's test_timeouts.py, test_sleep (its last part): a
 * move_on_at(now) scope cancels evt_sleep(0) and evt_yield at once. */
static int sleep_zero_fn(void *arg) {
        evt_scope *s;

        (void) arg;
        if (evt_move_on_at(evt_deadline_in(0), &s) < 0)
                return -1;
        st.r[0] = evt_sleep(0);
        st.r[1] = evt_yield();
        st.r[2] = evt_scope_pop(s, &st.caught[0]);
        st.r[3] = evt_yield(); /* outside: works again */
        return 0;
}

START_TEST(trio_sleep_move_on_at_now) {
        run(sleep_zero_fn);
        ck_assert_int_eq(st.r[0], -ECANCELED);
        ck_assert_int_eq(st.r[1], -ECANCELED);
        ck_assert_int_eq(st.r[2], 0);
        ck_assert(st.caught[0]);
        ck_assert_int_eq(st.r[3], 0);
}
END_TEST

/* Ported from trio's test_timeouts.py, test_move_on_after: a long sleep in
 * a move_on_after(TARGET) scope takes about TARGET, and the pop is quiet. */
static int move_on_after_fn(void *arg) {
        int64_t start = evt_time_now();
        evt_scope *s;

        (void) arg;
        if (evt_move_on_after(TARGET, &s) < 0)
                return -1;
        st.deadline[0] = evt_current_deadline();
        st.r[0] = evt_sleep(EVT_SEC(100));
        st.called[0] = evt_scope_cancel_called(s);
        st.r[1] = evt_scope_pop(s, &st.caught[0]);
        st.took = evt_time_now() - start;
        st.deadline[1] = evt_current_deadline();
        return 0;
}

START_TEST(trio_move_on_after) {
        run(move_on_after_fn);
        ck_assert_int_eq(st.r[0], -ECANCELED);
        ck_assert_int_eq(st.r[1], 0);
        ck_assert(st.caught[0]);
        ck_assert(st.called[0]);
        ck_assert_int_ge(st.took, TARGET);
        ck_assert_int_lt(st.took, TARGET + SLACK);
        ck_assert(!evt_deadline_is_forever(st.deadline[0]));
        ck_assert(evt_deadline_is_forever(st.deadline[1]));
}
END_TEST

/* Ported from trio's test_timeouts.py, test_fail: a fail_at/fail_after
 * scope around a long sleep fails with -ETIMEDOUT after about TARGET; one
 * with a far deadline around evt_sleep(0) does not. */
static int fail_fn(void *arg) {
        int64_t start = evt_time_now();
        evt_scope *s;

        (void) arg;
        if (evt_fail_at(evt_deadline_in(TARGET), &s) < 0)
                return -1;
        st.r[0] = evt_sleep(EVT_SEC(100));
        st.r[1] = evt_scope_pop(s, &st.caught[0]);
        st.took = evt_time_now() - start;
        if (evt_fail_after(EVT_SEC(100), &s) < 0)
                return -1;
        st.r[2] = evt_sleep(0);
        st.r[3] = evt_scope_pop(s, &st.caught[1]);
        if (evt_fail_after(TARGET, &s) < 0)
                return -1;
        st.r[4] = evt_sleep(EVT_SEC(100));
        st.r[5] = evt_scope_pop(s, NULL);
        return 0;
}

START_TEST(trio_fail) {
        run(fail_fn);
        ck_assert_int_eq(st.r[0], -ETIMEDOUT);
        ck_assert_int_eq(st.r[1], -ETIMEDOUT);
        ck_assert(st.caught[0]);
        ck_assert_int_ge(st.took, TARGET);
        ck_assert_int_lt(st.took, TARGET + SLACK);
        ck_assert_int_eq(st.r[2], 0);
        ck_assert_int_eq(st.r[3], 0);
        ck_assert(!st.caught[1]);
        ck_assert_int_eq(st.r[4], -ETIMEDOUT);
        ck_assert_int_eq(st.r[5], -ETIMEDOUT);
}
END_TEST

/* Ported from asyncio's test_timeouts.py, test_timeout_basic and
 * test_timeout_at_basic: timeout(0.01) around sleep(10) raises
 * TimeoutError; here, a fail scope. The wait of an event, a channel and a
 * pool call honour it too: every await point does. */
static int basic_fn(void *arg) {
        evt_loop *loop = arg;
        evt_event *ev = NULL;
        evt_scope *s;

        if (evt_event_new(loop, &ev) < 0)
                return -1;
        if (evt_fail_after(EVT_MSEC(10), &s) < 0)
                return -1;
        st.r[0] = evt_event_wait(ev, EVT_FOREVER);
        st.r[1] = evt_scope_pop(s, &st.caught[0]);
        if (evt_fail_at(evt_deadline_in(EVT_MSEC(10)), &s) < 0)
                return -1;
        st.deadline[0] = evt_scope_deadline(s);
        st.deadline[1] = evt_current_deadline();
        st.r[2] = evt_sleep(EVT_SEC(10));
        st.r[3] = evt_scope_pop(s, &st.caught[1]);
        evt_event_free(ev);
        return 0;
}

START_TEST(asyncio_timeout_basic) {
        evt_loop *loop = test_loop_new();

        memset(&st, 0, sizeof(st));
        evt_task_unref(test_spawn(loop, basic_fn, loop, "scenario", 0));
        test_loop_run(loop);
        test_loop_free(loop);
        ck_assert_int_eq(st.r[0], -ETIMEDOUT);
        ck_assert_int_eq(st.r[1], -ETIMEDOUT);
        ck_assert(st.caught[0]);
        ck_assert_int_eq(st.r[2], -ETIMEDOUT);
        ck_assert_int_eq(st.r[3], -ETIMEDOUT);
        ck_assert(st.caught[1]);
        ck_assert_int_eq(st.deadline[0].at, st.deadline[1].at);
}
END_TEST

/* Ported from asyncio's test_timeouts.py, test_nested_timeouts: two fail
 * scopes with the same deadline; only the outer one reports the timeout
 * as its own (trio's rule: of two at once, the outer wins). */
static int nested_same_deadline_fn(void *arg) {
        evt_deadline deadline = evt_deadline_in(EVT_MSEC(10));
        evt_scope *cm1, *cm2;

        (void) arg;
        if (evt_fail_at(deadline, &cm1) < 0 || evt_fail_at(deadline, &cm2) < 0)
                return -1;
        st.r[0] = evt_sleep(EVT_SEC(10));
        st.called[1] = evt_scope_cancel_called(cm2);
        st.r[1] = evt_scope_pop(cm2, &st.caught[1]);
        st.called[0] = evt_scope_cancel_called(cm1);
        st.r[2] = evt_scope_pop(cm1, &st.caught[0]);
        return 0;
}

START_TEST(asyncio_nested_timeouts) {
        run(nested_same_deadline_fn);
        ck_assert_int_eq(st.r[0], -ETIMEDOUT);
        ck_assert(st.called[1]);
        ck_assert(!st.caught[1]);
        ck_assert_int_eq(st.r[1], -ETIMEDOUT); /* the outer one, delivered at the pop */
        ck_assert(st.called[0]);
        ck_assert(st.caught[0]);
        ck_assert_int_eq(st.r[2], -ETIMEDOUT);
}
END_TEST


/* Ported from asyncio's test_timeouts.py, test_timeout_not_called: a far
 * deadline around a short sleep does nothing. */
static int not_called_fn(void *arg) {
        evt_scope *s;

        (void) arg;
        if (evt_fail_after(EVT_SEC(10), &s) < 0)
                return -1;
        st.r[0] = evt_sleep(EVT_MSEC(10));
        st.called[0] = evt_scope_cancel_called(s);
        st.r[1] = evt_scope_pop(s, &st.caught[0]);
        return 0;
}

START_TEST(asyncio_timeout_not_called) {
        run(not_called_fn);
        ck_assert_int_eq(st.r[0], 0);
        ck_assert(!st.called[0]);
        ck_assert_int_eq(st.r[1], 0);
        ck_assert(!st.caught[0]);
}
END_TEST

/* Ported from asyncio's test_timeouts.py, test_timeout_zero,
 * test_timeout_zero_sleep_zero and test_timeout_in_the_past_sleep_zero:
 * a deadline of now, or in the past, fails the first await point, a sleep
 * of 0 too. */
static int zero_fn(void *arg) {
        static const int64_t past[] = { 0, 0, -EVT_SEC(11) };
        static const int64_t sleeps[] = { EVT_SEC(10), 0, 0 };

        (void) arg;
        for (int i = 0; i < 3; i++) {
                evt_scope *s;

                if (evt_fail_after(past[i], &s) < 0)
                        return -1;
                st.r[2 * i] = evt_sleep(sleeps[i]);
                st.r[2 * i + 1] = evt_scope_pop(s, &st.caught[i]);
        }
        return 0;
}

START_TEST(asyncio_timeout_zero) {
        run(zero_fn);
        for (int i = 0; i < 6; i++)
                ck_assert_int_eq(st.r[i], -ETIMEDOUT);
        for (int i = 0; i < 3; i++)
                ck_assert(st.caught[i]);
}
END_TEST

/* Ported from asyncio's test_timeouts.py,
 * test_foreign_cancel_doesnt_timeout_if_not_expired: the task's own cancel
 * inside a fail scope is -ECANCELED, and the scope has not expired. */
static int foreign_cancel_fn(void *arg) {
        evt_scope *s;

        (void) arg;
        if (evt_fail_after(EVT_SEC(10), &s) < 0)
                return -1;
        evt_task_cancel(evt_task_current(), 0);
        st.r[0] = evt_sleep(EVT_SEC(10));
        st.called[0] = evt_scope_cancel_called(s);
        st.r[1] = evt_scope_pop(s, &st.caught[0]);
        return 0;
}

START_TEST(asyncio_foreign_cancel_not_expired) {
        run(foreign_cancel_fn);
        ck_assert_int_eq(st.r[0], -ECANCELED);
        ck_assert(!st.called[0]);
        ck_assert(!st.caught[0]);
        ck_assert_int_eq(st.r[1], -ECANCELED);
}
END_TEST

/* Ported from asyncio's test_timeouts.py, test_nested_timeouts_loop_busy:
 * the task holds the loop past the inner deadline, whose scope fails at
 * the next await point; after it, the outer deadline ends a long sleep. */
static int loop_busy_fn(void *arg) {
        int64_t start = evt_time_now(), busy_until;
        evt_scope *outer, *inner;

        (void) arg;
        if (evt_fail_after(EVT_MSEC(100), &outer) < 0 || evt_fail_after(EVT_MSEC(10), &inner) < 0)
                return -1;
        busy_until = evt_time_now() + EVT_MSEC(30);
        while (evt_time_now() < busy_until)
                ; /* the loop is held */
        st.r[0] = evt_sleep(EVT_SEC(1));
        st.r[1] = evt_scope_pop(inner, NULL);
        st.r[2] = evt_sleep(EVT_SEC(10));
        st.r[3] = evt_scope_pop(outer, NULL);
        st.took = evt_time_now() - start;
        return 0;
}

START_TEST(asyncio_nested_timeouts_loop_busy) {
        run(loop_busy_fn);
        for (int i = 0; i < 4; i++)
                ck_assert_int_eq(st.r[i], -ETIMEDOUT);
        ck_assert_int_ge(st.took, EVT_MSEC(100));
        ck_assert_int_lt(st.took, EVT_SEC(1));
}
END_TEST


/* Every await point honours a scope's deadline: each of these would wait
 * for ever, and each fails with -ETIMEDOUT 10 ms into its fail scope. */
enum { AP_JOIN, AP_EVENT, AP_GROUP, AP_RECV, AP_SEND, AP_LOCK, AP_SEM, AP_FD, AP_READ, AP_CALL, AP_CHILD_LAST };

static struct {
        evt_loop *loop;
        evt_task *parked;
        evt_event *never;
        evt_group *group;
        evt_channel *ch;
        evt_mutex *mutex;
        evt_sem *sem;
        evt_pool *pool;
        int fds[2];
        int r[AP_CHILD_LAST];
        int64_t took[AP_CHILD_LAST];
} ap;

static int parked_fn(void *arg) {
        (void) arg;
        return evt_event_wait(ap.never, EVT_FOREVER);
}

static int endless_fn(evt_token *token, void *arg) {
        (void) arg;
        while (evt_token_checkpoint(token) == 0) {
                struct timespec ms = { 0, 1000000 };

                nanosleep(&ms, NULL);
        }
        return -ECANCELED;
}

static int await_point(int which) {
        char c;
        int v = 0;

        switch (which) {
        case AP_JOIN:
                return evt_task_join(ap.parked, EVT_FOREVER, NULL);
        case AP_EVENT:
                return evt_event_wait(ap.never, EVT_FOREVER);
        case AP_GROUP:
                return evt_group_wait(ap.group, EVT_FOREVER);
        case AP_RECV:
                return evt_channel_recv(ap.ch, &v, EVT_FOREVER);
        case AP_SEND:
                return evt_channel_send(ap.ch, &v, EVT_FOREVER); /* a rendezvous: nobody receives */
        case AP_LOCK:
                return evt_mutex_lock(ap.mutex, EVT_FOREVER);
        case AP_SEM:
                return evt_sem_acquire(ap.sem, EVT_FOREVER);
        case AP_FD:
                return evt_fd_wait(ap.fds[0], EVT_READ, EVT_FOREVER, NULL);
        case AP_READ:
                return evt_read(ap.fds[0], &c, 1, EVT_FOREVER, NULL);
        case AP_CALL:
                return evt_pool_call(ap.pool, endless_fn, NULL, NULL, EVT_FOREVER, NULL);
        }
        return -1;
}

static int every_point_fn(void *arg) {
        (void) arg;
        for (int i = 0; i < AP_CHILD_LAST; i++) {
                int64_t start = evt_time_now();
                evt_scope *s;

                if (evt_fail_after(EVT_MSEC(10), &s) < 0)
                        return -1;
                ap.r[i] = await_point(i);
                ap.took[i] = evt_time_now() - start;
                if (evt_scope_pop(s, NULL) != -ETIMEDOUT)
                        ap.r[i] = 1;
        }
        return 0;
}

static int holder_fn(void *arg) {
        evt_task *scenario = arg;
        int r = evt_mutex_lock(ap.mutex, EVT_FOREVER);

        if (r < 0)
                return r;
        evt_task_join(scenario, EVT_FOREVER, NULL);
        return evt_mutex_unlock(ap.mutex);
}

START_TEST(every_await_point_honours_the_scope) {
        evt_task *scenario;

        memset(&ap, 0, sizeof(ap));
        ap.loop = test_loop_new();
        ck_assert_int_eq(evt_event_new(ap.loop, &ap.never), 0);
        ck_assert_int_eq(evt_group_new(ap.loop, &ap.group), 0);
        ck_assert_int_eq(evt_channel_new(ap.loop, sizeof(int), 0, &ap.ch), 0);
        ck_assert_int_eq(evt_mutex_new(ap.loop, &ap.mutex), 0);
        ck_assert_int_eq(evt_sem_new(ap.loop, 0, &ap.sem), 0);
        ck_assert_int_eq(evt_pool_new(ap.loop, &(evt_pool_opts) { .threads = 1 }, &ap.pool), 0);
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, ap.fds), 0);
        ap.parked = test_spawn(ap.loop, parked_fn, NULL, "parked", 0);
        ck_assert_int_eq(evt_group_spawn(ap.group, parked_fn, NULL, NULL, NULL), 0);
        scenario = test_spawn(ap.loop, every_point_fn, NULL, "scenario", 0);
        /* The holder takes the mutex in its first step, while the
         * scenario waits at its first await point. */
        evt_task_unref(test_spawn(ap.loop, holder_fn, scenario, "holder", 0));
        while (!evt_task_is_done(scenario))
                ev_run(evt_loop_ev(ap.loop), EVRUN_ONCE);
        for (int i = 0; i < AP_CHILD_LAST; i++) {
                ck_assert_msg(ap.r[i] == -ETIMEDOUT, "await point %d returned %d", i, ap.r[i]);
                ck_assert_int_ge(ap.took[i], EVT_MSEC(10));
                ck_assert_int_lt(ap.took[i], SLACK);
        }
        evt_task_cancel(ap.parked, 0);
        evt_group_cancel(ap.group, 0);
        ck_assert_int_eq(evt_loop_run(ap.loop), 0);
        evt_task_unref(scenario);
        evt_task_unref(ap.parked);
        evt_pool_free(ap.pool);
        close(ap.fds[0]);
        close(ap.fds[1]);
        evt_sem_free(ap.sem);
        evt_mutex_free(ap.mutex);
        evt_channel_free(ap.ch);
        evt_group_free(ap.group);
        evt_event_free(ap.never);
        test_loop_free(ap.loop);
}
END_TEST

/* ---- nesting, explicit cancels, shields ---- */

/* Ported from trio's test_run.py, test_cancel_scope_nesting. Two scopes
 * cancelled at once: the outer one catches it. A shield keeps an outer
 * cancel out, not its own. A cancel of a scope popped without an await
 * point inside is not delivered. */
static int nesting_fn(void *arg) {
        evt_scope *scope1, *scope2, *scope3;

        (void) arg;
        evt_scope_push(EVT_FOREVER, 0, &scope1);
        evt_scope_push(EVT_FOREVER, 0, &scope2);
        evt_scope_push(EVT_FOREVER, 0, &scope3);
        evt_scope_cancel(scope3);
        evt_scope_cancel(scope2);
        st.r[0] = evt_sleep(EVT_SEC(100));
        st.called[2] = evt_scope_cancel_called(scope3);
        evt_scope_pop(scope3, &st.caught[2]);
        st.called[1] = evt_scope_cancel_called(scope2);
        st.r[1] = evt_scope_pop(scope2, &st.caught[1]);
        st.called[0] = evt_scope_cancel_called(scope1);
        evt_scope_pop(scope1, &st.caught[0]);

        /* Shielding. */
        evt_scope_push(EVT_FOREVER, 0, &scope1);
        evt_scope_cancel(scope1);
        st.r[2] = evt_yield();
        evt_scope_push(EVT_FOREVER, EVT_SCOPE_SHIELD, &scope2);
        st.r[3] = evt_yield();
        evt_scope_cancel(scope2);
        st.r[4] = evt_yield();
        st.r[5] = evt_scope_pop(scope2, NULL);
        evt_scope_pop(scope1, NULL);

        /* Pending, then popped: not delivered. */
        evt_scope_push(EVT_FOREVER, 0, &scope1);
        evt_scope_cancel(scope1);
        st.r[6] = evt_scope_pop(scope1, &st.caught[3]);
        st.r[7] = evt_yield();
        return 0;
}

START_TEST(trio_cancel_scope_nesting) {
        run(nesting_fn);
        ck_assert_int_eq(st.r[0], -ECANCELED);
        ck_assert(st.called[2]);
        ck_assert(!st.caught[2]);
        ck_assert(st.called[1]);
        ck_assert(st.caught[1]);
        ck_assert_int_eq(st.r[1], 0);
        ck_assert(!st.called[0]);
        ck_assert(!st.caught[0]);
        ck_assert_int_eq(st.r[2], -ECANCELED);
        ck_assert_int_eq(st.r[3], 0);
        ck_assert_int_eq(st.r[4], -ECANCELED);
        ck_assert_int_eq(st.r[5], -ECANCELED); /* scope1's, past the shield */
        ck_assert_int_eq(st.r[6], 0);
        ck_assert(!st.caught[3]);
        ck_assert_int_eq(st.r[7], 0);
}
END_TEST

/* Ported from trio's test_run.py, test_basic_timeout: a scope whose
 * deadline passed before the wait catches a wait for ever; its
 * cancel_called shows it. */
static int basic_timeout_fn(void *arg) {
        evt_event *never = arg;
        evt_scope *s;

        if (evt_scope_push(evt_deadline_in(-1), 0, &s) < 0)
                return -1;
        st.called[0] = evt_scope_cancel_called(s);
        st.r[0] = evt_event_wait(never, EVT_FOREVER);
        st.r[1] = evt_scope_pop(s, &st.caught[0]);
        return 0;
}

START_TEST(trio_basic_timeout) {
        evt_loop *loop = test_loop_new();
        evt_event *never;

        memset(&st, 0, sizeof(st));
        ck_assert_int_eq(evt_event_new(loop, &never), 0);
        evt_task_unref(test_spawn(loop, basic_timeout_fn, never, "scenario", 0));
        test_loop_run(loop);
        evt_event_free(never);
        test_loop_free(loop);
        ck_assert(st.called[0]);
        ck_assert_int_eq(st.r[0], -ECANCELED);
        ck_assert_int_eq(st.r[1], 0);
        ck_assert(st.caught[0]);
}
END_TEST

/* Ported from trio's test_timeouts.py, test_fail_after_fails_even_if_shielded:
 * an outer scope is cancelled, a shielded fail scope inside it still
 * sleeps until its own deadline, and fails then. */
static unsigned shielded_flags; /* of the inner scope */

static int shielded_timeout_fn(void *arg) {
        int64_t start = evt_time_now();
        evt_scope *outer, *inner;

        (void) arg;
        evt_scope_push(EVT_FOREVER, 0, &outer);
        evt_scope_push(evt_deadline_in(TARGET), shielded_flags, &inner);
        evt_scope_cancel(outer);
        st.r[0] = evt_sleep(EVT_SEC(100));
        st.took = evt_time_now() - start;
        st.r[1] = evt_scope_pop(inner, &st.caught[1]);
        st.r[2] = evt_scope_pop(outer, &st.caught[0]);
        return 0;
}

START_TEST(trio_fail_after_fails_even_if_shielded) {
        shielded_flags = EVT_SCOPE_FAIL | EVT_SCOPE_SHIELD;
        run(shielded_timeout_fn);
        ck_assert_int_eq(st.r[0], -ETIMEDOUT);
        ck_assert_int_ge(st.took, TARGET);
        ck_assert_int_lt(st.took, TARGET + SLACK);
        ck_assert(st.caught[1]);
        ck_assert_int_eq(st.r[1], -ECANCELED); /* outer's, once the shield ends */
        ck_assert(st.caught[0]);
        ck_assert_int_eq(st.r[2], 0);
}
END_TEST

/* A task's own cancel is the outermost scope: a shield scope keeps it out
 * (evt_shield_push too, and they nest), a forced cancel pierces all. */
static int task_cancel_fn(void *arg) {
        evt_scope *shield, *inner;

        (void) arg;
        evt_scope_push(EVT_FOREVER, EVT_SCOPE_SHIELD, &shield);
        evt_task_cancel(evt_task_current(), 0);
        st.r[0] = evt_yield();
        evt_shield_push();
        evt_scope_push(EVT_FOREVER, 0, &inner);
        st.r[1] = evt_shield_pop(); /* a scope is open inside the shield */
        st.r[2] = evt_scope_pop(shield, NULL); /* not the innermost */
        evt_scope_cancel(inner);
        st.r[3] = evt_yield();
        st.r[4] = evt_scope_pop(inner, &st.caught[0]);
        st.r[5] = evt_shield_pop();
        evt_task_cancel(evt_task_current(), EVT_CANCEL_FORCE);
        st.r[6] = evt_yield();
        st.r[7] = evt_scope_pop(shield, NULL);
        return 0;
}

START_TEST(task_cancel_and_shields) {
        run(task_cancel_fn);
        ck_assert_int_eq(st.r[0], 0);
        ck_assert_int_eq(st.r[1], -EINVAL);
        ck_assert_int_eq(st.r[2], -EINVAL);
        ck_assert_int_eq(st.r[3], -ECANCELED);
        ck_assert_int_eq(st.r[4], 0);
        ck_assert(st.caught[0]);
        ck_assert_int_eq(st.r[5], 0);
        ck_assert_int_eq(st.r[6], -ECANCELED);
        ck_assert_int_eq(st.r[7], -ECANCELED);
}
END_TEST

/* Another task cancels a scope in which a task waits: the wait ends now.
 * Scopes left open when a task ends go with it. */
static int waiter_in_scope_fn(void *arg) {
        evt_scope **s = arg;
        evt_scope *left;

        evt_scope_push(EVT_FOREVER, 0, s);
        st.r[0] = evt_sleep(EVT_SEC(100));
        st.r[1] = evt_scope_pop(*s, &st.caught[0]);
        evt_move_on_after(EVT_SEC(100), &left);
        return 0;
}

static int scope_canceller_fn(void *arg) {
        evt_scope **s = arg;

        if (!POLL_UNTIL(*s != NULL && st.r[0] == 1))
                return -1;
        return evt_scope_cancel(*s);
}

START_TEST(scope_cancel_from_another_task) {
        evt_loop *loop = test_loop_new();
        evt_scope *s = NULL;

        memset(&st, 0, sizeof(st));
        st.r[0] = 1;
        evt_task_unref(test_spawn(loop, waiter_in_scope_fn, &s, "waiter", 0));
        evt_task_unref(test_spawn(loop, scope_canceller_fn, &s, "canceller", 0));
        test_loop_run(loop);
        test_loop_free(loop);
        ck_assert_int_eq(st.r[0], -ECANCELED);
        ck_assert_int_eq(st.r[1], 0);
        ck_assert(st.caught[0]);
}
END_TEST

/* ---- ported from trio's test_cancelled.py, test_run.py, test_timeouts.py
 * and asyncio's test_timeouts.py ---- */

/* Holds the loop, without an await point, until `ns` have passed. */
static void hold_for(int64_t ns) {
        int64_t until = evt_time_now() + ns;

        while (evt_time_now() < until)
                ;
}

/* Ported from trio's test_cancelled.py, test_cancel_reason: the cause of a
 * cancel shows in what the await point returns. An explicit cancel of a
 * fail scope is -ECANCELED and its pop is quiet; a fail scope whose
 * deadline has passed is -ETIMEDOUT, and so is its pop. */
static int cancel_reason_fn(void *arg) {
        evt_scope *s;

        (void) arg;
        evt_fail_after(EVT_SEC(100), &s);
        evt_scope_cancel(s);
        st.r[0] = evt_yield();
        st.r[1] = evt_scope_pop(s, &st.caught[0]);
        evt_fail_at(EVT_NOW, &s);
        st.r[2] = evt_yield();
        st.r[3] = evt_scope_pop(s, &st.caught[1]);
        return 0;
}

START_TEST(trio_cancel_reason) {
        run(cancel_reason_fn);
        ck_assert_int_eq(st.r[0], -ECANCELED);
        ck_assert_int_eq(st.r[1], 0);
        ck_assert(st.caught[0]);
        ck_assert_int_eq(st.r[2], -ETIMEDOUT);
        ck_assert_int_eq(st.r[3], -ETIMEDOUT);
        ck_assert(st.caught[1]);
}
END_TEST

/* Ported from trio's test_cancelled.py, test_cancel_reason_not_overwritten:
 * a fail scope cancelled explicitly stays so once its deadline passes. */
static int not_overwritten_fn(void *arg) {
        evt_scope *s;

        (void) arg;
        evt_fail_after(EVT_MSEC(5), &s);
        evt_scope_cancel(s);
        st.r[0] = evt_yield();
        hold_for(EVT_MSEC(10));
        st.r[1] = evt_yield();
        st.r[2] = evt_scope_pop(s, &st.caught[0]);
        return 0;
}

START_TEST(trio_cancel_reason_not_overwritten) {
        run(not_overwritten_fn);
        ck_assert_int_eq(st.r[0], -ECANCELED);
        ck_assert_int_eq(st.r[1], -ECANCELED);
        ck_assert_int_eq(st.r[2], 0);
        ck_assert(st.caught[0]);
}
END_TEST

/* Ported from trio's test_cancelled.py, test_cancel_reason_not_overwritten_2:
 * a fail scope whose deadline has passed stays timed out when it is then
 * cancelled explicitly: the first cause stays. */
static int not_overwritten_2_fn(void *arg) {
        evt_scope *s;

        (void) arg;
        evt_fail_at(EVT_NOW, &s);
        st.r[0] = evt_yield();
        st.r[1] = evt_scope_cancel(s);
        st.r[2] = evt_yield();
        st.called[0] = evt_scope_cancel_called(s);
        st.r[3] = evt_scope_pop(s, &st.caught[0]);
        return 0;
}

START_TEST(trio_cancel_reason_not_overwritten_2) {
        run(not_overwritten_2_fn);
        ck_assert_int_eq(st.r[0], -ETIMEDOUT);
        ck_assert_int_eq(st.r[1], 0);
        ck_assert_int_eq(st.r[2], -ETIMEDOUT);
        ck_assert(st.called[0]);
        ck_assert_int_eq(st.r[3], -ETIMEDOUT);
        ck_assert(st.caught[0]);
}
END_TEST

/* Ported from trio's test_run.py, test_cancel_edge_cases: two cancels in
 * a row are one; the cancel is level-triggered, every wait inside fails. */
static int edge_cases_fn(void *arg) {
        evt_scope *s;

        (void) arg;
        evt_scope_push(EVT_FOREVER, 0, &s);
        st.r[0] = evt_scope_cancel(s);
        st.r[1] = evt_scope_cancel(s);
        st.r[2] = evt_yield();
        st.called[0] = evt_scope_cancel_called(s);
        st.r[3] = evt_scope_pop(s, &st.caught[0]);
        evt_scope_push(EVT_FOREVER, 0, &s);
        evt_scope_cancel(s);
        st.r[4] = evt_sleep(EVT_SEC(100));
        st.r[5] = evt_sleep(EVT_SEC(100));
        st.r[6] = evt_scope_pop(s, NULL);
        st.r[7] = evt_yield();
        return 0;
}

START_TEST(trio_cancel_edge_cases) {
        run(edge_cases_fn);
        ck_assert_int_eq(st.r[0], 0);
        ck_assert_int_eq(st.r[1], 0);
        ck_assert_int_eq(st.r[2], -ECANCELED);
        ck_assert(st.called[0]);
        ck_assert_int_eq(st.r[3], 0);
        ck_assert(st.caught[0]);
        ck_assert_int_eq(st.r[4], -ECANCELED);
        ck_assert_int_eq(st.r[5], -ECANCELED);
        ck_assert_int_eq(st.r[6], 0);
        ck_assert_int_eq(st.r[7], 0);
}
END_TEST

/* Ported from trio's test_run.py, test_cancel_shielding. A scope's shield
 * is fixed at its push here, so trio's toggling of inner.shield becomes a
 * shield scope pushed inside: it keeps the outer cancel out, not that of a
 * scope inside it, nor its own, which it absorbs; past it, the outer
 * cancel is delivered again. */
static int shielding_fn(void *arg) {
        evt_scope *outer, *inner, *shield, *innerest;

        (void) arg;
        evt_scope_push(EVT_FOREVER, 0, &outer);
        evt_scope_push(EVT_FOREVER, 0, &inner);
        st.r[0] = evt_yield();
        evt_scope_cancel(outer);
        st.r[1] = evt_yield();
        evt_scope_push(EVT_FOREVER, EVT_SCOPE_SHIELD, &shield);
        st.r[2] = evt_yield();
        evt_scope_push(EVT_FOREVER, 0, &innerest);
        evt_scope_cancel(innerest);
        st.r[3] = evt_yield();
        evt_scope_pop(innerest, &st.caught[2]);
        st.r[4] = evt_yield();
        evt_scope_cancel(shield);
        st.r[5] = evt_yield();
        st.r[6] = evt_scope_pop(shield, &st.caught[1]);
        st.r[7] = evt_scope_pop(inner, NULL);
        evt_scope_pop(outer, &st.caught[0]);
        return 0;
}

START_TEST(trio_cancel_shielding) {
        run(shielding_fn);
        ck_assert_int_eq(st.r[0], 0);
        ck_assert_int_eq(st.r[1], -ECANCELED);
        ck_assert_int_eq(st.r[2], 0);
        ck_assert_int_eq(st.r[3], -ECANCELED);
        ck_assert(st.caught[2]);
        ck_assert_int_eq(st.r[4], 0);
        ck_assert_int_eq(st.r[5], -ECANCELED);
        ck_assert(st.caught[1]);
        ck_assert_int_eq(st.r[6], -ECANCELED); /* the outer cancel, past the shield */
        ck_assert_int_eq(st.r[7], -ECANCELED);
        ck_assert(st.caught[0]);
}
END_TEST

/* Ported from trio's test_timeouts.py, test_context_shields_from_outer, for
 * both move_on_after and fail_after with shield=True: an outer scope is
 * cancelled, an await point inside the shielded timeout scope is not. */
static int shields_from_outer_fn(void *arg) {
        evt_scope *outer, *inner;

        (void) arg;
        for (int i = 0; i < 2; i++) {
                evt_scope_push(EVT_FOREVER, 0, &outer);
                evt_scope_push(evt_deadline_in(TARGET), EVT_SCOPE_SHIELD | (i ? EVT_SCOPE_FAIL : 0), &inner);
                evt_scope_cancel(outer);
                st.r[2 * i] = evt_yield();
                st.r[2 * i + 1] = evt_scope_pop(inner, NULL);
                evt_scope_pop(outer, NULL);
        }
        return 0;
}

START_TEST(trio_context_shields_from_outer) {
        run(shields_from_outer_fn);
        for (int i = 0; i < 2; i++) {
                ck_assert_int_eq(st.r[2 * i], 0);
                ck_assert_int_eq(st.r[2 * i + 1], -ECANCELED); /* the outer's, at the shield's end */
        }
}
END_TEST

/* Ported from trio's test_timeouts.py,
 * test_move_on_after_moves_on_even_if_shielded: an outer scope is
 * cancelled; a shielded move-on scope inside sleeps until its own deadline,
 * about TARGET, and moves on; the outer cancel comes at its end. */
START_TEST(trio_move_on_after_moves_on_even_if_shielded) {
        shielded_flags = EVT_SCOPE_SHIELD;
        run(shielded_timeout_fn);
        ck_assert_int_eq(st.r[0], -ECANCELED);
        ck_assert_int_ge(st.took, TARGET);
        ck_assert_int_lt(st.took, TARGET + SLACK);
        ck_assert(st.caught[1]);
        ck_assert_int_eq(st.r[1], -ECANCELED);
        ck_assert(st.caught[0]);
        ck_assert_int_eq(st.r[2], 0);
}
END_TEST

/* Ported from trio's test_timeouts.py, test_timeout_deadline_on_entry: the
 * deadline of move_on_after/fail_after is set when the scope is pushed,
 * and time spent inside does not move it. */
static int deadline_on_entry_fn(void *arg) {
        int64_t before = evt_time_now(), after;
        evt_scope *s;

        (void) arg;
        evt_move_on_after(EVT_SEC(10), &s);
        after = evt_time_now();
        st.deadline[0] = evt_scope_deadline(s);
        hold_for(EVT_MSEC(5));
        st.deadline[1] = evt_scope_deadline(s);
        st.deadline[2] = evt_current_deadline();
        evt_scope_pop(s, NULL);
        st.took = st.deadline[0].at - before;
        st.r[0] = st.deadline[0].at <= after + EVT_SEC(10);
        return 0;
}

START_TEST(trio_timeout_deadline_on_entry) {
        run(deadline_on_entry_fn);
        ck_assert_int_ge(st.took, EVT_SEC(10));
        ck_assert_int_eq(st.r[0], 1);
        ck_assert_int_eq(st.deadline[1].at, st.deadline[0].at);
        ck_assert_int_eq(st.deadline[2].at, st.deadline[0].at);
}
END_TEST

/* Ported from trio's test_run.py, test_yield_briefly_checks_for_timeout: a
 * yield inside a scope goes through until the deadline passes, and fails
 * after, though nothing else woke the task. */
static int yield_checks_timeout_fn(void *arg) {
        evt_scope *s;

        (void) arg;
        evt_move_on_after(EVT_MSEC(5), &s);
        st.r[0] = evt_yield();
        hold_for(EVT_MSEC(10));
        st.r[1] = evt_yield();
        st.r[2] = evt_scope_pop(s, &st.caught[0]);
        return 0;
}

START_TEST(trio_yield_briefly_checks_for_timeout) {
        run(yield_checks_timeout_fn);
        ck_assert_int_eq(st.r[0], 0);
        ck_assert_int_eq(st.r[1], -ECANCELED);
        ck_assert_int_eq(st.r[2], 0);
        ck_assert(st.caught[0]);
}
END_TEST

/* Ported from trio's test_run.py, test_current_effective_deadline: the
 * earliest deadline of the scopes that reach the task; a shield stops
 * those outside; once a cancel would fail the next await point, EVT_NOW
 * (trio's -inf), except inside a shield. */
static int effective_deadline_fn(void *arg) {
        evt_deadline d5 = evt_deadline_in(EVT_SEC(5)), d10 = evt_deadline_in(EVT_SEC(10));
        evt_deadline d3 = evt_deadline_in(EVT_SEC(3));
        evt_scope *scope1, *scope2, *s;
        int i = 0;

        (void) arg;
        st.r[i++] = evt_deadline_is_forever(evt_current_deadline());
        evt_scope_push(d5, 0, &scope1);
        evt_scope_push(d10, 0, &scope2);
        st.r[i++] = evt_current_deadline().at == d5.at;
        evt_scope_push(d3, 0, &s);
        st.r[i++] = evt_current_deadline().at == d3.at;
        evt_scope_pop(s, NULL);
        evt_scope_push(d10, EVT_SCOPE_SHIELD, &s);
        st.r[i++] = evt_current_deadline().at == d10.at;
        evt_scope_pop(s, NULL);
        evt_scope_cancel(scope1);
        st.r[i++] = evt_current_deadline().at == EVT_NOW.at;
        evt_scope_push(d10, EVT_SCOPE_SHIELD, &s);
        st.r[i++] = evt_current_deadline().at == d10.at;
        evt_scope_pop(s, NULL);
        evt_scope_pop(scope2, NULL);
        st.r[i++] = evt_current_deadline().at == EVT_NOW.at;
        evt_scope_pop(scope1, NULL);
        st.r[i++] = evt_deadline_is_forever(evt_current_deadline());
        return 0;
}

START_TEST(trio_current_effective_deadline) {
        run(effective_deadline_fn);
        for (int i = 0; i < 8; i++)
                ck_assert_msg(st.r[i] == 1, "check %d", i);
}
END_TEST

/* Ported from trio's test_run.py, test_very_deep_cancel_scope_nesting:
 * 5,000 nested scopes, the outermost cancelled; the walk that finds it
 * neither recurses nor fails. */
#define DEEP 5000

static int deep_nesting_fn(void *arg) {
        evt_scope **s = arg;

        for (int i = 0; i < DEEP; i++)
                if (evt_scope_push(EVT_FOREVER, 0, &s[i]) < 0)
                        return -1;
        evt_scope_cancel(s[0]);
        st.r[0] = evt_yield();
        for (int i = DEEP - 1; i > 0; i--)
                if (evt_scope_pop(s[i], NULL) != -ECANCELED)
                        return -1;
        st.r[1] = evt_scope_pop(s[0], &st.caught[0]);
        return 0;
}

START_TEST(trio_very_deep_cancel_scope_nesting) {
        evt_loop *loop = test_loop_new();
        evt_scope **s = calloc(DEEP, sizeof(*s));
        evt_task *t;
        int res;

        ck_assert_ptr_nonnull(s);
        memset(&st, 0, sizeof(st));
        t = test_spawn(loop, deep_nesting_fn, s, "deep", 0);
        test_loop_run(loop);
        ck_assert_int_eq(evt_task_result(t, &res), 0);
        ck_assert_int_eq(res, 0);
        evt_task_unref(t);
        test_loop_free(loop);
        free(s);
        ck_assert_int_eq(st.r[0], -ECANCELED);
        ck_assert_int_eq(st.r[1], 0);
        ck_assert(st.caught[0]);
}
END_TEST

/* Ported from asyncio's test_timeouts.py, test_nested_timeouts_concurrent:
 * an outer fail scope that expires first fails the wait inside an inner
 * one with a later deadline; the outer catches it, the inner does not. */
static int nested_concurrent_fn(void *arg) {
        evt_scope *outer, *inner;

        (void) arg;
        evt_fail_after(EVT_MSEC(2), &outer);
        evt_fail_after(EVT_SEC(1), &inner);
        st.r[0] = evt_sleep(EVT_SEC(10));
        st.r[1] = evt_scope_pop(inner, &st.caught[1]);
        st.r[2] = evt_scope_pop(outer, &st.caught[0]);
        return 0;
}

START_TEST(asyncio_nested_timeouts_concurrent) {
        run(nested_concurrent_fn);
        ck_assert_int_eq(st.r[0], -ETIMEDOUT);
        ck_assert(!st.caught[1]);
        ck_assert_int_eq(st.r[1], -ETIMEDOUT); /* the outer's, delivered at the pop */
        ck_assert(st.caught[0]);
        ck_assert_int_eq(st.r[2], -ETIMEDOUT);
}
END_TEST

/* Ported from asyncio's test_timeouts.py, test_outer_task_is_not_cancelled:
 * a scope that times out does not cancel its task; after the pop, waits
 * go through. */
static int outer_not_cancelled_fn(void *arg) {
        evt_scope *s;

        (void) arg;
        evt_fail_after(EVT_MSEC(1), &s);
        st.r[0] = evt_sleep(EVT_SEC(10));
        st.r[1] = evt_scope_pop(s, NULL);
        st.r[2] = evt_sleep(EVT_MSEC(1));
        st.called[0] = evt_task_is_cancelled(evt_task_current());
        return 0;
}

START_TEST(asyncio_outer_task_is_not_cancelled) {
        run(outer_not_cancelled_fn);
        ck_assert_int_eq(st.r[0], -ETIMEDOUT);
        ck_assert_int_eq(st.r[1], -ETIMEDOUT);
        ck_assert_int_eq(st.r[2], 0);
        ck_assert(!st.called[0]);
}
END_TEST

/* Ported from asyncio's test_timeouts.py, test_timeout_after_cancellation.
 * asyncio's cancel is edge-triggered, so its cleanup awaits freely; here
 * it is level-triggered, so cleanup runs in a shield. A fail scope inside
 * the shield still bounds it: a timeout of 0 fails the cleanup's wait
 * with -ETIMEDOUT, not -ECANCELED; past the shield the cancel is back. */
static int timeout_after_cancel_fn(void *arg) {
        evt_scope *s;

        (void) arg;
        evt_task_cancel(evt_task_current(), 0);
        st.r[0] = evt_sleep(EVT_SEC(1));
        evt_shield_push();
        evt_fail_after(0, &s);
        st.r[1] = evt_sleep(EVT_SEC(1));
        st.r[2] = evt_scope_pop(s, NULL);
        st.r[3] = evt_shield_pop();
        return 0;
}

START_TEST(asyncio_timeout_after_cancellation) {
        run(timeout_after_cancel_fn);
        ck_assert_int_eq(st.r[0], -ECANCELED);
        ck_assert_int_eq(st.r[1], -ETIMEDOUT);
        ck_assert_int_eq(st.r[2], -ETIMEDOUT);
        ck_assert_int_eq(st.r[3], -ECANCELED);
}
END_TEST

/* Ported from asyncio's test_timeouts.py, test_nested_timeout_in_finally:
 * the cleanup of a timed-out fail scope, shielded from it, is bounded by
 * a fail scope of its own, which times out on its own. */
static int timeout_in_finally_fn(void *arg) {
        evt_scope *outer, *s;

        (void) arg;
        evt_fail_after(EVT_MSEC(10), &outer);
        st.r[0] = evt_sleep(EVT_SEC(1));
        evt_shield_push();
        evt_fail_after(EVT_MSEC(10), &s);
        st.r[1] = evt_sleep(EVT_SEC(10));
        st.r[2] = evt_scope_pop(s, &st.caught[1]);
        st.r[3] = evt_shield_pop();
        st.r[4] = evt_scope_pop(outer, &st.caught[0]);
        return 0;
}

START_TEST(asyncio_nested_timeout_in_finally) {
        run(timeout_in_finally_fn);
        ck_assert_int_eq(st.r[0], -ETIMEDOUT);
        ck_assert_int_eq(st.r[1], -ETIMEDOUT);
        ck_assert_int_eq(st.r[2], -ETIMEDOUT);
        ck_assert(st.caught[1]);
        ck_assert_int_eq(st.r[3], -ETIMEDOUT); /* the outer scope's, past the shield */
        ck_assert_int_eq(st.r[4], -ETIMEDOUT);
        ck_assert(st.caught[0]);
}
END_TEST

static int args_fn(void *arg) {
        evt_scope *s;

        (void) arg;
        st.r[0] = evt_scope_push(EVT_FOREVER, 1u << 7, &s);
        st.r[1] = evt_scope_push(EVT_FOREVER, 0, NULL);
        st.r[2] = evt_scope_pop(NULL, NULL);
        st.r[3] = evt_scope_cancel(NULL);
        st.called[0] = evt_scope_cancel_called(NULL);
        st.deadline[0] = evt_scope_deadline(NULL);
        return 0;
}

START_TEST(scope_args) {
        evt_scope *s = (evt_scope *) &s;

        ck_assert_int_eq(evt_scope_push(EVT_FOREVER, 0, &s), -EINVAL); /* outside a task */
        ck_assert_ptr_eq(s, (evt_scope *) &s);
        ck_assert(evt_deadline_is_forever(evt_current_deadline()));
        run(args_fn);
        for (int i = 0; i < 4; i++)
                ck_assert_int_eq(st.r[i], -EINVAL);
        ck_assert(!st.called[0]);
        ck_assert(evt_deadline_is_forever(st.deadline[0]));
}
END_TEST

Suite *evt_test_suite(void) {
        Suite *s = suite_create("scope");
        TCase *tc;

        tc = tcase_create("deadlines");
        tcase_add_test(tc, trio_sleep_move_on_at_now);
        tcase_add_test(tc, trio_move_on_after);
        tcase_add_test(tc, trio_fail);
        tcase_add_test(tc, asyncio_timeout_basic);
        tcase_add_test(tc, asyncio_nested_timeouts);
        tcase_add_test(tc, asyncio_timeout_not_called);
        tcase_add_test(tc, asyncio_timeout_zero);
        tcase_add_test(tc, asyncio_foreign_cancel_not_expired);
        tcase_add_test(tc, asyncio_nested_timeouts_loop_busy);
        tcase_add_test(tc, every_await_point_honours_the_scope);
        suite_add_tcase(s, tc);

        tc = tcase_create("nesting");
        tcase_add_test(tc, trio_cancel_scope_nesting);
        tcase_add_test(tc, trio_basic_timeout);
        tcase_add_test(tc, trio_fail_after_fails_even_if_shielded);
        tcase_add_test(tc, task_cancel_and_shields);
        tcase_add_test(tc, scope_cancel_from_another_task);
        suite_add_tcase(s, tc);

        tc = tcase_create("ported");
        tcase_add_test(tc, trio_cancel_reason);
        tcase_add_test(tc, trio_cancel_reason_not_overwritten);
        tcase_add_test(tc, trio_cancel_reason_not_overwritten_2);
        tcase_add_test(tc, trio_cancel_edge_cases);
        tcase_add_test(tc, trio_cancel_shielding);
        tcase_add_test(tc, trio_context_shields_from_outer);
        tcase_add_test(tc, trio_move_on_after_moves_on_even_if_shielded);
        tcase_add_test(tc, trio_timeout_deadline_on_entry);
        tcase_add_test(tc, trio_yield_briefly_checks_for_timeout);
        tcase_add_test(tc, trio_current_effective_deadline);
        tcase_add_test(tc, trio_very_deep_cancel_scope_nesting);
        tcase_add_test(tc, asyncio_nested_timeouts_concurrent);
        tcase_add_test(tc, asyncio_outer_task_is_not_cancelled);
        tcase_add_test(tc, asyncio_timeout_after_cancellation);
        tcase_add_test(tc, asyncio_nested_timeout_in_finally);
        suite_add_tcase(s, tc);

        tc = tcase_create("args");
        tcase_add_test(tc, scope_args);
        suite_add_tcase(s, tc);
        return s;
}
