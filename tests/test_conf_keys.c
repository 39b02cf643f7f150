/* The config's key table and value types (conf_fields.c, conf_types.c,
 * kind.c): every key parses a good value and refuses a bad one with its
 * message; the rules between keys; what records show of a task; copies and
 * comparisons; and evtaskd.conf(5) documents exactly the keys of the table,
 * each under the kinds it is valid for. The parser alone: no host. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "command.h"
#include "config.h"
#include "kind.h"
#include "testutil.h"

static char err[512];

static evd_config *parse_ok_at(int at, const char *text) {
        evd_config *c = NULL;
        int r = evd_config_parse_string("test.conf", text, &c, err, sizeof(err));

        ck_assert_msg(r == 0, "test line %d: parse returned %d (%s) for:\n%s", at, r, err, text);
        return c;
}
#define parse_ok(text) parse_ok_at(__LINE__, text)

/* Fails with -EINVAL, naming "test.conf:LINE: " and each needle. */
static void parse_bad_at(int at, const char *text, unsigned line, const char *const *needles) {
        char prefix[64];
        evd_config *c = NULL;
        int r = evd_config_parse_string("test.conf", text, &c, err, sizeof(err));

        ck_assert_msg(r == -EINVAL, "test line %d: parse returned %d, expected -EINVAL, for:\n%s", at, r, text);
        ck_assert_ptr_null(c);
        snprintf(prefix, sizeof(prefix), "test.conf:%u: ", line);
        ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0, "test line %d: '%s' does not start with '%s'", at,
                      err, prefix);
        for (; *needles; needles++)
                ck_assert_msg(strstr(err, *needles), "test line %d: '%s' lacks '%s'", at, err, *needles);
}
#define parse_bad(text, line, ...) parse_bad_at(__LINE__, text, line, (const char *const[]) { __VA_ARGS__, NULL })

/* ---- every key ---- */

/* A good and a bad value of each key, in a section of `where`: "daemon",
 * or a kind. */
