/* Command lines: split into words the way a shell would, without one, and
 * the program a word names looked up the way exec would. Also the NULL-
 * terminated string vectors both produce. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Splits a command line into words: blanks separate words, '...' is
 * literal, "..." keeps blanks and takes \" \\ \$ \` escapes, a backslash
 * outside quotes escapes the next character. 0, -EINVAL (an unterminated
 * quote, a trailing backslash, no word) with a message in err, or -ENOMEM.
 * *ret_argv is untouched on failure. */
int evd_split_command(const char *s, char ***ret_argv, char *err, size_t errlen);

/* Is `name` a program exec would run: a regular, executable file, by its
 * path if it has a '/', else found on $PATH? */
bool evd_program_found(const char *name);

/* NULL-terminated vectors of strings: accept NULL. */
void evd_strv_free(char **v);
/* A deep copy, or NULL (v NULL, or no memory: tell them apart by v). */
char **evd_strv_copy(char *const *v);
bool evd_strv_equal(char *const *a, char *const *b);
size_t evd_strv_length(char *const *v);
