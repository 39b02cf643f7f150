/* An index of things by name: open addressing with linear probing, at
 * most half full, with backward-shift deletion (no tombstones). */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "name_index.h"

struct evd_name_slot {
        const char *name;       /* NULL: empty */
        uintptr_t value;
};

/* FNV-1a. */
static size_t hash(const char *s) {
        uint64_t h = 14695981039346656037ull;

        for (; *s; s++)
                h = (h ^ (unsigned char) *s) * 1099511628211ull;
        return (size_t) h;
}

/* The slot of name, or the empty one where it would go. */
static struct evd_name_slot *find(const evd_name_index *x, const char *name) {
        size_t mask = x->cap - 1;

        for (size_t i = hash(name) & mask;; i = (i + 1) & mask)
                if (!x->slots[i].name || strcmp(x->slots[i].name, name) == 0)
                        return &x->slots[i];
}

static int grow(evd_name_index *x) {
        evd_name_index bigger = { .cap = x->cap ? 2 * x->cap : 16, .n = x->n };

        bigger.slots = calloc(bigger.cap, sizeof(*bigger.slots));
        if (!bigger.slots)
                return -ENOMEM;
        for (size_t i = 0; i < x->cap; i++)
                if (x->slots[i].name)
                        *find(&bigger, x->slots[i].name) = x->slots[i];
        free(x->slots);
        *x = bigger;
        return 0;
}

int evd_name_index_put(evd_name_index *x, const char *name, uintptr_t value, uintptr_t *ret_old) {
        struct evd_name_slot *s;

        if ((x->n + 1) * 2 > x->cap && grow(x) < 0)
                return -ENOMEM;
        s = find(x, name);
        if (s->name) {
                if (ret_old)
                        *ret_old = s->value;
                return -EEXIST;
        }
        *s = (struct evd_name_slot) { .name = name, .value = value };
        x->n++;
        return 0;
}

int evd_name_index_get(const evd_name_index *x, const char *name, uintptr_t *ret) {
        const struct evd_name_slot *s;

        if (x->n == 0)
                return -ENOENT;
        s = find(x, name);
        if (!s->name)
                return -ENOENT;
        *ret = s->value;
        return 0;
}

void evd_name_index_remove(evd_name_index *x, const char *name) {
        size_t mask = x->cap - 1, hole, i;

        if (x->n == 0)
                return;
        hole = (size_t) (find(x, name) - x->slots);
        if (!x->slots[hole].name)
                return;
        x->slots[hole].name = NULL;
        x->n--;
        /* Moves back each following entry that the hole cut off from its
         * home slot, so that every entry stays reachable from there. */
        for (i = (hole + 1) & mask; x->slots[i].name; i = (i + 1) & mask) {
                size_t home = hash(x->slots[i].name) & mask;
                bool reachable = hole <= i ? home > hole && home <= i : home > hole || home <= i;

                if (!reachable) {
                        x->slots[hole] = x->slots[i];
                        x->slots[i].name = NULL;
                        hole = i;
                }
        }
}

void evd_name_index_free(evd_name_index *x) {
        free(x->slots);
        *x = (evd_name_index) { 0 };
}
