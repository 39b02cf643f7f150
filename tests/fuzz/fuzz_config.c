/* The config parser: the input is a config file. It is parsed twice, with
 * evd_config_parse_string (as "fuzz.conf") and with evd_config_parse_file
 * (from a memfd, through /proc/self/fd), and besides not crashing or
 * leaking:
 * - both readers agree: the same result, the same settings, the same
 *   message after the file name; a NUL byte, which only the file reader
 *   can see, is always an error;
 * - a config that loads holds what evtaskd.conf(5) allows (valid names,
 *   positive durations where 0 is refused, an argv for every exec task,
 *   an on_calendar that reads for schedule = calendar, ...), each task copies to an equal one, and it can be freed;
 * - a failure leaves *ret alone and writes one NUL-terminated line that
 *   names the file (and a line of the input, if any), cut cleanly when the
 *   buffer is small.
 *
 * The parser touches nothing but its input. A config that parses is then
 * probed against this host, unless a module task would make the probe
 * dlopen() a file: users and groups are looked up (getpwnam and friends
 * read the system's databases; harmless), exec commands looked for on
 * $PATH with stat() and access(); a config that passes names users and
 * groups that exist, by the ids they say. Nothing is written; the memfd
 * lives in memory. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "calendar.h"
#include "config.h"
#include "fuzz.h"
#include "identity.h"
#include "kind.h"

#define NAME "fuzz.conf"

/* Lines in the input, the last one with or without its '\n'. */
static unsigned count_lines(const uint8_t *data, size_t size) {
        unsigned n = 0;

        for (size_t i = 0; i < size; i++)
                n += data[i] == '\n';
        return n + (size > 0 && data[size - 1] != '\n');
}

/* The input as a file: a memfd, read back through its /proc path. */
static const char *file_with(const uint8_t *data, size_t size) {
        static int fd = -1;
        static char path[64];

        if (fd < 0) {
                fd = memfd_create("fuzz.conf", MFD_CLOEXEC);
                fuzz_require(fd >= 0, "memfd_create: %s", strerror(errno));
                snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        }
        fuzz_require(ftruncate(fd, 0) == 0, "ftruncate: %s", strerror(errno));
        for (size_t done = 0; done < size;) {
                ssize_t n = pwrite(fd, data + done, size - done, (off_t) done);

                fuzz_require(n > 0, "pwrite: %s", strerror(errno));
                done += (size_t) n;
        }
        return path;
}

/* ---- a config that loads ---- */

/* A numeric user or group names the id it says: no wrap-around. */
static void check_identity(const evd_task_conf *t, const char *s, bool user) {
        char buf[16384];
        unsigned long long id;
        int r;

        if (user) {
                struct passwd pw, *pwp;

                r = evd_lookup_user(s, &pw, buf, sizeof(buf), &pwp);
                fuzz_require(r == 0 && pwp, "[task.%s]: user '%s' loaded, and is not found", t->name, s);
                id = pwp->pw_uid;
        } else {
                struct group gr, *grp;

                r = evd_lookup_group(s, &gr, buf, sizeof(buf), &grp);
                fuzz_require(r == 0 && grp, "[task.%s]: group '%s' loaded, and is not found", t->name, s);
                id = grp->gr_gid;
        }
        if (strspn(s, "0123456789") == strlen(s))
                fuzz_require(strlen(s) < 20 && strtoull(s, NULL, 10) == id, "[task.%s]: %s '%s' is id %llu",
                             t->name, user ? "user" : "group", s, id);
}

/* schedule = calendar has an expression that reads; its other keys come
 * with it only, and hold what their types allow. */
static void check_calendar(const evd_task_conf *t) {
        bool calendar = t->schedule == EVD_SCHEDULE_CALENDAR;
        evd_calendar c;
        char why[200];

        fuzz_require(calendar == (t->on_calendar != NULL), "[task.%s]: schedule %d with on_calendar '%s'", t->name,
                     t->schedule, t->on_calendar ? t->on_calendar : "(none)");
        fuzz_require(calendar || (!t->timezone && t->jitter == 0 && t->catch_up == EVD_CATCH_UP_NONE),
                     "[task.%s]: calendar keys without schedule = calendar", t->name);
        fuzz_require(!t->on_calendar || evd_calendar_parse(t->on_calendar, &c, why, sizeof(why)) == 0,
                     "[task.%s]: on_calendar '%s' loaded, and does not read: %s", t->name, t->on_calendar, why);
        fuzz_require(!t->timezone || evd_timezone_check(t->timezone) == 0, "[task.%s]: timezone '%s'", t->name,
                     t->timezone);
        fuzz_require(t->jitter >= 0 && t->catch_up <= EVD_CATCH_UP_ONCE, "[task.%s]: jitter %lld, catch_up %d",
                     t->name, (long long) t->jitter, t->catch_up);
}

