/* Coroutine stacks: guarded mappings up to a budget, slabs with canaries
 * beyond it (stack.h), and a pool of free ones. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sanitizer.h"
#include "stack.h"

#ifndef MAP_STACK
#define MAP_STACK 0
#endif
#ifndef MAP_NORESERVE
#define MAP_NORESERVE 0
#endif

/* MAP_NORESERVE: only the pages a task touches count, so a million mostly
 * idle stacks do not exhaust the commit limit. */
#define MAP_FLAGS (MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK)

/* The header in the stack's top bytes, rounded to keep the stack pointer
 * 16-byte aligned below it. */
#define HEADER_SIZE ((sizeof(evt__stack) + 63) & ~(size_t) 63)
#define CANARY_SIZE (EVT__CANARY_WORDS * sizeof(uint64_t))

static size_t page_size(void) {
        static size_t page;

        if (page == 0)
                page = (size_t) sysconf(_SC_PAGESIZE);
        return page;
}

/* A frame larger than this below the stack is not taken for an overflow. */
#define OVERFLOW_REACH ((uintptr_t) 1 << 20)

bool evt__stack_overflow_at(const evt__stack *s, uintptr_t addr, uintptr_t sp) {
        uintptr_t lo = (uintptr_t) s->lo;

        /* page_size() was called when the stack was made: no sysconf here. */
        if (addr < lo && lo - addr <= page_size())
                return true;
        return sp != 0 && sp < lo && lo - sp <= OVERFLOW_REACH;
}

size_t evt__stack_size_round(size_t size) {
        size_t page = page_size();

        if (size < EVT__STACK_MIN || size > EVT__STACK_MAX)
                return 0;
        return (size + page - 1) / page * page;
}

/* ---- the budget of guarded stacks (process-wide: every loop's pools) ---- */

static size_t guarded_max_set_to = SIZE_MAX, guarded_now;

/* Linux's default vm.max_map_count; a bound elsewhere too (the BSDs and
 * macOS have no such limit, and a quarter of it is many stacks). */
#define DEFAULT_MAP_COUNT 65530

static size_t default_guarded_max(void) {
        static size_t n;

        if (n == 0) {
                unsigned long maps = DEFAULT_MAP_COUNT;
#if EVT_HAVE_PROCFS
                char buf[32];
                int fd = open("/proc/sys/vm/max_map_count", O_RDONLY | O_CLOEXEC);
                ssize_t len = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

                if (fd >= 0)
                        close(fd);
                if (len > 0) {
                        buf[len] = '\0';
                        maps = strtoul(buf, NULL, 10);
                        if (maps == 0)
                                maps = DEFAULT_MAP_COUNT;
                }
#endif
                n = maps / 4 > 0 ? maps / 4 : 1;
        }
        return n;
}

size_t evt__stack_guarded_max(void) {
        size_t n = __atomic_load_n(&guarded_max_set_to, __ATOMIC_RELAXED);

        return n != SIZE_MAX ? n : default_guarded_max();
}

size_t evt__stack_guarded_now(void) {
        return __atomic_load_n(&guarded_now, __ATOMIC_RELAXED);
}

void evt__stack_guarded_max_set(size_t n) {
        __atomic_store_n(&guarded_max_set_to, n, __ATOMIC_RELAXED);
}

/* Takes one from the budget, or says there is none left. */
static bool guarded_take(void) {
        size_t now = __atomic_load_n(&guarded_now, __ATOMIC_RELAXED);

        do {
                if (now >= evt__stack_guarded_max())
                        return false;
        } while (!__atomic_compare_exchange_n(&guarded_now, &now, now + 1, true, __ATOMIC_RELAXED,
                                              __ATOMIC_RELAXED));
        return true;
}

static void guarded_give(void) {
        __atomic_fetch_sub(&guarded_now, 1, __ATOMIC_RELAXED);
}

/* ---- guarded stacks ------------------------------------------------------ */

static void stack_register(evt__stack *s) {
        evt__list_init(&s->link);
        /* valgrind wants the highest byte, not one past it. */
        s->vg_id = EVT__VALGRIND_STACK_REGISTER(s->lo, (char *) s->lo + s->size - 1);
}

static int guarded_map(size_t size, bool counted, evt__stack **ret) {
        size_t page = page_size();
        size_t map_size = page + size; /* size is a multiple of page */
        void *map;
        evt__stack *s;

        map = mmap(NULL, map_size, PROT_READ | PROT_WRITE, MAP_FLAGS, -1, 0);
        if (map == MAP_FAILED)
                return -errno;
        if (mprotect(map, page, PROT_NONE) < 0) {
                int r = -errno;

                munmap(map, map_size);
                return r;
        }
        if (!counted)
                __atomic_fetch_add(&guarded_now, 1, __ATOMIC_RELAXED);

        s = (evt__stack *) ((char *) map + map_size - HEADER_SIZE);
        *s = (evt__stack) {
                .map = map,
                .map_size = map_size,
                .lo = (char *) map + page,
                .size = map_size - page - HEADER_SIZE,
        };
        stack_register(s);
        *ret = s;
        return 0;
}

