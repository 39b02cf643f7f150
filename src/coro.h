/* Layer 1, coro: contexts, and the switch from one to another. A context
 * runs on a stack of stack.h. Knows nothing of libev or tasks; everything
 * here runs on one thread. */
#pragma once

#include <stddef.h>
#if EVT_CORO_UCONTEXT
#include <ucontext.h>
#endif

#include "sanitizer.h"
#include "stack.h"

typedef void (*evt__coro_fn)(void *arg);

typedef struct evt__coro {
#if EVT_CORO_UCONTEXT
        ucontext_t uc;          /* saved context while switched out */
        evt__coro_fn fn;        /* entry point, run once on first switch in */
        void *arg;              /* its argument */
#else
        void *sp;               /* saved stack pointer while switched out;
                                 * a fresh context's entry point and its
                                 * argument wait on its stack, above the
                                 * first frame: every task record carries
                                 * a context */
#endif
        /* Only for a sanitizer: every task record carries a context, and
         * 100,000 records are 100,000 times these bytes. */
#if EVT__ASAN
        const void *stack_lo;   /* stack bounds, for ASan; a thread's */
        size_t stack_size;      /* own stack learns them late */
        void *asan_fake;        /* ASan's fake stack while switched out */
#endif
#if EVT__TSAN
        void *tsan_fiber;       /* TSan's fiber, from the first switch on */
#endif
} evt__coro;

/* The context of the thread's own stack, the one tasks switch back to. */
void evt__coro_init_main(evt__coro *c);
/* A context that starts fn(arg) on stack s at its first switch in. fn must
 * never return: its last act is evt__coro_switch_final(). */
void evt__coro_init(evt__coro *c, evt__stack *s, evt__coro_fn fn, void *arg);
/* Save the current context into from and continue in to. */
void evt__coro_switch(evt__coro *from, evt__coro *to);
/* Asks the cache for what a switch to c reads first: the frames above its
 * saved stack pointer. Only a hint. 512 bytes: a parked task's frames
 * (switch, wait, primitive, task function) span about that, and a frame
 * left out is a miss again (docs/BENCHMARKS.md, W3 cancel). */
static inline void evt__coro_prefetch(const evt__coro *c) {
#if EVT_CORO_UCONTEXT
        (void) c;
#else
        for (int i = 0; i < 8; i++)
                __builtin_prefetch((const char *) c->sp + 64 * i);
#endif
}
/* Up to n return addresses of switched-out context c, whose stack is
 * [lo, lo + size), unwound by its frame pointers (evt_task_backtrace): how
 * many, or -ENOTSUP where this build cannot walk. */
int evt__coro_backtrace(const evt__coro *c, const void *lo, size_t size, void **pcs, size_t n);
/* Like evt__coro_switch, for a context that will never run again: its stack
 * may be reused as soon as to runs. */
_Noreturn void evt__coro_switch_final(evt__coro *from, evt__coro *to);
