/* evtaskd's configuration parser (config.c): the value parsers, a full
 * config, values continued over lines, and every kind of error with the
 * line and key its message must name. The parser alone: nothing here needs
 * root, a user, a program or a module (test_probe.c checks the host). */
#include <errno.h>
#include <ini.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "testutil.h"
#include "values.h"

#define SEC ((int64_t) 1000000000)

static char err[512];

/* Loads text as "test.conf", asserting success. */
static evd_config *load_ok_at(int at, const char *text) {
        evd_config *c = NULL;
        int r;

        err[0] = '\0';
        r = evd_config_parse_string("test.conf", text, &c, err, sizeof(err));
        ck_assert_msg(r == 0, "test line %d: parse returned %d, expected 0 (%s)", at, r, err);
        ck_assert_ptr_nonnull(c);
        return c;
}
#define load_ok(text) load_ok_at(__LINE__, text)

/* The message must be one line, start with "PATH:LINE: " (or "PATH: " for
 * line 0) and contain every needle. */
static void check_message_at(int at, const char *path, unsigned line, const char *const *needles) {
        char prefix[256];

        if (line > 0)
                snprintf(prefix, sizeof(prefix), "%s:%u: ", path, line);
        else
                snprintf(prefix, sizeof(prefix), "%s: ", path);
        ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0,
                      "test line %d: message '%s' does not start with '%s'", at, err, prefix);
        ck_assert_msg(strchr(err, '\n') == NULL, "test line %d: message '%s' is not one line", at, err);
        for (; *needles; needles++)
                ck_assert_msg(strstr(err, *needles) != NULL, "test line %d: message '%s' lacks '%s'", at, err,
                              *needles);
}

/* Loads text as "test.conf", asserting that it fails with `code`, leaves the
 * output alone and writes a message for `line` naming every needle. */
static void expect_error_at(int at, const char *text, int code, unsigned line, const char *const *needles) {
        static evd_config sentinel;
        evd_config *c = &sentinel;
        int r;

        err[0] = '\0';
        r = evd_config_parse_string("test.conf", text, &c, err, sizeof(err));
        ck_assert_msg(r == code, "test line %d: parse returned %d, expected %d (%s)", at, r, code, err);
        ck_assert_msg(c == &sentinel, "test line %d: *ret changed to %p on failure", at, (void *) c);
        check_message_at(at, "test.conf", line, needles);
}
#define expect_error(text, line, ...) \
        expect_error_at(__LINE__, text, -EINVAL, line, (const char *const[]) { __VA_ARGS__, NULL })

/* ---- value parsers ---- */

START_TEST(duration_good) {
        static const struct {
                const char *s;
                int64_t ns;
        } cases[] = {
                { "0", 0 },
                { "0s", 0 },
                { "0.0", 0 },
                { "250ms", 250000000 },
                { "10s", 10 * SEC },
                { "5min", 300 * SEC },
                { "1h", 3600 * SEC },
                { "1.5s", 1500000000 },
                { "2", 2 * SEC },
                { "0.25", 250000000 },
                { "100us", 100000 },
                { "42ns", 42 },
                { "1.5min", 90 * SEC },
                { "0.001s", 1000000 },
                { "1.25h", 4500 * SEC },
                { "1.5us", 1500 },
                { "1.9ns", 1 },         /* below a nanosecond is dropped */
                { "0.333333333333333333333s", 333333333 },
                { "9223372036854775807ns", INT64_MAX },
                { "9223372036.854775807s", INT64_MAX },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                int64_t ns = -1;

                ck_assert_msg(evd_parse_duration(cases[i].s, &ns) == 0, "'%s' rejected", cases[i].s);
                ck_assert_msg(ns == cases[i].ns, "'%s': %lld ns, expected %lld", cases[i].s, (long long) ns,
                              (long long) cases[i].ns);
        }
}
END_TEST

START_TEST(duration_bad) {
        static const char *const cases[] = {
                "", "-1s", "-0", "+1s", "1 s", " 1s", "1s ", "s", "ms", "1x", "1m", "1S", "1sec", "1.s",
                ".5s", "1.5.5s", "1e3", "0x10", "abc", "1,5s", "inf", "nan",
                "9223372036854775808ns", "9223372036.854775808s", "9223372037s", "2562048h",
                "99999999999999999999999999",
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                int64_t ns = 12345;

                ck_assert_msg(evd_parse_duration(cases[i], &ns) == -EINVAL, "'%s' accepted", cases[i]);
                ck_assert_msg(ns == 12345, "'%s': output changed to %lld on failure", cases[i], (long long) ns);
        }
        ck_assert_int_eq(evd_parse_duration(NULL, &(int64_t) { 0 }), -EINVAL);
}
END_TEST

START_TEST(bool_good) {
        static const struct {
                const char *s;
                bool v;
        } cases[] = {
                { "yes", true }, { "no", false }, { "true", true }, { "false", false },
                { "on", true }, { "off", false }, { "1", true }, { "0", false },
                { "YES", true }, { "No", false }, { "True", true }, { "FALSE", false },
                { "oN", true }, { "OFF", false },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                bool v = !cases[i].v;

                ck_assert_msg(evd_parse_bool(cases[i].s, &v) == 0, "'%s' rejected", cases[i].s);
                ck_assert_msg(v == cases[i].v, "'%s': %d, expected %d", cases[i].s, v, cases[i].v);
        }
}
END_TEST