static void check_exec(const evd_task_conf *t) {
        fuzz_require(t->command && t->argv && t->argv[0], "[task.%s]: exec without a command", t->name);
        if (t->shell)
                fuzz_require(strcmp(t->argv[0], "/bin/sh") == 0 && t->argv[1] && strcmp(t->argv[1], "-c") == 0 &&
                             t->argv[2] && strcmp(t->argv[2], t->command) == 0 && !t->argv[3],
                             "[task.%s]: shell = yes, and argv is not sh -c COMMAND", t->name);
        fuzz_require(t->schedule <= EVD_SCHEDULE_CALENDAR && t->restart <= EVD_RESTART_ALWAYS,
                     "[task.%s]: schedule %d, restart %d", t->name, t->schedule, t->restart);
        fuzz_require((t->schedule == EVD_SCHEDULE_INTERVAL) == (t->interval > 0),
                     "[task.%s]: schedule %d with interval %lld", t->name, t->schedule, (long long) t->interval);
        check_calendar(t);
        fuzz_require(t->timeout >= 0 && t->kill_timeout > 0 && t->restart_delay >= 0,
                     "[task.%s]: timeout %lld, kill_timeout %lld, restart_delay %lld", t->name,
                     (long long) t->timeout, (long long) t->kill_timeout, (long long) t->restart_delay);
        fuzz_require(t->restart_max_delay >= t->restart_delay && t->restart_reset_after >= 0,
                     "[task.%s]: restart_max_delay %lld below restart_delay", t->name,
                     (long long) t->restart_max_delay);
        fuzz_require((t->start_limit.burst == 0) == (t->start_limit.interval == 0),
                     "[task.%s]: start_limit %llu / %lld", t->name, (unsigned long long) t->start_limit.burst,
                     (long long) t->start_limit.interval);
        fuzz_require(t->kill_signal > 0 && t->kill_signal < NSIG, "[task.%s]: kill_signal %d", t->name,
                     t->kill_signal);
        fuzz_require(!t->working_directory || t->working_directory[0] == '/',
                     "[task.%s]: working_directory '%s'", t->name, t->working_directory);
        for (char **e = t->environment; e && *e; e++)
                fuzz_require(**e != '=' && strchr(*e, '='), "[task.%s]: environment entry '%s'", t->name, *e);
}

