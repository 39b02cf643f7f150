/* evtaskd's configuration: [daemon] and [task.NAME] sections, read with inih.
 *
 * inih as packaged has four habits that fight "every error names file, line
 * and key": its handler gets no line number, it cuts section names to 49
 * bytes, it takes an indented line for the continuation of the previous
 * value, and it splits a line longer than its buffer in two. So each line
 * passes through our own reader (config_reader) before inih sees it. The
 * reader counts lines, rejects over-long ones, drops leading whitespace
 * (indentation means nothing here, and a stray indented line becomes a
 * syntax error instead of a silent continuation) and reads section headers
 * itself. The handler (config_handler) only gets key = value pairs, and
 * takes the section from the reader's state.
 *
 * The first error wins: it goes to the caller's buffer, and the reader then
 * reports end of input, so nothing after it is looked at.
 */
#include <assert.h>
#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>

#include "command.h"
#include "config.h"
#include "evtask-module.h"
#include "identity.h"
#include "util.h"

#include "demo-conf.h" /* DEMO_CONF: conf/demo.conf, embedded at build time */

const char evd_demo_conf[] = DEMO_CONF;

#define NSEC_PER_SEC EVD_NSEC_PER_SEC
#define DRAIN_TIMEOUT_DEFAULT (20 * NSEC_PER_SEC)
#define TASK_NAME_MAX 64
#define STACK_SIZE_MIN ((size_t) 16 << 10)
#define STACK_SIZE_MAX ((size_t) 1 << 30)
#define SPEED_MAX 1e6
#define THREADS_MAX 1024
#define ABANDON_GRACE_DEFAULT NSEC_PER_SEC
#define SLOW_STEP_WARN_DEFAULT (NSEC_PER_SEC / 10)
#define CHECK_EVERY_DEFAULT NSEC_PER_SEC
#define KILL_TIMEOUT_DEFAULT (5 * NSEC_PER_SEC)
#define RESTART_SEC_DEFAULT NSEC_PER_SEC

enum section {
        SECTION_NONE,           /* before the first header */
        SECTION_DAEMON,
        SECTION_TASK,
};

enum key {
        KEY_DRAIN_TIMEOUT,
        KEY_EXIT_WHEN_DONE,
        KEY_LOG,
        KEY_STACK_SIZE,
        KEY_THREADS,
        KEY_ABANDON_GRACE,
        KEY_SLOW_STEP_WARN,
        KEY_DAEMON_USER,
        KEY_DAEMON_GROUP,
        KEY_KIND,
        KEY_SHIELD,
        KEY_PAUSABLE,
        KEY_SPEED,
        KEY_STEPS,
        KEY_MESSAGE,
        KEY_DURATION,
        KEY_CHECK_EVERY,
        KEY_COMMAND,
        KEY_SHELL,
        KEY_SCHEDULE,
        KEY_INTERVAL,
        KEY_TIMEOUT,
        KEY_KILL_SIGNAL,
        KEY_KILL_TIMEOUT,
        KEY_RESTART,
        KEY_RESTART_SEC,
        KEY_WORKING_DIRECTORY,
        KEY_ENVIRONMENT,
        KEY_USER,
        KEY_GROUP,
        KEY_PATH,
        KEY_ENTRY,
        N_KEYS,
};

#define KIND(k) (1u << (k))
#define ANY_KIND (~0u)