START_TEST(bool_bad) {
        static const char *const cases[] = {
                "", "y", "n", "2", "-1", "yess", " yes", "no ", "enable", "t", "01", "onn",
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                bool v = true;

                ck_assert_msg(evd_parse_bool(cases[i], &v) == -EINVAL, "'%s' accepted", cases[i]);
                ck_assert_msg(v == true, "'%s': output changed on failure", cases[i]);
        }
        ck_assert_int_eq(evd_parse_bool(NULL, &(bool) { false }), -EINVAL);
}
END_TEST

START_TEST(size_good) {
        static const struct {
                const char *s;
                size_t v;
        } cases[] = {
                { "0", 0 },
                { "65536", 65536 },
                { "64K", 65536 },
                { "64k", 65536 },
                { "1M", 1048576 },
                { "1m", 1048576 },
                { "1G", (size_t) 1 << 30 },
                { "2g", (size_t) 2 << 30 },
                { "007", 7 },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                size_t v = 1;

                ck_assert_msg(evd_parse_size(cases[i].s, &v) == 0, "'%s' rejected", cases[i].s);
                ck_assert_msg(v == cases[i].v, "'%s': %zu, expected %zu", cases[i].s, v, cases[i].v);
        }
        if (SIZE_MAX == UINT64_MAX) {
                size_t v = 0;

                ck_assert_int_eq(evd_parse_size("18446744073709551615", &v), 0);
                ck_assert_uint_eq(v, SIZE_MAX);
                ck_assert_int_eq(evd_parse_size("17179869183G", &v), 0);
                ck_assert_uint_eq(v, (size_t) 17179869183u << 30);
        }
}
END_TEST

START_TEST(size_bad) {
        static const char *const cases[] = {
                "", "K", "-1", "+1", "1.5M", "1KB", "1KiB", "1 K", " 1", "1T", "1b", "0x10", "abc",
                "18446744073709551616", "17179869184G", "18014398509481984K",
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                size_t v = 4321;

                ck_assert_msg(evd_parse_size(cases[i], &v) == -EINVAL, "'%s' accepted", cases[i]);
                ck_assert_msg(v == 4321, "'%s': output changed to %zu on failure", cases[i], v);
        }
        ck_assert_int_eq(evd_parse_size(NULL, &(size_t) { 0 }), -EINVAL);
}
END_TEST

/* ---- good configs ---- */

START_TEST(load_full) {
        evd_config *c = load_ok("# every key\n"
                                "[daemon]\n"
                                "drain_timeout = 1.5s\n"
                                "exit_when_done = yes\n"
                                "log = json\n"
                                "stack_size = 1M\n"
                                "threads = 3\n"
                                "abandon_grace = 250ms\n"
                                "\n"
                                "[task.rabbit]\n"
                                "kind = ticker\n"
                                "speed = 2.5\n"
                                "steps = 10\n"
                                "message = hop hop\n"
                                "shield = on\n"
                                "pausable = no\n"
                                "\n"
                                "[task.Worker_1.b-c]\n"
                                "; kind after the kind-specific key is fine\n"
                                "duration = 250ms\n"
                                "kind = sleep\n"
                                "shield = true\n"
                                "pausable = 1\n"
                                "\n"
                                "[task.crunch]\n"
                                "kind = blocking\n"
                                "duration = 2s\n"
                                "check_every = 100ms\n");

        ck_assert_str_eq(c->path, "test.conf");
        ck_assert_int_eq(c->drain_timeout, 1500000000);
        ck_assert(c->exit_when_done);
        ck_assert_int_eq(c->log, EVD_LOG_JSON);
        ck_assert_uint_eq(c->stack_size, 1048576);
        ck_assert_uint_eq(c->threads, 3);
        ck_assert_int_eq(c->abandon_grace, 250000000);
        ck_assert_uint_eq(c->n_tasks, 3);

        ck_assert_str_eq(c->tasks[0].name, "rabbit");
        ck_assert_uint_eq(c->tasks[0].line, 10);
        ck_assert_int_eq(c->tasks[0].kind, EVD_KIND_TICKER);
        ck_assert_double_eq(c->tasks[0].speed, 2.5);
        ck_assert_uint_eq(c->tasks[0].steps, 10);
        ck_assert_str_eq(c->tasks[0].message, "hop hop");
        ck_assert(c->tasks[0].shield);
        ck_assert(!c->tasks[0].pausable);

        ck_assert_str_eq(c->tasks[1].name, "Worker_1.b-c");
        ck_assert_uint_eq(c->tasks[1].line, 18);
        ck_assert_int_eq(c->tasks[1].kind, EVD_KIND_SLEEP);
        ck_assert_int_eq(c->tasks[1].duration, 250000000);
        ck_assert(c->tasks[1].shield);
        ck_assert(c->tasks[1].pausable);
        ck_assert_ptr_null(c->tasks[1].message);

        ck_assert_str_eq(c->tasks[2].name, "crunch");
        ck_assert_int_eq(c->tasks[2].kind, EVD_KIND_BLOCKING);
        ck_assert_int_eq(c->tasks[2].duration, 2 * SEC);
        ck_assert_int_eq(c->tasks[2].check_every, 100000000);
        evd_config_free(c);
}
END_TEST

