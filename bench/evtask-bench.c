/* evtask-bench: runs workloads through the library and prints one JSON line
 * per result. Not part of the test suite: timings belong here, not in tests.
 *
 *   evtask-bench [switch|yield|spawn|call|all] [repetitions]
 *
 * switch  one context switch, raw (layer 1), no scheduler
 * yield   W1: 100 tasks, each yields 10,000 times (1,000,000 yields)
 * spawn   W2: one task spawns 100,000 tasks that return at once and joins
 *         them, in batches of 10,000; ns per task and peak RSS
 * call    one task awaits 100,000 empty blocking calls one after another:
 *         the round trip (submit, run on a worker, complete through
 *         ev_async, resume the task); then 100 tasks do so at once on a
 *         pool of 2 threads: ns per call */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "coro.h"
#include "evtask.h"

static void result(const char *workload, const char *metric, double value) {
        printf("{\"impl\":\"evtask\",\"workload\":\"%s\",\"metric\":\"%s\",\"value\":%.2f}\n",
               workload, metric, value);
        fflush(stdout);
}

static evt_loop *loop_new(void) {
        evt_loop *loop;
        int r = evt_loop_new(NULL, NULL, &loop);

        if (r < 0) {
                fprintf(stderr, "evtask-bench: loop: %s\n", strerror(-r));
                exit(1);
        }
        return loop;
}

static void check(int r, const char *what) {
        if (r < 0) {
                fprintf(stderr, "evtask-bench: %s: %s\n", what, strerror(-r));
                exit(1);
        }
}

/* ---- raw switch ---- */

#define SWITCHES 10000000L

static evt__coro main_ctx, peer_ctx;

static void bounce(void *arg) {
        (void) arg;
        for (;;)
                evt__coro_switch(&peer_ctx, &main_ctx);
}

static void bench_switch(void) {
        evt__stack_pool pool;
        evt__stack *s;
        int64_t start;

        evt__stack_pool_init(&pool, 64 * 1024, 1);
        check(evt__stack_get(&pool, 0, &s), "stack");
        evt__coro_init_main(&main_ctx);
        evt__coro_init(&peer_ctx, s, bounce, NULL);
        start = evt_time_now();
        for (long i = 0; i < SWITCHES / 2; i++)
                evt__coro_switch(&main_ctx, &peer_ctx);
        result("switch", "ns_per_switch", (double) (evt_time_now() - start) / SWITCHES);
        /* The peer is parked for good; its stack goes with the process. */
}

/* ---- W1 yield ---- */

#define W1_TASKS 100
#define W1_YIELDS 10000

static int yielder(void *arg) {
        (void) arg;
        for (int i = 0; i < W1_YIELDS; i++)
                if (evt_yield() < 0)
                        return -ECANCELED;
        return 0;
}

static void bench_yield(void) {
        evt_loop *loop = loop_new();
        int64_t start;

        for (int i = 0; i < W1_TASKS; i++)
                check(evt_task_spawn(loop, yielder, NULL, NULL, NULL), "spawn");
        start = evt_time_now();
        check(evt_loop_run(loop), "run");
        result("W1-yield", "ns_per_yield", (double) (evt_time_now() - start) / (W1_TASKS * W1_YIELDS));
        evt_loop_free(loop);
}

/* ---- W2 spawn ---- */

/* Tasks are spawned and joined in batches: every spawned task holds its own
 * guarded stack (two memory mappings), and vm.max_map_count (65530 by
 * default) caps those near 32,000 at once. */
#define W2_TASKS 100000
#define W2_BATCH 10000

static int noop(void *arg) {
        (void) arg;
        return 0;
}

struct spawner {
        evt_loop *loop;
        int batch;
        int64_t elapsed;
};

static int spawner(void *arg) {
        static evt_task *tasks[W2_BATCH];
        struct spawner *sp = arg;
        int64_t start = evt_time_now();

        for (int done = 0; done < W2_TASKS; done += sp->batch) {
                for (int i = 0; i < sp->batch; i++)
                        check(evt_task_spawn(sp->loop, noop, NULL, NULL, &tasks[i]), "spawn");
                for (int i = 0; i < sp->batch; i++) {
                        check(evt_task_join(tasks[i], EVT_FOREVER, NULL), "join");
                        evt_task_unref(tasks[i]);
                }
        }
        sp->elapsed = evt_time_now() - start;
        return 0;
}

/* batch 1: the steady state, every stack from the pool; batch 10,000: more
 * stacks at once than the pool keeps, so most are freshly mapped. */
static void bench_spawn(const char *workload, int batch) {
        struct spawner sp = { .loop = loop_new(), .batch = batch };
        struct rusage ru;

        check(evt_task_spawn(sp.loop, spawner, &sp, NULL, NULL), "spawn");
        check(evt_loop_run(sp.loop), "run");
        getrusage(RUSAGE_SELF, &ru);
        result(workload, "ns_per_task", (double) sp.elapsed / W2_TASKS);
        result(workload, "peak_rss_kib", (double) ru.ru_maxrss);
        evt_loop_free(sp.loop);
}

/* ---- blocking calls ---- */

#define CALLS 100000
#define CALL_TASKS 100

static evt_pool *call_pool;

static int empty_fn(evt_token *token, void *arg) {
        (void) token;
        (void) arg;
        return 0;
}

static int caller(void *arg) {
        int n = *(int *) arg;

        for (int i = 0; i < n; i++)
                check(evt_pool_call(call_pool, empty_fn, NULL, NULL, EVT_FOREVER, NULL), "call");
        return 0;
}

static void bench_call(const char *workload, int tasks) {
        evt_loop *loop = loop_new();
        int per_task = CALLS / tasks;
        int64_t start;

        check(evt_pool_new(loop, &(evt_pool_opts) { .threads = 2 }, &call_pool), "pool");
        for (int i = 0; i < tasks; i++)
                check(evt_task_spawn(loop, caller, &per_task, NULL, NULL), "spawn");
        start = evt_time_now();
        check(evt_loop_run(loop), "run");
        result(workload, "ns_per_call", (double) (evt_time_now() - start) / CALLS);
        evt_pool_free(call_pool);
        evt_loop_free(loop);
}

int main(int argc, char **argv) {
        const char *which = argc > 1 ? argv[1] : "all";
        int reps = argc > 2 ? atoi(argv[2]) : 1;
        bool all = strcmp(which, "all") == 0;

        if (strcmp(which, "--help") == 0 || reps < 1) {
                printf("usage: evtask-bench [switch|yield|spawn|call|all] [repetitions]\n");
                return reps < 1 ? 64 : 0;
        }
        for (int i = 0; i < reps; i++) {
                if (all || strcmp(which, "switch") == 0)
                        bench_switch();
                if (all || strcmp(which, "yield") == 0)
                        bench_yield();
                if (all || strcmp(which, "spawn") == 0) {
                        bench_spawn("W2-spawn-join-1", 1);
                        bench_spawn("W2-spawn-join-10000", W2_BATCH);
                }
                if (all || strcmp(which, "call") == 0) {
                        bench_call("call-round-trip", 1);
                        bench_call("call-100-tasks", CALL_TASKS);
                }
        }
        return 0;
}