static const struct key_info {
        const char *name;
        enum section section;   /* the section it belongs to */
        unsigned kinds;         /* KIND() of each evd_kind it is valid for */
} key_table[N_KEYS] = {
        [KEY_DRAIN_TIMEOUT] = { "drain_timeout", SECTION_DAEMON, ANY_KIND },
        [KEY_EXIT_WHEN_DONE] = { "exit_when_done", SECTION_DAEMON, ANY_KIND },
        [KEY_LOG] = { "log", SECTION_DAEMON, ANY_KIND },
        [KEY_STACK_SIZE] = { "stack_size", SECTION_DAEMON, ANY_KIND },
        [KEY_THREADS] = { "threads", SECTION_DAEMON, ANY_KIND },
        [KEY_ABANDON_GRACE] = { "abandon_grace", SECTION_DAEMON, ANY_KIND },
        [KEY_SLOW_STEP_WARN] = { "slow_step_warn", SECTION_DAEMON, ANY_KIND },
        [KEY_DAEMON_USER] = { "user", SECTION_DAEMON, ANY_KIND },
        [KEY_DAEMON_GROUP] = { "group", SECTION_DAEMON, ANY_KIND },
        [KEY_KIND] = { "kind", SECTION_TASK, ANY_KIND },
        [KEY_SHIELD] = { "shield", SECTION_TASK, ANY_KIND },
        [KEY_PAUSABLE] = { "pausable", SECTION_TASK, ANY_KIND },
        [KEY_SPEED] = { "speed", SECTION_TASK, KIND(EVD_KIND_TICKER) },
        [KEY_STEPS] = { "steps", SECTION_TASK, KIND(EVD_KIND_TICKER) },
        [KEY_MESSAGE] = { "message", SECTION_TASK, KIND(EVD_KIND_TICKER) },
        [KEY_DURATION] = { "duration", SECTION_TASK,
                           KIND(EVD_KIND_SLEEP) | KIND(EVD_KIND_BLOCKING) | KIND(EVD_KIND_WEDGE) },
        [KEY_CHECK_EVERY] = { "check_every", SECTION_TASK, KIND(EVD_KIND_BLOCKING) },
        [KEY_COMMAND] = { "command", SECTION_TASK, KIND(EVD_KIND_EXEC) },
        [KEY_SHELL] = { "shell", SECTION_TASK, KIND(EVD_KIND_EXEC) },
        [KEY_SCHEDULE] = { "schedule", SECTION_TASK, KIND(EVD_KIND_EXEC) },
        [KEY_INTERVAL] = { "interval", SECTION_TASK, KIND(EVD_KIND_EXEC) },
        [KEY_TIMEOUT] = { "timeout", SECTION_TASK, KIND(EVD_KIND_EXEC) },
        [KEY_KILL_SIGNAL] = { "kill_signal", SECTION_TASK, KIND(EVD_KIND_EXEC) },
        [KEY_KILL_TIMEOUT] = { "kill_timeout", SECTION_TASK, KIND(EVD_KIND_EXEC) },
        [KEY_RESTART] = { "restart", SECTION_TASK, KIND(EVD_KIND_EXEC) },
        [KEY_RESTART_SEC] = { "restart_sec", SECTION_TASK, KIND(EVD_KIND_EXEC) },
        [KEY_WORKING_DIRECTORY] = { "working_directory", SECTION_TASK, KIND(EVD_KIND_EXEC) },
        [KEY_ENVIRONMENT] = { "environment", SECTION_TASK, KIND(EVD_KIND_EXEC) },
        [KEY_USER] = { "user", SECTION_TASK, KIND(EVD_KIND_EXEC) },
        [KEY_GROUP] = { "group", SECTION_TASK, KIND(EVD_KIND_EXEC) },
        [KEY_PATH] = { "path", SECTION_TASK, KIND(EVD_KIND_MODULE) },
        [KEY_ENTRY] = { "entry", SECTION_TASK, KIND(EVD_KIND_MODULE) },
};

#define ARG_PREFIX "arg."       /* a module's own keys: arg.KEY */
#define ENTRY_DEFAULT "evtask_task"

static const char *const schedule_names[] = {
        [EVD_SCHEDULE_ONCE] = "once",
        [EVD_SCHEDULE_INTERVAL] = "interval",
        [EVD_SCHEDULE_ALWAYS] = "always",
};

static const char *const restart_names[] = {
        [EVD_RESTART_NO] = "no",
        [EVD_RESTART_ON_FAILURE] = "on-failure",
        [EVD_RESTART_ALWAYS] = "always",
};

static const char *const kind_names[] = {
        [EVD_KIND_TICKER] = "ticker",
        [EVD_KIND_SLEEP] = "sleep",
        [EVD_KIND_BLOCKING] = "blocking",
        [EVD_KIND_WEDGE] = "wedge",
        [EVD_KIND_EXEC] = "exec",
        [EVD_KIND_MODULE] = "module",
};


typedef struct parser {
        const char *path;       /* for messages */
        FILE *file;             /* the input: a file ... */
        const char *text;       /* ... or a string, up to its NUL */
        unsigned line;          /* number of the line last read */
        bool want_handler;      /* that line is a key = value line ... */
        bool handled;           /* ... and inih has passed it to the handler */

        evd_config *config;     /* being built; freed if anything fails */
        size_t tasks_cap;       /* allocated length of config->tasks */
        unsigned daemon_line;   /* header line of [daemon], 0 before it */

        enum section section;   /* the section being read */
        char section_name[8 + TASK_NAME_MAX]; /* "daemon" or "task.NAME" */
        size_t task;            /* index of its task in config->tasks (the
                                 * array moves as it grows: no pointers) */
        unsigned key_line[N_KEYS]; /* where each key was set in it; 0 = not */
        unsigned args_line;     /* its first arg.KEY line; 0 = none */

        int error;              /* 0 or the first error, a negative errno */
        unsigned error_at;      /* the line being read when it was found */
        char *err;              /* the caller's message buffer, or NULL */
        size_t errlen;
} parser;

/* ---- errors ---- */

/* Records an error unless one is already there, and returns the one kept.
 * line 0: the error is about the whole file ("PATH: ..."). */
__attribute__((format(printf, 4, 5)))
static int fail(parser *p, int error, unsigned line, const char *fmt, ...) {
        char body[512];
        va_list ap;

        assert(error < 0);
        if (p->error)
                return p->error;
        p->error = error;
        p->error_at = p->line;
        if (!p->err || p->errlen == 0)
                return error;

        va_start(ap, fmt);
        vsnprintf(body, sizeof(body), fmt, ap);
        va_end(ap);
        if (line > 0)
                snprintf(p->err, p->errlen, "%s:%u: %s", p->path, line, body);
        else
                snprintf(p->err, p->errlen, "%s: %s", p->path, body);
        return error;
}

