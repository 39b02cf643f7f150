/* Command lines: split into words as a shell would, without one; the
 * program a word names found as exec would find it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "command.h"

void evd_strv_free(char **v) {
        if (!v)
                return;
        for (char **p = v; *p; p++)
                free(*p);
        free(v);
}

size_t evd_strv_length(char *const *v) {
        size_t n = 0;

        while (v && v[n])
                n++;
        return n;
}

char **evd_strv_copy(char *const *v) {
        size_t n = evd_strv_length(v);
        char **c;

        if (!v)
                return NULL;
        c = calloc(n + 1, sizeof(*c));
        for (size_t i = 0; c && i < n; i++)
                if (!(c[i] = strdup(v[i]))) {
                        evd_strv_free(c);
                        return NULL;
                }
        return c;
}

bool evd_strv_equal(char *const *a, char *const *b) {
        if (!a || !b)
                return a == b;
        for (; *a && *b; a++, b++)
                if (strcmp(*a, *b) != 0)
                        return false;
        return !*a && !*b;
}

/* One word at s into word (which has room for all of s); moves s past it.
 * NULL, or why the word is not well formed. */
static const char *split_word(const char **sp, char *word) {
        const char *s = *sp;
        size_t w = 0;

        while (*s && *s != ' ' && *s != '\t') {
                if (*s == '\'') {
                        const char *end = strchr(s + 1, '\'');

                        if (!end)
                                return "unterminated ' quote";
                        memcpy(word + w, s + 1, (size_t) (end - s - 1));
                        w += (size_t) (end - s - 1);
                        s = end + 1;
                } else if (*s == '"') {
                        for (s++; *s && *s != '"'; s++) {
                                if (*s == '\\' && s[1] && strchr("\"\\$`", s[1]))
                                        s++;
                                word[w++] = *s;
                        }
                        if (*s != '"')
                                return "unterminated \" quote";
                        s++;
                } else if (*s == '\\') {
                        if (!s[1])
                                return "a backslash at the end";
                        word[w++] = s[1];
                        s += 2;
                } else {
                        word[w++] = *s++;
                }
        }
        word[w] = '\0';
        *sp = s;
        return NULL;
}

int evd_split_command(const char *s, char ***ret_argv, char *err, size_t errlen) {
        size_t len = strlen(s), n = 0;
        char **argv = calloc(len / 2 + 2, sizeof(*argv)); /* at most a word per two bytes, plus NULL */
        char *word = malloc(len + 1);
        const char *why = NULL;

        if (!argv || !word) {
                free(argv);
                free(word);
                return -ENOMEM;
        }
        for (;;) {
                while (*s == ' ' || *s == '\t')
                        s++;
                if (!*s)
                        break;
                why = split_word(&s, word);
                if (why)
                        break;
                if (!(argv[n++] = strdup(word))) {
                        evd_strv_free(argv);
                        free(word);
                        return -ENOMEM;
                }
        }
        free(word);
        if (!why && n == 0)
                why = "no command";
        if (why) {
                snprintf(err, errlen, "%s", why);
                evd_strv_free(argv);
                return -EINVAL;
        }
        *ret_argv = argv;
        return 0;
}

/* A file exec can run. access() alone also passes a directory, and "" on
 * $PATH names one. */
static bool is_program(const char *path) {
        struct stat st;

        return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

bool evd_program_found(const char *name) {
        const char *path = getenv("PATH");
        char buf[4096];

        if (strchr(name, '/'))
                return is_program(name);
        if (!path)
                path = "/usr/local/bin:/usr/bin:/bin";
        while (*path) {
                size_t n = strcspn(path, ":");

                if (snprintf(buf, sizeof(buf), "%.*s/%s", (int) n, n ? path : ".", name) < (int) sizeof(buf) &&
                    is_program(buf))
                        return true;
                path += n + (path[n] == ':');
        }
        return false;
}
