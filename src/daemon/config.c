/* The config parser: text to evd_config, with inih, touching nothing but
 * the structs (the host is probe.c's).
 *
 * inih as packaged has four habits that fight "every error names file, line
 * and key": its handler gets no line number, it cuts section names to 49
 * bytes, it takes any indented line for the continuation of the previous
 * value, and it splits a line longer than its buffer in two. So each line
 * passes through our own reader (config_reader) before inih sees it. The
 * reader counts lines, rejects over-long ones, reads section headers itself
 * and drops leading whitespace, except on a line indented deeper than the
 * key line before it: that one continues the key's value, and inih passes
 * it to the handler under the same key. The handler (config_handler) only
 * gets key = value pairs and such continuations; a value is complete, and
 * parsed by its key's type, when the next line is not a continuation.
 *
 * The first error wins: it goes to the caller's buffer, and the reader then
 * reports end of input, so nothing after it is looked at.
 */
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf_parser.h"
#include "demo-conf.h" /* DEMO_CONF: conf/demo.conf, embedded at build time */
#include "kind.h"

const char evd_demo_conf[] = DEMO_CONF;

#define ARG_PREFIX "arg."       /* a module's own keys: arg.KEY */
/* A value continued over lines: at most the kernel's limit on one
 * argument or environment string (MAX_ARG_STRLEN), which a command run
 * through sh -c must fit. */
#define VALUE_MAX ((size_t) 128 << 10)

int evd__parser_fail(evd_parser *p, int code, unsigned line, const char *fmt, ...) {
                     va_list ap;
        int r;

        va_start(ap, fmt);
        r = evd_conf_vfail(&p->error, code, line, fmt, ap);
        va_end(ap);
        return r;
}

/* Whether an error has been found; the first time it is seen, it is
 * dated by the line being read. */
static bool failed(evd_parser *p) {
        if (p->error.code && !p->error_at)
                p->error_at = p->line ? p->line : 1;
        return p->error.code != 0;
}

evd_task_conf *evd__parser_task(evd_parser *p) {
        return p->section == EVD_SECTION_TASK ? &p->config->tasks[p->task] : NULL;
}

/* ---- values ---- */

/* arg.KEY = VALUE: kept for the module as KEY=VALUE (whether the section
 * is a module's is known at its end). */
static int module_arg(evd_parser *p, const char *name, const char *value, unsigned line) {
        evd_task_conf *t = evd__parser_task(p);
        const char *key = name + strlen(ARG_PREFIX);
        size_t n = 0, klen = strlen(key);
        char **args;

        if (!key[0])
                return evd_conf_fail_key(&p->error, p->section_name, name, line, "no KEY after 'arg.'");
        for (char **a = t->args; a && *a; a++, n++)
                if (strncmp(*a, key, klen) == 0 && (*a)[klen] == '=')
                        return evd_conf_fail_key(&p->error, p->section_name, name, line, "set twice");
        args = reallocarray(t->args, n + 2, sizeof(*args));
        if (!args)
                return evd__parser_fail(p, -ENOMEM, line, "out of memory");
        t->args = args;
        if (asprintf(&args[n], "%s=%s", key, value) < 0) {
                args[n] = NULL;
                return evd__parser_fail(p, -ENOMEM, line, "out of memory");
        }
        args[n + 1] = NULL;
        if (!t->args_line)
                t->args_line = line;
        return 0;
}

/* Adds text to the value being read: its first line, or (after a blank) a
 * line that continues it. */
static int value_append(evd_parser *p, const char *text) {
        size_t len = strlen(text), sep = p->value_len > 0 && len > 0;

        if (p->value_len + sep + len > VALUE_MAX)
                return evd_conf_fail_key(&p->error, p->section_name, p->key ? p->key->name : p->arg_name, p->key_line,
                                         "the value is longer than %zu characters", VALUE_MAX);
        if (p->value_len + sep + len + 1 > p->value_cap) {
                size_t cap = p->value_cap ? p->value_cap : 256;
                char *v;

                while (cap < p->value_len + sep + len + 1)
                        cap *= 2;
                v = realloc(p->value, cap);
                if (!v)
                        return evd__parser_fail(p, -ENOMEM, p->line, "out of memory");
                p->value = v;
                p->value_cap = cap;
        }
        if (sep)
                p->value[p->value_len++] = ' ';
        memcpy(p->value + p->value_len, text, len + 1);
        p->value_len += len;
        return 0;
}

/* The value being read is complete: its key's type parses it. */
static int value_end(evd_parser *p) {
        evd_task_conf *t = evd__parser_task(p);
        const evd_key *k = p->key;
        int r;

        if (!p->pending)
                return 0;
        p->pending = false;
        if (!k)
                return module_arg(p, p->arg_name, p->value ? p->value : "", p->key_line);
        r = k->type->parse(&(evd_key_ctx) {
                                   .key = k,
                                   .section = p->section_name,
                                   .line = p->key_line,
                                   .config = p->config,
                                   .task = t,
                                   .error = &p->error,
                           },
                           p->value ? p->value : "", (char *) (t ? (void *) t : (void *) p->config) + k->offset);
        return r;
}

