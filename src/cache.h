/* An object cache: fixed-size objects carved from chunks, what task
 * records are made of. Once many records are alive, malloc gets slow:
 * calloc skips glibc's per-thread cache, and 100,000 live records leave
 * its fast bins behind. The cache pops a free list or bumps a pointer
 * (docs/BENCHMARKS.md, task records).
 *
 * A cache belongs to one thread. An object may outlive the cache's owner (a
 * task reference kept after evt_loop_free): evt__cache_release hands the
 * cache to its objects, and the last one freed frees it. Of the chunks that
 * empty, one is kept for the next allocation and the others go back to
 * malloc at once, so a cache holds no more than its live objects and one
 * chunk.
 *
 * Free objects are poisoned for ASan and made inaccessible for valgrind,
 * and a new object is undefined to valgrind until written: the checks
 * malloc would give, bar the quarantine. Chunks come from malloc, so leak
 * checkers scan them. */
#pragma once

#include <stddef.h>

typedef struct evt__cache evt__cache;

/* A cache of objects of `size` bytes (at most 16 KiB), aligned to `align`
 * (8 or 16). NULL when out of memory, or for a size or alignment out of
 * range. */
evt__cache *evt__cache_new(size_t size, size_t align);
/* An uninitialized object, or NULL when out of memory. */
void *evt__cache_alloc(evt__cache *c);
/* Gives back an object to the cache it came from. Accepts NULL. */
void evt__cache_free(void *obj);
/* The owner is done with it: it goes now, or with its last object.
 * Accepts NULL. */
void evt__cache_release(evt__cache *c);
/* Bytes of chunks it holds, the spare's included: for tests. */
size_t evt__cache_bytes(const evt__cache *c);