/* An error about one key of the current section: "key 'K' in [S]: ...". */
__attribute__((format(printf, 4, 5)))
static int fail_key(parser *p, const char *key, unsigned line, const char *fmt, ...) {
        char detail[384];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(detail, sizeof(detail), fmt, ap);
        va_end(ap);
        return fail(p, -EINVAL, line, "key '%s' in [%s]: %s", key, p->section_name, detail);
}

/* ---- value parsers ---- */

/* Index of s in a table of names, or -1. */
static int lookup(const char *const *names, size_t n, const char *s) {
        for (size_t i = 0; i < n; i++)
                if (strcmp(names[i], s) == 0)
                        return (int) i;
        return -1;
}

/* ---- keys ---- */

/* A duration key; `positive`: 0 is refused. */
static int set_duration(parser *p, const char *key, const char *v, unsigned line, int64_t *out,
                        bool positive) {
        if (evd_parse_duration(v, out) < 0)
                return fail_key(p, key, line, "'%s' is not a duration (for example 250ms, 10s, 1.5s, 5min, 1h)",
                                v);
        if (positive && *out == 0)
                return fail_key(p, key, line, "must be more than 0, not %s", v);
        return 0;
}

#define DROP_AND_SWITCH \
        "jobs cannot switch users in a daemon that gives up root ([daemon] user or group)"

/* `user` and `group`: they must exist, and only root can become another. */
static int set_identity(parser *p, const char *key, const char *v, unsigned line, char **dst) {
        bool user = strcmp(key, "user") == 0;
        char buf[16384];
        unsigned long id, own = user ? (unsigned long) geteuid() : (unsigned long) getegid();
        int r;

        if (user) {
                struct passwd pw, *pwp;

                r = evd_lookup_user(v, &pw, buf, sizeof(buf), &pwp);
                id = pwp ? pwp->pw_uid : 0;
                if (r == 0 && !pwp)
                        return fail_key(p, key, line, "unknown user '%s'", v);
        } else {
                struct group gr, *grp;

                r = evd_lookup_group(v, &gr, buf, sizeof(buf), &grp);
                id = grp ? grp->gr_gid : 0;
                if (r == 0 && !grp)
                        return fail_key(p, key, line, "unknown group '%s'", v);
        }
        if (r < 0)
                return fail_key(p, key, line, "cannot look up '%s': %s", v, strerror(-r));
        if (geteuid() != 0 && id != own)
                return fail_key(p, key, line, "'%s' is %s %lu: only a daemon running as root can switch to it",
                                v, user ? "uid" : "gid", id);
        free(*dst);
        *dst = strdup(v);
        if (!*dst)
                return fail(p, -ENOMEM, line, "out of memory");
        return 0;
}