START_TEST(load_defaults) {
        evd_config *c = load_ok("[task.t]\n"
                                "kind = ticker\n"
                                "[task.s]\n"
                                "kind = sleep\n"
                                "duration = 1\n"
                                "[task.b]\n"
                                "kind = blocking\n"
                                "duration = 1\n");

        ck_assert_int_eq(c->drain_timeout, 20 * SEC);
        ck_assert(!c->exit_when_done);
        ck_assert_int_eq(c->log, EVD_LOG_AUTO);
        ck_assert_uint_eq(c->stack_size, 0);
        ck_assert_uint_eq(c->threads, 0);
        ck_assert_int_eq(c->abandon_grace, SEC);
        ck_assert_uint_eq(c->n_tasks, 3);
        ck_assert_str_eq(c->tasks[0].name, "t");
        ck_assert(!c->tasks[0].shield);
        ck_assert(c->tasks[0].pausable);
        ck_assert_double_eq(c->tasks[0].speed, 1);
        ck_assert_uint_eq(c->tasks[0].steps, 0);
        ck_assert_ptr_null(c->tasks[0].message);
        ck_assert_int_eq(c->tasks[1].duration, SEC);
        ck_assert(!c->tasks[1].shield);
        ck_assert(c->tasks[1].pausable);
        ck_assert_int_eq(c->tasks[2].check_every, SEC);
        evd_config_free(c);
}
END_TEST

/* No task is a valid config; so is an empty [daemon]. */
START_TEST(load_empty) {
        evd_config *c = load_ok("");

        ck_assert_uint_eq(c->n_tasks, 0);
        ck_assert_ptr_null(c->tasks);
        ck_assert_int_eq(c->drain_timeout, 20 * SEC);
        evd_config_free(c);

        c = load_ok("; only comments\n# and blanks\n\n   \n[daemon]\n");
        ck_assert_uint_eq(c->n_tasks, 0);
        ck_assert_int_eq(c->log, EVD_LOG_AUTO);
        evd_config_free(c);
}
END_TEST

/* Indentation means nothing (inih would take the second indented key for a
 * continuation of the first); CRLF, a BOM, inline comments, ':' and a last
 * line without '\n' are all accepted. */
START_TEST(load_lenient_syntax) {
        evd_config *c = load_ok("\xEF\xBB\xBF[daemon] ; the daemon\r\n"
                                "    log = console ; inline comment\r\n"
                                "    exit_when_done: on\r\n"
                                "\t[task.a]\r\n"
                                "\tkind = ticker\r\n"
                                "\tspeed = 1000\r\n"
                                "\tmessage = a;b # not a comment\r\n"
                                "\tsteps = 18446744073709551615");

        ck_assert_int_eq(c->log, EVD_LOG_CONSOLE);
        ck_assert(c->exit_when_done);
        ck_assert_uint_eq(c->n_tasks, 1);
        ck_assert_double_eq(c->tasks[0].speed, 1000);
        ck_assert_str_eq(c->tasks[0].message, "a;b # not a comment");
        ck_assert_uint_eq(c->tasks[0].steps, UINT64_MAX);
        evd_config_free(c);

        /* An empty message is no message. */
        c = load_ok("[task.a]\nkind = ticker\nmessage =\n");
        ck_assert_ptr_null(c->tasks[0].message);
        evd_config_free(c);
}
END_TEST

/* Many tasks: the array grows and keeps the file's order. */
START_TEST(load_many_tasks) {
        char text[8192], *q = text;
        evd_config *c;

        for (int i = 0; i < 100; i++)
                q += sprintf(q, "[task.t%d]\nkind = sleep\nduration = %dms\n", i, i + 1);
        c = load_ok(text);
        ck_assert_uint_eq(c->n_tasks, 100);
        for (int i = 0; i < 100; i++) {
                char name[16];

                snprintf(name, sizeof(name), "t%d", i);
                ck_assert_str_eq(c->tasks[i].name, name);
                ck_assert_uint_eq(c->tasks[i].line, (unsigned) (3 * i + 1));
                ck_assert_int_eq(c->tasks[i].duration, (int64_t) (i + 1) * 1000000);
        }
        evd_config_free(c);
}
END_TEST

/* ---- errors: sections ---- */

START_TEST(error_unknown_section) {
        expect_error("[daemon]\nlog = auto\n[deamon]\n", 3, "unknown section [deamon]");
        expect_error("[task]\nkind = sleep\n", 1, "unknown section [task]", "[task.NAME]");
        expect_error("[tasks.a]\n", 1, "unknown section [tasks.a]");
        expect_error("[Daemon]\n", 1, "unknown section [Daemon]");
}
END_TEST

START_TEST(error_task_name) {
        char text[256];

        expect_error("[task.a]\nkind = ticker\n[task.]\nkind = ticker\n", 3, "empty task name", "[task.]");
        expect_error("[task.a b]\nkind = ticker\n", 1, "task name 'a b'", "[task.a b]");
        expect_error("[task.a/b]\n", 1, "task name 'a/b'");

        /* 64 characters are fine, 65 are not. */
        snprintf(text, sizeof(text), "[task.%064d]\nkind = ticker\n", 0);
        evd_config_free(load_ok(text));
        snprintf(text, sizeof(text), "\n[task.%065d]\nkind = ticker\n", 0);
        expect_error(text, 2, "longer than 64");
}
END_TEST

START_TEST(error_duplicate_section) {
        expect_error("[task.a]\n"
                     "kind = ticker\n"
                     "\n"
                     "[task.b]\n"
                     "kind = ticker\n"
                     "[task.a]\n"
                     "kind = sleep\n",
                     6, "duplicate section [task.a]", "first at line 1");
        expect_error("[daemon]\n[task.a]\nkind = ticker\n[daemon]\n", 4, "duplicate section [daemon]",
                     "first at line 1");
}
END_TEST

