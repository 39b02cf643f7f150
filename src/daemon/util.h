/* Small helpers every file of the daemon may use. */
#pragma once

#include <stddef.h>

/* The length of an array (not of a pointer: that fails to compile). */
#define ARRAY_SIZE(a)                                                                                      \
        (sizeof(a) / sizeof((a)[0]) +                                                                       \
         sizeof(char[1 - 2 * __builtin_types_compatible_p(__typeof__(a), __typeof__(&(a)[0]))]) - 1)