static const struct key_case {
        const char *where;
        const char *key;
        const char *good;
        const char *bad;        /* NULL: the parser takes any value */
        const char *says;       /* ... what the message for it says */
} cases[] = {
        { "daemon", "drain_timeout", "1.5s", "0", "must be more than 0, not 0" },
        { "daemon", "exit_when_done", "yes", "maybe", "'maybe' is not a boolean (yes/no, true/false, on/off, 1/0)" },
        { "daemon", "log", "json", "syslog", "unknown log target 'syslog' (auto, console, json or journal)" },
        { "daemon", "log_overflow", "drop", "lose", "unknown log overflow policy 'lose' (block or drop)" },
        { "daemon", "stack_size", "64K", "8K", "8K is out of range (16K to 1G)" },
        { "daemon", "threads", "4", "1025", "1025 is out of range (0 = one per CPU, at most 1024)" },
        { "daemon", "abandon_grace", "250ms", "soon",
          "'soon' is not a duration (for example 250ms, 10s, 1.5s, 5min, 1h)" },
        { "daemon", "slow_step_warn", "0", "-1ms", "'-1ms' is not a duration" },
        { "daemon", "user", "somebody", NULL, NULL },
        { "daemon", "group", "somegroup", NULL, NULL },
        { "daemon", "control_socket", "/run/x/control", "control", "'control' is not an absolute path" },
        { "daemon", "control_group", "wheel", "", "a group name or number is needed" },
        { "daemon", "control_readonly", "yes", "2", "'2' is not a boolean" },
        { "daemon", "http_listen", "[::1]:9870", "localhost:9870",
          "'localhost:9870' is not 127.0.0.1:PORT, [::1]:PORT or an absolute path" },
        { "daemon", "ready_when_paused", "no", "2", "'2' is not a boolean" },
        { "daemon", "state_directory", "/var/lib/x", "lib/x", "'lib/x' is not an absolute path" },
        { "daemon", "stop_grace", "30s", "30 parsecs", "is not a duration" },
        { "daemon", "sigint", "shutdown", "stop", "unknown SIGINT action 'stop' (pause or shutdown)" },
        { "daemon", "reload_on_change", "yes", "2", "'2' is not a boolean" },
        { "ticker", "kind", "ticker", "tickr",
          "unknown kind 'tickr' (ticker, sleep, blocking, wedge, exec or module)" },
        { "sleep", "shield", "yes", "2", "'2' is not a boolean" },
        { "sleep", "pausable", "no", "nope", "'nope' is not a boolean" },
        { "wedge", "description", "nightly dump of the orders database", NULL, NULL },
        { "ticker", "speed", "2.5", "3x", "'3x' is not a number" },
        { "ticker", "speed", "1000", "0", "0 is out of range (0.0001 to 1000 steps a second)" },
        { "ticker", "steps", "10", "1.5", "'1.5' is not an unsigned integer" },
        { "ticker", "steps", "18446744073709551615", "18446744073709551616", "18446744073709551616 is out of range" },
        { "ticker", "message", "hop hop", NULL, NULL },
        { "sleep", "duration", "1s", "0ms", "must be more than 0, not 0ms" },
        { "blocking", "check_every", "0", "often", "'often' is not a duration" },
        { "exec", "command", "/bin/echo hi", "echo 'hi", "unterminated ' quote" },
        { "exec", "shell", "yes", "sometimes", "'sometimes' is not a boolean" },
        { "exec", "schedule", "always", "sometimes", "unknown schedule 'sometimes' (once, interval, always or calendar)" },
        { "exec", "interval", "1h", "0", "must be more than 0, not 0" },
        { "exec", "on_calendar", "Mon..Fri 02:00", "Mon..Fri 24:00",
          "'24' in the hour column: 24 is out of range (0..23)" },
        { "exec", "timezone", "Europe/Berlin", "../Berlin",
          "'../Berlin' is not a time zone name (for example UTC, Europe/Berlin)" },
        { "exec", "jitter", "30min", "soon", "'soon' is not a duration" },
        { "exec", "catch_up", "once", "twice", "unknown catch_up 'twice' (none or once)" },
        { "exec", "timeout", "30s", "1d", "'1d' is not a duration" },
        { "exec", "kill_signal", "INT", "SIGFOO", "'SIGFOO' is not a signal (for example TERM, SIGINT, 15)" },
        { "exec", "kill_timeout", "2s", "0", "must be more than 0, not 0" },
        { "exec", "restart", "on-failure", "never", "unknown restart policy 'never' (no, on-failure or always)" },
        { "exec", "restart_sec", "0", "x", "'x' is not a duration" },
        { "exec", "restart_delay", "2s", "x", "'x' is not a duration" },
        { "sleep", "after", "other", "other other", "'other' is named twice" },
        { "sleep", "after", "other", "t/x", "'t/x' is not a task name" },
        { "sleep", "requires", "other", "'", "is not a list of task names" },
        { "exec", "ready", "notify", "soon", "unknown readiness 'soon' (started, exited or notify)" },
        { "exec", "restart_max_delay", "5min", "1d", "'1d' is not a duration" },
        { "exec", "restart_reset_after", "10min", "-1s", "'-1s' is not a duration" },
        { "exec", "start_limit", "5 / 10s", "5", "'5' is not N / INTERVAL (for example 5 / 10s)" },
        { "exec", "start_limit", "1/1s", "0 / 10s", "must allow at least 1 start, not 0" },
        { "exec", "start_limit", "3/ 1min", "x / 10s", "'x' is not an unsigned integer" },
        { "exec", "start_limit", "3 /1min", "3 / 0", "must be more than 0, not 0" },
        { "exec", "working_directory", "/srv", "srv", "'srv' is not an absolute path" },
        { "exec", "environment", "A=1 B='2 3'", "A=1 B", "'B' is not NAME=VALUE" },
        { "exec", "environment", "A=1", "A='1", "unterminated ' quote" },
        { "exec", "umask", "027", "0800", "'0800' is not a file mode mask (octal, 0000 to 0777, for example 0022)" },
        { "exec", "umask", "0", "1777", "1777 is out of range (0000 to 0777)" },
        { "exec", "user", "nobody", NULL, NULL },
        { "exec", "group", "nogroup", NULL, NULL },
        { "exec", "output", "discard", "quiet", "unknown output mode 'quiet' (log or discard)" },
        { "exec", "output_rate", "100/s", "100", "'100' is not a rate (for example 100/s, 30/min)" },
        { "exec", "output_rate", "30/min", "0/s", "'0/s' is not a rate from 1/min to 1000000/s" },
        { "exec", "output_burst", "500", "x", "'x' is not an unsigned integer" },
        { "exec", "memory_max", "512M", "512K", "512K is out of range (at least 1M)" },
        { "exec", "memory_max", "2G", "2T", "'2T' is not a size (for example 512M, 2G)" },
        { "exec", "pids_max", "64", "-1", "'-1' is not an unsigned integer" },
        { "exec", "cpu_weight", "50", "0", "0 is out of range (1 to 10000)" },
        { "exec", "cpu_weight", "10000", "10001", "10001 is out of range (1 to 10000)" },
        { "exec", "cpu_quota", "50%", "50", "'50' is not a percentage (for example 50%, 200%)" },
        { "exec", "cpu_quota", "200%", "0%", "0% is out of range (1% to 100000%)" },
        { "exec", "limit_nofile", "1024", "many", "'many' is not an unsigned integer" },
        { "exec", "limit_nproc", "100", "1.5", "'1.5' is not an unsigned integer" },
        { "exec", "limit_cpu", "10min", "10x", "'10x' is not a duration" },
        { "module", "path", "/usr/lib/x.so", "x.so", "'x.so' is not an absolute path" },
        { "module", "entry", "my_task", "my-task", "'my-task' is not a C identifier" },
};