static void guarded_unmap(evt__stack *s) {
        EVT__VALGRIND_STACK_DEREGISTER(s->vg_id);
        munmap(s->map, s->map_size);
        guarded_give();
}

/* ---- slabs --------------------------------------------------------------- */

/* A slab: one leading page, then its stacks. Stack i's canary sits just
 * below its lowest byte, at the top of the page below: the leading page for
 * stack 0, else the top page of stack i - 1, next to that one's header.
 * That page is resident anyway while stack i - 1 is in use, so the canary
 * costs no page of its own, while an overflow of stack i reaches it first. */
static size_t slab_map_size(const evt__stack_pool *p) {
        return page_size() + EVT__SLAB_STACKS * p->stack_size;
}

static int slab_new(evt__stack_pool *p) {
        size_t map_size = slab_map_size(p);
        evt__slab *slab = malloc(sizeof(*slab));
        void *map;

        if (!slab)
                return -ENOMEM;
        map = mmap(NULL, map_size, PROT_READ | PROT_WRITE, MAP_FLAGS, -1, 0);
        if (map == MAP_FAILED) {
                free(slab);
                return -errno;
        }
        *slab = (evt__slab) { .map = map, .map_size = map_size };
        evt__list_push_back(&p->slabs, &slab->link);
        p->carving = slab;
        return 0;
}

static char *slab_stack_base(const evt__stack_pool *p, const evt__slab *slab, unsigned i) {
        return (char *) slab->map + page_size() + (size_t) i * p->stack_size;
}

/* Stack i's header: at the top, below the canary of stack i + 1. */
static evt__stack *slab_stack(const evt__stack_pool *p, const evt__slab *slab, unsigned i) {
        return (evt__stack *) (slab_stack_base(p, slab, i + 1) - CANARY_SIZE - HEADER_SIZE);
}

static evt__stack *slab_carve(evt__stack_pool *p) {
        evt__slab *slab = p->carving;
        char *base = slab_stack_base(p, slab, slab->carved);
        evt__stack *s = slab_stack(p, slab, slab->carved);
        uint64_t *canary = (uint64_t *) base - EVT__CANARY_WORDS;

        for (int i = 0; i < EVT__CANARY_WORDS; i++)
                canary[i] = EVT__CANARY;
        *s = (evt__stack) {
                .slab = slab,
                .lo = base,
                .size = p->stack_size - CANARY_SIZE - HEADER_SIZE,
        };
        stack_register(s);
        if (++slab->carved == EVT__SLAB_STACKS)
                p->carving = NULL;
        return s;
}

/* Unmaps an empty slab: its carved stacks leave the free list first. */
static void slab_unmap(evt__stack_pool *p, evt__slab *slab) {
        assert(slab->n_free == slab->carved);
        for (unsigned i = 0; i < slab->carved; i++) {
                evt__stack *s = slab_stack(p, slab, i);

                evt__list_remove(&s->link);
                EVT__VALGRIND_STACK_DEREGISTER(s->vg_id);
        }
        p->n_free -= slab->carved;
        if (p->carving == slab)
                p->carving = NULL;
        evt__list_remove(&slab->link);
        munmap(slab->map, slab->map_size);
        free(slab);
}

/* ---- the pool ------------------------------------------------------------ */

void evt__stack_pool_init(evt__stack_pool *p, size_t stack_size, size_t max_free) {
        *p = (evt__stack_pool) {
                .stack_size = evt__stack_size_round(stack_size),
                .max_free = max_free,
        };
        assert(p->stack_size > 0);
        evt__list_init(&p->free_guarded);
        evt__list_init(&p->free_slab);
        evt__list_init(&p->slabs);
        evt__list_init(&p->empty_slabs);
}

struct span {
        char *lo, *hi;
};

