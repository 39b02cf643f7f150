/* Resource exhaustion: what the library does when the process runs out of
 * address space for stacks, file descriptors, threads or heap.
 *
 * Each scenario runs in a child process of its own (child_run): the limits
 * it sets die with it, under CK_FORK=no (the valgrind setup) too, and a
 * crash is a failed test rather than a dead suite. The test process itself
 * never touches libev, so every child starts without a default loop. A
 * child reports its first failed check through a pipe and exits; it never
 * calls ck_assert, which would unwind into Check's runner inside the child.
 *
 * RLIMIT_AS cannot be squeezed under ASan, which reserves terabytes of
 * shadow memory up front: the stack and heap scenarios are skipped there.
 * Under valgrind, memcheck's own shadow memory comes out of the same limit,
 * so the heap cannot be exhausted without killing valgrind first: the heap
 * scenario is skipped there; the stack one leaves ample room and runs.
 * qemu-user accepts RLIMIT_AS and does not apply it: both are skipped where
 * a probe finds the limit has no effect. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sanitizer.h"
#include "stack.h"
#include "testutil.h"

#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

#define CHILD_TIMEOUT_S 60      /* a child still running then is killed */
#define UNTOUCHED (-12345)      /* a result no call produced */

/* ---- running a scenario in a child --------------------------------------- */

static int report_fd = -1;      /* the child's end of the pipe to the test */

static _Noreturn __attribute__((format(printf, 2, 3))) void child_fail(int line, const char *fmt, ...) {
        char msg[512];
        int n = snprintf(msg, sizeof(msg), "line %d: ", line);
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg + n, sizeof(msg) - (size_t) n, fmt, ap);
        va_end(ap);
        (void) !write(report_fd, msg, strlen(msg));
        _exit(1);
}