static const struct key_case *case_of(const char *key, bool daemon) {
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
                if (strcmp(cases[i].key, key) == 0 && (strcmp(cases[i].where, "daemon") == 0) == daemon)
                        return &cases[i];
        return NULL;
}

/* The lines a key needs before it: its schedule, or the key it goes with. */
static const struct {
        const char *key, *lines;
} schedule_lines[] = {
        { "schedule", "" },
        { "interval", "schedule = interval" },
        { "on_calendar", "schedule = calendar" },
        { "timezone", "schedule = calendar\non_calendar = daily" },
        { "jitter", "schedule = calendar\non_calendar = daily" },
        { "catch_up", "schedule = calendar\non_calendar = daily" },
        { "output_burst", "output_rate = 10/s" },
};

/* A section of kind `kind` with its required keys, then `key = value` on
 * the returned line. */
static unsigned section_with(char *text, size_t size, const char *kind, const char *key, const char *value) {
        int kind_id = evd_names_find(&evd_kind_names, kind);
        size_t len = 0;
        unsigned line = 1;

        if (strcmp(kind, "daemon") == 0) {
                snprintf(text, size, "[daemon]\n%s = %s\n", key, value);
                return 2;
        }
        ck_assert_int_ge(kind_id, 0);
        len += (size_t) snprintf(text + len, size - len, "[task.t]\n");
        if (strcmp(key, "kind") != 0) {
                len += (size_t) snprintf(text + len, size - len, "kind = %s\n", kind);
                line++;
        }
        for (size_t i = 0; i < ARRAY_SIZE(schedule_lines); i++)
                if (strcmp(key, schedule_lines[i].key) == 0) {
                        len += (size_t) snprintf(text + len, size - len, "%s\n", schedule_lines[i].lines);
                        line += 1 + (strchr(schedule_lines[i].lines, '\n') != NULL);
                }
        for (size_t i = 0; i < evd_n_keys; i++) {
                const evd_key *k = &evd_keys[i];

                if (k->section == EVD_SECTION_TASK && strcmp(k->name, "kind") != 0 && strcmp(k->name, key) != 0 &&
                    (k->required & EVD_KIND_BIT(kind_id))) {
                        len += (size_t) snprintf(text + len, size - len, "%s = %s\n", k->name,
                                                 case_of(k->name, false)->good);
                        line++;
                }
        }
        /* A second task, for the keys that name one. */
        snprintf(text + len, size - len, "%s = %s\n[task.other]\nkind = sleep\nduration = 1s\n", key, value);
        return line + 1;
}

/* A row without a case here is a key nobody tested. */
START_TEST(every_key_has_a_case) {
        for (size_t i = 0; i < evd_n_keys; i++) {
                const evd_key *k = &evd_keys[i];

                ck_assert_msg(case_of(k->name, k->section == EVD_SECTION_DAEMON),
                              "key '%s' of [%s] has no case in this test", k->name,
                              k->section == EVD_SECTION_DAEMON ? "daemon" : "task.NAME");
        }
}
END_TEST

START_TEST(every_key_parses_and_refuses) {
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                const struct key_case *kc = &cases[i];
                bool daemon = strcmp(kc->where, "daemon") == 0;
                const evd_key *k = evd_key_find(daemon ? EVD_SECTION_DAEMON : EVD_SECTION_TASK, kc->key);
                char text[1024], section[64], prefix[128];
                unsigned line = section_with(text, sizeof(text), kc->where, kc->key, kc->good);
                evd_config *c = parse_ok(text);

                ck_assert_ptr_nonnull(k);
                ck_assert_uint_eq(daemon ? c->key_line[k->index] : c->tasks[0].key_line[k->index], line);
                evd_config_free(c);
                if (!kc->bad)
                        continue;
                line = section_with(text, sizeof(text), kc->where, kc->key, kc->bad);
                snprintf(section, sizeof(section), "%s", daemon ? "daemon" : "task.t");
                snprintf(prefix, sizeof(prefix), "key '%s' in [%s]: ", kc->key, section);
                parse_bad(text, line, prefix, kc->says);
        }
}
END_TEST