static int span_cmp(const void *a, const void *b) {
        const struct span *x = a, *y = b;

        return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Unmaps the free guarded stacks. The system tends to map them next to
 * each other, and one munmap of a run of neighbours costs less than one
 * per stack: a loop that ends with a thousand stacks kept ends sooner
 * (docs/BENCHMARKS.md, W5). */
static void free_guarded_unmap(evt__stack_pool *p) {
        struct span *spans = malloc(p->n_free * sizeof(*spans));
        size_t n_spans = 0;
        evt__list *n;

        while ((n = evt__list_pop_front(&p->free_guarded))) {
                evt__stack *s = evt__container_of(n, evt__stack, link);

                p->n_free--;
                if (!spans) {
                        guarded_unmap(s); /* no memory to sort with: one by one */
                        continue;
                }
                /* The header is inside the mapping: read it all first. */
                spans[n_spans++] = (struct span) { s->map, (char *) s->map + s->map_size };
                EVT__VALGRIND_STACK_DEREGISTER(s->vg_id);
                guarded_give();
        }
        if (!spans)
                return;
        qsort(spans, n_spans, sizeof(*spans), span_cmp);
        for (size_t i = 0, j; i < n_spans; i = j) {
                char *hi = spans[i].hi;

                for (j = i + 1; j < n_spans && spans[j].lo == hi; j++)
                        hi = spans[j].hi;
                munmap(spans[i].lo, (size_t) (hi - spans[i].lo));
        }
        free(spans);
}

void evt__stack_pool_done(evt__stack_pool *p) {
        evt__list *n;

        free_guarded_unmap(p);
        while ((n = p->empty_slabs.next) != &p->empty_slabs)
                slab_unmap(p, evt__container_of(n, evt__slab, link));
        /* A slab none of whose stacks was ever handed out is empty too. */
        if (p->carving && p->carving->carved == 0)
                slab_unmap(p, p->carving);
}

static evt__stack *pop_free(evt__stack_pool *p) {
        evt__list *n = evt__list_pop_front(&p->free_guarded);
        evt__stack *s;

        if (!n)
                n = evt__list_pop_front(&p->free_slab);
        if (!n)
                return NULL;
        p->n_free--;
        s = evt__container_of(n, evt__stack, link);
        if (s->slab && s->slab->n_free-- == s->slab->carved) {
                /* No longer empty (it was on empty_slabs). */
                evt__list_remove(&s->slab->link);
                evt__list_push_back(&p->slabs, &s->slab->link);
        }
        return s;
}

int evt__stack_get(evt__stack_pool *p, size_t size, evt__stack **ret) {
        int r;

        size = size == 0 ? p->stack_size : evt__stack_size_round(size);
        if (size == 0)
                return -EINVAL;

        if (size != p->stack_size) {
                /* Odd sizes are rare: guarded, budget or not. */
                r = guarded_map(size, false, ret);
        } else if ((*ret = pop_free(p))) {
                r = 0;
        } else if (guarded_take()) {
                r = guarded_map(size, true, ret);
                if (r < 0)
                        guarded_give();
        } else {
                r = p->carving ? 0 : slab_new(p);
                if (r == 0)
                        *ret = slab_carve(p);
        }
        if (r < 0)
                return r;
        p->n_used++;
        return 0;
}

void evt__stack_put(evt__stack_pool *p, evt__stack *s) {
        assert(p->n_used > 0);
        p->n_used--;

        /* A reused stack starts clean for ASan: frames abandoned by the task
         * that ended here may have left poisoned redzones behind. */
        EVT__ASAN_UNPOISON(s->lo, s->size);

        if (!s->slab) {
                if (s->map_size != page_size() + p->stack_size) {
                        guarded_unmap(s);
                        return;
                }
                evt__list_insert_before(p->free_guarded.next, &s->link);
        } else {
                evt__list_insert_before(p->free_slab.next, &s->link);
                /* Empty, even while new stacks are still carved from it:
                 * a trim may unmap it. */
                if (++s->slab->n_free == s->slab->carved) {
                        evt__list_remove(&s->slab->link);
                        evt__list_push_back(&p->empty_slabs, &s->slab->link);
                }
        }
        p->n_free++;
}

bool evt__stack_pool_trim(evt__stack_pool *p, unsigned budget) {
        evt__list *n;

        while (budget > 0 && evt__stack_pool_over(p)) {
                if ((n = p->free_guarded.prev) != &p->free_guarded) {
                        /* The least recently used. */
                        evt__list_remove(n);
                        p->n_free--;
                        guarded_unmap(evt__container_of(n, evt__stack, link));
                        budget--;
                } else if ((n = p->empty_slabs.next) != &p->empty_slabs) {
                        /* Its touched pages go too: 64 stacks' worth of
                         * work, which in one idle call would hold the loop
                         * for a millisecond or more. */
                        slab_unmap(p, evt__container_of(n, evt__slab, link));
                        budget = budget > EVT__SLAB_STACKS ? budget - EVT__SLAB_STACKS : 0;
                } else {
                        /* What is left is in slabs that still hold a task:
                         * kept until they empty. */
                        return false;
                }
        }
        return evt__stack_pool_over(p) &&
               (p->free_guarded.next != &p->free_guarded || p->empty_slabs.next != &p->empty_slabs);
}
