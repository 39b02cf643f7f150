/* Layer 3: blocking work in a thread pool, and how cancels, deadlines,
 * pauses and the lifecycle's shutdown reach the worker threads.
 *
 * The blocking functions below run on worker threads. They touch atomics
 * only, apart from settings the test wrote before the call (the pool's lock
 * orders those), and they never assert: they record, and the tasks and the
 * test body assert. Timing assertions are lower bounds, or upper bounds with
 * plenty of slack: these tests run on shared machines and under valgrind. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "testutil.h"

#define SOON EVT_MSEC(500)      /* slack for "at once" and "within a step" */
#define N_JOBS 6
#define N_CALLERS 4
#define N_MANY 200
#define UNTOUCHED INT_MIN       /* a result no call produced */

/* The same from the test body, where nothing else needs to run. */
#define SPIN_UNTIL(cond) ({                                                     \
        int64_t spin_end_ = evt_deadline_in(POLL_LIMIT).at;                      \
        bool spin_ok_;                                                          \
        while (!(spin_ok_ = (cond)) && evt_time_now() < spin_end_)              \
                nap_us(1000);                                                   \
        spin_ok_;                                                               \
})

/* ---- blocking functions -------------------------------------------------- */

/* A blocking function's side of a call, shared with the test. */
struct job {
        /* Settings, written before the call. */
        int value;              /* what the function returns */
        int sleep_ms;           /* quick_fn: how long it blocks */
        int check_every_ms;     /* cooperative_fn: time between checkpoints */
        int steps;              /* cooperative_fn: returns after this many; 0: never */
        /* What happened. */
        atomic_int runs;        /* times the function started */
        atomic_int progress;    /* cooperative_fn: steps begun */
        atomic_bool saw_pause;  /* evt_token_is_paused was true before a checkpoint */
        atomic_bool by_token;   /* it returned because a checkpoint said stop */
        atomic_bool saw_stop;   /* the token's stop flag when it returned */
        atomic_bool returned;
        _Atomic int64_t returned_at;
        atomic_bool release;    /* set by the test: return now */
        atomic_int freed;       /* job_free calls */
        atomic_bool freed_on_loop; /* the latest ran on the loop's thread */
};

/* Every test's state. Reset by setup(): under CK_FORK=no all tests share
 * one process. */
static struct {
        evt_loop *loop;
        evt_pool *pool;
        pthread_t loop_thread;
        int threads_before;     /* of the process, when the test began */
        struct job jobs[N_JOBS];
        struct caller {
                /* The call a task makes (call_in_task). */
                evt_pool *pool;
                evt_blocking_fn fn;
                void *arg;
                evt_call_opts opts;
                evt_deadline deadline;
                bool cancel_first;      /* the task cancels itself first */
                bool pause_first;       /* the task pauses the loop first */
                /* What came back. */
                evt_task *task;
                int r, result;
                int64_t returned_at;
        } callers[N_CALLERS];
} st;