/* The values land in their fields (the keys test_config.c does not). */
START_TEST(exec_and_module_values) {
        evd_config *c = parse_ok("[task.e]\n"
                                 "kind = exec\n"
                                 "command = no-such-program --flag 'two words'\n"
                                 "schedule = interval\n"
                                 "interval = 1h\n"
                                 "timeout = 30s\n"
                                 "kill_signal = SIGINT\n"
                                 "kill_timeout = 2s\n"
                                 "restart_sec = 0\n"
                                 "working_directory = /srv\n"
                                 "environment = A=1 B='2 3'\n"
                                 "user = somebody\n"
                                 "group = 4294967296\n"
                                 "[task.s]\n"
                                 "kind = exec\n"
                                 "shell = yes\n"
                                 "command = echo $HOME | wc -c\n"
                                 "restart = on-failure\n"
                                 "[task.m]\n"
                                 "kind = module\n"
                                 "path = /nowhere/x.so\n"
                                 "arg.greeting = hello there\n"
                                 "arg.n = 3\n");
        const evd_task_conf *e = &c->tasks[0], *sh = &c->tasks[1], *m = &c->tasks[2];

        /* Neither the program nor the user need exist to parse. */
        ck_assert_str_eq(e->argv[0], "no-such-program");
        ck_assert_str_eq(e->argv[2], "two words");
        ck_assert_int_eq(e->schedule, EVD_SCHEDULE_INTERVAL);
        ck_assert_int_eq(e->interval, EVD_SEC(3600));
        ck_assert_int_eq(e->timeout, EVD_SEC(30));
        ck_assert_int_eq(e->kill_signal, SIGINT);
        ck_assert_int_eq(e->kill_timeout, EVD_SEC(2));
        ck_assert_int_eq(e->restart_delay, 0);
        ck_assert_str_eq(e->working_directory, "/srv");
        ck_assert_str_eq(e->environment[1], "B=2 3");
        ck_assert_str_eq(e->user, "somebody");
        ck_assert_str_eq(e->group, "4294967296");
        ck_assert_int_eq(e->restart, EVD_RESTART_NO);

        ck_assert_str_eq(sh->argv[0], "/bin/sh");
        ck_assert_str_eq(sh->argv[1], "-c");
        ck_assert_str_eq(sh->argv[2], "echo $HOME | wc -c");
        ck_assert_ptr_null(sh->argv[3]);
        ck_assert_int_eq(sh->restart, EVD_RESTART_ON_FAILURE);
        ck_assert_int_eq(sh->kill_signal, SIGTERM);
        ck_assert_int_eq(sh->kill_timeout, EVD_SEC(5));

        ck_assert_str_eq(m->path, "/nowhere/x.so");
        ck_assert_str_eq(m->entry, "evtask_task");
        ck_assert_str_eq(m->args[0], "greeting=hello there");
        ck_assert_str_eq(m->args[1], "n=3");
        ck_assert_ptr_null(m->args[2]);
        evd_config_free(c);
}
END_TEST

/* ---- rules between keys ---- */