static int set_key(parser *p, enum key k, const char *v, unsigned line) {
        evd_config *c = p->config;
        evd_task_conf *t = p->section == SECTION_TASK ? &c->tasks[p->task] : NULL;
        const char *key = key_table[k].name;
        size_t size;
        uint64_t n;
        int i, r;

        switch (k) {
        case KEY_DRAIN_TIMEOUT:
                return set_duration(p, key, v, line, &c->drain_timeout, true);
        case KEY_EXIT_WHEN_DONE:
        case KEY_SHIELD:
        case KEY_PAUSABLE:
                if (evd_parse_bool(v, k == KEY_EXIT_WHEN_DONE ? &c->exit_when_done :
                                      k == KEY_SHIELD ? &t->shield : &t->pausable) < 0)
                        return fail_key(p, key, line,
                                        "'%s' is not a boolean (yes/no, true/false, on/off, 1/0)", v);
                return 0;
        case KEY_LOG:
                i = evd_names_find(&evd_log_target_names, v);
                if (i < 0)
                        return fail_key(p, key, line,
                                        "unknown log target '%s' (auto, console, json or journal)", v);
                c->log = (enum evd_log_target) i;
                return 0;
        case KEY_STACK_SIZE:
                if (evd_parse_size(v, &size) < 0)
                        return fail_key(p, key, line, "'%s' is not a size (for example 65536, 64K, 1M)", v);
                if (size < STACK_SIZE_MIN || size > STACK_SIZE_MAX)
                        return fail_key(p, key, line, "%s is out of range (16K to 1G)", v);
                c->stack_size = size;
                return 0;
        case KEY_THREADS:
                r = evd_parse_uint(v, &n);
                if (r == -EINVAL)
                        return fail_key(p, key, line, "'%s' is not an unsigned integer", v);
                if (r < 0 || n > THREADS_MAX)
                        return fail_key(p, key, line, "%s is out of range (0 = one per CPU, at most %d)", v,
                                        THREADS_MAX);
                c->threads = (unsigned) n;
                return 0;
        case KEY_ABANDON_GRACE:
                return set_duration(p, key, v, line, &c->abandon_grace, true);
        case KEY_SLOW_STEP_WARN:
                return set_duration(p, key, v, line, &c->slow_step_warn, false); /* 0: off */
        case KEY_DAEMON_USER:
        case KEY_DAEMON_GROUP:
                for (size_t i = 0; i < c->n_tasks; i++)
                        if (c->tasks[i].user || c->tasks[i].group)
                                return fail_key(p, key, line, "[task.%s] switches users: %s", c->tasks[i].name,
                                                DROP_AND_SWITCH);
                return set_identity(p, key, v, line, k == KEY_DAEMON_USER ? &c->user : &c->group);
        case KEY_CHECK_EVERY:
                return set_duration(p, key, v, line, &t->check_every, false); /* 0: never */
        case KEY_COMMAND:
                /* Split at the section's end, when `shell` is known. */
                t->command = strdup(v);
                if (!t->command)
                        return fail(p, -ENOMEM, line, "out of memory");
                return 0;
        case KEY_SHELL:
                if (evd_parse_bool(v, &t->shell) < 0)
                        return fail_key(p, key, line,
                                        "'%s' is not a boolean (yes/no, true/false, on/off, 1/0)", v);
                return 0;
        case KEY_SCHEDULE:
                i = lookup(schedule_names, ARRAY_SIZE(schedule_names), v);
                if (i < 0)
                        return fail_key(p, key, line, "unknown schedule '%s' (once, interval or always)", v);
                t->schedule = (enum evd_schedule) i;
                return 0;
        case KEY_RESTART:
                i = lookup(restart_names, ARRAY_SIZE(restart_names), v);
                if (i < 0)
                        return fail_key(p, key, line, "unknown restart policy '%s' (no, on-failure or always)", v);
                t->restart = (enum evd_restart) i;
                return 0;
        case KEY_INTERVAL:
                return set_duration(p, key, v, line, &t->interval, true);
        case KEY_TIMEOUT:
                return set_duration(p, key, v, line, &t->timeout, false); /* 0: none */
        case KEY_KILL_TIMEOUT:
                return set_duration(p, key, v, line, &t->kill_timeout, true);
        case KEY_RESTART_SEC:
                return set_duration(p, key, v, line, &t->restart_sec, false);
        case KEY_KILL_SIGNAL:
                if (evd_parse_signal(v, &t->kill_signal) < 0)
                        return fail_key(p, key, line, "'%s' is not a signal (for example TERM, SIGINT, 15)", v);
                return 0;
        case KEY_WORKING_DIRECTORY:
                if (v[0] != '/')
                        return fail_key(p, key, line, "'%s' is not an absolute path", v);
                t->working_directory = strdup(v);
                if (!t->working_directory)
                        return fail(p, -ENOMEM, line, "out of memory");
                return 0;
        case KEY_PATH:
                if (v[0] != '/')
                        return fail_key(p, key, line, "'%s' is not an absolute path", v);
                t->path = strdup(v);
                if (!t->path)
                        return fail(p, -ENOMEM, line, "out of memory");
                return 0;
        case KEY_ENTRY:
                if (!v[0] || strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != strlen(v))
                        return fail_key(p, key, line, "'%s' is not a C identifier", v);
                t->entry = strdup(v);
                if (!t->entry)
                        return fail(p, -ENOMEM, line, "out of memory");
                return 0;
        case KEY_USER:
        case KEY_GROUP:
                if (c->user || c->group)
                        return fail_key(p, key, line, "%s", DROP_AND_SWITCH);
                return set_identity(p, key, v, line, k == KEY_USER ? &t->user : &t->group);
        case KEY_ENVIRONMENT: {
                char why[128];

                r = evd_split_command(v, &t->environment, why, sizeof(why));
                if (r == -ENOMEM)
                        return fail(p, r, line, "out of memory");
                if (r < 0)
                        return fail_key(p, key, line, "%s", why);
                for (char **e = t->environment; *e; e++)
                        if (!strchr(*e, '=') || **e == '=')
                                return fail_key(p, key, line, "'%s' is not NAME=VALUE", *e);
                return 0;
        }
        case KEY_KIND:
                i = lookup(kind_names, ARRAY_SIZE(kind_names), v);
                if (i < 0)
                        return fail_key(p, key, line, "unknown kind '%s' (ticker, sleep, blocking, wedge, exec or module)", v);
                t->kind = (enum evd_kind) i;
                return 0;
        case KEY_SPEED:
                r = evd_parse_positive(v, SPEED_MAX, &t->speed);
                if (r == -EINVAL)
                        return fail_key(p, key, line, "'%s' is not a number", v);
                if (r < 0)
                        return fail_key(p, key, line, "%s is out of range (more than 0, at most 1000000)", v);
                return 0;
        case KEY_STEPS:
                r = evd_parse_uint(v, &t->steps);
                if (r == -EINVAL)
                        return fail_key(p, key, line, "'%s' is not an unsigned integer", v);
                if (r < 0)
                        return fail_key(p, key, line, "%s is out of range", v);
                return 0;
        case KEY_MESSAGE:
                /* "message =" says "none", like leaving it out. */
                if (v[0] != '\0') {
                        t->message = strdup(v);
                        if (!t->message)
                                return fail(p, -ENOMEM, line, "out of memory");
                }
                return 0;
        case KEY_DURATION:
                return set_duration(p, key, v, line, &t->duration, true);
        case N_KEYS:
                break;
        }
        assert(!"unreachable");
        return -EINVAL;
}

