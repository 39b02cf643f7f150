/* What the fuzz targets share: libFuzzer's entry point, and a check that
 * aborts (a crash to libFuzzer, a failed test to the replay driver) with
 * the property that failed. */
#pragma once

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Runs one input. Returns 0; a failed property aborts. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

__attribute__((noreturn, format(printf, 4, 5)))
static inline void fuzz__fail(const char *file, int line, const char *cond, const char *fmt, ...) {
        va_list ap;

        fprintf(stderr, "%s:%d: property failed: %s\n  ", file, line, cond);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        abort();
}

/* Like assert(), never compiled out, with a printf-style explanation. */
#define fuzz_require(cond, ...) \
        ((cond) ? (void) 0 : fuzz__fail(__FILE__, __LINE__, #cond, __VA_ARGS__))

/* The input as a C string in a buffer of exactly size + 1 bytes (so that
 * ASan sees a read past its end), or NULL if it holds a NUL byte: the
 * parsers take C strings, and the bytes after a NUL would mean nothing. */
static inline char *fuzz_string(const uint8_t *data, size_t size) {
        char *s;

        if (memchr(data, '\0', size))
                return NULL;
        s = malloc(size + 1);
        if (!s)
                abort();
        memcpy(s, data, size);
        s[size] = '\0';
        return s;
}