START_TEST(rules_between_keys) {
        parse_bad("[task.e]\nkind = exec\ncommand = true\nschedule = interval\n", 4, "key 'schedule' in [task.e]",
                  "schedule = interval needs an 'interval' duration");
        parse_bad("[task.e]\nkind = exec\ncommand = true\ninterval = 1s\n", 4, "key 'interval' in [task.e]",
                  "only for schedule = interval");
        parse_bad("[task.e]\nkind = exec\ncommand = true\nrestart_delay = 1s\nrestart_sec = 2s\n", 5,
                  "key 'restart_sec' in [task.e]", "set twice (first at line 4)");
        parse_bad("[task.e]\nkind = exec\ncommand = true\nrestart_sec = 2min\n", 4,
                  "key 'restart_delay' in [task.e]", "restart_max_delay must be at least restart_delay");
        parse_bad("[task.e]\nkind = exec\ncommand = true\nrestart_max_delay = 1s\nrestart_delay = 2s\n", 4,
                  "key 'restart_max_delay' in [task.e]", "restart_max_delay must be at least restart_delay");
        parse_bad("[task.e]\nkind = exec\ncommand = true\nschedule = interval\ninterval = 1s\nstart_limit = 1/1s\n",
                  6, "key 'start_limit' in [task.e]", "not for schedule = interval");
        parse_bad("[task.e]\nkind = exec\ncommand = true\nschedule = calendar\n", 4, "key 'schedule' in [task.e]",
                  "schedule = calendar needs an 'on_calendar' expression");
        parse_bad("[task.e]\nkind = exec\ncommand = true\ncatch_up = once\n", 4, "key 'catch_up' in [task.e]",
                  "only for schedule = calendar");
        parse_bad("[task.e]\nkind = exec\ncommand = true\nschedule = interval\ninterval = 1s\njitter = 1s\n", 6,
                  "key 'jitter' in [task.e]", "only for schedule = calendar");
        parse_bad("[task.e]\nkind = exec\ncommand = true\nschedule = calendar\non_calendar = daily\n"
                  "start_limit = 1/1s\n", 6, "key 'start_limit' in [task.e]",
                  "not for schedule = calendar: the calendar paces its starts");
        parse_bad("[task.a]\nkind = sleep\nduration = 1s\nafter = b\n", 4, "key 'after' in [task.a]",
                  "no task 'b' in the config");
        parse_bad("[task.a]\nkind = sleep\nduration = 1s\nafter = b\n[task.b]\nkind = sleep\nduration = 1s\n"
                  "requires = c\n[task.c]\nkind = sleep\nduration = 1s\nafter = a\n",
                  12, "key 'after' in [task.c]", "a cycle: a -> b -> c -> a");
        parse_bad("[task.a]\nkind = sleep\nduration = 1s\nrequires = a\n", 4, "key 'requires' in [task.a]",
                  "a cycle: a -> a");
        parse_bad("[task.e]\nkind = exec\nshell = yes\n", 1, "section [task.e]: missing key 'command'",
                  "required for kind exec");
        parse_bad("[task.e]\nkind = exec\ncommand =   \n", 3, "key 'command' in [task.e]", "no command");
        parse_bad("[task.e]\nkind = exec\ncommand = a\\\n", 3, "key 'command'", "a backslash at the end");
        parse_bad("[task.e]\nkind = exec\ncommand = true\noutput_burst = 5\n", 4, "key 'output_burst' in [task.e]",
                  "needs an 'output_rate'");
        parse_bad("[task.e]\nkind = exec\ncommand = true\noutput = discard\noutput_rate = 5/s\n", 5,
                  "key 'output_rate' in [task.e]", "output = discard logs nothing");
        parse_bad("[task.m]\nkind = module\n", 1, "section [task.m]: missing key 'path'", "required for kind module");
        parse_bad("[task.s]\nkind = sleep\nduration = 1s\narg.x = 1\n", 4, "key 'arg.*' in [task.s]",
                  "only for kind module");
        parse_bad("[task.m]\nkind = module\npath = /x.so\narg. = 1\n", 4, "key 'arg.' in [task.m]", "no KEY after");
        parse_bad("[task.m]\nkind = module\npath = /x.so\narg.x = 1\narg.x = 2\n", 5, "key 'arg.x' in [task.m]",
                  "set twice");
        /* A daemon that gives up root runs every job as itself, whichever
         * comes first in the file. */
        parse_bad("[daemon]\nuser = nobody\n[task.e]\nkind = exec\ncommand = true\nuser = daemon\n", 6,
                  "key 'user' in [task.e]", "jobs cannot switch users in a daemon that gives up root");
        parse_bad("[task.e]\nkind = exec\ncommand = true\ngroup = daemon\n[daemon]\ngroup = nogroup\n", 6,
                  "key 'group' in [daemon]", "[task.e] switches users");
}
END_TEST

/* ---- the table and the lists ---- */

START_TEST(table_is_whole) {
        for (size_t i = 0; i < evd_n_keys; i++) {
                const evd_key *k = &evd_keys[i];

                ck_assert_ptr_nonnull(k->type);
                ck_assert_ptr_nonnull(k->type->parse);
                ck_assert_msg(!k->record || k->type->show, "key '%s' is shown, and its type cannot show it",
                              k->name);
                ck_assert_msg(k->section == EVD_SECTION_DAEMON || k->kinds != 0, "key '%s' valid for no kind",
                              k->name);
                ck_assert_msg((k->required & ~k->kinds) == 0, "key '%s' required where it is not valid", k->name);
                ck_assert_ptr_eq(evd_key_find(k->section, k->name), k);
                /* An alias sets its key's field, by its key's type. */
                if (k->section == EVD_SECTION_TASK && evd_task_key(k->index) != k) {
                        const evd_key *of = evd_task_key(k->index);

                        ck_assert_uint_eq(k->offset, of->offset);
                        ck_assert_ptr_eq(k->type, of->type);
                        ck_assert_uint_eq(k->kinds, of->kinds);
                        ck_assert_ptr_null(k->record);
                }
        }
        ck_assert_uint_eq(evd_kind_names.n, EVD_KIND_COUNT);
        for (int id = 0; id < EVD_KIND_COUNT; id++) {
                ck_assert_ptr_nonnull(evd_kind_get(id));
                ck_assert_ptr_nonnull(evd_kind_get(id)->run);
                ck_assert_str_eq(evd_kind_name(id), evd_kind_names.names[id]);
        }
        ck_assert_str_eq(evd_kind_name(EVD_KIND_COUNT), "unknown");
}
END_TEST

