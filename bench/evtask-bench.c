/* evtask-bench: runs workloads through the library and prints one JSON line
 * per result. Not part of the test suite: timings belong here, not in tests.
 *
 *   evtask-bench [switch|yield|spawn|call|all] [repetitions]
 *   evtask-bench W1|W2|W3|W4|W5|W6|W7|W8 [N]
 *   evtask-bench W2|W4 eager
 *   evtask-bench W2 [eager] group
 *   evtask-bench signal [R]
 *
 * switch  one context switch, raw (layer 1), no scheduler
 * yield   W1: 100 tasks, each yields 10,000 times (1,000,000 yields)
 * spawn   W2: one task spawns 100,000 tasks that return at once and joins
 *         them all; ns per task and peak RSS
 * park    W3: N tasks (argument, default 100,000) wait on one event that
 *         is never set; RSS per parked task; then all are cancelled: ns per
 *         cancelled task until all have ended
 * timers  W4: 100,000 tasks sleep uniform [0, 1 s); total time, lateness
 * eager   W2 and W4 with the tasks spawned EVT_TASK_EAGER
 * group   W2 with the tasks spawned detached into a group, joined by one
 *         evt_group_wait (Go's W2 has no handles either: a WaitGroup)
 * shutdown W5: 10,000 unshielded tasks parked, 1,000 shielded ones sleep
 *         200 ms and append a line to a file; SIGTERM to itself at 50 ms,
 *         through a lifecycle
 * pause   W6: 1,000 tasks sleep 1 ms and tick, in a loop; SIGINT pauses
 *         at 200 ms and resumes 200 ms later
 * signal  100,000 tasks parked, 1,000 ticking every 1 ms; another process
 *         sends SIGINT 1,000 times (pause, resume, ...) and SIGTERM once
 *         per run, over R runs (argument, default 20): latency from kill()
 *         to the lifecycle's pause or resume, and to the STOPPING phase
 *         (over R = 20 runs, the p99 is the maximum)
 * call    one task awaits 100,000 empty blocking calls one after another:
 *         the round trip (submit, run on a worker, complete through
 *         ev_async, resume the task); then 100 tasks do so at once on a
 *         pool of 2 threads: ns per call
 * echo    W7: a TCP line-echo server on 127.0.0.1: prints "listening PORT"
 *         and serves until killed; bench/loadgen measures it
 * channel W8: two tasks play ping-pong over channels (rendezvous, and
 *         capacity 64), hand a mutex to each other, and yield to each
 *         other (the bare-yield baseline): ns per message, handoff, yield */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "coro.h"
#include "evtask.h"
#include "stack.h"

static void result(const char *workload, const char *metric, double value) {
        printf("{\"impl\":\"evtask\",\"workload\":\"%s\",\"metric\":\"%s\",\"value\":%.2f}\n",
               workload, metric, value);
        fflush(stdout);
}

/* A "Vm...: N kB" line of /proc/self/status, in bytes; -1024 if none. */
static long status_bytes(const char *key) {
        char line[256];
        long kb = -1;
        size_t len = strlen(key);
        FILE *f = fopen("/proc/self/status", "r");

        while (f && fgets(line, sizeof(line), f))
                if (strncmp(line, key, len) == 0 && sscanf(line + len, ": %ld kB", &kb) == 1)
                        break;
        if (f)
                fclose(f);
        return kb * 1024;
}

static long rss_bytes(void) {
        return status_bytes("VmRSS");
}

/* The peak RSS of this program: VmHWM, not getrusage's ru_maxrss, which
 * Linux carries over an exec from the process that forked (bench/run, a
 * Python of 14 MB), so that no smaller peak shows. */
static long peak_rss_bytes(void) {
        return status_bytes("VmHWM");
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
        result("W1", "ns_per_yield", (double) (evt_time_now() - start) / (W1_TASKS * W1_YIELDS));
        evt_loop_free(loop);
}

/* The flags W2's and W4's tasks are spawned with: EVT_TASK_EAGER for
 * "W2 eager" and "W4 eager". */
static evt_task_opts work_opts;

/* ---- W2 spawn ---- */

