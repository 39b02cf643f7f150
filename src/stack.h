/* Layer 1, coro: stacks for contexts. Guarded mappings up to a budget, then
 * slabs with canaries, and a pool of free stacks. Knows nothing of libev or
 * tasks; everything here runs on one thread. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "list.h"

/* A stack is one of two kinds.
 *
 * Guarded: a mapping of its own, with a PROT_NONE guard page at the low end
 * (stacks grow down), so an overflow faults instead of corrupting anything.
 * That costs two of the process's memory mappings (vm.max_map_count, 65530
 * by default), so guarded stacks are used up to a budget: a quarter of the
 * limit, half of the mappings.
 *
 * Slab: beyond the budget, stacks are carved from slabs, one mapping of
 * EVT__SLAB_STACKS stacks each, and a canary sits below each one's lowest
 * usable byte. The scheduler checks the canary whenever a task leaves the
 * CPU; a task found to have overflowed is named and the process aborts.
 *
 * Either way the header sits in the stack's top bytes (no page of its own,
 * which would cost every task a resident page), and pages are committed
 * only when touched, so a parked task costs about one page. */
typedef struct evt__stack {
        evt__list link;         /* on a free list of the pool while unused */
        struct evt__slab *slab; /* the slab it belongs to; NULL if guarded */
        void *map;              /* guarded: its mapping (the guard page on) */
        size_t map_size;
        void *lo;               /* lowest usable byte */
        size_t size;            /* usable bytes, from lo up to this header */
        unsigned vg_id;         /* valgrind's id for the registered stack */
} evt__stack;

typedef struct evt__slab {
        evt__list link;         /* on the pool's slabs or empty_slabs */
        void *map;
        size_t map_size;
        unsigned carved;        /* stacks handed out so far, from the bottom */
        unsigned n_free;        /* of those, on the free list now */
} evt__slab;

/* Free stacks of one size kept for reuse, so that a spawn after a task has
 * ended costs no system call. Stacks of other sizes are mapped and unmapped
 * one by one, guarded. Past max_free, free stacks are returned to the system
 * by evt__stack_pool_trim, in the background: a guarded one at a time, a
 * slab once all its stacks are free. */
typedef struct evt__stack_pool {
        size_t stack_size;      /* usable size of pooled stacks */
        size_t max_free;        /* keep about this many free stacks */
        evt__list free_guarded; /* evt__stack.link, most recently used first */
        evt__list free_slab;    /* likewise, stacks of slabs */
        size_t n_free;          /* on both lists */
        size_t n_used;          /* stacks handed out and not yet returned */
        evt__list slabs;        /* slabs with a stack in use or not carved */
        evt__list empty_slabs;  /* slabs with stacks carved, all of them free */
        evt__slab *carving;     /* the slab new stacks are carved from */
} evt__stack_pool;

#define EVT__STACK_MIN ((size_t) 16 * 1024)
#define EVT__STACK_MAX ((size_t) 1024 * 1024 * 1024)
#define EVT__SLAB_STACKS 64u
#define EVT__CANARY_WORDS 8
#define EVT__CANARY UINT64_C(0x5a17c0ffee0dd5ad)

/* Round a requested stack size up to what a stack really gets; 0 if the
 * request is outside [EVT__STACK_MIN, EVT__STACK_MAX]. */
size_t evt__stack_size_round(size_t size);
void evt__stack_pool_init(evt__stack_pool *p, size_t stack_size, size_t max_free);
/* Unmaps the free stacks and the slabs. Stacks still in use stay the
 * caller's problem. */
void evt__stack_pool_done(evt__stack_pool *p);
/* size 0 means the pool's size. Returns 0, -EINVAL or -ENOMEM. */
int evt__stack_get(evt__stack_pool *p, size_t size, evt__stack **ret);
void evt__stack_put(evt__stack_pool *p, evt__stack *s);
/* Does the pool hold more free stacks than it keeps? */
static inline bool evt__stack_pool_over(const evt__stack_pool *p) {
        return p->n_free > p->max_free;
}
/* Gives back to the system about `budget` free stacks beyond max_free: a
 * slab counts as all its stacks (unmapping one is about as much work), and
 * at least one mapping goes. True while there is more to give back. */
bool evt__stack_pool_trim(evt__stack_pool *p, unsigned budget);
/* Is the canary below a slab stack intact (always true for a guarded one)? */
static inline bool evt__stack_intact(const evt__stack *s) {
        const uint64_t *c = (const uint64_t *) s->lo - EVT__CANARY_WORDS;

        return !s->slab || (c[0] == EVT__CANARY && c[EVT__CANARY_WORDS - 1] == EVT__CANARY);
}
/* Did a fault at `addr`, with the stack pointer at `sp` (0: unknown), come
 * from running off the bottom of s: into its guard page (or the page below a
 * slab stack), or with the stack pointer already below it? Async-signal-safe. */
bool evt__stack_overflow_at(const evt__stack *s, uintptr_t addr, uintptr_t sp);
/* How many guarded stacks the process may have at once (the budget above),
 * and how many it has. For tests: set the budget; SIZE_MAX restores the
 * default. */
size_t evt__stack_guarded_max(void);
size_t evt__stack_guarded_now(void);
void evt__stack_guarded_max_set(size_t n);
