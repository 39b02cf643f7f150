/* The helpers of util.h that are functions: names tables, arrays that
 * grow. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

int evd_names_find(const evd_names *t, const char *s) {
        for (size_t i = 0; i < t->n; i++)
                if (t->names[i] && strcmp(t->names[i], s) == 0)
                        return (int) i;
        return -1;
}

void evd_names_list(const evd_names *t, char *buf, size_t size) {
        size_t len = 0;

        if (size == 0)
                return;
        buf[0] = '\0';
        for (size_t i = 0; i < t->n && len < size; i++)
                len += (size_t) snprintf(buf + len, size - len, "%s%s", i == 0 ? "" : i + 1 == t->n ? " or " : ", ",
                                         t->names[i]);
}

int evd_array_grow(void *array, size_t *cap, size_t need, size_t size) {
        void **p = array, *more;
        size_t n = *cap ? *cap : 16;

        if (need <= *cap)
                return 0;
        while (n < need)
                n *= 2;
        more = reallocarray(*p, n, size);
        if (!more)
                return -ENOMEM;
        *p = more;
        *cap = n;
        return 0;
}