/* The fields records show come from the rows that name one. */
START_TEST(fields_shown) {
        evd_config *c = parse_ok("[task.a]\nkind = sleep\nduration = 1s\nshield = yes\ndescription = a nap\n");
        evd_field f[EVD_TASK_KEY_COUNT];
        size_t n = evd_task_conf_fields(&c->tasks[0], f, EVD_TASK_KEY_COUNT), shown = 0;

        for (size_t i = 0; i < evd_n_keys; i++)
                shown += evd_keys[i].record != NULL;
        ck_assert_uint_ge(shown, 3);
        ck_assert_uint_ge(n, 3);
        ck_assert_str_eq(f[0].key, "kind");
        ck_assert_str_eq(f[0].str, "sleep");
        ck_assert_str_eq(f[1].key, "shielded");
        ck_assert_ptr_null(f[1].str);
        ck_assert_int_eq(f[1].num, 1);
        ck_assert_str_eq(f[2].key, "pausable");
        ck_assert_int_eq(f[2].num, 1);
        ck_assert_uint_eq(n, 4);
        ck_assert_str_eq(f[3].key, "description");
        ck_assert_str_eq(f[3].str, "a nap");
        /* No room: nothing past it is written. */
        ck_assert_uint_eq(evd_task_conf_fields(&c->tasks[0], f, 1), 1);
        evd_config_free(c);
        /* A text that is not set is not shown. */
        c = parse_ok("[task.a]\nkind = ticker\ndescription =\n");
        ck_assert_uint_eq(evd_task_conf_fields(&c->tasks[0], f, EVD_TASK_KEY_COUNT), 3);
        evd_config_free(c);
}
END_TEST

/* Copies are deep and equal; any key's change makes them differ. */
START_TEST(copy_equal_clear) {
        evd_config *c = parse_ok("[task.e]\nkind = exec\ncommand = a b\nenvironment = X=1\nuser = u\n"
                                 "[task.e2]\nkind = exec\ncommand = a  b\nenvironment = X=1\nuser = u\n"
                                 "[task.m]\nkind = module\npath = /m.so\narg.k = v\n"
                                 "[task.m2]\nkind = module\npath = /m.so\narg.k = w\n");
        evd_task_conf copy;

        for (size_t i = 0; i < c->n_tasks; i++) {
                ck_assert_int_eq(evd_task_conf_copy(&copy, &c->tasks[i]), 0);
                ck_assert(evd_task_conf_equal(&copy, &c->tasks[i]));
                ck_assert_ptr_ne(copy.name, c->tasks[i].name);
                if (c->tasks[i].argv)
                        ck_assert_ptr_ne(copy.argv, c->tasks[i].argv);
                if (c->tasks[i].args)
                        ck_assert_ptr_ne(copy.args, c->tasks[i].args);
                copy.line = 999; /* where it was written does not count */
                ck_assert(evd_task_conf_equal(&copy, &c->tasks[i]));
                evd_task_conf_clear(&copy);
                ck_assert_ptr_null(copy.name);
                ck_assert_ptr_null(copy.argv);
                evd_task_conf_clear(&copy);
        }
        /* The same words written otherwise are another setting. */
        free(c->tasks[1].name);
        c->tasks[1].name = strdup("e");
        ck_assert(!evd_task_conf_equal(&c->tasks[0], &c->tasks[1]));
        free(c->tasks[3].name);
        c->tasks[3].name = strdup("m");
        ck_assert(!evd_task_conf_equal(&c->tasks[2], &c->tasks[3]));
        evd_config_free(c);
}
END_TEST