/* ---- keys ---- */

static unsigned *key_line(evd_parser *p, const evd_key *k) {
        evd_task_conf *t = evd__parser_task(p);

        return t ? &t->key_line[k->index] : &p->config->key_line[k->index];
}

static int unknown_key(evd_parser *p, const char *name, unsigned line) {
        char known[512];

        evd_key_names(p->section, known, sizeof(known));
        return evd_conf_fail_key(&p->error, p->section_name, name, line, "unknown key (known: %s)", known);
}

/* A key line begins a value; the lines that continue it come as more
 * calls for the same key. */
static int key_begin(evd_parser *p, const char *name, const char *value) {
        unsigned line = p->line;
        const evd_key *k = NULL;
        unsigned *first;

        if (name[0] == '\0')
                return evd__parser_fail(p, -EINVAL, line, "syntax error: no key before '='");
        if (p->section == EVD_SECTION_NONE)
                return evd__parser_fail(p, -EINVAL, line, "key '%s' is outside any section", name);
        if (p->section == EVD_SECTION_TASK && strncmp(name, ARG_PREFIX, strlen(ARG_PREFIX)) == 0) {
                snprintf(p->arg_name, sizeof(p->arg_name), "%s", name);
        } else {
                k = evd_key_find(p->section, name);
                if (!k)
                        return unknown_key(p, name, line);
                first = key_line(p, k);
                if (*first)
                        return evd_conf_fail_key(&p->error, p->section_name, name, line,
                                                 "set twice (first at line %u)", *first);
                *first = line;
        }
        p->pending = true;
        p->key = k;
        p->key_line = line;
        p->value_len = 0;
        return value_append(p, value);
}

static int config_handler(void *user, const char *section, const char *name, const char *value) {
        evd_parser *p = user;

        (void) section; /* the reader's copy is whole; inih's is cut at 49 bytes */
        p->handled = true;
        if (failed(p))
                return 0;
        if (p->continuation)
                return value_append(p, value) == 0;
        return key_begin(p, name, value) == 0;
}

/* ---- reading lines ---- */

static int next_char(evd_parser *p) {
        if (p->file)
                return getc(p->file);
        if (*p->text == '\0')
                return EOF;
        return (unsigned char) *p->text++;
}

/* A key line inih did not pass to the handler had neither '=' nor ':'. */
static void check_handled(evd_parser *p) {
        if (p->want_handler && !p->handled)
                evd__parser_fail(p, -EINVAL, p->line, "syntax error: expected 'key = value'");
        p->want_handler = false;
}

/* One line of at most max bytes into buf, without its '\n' (and '\r'):
 * its length, or -1 at the end of the input or on an error. */
static ssize_t read_line(evd_parser *p, char *buf, size_t max) {
        size_t len = 0;
        bool nul = false;
        int c;

        /* At most max + 1 bytes of a line are kept, and one more read: a
         * longer line is an error either way, and the rest is not read, as
         * it may never end (a config path that is /dev/zero). */
        while (len <= max + 1 && (c = next_char(p)) != EOF && c != '\n') {
                if (c == '\0')
                        nul = true;
                if (len <= max)
                        buf[len] = (char) c;
                len++;
        }
        if (c == EOF && p->file && ferror(p->file)) {
                int e = errno > 0 ? errno : EIO;

                evd__parser_fail(p, -e, 0, "%s", strerror(e));
                return -1;
        }
        if (c == EOF && len == 0)
                return -1;

        p->line++;
        if (len > 0 && len <= max + 1 && buf[len - 1] == '\r')
                len--;
        if (len > max) {
                evd__parser_fail(p, -EINVAL, p->line,
                        "line longer than %zu characters (continue a long value on lines indented deeper than its key)",
                        max);
                return -1;
        }
        if (nul) {
                evd__parser_fail(p, -EINVAL, p->line, "NUL byte in line");
                return -1;
        }
        return (ssize_t) len;
}

