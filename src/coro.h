/* Layer 1, coro: stacks and the context switch. Knows nothing of libev or
 * tasks; everything here runs on one thread. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#if EVT_CORO_UCONTEXT
#include <ucontext.h>
#endif

#include "list.h"

/* ---- stacks -------------------------------------------------------------- */

/* One mmap per stack: a PROT_NONE guard page at the low end (stacks grow
 * down, so an overflow faults instead of corrupting a neighbour), the usable
 * stack, and this header in the top bytes of the mapping. */
typedef struct evt__stack {
        evt__list link;         /* on the pool's free list while unused */
        void *map;              /* start of the mapping (the guard page) */
        size_t map_size;        /* whole mapping, guard and header included */
        void *lo;               /* lowest usable byte */
        size_t size;            /* usable bytes, from lo up to this header */
        unsigned vg_id;         /* valgrind's id for the registered stack */
} evt__stack;

/* Free stacks of one size kept for reuse, so that a spawn after a task has
 * ended costs no system call. Stacks of other sizes are mapped and unmapped
 * one by one. */
typedef struct evt__stack_pool {
        size_t stack_size;      /* usable size of pooled stacks */
        size_t max_free;        /* keep at most this many free stacks */
        evt__list free;         /* evt__stack.link, most recently used first */
        size_t n_free;          /* length of free */
        size_t n_used;          /* stacks handed out and not yet returned */
} evt__stack_pool;

#define EVT__STACK_MIN ((size_t) 16 * 1024)
#define EVT__STACK_MAX ((size_t) 1024 * 1024 * 1024)

/* Round a requested stack size up to what a stack really gets; 0 if the
 * request is outside [EVT__STACK_MIN, EVT__STACK_MAX]. */
size_t evt__stack_size_round(size_t size);
void evt__stack_pool_init(evt__stack_pool *p, size_t stack_size, size_t max_free);
/* Unmaps the free stacks. Stacks still in use stay the caller's problem. */
void evt__stack_pool_done(evt__stack_pool *p);
/* size 0 means the pool's size. Returns 0, -EINVAL or -ENOMEM. */
int evt__stack_get(evt__stack_pool *p, size_t size, evt__stack **ret);
void evt__stack_put(evt__stack_pool *p, evt__stack *s);

/* ---- contexts ------------------------------------------------------------ */

typedef void (*evt__coro_fn)(void *arg);

typedef struct evt__coro {
#if EVT_CORO_UCONTEXT
        ucontext_t uc;          /* saved context while switched out */
#else
        void *sp;               /* saved stack pointer while switched out */
#endif
        evt__coro_fn fn;        /* entry point, run once on first switch in */
        void *arg;              /* its argument */
        const void *stack_lo;   /* stack bounds, for the sanitizer; a */
        size_t stack_size;      /* thread's own stack learns them late */
        void *asan_fake;        /* ASan's fake stack while switched out */
        void *tsan_fiber;       /* TSan's fiber, from the first switch on */
} evt__coro;

/* The context of the thread's own stack, the one tasks switch back to. */
void evt__coro_init_main(evt__coro *c);
/* A context that starts fn(arg) on stack s at its first switch in. fn must
 * never return: its last act is evt__coro_switch_final(). */
void evt__coro_init(evt__coro *c, evt__stack *s, evt__coro_fn fn, void *arg);
/* Save the current context into from and continue in to. */
void evt__coro_switch(evt__coro *from, evt__coro *to);
/* Like evt__coro_switch, for a context that will never run again: its stack
 * may be reused as soon as to runs. */
_Noreturn void evt__coro_switch_final(evt__coro *from, evt__coro *to);