/* A reload applies the live keys (description) without a restart. */
START_TEST(live_keys) {
        evd_config *c = parse_ok("[task.a]\nkind = sleep\nduration = 1s\ndescription = old\n"
                                 "[task.b]\nkind = sleep\nduration = 1s\ndescription = new\n"
                                 "[task.c]\nkind = sleep\nduration = 2s\ndescription = new\n"
                                 "[task.d]\nkind = sleep\nduration = 1s\n");
        evd_task_conf a;
        char keys[64];

        /* The names differ too: compare b, c and d under a's name. */
        for (size_t i = 1; i < c->n_tasks; i++) {
                free(c->tasks[i].name);
                c->tasks[i].name = strdup("a");
        }
        ck_assert(evd_task_conf_same_run(&c->tasks[0], &c->tasks[1]));
        ck_assert(!evd_task_conf_equal(&c->tasks[0], &c->tasks[1]));
        ck_assert(!evd_task_conf_same_run(&c->tasks[0], &c->tasks[2]));
        ck_assert(evd_task_conf_same_run(&c->tasks[0], &c->tasks[3]));

        ck_assert_int_eq(evd_task_conf_copy(&a, &c->tasks[0]), 0);
        ck_assert_int_eq(evd_task_conf_take_live(&a, &c->tasks[1], keys, sizeof(keys)), 0);
        ck_assert_str_eq(keys, " description");
        ck_assert_str_eq(a.description, "new");
        ck_assert_ptr_ne(a.description, c->tasks[1].description);
        ck_assert(evd_task_conf_equal(&a, &c->tasks[1]));
        ck_assert_int_eq(evd_task_conf_take_live(&a, &c->tasks[3], keys, sizeof(keys)), 0);
        ck_assert_ptr_null(a.description);
        evd_task_conf_clear(&a);
        evd_config_free(c);
}
END_TEST

/* after and requires: the names in order, live for a reload; ready's
 * default follows the schedule. */
START_TEST(order_values) {
        evd_config *c = parse_ok("[task.a]\nkind = sleep\nduration = 1s\nafter = b  c\nrequires = b\n"
                                 "[task.b]\nkind = exec\ncommand = true\n"
                                 "[task.c]\nkind = exec\ncommand = true\nschedule = always\n"
                                 "[task.d]\nkind = exec\ncommand = true\nready = notify\nafter = a\n");
        evd_task_conf a;
        char keys[64];

        ck_assert_str_eq(c->tasks[0].after[0], "b");
        ck_assert_str_eq(c->tasks[0].after[1], "c");
        ck_assert_ptr_null(c->tasks[0].after[2]);
        ck_assert_str_eq(c->tasks[0].requires[0], "b");
        ck_assert_ptr_null(c->tasks[1].after);
        ck_assert_int_eq(c->tasks[1].ready, EVD_READY_EXITED);
        ck_assert_int_eq(c->tasks[2].ready, EVD_READY_STARTED);
        ck_assert_int_eq(c->tasks[3].ready, EVD_READY_NOTIFY);
        /* A reload that changes only the order keeps the task running. */
        ck_assert_int_eq(evd_task_conf_copy(&a, &c->tasks[0]), 0);
        evd_strv_free(a.after);
        a.after = NULL;
        ck_assert(evd_task_conf_same_run(&a, &c->tasks[0]));
        ck_assert_int_eq(evd_task_conf_take_live(&a, &c->tasks[0], keys, sizeof(keys)), 0);
        ck_assert_str_eq(keys, " after");
        ck_assert(evd_task_conf_equal(&a, &c->tasks[0]));
        evd_task_conf_clear(&a);
        evd_config_free(c);
}
END_TEST

START_TEST(daemon_changes_named) {
        evd_config *a = parse_ok("[daemon]\ndrain_timeout = 5s\nlog = json\nuser = x\n");
        evd_config *b = parse_ok("[daemon]\ndrain_timeout = 6s\nlog = json\nuser = y\nthreads = 2\n");
        char buf[256];

        evd_config_daemon_changes(a, b, buf, sizeof(buf));
        ck_assert_str_eq(buf, " drain_timeout threads user");
        evd_config_daemon_changes(a, a, buf, sizeof(buf));
        ck_assert_str_eq(buf, "");
        evd_config_free(a);
        evd_config_free(b);
}
END_TEST

/* ---- evtaskd.conf(5) ---- */

/* The keys a man page section documents, as " a b c ". */
struct documented {
        char daemon[1024];      /* under .SH [daemon] */
        char task[1024];        /* under .SH [task.NAME], before any .SS */
        char kind[EVD_KIND_COUNT][1024]; /* under .SS kind = NAME */
};

static void add_word(char *set, size_t size, const char *word, size_t len) {
        size_t n = strlen(set);

        snprintf(set + n, size - n, "%s%.*s ", n ? "" : " ", (int) len, word);
}