START_TEST(error_key_outside_section) {
        expect_error("# comment\nlog = json\n[daemon]\n", 2, "key 'log'", "outside any section");
}
END_TEST

/* ---- errors: keys and values ---- */

START_TEST(error_unknown_key) {
        expect_error("[daemon]\nlog = json\nspeed = 3\n", 3, "key 'speed' in [daemon]", "unknown key");
        expect_error("[task.a]\nkind = ticker\nspede = 3\n", 3, "key 'spede' in [task.a]", "unknown key",
                     "speed");
        /* Keys are case-sensitive. */
        expect_error("[task.a]\nKind = ticker\n", 2, "key 'Kind' in [task.a]", "unknown key");
}
END_TEST

START_TEST(error_duplicate_key) {
        expect_error("[task.a]\n"
                     "kind = ticker\n"
                     "speed = 2\n"
                     "steps = 3\n"
                     "speed = 4\n",
                     5, "key 'speed' in [task.a]", "first at line 3");
        expect_error("[daemon]\nlog = json\nlog = console\n", 3, "key 'log' in [daemon]", "first at line 2");
}
END_TEST

START_TEST(error_bad_duration) {
        expect_error("[daemon]\ndrain_timeout = 5 s\n", 2, "key 'drain_timeout' in [daemon]", "'5 s'",
                     "not a duration");
        expect_error("[task.nap]\nkind = sleep\nduration = -1s\n", 3, "key 'duration' in [task.nap]", "'-1s'",
                     "not a duration");
        expect_error("[task.nap]\nkind = sleep\nduration = 0ms\n", 3, "key 'duration' in [task.nap]",
                     "more than 0");
        expect_error("[daemon]\nabandon_grace = 0\n", 2, "key 'abandon_grace' in [daemon]", "more than 0");
        expect_error("[daemon]\ndrain_timeout = 0s\n", 2, "key 'drain_timeout' in [daemon]", "more than 0");
        expect_error("[daemon]\nabandon_grace = soon\n", 2, "key 'abandon_grace'", "not a duration");
        expect_error("[task.b]\nkind = blocking\nduration = 1s\ncheck_every = often\n", 4,
                     "key 'check_every' in [task.b]", "not a duration");
        /* Finding 15 of issue 18: every duration is bounded, so that now
         * plus one never overflows, and an interval is long enough to be
         * a schedule. */
        expect_error("[task.t]\nkind = exec\ncommand = true\nschedule = interval\n"
                     "interval = 9223372036854775807ns\n",
                     5, "key 'interval' in [task.t]", "out of range", "366 days");
        expect_error("[daemon]\ndrain_timeout = 8785h\n", 2, "key 'drain_timeout'", "out of range");
        expect_error("[task.t]\nkind = exec\ncommand = true\ntimeout = 9000h\n", 4, "key 'timeout'",
                     "out of range");
        expect_error("[task.t]\nkind = exec\ncommand = true\nschedule = interval\ninterval = 1us\n", 5,
                     "key 'interval' in [task.t]", "at least 10ms");
        expect_error("[task.t]\nkind = exec\ncommand = true\nschedule = interval\ninterval = 9ms\n", 5,
                     "key 'interval'", "at least 10ms");

        /* check_every = 0 is allowed: a thread that never checks its token. */
        evd_config *c = load_ok("[task.b]\nkind = blocking\nduration = 1s\ncheck_every = 0\n");
        ck_assert_int_eq(c->tasks[0].check_every, 0);
        evd_config_free(c);
        /* Both ends of the bounds are included. */
        c = load_ok("[task.t]\nkind = exec\ncommand = true\nschedule = interval\ninterval = 10ms\n"
                    "timeout = 8784h\n[task.r]\nkind = ticker\nspeed = 0.0001\n");
        ck_assert_int_eq(c->tasks[0].interval, EVD_SEC(1) / 100);
        ck_assert_int_eq(c->tasks[0].timeout, EVD_SEC(8784) * 3600);
        ck_assert_double_eq(c->tasks[1].speed, 0.0001);
        evd_config_free(c);
}
END_TEST

START_TEST(error_bad_bool) {
        expect_error("[daemon]\nexit_when_done = maybe\n", 2, "key 'exit_when_done' in [daemon]", "'maybe'",
                     "not a boolean");
        expect_error("[task.a]\nkind = ticker\n\nshield = 2\n", 4, "key 'shield' in [task.a]", "'2'");
        expect_error("[task.a]\npausable = nope\nkind = ticker\n", 2, "key 'pausable' in [task.a]", "'nope'");
}
END_TEST

