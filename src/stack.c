/* Coroutine stacks: mmap with a guard page, and a pool of free ones. */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "coro.h"
#include "sanitizer.h"

#ifndef MAP_STACK
#define MAP_STACK 0
#endif
#ifndef MAP_NORESERVE
#define MAP_NORESERVE 0
#endif

static size_t page_size(void) {
        static size_t page;

        if (page == 0)
                page = (size_t) sysconf(_SC_PAGESIZE);
        return page;
}

size_t evt__stack_size_round(size_t size) {
        size_t page = page_size();

        if (size < EVT__STACK_MIN || size > EVT__STACK_MAX)
                return 0;
        return (size + page - 1) / page * page;
}

/* The header sits in the stack's own top bytes (no page of its own, which
 * would cost every task a resident page), rounded to keep the stack pointer
 * 16-byte aligned below it. */
#define HEADER_SIZE ((sizeof(evt__stack) + 63) & ~(size_t) 63)

static int stack_map(size_t size, evt__stack **ret) {
        size_t page = page_size();
        size_t map_size = page + size; /* size is a multiple of page */
        void *map;
        evt__stack *s;

        /* MAP_NORESERVE: only the pages a task touches count, so a million
         * mostly idle stacks do not exhaust the commit limit. */
        map = mmap(NULL, map_size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
        if (map == MAP_FAILED)
                return -errno;
        if (mprotect(map, page, PROT_NONE) < 0) {
                int r = -errno;

                munmap(map, map_size);
                return r;
        }

        s = (evt__stack *) ((char *) map + map_size - HEADER_SIZE);
        *s = (evt__stack) {
                .map = map,
                .map_size = map_size,
                .lo = (char *) map + page,
                .size = map_size - page - HEADER_SIZE,
        };
        evt__list_init(&s->link);
        /* valgrind wants the highest byte, not one past it. */
        s->vg_id = EVT__VALGRIND_STACK_REGISTER(s->lo, (char *) s->lo + s->size - 1);
        *ret = s;
        return 0;
}

static void stack_unmap(evt__stack *s) {
        EVT__VALGRIND_STACK_DEREGISTER(s->vg_id);
        munmap(s->map, s->map_size);
}

void evt__stack_pool_init(evt__stack_pool *p, size_t stack_size, size_t max_free) {
        *p = (evt__stack_pool) {
                .stack_size = evt__stack_size_round(stack_size),
                .max_free = max_free,
        };
        assert(p->stack_size > 0);
        evt__list_init(&p->free);
}

void evt__stack_pool_done(evt__stack_pool *p) {
        evt__list *n;

        while ((n = evt__list_pop_front(&p->free)))
                stack_unmap(evt__container_of(n, evt__stack, link));
        p->n_free = 0;
}

int evt__stack_get(evt__stack_pool *p, size_t size, evt__stack **ret) {
        evt__list *n;
        int r;

        size = size == 0 ? p->stack_size : evt__stack_size_round(size);
        if (size == 0)
                return -EINVAL;

        if (size == p->stack_size && (n = evt__list_pop_front(&p->free))) {
                p->n_free--;
                *ret = evt__container_of(n, evt__stack, link);
        } else {
                r = stack_map(size, ret);
                if (r < 0)
                        return r;
        }
        p->n_used++;
        return 0;
}

void evt__stack_put(evt__stack_pool *p, evt__stack *s) {
        assert(p->n_used > 0);
        p->n_used--;

        /* A reused stack starts clean for ASan: frames abandoned by the task
         * that ended here may have left poisoned redzones behind. */
        EVT__ASAN_UNPOISON(s->lo, s->size);

        if (s->map_size != page_size() + p->stack_size || p->n_free >= p->max_free) {
                stack_unmap(s);
                return;
        }
        evt__list_insert_before(p->free.next, &s->link);
        p->n_free++;
}