static void read_man_page(const char *path, struct documented *d) {
        FILE *f = fopen(path, "r");
        char line[1024], *set = NULL;

        ck_assert_msg(f != NULL, "cannot open %s", path);
        memset(d, 0, sizeof(*d));
        while (fgets(line, sizeof(line), f)) {
                if (strncmp(line, ".SH ", 4) == 0) {
                        set = strstr(line, "[daemon]") ? d->daemon : strstr(line, "[task.NAME]") ? d->task : NULL;
                } else if (strncmp(line, ".SS kind = ", 11) == 0) {
                        int id;

                        line[strcspn(line, "\n")] = '\0';
                        id = evd_names_find(&evd_kind_names, line + 11);
                        ck_assert_msg(id >= 0, "%s: a section for an unknown kind: %s", path, line);
                        set = d->kind[id];
                } else if (set && (strncmp(line, ".BI ", 4) == 0)) {
                        /* ".BI name= VALUE" or ".BI arg. KEY = VALUE" */
                        const char *w = line + 4;
                        size_t len = strcspn(w, "= ");

                        add_word(set, sizeof(d->daemon), w, len);
                }
        }
        fclose(f);
}

/* The keys of the table, as read_man_page writes them. */
static void table_keys(char *set, size_t size, enum evd_section section, unsigned kinds_exactly) {
        set[0] = '\0';
        for (size_t i = 0; i < evd_n_keys; i++)
                if (evd_keys[i].section == section &&
                    (section == EVD_SECTION_DAEMON || evd_keys[i].kinds == kinds_exactly ||
                     (kinds_exactly != EVD_ANY_KIND && evd_keys[i].kinds != EVD_ANY_KIND &&
                      (evd_keys[i].kinds & kinds_exactly))))
                        add_word(set, size, evd_keys[i].name, strlen(evd_keys[i].name));
}

/* The same words, in any order: " a b " and " b a ". */
static bool same_words(const char *a, const char *b) {
        size_t na = 0, nb = 0;

        for (const char *w = a; (w = strchr(w, ' ')) && w[1]; w++) {
                char word[128];

                na++;
                snprintf(word, sizeof(word), " %.*s ", (int) strcspn(w + 1, " "), w + 1);
                if (!strstr(b, word))
                        return false;
        }
        for (const char *w = b; (w = strchr(w, ' ')) && w[1]; w++)
                nb++;
        return na == nb;
}

START_TEST(man_page_documents_the_keys) {
        const char *path = getenv("EVTASKD_CONF_MAN");
        struct documented d;
        char want[1024];

        if (!path)
                path = "man/evtaskd.conf.5";
        read_man_page(path, &d);
        table_keys(want, sizeof(want), EVD_SECTION_DAEMON, 0);
        ck_assert_msg(same_words(d.daemon, want), "[daemon]: the page documents '%s', the table has '%s'", d.daemon,
                      want);
        table_keys(want, sizeof(want), EVD_SECTION_TASK, EVD_ANY_KIND);
        ck_assert_msg(same_words(d.task, want), "[task.NAME]: the page documents '%s', the table has '%s'", d.task,
                      want);
        for (int id = 0; id < EVD_KIND_COUNT; id++) {
                table_keys(want, sizeof(want), EVD_SECTION_TASK, EVD_KIND_BIT(id));
                if (id == EVD_KIND_MODULE)
                        add_word(want, sizeof(want), "arg.", 4); /* arg.KEY, not a key of the table */
                ck_assert_msg(same_words(d.kind[id], want), "kind = %s: the page documents '%s', the table has '%s'",
                              evd_kind_name(id), d.kind[id], want);
        }
}
END_TEST

Suite *evt_test_suite(void) {
        Suite *s = suite_create("conf_keys");
        TCase *tc;

        tc = tcase_create("keys");
        tcase_add_test(tc, every_key_has_a_case);
        tcase_add_test(tc, every_key_parses_and_refuses);
        tcase_add_test(tc, exec_and_module_values);
        suite_add_tcase(s, tc);

        tc = tcase_create("rules");
        tcase_add_test(tc, rules_between_keys);
        suite_add_tcase(s, tc);

        tc = tcase_create("table");
        tcase_add_test(tc, table_is_whole);
        tcase_add_test(tc, fields_shown);
        tcase_add_test(tc, copy_equal_clear);
        tcase_add_test(tc, daemon_changes_named);
        tcase_add_test(tc, live_keys);
        tcase_add_test(tc, order_values);
        suite_add_tcase(s, tc);

        tc = tcase_create("man");
        tcase_add_test(tc, man_page_documents_the_keys);
        suite_add_tcase(s, tc);
        return s;
}
