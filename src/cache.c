/* Fixed-size objects carved from chunks: see cache.h. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "list.h"
#include "sanitizer.h"
#include "cache.h"

/* Chunks of 64 KiB: 272 task records. (2 MiB chunks advised for huge
 * pages were tried: faster when the kernel had a warm huge page to give,
 * much slower when it had to fetch one from the hypervisor, which is the
 * usual case on the VMs measured, so they are not used; docs/BENCHMARKS.md
 * has the figures.) */
#define CHUNK_SIZE ((size_t) 64 * 1024)
#define SIZE_MAX_OBJ ((size_t) 16 * 1024)

/* Each object is preceded by a slot header: its chunk while it is out, the
 * next free slot while it is free. The header is never poisoned. With an
 * alignment of 16 it is 16 bytes, the link in the last 8. */
typedef union slot {
        struct chunk *chunk;
        union slot *next;
} slot;

typedef struct chunk {
        evt__list link;         /* on cache->partial while it has room */
        evt__cache *cache;
        slot *free;             /* freed slots */
        char *bump;             /* the first slot never handed out */
        char *end;              /* past the last whole slot */
        unsigned live;          /* objects out */
} chunk;

/* Slots start 16-byte aligned; each object sits hdr bytes into its slot,
 * and the slot header right below it. */
#define SLOTS_AT ((sizeof(chunk) + 15) & ~(size_t) 15)

struct evt__cache {
        size_t slot;            /* bytes a slot: header and object */
        size_t hdr;             /* bytes before the object: 8 or 16 */
        evt__list partial;      /* chunks with a free or never-used slot */
        chunk *spare;           /* an empty chunk, off the list */
        size_t live;            /* objects out, over all chunks */
        size_t bytes;           /* in chunks, the spare's included */
        bool released;          /* its owner is gone */
};

evt__cache *evt__cache_new(size_t size, size_t align) {
        evt__cache *s;

        if (size == 0 || size > SIZE_MAX_OBJ || (align != 8 && align != 16))
                return NULL;
        s = malloc(sizeof(*s));
        if (!s)
                return NULL;
        /* Slots are multiples of 16 from a 16-byte boundary, so every
         * object sits at `hdr` past one. */
        s->hdr = align;
        s->slot = (s->hdr + size + 15) & ~(size_t) 15;
        evt__list_init(&s->partial);
        s->spare = NULL;
        s->live = 0;
        s->bytes = 0;
        s->released = false;
        return s;
}

/* The header of the object at obj. */
static slot *slot_of(void *obj) {
        return (slot *) ((char *) obj - sizeof(slot));
}

/* An empty chunk: every slot never used, and none accessible. */
static void chunk_reset(evt__cache *s, chunk *c) {
        size_t n = (CHUNK_SIZE - SLOTS_AT) / s->slot;

        c->free = NULL;
        c->bump = (char *) c + SLOTS_AT;
        c->end = c->bump + n * s->slot;
        c->live = 0;
        EVT__ASAN_POISON(c->bump, (size_t) (c->end - c->bump));
        EVT__VALGRIND_NOACCESS(c->bump, (size_t) (c->end - c->bump));
}

static chunk *chunk_new(evt__cache *s) {
        chunk *c = malloc(CHUNK_SIZE);

        if (!c)
                return NULL;
        s->bytes += CHUNK_SIZE;
        c->cache = s;
        evt__list_init(&c->link);
        chunk_reset(s, c);
        return c;
}

static void chunk_free(chunk *c) {
        c->cache->bytes -= CHUNK_SIZE;
        EVT__ASAN_UNPOISON(c, CHUNK_SIZE);
        EVT__VALGRIND_UNDEFINED(c, CHUNK_SIZE);
        free(c);
}

static bool chunk_has_room(const chunk *c) {
        return c->free || c->bump != c->end;
}

static void cache_free(evt__cache *s) {
        if (s->spare)
                chunk_free(s->spare);
        free(s);
}

void *evt__cache_alloc(evt__cache *s) {
        chunk *c;
        char *p;
        slot *sl;

        if (!evt__list_empty(&s->partial)) {
                c = evt__container_of(s->partial.next, chunk, link);
        } else {
                c = s->spare ? s->spare : chunk_new(s);
                if (!c)
                        return NULL;
                s->spare = NULL;
                evt__list_push_back(&s->partial, &c->link);
        }

        if (c->free) {
                sl = c->free;
                c->free = sl->next;
                p = (char *) (sl + 1);
        } else {
                p = c->bump + s->hdr;
                c->bump += s->slot;
                sl = slot_of(p);
                EVT__ASAN_UNPOISON(sl, sizeof(slot));
                EVT__VALGRIND_UNDEFINED(sl, sizeof(slot));
        }
        if (!chunk_has_room(c))
                evt__list_remove(&c->link);
        sl->chunk = c;
        c->live++;
        s->live++;
        EVT__ASAN_UNPOISON(p, s->slot - s->hdr);
        EVT__VALGRIND_UNDEFINED(p, s->slot - s->hdr);
        return p;
}

void evt__cache_free(void *obj) {
        slot *sl;
        chunk *c;
        evt__cache *s;
        bool had_room;

        if (!obj)
                return;
        sl = slot_of(obj);
        c = sl->chunk;
        s = c->cache;
        had_room = chunk_has_room(c);

        EVT__ASAN_POISON(obj, s->slot - s->hdr);
        EVT__VALGRIND_NOACCESS(obj, s->slot - s->hdr);
        sl->next = c->free;
        c->free = sl;
        c->live--;
        s->live--;

        if (c->live == 0) {
                /* Off the list; kept as the spare, or given back. */
                evt__list_remove(&c->link);
                if (s->spare || s->released) {
                        chunk_free(c);
                } else {
                        chunk_reset(s, c);
                        s->spare = c;
                }
        } else if (!had_room) {
                /* Its newest free slot is the first to go again. */
                evt__list_push_front(&s->partial, &c->link);
        }
        if (s->released && s->live == 0)
                cache_free(s);
}

void evt__cache_release(evt__cache *s) {
        if (!s)
                return;
        s->released = true;
        if (s->live == 0) {
                cache_free(s);
        } else if (s->spare) {
                chunk_free(s->spare);
                s->spare = NULL;
        }
}

size_t evt__cache_bytes(const evt__cache *s) {
        return s->bytes;
}