/* W2 spawns all 100,000, then joins them; the steady-state variant spawns
 * and joins one at a time. */
#define W2_TASKS 100000

static int noop(void *arg) {
        (void) arg;
        return 0;
}

struct spawner {
        evt_loop *loop;
        int batch;
        bool group;             /* detached, in a group, one wait */
        int64_t elapsed;
};

static int spawner(void *arg) {
        static evt_task *tasks[W2_TASKS];
        struct spawner *sp = arg;
        int64_t start = evt_time_now();
        evt_group *g;

        if (sp->group) {
                check(evt_group_new(sp->loop, &g), "group");
                for (int i = 0; i < W2_TASKS; i++)
                        check(evt_group_spawn(g, noop, NULL, &work_opts, NULL), "spawn");
                check(evt_group_wait(g, EVT_FOREVER), "wait");
                sp->elapsed = evt_time_now() - start;
                evt_group_free(g);
                return 0;
        }
        for (int done = 0; done < W2_TASKS; done += sp->batch) {
                for (int i = 0; i < sp->batch; i++)
                        check(evt_task_spawn(sp->loop, noop, NULL, &work_opts, &tasks[i]), "spawn");
                for (int i = 0; i < sp->batch; i++) {
                        check(evt_task_join(tasks[i], EVT_FOREVER, NULL), "join");
                        evt_task_unref(tasks[i]);
                }
        }
        sp->elapsed = evt_time_now() - start;
        return 0;
}

/* batch 1: the steady state, one task at a time; batch 100,000: W2. */
static void bench_spawn(const char *workload, int batch, bool group) {
        struct spawner sp = { .loop = loop_new(), .batch = batch, .group = group };

        check(evt_task_spawn(sp.loop, spawner, &sp, NULL, NULL), "spawn");
        check(evt_loop_run(sp.loop), "run");
        result(workload, "ns_per_task", (double) sp.elapsed / W2_TASKS);
        result(workload, "peak_rss_bytes", (double) peak_rss_bytes());
        evt_loop_free(sp.loop);
}

/* ---- W3 park ---- */

struct park {
        evt_loop *loop;
        long n;
        evt_event *never;
};

static int parked(void *arg) {
        return evt_event_wait(arg, EVT_FOREVER) == -ECANCELED ? 0 : -EPROTO;
}

static int park_main(void *arg) {
        struct park *pk = arg;
        evt_group *g;
        evt_loop_stats st;
        long before = rss_bytes(), cancelled = 0;
        int64_t start;

        check(evt_event_new(pk->loop, &pk->never), "event");
        check(evt_group_new(pk->loop, &g), "group");
        for (long i = 0; i < pk->n; i++)
                check(evt_group_spawn(g, parked, pk->never, NULL, NULL), "spawn");
        check(evt_yield(), "yield"); /* every task runs to its wait */
        evt_loop_stats_get(pk->loop, &st);
        result("W3", "parked", (double) st.tasks - 1);
        result("W3", "bytes_per_task", (double) (rss_bytes() - before) / (double) pk->n);
        start = evt_time_now();
        check(evt_group_cancel(g, 0), "cancel");
        check(evt_group_wait(g, EVT_FOREVER), "wait");
        result("W3", "ns_per_cancel", (double) (evt_time_now() - start) / (double) pk->n);
        evt_loop_stats_get(pk->loop, &st);
        cancelled = pk->n - ((long) st.tasks - 1);
        evt_group_free(g);
        evt_event_free(pk->never);
        if (cancelled != pk->n) {
                fprintf(stderr, "evtask-bench: W3: %ld of %ld tasks ended\n", cancelled, pk->n);
                exit(1);
        }
        return 0;
}

static void bench_park(long n) {
        struct park pk = { .loop = loop_new(), .n = n };

        check(evt_task_spawn(pk.loop, park_main, &pk, NULL, NULL), "spawn");
        check(evt_loop_run(pk.loop), "run");
        evt_loop_free(pk.loop);
}

/* ---- W4 timers ---- */

#define W4_TASKS 100000

static int64_t w4_start, w4_late[W4_TASKS], w4_last_start;