START_TEST(error_bad_number) {
        expect_error("[task.rabbit]\nkind = ticker\nspeed = 3x\n", 3, "key 'speed' in [task.rabbit]",
                     "'3x' is not a number");
        expect_error("[task.rabbit]\nkind = ticker\nspeed = 1e3\n", 3, "key 'speed'", "not a number");
        expect_error("[task.rabbit]\nkind = ticker\nspeed =\n", 3, "key 'speed'", "not a number");
        expect_error("[task.rabbit]\nkind = ticker\nspeed = 0\n", 3, "key 'speed'", "out of range");
        expect_error("[task.rabbit]\nkind = ticker\nspeed = 0.0\n", 3, "key 'speed'", "out of range");
        expect_error("[task.rabbit]\nkind = ticker\nspeed = 1000.5\n", 3, "key 'speed'", "out of range",
                     "0.0001 to 1000");
        /* Finding 15 of issue 18: a step every 10^10 s overflowed the
         * nanoseconds between steps into a flood of steps. */
        expect_error("[task.rabbit]\nkind = ticker\nspeed = 0.0000000001\n", 3, "key 'speed'", "out of range");
        expect_error("[task.rabbit]\nkind = ticker\nspeed = 0.00009\n", 3, "key 'speed'", "out of range");
        expect_error("[task.rabbit]\nkind = ticker\nsteps = -1\n", 3, "key 'steps' in [task.rabbit]",
                     "not an unsigned integer");
        expect_error("[task.rabbit]\nkind = ticker\nsteps = 1.5\n", 3, "key 'steps'", "not an unsigned integer");
        expect_error("[task.rabbit]\nkind = ticker\nsteps = 18446744073709551616\n", 3, "key 'steps'",
                     "out of range");
        expect_error("[daemon]\nthreads = 1025\n", 2, "key 'threads' in [daemon]", "out of range",
                     "at most 1024");
        expect_error("[daemon]\nthreads = -1\n", 2, "key 'threads'", "not an unsigned integer");

        evd_config *c = load_ok("[daemon]\nthreads = 1024\n");
        ck_assert_uint_eq(c->threads, 1024);
        evd_config_free(c);
}
END_TEST

START_TEST(error_bad_size) {
        expect_error("[daemon]\nstack_size = 64 K\n", 2, "key 'stack_size' in [daemon]", "not a size");
        expect_error("[daemon]\nstack_size = 8K\n", 2, "key 'stack_size'", "out of range", "16K to 1G");
        expect_error("[daemon]\nstack_size = 0\n", 2, "key 'stack_size'", "out of range");
        expect_error("[daemon]\nstack_size = 1025M\n", 2, "key 'stack_size'", "out of range");

        /* Both ends are included. */
        evd_config *c = load_ok("[daemon]\nstack_size = 16K\n");
        ck_assert_uint_eq(c->stack_size, 16384);
        evd_config_free(c);
        c = load_ok("[daemon]\nstack_size = 1G\n");
        ck_assert_uint_eq(c->stack_size, (size_t) 1 << 30);
        evd_config_free(c);
}
END_TEST

START_TEST(error_unknown_kind) {
        expect_error("[task.a]\nkind = tickr\n", 2, "key 'kind' in [task.a]", "unknown kind 'tickr'");
        expect_error("[task.a]\nkind = Sleep\n", 2, "key 'kind'", "unknown kind 'Sleep'");
}
END_TEST

START_TEST(error_unknown_log) {
        expect_error("[daemon]\nlog = syslog\n", 2, "key 'log' in [daemon]", "unknown log target 'syslog'");
}
END_TEST

/* ---- errors: whole sections ---- */

/* A missing key names the section's header line, found when the section
 * ends: at the next header, or at the end of the file. */
START_TEST(error_missing_kind) {
        expect_error("[task.a]\nkind = ticker\n\n[task.b]\nshield = yes\n\n[task.c]\nkind = ticker\n", 4,
                     "[task.b]", "missing key 'kind'");
        expect_error("[daemon]\n[task.last]\nshield = yes\n", 2, "[task.last]", "missing key 'kind'");
        expect_error("[task.empty]\n", 1, "[task.empty]", "missing key 'kind'");
}
END_TEST

START_TEST(error_missing_duration) {
        expect_error("[task.nap]\nkind = sleep\nshield = yes\n[daemon]\n", 1, "[task.nap]",
                     "missing key 'duration'");
        expect_error("[daemon]\n\n[task.nap]\nkind = sleep\n", 3, "[task.nap]", "missing key 'duration'");
        expect_error("[task.b]\nkind = blocking\ncheck_every = 1s\n", 1, "[task.b]", "missing key 'duration'",
                     "required for kind blocking");
        expect_error("[task.w]\nkind = wedge\n", 1, "[task.w]", "missing key 'duration'", "required for kind wedge");
}
END_TEST

/* A kind-specific key for the other kind names the key's own line, whether
 * kind comes before it or after. */
START_TEST(error_wrong_kind_key) {
        expect_error("[task.nap]\nkind = sleep\nduration = 1s\nspeed = 3\n", 4, "key 'speed' in [task.nap]",
                     "not valid for kind sleep");
        expect_error("[task.nap]\nspeed = 3\nduration = 1s\nkind = sleep\n[task.b]\nkind = ticker\n", 2,
                     "key 'speed' in [task.nap]", "not valid for kind sleep");
        expect_error("[task.t]\nkind = ticker\nsteps = 3\nduration = 1s\n", 4, "key 'duration' in [task.t]",
                     "not valid for kind ticker");
        expect_error("[task.nap]\nkind = sleep\nduration = 1s\ncheck_every = 1s\n", 4,
                     "key 'check_every' in [task.nap]", "not valid for kind sleep");
        expect_error("[task.b]\nkind = blocking\nduration = 1s\nspeed = 2\n", 4, "key 'speed' in [task.b]",
                     "not valid for kind blocking");
        /* The earliest of several is named. */
        expect_error("[task.nap]\nduration = 1s\nsteps = 2\nmessage = hi\nkind = sleep\n", 3,
                     "key 'steps' in [task.nap]", "not valid for kind sleep");
}
END_TEST

