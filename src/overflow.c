/* Stack overflows, reported: a task that ran off its stack is named on
 * stderr and the process aborts. See overflow.h. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include "overflow.h"
#include "scheduler.h"

static size_t put_str(char *buf, size_t at, size_t size, const char *s) {
        while (*s && at + 1 < size)
                buf[at++] = *s++;
        return at;
}

static size_t put_u64(char *buf, size_t at, size_t size, uint64_t v) {
        char digits[21];
        size_t n = sizeof(digits) - 1;

        digits[n] = '\0';
        do
                digits[--n] = (char) ('0' + v % 10);
        while ((v /= 10) != 0);
        return put_str(buf, at, size, digits + n);
}

/* A task that ran off the bottom of its stack (its guard page, or the canary
 * below a slab stack): memory beyond it may be corrupt, so nothing more can
 * be trusted to run. Names the task on stderr and aborts, so a core dump
 * shows where. Async-signal-safe: the fault handler calls it too. */
_Noreturn void evt__overflow_abort(const evt_task *t) {
        char msg[400];
        size_t n = put_str(msg, 0, sizeof(msg), "evtask: task '");

        if (t->name[0]) {
                n = put_str(msg, n, sizeof(msg), t->name);
        } else {
                n = put_str(msg, n, sizeof(msg), "task-");
                n = put_u64(msg, n, sizeof(msg), t->id);
        }
        n = put_str(msg, n, sizeof(msg), "' overflowed its stack (");
        n = put_u64(msg, n, sizeof(msg), t->stack->size);
        n = put_str(msg, n, sizeof(msg), " bytes; give it a larger stack_size)\n");
        (void) !write(STDERR_FILENO, msg, n);
        abort();
}

/* What SIGSEGV did before the first loop was made. */
static struct sigaction segv_before;
static pthread_once_t segv_once = PTHREAD_ONCE_INIT;

/* The stack pointer of the interrupted code, where the platform says; 0
 * where this file does not know (the fault address alone decides then). */
static uintptr_t fault_sp(const void *ucv) {
        const ucontext_t *uc = ucv;

#if defined(__linux__) && defined(__x86_64__)
        return (uintptr_t) uc->uc_mcontext.gregs[REG_RSP];
#elif defined(__linux__) && defined(__aarch64__)
        return (uintptr_t) uc->uc_mcontext.sp;
#elif defined(__linux__) && defined(__riscv)
        return (uintptr_t) uc->uc_mcontext.__gregs[REG_SP];
#elif defined(__FreeBSD__) && defined(__x86_64__)
        return (uintptr_t) uc->uc_mcontext.mc_rsp;
#elif defined(__FreeBSD__) && defined(__aarch64__)
        return (uintptr_t) uc->uc_mcontext.mc_gpregs.gp_sp;
#elif defined(__APPLE__) && defined(__x86_64__)
        return (uintptr_t) uc->uc_mcontext->__ss.__rsp;
#elif defined(__APPLE__) && defined(__aarch64__)
        return (uintptr_t) uc->uc_mcontext->__ss.__sp;
#else
        (void) uc;
        return 0;
#endif
}

/* Runs on the thread's alternate stack, since the faulting one may be full.
 * A fault that is not the running task's overflow goes on as if this
 * handler were not there. */
static void segv_handler(int sig, siginfo_t *si, void *uc) {
        evt_task *t = evt__task_running();

        if (t && t->stack && evt__stack_overflow_at(t->stack, (uintptr_t) si->si_addr, fault_sp(uc)))
                evt__overflow_abort(t);
        if (segv_before.sa_flags & SA_SIGINFO) {
                segv_before.sa_sigaction(sig, si, uc);
        } else if (segv_before.sa_handler != SIG_DFL && segv_before.sa_handler != SIG_IGN) {
                segv_before.sa_handler(sig);
        } else {
                /* The faulting instruction runs again, and the fault kills. */
                struct sigaction dfl = { .sa_handler = SIG_DFL };

                sigaction(sig, &dfl, NULL);
        }
}

static void segv_install(void) {
        struct sigaction sa = { .sa_sigaction = segv_handler, .sa_flags = SA_SIGINFO | SA_ONSTACK };

        sigemptyset(&sa.sa_mask);
        sigaction(SIGSEGV, &sa, &segv_before);
}

/* The alternate signal stack this thread got from its first loop, if it had
 * none of its own; it goes with the thread's last loop. */
static __thread void *altstack;
static __thread unsigned altstack_loops;
#define ALTSTACK_SIZE ((size_t) 64 * 1024)

static int altstack_take(void) {
        stack_t ss;
        void *map;

        if (altstack_loops > 0 || sigaltstack(NULL, &ss) < 0 || !(ss.ss_flags & SS_DISABLE)) {
                altstack_loops++;
                return 0;
        }
        map = mmap(NULL, ALTSTACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (map == MAP_FAILED)
                return -ENOMEM;
        ss = (stack_t) { .ss_sp = map, .ss_size = ALTSTACK_SIZE };
        if (sigaltstack(&ss, NULL) < 0) {
                munmap(map, ALTSTACK_SIZE);
                return -ENOMEM;
        }
        altstack = map;
        altstack_loops++;
        return 0;
}

static void altstack_give(void) {
        stack_t off = { .ss_flags = SS_DISABLE };

        if (--altstack_loops > 0 || !altstack)
                return;
        sigaltstack(&off, NULL);
        munmap(altstack, ALTSTACK_SIZE);
        altstack = NULL;
}

int evt__overflow_catch_start(void) {
        pthread_once(&segv_once, segv_install);
        return altstack_take();
}

void evt__overflow_catch_stop(void) {
        altstack_give();
}