static int sleeper(void *arg) {
        long i = (long) (intptr_t) arg;
        /* A fixed, spread permutation of [0, 1 s) in microseconds. */
        int64_t d = (int64_t) ((uint64_t) (i * 2654435761u) % 1000000u) * 1000;
        int64_t at = evt_time_now();

        /* The intended wake is d after the sleep began. */
        if (at - w4_start > w4_last_start)
                w4_last_start = at - w4_start;
        check(evt_sleep_until(evt_deadline_at(at + d)), "sleep");
        w4_late[i] = evt_time_now() - (at + d);
        return 0;
}

static int cmp_i64(const void *a, const void *b) {
        int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;

        return (x > y) - (x < y);
}

static void bench_timers(void) {
        evt_loop *loop = loop_new();
        double sum = 0;

        w4_start = evt_time_now();
        for (long i = 0; i < W4_TASKS; i++)
                check(evt_task_spawn(loop, sleeper, (void *) (intptr_t) i, &work_opts, NULL), "spawn");
        check(evt_loop_run(loop), "run");
        result("W4", "total_ms", (double) (evt_time_now() - w4_start) / 1e6);
        result("W4", "last_start_ms", (double) w4_last_start / 1e6);
        qsort(w4_late, W4_TASKS, sizeof(w4_late[0]), cmp_i64);
        for (long i = 0; i < W4_TASKS; i++)
                sum += (double) w4_late[i];
        result("W4", "mean_late_ms", sum / W4_TASKS / 1e6);
        result("W4", "p99_late_ms", (double) w4_late[W4_TASKS * 99 / 100] / 1e6);
        result("W4", "max_late_ms", (double) w4_late[W4_TASKS - 1] / 1e6);
        evt_loop_free(loop);
}

/* ---- W5 shutdown ---- */

#define W5_PARKED 10000
#define W5_SHIELDED 1000

static int w5_fd;
static int64_t w5_request, w5_unshielded_done;
static evt_group *w5_unshielded;

static int appender(void *arg) {
        char line[32];
        int n = snprintf(line, sizeof(line), "line %ld\n", (long) (intptr_t) arg);

        check(evt_sleep(EVT_MSEC(200)), "sleep");
        return write(w5_fd, line, (size_t) n) == n ? 0 : -errno;
}

static int requester(void *arg) {
        (void) arg;
        check(evt_sleep(EVT_MSEC(50)), "sleep");
        w5_request = evt_time_now();
        printf("{\"impl\":\"evtask\",\"workload\":\"W5\",\"metric\":\"request_ns\",\"value\":%lld}\n",
               (long long) w5_request);
        fflush(stdout);
        kill(getpid(), SIGTERM);
        return 0;
}

/* The library only tells how many tasks are left; the unshielded group
 * tells when they are all done. */
static int watcher(void *arg) {
        (void) arg;
        evt_group_wait(w5_unshielded, EVT_FOREVER);
        w5_unshielded_done = evt_time_now();
        return 0;
}

static void bench_shutdown(void) {
        char path[] = "/tmp/evtask-bench-w5-XXXXXX";
        evt_loop *loop = loop_new();
        evt_lifecycle *lc;
        evt_event *never;
        evt_group *shielded;
        char buf[65536];
        long lines = 0;
        ssize_t n;
        int status;

        w5_fd = mkstemp(path);
        if (w5_fd < 0) {
                perror("evtask-bench: W5: mkstemp");
                exit(1);
        }
        check(evt_lifecycle_new(loop, NULL, NULL, &lc), "lifecycle");
        check(evt_event_new(loop, &never), "event");
        check(evt_group_new(loop, &w5_unshielded), "group");
        check(evt_group_new(loop, &shielded), "group");
        for (int i = 0; i < W5_PARKED; i++)
                check(evt_group_spawn(w5_unshielded, parked, never, NULL, NULL), "spawn");
        for (long i = 0; i < W5_SHIELDED; i++)
                check(evt_group_spawn(shielded, appender, (void *) (intptr_t) i,
                                      &(evt_task_opts) { .flags = EVT_TASK_SHIELDED }, NULL), "spawn");
        check(evt_task_spawn(loop, watcher, NULL, &(evt_task_opts) { .flags = EVT_TASK_SHIELDED }, NULL), "spawn");
        check(evt_task_spawn(loop, requester, NULL, NULL, NULL), "spawn");
        status = evt_lifecycle_run(lc);
        result("W5", "unshielded_done_ms", (double) (w5_unshielded_done - w5_request) / 1e6);
        lseek(w5_fd, 0, SEEK_SET);
        while ((n = read(w5_fd, buf, sizeof(buf))) > 0)
                for (ssize_t i = 0; i < n; i++)
                        lines += buf[i] == '\n';
        result("W5", "lines", (double) lines);
        close(w5_fd);
        unlink(path);
        evt_group_free(w5_unshielded);
        evt_group_free(shielded);
        evt_event_free(never);
        evt_lifecycle_free(lc);
        evt_loop_free(loop);
        if (status != 0 || lines != W5_SHIELDED) {
                fprintf(stderr, "evtask-bench: W5: exit status %d, %ld lines\n", status, lines);
                exit(1);
        }
        /* bench/run takes the time to the process's exit from here. */
        fflush(stdout);
        _exit(0);
}

