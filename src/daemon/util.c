/* The helpers of util.h that are functions: names tables. */
#include <stdio.h>
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