/* Check's assertions, for the child: no allocation, no unwinding. */
#define child_assert(cond)                                                      \
        do {                                                                    \
                if (!(cond))                                                    \
                        child_fail(__LINE__, "assertion '%s' failed", #cond);   \
        } while (0)

#define child_assert_int_eq(x, y)                                               \
        do {                                                                    \
                long long x_ = (long long) (x), y_ = (long long) (y);          \
                if (x_ != y_)                                                   \
                        child_fail(__LINE__, "assertion '%s == %s' failed: %s == %lld, %s == %lld", \
                                   #x, #y, #x, x_, #y, y_);                     \
        } while (0)

/* Runs scenario() in a child with report_fd set, and returns the child's
 * wait status; its report, if any, goes to msg. */
static int child_run(void (*scenario)(void), char *msg, size_t msg_size) {
        int fds[2], status;
        size_t len = 0;
        ssize_t n;
        pid_t pid;

        ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
        fflush(stdout);
        fflush(stderr);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                close(fds[0]);
                report_fd = fds[1];
                alarm(CHILD_TIMEOUT_S);
                scenario();
                _exit(0);
        }
        close(fds[1]);
        while (len + 1 < msg_size && (n = read(fds[0], msg + len, msg_size - 1 - len)) != 0) {
                if (n < 0 && errno == EINTR)
                        continue;
                ck_assert_int_gt(n, 0);
                len += (size_t) n;
        }
        msg[len] = '\0';
        close(fds[0]);
        while (waitpid(pid, &status, 0) < 0)
                ck_assert_int_eq(errno, EINTR);
        return status;
}

static void assert_child_passes(void (*scenario)(void)) {
        char msg[1024];
        int status = child_run(scenario, msg, sizeof(msg));

        if (WIFSIGNALED(status))
                ck_abort_msg("the child was killed by signal %d (%s)%s%s", WTERMSIG(status),
                             strsignal(WTERMSIG(status)), msg[0] ? ": " : "", msg);
        ck_assert_msg(WEXITSTATUS(status) == 0, "the child failed (exit %d): %s", WEXITSTATUS(status),
                      msg[0] ? msg : "no report (valgrind's errors? see above)");
}

static bool under_asan(void) {
#if EVT__ASAN
        return true;
#else
        return false;
#endif
}

/* ---- limits --------------------------------------------------------------- */

/* Each child starts with the test's limits; lifting puts them back. */
static void limit_set(int resource, rlim_t cur) {
        struct rlimit rl;

        child_assert_int_eq(getrlimit(resource, &rl), 0);
        rl.rlim_cur = cur < rl.rlim_max ? cur : rl.rlim_max;
        child_assert_int_eq(setrlimit(resource, &rl), 0);
}

static void limit_lift(int resource) {
        struct rlimit rl;

        child_assert_int_eq(getrlimit(resource, &rl), 0);
        rl.rlim_cur = rl.rlim_max;
        child_assert_int_eq(setrlimit(resource, &rl), 0);
}

/* The address space mapped now, from /proc/self/statm, read without stdio
 * (which allocates). */
static size_t address_space(void) {
        char buf[128];
        int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
        ssize_t n;

        child_assert(fd >= 0);
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        child_assert(n > 0);
        buf[n] = '\0';
        return (size_t) strtoull(buf, NULL, 10) * (size_t) sysconf(_SC_PAGESIZE);
}

/* From now on, at most `room` more bytes of address space can be mapped. */
static void address_space_squeeze(size_t room) {
        limit_set(RLIMIT_AS, address_space() + room);
}

/* The probe: under a squeezed RLIMIT_AS, a large mapping must fail. */
static void address_space_probe_scenario(void) {
        size_t big = (size_t) 1 << 30;
        void *p;

        address_space_squeeze(64 << 20);
        p = mmap(NULL, big, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        child_assert(p == MAP_FAILED);
}

/* Whether RLIMIT_AS bounds this process's mappings; says why not, once. */
static bool address_space_limited(const char *test) {
        char msg[256];
        int status = child_run(address_space_probe_scenario, msg, sizeof(msg));

        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                return true;
        fprintf(stderr, "%s: skipped: RLIMIT_AS has no effect here (qemu-user ignores it)\n", test);
        return false;
}

/* Grows the main thread's stack now: under a squeezed RLIMIT_AS it could
 * not grow later, and the scheduler's frames live there. */
static __attribute__((noinline)) void main_stack_pregrow(void) {
        volatile char frame[512 * 1024];

        memset((char *) frame, 0, sizeof(frame));
}

/* ---- descriptors ---------------------------------------------------------- */

#define FDS_LIMIT 256           /* RLIMIT_NOFILE while squeezed: quick to fill */

static struct {
        int fds[FDS_LIMIT];     /* the descriptors that fill the table */
        size_t n;
} filler = { .n = 0 };

/* Opens descriptors until the process has none left, then closes `spare`
 * of them again. */
static void fds_exhaust(size_t spare) {
        int fd;

        limit_set(RLIMIT_NOFILE, FDS_LIMIT);
        while ((fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 0)) >= 0) {
                child_assert(filler.n < FDS_LIMIT);
                filler.fds[filler.n++] = fd;
        }
        child_assert_int_eq(errno, EMFILE);
        while (spare-- > 0) {
                child_assert(filler.n > 0);
                close(filler.fds[--filler.n]);
        }
}

/* How many descriptors can be opened now; they are added to the filler. */
static size_t fds_free(void) {
        size_t before = filler.n;

        fds_exhaust(0);
        return filler.n - before;
}

static void fds_release(size_t n) {
        while (n-- > 0 && filler.n > 0)
                close(filler.fds[--filler.n]);
}

static void fds_restore(void) {
        fds_release(filler.n);
        limit_lift(RLIMIT_NOFILE);
}

/* ---- helpers for tasks ---------------------------------------------------- */

static void nap_ms(long ms) {
        struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static evt_loop_stats loop_stats(evt_loop *loop) {
        evt_loop_stats ls;

        child_assert_int_eq(evt_loop_stats_get(loop, &ls), 0);
        return ls;
}

/* The end of every child's loop: nothing left behind. */
static void child_loop_free(evt_loop *loop) {
        evt_loop_stats ls = loop_stats(loop);

        child_assert_int_eq(ls.tasks, 0);
        child_assert_int_eq(ls.stacks_used, 0);
        child_assert_int_eq(ls.watchers, 0);
        child_assert_int_eq(ls.calls, 0);
        evt_loop_free(loop);
}

static evt_task *child_spawn(evt_loop *loop, evt_task_fn fn, void *arg, size_t stack_size) {
        evt_task *t = NULL;

        child_assert_int_eq(evt_task_spawn(loop, fn, arg, &(evt_task_opts) { .stack_size = stack_size }, &t), 0);
        child_assert(t != NULL);
        return t;
}

/* Joins t, drops the reference and returns its result. */
static int child_join(evt_task *t) {
        int result = UNTOUCHED;

        child_assert_int_eq(evt_task_join(t, evt_deadline_in(POLL_LIMIT), &result), 0);
        evt_task_unref(t);
        return result;
}

/* Runs a loop whose only task is `main_fn`, which must return 0. */
static void child_loop_run(evt_loop *loop, evt_task_fn main_fn) {
        evt_task *t = child_spawn(loop, main_fn, NULL, 0);
        int result = UNTOUCHED;

        child_assert_int_eq(evt_loop_run(loop), 0);
        child_assert_int_eq(evt_task_result(t, &result), 0);
        child_assert_int_eq(result, 0);
        evt_task_unref(t);
}

/* Uses `bytes` of the running task's stack. */
static __attribute__((noinline)) int stack_touch(size_t bytes) {
        volatile char frame[4096];

        memset((char *) frame, 1, sizeof(frame));
        return bytes > sizeof(frame) ? stack_touch(bytes - sizeof(frame)) + frame[0] : frame[0];
}

/* ---- stacks: no address space left for one --------------------------------- */

/* Stacks only take address space (MAP_NORESERVE), so large ones can be had
 * anywhere, and a squeeze can leave room for everything else but them. */
#define BIG_STACK ((size_t) 128 << 20)  /* the loop's size */
#define ODD_STACK ((size_t) 96 << 20)   /* another size, mapped on its own */
#define SMALL_STACK ((size_t) 64 << 10) /* the tasks that run under the squeeze */
#define STACK_ROOM ((size_t) 48 << 20)  /* left when squeezed: no stack above fits */
#define N_VICTIMS 16

static struct {
        evt_loop *loop;
        evt_event *go;          /* lets the runner finish */
        bool runner_started;
        int victims_ran;        /* must stay 0 */
        int after_ran;
} sk;

static int runner_fn(void *arg) {
        int r;

        (void) arg;
        sk.runner_started = true;
        r = evt_event_wait(sk.go, evt_deadline_in(POLL_LIMIT));
        if (r < 0)
                return r;
        /* Pages of its stack it has not touched yet are only address space
         * that is already mapped. */
        stack_touch(32 * 1024);
        return 7;
}

static int victim_fn(void *arg) {
        (void) arg;
        sk.victims_ran++;
        return 0;
}

/* A victim's arg_free: a task that never runs gives its argument back. */
static void victim_arg_free(void *arg) {
        (*(int *) arg)++;
}

static int after_fn(void *arg) {
        (void) arg;
        stack_touch(32 * 1024);
        sk.after_ran++;
        return 0;
}

/* Spawns a task that cannot get a stack of `stack_size` (0: the loop's):
 * evt_task_spawn succeeds and the task ends with -ENOMEM without running,
 * or evt_task_spawn fails with -ENOMEM. */
static void assert_no_stack(size_t stack_size) {
        evt_task *t = (evt_task *) &sk; /* untouched on failure */
        int freed = 0;
        int r = evt_task_spawn(sk.loop, victim_fn, &freed,
                               &(evt_task_opts) { .stack_size = stack_size, .arg_free = victim_arg_free }, &t);

        if (r < 0) {
                child_assert_int_eq(r, -ENOMEM);
                child_assert(t == (evt_task *) &sk);
                child_assert_int_eq(freed, 0); /* a failed spawn takes nothing */
                return;
        }
        child_assert_int_eq(child_join(t), -ENOMEM);
        child_assert_int_eq(sk.victims_ran, 0);
        child_assert_int_eq(freed, 1);
}

static int stacks_main(void *arg) {
        evt_task *runner, *after[3];
        evt_group *g = NULL;
        size_t guarded;
        evt_loop_stats ls;

        (void) arg;
        runner = child_spawn(sk.loop, runner_fn, NULL, SMALL_STACK);
        child_assert(POLL_UNTIL(sk.runner_started));
        guarded = evt__stack_guarded_now();
        child_assert_int_eq(evt_group_new(sk.loop, &g), 0);

        address_space_squeeze(STACK_ROOM);
        /* The loop's size, from the budget of guarded stacks; another
         * size; the loop's size from a slab, once the budget is spent. */
        assert_no_stack(0);
        assert_no_stack(ODD_STACK);
        evt__stack_guarded_max_set(guarded);
        assert_no_stack(0);
        evt__stack_guarded_max_set(SIZE_MAX);
        /* Many at once, in a group: each leaves it as it ends. */
        for (int i = 0; i < N_VICTIMS; i++)
                child_assert_int_eq(evt_group_spawn(g, victim_fn, NULL,
                                                    &(evt_task_opts) { .stack_size = i % 2 ? ODD_STACK : 0 },
                                                    NULL), 0);
        child_assert_int_eq(evt_group_size(g), N_VICTIMS);
        child_assert_int_eq(evt_group_wait(g, evt_deadline_in(POLL_LIMIT)), 0);
        child_assert_int_eq(evt_group_size(g), 0);
        child_assert_int_eq(sk.victims_ran, 0);

        /* Nothing leaked: this task and the runner hold the only stacks,
         * and the guarded budget got back what each failure took. */
        ls = loop_stats(sk.loop);
        child_assert_int_eq(ls.tasks, 2);
        child_assert_int_eq(ls.stacks_used, 2);
        child_assert_int_eq(ls.stacks_free, 0);
        child_assert_int_eq(evt__stack_guarded_now(), guarded);

        /* The runner has its stack: it runs on to its end. */
        child_assert_int_eq(evt_event_set(sk.go), 0);
        child_assert_int_eq(child_join(runner), 7);

        /* Lifted: new stacks, of both sizes, at the same time. */
        limit_lift(RLIMIT_AS);
        after[0] = child_spawn(sk.loop, after_fn, NULL, 0);
        after[1] = child_spawn(sk.loop, after_fn, NULL, 0);
        after[2] = child_spawn(sk.loop, after_fn, NULL, ODD_STACK);
        for (int i = 0; i < 3; i++)
                child_assert_int_eq(child_join(after[i]), 0);
        child_assert_int_eq(sk.after_ran, 3);
        evt_group_free(g);
        return 0;
}

static void stacks_scenario(void) {
        child_assert_int_eq(evt_loop_new(NULL, &(evt_loop_opts) { .stack_size = BIG_STACK }, &sk.loop), 0);
        child_assert_int_eq(evt_event_new(sk.loop, &sk.go), 0);
        child_loop_run(sk.loop, stacks_main);
        evt_event_free(sk.go);
        child_loop_free(sk.loop);
}

/* With no address space for a stack, a task ends with -ENOMEM without
 * running; tasks that have theirs run on, nothing leaks, and once the limit
 * is lifted, tasks get stacks again. */
START_TEST(stack_no_address_space) {
        if (under_asan() || !address_space_limited("stack_no_address_space"))
                return; /* see the top of the file */
        assert_child_passes(stacks_scenario);
}
END_TEST

/* ---- descriptors: the table is full ---------------------------------------- */

/* The first loop on libev's default loop, with no descriptor left: libev
 * needs two (its backend's and its signal pipe's). */
static void loop_new_scenario(void) {
        evt_loop *loop = (evt_loop *) &filler; /* untouched on failure */
        int r;

        for (size_t spare = 0; spare < 2; spare++) {
                fds_exhaust(spare);
                r = evt_loop_new(NULL, NULL, &loop);
                if (r != -EMFILE)
                        child_fail(__LINE__, "with %zu descriptors free, evt_loop_new returned %d (%s), not -EMFILE",
                                   spare, r, strerror(-r));
                child_assert(loop == (evt_loop *) &filler);
                fds_restore();
        }
        child_assert_int_eq(evt_loop_new(NULL, NULL, &loop), 0);
        child_loop_free(loop);
}

/* evt_loop_new fails with -EMFILE and does not abort. */
START_TEST(loop_new_no_fd) {
        assert_child_passes(loop_new_scenario);
}
END_TEST

static const int lifecycle_signals[] = { SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2 };
#define N_LIFECYCLE_SIGNALS (sizeof(lifecycle_signals) / sizeof(lifecycle_signals[0]))

/* What evt_lifecycle_new changes, to check that a failed one did not. */
struct signal_state {
        sigset_t mask, pending;
        void (*handlers[N_LIFECYCLE_SIGNALS])(int);
};

static struct signal_state signal_state(void) {
        struct signal_state s;

        child_assert_int_eq(sigprocmask(SIG_BLOCK, NULL, &s.mask), 0);
        child_assert_int_eq(sigpending(&s.pending), 0);
        for (size_t i = 0; i < N_LIFECYCLE_SIGNALS; i++) {
                struct sigaction sa;

                child_assert_int_eq(sigaction(lifecycle_signals[i], NULL, &sa), 0);
                s.handlers[i] = sa.sa_handler;
        }
        return s;
}

static void assert_signal_state(const struct signal_state *before) {
        struct signal_state now = signal_state();

        for (int sig = 1; sig < NSIG; sig++) {
                if (sigismember(&now.mask, sig) != sigismember(&before->mask, sig))
                        child_fail(__LINE__, "signal %d is %sblocked after a failed evt_lifecycle_new", sig,
                                   sigismember(&now.mask, sig) ? "" : "no longer ");
                if (sigismember(&now.pending, sig) != sigismember(&before->pending, sig))
                        child_fail(__LINE__, "signal %d is %spending after a failed evt_lifecycle_new", sig,
                                   sigismember(&now.pending, sig) ? "" : "no longer ");
        }
        for (size_t i = 0; i < N_LIFECYCLE_SIGNALS; i++)
                if (now.handlers[i] != before->handlers[i])
                        child_fail(__LINE__, "the disposition of signal %d changed", lifecycle_signals[i]);
}

/* With the table full but for `spare` descriptors, evt_lifecycle_new fails
 * with -EMFILE and leaves nothing behind: no signal state changed, no
 * descriptor kept. The table is full again after. */
static void assert_lifecycle_emfile(evt_loop *loop, size_t spare) {
        struct signal_state before = signal_state();
        evt_lifecycle *lc = (evt_lifecycle *) &filler;

        fds_release(spare);
        child_assert_int_eq(evt_lifecycle_new(loop, NULL, NULL, &lc), -EMFILE);
        child_assert(lc == (evt_lifecycle *) &filler);
        assert_signal_state(&before);
        child_assert_int_eq(fds_free(), spare);
}

static struct {
        evt_loop *loop;
        evt_pool *pool;
        int pipe[2];
        bool reader_waiting;
} fd;

static int reader_fn(void *arg) {
        unsigned ready = 0;
        char c;
        int r;

        (void) arg;
        fd.reader_waiting = true;
        r = evt_fd_wait(fd.pipe[0], EVT_READ, evt_deadline_in(POLL_LIMIT), &ready);
        if (r < 0)
                return r;
        if (ready != EVT_READ || read(fd.pipe[0], &c, 1) != 1)
                return -EIO;
        return c;
}

static int value_fn(evt_token *token, void *arg) {
        (void) token;
        return *(int *) arg;
}

static int fds_main(void *arg) {
        int value = 5, result = UNTOUCHED;
        evt_pool *pool = (evt_pool *) &filler;
        evt_lifecycle *lc = NULL;
        unsigned ready = 0;
        evt_task *reader;
        int64_t start;

        (void) arg;
        reader = child_spawn(fd.loop, reader_fn, NULL, 0);
        child_assert(POLL_UNTIL(fd.reader_waiting));
        child_assert(POLL_UNTIL(strcmp(evt_task_state_name(reader), "waiting") == 0));

        fds_exhaust(0);
        /* The self-pipe cannot be made, with one descriptor free neither;
         * with two, signalfd cannot. */
        assert_lifecycle_emfile(fd.loop, 0);
        assert_lifecycle_emfile(fd.loop, 1);
#if EVT_HAVE_SIGNALFD
        assert_lifecycle_emfile(fd.loop, 2);
#endif
        /* A pool may need a wake-up descriptor. */
        child_assert_int_eq(evt_pool_new(fd.loop, NULL, &pool), -EMFILE);
        child_assert(pool == (evt_pool *) &filler);

        /* What needs no new descriptor works on: the pool's threads, timers,
         * a new wait for an open one, and the wait under way. */
        child_assert_int_eq(evt_pool_call(fd.pool, value_fn, &value, NULL, evt_deadline_in(POLL_LIMIT), &result), 0);
        child_assert_int_eq(result, 5);
        start = evt_time_now();
        child_assert_int_eq(evt_sleep(EVT_MSEC(2)), 0);
        child_assert(evt_time_now() - start >= EVT_MSEC(2));
        child_assert_int_eq(evt_fd_wait(fd.pipe[1], EVT_WRITE, evt_deadline_in(POLL_LIMIT), &ready), 0);
        child_assert_int_eq(ready, EVT_WRITE);
        child_assert_int_eq(write(fd.pipe[1], "x", 1), 1);
        child_assert_int_eq(child_join(reader), 'x');

        /* Descriptors back: all of it works again. */
        fds_restore();
        child_assert_int_eq(evt_lifecycle_new(fd.loop, NULL, NULL, &lc), 0);
        evt_lifecycle_free(lc);
        child_assert_int_eq(evt_pool_new(fd.loop, NULL, &pool), 0);
        child_assert_int_eq(evt_pool_call(pool, value_fn, &value, NULL, evt_deadline_in(POLL_LIMIT), &result), 0);
        evt_pool_free(pool);
        return 0;
}

static void fds_scenario(void) {
        sigset_t hup;

        /* A HUP the caller holds blocked and pending stays so. Blocked
         * before the loop runs: with the swapcontext switch, each context
         * has a signal mask of its own. */
        sigemptyset(&hup);
        sigaddset(&hup, SIGHUP);
        child_assert_int_eq(sigprocmask(SIG_BLOCK, &hup, NULL), 0);
        child_assert_int_eq(raise(SIGHUP), 0);
        child_assert_int_eq(pipe2(fd.pipe, O_CLOEXEC), 0);
        child_assert_int_eq(evt_loop_new(NULL, NULL, &fd.loop), 0);
        child_assert_int_eq(evt_pool_new(fd.loop, &(evt_pool_opts) { .threads = 1 }, &fd.pool), 0);
        child_loop_run(fd.loop, fds_main);
        evt_pool_free(fd.pool);
        child_loop_free(fd.loop);
        close(fd.pipe[0]);
        close(fd.pipe[1]);
}

/* On a loop that has its descriptors, with none left in the process: what
 * would need one fails with -EMFILE, without side effects; what is under
 * way, and what needs none, works on. */
START_TEST(fd_table_full) {
        assert_child_passes(fds_scenario);
}
END_TEST

static int pool_call_main(void *arg) {
        int value = 9, result = UNTOUCHED;

        (void) arg;
        child_assert_int_eq(evt_pool_call(fd.pool, value_fn, &value, NULL, evt_deadline_in(POLL_LIMIT), &result), 0);
        child_assert_int_eq(result, 9);
        return 0;
}

/* A loop of the caller's own has no wake-up descriptor before its first
 * pool (libev opens it on the first ev_async). */
static void own_loop_scenario(void) {
        evt_pool *pool = (evt_pool *) &filler;
        evt_lifecycle *lc = (evt_lifecycle *) &filler;
        struct ev_loop *ev = ev_loop_new(EVFLAG_AUTO);

        child_assert(ev != NULL);
        child_assert_int_eq(evt_loop_new(ev, NULL, &fd.loop), 0);
        fds_exhaust(0);
        child_assert_int_eq(evt_pool_new(fd.loop, NULL, &pool), -EMFILE);
        child_assert(pool == (evt_pool *) &filler);
        child_assert_int_eq(evt_lifecycle_new(fd.loop, NULL, NULL, &lc), -EMFILE);
        child_assert(lc == (evt_lifecycle *) &filler);
        fds_restore();

        child_assert_int_eq(evt_pool_new(fd.loop, NULL, &fd.pool), 0);
        child_loop_run(fd.loop, pool_call_main);
        evt_pool_free(fd.pool);
        child_loop_free(fd.loop);
        ev_loop_destroy(ev);
}

static int sleep_main(void *arg) {
        evt_event *ev;
        int64_t start = evt_time_now();

        (void) arg;
        child_assert_int_eq(evt_sleep(EVT_MSEC(2)), 0);
        child_assert(evt_time_now() - start >= EVT_MSEC(2));
        child_assert_int_eq(evt_event_new(fd.loop, &ev), 0);
        start = evt_time_now();
        child_assert_int_eq(evt_event_wait(ev, evt_deadline_in(EVT_MSEC(3))), -ETIMEDOUT);
        child_assert(evt_time_now() - start >= EVT_MSEC(3));
        evt_event_free(ev);
        return 0;
}

static void no_timerfd_scenario(void) {
        child_assert_int_eq(evt_loop_new(NULL, NULL, &fd.loop), 0);
        fds_exhaust(0);
        child_loop_run(fd.loop, sleep_main);
        fds_restore();
        child_loop_free(fd.loop);
}

/* A loop whose first deadline finds no descriptor for its timerfd wakes
 * its tasks through a libev timer instead, never early. */
START_TEST(deadline_without_descriptor) {
        assert_child_passes(no_timerfd_scenario);
}
END_TEST

/* evt_pool_new on the caller's own libev loop with no descriptor left:
 * -EMFILE, where libev would abort. */
START_TEST(fd_pool_own_loop) {
        assert_child_passes(own_loop_scenario);
}
END_TEST

/* ---- threads: none can be started ------------------------------------------ */

struct job {
        int value;              /* what the function returns */
        atomic_bool running;
        atomic_bool release;    /* blocking_fn returns once set */
        atomic_int runs, freed;
};

static int quick_fn(evt_token *token, void *arg) {
        struct job *j = arg;

        (void) token;
        atomic_fetch_add(&j->runs, 1);
        return j->value;
}

/* Runs until released (or stopped, or for POLL_LIMIT at most). */
static int blocking_fn(evt_token *token, void *arg) {
        struct job *j = arg;
        int64_t give_up = evt_deadline_in(POLL_LIMIT).at;

        atomic_fetch_add(&j->runs, 1);
        atomic_store(&j->running, true);
        while (!atomic_load(&j->release) && !evt_token_stop_requested(token) && evt_time_now() < give_up)
                nap_ms(1);
        return j->value;
}

static void job_free(void *arg) {
        atomic_fetch_add(&((struct job *) arg)->freed, 1);
}

struct caller {
        evt_pool *pool;
        evt_blocking_fn fn;
        struct job *job;
        int r, result;
};

static int caller_fn(void *arg) {
        struct caller *c = arg;

        c->result = UNTOUCHED;
        c->r = evt_pool_call(c->pool, c->fn, c->job, NULL, evt_deadline_in(POLL_LIMIT), &c->result);
        return 0;
}

static struct {
        evt_loop *loop;
        evt_pool *busy, *empty; /* with a thread running a call; with none */
        struct job jobs[4];
        struct caller callers[4];
} th;

static evt_pool_stats pool_stats(evt_pool *pool) {
        evt_pool_stats ps;

        child_assert_int_eq(evt_pool_stats_get(pool, &ps), 0);
        return ps;
}

static evt_task *call_in_task(int i, evt_pool *pool, evt_blocking_fn fn, int value) {
        th.jobs[i].value = value;
        th.callers[i] = (struct caller) { .pool = pool, .fn = fn, .job = &th.jobs[i] };
        return child_spawn(th.loop, caller_fn, &th.callers[i], 0);
}

/* No thread can start from here on: RLIMIT_NPROC counts the threads of
 * every process of the real uid, and root ignores it, so root first becomes
 * nobody (this process is the only one that does). */
static void threads_forbid(void) {
        if (geteuid() == 0) {
                child_assert_int_eq(setgroups(0, NULL), 0);
                child_assert_int_eq(setgid(65534), 0);
                child_assert_int_eq(setuid(65534), 0);
        }
        limit_set(RLIMIT_NPROC, 1);
        child_assert(test_thread_create_fails());
}

static int threads_main(void *arg) {
        struct job *held = &th.jobs[0], *queued = &th.jobs[1], *refused = &th.jobs[2];
        const evt_call_opts owned = { .arg_free = job_free };
        const evt_call_opts nowait = { .flags = EVT_CALL_NOWAIT, .arg_free = job_free };
        evt_task *a, *b, *c, *d;
        int result = UNTOUCHED;

        (void) arg;
        a = call_in_task(0, th.busy, blocking_fn, 11);
        child_assert(POLL_UNTIL(atomic_load(&held->running)));
        threads_forbid();

        /* A pool with a thread queues the call for it. */
        b = call_in_task(1, th.busy, quick_fn, 22);
        child_assert(POLL_UNTIL(pool_stats(th.busy).queued == 1));
        child_assert_int_eq(pool_stats(th.busy).threads, 1);

        /* A pool with none: -EAGAIN, which takes nothing (no arg_free). */
        refused->value = 33;
        child_assert_int_eq(evt_pool_call(th.empty, quick_fn, refused, &owned, EVT_FOREVER, &result), -EAGAIN);
        child_assert_int_eq(evt_pool_call(th.empty, quick_fn, refused, &nowait, EVT_FOREVER, &result), -EAGAIN);
        child_assert_int_eq(result, UNTOUCHED);
        child_assert_int_eq(atomic_load(&refused->runs), 0);
        child_assert_int_eq(atomic_load(&refused->freed), 0);
        child_assert_int_eq(pool_stats(th.empty).threads, 0);
        child_assert_int_eq(pool_stats(th.empty).calls, 0);

        /* The running call completes, and its thread takes the queued one. */
        atomic_store(&held->release, true);
        child_assert_int_eq(child_join(a), 0);
        child_assert_int_eq(th.callers[0].r, 0);
        child_assert_int_eq(th.callers[0].result, 11);
        child_assert_int_eq(child_join(b), 0);
        child_assert_int_eq(th.callers[1].r, 0);
        child_assert_int_eq(th.callers[1].result, 22);
        child_assert_int_eq(atomic_load(&queued->runs), 1);

        /* Lifted: the empty pool starts a thread, the busy one its second. */
        limit_lift(RLIMIT_NPROC);
        child_assert_int_eq(evt_pool_call(th.empty, quick_fn, refused, &owned, EVT_FOREVER, &result), 0);
        child_assert_int_eq(result, 33);
        child_assert_int_eq(atomic_load(&refused->freed), 1);
        held->release = false;
        held->running = false;
        c = call_in_task(0, th.busy, blocking_fn, 44);
        d = call_in_task(3, th.busy, blocking_fn, 55);
        child_assert(POLL_UNTIL(pool_stats(th.busy).running == 2));
        child_assert_int_eq(pool_stats(th.busy).threads, 2);
        atomic_store(&th.jobs[0].release, true);
        atomic_store(&th.jobs[3].release, true);
        child_assert_int_eq(child_join(c), 0);
        child_assert_int_eq(th.callers[0].result, 44);
        child_assert_int_eq(child_join(d), 0);
        child_assert_int_eq(th.callers[3].result, 55);
        return 0;
}

static void threads_scenario(void) {
        child_assert_int_eq(evt_loop_new(NULL, NULL, &th.loop), 0);
        child_assert_int_eq(evt_pool_new(th.loop, &(evt_pool_opts) { .threads = 2 }, &th.busy), 0);
        child_assert_int_eq(evt_pool_new(th.loop, &(evt_pool_opts) { .threads = 2 }, &th.empty), 0);
        child_loop_run(th.loop, threads_main);
        evt_pool_free(th.busy);
        evt_pool_free(th.empty);
        child_loop_free(th.loop);
}

/* With no thread to be had, a call on a pool that has none fails with
 * -EAGAIN; calls under way complete, a pool that has a thread queues for
 * it, and pools start threads again once they can. */
START_TEST(thread_create_fails_eagain) {
        assert_child_passes(threads_scenario);
}
END_TEST

/* ---- heap: malloc fails ---------------------------------------------------- */

#define LONG_NAME "a task name longer than the space kept for a default one"

static struct {
        evt_loop *loop;
        evt_pool *pool;         /* its thread started before the squeeze */
        evt_group *group;
        struct job job;         /* of the calls that must never run */
        struct job warm;
        void *blocks;           /* the filler: a list through each block's first word */
        evt_loop *spare_loop;   /* an evt_loop_new that succeeded, freed later */
        int victims_ran;
} hp;

/* Fills the heap: allocates until malloc fails for every size, each small
 * size class in turn so that no free chunk is left of any. From then on,
 * what malloc cannot take from the heap comes from mmap, a page or more
 * each (M_MMAP_THRESHOLD 0), so the room left under RLIMIT_AS says how many
 * allocations succeed, and free gives the room back at once. */
static void heap_exhaust(void) {
        void **b;

        child_assert_int_eq(mallopt(M_MMAP_THRESHOLD, 0), 1);
        address_space_squeeze(0);
        for (size_t size = 4096; size >= 16; size -= size > 1024 ? 1024 : 16)
                while ((b = malloc(size))) {
                        *b = hp.blocks;
                        hp.blocks = b;
                }
        child_assert(malloc(16) == NULL);
}

static void heap_restore(void) {
        void **b;

        limit_lift(RLIMIT_AS);
        while ((b = hp.blocks)) {
                hp.blocks = *b;
                free(b);
        }
}

static int heap_victim_fn(void *arg) {
        (void) arg;
        hp.victims_ran++;
        return 0;
}

/* One call that allocates: tries it and returns what it returned, having
 * checked that a failure changed nothing; on success, undoes it. */
typedef int (*heap_op)(void);

static int op_spawn(void) {
        evt_task *t = (evt_task *) &hp;
        int r = evt_task_spawn(hp.loop, heap_victim_fn, NULL, &(evt_task_opts) { .name = LONG_NAME }, &t);

        if (r < 0) {
                child_assert(t == (evt_task *) &hp);
                return r;
        }
        child_assert_int_eq(evt_task_cancel(t, 0), 0); /* it never runs */
        evt_task_unref(t);
        return 0;
}

static int op_group_spawn(void) {
        evt_task *t = (evt_task *) &hp;
        int r = evt_group_spawn(hp.group, heap_victim_fn, NULL, NULL, &t);

        if (r < 0) {
                child_assert(t == (evt_task *) &hp);
                child_assert_int_eq(evt_group_size(hp.group), 0);
                return r;
        }
        child_assert_int_eq(evt_group_cancel(hp.group, 0), 0);
        evt_task_unref(t);
        return 0;
}

static int op_event_new(void) {
        evt_event *e = (evt_event *) &hp;
        int r = evt_event_new(hp.loop, &e);

        if (r < 0) {
                child_assert(e == (evt_event *) &hp);
                return r;
        }
        evt_event_free(e);
        return 0;
}

static int op_group_new(void) {
        evt_group *g = (evt_group *) &hp;
        int r = evt_group_new(hp.loop, &g);

        if (r < 0) {
                child_assert(g == (evt_group *) &hp);
                return r;
        }
        evt_group_free(g);
        return 0;
}

static int op_pool_new(void) {
        evt_pool *p = (evt_pool *) &hp;
        int r = evt_pool_new(hp.loop, NULL, &p);

        if (r < 0) {
                child_assert(p == (evt_pool *) &hp);
                return r;
        }
        evt_pool_free(p);
        return 0;
}

/* arg is the pool's from the call on: freed once, whatever happens, except
 * for -EAGAIN (and -EINVAL). */
static int op_pool_call(void) {
        const evt_call_opts owned = { .arg_free = job_free };
        int freed = atomic_load(&hp.job.freed), result = UNTOUCHED;
        int r = evt_pool_call(hp.pool, quick_fn, &hp.job, &owned, evt_deadline_in(POLL_LIMIT), &result);

        if (r < 0) {
                child_assert_int_eq(result, UNTOUCHED);
                child_assert_int_eq(atomic_load(&hp.job.runs), 0);
                child_assert_int_eq(atomic_load(&hp.job.freed), freed + (r != -EAGAIN));
                return r;
        }
        child_assert_int_eq(result, hp.job.value);
        /* It ran: later successes would count again. */
        atomic_store(&hp.job.runs, 0);
        return 0;
}

static int op_lifecycle_new(void) {
        evt_lifecycle_opts opts = { .emergency_message = "bye\n", .emergency_fd = STDERR_FILENO };
        struct signal_state before = signal_state();
        evt_lifecycle *lc = (evt_lifecycle *) &hp;
        int r = evt_lifecycle_new(hp.loop, &opts, NULL, &lc);

        if (r < 0) {
                child_assert(lc == (evt_lifecycle *) &hp);
                assert_signal_state(&before);
                return r;
        }
        evt_lifecycle_free(lc);
        return 0;
}

static int op_loop_new(void) {
        evt_loop *l = (evt_loop *) &hp;
        int r = evt_loop_new(NULL, NULL, &l);

        if (r < 0) {
                child_assert(l == (evt_loop *) &hp);
                return r;
        }
        hp.spare_loop = l; /* not from inside a task */
        return 0;
}

static const struct {
        const char *name;
        heap_op op;
} heap_ops[] = {
        { "evt_task_spawn", op_spawn },
        { "evt_group_spawn", op_group_spawn },
        { "evt_event_new", op_event_new },
        { "evt_group_new", op_group_new },
        { "evt_pool_new", op_pool_new },
        { "evt_pool_call", op_pool_call },
        { "evt_lifecycle_new", op_lifecycle_new },
        { "evt_loop_new", op_loop_new },
};
#define N_HEAP_OPS (sizeof(heap_ops) / sizeof(heap_ops[0]))

static int heap_main(void *arg) {
        size_t page = (size_t) sysconf(_SC_PAGESIZE), left = N_HEAP_OPS;
        bool done[N_HEAP_OPS] = { false };

        (void) arg;
        /* Everything once, so that libev's arrays have grown and the pool
         * has its thread before the squeeze. */
        hp.warm.value = 1;
        child_assert_int_eq(evt_pool_call(hp.pool, quick_fn, &hp.warm, NULL, EVT_FOREVER, NULL), 0);
        for (size_t i = 0; i < N_HEAP_OPS; i++)
                if (heap_ops[i].op != op_loop_new) /* its loop is freed at the end */
                        child_assert_int_eq(heap_ops[i].op(), 0);
        child_assert_int_eq(evt_yield(), 0); /* the cancelled tasks end */

        /* No room, then a page more at a time: a call that allocates more
         * than it has room for fails half-way. Every failure is -ENOMEM and
         * gives back what it took; by a few pages, each call succeeds. */
        heap_exhaust();
        for (size_t pages = 0; pages <= 8 && left > 0; pages++) {
                address_space_squeeze(pages * page);
                for (size_t i = 0; i < N_HEAP_OPS; i++) {
                        size_t before;
                        int r;

                        if (done[i])
                                continue;
                        before = address_space();
                        r = heap_ops[i].op();
                        if (r == 0) {
                                done[i] = true;
                                left--;
                                continue;
                        }
                        if (r != -ENOMEM)
                                child_fail(__LINE__, "%s returned %d (%s) with room for %zu pages, not -ENOMEM",
                                           heap_ops[i].name, r, strerror(-r), pages);
                        if (address_space() != before)
                                child_fail(__LINE__, "%s failed and kept %zd bytes, with room for %zu pages",
                                           heap_ops[i].name, (ssize_t) (address_space() - before), pages);
                }
        }
        for (size_t i = 0; i < N_HEAP_OPS; i++)
                if (!done[i])
                        child_fail(__LINE__, "%s still fails with room for 8 pages", heap_ops[i].name);

        /* Memory back: all of it works. */
        heap_restore();
        for (size_t i = 0; i < N_HEAP_OPS; i++)
                if (heap_ops[i].op != op_loop_new)
                        child_assert_int_eq(heap_ops[i].op(), 0);
        child_assert_int_eq(evt_yield(), 0);
        child_assert_int_eq(hp.victims_ran, 0);
        return 0;
}

static void heap_scenario(void) {
        main_stack_pregrow();
        child_assert_int_eq(evt_loop_new(NULL, NULL, &hp.loop), 0);
        child_assert_int_eq(evt_pool_new(hp.loop, &(evt_pool_opts) { .threads = 1 }, &hp.pool), 0);
        child_assert_int_eq(evt_group_new(hp.loop, &hp.group), 0);
        hp.job.value = 3;
        child_loop_run(hp.loop, heap_main);
        evt_loop_free(hp.spare_loop);
        evt_group_free(hp.group);
        evt_pool_free(hp.pool);
        child_loop_free(hp.loop);
}

/* With the heap exhausted, every call that allocates fails with -ENOMEM,
 * without side effects, also half-way; once memory is back, they all work.
 * (glibc's malloc tunables make the heap's room countable.) */
START_TEST(heap_exhausted) {
#ifdef __GLIBC__
        if (under_asan() || RUNNING_ON_VALGRIND || !address_space_limited("heap_exhausted"))
                return; /* see the top of the file */
        assert_child_passes(heap_scenario);
#endif
}
END_TEST

Suite *evt_test_suite(void) {
        Suite *s = suite_create("limits");
        TCase *tc;

        tc = tcase_create("stack");
        tcase_add_test(tc, stack_no_address_space);
        suite_add_tcase(s, tc);

        tc = tcase_create("fd");
        tcase_add_test(tc, loop_new_no_fd);
        tcase_add_test(tc, fd_table_full);
        tcase_add_test(tc, fd_pool_own_loop);
        tcase_add_test(tc, deadline_without_descriptor);
        suite_add_tcase(s, tc);

        tc = tcase_create("thread");
        tcase_add_test(tc, thread_create_fails_eagain);
        suite_add_tcase(s, tc);

        tc = tcase_create("heap");
        tcase_add_test(tc, heap_exhausted);
        suite_add_tcase(s, tc);
        return s;
}