/* arg.KEY = VALUE: kept for the module as KEY=VALUE (whether the section
 * is a module's is known at its end). */
static int module_arg(parser *p, const char *name, const char *value, unsigned line) {
        evd_task_conf *t = &p->config->tasks[p->task];
        const char *key = name + strlen(ARG_PREFIX);
        size_t n = 0, klen = strlen(key);
        char **args;

        if (!key[0])
                return fail_key(p, name, line, "no KEY after 'arg.'");
        for (char **a = t->args; a && *a; a++, n++)
                if (strncmp(*a, key, klen) == 0 && (*a)[klen] == '=')
                        return fail_key(p, name, line, "set twice");
        args = reallocarray(t->args, n + 2, sizeof(*args));
        if (!args)
                return fail(p, -ENOMEM, line, "out of memory");
        t->args = args;
        if (asprintf(&args[n], "%s=%s", key, value) < 0) {
                args[n] = NULL;
                return fail(p, -ENOMEM, line, "out of memory");
        }
        args[n + 1] = NULL;
        if (!p->args_line)
                p->args_line = line;
        return 0;
}

static int config_handler(void *user, const char *section, const char *name, const char *value) {
        parser *p = user;
        unsigned line = p->line;
        char known[512] = "";
        int k;

        (void) section; /* the reader's copy is whole; inih's is cut at 49 bytes */
        p->handled = true;
        if (p->error)
                return 0;

        if (name[0] == '\0')
                return fail(p, -EINVAL, line, "syntax error: no key before '='") == 0;
        if (p->section == SECTION_NONE)
                return fail(p, -EINVAL, line, "key '%s' is outside any section", name) == 0;

        if (p->section == SECTION_TASK && strncmp(name, ARG_PREFIX, strlen(ARG_PREFIX)) == 0)
                return module_arg(p, name, value, line) == 0;
        for (k = 0; k < N_KEYS; k++)
                if (key_table[k].section == p->section && strcmp(key_table[k].name, name) == 0)
                        break;
        if (k == N_KEYS) {
                size_t len = 0;

                for (k = 0; k < N_KEYS; k++)
                        if (key_table[k].section == p->section && len < sizeof(known))
                                len += (size_t) snprintf(known + len, sizeof(known) - len, "%s%s",
                                                         len ? ", " : "", key_table[k].name);
                return fail_key(p, name, line, "unknown key (known: %s)", known) == 0;
        }
        if (p->key_line[k])
                return fail_key(p, name, line, "set twice (first at line %u)", p->key_line[k]) == 0;
        p->key_line[k] = line;
        return set_key(p, (enum key) k, value, line) == 0;
}

/* ---- sections ---- */

static bool task_name_char(char ch) {
        return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
               ch == '_' || ch == '.' || ch == '-';
}

static int task_add(parser *p, const char *name, size_t len) {
        evd_config *c = p->config;
        evd_task_conf *t;

        if (c->n_tasks == p->tasks_cap) {
                size_t cap = p->tasks_cap ? 2 * p->tasks_cap : 8;
                evd_task_conf *tasks = reallocarray(c->tasks, cap, sizeof(*tasks));

                if (!tasks)
                        return fail(p, -ENOMEM, p->line, "out of memory");
                c->tasks = tasks;
                p->tasks_cap = cap;
        }
        t = &c->tasks[c->n_tasks];
        *t = (evd_task_conf) {
                .line = p->line,
                .pausable = true,
                .speed = 1,
                .check_every = CHECK_EVERY_DEFAULT,
                .kill_signal = SIGTERM,
                .kill_timeout = KILL_TIMEOUT_DEFAULT,
                .restart_sec = RESTART_SEC_DEFAULT,
        };
        /* Counted before the name is copied: evd_config_free() copes with a
         * NULL name. */
        p->task = c->n_tasks++;
        t->name = strndup(name, len);
        if (!t->name)
                return fail(p, -ENOMEM, p->line, "out of memory");
        return 0;
}

/* Opens the section named by the header on the current line. */
static int section_open(parser *p, const char *name, size_t len) {
        evd_config *c = p->config;
        const char *tname;
        size_t tlen;

        memset(p->key_line, 0, sizeof(p->key_line));
        p->args_line = 0;
        if (len == 6 && memcmp(name, "daemon", 6) == 0) {
                if (p->daemon_line)
                        return fail(p, -EINVAL, p->line, "duplicate section [daemon] (first at line %u)",
                                    p->daemon_line);
                p->daemon_line = p->line;
                p->section = SECTION_DAEMON;
                strcpy(p->section_name, "daemon");
                return 0;
        }
        if (len < 5 || memcmp(name, "task.", 5) != 0) {
                if (len == 4 && memcmp(name, "task", 4) == 0)
                        return fail(p, -EINVAL, p->line, "unknown section [task]; a task is [task.NAME]");
                return fail(p, -EINVAL, p->line, "unknown section [%.*s]", (int) len, name);
        }
        tname = name + 5;
        tlen = len - 5;

        if (tlen == 0)
                return fail(p, -EINVAL, p->line, "empty task name in [task.]");
        if (tlen > TASK_NAME_MAX)
                return fail(p, -EINVAL, p->line, "task name in [%.*s] is longer than %d characters",
                            (int) len, name, TASK_NAME_MAX);
        for (size_t i = 0; i < tlen; i++)
                if (!task_name_char(tname[i]))
                        return fail(p, -EINVAL, p->line,
                                    "task name '%.*s' in [%.*s]: only letters, digits, '_', '.' and '-' are allowed",
                                    (int) tlen, tname, (int) len, name);
        for (size_t i = 0; i < c->n_tasks; i++)
                if (strlen(c->tasks[i].name) == tlen && memcmp(c->tasks[i].name, tname, tlen) == 0)
                        return fail(p, -EINVAL, p->line, "duplicate section [%.*s] (first at line %u)",
                                    (int) len, name, c->tasks[i].line);

        p->section = SECTION_TASK;
        snprintf(p->section_name, sizeof(p->section_name), "%.*s", (int) len, name);
        return task_add(p, tname, tlen);
}