/* ---- errors: syntax ---- */

START_TEST(error_syntax) {
        expect_error("[daemon]\nlog = json\nexit_when_done\n", 3, "syntax error", "expected 'key = value'");
        expect_error("[daemon\nlog = json\n", 1, "syntax error", "']'");
        expect_error("[task.a ; comment]\nkind = ticker\n", 1, "syntax error");
        expect_error("[task.a] kind = ticker\n", 1, "syntax error", "after ']'");
        expect_error("[daemon]\n= json\n", 2, "syntax error");
        /* An indented line that continues no value (a comment or a blank
         * line ends one) is no key line either. */
        expect_error("[task.a]\nkind = ticker\nmessage = one\n# two?\n    two\n", 5, "syntax error");
        expect_error("[task.a]\nkind = ticker\nmessage = one\n\n    two\n", 5, "syntax error");
        expect_error("[task.a]\n    two\n", 2, "syntax error");
}
END_TEST

/* inih would split a line longer than its buffer in two. */
START_TEST(error_long_line) {
        size_t max = INI_MAX_LINE - 3;
        char text[512];
        evd_config *c;
        int n;

        /* "message = " and max - 10 characters: just fits, CRLF or not. */
        n = snprintf(text, sizeof(text), "[task.a]\nkind = ticker\nmessage = %0*d\r\nshield = no\n",
                     (int) (max - 10), 0);
        ck_assert_int_lt(n, (int) sizeof(text));
        c = load_ok(text);
        ck_assert_uint_eq(strlen(c->tasks[0].message), max - 10);
        ck_assert(!c->tasks[0].shield);
        evd_config_free(c);

        snprintf(text, sizeof(text), "[task.a]\nkind = ticker\nmessage = %0*d\nshield = no\n", (int) (max - 9), 0);
        expect_error(text, 3, "line longer than 197 characters", "indented");
        snprintf(text, sizeof(text), "[task.a]\nkind = ticker\n# %0400d\n", 0);
        expect_error(text, 3, "line longer than");
}
END_TEST

/* ---- values over several lines ---- */

/* A line indented deeper than its key line continues the key's value;
 * the lines are joined with one blank, as a shell joins a command
 * continued with a backslash. */
START_TEST(continued_values) {
        evd_config *c = load_ok("[task.a]\n"
                                "kind = ticker\n"
                                "message = one\n"
                                "    two ; an inline comment\n"
                                "\t three\n"
                                "steps = 3\n"
                                "[task.b]\n"
                                "  kind = exec\n"
                                "  command = /bin/echo\n"
                                "      'a b'\n"
                                "      c\n"
                                "  environment = A=1\n"
                                "     B=2\n"
                                "  schedule = once\n");

        ck_assert_str_eq(c->tasks[0].message, "one two three");
        ck_assert_uint_eq(c->tasks[0].steps, 3);
        ck_assert_str_eq(c->tasks[1].command, "/bin/echo 'a b' c");
        ck_assert_str_eq(c->tasks[1].argv[0], "/bin/echo");
        ck_assert_str_eq(c->tasks[1].argv[1], "a b");
        ck_assert_str_eq(c->tasks[1].argv[2], "c");
        ck_assert_ptr_null(c->tasks[1].argv[3]);
        ck_assert_str_eq(c->tasks[1].environment[0], "A=1");
        ck_assert_str_eq(c->tasks[1].environment[1], "B=2");
        ck_assert_ptr_null(c->tasks[1].environment[2]);
        /* Every key is where it was written: its first line. */
        ck_assert_uint_eq(c->tasks[0].key_line[EVD_TASK_KEY(steps)], 6);
        ck_assert_uint_eq(c->tasks[1].key_line[EVD_TASK_KEY(environment)], 12);
        evd_config_free(c);

        /* An empty first line, and a module's arg. */
        c = load_ok("[task.m]\nkind = module\npath = /x.so\narg.list =\n  1\n  2\n");
        ck_assert_str_eq(c->tasks[0].args[0], "list=1 2");
        evd_config_free(c);

        /* A bad value is named at its key's line, also when the line
         * after it cannot be read. */
        expect_error("[task.a]\nkind = ticker\nsteps = 1\n  2\n", 3, "key 'steps' in [task.a]", "'1 2'");
        {
                char text[512];

                snprintf(text, sizeof(text), "[task.a]\nkind = ticker\nsteps = x\n# %0300d\n", 0);
                expect_error(text, 3, "key 'steps' in [task.a]", "'x'");
        }
}
END_TEST

/* Long values: each line stays within the limit; the value may not. */
START_TEST(continued_long_value) {
        size_t words = 1000, len = 0;
        char *text = malloc(words * 16 + 64), *q = text, *expect = malloc(words * 16);
        evd_config *c;

        ck_assert_ptr_nonnull(text);
        ck_assert_ptr_nonnull(expect);
        q += sprintf(q, "[task.x]\nkind = ticker\nmessage =");
        for (size_t i = 0; i < words; i++) {
                q += sprintf(q, "\n    word%04zu", i);
                len += (size_t) sprintf(expect + len, "%sword%04zu", i ? " " : "", i);
        }
        c = load_ok(text);
        ck_assert_str_eq(c->tasks[0].message, expect);
        ck_assert_uint_gt(strlen(expect), 5000);
        evd_config_free(c);
        free(text);
        free(expect);

        /* Past 128 KiB, a value is refused, naming where it began. */
        text = malloc(200 * 1024);
        ck_assert_ptr_nonnull(text);
        q = text + sprintf(text, "[task.x]\nkind = ticker\nmessage = start");
        while (q - text < 140 * 1024)
                q += sprintf(q, "\n  %0100d", 0);
        expect_error(text, 3, "key 'message' in [task.x]", "longer than 131072 characters");
        free(text);
}
END_TEST

