/* Small helpers every file of the daemon may use: array lengths and the
 * lists that make an enum and its names from one place. */
#pragma once

#include <stddef.h>

/* The length of an array (not of a pointer: that fails to compile). */
#define ARRAY_SIZE(a)                                                                                      \
        (sizeof(a) / sizeof((a)[0]) +                                                                       \
         sizeof(char[1 - 2 * __builtin_types_compatible_p(__typeof__(a), __typeof__(&(a)[0]))]) - 1)

/* An enum and its names from one X-macro list of X(ID, "name") rows:
 *     #define COLOURS(X) X(RED, "red") X(GREEN, "green")
 *     enum colour { COLOURS(EVD_ENUM_ID) };
 *     static const char *const names[] = { COLOURS(EVD_ENUM_NAME) }; */
#define EVD_ENUM_ID(id, name, ...) id,
#define EVD_ENUM_NAME(id, name, ...) [id] = name,

/* A names table with its length: what a config key or an option that
 * takes one of several words needs to parse it and to list the words. */
typedef struct evd_names {
        const char *const *names;
        size_t n;
        const char *what;       /* "log target", "schedule", ... */
} evd_names;

/* The index of s in the table, or -1. */
int evd_names_find(const evd_names *t, const char *s);
/* "a, b, c or d" into buf. */
void evd_names_list(const evd_names *t, char *buf, size_t size);

/* Makes room in *array (of *cap items of `size` bytes) for `need` items,
 * doubling: 0, or -ENOMEM with the array as it was. */
int evd_array_grow(void *array, size_t *cap, size_t need, size_t size);
