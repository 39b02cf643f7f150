/* evd_split_command: the input is a command line (`command` and
 * `environment` values). Besides not crashing or leaking:
 * - success: a NULL-terminated argv of at least one word, no more words
 *   than the line has room for, and quoting each word back (in '...') and
 *   splitting again gives the same words; without quotes or backslashes,
 *   the words are the blank-separated fields;
 * - failure: -EINVAL, argv untouched, a non-empty message ("no command"
 *   only for a blank line), cut cleanly when the buffer is small. */
#include <errno.h>
#include <stdbool.h>

#include "command.h"
#include "fuzz.h"

static size_t strv_length(char **v) {
        size_t n = 0;

        while (v[n])
                n++;
        return n;
}

/* Each word in '...' (a ' inside as '\''), joined by blanks. */
static char *quote_words(char **argv) {
        size_t len = 1;
        char *s, *q;

        for (char **a = argv; *a; a++)
                len += 4 * strlen(*a) + 3;
        s = q = malloc(len);
        if (!s)
                abort();
        for (char **a = argv; *a; a++) {
                if (a != argv)
                        *q++ = ' ';
                *q++ = '\'';
                for (const char *c = *a; *c; c++) {
                        if (*c == '\'') {
                                memcpy(q, "'\\''", 4);
                                q += 4;
                        } else {
                                *q++ = *c;
                        }
                }
                *q++ = '\'';
        }
        *q = '\0';
        return s;
}

/* The words of a line without quotes or backslashes: its fields. */
static void check_plain_words(const char *s, char **argv) {
        size_t i = 0;

        while (*s) {
                size_t blank = strspn(s, " \t"), n;

                s += blank;
                n = strcspn(s, " \t");
                if (n == 0)
                        break;
                fuzz_require(argv[i] && strlen(argv[i]) == n && memcmp(argv[i], s, n) == 0,
                             "word %zu is '%s', expected '%.*s'", i, argv[i] ? argv[i] : "(none)", (int) n, s);
                i++;
                s += n;
        }
        fuzz_require(!argv[i], "extra word %zu: '%s'", i, argv[i]);
}

static void check_split(const char *s, char **argv) {
        size_t n = strv_length(argv), len = strlen(s);
        char err[128], *quoted, **again = NULL;
        int r;

        fuzz_require(n >= 1, "no words, and no error");
        fuzz_require(n <= len / 2 + 1, "%zu words from %zu bytes", n, len);
        for (size_t i = 0; i < n; i++)
                fuzz_require(strlen(argv[i]) <= len, "word %zu longer than the line", i);
        if (!strpbrk(s, "'\"\\"))
                check_plain_words(s, argv);

        quoted = quote_words(argv);
        r = evd_split_command(quoted, &again, err, sizeof(err));
        fuzz_require(r == 0, "re-quoted line <%s> does not split: %d (%s)", quoted, r, err);
        for (size_t i = 0; i <= n; i++)
                fuzz_require(again[i] == argv[i] || (again[i] && argv[i] && strcmp(again[i], argv[i]) == 0),
                             "word %zu changed by quoting it: '%s', then '%s'", i, argv[i] ? argv[i] : "(none)",
                             again[i] ? again[i] : "(none)");
        evd_strv_free(again);
        free(quoted);
}

static void check_error(const char *s, int r, const char *err, size_t errlen) {
        fuzz_require(r == -EINVAL, "returned %d", r);
        fuzz_require(memchr(err, '\0', errlen), "message not NUL-terminated");
        fuzz_require(err[0], "empty message");
        if (strcmp(err, "no command") == 0)
                fuzz_require(s[strspn(s, " \t")] == '\0', "'no command' for a line with words");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *s = fuzz_string(data, size);
        char **sentinel = (char **) &sentinel, **argv = sentinel;
        char err[128], small[8];
        int r;

        if (!s)
                return 0;
        memset(err, 'x', sizeof(err));
        r = evd_split_command(s, &argv, err, sizeof(err));
        if (r == 0) {
                check_split(s, argv);
                evd_strv_free(argv);
        } else {
                fuzz_require(argv == sentinel, "argv changed on failure");
                check_error(s, r, err, sizeof(err));

                /* The same message, cut to the buffer. */
                r = evd_split_command(s, &argv, small, sizeof(small));
                fuzz_require(r == -EINVAL && argv == sentinel, "second run: %d", r);
                fuzz_require(strlen(small) == strnlen(err, sizeof(small) - 1) &&
                             strncmp(small, err, strlen(small)) == 0,
                             "cut message '%s' is no prefix of '%s'", small, err);
        }
        free(s);
        return 0;
}
