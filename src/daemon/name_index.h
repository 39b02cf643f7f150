/* An index of things by name: a hash table of borrowed name strings, for
 * the config's tasks and the daemon's jobs, so that looking one up does not
 * walk them all. */
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef struct evd_name_index {
        struct evd_name_slot *slots; /* NULL until the first put */
        size_t cap;             /* a power of two, or 0 */
        size_t n;
} evd_name_index;

/* Adds name -> value. The name is borrowed: it must stay as it is while it
 * is in the index. 0, -EEXIST with the value already there in *ret_old
 * (unchanged), or -ENOMEM. */
int evd_name_index_put(evd_name_index *x, const char *name, uintptr_t value, uintptr_t *ret_old);
/* 0 with the value in *ret, or -ENOENT. */
int evd_name_index_get(const evd_name_index *x, const char *name, uintptr_t *ret);
/* Removes name, if it is there. */
void evd_name_index_remove(evd_name_index *x, const char *name);
void evd_name_index_free(evd_name_index *x);