static void nap_us(long us) {
        struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/* CLOCK_MONOTONIC, as evt_time_now(), which is not documented as
 * thread-safe. */
static int64_t thread_now(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Records the return. `returned` is stored last: a test that has seen it
 * may reuse the job, so the function must not read it any more. */
static int job_return(struct job *j, const evt_token *token) {
        int value = j->value;

        atomic_store(&j->saw_stop, evt_token_stop_requested(token));
        atomic_store(&j->returned_at, thread_now());
        atomic_store(&j->returned, true);
        return value;
}

/* Blocks sleep_ms, then returns value; never looks at its token. */
static int quick_fn(evt_token *token, void *arg) {
        struct job *j = arg;

        atomic_fetch_add(&j->runs, 1);
        nap_us(j->sleep_ms * 1000L);
        return job_return(j, token);
}

/* Works in steps of check_every_ms with a checkpoint before each, so a
 * pause holds it and a stop ends it within one step; also ends after
 * `steps` steps, or when the test releases it. */
static int cooperative_fn(evt_token *token, void *arg) {
        struct job *j = arg;

        atomic_fetch_add(&j->runs, 1);
        for (int i = 0; (j->steps == 0 || i < j->steps) && !atomic_load(&j->release); i++) {
                if (evt_token_is_paused(token))
                        atomic_store(&j->saw_pause, true);
                if (evt_token_checkpoint(token) < 0) {
                        atomic_store(&j->by_token, true);
                        break;
                }
                atomic_fetch_add(&j->progress, 1);
                nap_us(j->check_every_ms * 1000L);
        }
        return job_return(j, token);
}

/* Never looks at its token: only the test's own flag lets it return. It
 * gives up after a while anyway, so that a failed test leaves no thread
 * spinning for ever. */
static int uncooperative_fn(evt_token *token, void *arg) {
        struct job *j = arg;
        int64_t give_up = thread_now() + 2 * POLL_LIMIT;

        atomic_fetch_add(&j->runs, 1);
        while (!atomic_load(&j->release) && thread_now() < give_up)
                nap_us(1000);
        return job_return(j, token);
}

/* The arg_free of every job: counts, and notes which thread it ran on. */
static void job_free(void *arg) {
        struct job *j = arg;

        atomic_store(&j->freed_on_loop, pthread_equal(pthread_self(), st.loop_thread));
        atomic_fetch_add(&j->freed, 1);
}

/* Reads for the test's side. Functions, not macros: a failed assertion
 * then shows the expression as written. */
static int count(atomic_int *n) {
        return atomic_load(n);
}

static bool flag(atomic_bool *b) {
        return atomic_load(b);
}

static int64_t when(_Atomic int64_t *t) {
        return atomic_load(t);
}

/* job_free ran exactly once, on the loop's thread or a worker. */
static void assert_freed_once(struct job *j, bool on_loop) {
        ck_assert_int_eq(count(&j->freed), 1);
        ck_assert_int_eq(flag(&j->freed_on_loop), on_loop);
}

/* ---- tasks that make calls ----------------------------------------------- */

static int caller_fn(void *arg) {
        struct caller *c = arg;

        if (c->cancel_first)
                evt_task_cancel(evt_task_current(), 0);
        if (c->pause_first)
                evt_loop_pause(st.loop);
        c->r = evt_pool_call(c->pool, c->fn, c->arg, &c->opts, c->deadline, &c->result);
        c->returned_at = evt_time_now();
        return c->r;
}

/* Spawns a task that makes one call of fn(arg) on st.pool with no deadline;
 * the test may change the call's settings before the loop runs. */
static struct caller *call_in_task(int i, evt_blocking_fn fn, void *arg, const char *name, unsigned flags) {
        struct caller *c = &st.callers[i];

        c->pool = st.pool;
        c->fn = fn;
        c->arg = arg;
        c->deadline = EVT_FOREVER;
        c->r = 1;
        c->result = UNTOUCHED;
        c->task = test_spawn(st.loop, caller_fn, c, name, flags);
        return c;
}

/* ---- setup and teardown -------------------------------------------------- */

static evt_pool_stats pool_stats(void) {
        evt_pool_stats ps;

        ck_assert_int_eq(evt_pool_stats_get(st.pool, &ps), 0);
        return ps;
}

/* From a task: until the pool has `running` calls running and `queued`
 * waiting for a thread. */
static bool pool_is(size_t running, size_t queued) {
        evt_pool_stats ps = pool_stats();

        return ps.running == running && ps.queued == queued;
}

static bool wait_pool(size_t running, size_t queued) {
        return POLL_UNTIL(pool_is(running, queued));
}

/* Threads of this process, from /proc; -1 without /proc. */
static int threads_alive(void) {
        DIR *d = opendir("/proc/self/task");
        struct dirent *e;
        int n = 0;

        if (!d)
                return -1;
        while ((e = readdir(d)))
                if (e->d_name[0] != '.')
                        n++;
        closedir(d);
        return n;
}

static void *no_op(void *arg) {
        return arg;
}

/* A sanitizer's runtime may start a thread of its own with the process's
 * first pthread_create: start and join one before counting, so that it is
 * not taken for a worker later. */
static int threads_baseline(void) {
        pthread_t t;

        ck_assert_int_eq(pthread_create(&t, NULL, no_op, NULL), 0);
        ck_assert_int_eq(pthread_join(t, NULL), 0);
        return threads_alive();
}

static void setup(unsigned threads, size_t queue_max) {
        memset(&st, 0, sizeof(st));
        st.loop_thread = pthread_self();
        st.threads_before = threads_baseline();
        st.loop = test_loop_new();
        ck_assert_int_eq(evt_pool_new(st.loop, &(evt_pool_opts) { threads, queue_max }, &st.pool), 0);
}

static int settle_fn(void *arg) {
        (void) arg;
        POLL_UNTIL(pool_stats().calls == 0);
        return 0;
}

/* Runs the loop until the pool has collected every call. evt_loop_run
 * returns when the last task ends, and a call whose task gave up on it may
 * still be running then. */
static void settle(void) {
        evt_task_unref(test_spawn(st.loop, settle_fn, NULL, "settle", 0));
        ck_assert_int_eq(evt_loop_run(st.loop), 0);
        ck_assert_uint_eq(pool_stats().calls, 0);
}

/* Every thread a test started has ended: valgrind must see none at exit,
 * and the next test none of this one's. */
static void wait_threads_gone(void) {
        SPIN_UNTIL(threads_alive() <= st.threads_before);
        ck_assert_int_le(threads_alive(), st.threads_before);
}

/* The end of every test: no call left in the pool, the pool freed (its
 * idle threads joined), every thread gone, nothing left in the loop. */
static void finish(void) {
        if (st.pool) {
                evt_pool_stats ps;

                settle();
                ps = pool_stats();
                ck_assert_uint_eq(ps.running, 0);
                ck_assert_uint_eq(ps.queued, 0);
                evt_pool_free(st.pool);
                st.pool = NULL;
        }
        wait_threads_gone();
        for (int i = 0; i < N_CALLERS; i++)
                evt_task_unref(st.callers[i].task);
        test_loop_free(st.loop);
}

/* ---- results ------------------------------------------------------------- */

static struct {
        int r1, r2, result1;
        evt_pool_stats after;
} res;

static int result_task(void *arg) {
        (void) arg;
        res.r1 = evt_pool_call(st.pool, quick_fn, &st.jobs[0], NULL, EVT_FOREVER, &res.result1);
        res.r2 = evt_pool_call(st.pool, quick_fn, &st.jobs[0], NULL, EVT_FOREVER, NULL); /* result unwanted */
        res.after = pool_stats();
        return 0;
}

START_TEST(call_returns_result) {
        setup(2, 0);
        memset(&res, 0, sizeof(res));
        res.result1 = UNTOUCHED;
        st.jobs[0].value = 7;
        evt_task_unref(test_spawn(st.loop, result_task, NULL, "caller", 0));
        ck_assert_int_eq(evt_loop_run(st.loop), 0);
        ck_assert_int_eq(res.r1, 0);
        ck_assert_int_eq(res.result1, 7);
        ck_assert_int_eq(res.r2, 0);
        ck_assert_int_eq(count(&st.jobs[0].runs), 2);
        /* Both calls collected; one thread did both. */
        ck_assert_uint_eq(res.after.calls, 0);
        ck_assert_uint_eq(res.after.running, 0);
        ck_assert_uint_eq(res.after.queued, 0);
        ck_assert_uint_eq(res.after.completed, 2);
        ck_assert_uint_eq(res.after.threads, 1);
        finish();
}
END_TEST

/* A failing function's error is its result; the call itself succeeded. */
START_TEST(failure_is_result) {
        struct caller *c;

        setup(1, 0);
        st.jobs[0].value = -EIO;
        c = call_in_task(0, quick_fn, &st.jobs[0], "caller", 0);
        ck_assert_int_eq(evt_loop_run(st.loop), 0);
        ck_assert_int_eq(c->r, 0);
        ck_assert_int_eq(c->result, -EIO);
        finish();
}
END_TEST

/* ---- the seed's program -------------------------------------------------- */

static struct {
        int quick_join, endless_join;
        bool endless_running;
        int64_t cancelled_at;
        bool settled;
        evt_pool_stats after;
} seed;

/* Waits for the quick call, then gives up on the endless one. */
static int seed_main(void *arg) {
        struct caller *quick = &st.callers[0], *endless = &st.callers[1];

        (void) arg;
        seed.quick_join = evt_task_join(quick->task, EVT_FOREVER, NULL);
        seed.endless_running = POLL_UNTIL(count(&st.jobs[1].progress) > 0);
        seed.cancelled_at = evt_time_now();
        evt_task_cancel(endless->task, 0);
        seed.endless_join = evt_task_join(endless->task, evt_deadline_in(POLL_LIMIT), NULL);
        /* Its thread stops at its next checkpoint. */
        seed.settled = POLL_UNTIL(flag(&st.jobs[1].returned) && pool_stats().running == 0);
        seed.after = pool_stats();
        return 0;
}

/* A quick call and an endless cooperative one, started together: the quick
 * one's result arrives; cancelling the endless one's task returns at once,
 * and its function stops at its next checkpoint. */
START_TEST(seed_quick_and_endless) {
        struct job *quick = &st.jobs[0], *endless = &st.jobs[1];
        struct caller *qc, *ec;
        int64_t fn_returned_at;

        setup(2, 0);
        memset(&seed, 0, sizeof(seed));
        quick->sleep_ms = 50;
        quick->value = 42;
        endless->check_every_ms = 20;
        qc = call_in_task(0, quick_fn, quick, "quick", 0);
        ec = call_in_task(1, cooperative_fn, endless, "endless", 0);
        evt_task_unref(test_spawn(st.loop, seed_main, NULL, "main", 0));
        ck_assert_int_eq(evt_loop_run(st.loop), 0);

        ck_assert_int_eq(seed.quick_join, 0);
        ck_assert_int_eq(qc->r, 0);
        ck_assert_int_eq(qc->result, 42);

        ck_assert(seed.endless_running);
        ck_assert_int_eq(seed.endless_join, 0);
        ck_assert_int_eq(ec->r, -ECANCELED);
        ck_assert_int_eq(ec->result, UNTOUCHED);
        ck_assert_int_lt(ec->returned_at - seed.cancelled_at, SOON);

        /* The function returned, through its token, within about one
         * check interval of the cancel. */
        ck_assert(seed.settled);
        ck_assert(flag(&endless->by_token));
        ck_assert(flag(&endless->saw_stop));
        fn_returned_at = when(&endless->returned_at);
        ck_assert_int_ge(fn_returned_at, seed.cancelled_at);
        ck_assert_int_lt(fn_returned_at - seed.cancelled_at, EVT_MSEC(20) + SOON);
        ck_assert_int_ge(count(&endless->progress), 1);
        ck_assert_uint_eq(seed.after.running, 0);
        ck_assert_uint_eq(seed.after.completed, 2);
        finish();
}
END_TEST

/* ---- pause --------------------------------------------------------------- */

#define PAUSE_STEP_MS 10

static struct {
        bool started, paused, resumed, moved_again;
        int held_before, held_after;    /* the pausable call's progress */
        int free_before, free_after;    /* the NOPAUSE task's call's */
} pz;

static int progress(int i) {
        return count(&st.jobs[i].progress);
}

/* Pauses and resumes with real SIGINTs; not pausable itself. Job 0 is the
 * pausable call, job 1 the NOPAUSE task's. */
static int sigint_controller(void *arg) {
        (void) arg;
        pz.started = POLL_UNTIL(progress(0) > 0 && progress(1) > 0);
        raise(SIGINT);
        pz.paused = POLL_UNTIL(evt_loop_is_paused(st.loop));
        pz.held_before = progress(0);
        pz.free_before = progress(1);
        evt_sleep(EVT_MSEC(PAUSE_STEP_MS) + EVT_MSEC(350));
        pz.held_after = progress(0);
        pz.free_after = progress(1);
        raise(SIGINT);
        pz.resumed = POLL_UNTIL(!evt_loop_is_paused(st.loop));
        pz.moved_again = POLL_UNTIL(progress(0) > pz.held_after);
        atomic_store(&st.jobs[0].release, true);
        atomic_store(&st.jobs[1].release, true);
        return 0;
}

START_TEST(pause_sigint_holds_checkpoints) {
        evt_lifecycle_opts lo = { .exit_when_idle = true, .emergency_fd = -1 };
        struct caller *held, *free_running;
        evt_lifecycle *lc = NULL;

        setup(2, 0);
        memset(&pz, 0, sizeof(pz));
        ck_assert_int_eq(evt_lifecycle_new(st.loop, &lo, NULL, &lc), 0);
        for (int i = 0; i < 2; i++) {
                st.jobs[i].check_every_ms = PAUSE_STEP_MS;
                st.jobs[i].value = 10 + i;
        }
        held = call_in_task(0, cooperative_fn, &st.jobs[0], "pausable", 0);
        free_running = call_in_task(1, cooperative_fn, &st.jobs[1], "nopause", EVT_TASK_NOPAUSE);
        evt_task_unref(test_spawn(st.loop, sigint_controller, NULL, "control", EVT_TASK_NOPAUSE));
        ck_assert_int_eq(evt_lifecycle_run(lc), EVT_EXIT_CLEAN);
        evt_lifecycle_free(lc);

        ck_assert(pz.started);
        ck_assert(pz.paused);
        /* Paused: the pausable call stands at its checkpoint, once the step
         * under way when the pause came (at most one) has finished, however
         * late its thread gets to it... */
        ck_assert_int_le(pz.held_after - pz.held_before, 1);
        ck_assert(flag(&st.jobs[0].saw_pause));
        /* ...while the NOPAUSE task's call runs on, never told of a pause. */
        ck_assert_int_gt(pz.free_after, pz.free_before);
        ck_assert(!flag(&st.jobs[1].saw_pause));
        /* Resumed: it moves again. */
        ck_assert(pz.resumed);
        ck_assert(pz.moved_again);
        ck_assert_int_eq(held->r, 0);
        ck_assert_int_eq(held->result, 10);
        ck_assert_int_eq(free_running->r, 0);
        ck_assert_int_eq(free_running->result, 11);
        ck_assert(!flag(&st.jobs[0].by_token));
        finish();
}
END_TEST

static struct {
        bool queued;
        evt_pool_stats during;
        int runs_during;
} hold;

/* The caller paused the loop and made its call in the same step, so the
 * call was made while paused; this task (not pausable) watches, resumes. */
static int hold_controller(void *arg) {
        (void) arg;
        hold.queued = wait_pool(0, 1);
        evt_sleep(EVT_MSEC(100));
        hold.during = pool_stats();
        hold.runs_during = count(&st.jobs[0].runs);
        evt_loop_resume(st.loop);
        return 0;
}

/* A pausable call made while the loop is paused waits in the queue, a
 * thread free, until the resume. */
START_TEST(pause_holds_new_calls) {
        struct caller *c;

        setup(2, 0);
        memset(&hold, 0, sizeof(hold));
        st.jobs[0].value = 5;
        c = call_in_task(0, quick_fn, &st.jobs[0], "pausable", 0);
        c->pause_first = true;
        evt_task_unref(test_spawn(st.loop, hold_controller, NULL, "control", EVT_TASK_NOPAUSE));
        ck_assert_int_eq(evt_loop_run(st.loop), 0);
        ck_assert(hold.queued);
        ck_assert_uint_eq(hold.during.queued, 1);
        ck_assert_uint_eq(hold.during.running, 0);
        ck_assert_int_eq(hold.runs_during, 0);
        ck_assert_int_eq(c->r, 0);
        ck_assert_int_eq(c->result, 5);
        ck_assert_int_eq(count(&st.jobs[0].runs), 1);
        finish();
}
END_TEST

/* ---- queue limits -------------------------------------------------------- */

#define MANY_THREADS 2
#define MANY_QUEUE 4

static struct {
        int r[N_MANY], result[N_MANY];
        int done;
        evt_pool_stats max;     /* the largest of each count seen */
        atomic_int active, max_active; /* functions running at once */
} many;

/* Returns its index, after a moment, and keeps count of how many run at
 * once. */
static int index_fn(evt_token *token, void *arg) {
        int active = atomic_fetch_add(&many.active, 1) + 1;
        int seen_max = count(&many.max_active);

        (void) token;
        while (active > seen_max && !atomic_compare_exchange_weak(&many.max_active, &seen_max, active))
                ;
        nap_us(200);
        atomic_fetch_sub(&many.active, 1);
        return (int) (intptr_t) arg;
}

static void many_observe(void) {
        evt_pool_stats ps = pool_stats();

#define MAX_OF(field) many.max.field = ps.field > many.max.field ? ps.field : many.max.field
        MAX_OF(threads);
        MAX_OF(queued);
        MAX_OF(running);
        MAX_OF(calls);
#undef MAX_OF
}

static int many_task(void *arg) {
        int i = (int) (intptr_t) arg;

        many_observe();
        many.r[i] = evt_pool_call(st.pool, index_fn, arg, NULL, EVT_FOREVER, &many.result[i]);
        many_observe();
        many.done++;
        return 0;
}

static int many_ticker(void *arg) {
        (void) arg;
        POLL_UNTIL((many_observe(), many.done == N_MANY));
        return 0;
}

/* Many more calls than threads and queue: each waits for room, none is
 * lost, each gets its own result, and the pool never holds more than
 * threads + queue_max. */
START_TEST(queue_many_calls) {
        setup(MANY_THREADS, MANY_QUEUE);
        memset(&many, 0, sizeof(many));
        for (int i = 0; i < N_MANY; i++) {
                many.r[i] = 1;
                many.result[i] = UNTOUCHED;
                ck_assert_int_eq(evt_task_spawn(st.loop, many_task, (void *) (intptr_t) i, NULL, NULL), 0);
        }
        evt_task_unref(test_spawn(st.loop, many_ticker, NULL, "ticker", 0));
        ck_assert_int_eq(evt_loop_run(st.loop), 0);

        ck_assert_int_eq(many.done, N_MANY);
        for (int i = 0; i < N_MANY; i++) {
                ck_assert_int_eq(many.r[i], 0);
                ck_assert_int_eq(many.result[i], i);
        }
        ck_assert_uint_eq(pool_stats().completed, N_MANY);
        /* The limit on calls in flight was reached (all tasks start in one
         * round) and kept. It bounds `queued` too: before the threads have
         * started, every call in flight is queued. */
        ck_assert_uint_eq(many.max.calls, MANY_THREADS + MANY_QUEUE);
        ck_assert_uint_le(many.max.queued, MANY_THREADS + MANY_QUEUE);
        ck_assert_uint_le(many.max.running, MANY_THREADS);
        ck_assert_uint_le(many.max.threads, MANY_THREADS);
        ck_assert_int_le(count(&many.max_active), MANY_THREADS);
        finish();
}
END_TEST

static struct {
        bool full;
        int r_nowait, r_room, r_later;
        int result_nowait, result_room, result_later;
        evt_deadline room_deadline;
        int64_t room_returned_at;
} full;

/* With one call running and one queued, the pool (1 thread, queue of 1) is
 * full. */
static int full_controller(void *arg) {
        const evt_call_opts nowait = { .flags = EVT_CALL_NOWAIT, .arg_free = job_free };
        const evt_call_opts owned = { .arg_free = job_free };

        (void) arg;
        full.full = wait_pool(1, 1) && pool_stats().calls == 2;
        full.r_nowait = evt_pool_call(st.pool, quick_fn, &st.jobs[2], &nowait, EVT_FOREVER,
                                      &full.result_nowait);
        /* Without NOWAIT it waits for room, until its deadline. */
        full.room_deadline = evt_deadline_in(EVT_MSEC(30));
        full.r_room = evt_pool_call(st.pool, quick_fn, &st.jobs[3], &owned, full.room_deadline,
                                    &full.result_room);
        full.room_returned_at = evt_time_now();
        atomic_store(&st.jobs[0].release, true);
        evt_task_join(st.callers[0].task, EVT_FOREVER, NULL);
        evt_task_join(st.callers[1].task, EVT_FOREVER, NULL);
        /* Room again: NOWAIT goes through. */
        full.r_later = evt_pool_call(st.pool, quick_fn, &st.jobs[4], &nowait, EVT_FOREVER,
                                     &full.result_later);
        return 0;
}

START_TEST(queue_nowait_full) {
        struct caller *running, *queued;

        setup(1, 1);
        memset(&full, 0, sizeof(full));
        full.result_nowait = full.result_room = full.result_later = UNTOUCHED;
        for (int i = 0; i < 5; i++)
                st.jobs[i].value = 100 + i;
        st.jobs[0].check_every_ms = 1;
        running = call_in_task(0, cooperative_fn, &st.jobs[0], "running", 0);
        queued = call_in_task(1, quick_fn, &st.jobs[1], "queued", 0);
        evt_task_unref(test_spawn(st.loop, full_controller, NULL, "control", 0));
        ck_assert_int_eq(evt_loop_run(st.loop), 0);

        ck_assert(full.full);
        /* Full: -EAGAIN, and arg stays the caller's. */
        ck_assert_int_eq(full.r_nowait, -EAGAIN);
        ck_assert_int_eq(full.result_nowait, UNTOUCHED);
        ck_assert_int_eq(count(&st.jobs[2].runs), 0);
        ck_assert_int_eq(count(&st.jobs[2].freed), 0);
        /* The wait for room timed out: it took arg, and freed it. */
        ck_assert_int_eq(full.r_room, -ETIMEDOUT);
        ck_assert_int_eq(full.result_room, UNTOUCHED);
        ck_assert_int_ge(full.room_returned_at, full.room_deadline.at);
        ck_assert_int_eq(count(&st.jobs[3].runs), 0);
        assert_freed_once(&st.jobs[3], true);
        /* The accepted calls completed. */
        ck_assert_int_eq(running->r, 0);
        ck_assert_int_eq(running->result, 100);
        ck_assert_int_eq(queued->r, 0);
        ck_assert_int_eq(queued->result, 101);
        ck_assert_int_eq(full.r_later, 0);
        ck_assert_int_eq(full.result_later, 104);
        ck_assert_int_eq(count(&st.jobs[4].freed), 1);
        finish();
}
END_TEST

/* ---- arg_free: exactly once, whatever happens to the call ----------------- */

static struct {
        bool ready, released;
        int join;
        int freed_at_return;    /* job_free calls when evt_pool_call returned */
        bool returned_at_return;/* ...and whether fn had returned */
} af;

START_TEST(arg_free_after_completion) {
        struct caller *c;

        setup(1, 0);
        st.jobs[0].value = 3;
        c = call_in_task(0, quick_fn, &st.jobs[0], "caller", 0);
        c->opts.arg_free = job_free;
        ck_assert_int_eq(evt_loop_run(st.loop), 0);
        ck_assert_int_eq(c->r, 0);
        ck_assert_int_eq(c->result, 3);
        /* On the worker thread, before the result came back. */
        assert_freed_once(&st.jobs[0], false);
        finish();
}
END_TEST

/* Job 0 holds the only thread; callers[1] waits in the queue behind it. */
static int cancel_queued_controller(void *arg) {
        (void) arg;
        af.ready = wait_pool(1, 1);
        evt_task_cancel(st.callers[1].task, 0);
        af.join = evt_task_join(st.callers[1].task, EVT_FOREVER, NULL);
        af.freed_at_return = count(&st.jobs[1].freed);
        atomic_store(&st.jobs[0].release, true);
        return 0;
}

START_TEST(arg_free_cancelled_queued) {
        struct caller *blocker, *victim;

        setup(1, 0);
        memset(&af, 0, sizeof(af));
        blocker = call_in_task(0, uncooperative_fn, &st.jobs[0], "blocker", 0);
        victim = call_in_task(1, quick_fn, &st.jobs[1], "victim", 0);
        victim->opts.arg_free = job_free;
        evt_task_unref(test_spawn(st.loop, cancel_queued_controller, NULL, "control", 0));
        ck_assert_int_eq(evt_loop_run(st.loop), 0);
        ck_assert(af.ready);
        ck_assert_int_eq(af.join, 0);
        ck_assert_int_eq(victim->r, -ECANCELED);
        /* Freed on the loop's thread by the time the call returned. */
        ck_assert_int_eq(af.freed_at_return, 1);
        ck_assert_int_eq(blocker->r, 0);
        finish();
        /* The thread came free after the cancel: the call still never ran. */
        ck_assert_int_eq(count(&st.jobs[1].runs), 0);
        assert_freed_once(&st.jobs[1], true);
}
END_TEST

/* callers[0]'s function ignores its token: it runs on after the cancel
 * until released, so the call returns while it still runs. */
static int cancel_running_controller(void *arg) {
        (void) arg;
        af.ready = POLL_UNTIL(count(&st.jobs[0].runs) == 1);
        evt_task_cancel(st.callers[0].task, 0);
        af.join = evt_task_join(st.callers[0].task, EVT_FOREVER, NULL);
        af.freed_at_return = count(&st.jobs[0].freed);
        af.returned_at_return = flag(&st.jobs[0].returned);
        atomic_store(&st.jobs[0].release, true);
        af.released = POLL_UNTIL(count(&st.jobs[0].freed) == 1);
        return 0;
}

START_TEST(arg_free_cancelled_running) {
        struct caller *victim;

        setup(1, 0);
        memset(&af, 0, sizeof(af));
        victim = call_in_task(0, uncooperative_fn, &st.jobs[0], "victim", 0);
        victim->opts.arg_free = job_free;
        evt_task_unref(test_spawn(st.loop, cancel_running_controller, NULL, "control", 0));
        ck_assert_int_eq(evt_loop_run(st.loop), 0);
        ck_assert(af.ready);
        ck_assert_int_eq(victim->r, -ECANCELED);
        /* The call did not wait for its function, and arg was still its. */
        ck_assert(!af.returned_at_return);
        ck_assert_int_eq(af.freed_at_return, 0);
        /* Freed once the function returned, on its thread. */
        ck_assert(af.released);
        ck_assert(flag(&st.jobs[0].saw_stop));
        finish();
        assert_freed_once(&st.jobs[0], false);
}
END_TEST

START_TEST(arg_free_cancelled_at_entry) {
        struct caller *c;

        setup(1, 0);
        c = call_in_task(0, quick_fn, &st.jobs[0], "cancelled", 0);
        c->cancel_first = true;
        c->opts.arg_free = job_free;
        ck_assert_int_eq(evt_loop_run(st.loop), 0);
        ck_assert_int_eq(c->r, -ECANCELED);
        ck_assert_int_eq(c->result, UNTOUCHED);
        ck_assert_int_eq(count(&st.jobs[0].runs), 0);
        assert_freed_once(&st.jobs[0], true);
        ck_assert_uint_eq(pool_stats().threads, 0); /* nothing ever started */
        finish();
}
END_TEST

/* When no worker thread can be started, the call fails with -EAGAIN, which
 * takes nothing: arg_free is not called. */
static struct {
        bool no_thread;         /* thread creation really failed here */
        int r, r_after;
        int result, result_after;
} nt;

static int no_thread_task(void *arg) {
        const evt_call_opts owned = { .arg_free = job_free };
        pthread_attr_t huge, saved;

        (void) arg;
        /* A default stack larger than any address space: no thread starts
         * until it is put back, which happens before anything can fail. */
        pthread_getattr_default_np(&saved);
        pthread_attr_init(&huge);
        pthread_attr_setstacksize(&huge, (size_t) 1 << 48);
        pthread_setattr_default_np(&huge);
        nt.no_thread = test_thread_create_fails();
        nt.r = evt_pool_call(st.pool, quick_fn, &st.jobs[0], &owned, EVT_FOREVER, &nt.result);
        pthread_setattr_default_np(&saved);
        pthread_attr_destroy(&huge);
        pthread_attr_destroy(&saved);
        /* Threads start again, and so do calls. */
        nt.r_after = evt_pool_call(st.pool, quick_fn, &st.jobs[1], &owned, EVT_FOREVER, &nt.result_after);
        return 0;
}

START_TEST(arg_free_no_thread) {
        int freed;

        setup(1, 0);
        memset(&nt, 0, sizeof(nt));
        nt.result = nt.result_after = UNTOUCHED;
        st.jobs[1].value = 8;
        evt_task_unref(test_spawn(st.loop, no_thread_task, NULL, "caller", 0));
        ck_assert_int_eq(evt_loop_run(st.loop), 0);
        ck_assert_msg(nt.no_thread, "thread creation could not be made to fail here");
        ck_assert_int_eq(nt.r, -EAGAIN);
        ck_assert_int_eq(nt.result, UNTOUCHED);
        ck_assert_int_eq(count(&st.jobs[0].runs), 0);
        ck_assert_int_eq(nt.r_after, 0);
        ck_assert_int_eq(nt.result_after, 8);
        assert_freed_once(&st.jobs[1], false);
        finish();
        /* -EAGAIN takes nothing: a caller that frees arg after it must
         * not free it twice. */
        freed = count(&st.jobs[0].freed);
        ck_assert_int_eq(freed, 0);
}
END_TEST

/* ---- deadlines ----------------------------------------------------------- */

/* The deadline must pass while the function runs. Where the new thread
 * has not even taken the call by then (TSan starts threads slowly, a
 * loaded machine schedules them late), the call ends in the queue and the
 * function never runs, deadline_passes_while_queued's case: then again,
 * with a deadline ten times as far. */
START_TEST(deadline_passes_while_running) {
        struct job *j = &st.jobs[0];
        struct caller *c;

        for (int64_t after = EVT_MSEC(50);; after *= 10) {
                setup(1, 0);
                j->check_every_ms = 5;
                c = call_in_task(0, cooperative_fn, j, "caller", 0);
                c->deadline = evt_deadline_in(after);
                c->opts.arg_free = job_free;
                ck_assert_int_eq(evt_loop_run(st.loop), 0);
                ck_assert_int_eq(c->r, -ETIMEDOUT);
                ck_assert_int_eq(c->result, UNTOUCHED);
                ck_assert_int_ge(c->returned_at, c->deadline.at);
                ck_assert_int_lt(c->returned_at, c->deadline.at + SOON);
                settle();
                if (count(&j->runs) > 0)
                        break;
                ck_assert_msg(after < EVT_SEC(5), "no thread took the call within %lld ms",
                              (long long) (after / EVT_MSEC(1)));
                finish();
        }
        /* The token said stop; arg went after the function returned. */
        ck_assert(flag(&j->saw_stop));
        ck_assert(flag(&j->by_token));
        assert_freed_once(j, false);
        finish();
}
END_TEST

/* EVT_NOW, or any deadline in the past: no thread is even started. */
START_TEST(deadline_already_passed) {
        struct caller *now, *past;

        setup(1, 0);
        now = call_in_task(0, quick_fn, &st.jobs[0], "now", 0);
        now->deadline = EVT_NOW;
        now->opts.arg_free = job_free;
        past = call_in_task(1, quick_fn, &st.jobs[1], "past", 0);
        past->deadline = evt_deadline_at(evt_time_now() - 1);
        past->opts.arg_free = job_free;
        ck_assert_int_eq(evt_loop_run(st.loop), 0);
        for (int i = 0; i < 2; i++) {
                ck_assert_int_eq(st.callers[i].r, -ETIMEDOUT);
                ck_assert_int_eq(st.callers[i].result, UNTOUCHED);
                ck_assert_int_eq(count(&st.jobs[i].runs), 0);
                assert_freed_once(&st.jobs[i], true);
        }
        ck_assert_uint_eq(pool_stats().threads, 0);
        finish();
}
END_TEST

/* Ends job 0 once callers[1] has given up. */
static int release_after_late(void *arg) {
        (void) arg;
        evt_task_join(st.callers[1].task, EVT_FOREVER, NULL);
        atomic_store(&st.jobs[0].release, true);
        return 0;
}

/* A queued call whose deadline passes never runs, even once the thread it
 * waited for is free. */
START_TEST(deadline_passes_while_queued) {
        struct caller *blocker, *late;

        setup(1, 0);
        st.jobs[0].check_every_ms = 1;
        blocker = call_in_task(0, cooperative_fn, &st.jobs[0], "blocker", 0);
        late = call_in_task(1, quick_fn, &st.jobs[1], "late", 0);
        late->deadline = evt_deadline_in(EVT_MSEC(30));
        late->opts.arg_free = job_free;
        evt_task_unref(test_spawn(st.loop, release_after_late, NULL, "control", 0));
        ck_assert_int_eq(evt_loop_run(st.loop), 0);
        ck_assert_int_eq(late->r, -ETIMEDOUT);
        ck_assert_int_eq(late->result, UNTOUCHED);
        ck_assert_int_ge(late->returned_at, late->deadline.at);
        ck_assert_int_lt(late->returned_at, late->deadline.at + SOON);
        assert_freed_once(&st.jobs[1], true);
        ck_assert_int_eq(blocker->r, 0);
        finish();
        ck_assert_int_eq(count(&st.jobs[1].runs), 0);
}
END_TEST

/* ---- run bounds ---------------------------------------------------------- */

#define RUN_BOUND EVT_MSEC(50)
#define QUEUED_FOR EVT_MSEC(150)

static struct {
        bool ready;             /* job 0 ran and job 1 was queued */
        evt_pool_stats queued, later, running;
        int64_t released_at;
        bool still_waiting;     /* job 1's caller, after QUEUED_FOR queued */
} rb;

/* Holds job 1 in the queue behind job 0 for QUEUED_FOR, three times its
 * run bound, then lets job 0 end. */
static int run_bound_controller(void *arg) {
        (void) arg;
        rb.ready = wait_pool(1, 1);
        rb.queued = pool_stats();
        evt_sleep(QUEUED_FOR);
        rb.later = pool_stats();
        rb.still_waiting = st.callers[1].r == 1;
        rb.released_at = evt_time_now();
        atomic_store(&st.jobs[0].release, true);
        POLL_UNTIL(count(&st.jobs[1].runs) == 1);
        rb.running = pool_stats();
        return 0;
}

/* The run bound starts when a thread takes the call: a call queued for
 * three times its bound still runs, and is stopped a bound after it
 * started. The queue's length and oldest wait show in the stats. */
START_TEST(run_bound_starts_when_taken) {
        struct caller *bounded;

        setup(1, 0);
        memset(&rb, 0, sizeof(rb));
        st.jobs[0].check_every_ms = 1;
        st.jobs[1].check_every_ms = 1;
        call_in_task(0, cooperative_fn, &st.jobs[0], "blocker", 0);
        bounded = call_in_task(1, cooperative_fn, &st.jobs[1], "bounded", 0);
        bounded->opts.run_timeout = RUN_BOUND;
        bounded->opts.arg_free = job_free;
        evt_task_unref(test_spawn(st.loop, run_bound_controller, NULL, "control", 0));
        ck_assert_int_eq(evt_loop_run(st.loop), 0);

        ck_assert(rb.ready);
        ck_assert_uint_eq(rb.queued.queued, 1);
        ck_assert_int_gt(rb.queued.oldest_queued, 0);
        ck_assert_int_ge(rb.later.oldest_queued, QUEUED_FOR);
        ck_assert(rb.still_waiting);
        ck_assert_uint_eq(rb.running.queued, 0);
        ck_assert_int_eq(rb.running.oldest_queued, 0);

        ck_assert_int_eq(bounded->r, -ETIMEDOUT);
        ck_assert_int_eq(bounded->result, UNTOUCHED);
        ck_assert_int_ge(bounded->returned_at, rb.released_at + RUN_BOUND);
        ck_assert_int_lt(bounded->returned_at, rb.released_at + RUN_BOUND + SOON);
        settle();
        ck_assert_int_eq(count(&st.jobs[1].runs), 1);
        ck_assert(flag(&st.jobs[1].by_token));
        assert_freed_once(&st.jobs[1], false);
        finish();
}
END_TEST

static int many_bounded_fn(void *arg) {
        int *ok = arg;

        for (int i = 0; i < N_MANY; i++) {
                int result = UNTOUCHED;
                int r = evt_pool_call(st.pool, quick_fn, &st.jobs[i % N_JOBS],
                                      &(evt_call_opts) { .run_timeout = EVT_SEC(60) }, EVT_FOREVER, &result);

                if (r == 0 && result == i % N_JOBS)
                        (*ok)++;
        }
        return 0;
}

/* Calls under a run bound that they keep return their result, however the
 * news of their start and of their end reach the loop. */
START_TEST(run_bound_kept) {
        int ok[N_CALLERS] = { 0 };

        setup(2, 0);
        for (int i = 0; i < N_JOBS; i++)
                st.jobs[i].value = i;
        for (int i = 0; i < N_CALLERS; i++)
                evt_task_unref(test_spawn(st.loop, many_bounded_fn, &ok[i], "bounded", 0));
        ck_assert_int_eq(evt_loop_run(st.loop), 0);
        for (int i = 0; i < N_CALLERS; i++)
                ck_assert_int_eq(ok[i], N_MANY);
        finish();
}
END_TEST

/* ---- freeing the pool ---------------------------------------------------- */

static struct {
        bool ready;
        int64_t free_took, freed_at;
        int queued_freed;       /* job_free calls of the queued call, right after */
        int joins[N_CALLERS];
        bool returned;
} pf;

/* Job 0 cooperative and job 1 uncooperative hold both threads, job 2
 * waits in the queue and job 3 for room in it: the pool is freed under
 * all of them. */
static int pool_free_controller(void *arg) {
        int64_t start;

        (void) arg;
        pf.ready = POLL_UNTIL(pool_is(2, 1) && count(&st.jobs[0].progress) > 0);
        start = evt_time_now();
        evt_pool_free(st.pool);
        pf.freed_at = evt_time_now();
        pf.free_took = pf.freed_at - start;
        st.pool = NULL;
        pf.queued_freed = count(&st.jobs[2].freed);
        for (int i = 0; i < N_CALLERS; i++)
                pf.joins[i] = evt_task_join(st.callers[i].task, evt_deadline_in(POLL_LIMIT), NULL);
        /* Only now may the uncooperative function return. */
        atomic_store(&st.jobs[1].release, true);
        pf.returned = POLL_UNTIL(count(&st.jobs[0].freed) == 1 && count(&st.jobs[1].freed) == 1);
        return 0;
}

START_TEST(pool_free_abandons_running) {
        static const char *const names[N_CALLERS] = { "cooperative", "uncooperative", "queued", "room" };
        static const evt_blocking_fn fns[N_CALLERS] = { cooperative_fn, uncooperative_fn, quick_fn, quick_fn };

        setup(2, 1);
        memset(&pf, 0, sizeof(pf));
        st.jobs[0].check_every_ms = 5;
        for (int i = 0; i < N_CALLERS; i++)
                call_in_task(i, fns[i], &st.jobs[i], names[i], 0)->opts.arg_free = job_free;
        evt_task_unref(test_spawn(st.loop, pool_free_controller, NULL, "control", 0));
        ck_assert_int_eq(evt_loop_run(st.loop), 0);

        ck_assert(pf.ready);
        /* It did not wait for the functions: the uncooperative one returned
         * only once released, after evt_pool_free had returned. */
        ck_assert_int_lt(pf.free_took, SOON);
        ck_assert_int_gt(when(&st.jobs[1].returned_at), pf.freed_at);
        for (int i = 0; i < N_CALLERS; i++) {
                ck_assert_int_eq(pf.joins[i], 0);
                ck_assert_int_eq(st.callers[i].r, -EIDRM);
                ck_assert_int_eq(st.callers[i].result, UNTOUCHED);
        }
        /* The queued call and the one waiting for room never ran; each arg
         * was freed once, on the loop's thread, the queued one at once. */
        ck_assert_int_eq(pf.queued_freed, 1);
        for (int i = 2; i < N_CALLERS; i++) {
                ck_assert_int_eq(count(&st.jobs[i].runs), 0);
                assert_freed_once(&st.jobs[i], true);
        }
        /* The running ones were told to stop, and freed their arg on their
         * threads when they returned; the cooperative one saw its token. */
        ck_assert(pf.returned);
        ck_assert(flag(&st.jobs[0].by_token));
        ck_assert(flag(&st.jobs[1].saw_stop));
        for (int i = 0; i < 2; i++)
                assert_freed_once(&st.jobs[i], false);
        finish();
}
END_TEST

/* A pool the program never freed goes with its loop: here with an idle
 * thread, and a busy one whose call's task evt_loop_free cancels. */
START_TEST(loop_free_frees_pool) {
        struct caller *quick, *endless;

        setup(2, 0);
        st.jobs[0].value = 9;
        st.jobs[1].check_every_ms = 5;
        quick = call_in_task(0, quick_fn, &st.jobs[0], "quick", 0);
        endless = call_in_task(1, cooperative_fn, &st.jobs[1], "endless", 0);
        /* evt_loop_run would not return while the endless call is awaited:
         * turn the loop by hand until the quick one is done and the endless
         * one runs. */
        ck_assert(SPIN_UNTIL((ev_run(evt_loop_ev(st.loop), EVRUN_NOWAIT),
                              quick->r == 0 && count(&st.jobs[1].progress) > 0)));
        ck_assert_int_eq(quick->result, 9);
        for (int i = 0; i < 2; i++) {
                evt_task_unref(st.callers[i].task);
                st.callers[i].task = NULL;
        }
        evt_loop_free(st.loop);
        st.loop = NULL;
        st.pool = NULL;
        ck_assert_int_eq(endless->r, -ECANCELED);
        /* The endless call's function stops through its token. */
        ck_assert(SPIN_UNTIL(flag(&st.jobs[1].returned)));
        ck_assert(flag(&st.jobs[1].by_token));
        wait_threads_gone();
}
END_TEST

/* ---- listing calls ------------------------------------------------------- */

#define MAX_INFOS 4

struct listing {
        int n;
        struct {
                char task[32];
                evt_call_info info; /* its task pointer is not kept */
        } calls[MAX_INFOS];
};

static struct {
        bool ready;
        struct listing before, after, settled;
} fe;

static void list_call(const evt_call_info *info, void *data) {
        struct listing *l = data;

        if (l->n < MAX_INFOS) {
                snprintf(l->calls[l->n].task, sizeof(l->calls[0].task), "%s", info->task);
                l->calls[l->n].info = *info;
                l->calls[l->n].info.task = NULL;
        }
        l->n++;
}

/* "runner" (ignoring its token) holds the only thread, "waiter" is queued
 * behind it. */
static int foreach_controller(void *arg) {
        (void) arg;
        fe.ready = wait_pool(1, 1);
        evt_sleep(EVT_MSEC(2));
        evt_loop_foreach_call(st.loop, list_call, &fe.before);
        evt_task_cancel(st.callers[0].task, 0);
        evt_task_join(st.callers[0].task, EVT_FOREVER, NULL);
        evt_loop_foreach_call(st.loop, list_call, &fe.after);
        atomic_store(&st.jobs[0].release, true);
        return 0;
}

START_TEST(foreach_call_lists_calls) {
        struct listing *l;

        setup(1, 0);
        memset(&fe, 0, sizeof(fe));
        call_in_task(0, uncooperative_fn, &st.jobs[0], "runner", 0);
        call_in_task(1, quick_fn, &st.jobs[1], "waiter", 0);
        evt_task_unref(test_spawn(st.loop, foreach_controller, NULL, "control", 0));
        ck_assert_int_eq(evt_loop_run(st.loop), 0);
        ck_assert(fe.ready);

        /* Oldest first: the running call, then the queued one. */
        l = &fe.before;
        ck_assert_int_eq(l->n, 2);
        ck_assert_str_eq(l->calls[0].task, "runner");
        ck_assert_int_gt(l->calls[0].info.age, 0);
        ck_assert_int_gt(l->calls[0].info.running, 0);
        ck_assert_int_le(l->calls[0].info.running, l->calls[0].info.age);
        ck_assert(!l->calls[0].info.stop_requested);
        ck_assert(l->calls[0].info.awaited);
        ck_assert_str_eq(l->calls[1].task, "waiter");
        ck_assert_int_gt(l->calls[1].info.age, 0);
        ck_assert_int_eq(l->calls[1].info.running, 0);
        ck_assert(l->calls[1].info.awaited);

        /* Its task gave up: the call runs on, orphaned and told to stop. */
        l = &fe.after;
        ck_assert_int_ge(l->n, 1);
        ck_assert_str_eq(l->calls[0].task, "runner");
        ck_assert_int_gt(l->calls[0].info.running, 0);
        ck_assert(l->calls[0].info.stop_requested);
        ck_assert(!l->calls[0].info.awaited);
        ck_assert_int_eq(st.callers[0].r, -ECANCELED);
        ck_assert_int_eq(st.callers[1].r, 0);

        settle();
        ck_assert_int_eq(evt_loop_foreach_call(st.loop, list_call, &fe.settled), 0);
        ck_assert_int_eq(fe.settled.n, 0);
        finish();
}
END_TEST

/* ---- the loop's count of calls ------------------------------------------ */

static struct {
        evt_pool *second;
        bool ready;
        evt_loop_stats loop_before, loop_after;
        evt_pool_stats first, second_before;
        struct listing listed_before, listed_after;
} lp;

static bool second_is(size_t running) {
        evt_pool_stats ps;

        ck_assert_int_eq(evt_pool_stats_get(lp.second, &ps), 0);
        return ps.running == running;
}

/* The first pool runs one call and queues one, the second runs one; then
 * the second pool is freed under its call. */
static int loop_count_controller(void *arg) {
        (void) arg;
        lp.ready = POLL_UNTIL(pool_is(1, 1) && second_is(1));
        evt_loop_stats_get(st.loop, &lp.loop_before);
        lp.first = pool_stats();
        evt_pool_stats_get(lp.second, &lp.second_before);
        evt_loop_foreach_call(st.loop, list_call, &lp.listed_before);
        evt_pool_free(lp.second);
        evt_loop_stats_get(st.loop, &lp.loop_after);
        evt_loop_foreach_call(st.loop, list_call, &lp.listed_after);
        atomic_store(&st.jobs[0].release, true);
        atomic_store(&st.jobs[2].release, true);
        return 0;
}

START_TEST(loop_stats_count_every_pool) {
        setup(1, 0);
        memset(&lp, 0, sizeof(lp));
        ck_assert_int_eq(evt_pool_new(st.loop, &(evt_pool_opts) { 1, 0 }, &lp.second), 0);
        call_in_task(0, uncooperative_fn, &st.jobs[0], "first-running", 0);
        call_in_task(1, quick_fn, &st.jobs[1], "first-queued", 0);
        call_in_task(2, uncooperative_fn, &st.jobs[2], "second-running", 0)->pool = lp.second;
        evt_task_unref(test_spawn(st.loop, loop_count_controller, NULL, "control", 0));
        ck_assert_int_eq(evt_loop_run(st.loop), 0);
        ck_assert(lp.ready);

        /* The loop's count is the sum of its pools' counts. */
        ck_assert_uint_eq(lp.first.calls, 2);
        ck_assert_uint_eq(lp.second_before.calls, 1);
        ck_assert_uint_eq(lp.loop_before.calls, 3);
        /* Every pool's calls are listed, pool by pool, oldest first. */
        ck_assert_int_eq(lp.listed_before.n, 3);
        ck_assert_str_eq(lp.listed_before.calls[0].task, "first-running");
        ck_assert_str_eq(lp.listed_before.calls[1].task, "first-queued");
        ck_assert_str_eq(lp.listed_before.calls[2].task, "second-running");

        /* A pool that is freed counts and lists none of its calls, even the
         * one its abandoned thread still runs. */
        ck_assert_uint_eq(lp.loop_after.calls, 2);
        ck_assert_int_eq(lp.listed_after.n, 2);
        ck_assert_int_eq(st.callers[2].r, -EIDRM);
        finish();
}
END_TEST

/* ---- the lifecycle's shutdown -------------------------------------------- */

#define MAX_SEEN 4

/* What the lifecycle's callbacks saw. */
static struct {
        int n_abandoned;
        char abandoned[MAX_SEEN][32];
        evt_call_info abandoned_info[MAX_SEEN];
        int n_forced;
} seen;

static void abandoned_cb(evt_lifecycle *lc, const evt_call_info *call, void *data) {
        (void) lc;
        (void) data;
        if (seen.n_abandoned < MAX_SEEN) {
                snprintf(seen.abandoned[seen.n_abandoned], sizeof(seen.abandoned[0]), "%s", call->task);
                seen.abandoned_info[seen.n_abandoned] = *call;
                seen.abandoned_info[seen.n_abandoned].task = NULL;
        }
        seen.n_abandoned++;
}

static void forced_cb(evt_lifecycle *lc, evt_task *task, void *data) {
        (void) lc;
        (void) task;
        (void) data;
        seen.n_forced++;
}

static const evt_lifecycle_ops ops = {
        .abandoned_cb = abandoned_cb,
        .forced_cb = forced_cb,
};

static struct {
        evt_lifecycle *lc;
        bool started, drained, moved_in_drain;
        int64_t shutdown_at;
} down;

static evt_lifecycle *lifecycle_new(int64_t drain_timeout, int64_t abandon_grace) {
        evt_lifecycle_opts opts = {
                .drain_timeout = drain_timeout,
                .abandon_grace = abandon_grace,
                .exit_when_idle = false,
                .emergency_fd = -1,
        };

        memset(&seen, 0, sizeof(seen));
        memset(&down, 0, sizeof(down));
        ck_assert_int_eq(evt_lifecycle_new(st.loop, &opts, &ops, &down.lc), 0);
        return down.lc;
}

/* Start the shutdown once job 0's function runs, by a direct call or with
 * SIGTERM; as plain tasks, they are cancelled by it themselves. */
static void shutdown_when_running(bool by_signal) {
        down.started = POLL_UNTIL(count(&st.jobs[0].runs) > 0);
        down.shutdown_at = evt_time_now();
        if (by_signal)
                raise(SIGTERM);
        else
                evt_lifecycle_shutdown(down.lc, false);
}

static int stopper_call(void *arg) {
        (void) arg;
        shutdown_when_running(false);
        return 0;
}

static int stopper_signal(void *arg) {
        (void) arg;
        shutdown_when_running(true);
        return 0;
}

/* The function ignores its stop flag: the drain waits for it until the
 * drain timeout, forcing waits abandon_grace more, and then it is
 * abandoned to run on. */
START_TEST(lifecycle_abandons_uncooperative) {
        evt_lifecycle *lc;
        struct caller *c;
        int64_t took;

        setup(1, 0);
        lc = lifecycle_new(EVT_MSEC(200), EVT_MSEC(200));
        c = call_in_task(0, uncooperative_fn, &st.jobs[0], "stuck", 0);
        evt_task_unref(test_spawn(st.loop, stopper_call, NULL, "stopper", 0));
        ck_assert_int_eq(evt_lifecycle_run(lc), EVT_EXIT_ABANDONED);
        took = evt_time_now() - down.shutdown_at;
        ck_assert(down.started);
        ck_assert_int_ge(took, EVT_MSEC(200) + EVT_MSEC(200));
        ck_assert_int_lt(took, EVT_SEC(5));
        ck_assert_int_eq(c->r, -ECANCELED);
        ck_assert_int_eq(seen.n_abandoned, 1);
        ck_assert_str_eq(seen.abandoned[0], "stuck");
        ck_assert(seen.abandoned_info[0].stop_requested);
        ck_assert(!seen.abandoned_info[0].awaited);
        ck_assert_int_gt(seen.abandoned_info[0].running, 0);
        ck_assert_int_eq(seen.n_forced, 0);
        ck_assert(!flag(&st.jobs[0].returned));
        evt_lifecycle_free(lc);

        /* It is still running: let it go, and wait for its thread. */
        atomic_store(&st.jobs[0].release, true);
        finish();
        ck_assert(flag(&st.jobs[0].saw_stop));
}
END_TEST

/* A cooperative function stops at its next checkpoint after the shutdown
 * cancels its task: a clean exit, long before the drain timeout. */
START_TEST(lifecycle_cooperative_exits_clean) {
        evt_lifecycle *lc;
        struct caller *c;
        int64_t took;

        setup(1, 0);
        lc = lifecycle_new(EVT_SEC(10), 0);
        st.jobs[0].check_every_ms = 20;
        c = call_in_task(0, cooperative_fn, &st.jobs[0], "worker", 0);
        evt_task_unref(test_spawn(st.loop, stopper_signal, NULL, "stopper", 0));
        ck_assert_int_eq(evt_lifecycle_run(lc), EVT_EXIT_CLEAN);
        took = evt_time_now() - down.shutdown_at;
        ck_assert(down.started);
        ck_assert_int_lt(took, EVT_SEC(5));
        ck_assert_int_eq(c->r, -ECANCELED);
        /* The drain waited for the function itself, not only its task. */
        ck_assert(flag(&st.jobs[0].returned));
        ck_assert(flag(&st.jobs[0].by_token));
        ck_assert_int_eq(seen.n_abandoned, 0);
        ck_assert_int_eq(seen.n_forced, 0);
        ck_assert_uint_eq(pool_stats().calls, 0);
        evt_lifecycle_free(lc);
        finish();
}
END_TEST

/* Shielded, like the task it watches: raises SIGTERM once job 0 runs,
 * checks that it still makes progress during the drain, then lets it
 * finish. */
static int drain_watcher(void *arg) {
        int before;

        (void) arg;
        down.started = POLL_UNTIL(count(&st.jobs[0].progress) > 0);
        down.shutdown_at = evt_time_now();
        raise(SIGTERM);
        down.drained = POLL_UNTIL(evt_lifecycle_phase(down.lc) == EVT_PHASE_DRAINING);
        before = count(&st.jobs[0].progress);
        down.moved_in_drain = POLL_UNTIL(count(&st.jobs[0].progress) > before);
        atomic_store(&st.jobs[0].release, true);
        return 0;
}

/* A shielded task's call is not stopped by the shutdown: it runs through
 * the drain and delivers its result. */
START_TEST(lifecycle_shielded_call_drains) {
        evt_lifecycle *lc;
        struct caller *c;

        setup(1, 0);
        lc = lifecycle_new(EVT_SEC(10), 0);
        st.jobs[0].check_every_ms = 5;
        st.jobs[0].value = 7;
        c = call_in_task(0, cooperative_fn, &st.jobs[0], "shielded", EVT_TASK_SHIELDED);
        evt_task_unref(test_spawn(st.loop, drain_watcher, NULL, "watcher", EVT_TASK_SHIELDED));
        ck_assert_int_eq(evt_lifecycle_run(lc), EVT_EXIT_CLEAN);
        ck_assert(down.started);
        ck_assert(down.drained);
        ck_assert(down.moved_in_drain);
        ck_assert_int_lt(evt_time_now() - down.shutdown_at, EVT_SEC(5));
        ck_assert_int_eq(c->r, 0);
        ck_assert_int_eq(c->result, 7);
        ck_assert(!flag(&st.jobs[0].saw_stop));
        ck_assert(!flag(&st.jobs[0].by_token));
        ck_assert_int_eq(seen.n_abandoned, 0);
        ck_assert_int_eq(seen.n_forced, 0);
        evt_lifecycle_free(lc);
        finish();
}
END_TEST

/* A shielded task's call outlives the drain timeout: forcing cancels the
 * task, which sets the call's stop flag, and the function stops at its
 * next checkpoint, so nothing is abandoned. */
START_TEST(lifecycle_forcing_stops_calls) {
        evt_lifecycle *lc;
        struct caller *c;
        int64_t took;

        setup(1, 0);
        lc = lifecycle_new(EVT_MSEC(100), EVT_SEC(10));
        st.jobs[0].check_every_ms = 5;
        c = call_in_task(0, cooperative_fn, &st.jobs[0], "shielded", EVT_TASK_SHIELDED);
        evt_task_unref(test_spawn(st.loop, stopper_call, NULL, "stopper", 0));
        ck_assert_int_eq(evt_lifecycle_run(lc), EVT_EXIT_FORCED);
        took = evt_time_now() - down.shutdown_at;
        ck_assert(down.started);
        ck_assert_int_ge(took, EVT_MSEC(100));
        ck_assert_int_lt(took, EVT_SEC(5)); /* long before abandon_grace */
        ck_assert_int_eq(c->r, -ECANCELED);
        ck_assert_int_eq(seen.n_forced, 1);
        ck_assert_int_eq(seen.n_abandoned, 0);
        ck_assert(flag(&st.jobs[0].by_token));
        evt_lifecycle_free(lc);
        finish();
}
END_TEST

/* ---- argument errors ----------------------------------------------------- */

START_TEST(pool_new_args) {
        evt_pool *p = (evt_pool *) &p, *q = NULL;
        evt_pool_stats ps;

        setup(1, 0);
        ck_assert_int_eq(evt_pool_new(NULL, NULL, &p), -EINVAL);
        ck_assert_int_eq(evt_pool_new(st.loop, NULL, NULL), -EINVAL);
        ck_assert_int_eq(evt_pool_new(st.loop, &(evt_pool_opts) { .threads = 1025 }, &p), -EINVAL);
        ck_assert_int_eq(evt_pool_new(st.loop, &(evt_pool_opts) { .queue_max = SIZE_MAX }, &p), -EINVAL);
        ck_assert_ptr_eq(p, (evt_pool *) &p); /* untouched on failure */

        /* The largest pool, and the default one: no thread before a call. */
        ck_assert_int_eq(evt_pool_new(st.loop, &(evt_pool_opts) { .threads = 1024 }, &q), 0);
        ck_assert_int_eq(evt_pool_stats_get(q, &ps), 0);
        ck_assert_uint_eq(ps.threads, 0);
        evt_pool_free(q);
        ck_assert_int_eq(evt_pool_new(st.loop, NULL, &q), 0);
        evt_pool_free(q);
        evt_pool_free(NULL);

        ck_assert_int_eq(evt_pool_stats_get(NULL, &ps), -EINVAL);
        ck_assert_int_eq(evt_pool_stats_get(st.pool, NULL), -EINVAL);
        ck_assert_int_eq(evt_loop_foreach_call(NULL, list_call, NULL), -EINVAL);
        ck_assert_int_eq(evt_loop_foreach_call(st.loop, NULL, NULL), -EINVAL);
        ck_assert(!evt_token_stop_requested(NULL));
        ck_assert(!evt_token_is_paused(NULL));
        ck_assert_int_eq(evt_token_checkpoint(NULL), -EINVAL);
        finish();
}
END_TEST

static struct {
        evt_pool *other;        /* of another loop */
        int r_null_pool, r_null_fn, r_flags, r_run, r_other;
        int result;
} args;

static int args_task(void *arg) {
        const evt_call_opts owned = { .arg_free = job_free };
        const evt_call_opts bad_flags = { .flags = 1u << 7, .arg_free = job_free };
        const evt_call_opts bad_run = { .run_timeout = -1, .arg_free = job_free };
        struct job *j = &st.jobs[0];

        (void) arg;
        args.r_null_pool = evt_pool_call(NULL, quick_fn, j, &owned, EVT_FOREVER, &args.result);
        args.r_null_fn = evt_pool_call(st.pool, NULL, j, &owned, EVT_FOREVER, &args.result);
        args.r_flags = evt_pool_call(st.pool, quick_fn, j, &bad_flags, EVT_FOREVER, &args.result);
        args.r_run = evt_pool_call(st.pool, quick_fn, j, &bad_run, EVT_FOREVER, &args.result);
        args.r_other = evt_pool_call(args.other, quick_fn, j, &owned, EVT_FOREVER, &args.result);
        return 0;
}

/* -EINVAL takes nothing: arg_free is never called. */
START_TEST(pool_call_args) {
        struct ev_loop *ev2 = ev_loop_new(0);
        const evt_call_opts owned = { .arg_free = job_free };
        evt_loop *l2 = NULL;
        int result = UNTOUCHED;

        setup(1, 0);
        memset(&args, 0, sizeof(args));
        args.result = UNTOUCHED;
        ck_assert_ptr_nonnull(ev2);
        ck_assert_int_eq(evt_loop_new(ev2, NULL, &l2), 0);
        ck_assert_int_eq(evt_pool_new(l2, NULL, &args.other), 0);

        /* Outside a task. */
        ck_assert_int_eq(evt_pool_call(st.pool, quick_fn, &st.jobs[0], &owned, EVT_FOREVER, &result), -EINVAL);
        ck_assert_int_eq(result, UNTOUCHED);

        evt_task_unref(test_spawn(st.loop, args_task, NULL, "args", 0));
        ck_assert_int_eq(evt_loop_run(st.loop), 0);
        ck_assert_int_eq(args.r_null_pool, -EINVAL);
        ck_assert_int_eq(args.r_null_fn, -EINVAL);
        ck_assert_int_eq(args.r_flags, -EINVAL);
        ck_assert_int_eq(args.r_run, -EINVAL);
        ck_assert_int_eq(args.r_other, -EINVAL);
        ck_assert_int_eq(args.result, UNTOUCHED);
        ck_assert_int_eq(count(&st.jobs[0].runs), 0);
        ck_assert_int_eq(count(&st.jobs[0].freed), 0);
        ck_assert_uint_eq(pool_stats().threads, 0);

        evt_pool_free(args.other);
        evt_loop_free(l2);
        ev_loop_destroy(ev2);
        finish();
}
END_TEST

Suite *evt_test_suite(void) {
        Suite *s = suite_create("pool");
        TCase *tc;

        tc = tcase_create("result");
        tcase_add_test(tc, call_returns_result);
        tcase_add_test(tc, failure_is_result);
        suite_add_tcase(s, tc);

        tc = tcase_create("seed");
        tcase_add_test(tc, seed_quick_and_endless);
        suite_add_tcase(s, tc);

        tc = tcase_create("pause");
        tcase_add_test(tc, pause_sigint_holds_checkpoints);
        tcase_add_test(tc, pause_holds_new_calls);
        suite_add_tcase(s, tc);

        tc = tcase_create("queue");
        tcase_add_test(tc, queue_many_calls);
        tcase_add_test(tc, queue_nowait_full);
        suite_add_tcase(s, tc);

        tc = tcase_create("arg_free");
        tcase_add_test(tc, arg_free_after_completion);
        tcase_add_test(tc, arg_free_cancelled_queued);
        tcase_add_test(tc, arg_free_cancelled_running);
        tcase_add_test(tc, arg_free_cancelled_at_entry);
        tcase_add_test(tc, arg_free_no_thread);
        suite_add_tcase(s, tc);

        tc = tcase_create("deadline");
        tcase_add_test(tc, deadline_passes_while_running);
        tcase_add_test(tc, deadline_already_passed);
        tcase_add_test(tc, deadline_passes_while_queued);
        suite_add_tcase(s, tc);

        tc = tcase_create("run_bound");
        tcase_add_test(tc, run_bound_starts_when_taken);
        tcase_add_test(tc, run_bound_kept);
        suite_add_tcase(s, tc);

        tc = tcase_create("pool_free");
        tcase_add_test(tc, pool_free_abandons_running);
        tcase_add_test(tc, loop_free_frees_pool);
        suite_add_tcase(s, tc);

        tc = tcase_create("foreach_call");
        tcase_add_test(tc, foreach_call_lists_calls);
        suite_add_tcase(s, tc);

        tc = tcase_create("loop_stats");
        tcase_add_test(tc, loop_stats_count_every_pool);
        suite_add_tcase(s, tc);

        tc = tcase_create("lifecycle");
        tcase_add_test(tc, lifecycle_abandons_uncooperative);
        tcase_add_test(tc, lifecycle_cooperative_exits_clean);
        tcase_add_test(tc, lifecycle_shielded_call_drains);
        tcase_add_test(tc, lifecycle_forcing_stops_calls);
        suite_add_tcase(s, tc);

        tc = tcase_create("args");
        tcase_add_test(tc, pool_new_args);
        tcase_add_test(tc, pool_call_args);
        suite_add_tcase(s, tc);
        return s;
}