/* ---- W6 pause ---- */

#define W6_TASKS 1000

static long w6_ticks;

static int ticker(void *arg) {
        (void) arg;
        while (evt_sleep(EVT_MSEC(1)) == 0)
                w6_ticks++;
        return 0;
}

/* The ticks when the lifecycle acted on SIGINT: the pause took effect. */
static long w6_at_pause = -1;

static void w6_signal(evt_lifecycle *lc, const evt_signal_info *info, void *data) {
        (void) lc;
        (void) data;
        if (info->action == EVT_SIGNAL_PAUSED)
                w6_at_pause = w6_ticks;
}

static int pauser(void *arg) {
        evt_loop *loop = arg;
        long at_resume;

        check(evt_sleep(EVT_MSEC(200)), "sleep");
        kill(getpid(), SIGINT); /* handled by the lifecycle: the loop pauses */
        while (!evt_loop_is_paused(loop))
                check(evt_yield(), "yield");
        check(evt_sleep(EVT_MSEC(200)), "sleep");
        result("W6", "ticks_after_pause", (double) (w6_ticks - w6_at_pause));
        kill(getpid(), SIGINT);
        while (evt_loop_is_paused(loop))
                check(evt_yield(), "yield");
        at_resume = w6_ticks;
        check(evt_sleep(EVT_MSEC(200)), "sleep");
        result("W6", "ticks_after_resume", (double) (w6_ticks - at_resume));
        kill(getpid(), SIGTERM);
        return 0;
}

static void bench_pause(void) {
        evt_loop *loop = loop_new();
        evt_lifecycle *lc;

        check(evt_lifecycle_new(loop, NULL, &(evt_lifecycle_ops) { .signal_cb = w6_signal }, &lc), "lifecycle");
        for (int i = 0; i < W6_TASKS; i++)
                check(evt_task_spawn(loop, ticker, NULL, NULL, NULL), "spawn");
        check(evt_task_spawn(loop, pauser, loop, &(evt_task_opts) { .flags = EVT_TASK_NOPAUSE | EVT_TASK_SHIELDED },
                             NULL), "spawn");
        check(evt_lifecycle_run(lc), "lifecycle");
        evt_lifecycle_free(lc);
        evt_loop_free(loop);
}

/* ---- signal latency ---- */

/* Signals come from another process, as in production. A child, forked
 * before any loop exists, sends them; the parent answers each at the
 * lifecycle's callback with its clock, through a pipe. CLOCK_MONOTONIC is
 * one clock for both, so the child can take the differences. */
#define SIG_PARKED 100000
#define SIG_TICKERS 1000
#define SIG_INTS 1000

static int sig_fd = -1;         /* parent -> child: int64 times */

static void sig_tell(int64_t t) {
        if (write(sig_fd, &t, sizeof(t)) != (ssize_t) sizeof(t)) {
                perror("evtask-bench: signal: write");
                exit(1);
        }
}