/* A module's keys: it must load, be built for this ABI, and export its
 * entry function. */
static int module_check(parser *p, evd_task_conf *t) {
        char why[PATH_MAX + 256];
        void *fn, *handle;
        int r;

        if (!p->key_line[KEY_PATH])
                return fail(p, -EINVAL, t->line, "section [%s]: missing key 'path' (required for kind module)",
                            p->section_name);
        if (!t->entry && !(t->entry = strdup(ENTRY_DEFAULT)))
                return fail(p, -ENOMEM, t->line, "out of memory");
        r = evd_module_open(t->path, t->entry, &handle, &fn, why, sizeof(why));
        if (r == -ENOENT && p->key_line[KEY_ENTRY])
                return fail_key(p, "entry", p->key_line[KEY_ENTRY], "%s", why);
        if (r < 0)
                return fail_key(p, "path", p->key_line[KEY_PATH], "%s", why);
        dlclose(handle);
        return 0;
}

int evd_module_open(const char *path, const char *entry, void **ret_handle, void **ret_fn, char *err,
                    size_t errlen) {
        const unsigned *abi;
        void *handle;
        int r = -ENOEXEC;

        /* RTLD_NOW: a symbol the daemon lacks is an error here, not a crash
         * in the middle of a run. */
        handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!handle) {
                snprintf(err, errlen, "cannot load: %s", dlerror());
                return r;
        }
        abi = dlsym(handle, "evtask_module_abi");
        if (!abi) {
                snprintf(err, errlen, "'%s' is not an evtask module (no evtask_module_abi: declare EVTASK_MODULE())",
                         path);
        } else if (*abi != EVTASK_MODULE_ABI) {
                snprintf(err, errlen, "'%s' was built for module ABI %u; this evtaskd has ABI %u: rebuild it", path,
                         *abi, EVTASK_MODULE_ABI);
        } else if (!(*ret_fn = dlsym(handle, entry))) {
                snprintf(err, errlen, "'%s' has no entry function '%s'", path, entry);
                r = -ENOENT;
        } else {
                *ret_handle = handle;
                return 0;
        }
        dlclose(handle);
        return r;
}

/* An exec task's keys, together. */
static int exec_check(parser *p, evd_task_conf *t) {
        if (!p->key_line[KEY_COMMAND])
                return fail(p, -EINVAL, t->line, "section [%s]: missing key 'command' (required for kind exec)",
                            p->section_name);
        if (t->schedule == EVD_SCHEDULE_INTERVAL && !p->key_line[KEY_INTERVAL])
                return fail(p, -EINVAL, p->key_line[KEY_SCHEDULE],
                            "key 'schedule' in [%s]: schedule = interval needs an 'interval' duration",
                            p->section_name);
        if (t->schedule != EVD_SCHEDULE_INTERVAL && p->key_line[KEY_INTERVAL])
                return fail_key(p, "interval", p->key_line[KEY_INTERVAL], "only for schedule = interval");
        if (t->shell) {
                /* The command as it is written, for sh -c. */
                char **argv = calloc(4, sizeof(*argv));

                if (!argv || !(argv[0] = strdup("/bin/sh")) || !(argv[1] = strdup("-c")) ||
                    !(argv[2] = strdup(t->command))) {
                        evd_strv_free(argv);
                        return fail(p, -ENOMEM, t->line, "out of memory");
                }
                t->argv = argv;
                return 0;
        }
        {
                char why[128];
                int r = evd_split_command(t->command, &t->argv, why, sizeof(why));

                if (r == -ENOMEM)
                        return fail(p, r, t->line, "out of memory");
                if (r < 0)
                        return fail_key(p, "command", p->key_line[KEY_COMMAND], "%s", why);
        }
        if (!evd_program_found(t->argv[0]))
                return fail_key(p, "command", p->key_line[KEY_COMMAND], "'%s' is not an executable program%s",
                                t->argv[0], strchr(t->argv[0], '/') ? "" : " on $PATH");
        return 0;
}

/* Checks what one key cannot: kind may come after the keys it rules out, and
 * a key that is missing has no line of its own, so the header's is named. */