static void check_module(const evd_task_conf *t) {
        fuzz_require(t->path && t->path[0] == '/', "[task.%s]: module path '%s'", t->name, t->path);
        fuzz_require(t->entry && t->entry[0] &&
                             strspn(t->entry, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") ==
                                     strlen(t->entry),
                     "[task.%s]: entry '%s'", t->name, t->entry);
        for (char **a = t->args; a && *a; a++)
                fuzz_require(**a != '=' && strchr(*a, '='), "[task.%s]: module arg '%s'", t->name, *a);
}

/* Probed, unless that would dlopen() a file: a config that passes names
 * users and groups that exist, and programs that do. */
static void check_probe(const evd_config *c) {
        char err[1024];
        struct stat st;

        for (size_t i = 0; i < c->n_tasks; i++)
                if (c->tasks[i].kind == EVD_KIND_MODULE)
                        return;
        if (evd_config_probe(c, err, sizeof(err)) < 0) {
                fuzz_require(strncmp(err, c->path, strlen(c->path)) == 0, "probe message '%s'", err);
                return;
        }
        for (size_t i = 0; i < c->n_tasks; i++) {
                const evd_task_conf *t = &c->tasks[i];

                if (t->user)
                        check_identity(t, t->user, true);
                if (t->group)
                        check_identity(t, t->group, false);
                if (t->kind == EVD_KIND_EXEC)
                        fuzz_require(t->argv[0][0] && (!strchr(t->argv[0], '/') ||
                                                       (stat(t->argv[0], &st) == 0 && !S_ISDIR(st.st_mode))),
                                     "[task.%s]: command '%s' runs no program", t->name, t->command);
        }
}

static void check_task(const evd_task_conf *t) {
        size_t len = strlen(t->name);
        bool timed = t->kind == EVD_KIND_SLEEP || t->kind == EVD_KIND_BLOCKING || t->kind == EVD_KIND_WEDGE;
        evd_task_conf copy;

        fuzz_require(len >= 1 && len <= 64 &&
                     strspn(t->name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == len,
                     "task name '%s'", t->name);
        fuzz_require(t->line > 0, "[task.%s]: line 0", t->name);
        fuzz_require(t->kind < EVD_KIND_COUNT, "[task.%s]: kind %d", t->name, t->kind);
        fuzz_require(t->speed > 0 && t->speed <= 1e6, "[task.%s]: speed %g", t->name, t->speed);
        fuzz_require(timed ? t->duration > 0 : t->duration == 0, "[task.%s]: kind %s with duration %lld",
                     t->name, evd_kind_name(t->kind), (long long) t->duration);
        fuzz_require(t->check_every >= 0, "[task.%s]: check_every %lld", t->name, (long long) t->check_every);
        fuzz_require(!t->message || t->message[0], "[task.%s]: empty message, not none", t->name);
        if (t->kind == EVD_KIND_MODULE)
                check_module(t);
        else
                fuzz_require(!t->path && !t->entry && !t->args, "[task.%s]: module keys on kind %s", t->name,
                             evd_kind_name(t->kind));
        if (t->kind == EVD_KIND_EXEC)
                check_exec(t);
        else
                fuzz_require(!t->command && !t->argv && !t->environment && !t->working_directory && !t->user &&
                             !t->group,
                             "[task.%s]: exec keys on kind %s", t->name, evd_kind_name(t->kind));

        fuzz_require(evd_task_conf_copy(&copy, t) == 0, "[task.%s]: copy failed", t->name);
        fuzz_require(evd_task_conf_equal(&copy, t) && evd_task_conf_equal(t, &copy),
                     "[task.%s]: a copy is not equal", t->name);
        evd_task_conf_clear(&copy);
        evd_task_conf_clear(&copy); /* clear leaves it empty: a second one is harmless */
}

static void check_config(const evd_config *c, const char *path) {
        fuzz_require(strcmp(c->path, path) == 0, "config path '%s', given '%s'", c->path, path);
        fuzz_require(c->drain_timeout > 0 && c->abandon_grace > 0, "drain_timeout %lld, abandon_grace %lld",
                     (long long) c->drain_timeout, (long long) c->abandon_grace);
        fuzz_require(c->log <= EVD_LOG_JOURNAL, "log %d", c->log);
        for (size_t i = 0; (c->user || c->group) && i < c->n_tasks; i++)
                fuzz_require(!c->tasks[i].user && !c->tasks[i].group,
                             "[task.%s] switches users in a daemon that gives up root", c->tasks[i].name);
        fuzz_require(c->stack_size == 0 || (c->stack_size >= 16 << 10 && c->stack_size <= 1 << 30),
                     "stack_size %zu", c->stack_size);
        fuzz_require(c->threads <= 1024, "threads %u", c->threads);
        fuzz_require(c->n_tasks == 0 || c->tasks, "%zu tasks, no array", c->n_tasks);
        for (size_t i = 0; i < c->n_tasks; i++) {
                check_task(&c->tasks[i]);
                fuzz_require(i == 0 || c->tasks[i].line > c->tasks[i - 1].line, "tasks out of order");
                for (size_t j = 0; j < i; j++)
                        fuzz_require(strcmp(c->tasks[i].name, c->tasks[j].name) != 0, "task '%s' twice",
                                     c->tasks[i].name);
        }
}

/* The two readers made the same config. */
static void check_same(const evd_config *a, const evd_config *b) {
        fuzz_require(a->drain_timeout == b->drain_timeout && a->exit_when_done == b->exit_when_done &&
                     a->log == b->log && a->stack_size == b->stack_size && a->threads == b->threads &&
                     a->abandon_grace == b->abandon_grace && a->n_tasks == b->n_tasks,
                     "[daemon] or the number of tasks differs between string and file");
        for (size_t i = 0; i < a->n_tasks; i++)
                fuzz_require(evd_task_conf_equal(&a->tasks[i], &b->tasks[i]) && a->tasks[i].line == b->tasks[i].line,
                             "[task.%s] differs between string and file", a->tasks[i].name);
}

/* ---- a config that does not load ---- */

/* The message after "PATH:" ("LINE: ..." or " ..."), checked. */
static const char *check_message(const char *err, size_t errlen, const char *path, unsigned lines) {
        size_t n = strlen(path);
        const char *rest;

        fuzz_require(memchr(err, '\0', errlen), "message not NUL-terminated");
        fuzz_require(strncmp(err, path, n) == 0 && err[n] == ':', "message '%s' does not name '%s'", err, path);
        fuzz_require(!strchr(err, '\n'), "message '%s' is more than one line", err);
        rest = err + n + 1;
        if (*rest >= '0' && *rest <= '9') {
                char *end;
                unsigned long line = strtoul(rest, &end, 10);

                fuzz_require(*end == ':' && line >= 1 && line <= lines,
                             "message '%s' names line %lu of %u", err, line, lines);
        } else {
                fuzz_require(*rest == ' ', "message '%s': no line number, no blank", err);
        }
        fuzz_require(strlen(rest) > 2, "message '%s' says nothing", err);
        return rest;
}

/* Loads text again with a small buffer (or none: odd sizes): the same
 * result, the message cut short. */
static void check_cut_message(const char *text, size_t size, int r_full, const char *full) {
        static evd_config sentinel;
        evd_config *c = &sentinel;
        char small[16];
        int r;

        if (size % 2) {
                r = evd_config_parse_string(NAME, text, &c, NULL, 0);
                fuzz_require(r == r_full && c == &sentinel, "without a buffer: %d, expected %d", r, r_full);
                return;
        }
        r = evd_config_parse_string(NAME, text, &c, small, sizeof(small));
        fuzz_require(r == r_full && c == &sentinel, "with a small buffer: %d, expected %d", r, r_full);
        fuzz_require(strlen(small) == strnlen(full, sizeof(small) - 1) && strncmp(small, full, strlen(small)) == 0,
                     "cut message '%s' is no prefix of '%s'", small, full);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static evd_config sentinel;
        evd_config *from_string = &sentinel, *from_file = &sentinel;
        char err_string[1024], err_file[1024];
        unsigned lines = count_lines(data, size);
        const char *path;
        char *text;
        int r_string, r_file;

        memset(err_file, 'x', sizeof(err_file));
        path = file_with(data, size);
        r_file = evd_config_parse_file(path, &from_file, err_file, sizeof(err_file));

        text = fuzz_string(data, size);
        if (!text) {
                fuzz_require(r_file == -EINVAL && from_file == &sentinel,
                             "a NUL byte, and the file loads: %d", r_file);
                check_message(err_file, sizeof(err_file), path, lines);
                return 0;
        }

        memset(err_string, 'x', sizeof(err_string));
        r_string = evd_config_parse_string(NAME, text, &from_string, err_string, sizeof(err_string));
        fuzz_require(r_string == r_file, "string: %d (%s); file: %d (%s)", r_string,
                     r_string ? err_string : "", r_file, r_file ? err_file : "");
        if (r_string == 0) {
                fuzz_require(from_string != &sentinel && from_file != &sentinel, "loaded, and *ret not set");
                check_config(from_string, NAME);
                check_config(from_file, path);
                check_same(from_string, from_file);
                check_probe(from_string);
                evd_config_free(from_string);
                evd_config_free(from_file);
        } else {
                const char *rest_string, *rest_file;

                fuzz_require(r_string == -EINVAL, "returned %d (%s)", r_string, err_string);
                fuzz_require(from_string == &sentinel && from_file == &sentinel, "*ret changed on failure");
                rest_string = check_message(err_string, sizeof(err_string), NAME, lines);
                rest_file = check_message(err_file, sizeof(err_file), path, lines);
                fuzz_require(strcmp(rest_string, rest_file) == 0, "string: '%s'; file: '%s'", err_string, err_file);
                check_cut_message(text, size, r_string, err_string);
        }
        free(text);
        return 0;
}