static void sig_signal_cb(evt_lifecycle *lc, const evt_signal_info *info, void *data) {
        int64_t now = evt_time_now();

        (void) lc;
        (void) data;
        if (info->action == EVT_SIGNAL_PAUSED || info->action == EVT_SIGNAL_RESUMED)
                sig_tell(now);
}

static void sig_phase_cb(evt_lifecycle *lc, evt_phase phase, size_t tasks_left, void *data) {
        int64_t now = evt_time_now();

        (void) lc;
        (void) tasks_left;
        (void) data;
        if (phase == EVT_PHASE_STOPPING)
                sig_tell(now);
}

/* Every task has reached its wait and the tickers tick: the child may
 * start. */
static int sig_ready(void *arg) {
        (void) arg;
        check(evt_sleep(EVT_MSEC(50)), "sleep");
        sig_tell(0);
        return 0;
}

static void signal_run(void) {
        evt_lifecycle_ops ops = { .signal_cb = sig_signal_cb, .phase_cb = sig_phase_cb };
        evt_loop *loop = loop_new();
        evt_lifecycle *lc;
        evt_event *never;
        int status;

        check(evt_lifecycle_new(loop, NULL, &ops, &lc), "lifecycle");
        check(evt_event_new(loop, &never), "event");
        for (int i = 0; i < SIG_PARKED; i++)
                check(evt_task_spawn(loop, parked, never, NULL, NULL), "spawn");
        for (int i = 0; i < SIG_TICKERS; i++)
                check(evt_task_spawn(loop, ticker, NULL, NULL, NULL), "spawn");
        check(evt_task_spawn(loop, sig_ready, NULL, NULL, NULL), "spawn");
        alarm(60); /* a child that died sends no SIGTERM */
        status = evt_lifecycle_run(lc);
        alarm(0);
        evt_event_free(never);
        evt_lifecycle_free(lc);
        evt_loop_free(loop);
        if (status != 0) {
                fprintf(stderr, "evtask-bench: signal: exit status %d\n", status);
                exit(1);
        }
}

static int64_t sig_read(int fd) {
        int64_t t;

        if (read(fd, &t, sizeof(t)) != (ssize_t) sizeof(t)) {
                fprintf(stderr, "evtask-bench: signal: the parent has gone\n");
                _exit(1);
        }
        return t;
}

/* 1 to 3 ms: the loop is back to ticking before the next signal. */
static void sig_gap(unsigned *seed) {
        struct timespec ts = { 0, (1000 + rand_r(seed) % 2001) * 1000L };

        nanosleep(&ts, NULL);
}

static void sig_report(const char *metric, int64_t *v, long n) {
        char name[64];

        qsort(v, (size_t) n, sizeof(v[0]), cmp_i64);
        snprintf(name, sizeof(name), "%s_p50_us", metric);
        result("signal", name, (double) v[n / 2] / 1e3);
        snprintf(name, sizeof(name), "%s_p99_us", metric);
        result("signal", name, (double) v[n * 99 / 100] / 1e3);
        snprintf(name, sizeof(name), "%s_max_us", metric);
        result("signal", name, (double) v[n - 1] / 1e3);
}

static void sig_child(pid_t parent, int fd, int runs) {
        static int64_t ints[SIG_INTS];
        int64_t *terms = calloc((size_t) runs, sizeof(*terms));
        unsigned seed = 1;
        int64_t t0;

        if (!terms)
                _exit(1);
        for (int r = 0; r < runs; r++) {
                sig_read(fd); /* ready */
                /* All the SIGINTs in the first run: an even number, so the
                 * loop runs when the SIGTERM comes. */
                for (int i = 0; r == 0 && i < SIG_INTS; i++) {
                        sig_gap(&seed);
                        t0 = evt_time_now();
                        kill(parent, SIGINT);
                        ints[i] = sig_read(fd) - t0;
                }
                sig_gap(&seed);
                t0 = evt_time_now();
                kill(parent, SIGTERM);
                terms[r] = sig_read(fd) - t0;
        }
        sig_report("int_to_paused", ints, SIG_INTS);
        sig_report("term_to_stopping", terms, runs);
        result("signal", "term_runs", runs);
        /* libev's default loop reaps every child while it runs: stay until
         * the parent is out of its last loop, so that it gets our status. */
        sig_read(fd);
        _exit(0);
}