/* ---- scale ---- */

static double parse_cpu_seconds(const char *text) {
        struct timespec a, b;
        evd_config *c;

        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
        c = load_ok(text);
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
        evd_config_free(c);
        return (double) (b.tv_sec - a.tv_sec) + (double) (b.tv_nsec - a.tv_nsec) / 1e9;
}

static char *many_tasks(size_t n) {
        char *text = malloc(n * 64 + 1), *q = text;

        ck_assert_ptr_nonnull(text);
        for (size_t i = 0; i < n; i++)
                q += sprintf(q, "[task.task-%zu]\nkind = sleep\nduration = %zums\n", i, i % 1000 + 1);
        return text;
}

/* Five times the tasks cost about five times as long (a parser quadratic
 * in the number of tasks took 25 times), best of three each. What 50,000
 * tasks take is a benchmark's: bench/config-check. */
START_TEST(linear_in_tasks) {
        char *small = many_tasks(10000), *large = many_tasks(50000);
        double t_small = 1e9, t_large = 1e9, ratio;

        for (int i = 0; i < 3; i++) {
                double s = parse_cpu_seconds(small), l = parse_cpu_seconds(large);

                t_small = s < t_small ? s : t_small;
                t_large = l < t_large ? l : t_large;
        }
        ratio = t_large / t_small;
        ck_assert_msg(ratio < 10, "10,000 tasks: %.3f s, 50,000: %.3f s, a ratio of %.1f (linear: 5)", t_small,
                      t_large, ratio);
        free(small);
        free(large);
}
END_TEST

/* Only the first error is reported, and nothing after it is read. */
START_TEST(error_first_wins) {
        expect_error("[daemon]\nlog = nowhere\nbogus = 1\n[nope]\n", 2, "key 'log'");
        expect_error("[daemon]\nnot a pair\nbogus = 1\n", 2, "syntax error");
        expect_error("[task.a]\nkind = ticker\n[task.a]\n[task.a]\n", 3, "first at line 1");
        /* The missing kind of [task.a] is found at [task.b], before b's own. */
        expect_error("[task.a]\n[task.b]\nkind = what\n", 1, "[task.a]", "missing key 'kind'");
}
END_TEST

/* ---- files and arguments ---- */

static void write_file(const char *path, const char *data, size_t len) {
        FILE *f = fopen(path, "w");

        ck_assert_ptr_nonnull(f);
        ck_assert_uint_eq(fwrite(data, 1, len, f), len);
        ck_assert_int_eq(fclose(f), 0);
}

START_TEST(file_good) {
        char path[] = "/tmp/test_config_XXXXXX";
        static const char text[] = "[daemon]\nlog = journal\n[task.x]\nkind = sleep\nduration = 5min\n";
        evd_config *c = NULL;
        int fd = mkstemp(path);

        ck_assert_int_ge(fd, 0);
        close(fd);
        write_file(path, text, strlen(text));
        ck_assert_int_eq(evd_config_parse_file(path, &c, err, sizeof(err)), 0);
        unlink(path);
        ck_assert_ptr_nonnull(c);
        ck_assert_str_eq(c->path, path);
        ck_assert_int_eq(c->log, EVD_LOG_JOURNAL);
        ck_assert_uint_eq(c->n_tasks, 1);
        ck_assert_int_eq(c->tasks[0].duration, 300 * SEC);
        evd_config_free(c);
}
END_TEST

START_TEST(file_errors) {
        char path[] = "/tmp/test_config_XXXXXX";
        static const char text[] = "[task.x]\nkind = sleep\nduration = 5\n\nbad line\n";
        static const char nul[] = "[task.x]\nkind = sl\0eep\n";
        static evd_config sentinel;
        evd_config *c = &sentinel;
        int fd = mkstemp(path);

        ck_assert_int_ge(fd, 0);
        close(fd);

        write_file(path, text, strlen(text));
        ck_assert_int_eq(evd_config_parse_file(path, &c, err, sizeof(err)), -EINVAL);
        ck_assert_ptr_eq(c, &sentinel);
        check_message_at(__LINE__, path, 5, (const char *const[]) { "syntax error", NULL });

        write_file(path, nul, sizeof(nul) - 1);
        ck_assert_int_eq(evd_config_parse_file(path, &c, err, sizeof(err)), -EINVAL);
        ck_assert_ptr_eq(c, &sentinel);
        check_message_at(__LINE__, path, 2, (const char *const[]) { "NUL", NULL });

        unlink(path);
        ck_assert_int_eq(evd_config_parse_file(path, &c, err, sizeof(err)), -ENOENT);
        ck_assert_ptr_eq(c, &sentinel);
        check_message_at(__LINE__, path, 0, (const char *const[]) { "No such file or directory", NULL });

        /* fopen() takes a directory; the first read fails. */
        ck_assert_int_eq(evd_config_parse_file("/tmp", &c, err, sizeof(err)), -EISDIR);
        ck_assert_ptr_eq(c, &sentinel);
        check_message_at(__LINE__, "/tmp", 0, (const char *const[]) { "Is a directory", NULL });
}
END_TEST