/* inih's ini_reader: one line into buf (size bytes), like fgets(). */
static char *config_reader(char *buf, int size, void *stream) {
        evd_parser *p = stream;
        /* Room for "\r\n\0", as ini.h asks of INI_MAX_LINE. */
        size_t max = (size_t) size - 3, skip = 0, indent;
        ssize_t n;
        size_t len;

        assert(size > 3);
        check_handled(p);
        if (failed(p))
                return NULL;
        n = read_line(p, buf, max);
        if (n < 0) {
                /* The end, or a line that cannot be read: the value before
                 * it is complete, and an error in it comes first. */
                p->error.earliest = true;
                value_end(p);
                p->error.earliest = false;
                return NULL;
        }
        len = (size_t) n;
        if (p->line == 1 && len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0)
                skip = 3; /* UTF-8 byte order mark */
        while (skip < len && isspace((unsigned char) buf[skip]))
                skip++;
        indent = skip;

        /* Indented deeper than its key, a line continues the value: inih
         * passes it on under the same key, if it still sees indentation. */
        p->continuation = p->pending && skip < len && indent > p->key_indent && buf[skip] != ';' && buf[skip] != '#';
        if (p->continuation) {
                /* inih drops a key line's inline comment, not this one's. */
                for (size_t i = skip + 1; i < len; i++)
                        if (buf[i] == ';' && isspace((unsigned char) buf[i - 1])) {
                                len = i;
                                break;
                        }
                skip--; /* inih must see the indentation */
        } else if (value_end(p) < 0) {
                return NULL;
        }
        len -= skip;
        memmove(buf, buf + skip, len);
        buf[len++] = '\n';
        buf[len] = '\0';
        if (p->continuation) {
                p->want_handler = true;
                p->handled = false;
                return buf;
        }

        /* Classified as inih will: comment or blank, header, key line. */
        if (buf[0] == '\n' || buf[0] == ';' || buf[0] == '#')
                return buf;
        if (buf[0] == '[')
                return evd__section_header(p, buf) < 0 ? NULL : buf;
        p->key_indent = indent;
        p->want_handler = true;
        p->handled = false;
        return buf;
}

/* ---- parsing ---- */

static int config_parse(evd_parser *p, evd_config **ret) {
        evd_config *c;
        int r;

        p->error.path = p->path;
        c = calloc(1, sizeof(*c));
        if (!c)
                return evd__parser_fail(p, -ENOMEM, 0, "out of memory");
        evd__config_defaults(c);
        c->path = strdup(p->path);
        if (!c->path) {
                free(c);
                return evd__parser_fail(p, -ENOMEM, 0, "out of memory");
        }
        p->config = c;

        r = ini_parse_stream(config_reader, p, config_handler, p);
        check_handled(p);
        if (!failed(p))
                value_end(p);
        /* inih may find a syntax error the reader did not classify as one;
         * it counts only if it came first. */
        if (r > 0 && (!failed(p) || (unsigned) r < p->error_at)) {
                p->error.code = 0;
                evd__parser_fail(p, -EINVAL, (unsigned) r, "syntax error");
        } else if (r < 0) {
                evd__parser_fail(p, -ENOMEM, 0, "out of memory");
        }
        if (!failed(p))
                evd__section_close(p);
        if (!failed(p))
                evd__config_check_order(c, &p->error);
        free(p->value);

        if (failed(p)) {
                evd_config_free(c);
                return p->error.code;
        }
        *ret = c;
        return 0;
}

int evd_config_parse_file(const char *path, evd_config **ret, char *err, size_t errlen) {
        evd_parser p = { .path = path, .error = { .path = path, .buf = err, .len = errlen } };
        struct stat st;
        int fd, r;

        if (!path || !ret)
                return -EINVAL;
        /* Opened without blocking, and only a regular file is read: a FIFO
         * (or a terminal, or a device) could hold the daemon forever, at
         * the start or in a reload. */
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
        if (fd < 0 || fstat(fd, &st) < 0) {
                r = errno;
                if (fd >= 0)
                        close(fd);
                return evd__parser_fail(&p, -r, 0, "%s", strerror(r));
        }
        if (!S_ISREG(st.st_mode)) {
                close(fd);
                if (S_ISDIR(st.st_mode))
                        return evd__parser_fail(&p, -EISDIR, 0, "%s", strerror(EISDIR));
                return evd__parser_fail(&p, -EINVAL, 0, "not a regular file");
        }
        p.file = fdopen(fd, "r");
        if (!p.file) {
                r = errno;
                close(fd);
                return evd__parser_fail(&p, -r, 0, "%s", strerror(r));
        }
        r = config_parse(&p, ret);
        fclose(p.file);
        return r;
}

int evd_config_parse_string(const char *name, const char *text, evd_config **ret, char *err, size_t errlen) {
        evd_parser p = { .path = name, .text = text, .error = { .path = name, .buf = err, .len = errlen } };

        if (!name || !text || !ret)
                return -EINVAL;
        return config_parse(&p, ret);
}

const evd_task_conf *evd_config_find_task(const evd_config *c, const char *name) {
        uintptr_t i;

        return evd_name_index_get(&c->by_name, name, &i) == 0 ? &c->tasks[i] : NULL;
}

void evd_config_free(evd_config *c) {
        if (!c)
                return;
        evd_name_index_free(&c->by_name);
        for (size_t i = 0; i < c->n_tasks; i++)
                evd_task_conf_clear(&c->tasks[i]);
        free(c->tasks);
        free(c->path);
        evd__config_daemon_clear(c);
        free(c);
}