static void bench_signal(int runs) {
        pid_t parent = getpid(), child;
        int fds[2], status;

        if (pipe(fds) < 0) {
                perror("evtask-bench: signal: pipe");
                exit(1);
        }
        fflush(stdout);
        child = fork();
        if (child < 0) {
                perror("evtask-bench: signal: fork");
                exit(1);
        }
        if (child == 0) {
                close(fds[1]);
                sig_child(parent, fds[0], runs);
        }
        close(fds[0]);
        sig_fd = fds[1];
        for (int r = 0; r < runs; r++)
                signal_run();
        sig_tell(0);
        close(sig_fd);
        if (waitpid(child, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                fprintf(stderr, "evtask-bench: signal: the child failed\n");
                exit(1);
        }
}

/* ---- W7 echo server ---- */

#define W7_LINE 256

/* Echoes every line it reads, until the peer closes. */
static int echo_conn(void *arg) {
        int fd = (int) (intptr_t) arg;
        char buf[W7_LINE];
        size_t have = 0, n;

        while (evt_read(fd, buf + have, sizeof(buf) - have, EVT_FOREVER, &n) == 0 && n > 0) {
                char *end = memrchr(buf + have, '\n', n);

                have += n;
                if (!end)
                        continue;
                /* Whole lines, written at once; the rest waits for more. */
                if (evt_write(fd, buf, (size_t) (end - buf) + 1, EVT_FOREVER) < 0)
                        break;
                have -= (size_t) (end - buf) + 1;
                memmove(buf, end + 1, have);
                if (have == sizeof(buf))
                        break;
        }
        close(fd);
        return 0;
}

static evt_loop *echo_loop;

static int echo_acceptor(void *arg) {
        int lfd = (int) (intptr_t) arg, fd;

        while (evt_accept(lfd, EVT_FOREVER, &fd) == 0)
                check(evt_task_spawn(echo_loop, echo_conn, (void *) (intptr_t) fd, NULL, NULL), "spawn");
        return 0;
}

static void bench_echo(void) {
        struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof(addr);
        evt_loop *loop = loop_new();
        int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

        struct rlimit lim;

        /* A descriptor per connection: as many as the hard limit allows. */
        if (getrlimit(RLIMIT_NOFILE, &lim) == 0) {
                lim.rlim_cur = lim.rlim_max;
                setrlimit(RLIMIT_NOFILE, &lim);
        }
        if (lfd < 0 || bind(lfd, (struct sockaddr *) &addr, sizeof(addr)) < 0 || listen(lfd, 4096) < 0 ||
            getsockname(lfd, (struct sockaddr *) &addr, &len) < 0) {
                perror("evtask-bench: W7: listen");
                exit(1);
        }
        echo_loop = loop;
        printf("listening %u\n", (unsigned) ntohs(addr.sin_port));
        fflush(stdout);
        check(evt_task_spawn(loop, echo_acceptor, (void *) (intptr_t) lfd, NULL, NULL), "spawn");
        check(evt_loop_run(loop), "run");
}

/* ---- W8 channels ---- */

#define W8_ROUNDS 1000000

static evt_channel *w8_ping, *w8_pong;
static evt_mutex *w8_mutex;

/* Sends a round's value one way and takes it back the other. */
static int w8_player(void *arg) {
        bool first = arg != NULL;
        int v = 0;

        for (int i = 0; i < W8_ROUNDS; i++) {
                if (first)
                        check(evt_channel_send(w8_ping, &v, EVT_FOREVER), "send");
                check(evt_channel_recv(first ? w8_pong : w8_ping, &v, EVT_FOREVER), "recv");
                if (!first)
                        check(evt_channel_send(w8_pong, &v, EVT_FOREVER), "send");
        }
        return 0;
}

/* Takes the mutex, lets the other run (which then waits for it), gives it
 * up: each round hands it to the other task. */
static int w8_locker(void *arg) {
        (void) arg;
        for (int i = 0; i < W8_ROUNDS; i++) {
                check(evt_mutex_lock(w8_mutex, EVT_FOREVER), "lock");
                check(evt_yield(), "yield");
                check(evt_mutex_unlock(w8_mutex), "unlock");
        }
        return 0;
}

static int w8_yielder(void *arg) {
        (void) arg;
        for (int i = 0; i < W8_ROUNDS; i++)
                check(evt_yield(), "yield");
        return 0;
}

/* Runs two tasks of fn to their end: ns per unit, of `units` in all. */
static double w8_pair(evt_loop *loop, evt_task_fn fn, double units) {
        int64_t start;

        check(evt_task_spawn(loop, fn, (void *) 1, NULL, NULL), "spawn");
        check(evt_task_spawn(loop, fn, NULL, NULL, NULL), "spawn");
        start = evt_time_now();
        check(evt_loop_run(loop), "run");
        return (double) (evt_time_now() - start) / units;
}

static void bench_channel(void) {
        static const size_t caps[] = { 0, 64 };
        static const char *const metrics[] = { "ns_per_msg_rendezvous", "ns_per_msg_buffered64" };
        evt_loop *loop = loop_new();

        /* Two messages a round, each a wake-up of the other task. */
        for (int c = 0; c < 2; c++) {
                check(evt_channel_new(loop, sizeof(int), caps[c], &w8_ping), "channel");
                check(evt_channel_new(loop, sizeof(int), caps[c], &w8_pong), "channel");
                result("W8", metrics[c], w8_pair(loop, w8_player, 2.0 * W8_ROUNDS));
                evt_channel_free(w8_ping);
                evt_channel_free(w8_pong);
        }
        check(evt_mutex_new(loop, &w8_mutex), "mutex");
        result("W8", "ns_per_mutex_handoff", w8_pair(loop, w8_locker, 2.0 * W8_ROUNDS));
        evt_mutex_free(w8_mutex);
        result("W8", "ns_per_yield", w8_pair(loop, w8_yielder, 2.0 * W8_ROUNDS));
        evt_loop_free(loop);
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
        int reps = argc > 2 && which[0] != 'W' ? atoi(argv[2]) : 1;
        bool all = strcmp(which, "all") == 0;

        if (strcmp(which, "--help") == 0 || reps < 1) {
                printf("usage: evtask-bench [switch|yield|spawn|call|all] [repetitions]\n"
                       "       evtask-bench W1|W2|W3|W4|W5|W6|W7|W8 [N]   (bench/peers/README.md)\n"
                       "       evtask-bench W2|W4 eager   (the tasks spawned EVT_TASK_EAGER)\n"
                       "       evtask-bench signal [R]   (R runs, default 20)\n");
                return reps < 1 ? 64 : 0;
        }
        if (strcmp(which, "signal") == 0) {
                bench_signal(argc > 2 ? reps : 20);
                return 0;
        }
        /* The workloads of bench/peers/README.md, one run each. */
        if (which[0] == 'W' && which[1] >= '1' && which[1] <= '8' && !which[2]) {
                long n = argc > 2 ? atol(argv[2]) : 100000;

                if (argc > 2 && strcmp(argv[2], "eager") == 0)
                        work_opts.flags = EVT_TASK_EAGER;

                switch (which[1]) {
                case '1': bench_yield(); break;
                case '2':
                        bench_spawn("W2", W2_TASKS, argc > 2 && strcmp(argv[argc - 1], "group") == 0);
                        break;
                case '3': bench_park(n); break;
                case '4': bench_timers(); break;
                case '5': bench_shutdown(); break;
                case '6': bench_pause(); break;
                case '7': bench_echo(); break;
                case '8': bench_channel(); break;
                }
                return 0;
        }
        for (int i = 0; i < reps; i++) {
                if (all || strcmp(which, "switch") == 0)
                        bench_switch();
                if (all || strcmp(which, "yield") == 0)
                        bench_yield();
                if (all || strcmp(which, "spawn") == 0) {
                        bench_spawn("W2-spawn-join-1", 1, false);
                        bench_spawn("W2", W2_TASKS, false);
                }
                if (all || strcmp(which, "call") == 0) {
                        bench_call("call-round-trip", 1);
                        bench_call("call-100-tasks", CALL_TASKS);
                }
        }
        return 0;
}