START_TEST(message_buffer) {
        static evd_config sentinel;
        evd_config *c = &sentinel;
        char small[12];

        /* A short buffer gets a cut, terminated message. */
        memset(small, 'x', sizeof(small));
        ck_assert_int_eq(evd_config_load_string("test.conf", "[nope]\n", NULL, &c, small, sizeof(small)), -EINVAL);
        ck_assert_str_eq(small, "test.conf:1");
        /* No buffer at all is allowed. */
        ck_assert_int_eq(evd_config_load_string("test.conf", "[nope]\n", NULL, &c, NULL, 0), -EINVAL);
        ck_assert_int_eq(evd_config_parse_string("test.conf", "[nope]\n", &c, NULL, 0), -EINVAL);
        ck_assert_ptr_eq(c, &sentinel);
        /* Misuse. */
        ck_assert_int_eq(evd_config_load_string(NULL, "", NULL, &c, err, sizeof(err)), -EINVAL);
        ck_assert_int_eq(evd_config_load_string("x", NULL, NULL, &c, err, sizeof(err)), -EINVAL);
        ck_assert_int_eq(evd_config_load_string("x", "", NULL, NULL, err, sizeof(err)), -EINVAL);
        ck_assert_int_eq(evd_config_load_file(NULL, NULL, &c, err, sizeof(err)), -EINVAL);
        ck_assert_int_eq(evd_config_parse_string(NULL, "", &c, err, sizeof(err)), -EINVAL);
        ck_assert_int_eq(evd_config_parse_string("x", NULL, &c, err, sizeof(err)), -EINVAL);
        ck_assert_int_eq(evd_config_parse_string("x", "", NULL, err, sizeof(err)), -EINVAL);
        ck_assert_int_eq(evd_config_parse_file(NULL, &c, err, sizeof(err)), -EINVAL);
        ck_assert_int_eq(evd_config_parse_file("x", NULL, err, sizeof(err)), -EINVAL);
        ck_assert_ptr_eq(c, &sentinel);
}
END_TEST

/* The destructor takes NULL and configs that were never finished. */
START_TEST(free_half_built) {
        evd_config *c = calloc(1, sizeof(*c));

        evd_config_free(NULL);
        ck_assert_ptr_nonnull(c);
        c->tasks = calloc(2, sizeof(*c->tasks));
        ck_assert_ptr_nonnull(c->tasks);
        c->n_tasks = 2;
        c->tasks[0].name = strdup("a");
        c->tasks[0].message = strdup("m");
        /* tasks[1] has no name yet, and the config no path. */
        evd_config_free(c);
}
END_TEST

Suite *evt_test_suite(void) {
        Suite *s = suite_create("config");
        TCase *tc;

        tc = tcase_create("parse_duration");
        tcase_add_test(tc, duration_good);
        tcase_add_test(tc, duration_bad);
        suite_add_tcase(s, tc);

        tc = tcase_create("parse_bool");
        tcase_add_test(tc, bool_good);
        tcase_add_test(tc, bool_bad);
        suite_add_tcase(s, tc);

        tc = tcase_create("parse_size");
        tcase_add_test(tc, size_good);
        tcase_add_test(tc, size_bad);
        suite_add_tcase(s, tc);

        tc = tcase_create("load_good");
        tcase_add_test(tc, load_full);
        tcase_add_test(tc, load_defaults);
        tcase_add_test(tc, load_empty);
        tcase_add_test(tc, load_lenient_syntax);
        tcase_add_test(tc, load_many_tasks);
        suite_add_tcase(s, tc);

        tc = tcase_create("error_section");
        tcase_add_test(tc, error_unknown_section);
        tcase_add_test(tc, error_task_name);
        tcase_add_test(tc, error_duplicate_section);
        tcase_add_test(tc, error_key_outside_section);
        suite_add_tcase(s, tc);

        tc = tcase_create("error_key");
        tcase_add_test(tc, error_unknown_key);
        tcase_add_test(tc, error_duplicate_key);
        tcase_add_test(tc, error_bad_duration);
        tcase_add_test(tc, error_bad_bool);
        tcase_add_test(tc, error_bad_number);
        tcase_add_test(tc, error_bad_size);
        tcase_add_test(tc, error_unknown_kind);
        tcase_add_test(tc, error_unknown_log);
        suite_add_tcase(s, tc);

        tc = tcase_create("error_task");
        tcase_add_test(tc, error_missing_kind);
        tcase_add_test(tc, error_missing_duration);
        tcase_add_test(tc, error_wrong_kind_key);
        suite_add_tcase(s, tc);

        tc = tcase_create("error_syntax");
        tcase_add_test(tc, error_syntax);
        tcase_add_test(tc, error_long_line);
        tcase_add_test(tc, error_first_wins);
        suite_add_tcase(s, tc);

        tc = tcase_create("continued");
        tcase_add_test(tc, continued_values);
        tcase_add_test(tc, continued_long_value);
        suite_add_tcase(s, tc);

        tc = tcase_create("scale");
        tcase_add_test(tc, linear_in_tasks);
        tcase_set_timeout(tc, 120);
        suite_add_tcase(s, tc);

        tc = tcase_create("file");
        tcase_add_test(tc, file_good);
        tcase_add_test(tc, file_errors);
        suite_add_tcase(s, tc);

        tc = tcase_create("api");
        tcase_add_test(tc, message_buffer);
        tcase_add_test(tc, free_half_built);
        suite_add_tcase(s, tc);
        return s;
}