static int section_close(parser *p) {
        evd_task_conf *t;
        int bad = -1;

        if (p->section != SECTION_TASK)
                return 0;
        t = &p->config->tasks[p->task];
        if (!p->key_line[KEY_KIND])
                return fail(p, -EINVAL, t->line,
                            "section [%s]: missing key 'kind' (ticker, sleep, blocking, wedge, exec or module)",
                            p->section_name);
        for (int k = 0; k < N_KEYS; k++)
                if (p->key_line[k] && !(key_table[k].kinds & KIND(t->kind)) &&
                    (bad < 0 || p->key_line[k] < p->key_line[bad]))
                        bad = k;
        if (bad >= 0)
                return fail_key(p, key_table[bad].name, p->key_line[bad], "not valid for kind %s",
                                kind_names[t->kind]);
        if ((key_table[KEY_DURATION].kinds & KIND(t->kind)) && !p->key_line[KEY_DURATION])
                return fail(p, -EINVAL, t->line,
                            "section [%s]: missing key 'duration' (required for kind %s)", p->section_name,
                            kind_names[t->kind]);
        if (p->args_line && t->kind != EVD_KIND_MODULE)
                return fail(p, -EINVAL, p->args_line, "key 'arg.*' in [%s]: only for kind module",
                            p->section_name);
        if (t->kind == EVD_KIND_EXEC)
                return exec_check(p, t);
        if (t->kind == EVD_KIND_MODULE)
                return module_check(p, t);
        return 0;
}

/* A "[...]" line: closes the section before it and opens the new one. */
static int section_header(parser *p, const char *line) {
        const char *name = line + 1, *end = name, *rest;
        bool was_space = false;
        int r;

        /* The ']' is found the way inih finds it: an inline comment (';'
         * after whitespace) ends the search. */
        while (*end && *end != ']' && !(was_space && *end == ';')) {
                was_space = isspace((unsigned char) *end);
                end++;
        }
        if (*end != ']')
                return fail(p, -EINVAL, p->line, "syntax error: no ']' after '['");
        /* inih ignores what follows; "[task.a] kind = sleep" is a mistake. */
        for (rest = end + 1; isspace((unsigned char) *rest); rest++)
                ;
        if (*rest && *rest != ';' && *rest != '#')
                return fail(p, -EINVAL, p->line, "syntax error: text after ']'");

        r = section_close(p);
        if (r < 0)
                return r;
        return section_open(p, name, (size_t) (end - name));
}

/* ---- reading lines ---- */

static int next_char(parser *p) {
        if (p->file)
                return getc(p->file);
        if (*p->text == '\0')
                return EOF;
        return (unsigned char) *p->text++;
}

/* A key line inih did not pass to the handler had neither '=' nor ':'. */
static void check_handled(parser *p) {
        if (p->want_handler && !p->handled)
                fail(p, -EINVAL, p->line, "syntax error: expected 'key = value'");
        p->want_handler = false;
}

/* inih's ini_reader: one line into buf (size bytes), like fgets(). */
static char *config_reader(char *buf, int size, void *stream) {
        parser *p = stream;
        /* Room for "\r\n\0", as ini.h asks of INI_MAX_LINE. */
        size_t max = (size_t) size - 3, len = 0, skip = 0;
        bool nul = false;
        int c;

        assert(size > 3);
        check_handled(p);
        if (p->error)
                return NULL;

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

                fail(p, -e, 0, "%s", strerror(e));
                return NULL;
        }
        if (c == EOF && len == 0)
                return NULL;

        p->line++;
        if (len > 0 && len <= max + 1 && buf[len - 1] == '\r')
                len--;
        if (len > max) {
                fail(p, -EINVAL, p->line, "line longer than %zu characters", max);
                return NULL;
        }
        if (nul) {
                fail(p, -EINVAL, p->line, "NUL byte in line");
                return NULL;
        }

        if (p->line == 1 && len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0)
                skip = 3; /* UTF-8 byte order mark */
        while (skip < len && isspace((unsigned char) buf[skip]))
                skip++;
        len -= skip;
        memmove(buf, buf + skip, len);
        buf[len++] = '\n';
        buf[len] = '\0';

        /* Classified as inih will: comment or blank, header, key line. */
        if (buf[0] == '\n' || buf[0] == ';' || buf[0] == '#')
                return buf;
        if (buf[0] == '[')
                return section_header(p, buf) < 0 ? NULL : buf;
        p->want_handler = true;
        p->handled = false;
        return buf;
}

/* ---- loading ---- */

