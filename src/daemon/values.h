/* Values as a config file or a command line writes them: durations,
 * sizes, booleans, numbers and signals. Pure functions: text in, value
 * out, the output untouched on failure. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EVD_NSEC_PER_SEC ((int64_t) 1000000000)

/* "250ms", "10s", "5min", "1h", also "1.5s" and "0"; a bare number is
 * seconds. 0 or -EINVAL (also for negative or overflowing values). */
int evd_parse_duration(const char *s, int64_t *ret_ns);
/* yes/no, true/false, on/off, 1/0 (case-insensitive). 0 or -EINVAL. */
int evd_parse_bool(const char *s, bool *ret);
/* Bytes with an optional K, M or G suffix (powers of 1024). 0 or -EINVAL. */
int evd_parse_size(const char *s, size_t *ret);
/* An unsigned integer, digits only. 0, -EINVAL or -ERANGE (too large). */
int evd_parse_uint(const char *s, uint64_t *ret);
/* A decimal number DIGITS[.DIGITS] in (0, max], read without the locale.
 * 0, -EINVAL or -ERANGE. */
int evd_parse_positive(const char *s, double max, double *ret);
/* A signal by name (TERM, SIGTERM) or number; 0 or -EINVAL. */
int evd_parse_signal(const char *s, int *ret_signo);
/* "SIGTERM", or "signal" for one without a name here. */
const char *evd_signal_name(int signo);