static int config_parse(parser *p, evd_config **ret) {
        evd_config *c;
        int r;

        c = calloc(1, sizeof(*c));
        if (!c)
                return fail(p, -ENOMEM, 0, "out of memory");
        c->path = strdup(p->path);
        if (!c->path) {
                free(c);
                return fail(p, -ENOMEM, 0, "out of memory");
        }
        c->drain_timeout = DRAIN_TIMEOUT_DEFAULT;
        c->abandon_grace = ABANDON_GRACE_DEFAULT;
        c->slow_step_warn = SLOW_STEP_WARN_DEFAULT;
        c->log = EVD_LOG_AUTO;
        p->config = c;

        r = ini_parse_stream(config_reader, p, config_handler, p);
        check_handled(p);
        /* inih may find a syntax error the reader did not classify as one;
         * it counts only if it came first. */
        if (r > 0 && (!p->error || (unsigned) r < p->error_at)) {
                p->error = 0;
                fail(p, -EINVAL, (unsigned) r, "syntax error");
        } else if (r < 0) {
                fail(p, -ENOMEM, 0, "out of memory");
        }
        if (!p->error)
                section_close(p);

        if (p->error) {
                evd_config_free(c);
                return p->error;
        }
        *ret = c;
        return 0;
}

int evd_config_load_file(const char *path, evd_config **ret, char *err, size_t errlen) {
        parser p = { .path = path, .err = err, .errlen = errlen };
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
                return fail(&p, -r, 0, "%s", strerror(r));
        }
        if (!S_ISREG(st.st_mode)) {
                close(fd);
                if (S_ISDIR(st.st_mode))
                        return fail(&p, -EISDIR, 0, "%s", strerror(EISDIR));
                return fail(&p, -EINVAL, 0, "not a regular file");
        }
        p.file = fdopen(fd, "r");
        if (!p.file) {
                r = errno;
                close(fd);
                return fail(&p, -r, 0, "%s", strerror(r));
        }
        r = config_parse(&p, ret);
        fclose(p.file);
        return r;
}

int evd_config_load_string(const char *name, const char *text, evd_config **ret, char *err,
                           size_t errlen) {
        parser p = { .path = name, .text = text, .err = err, .errlen = errlen };

        if (!name || !text || !ret)
                return -EINVAL;
        return config_parse(&p, ret);
}

const char *evd_kind_name(enum evd_kind kind) {
        if ((size_t) kind < ARRAY_SIZE(kind_names) && kind_names[kind])
                return kind_names[kind];
        return "unknown";
}

/* ---- copies ---- */

int evd_task_conf_copy(evd_task_conf *dst, const evd_task_conf *src) {
        evd_task_conf t = *src;

        t.name = strdup(src->name);
        t.message = src->message ? strdup(src->message) : NULL;
        t.command = src->command ? strdup(src->command) : NULL;
        t.argv = evd_strv_copy(src->argv);
        t.working_directory = src->working_directory ? strdup(src->working_directory) : NULL;
        t.environment = evd_strv_copy(src->environment);
        t.user = src->user ? strdup(src->user) : NULL;
        t.group = src->group ? strdup(src->group) : NULL;
        t.path = src->path ? strdup(src->path) : NULL;
        t.entry = src->entry ? strdup(src->entry) : NULL;
        t.args = evd_strv_copy(src->args);
        if ((src->user && !t.user) || (src->group && !t.group) || (src->path && !t.path) ||
            (src->entry && !t.entry) || (src->args && !t.args) || !t.name || (src->message && !t.message) || (src->command && !t.command) || (src->argv && !t.argv) ||
            (src->working_directory && !t.working_directory) || (src->environment && !t.environment)) {
                evd_task_conf_clear(&t);
                return -ENOMEM;
        }
        *dst = t;
        return 0;
}

void evd_task_conf_clear(evd_task_conf *t) {
        free(t->name);
        free(t->message);
        free(t->command);
        evd_strv_free(t->argv);
        free(t->working_directory);
        evd_strv_free(t->environment);
        free(t->user);
        free(t->group);
        free(t->path);
        free(t->entry);
        evd_strv_free(t->args);
        t->name = t->message = t->command = t->working_directory = t->user = t->group = NULL;
        t->path = t->entry = NULL;
        t->argv = t->environment = t->args = NULL;
}

static bool str_equal(const char *a, const char *b) {
        return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

bool evd_task_conf_equal(const evd_task_conf *a, const evd_task_conf *b) {
        return str_equal(a->name, b->name) && a->kind == b->kind && a->shield == b->shield &&
               a->pausable == b->pausable && a->speed == b->speed && a->steps == b->steps &&
               str_equal(a->message, b->message) && a->duration == b->duration &&
               a->check_every == b->check_every && evd_strv_equal(a->argv, b->argv) &&
               a->schedule == b->schedule && a->interval == b->interval && a->timeout == b->timeout &&
               a->kill_signal == b->kill_signal && a->kill_timeout == b->kill_timeout &&
               a->restart == b->restart && a->restart_sec == b->restart_sec &&
               str_equal(a->working_directory, b->working_directory) &&
               evd_strv_equal(a->environment, b->environment) && str_equal(a->user, b->user) &&
               str_equal(a->group, b->group) && str_equal(a->path, b->path) &&
               str_equal(a->entry, b->entry) && evd_strv_equal(a->args, b->args);
}

void evd_config_free(evd_config *c) {
        if (!c)
                return;
        for (size_t i = 0; i < c->n_tasks; i++)
                evd_task_conf_clear(&c->tasks[i]);
        free(c->tasks);
        free(c->path);
        free(c->user);
        free(c->group);
        free(c);
}
