/* An exec run's surroundings (exec_spawn.c, exec_output.c): the
 * environment a command gets, and how its output lines are shown. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec_output.h"
#include "exec_spawn.h"
#include "testutil.h"

/* The entries of env as one string, "A=1 B=2". */
static const char *joined(char **env) {
        static char buf[1024];
        size_t len = 0;

        buf[0] = '\0';
        for (char **e = env; *e; e++)
                len += (size_t) snprintf(buf + len, sizeof(buf) - len, "%s%s", len ? " " : "", *e);
        return buf;
}

START_TEST(environment_cleaned) {
        char *base[] = {
                "PATH=/bin", "NOTIFY_SOCKET=/run/systemd/notify", "WATCHDOG_USEC=1000", "WATCHDOG_PID=1",
                "JOURNAL_STREAM=8:9", "LISTEN_FDS=2", "LISTEN_PID=1", "LISTEN_FDNAMES=a:b", "HOME=/root",
                "NOTIFY_SOCKETS=kept", "LANG=C", "CREDENTIALS_DIRECTORY=/run/credentials/evtaskd.service",
                "MAINPID=7", "MONITOR_SERVICE_RESULT=exit-code", "TRIGGER_UNIT=a.timer", NULL,
        };
        evd_identity same = { 0 };
        char **env = evd_exec_environment(base, NULL, &same);

        ck_assert_ptr_nonnull(env);
        /* What is the daemon's own goes (finding 13 of issue 18: the
         * daemon's credentials); the rest stays, in order. */
        ck_assert_str_eq(joined(env), "PATH=/bin HOME=/root NOTIFY_SOCKETS=kept LANG=C");
        free(env);
}
END_TEST

START_TEST(environment_overrides) {
        char *base[] = { "PATH=/bin", "LANG=C", "LANGUAGE=en", NULL };
        char *job[] = { "LANG=de_DE.UTF-8", "NEW=1", "PATH=/usr/bin:/bin", NULL };
        evd_identity same = { 0 };
        char **env = evd_exec_environment(base, job, &same);

        /* A job's entry replaces the daemon's of the same name only. */
        ck_assert_str_eq(joined(env), "LANGUAGE=en LANG=de_DE.UTF-8 NEW=1 PATH=/usr/bin:/bin");
        ck_assert_ptr_eq(env[1], job[0]); /* borrowed, not copied */
        free(env);
}
END_TEST

START_TEST(environment_of_a_user) {
        char *base[] = { "PATH=/bin", "USER=root", "LOGNAME=root", "HOME=/root", "SHELL=/bin/bash", "TERM=xterm",
                         "XDG_RUNTIME_DIR=/run/user/0", "SUDO_USER=admin", "DBUS_SESSION_BUS_ADDRESS=unix:x", NULL };
        char *job[] = { "HOME=/srv/job", NULL };
        evd_identity id = { .set_uid = true,
                            .env = { strdup("USER=app"), strdup("LOGNAME=app"), strdup("HOME=/home/app"),
                                     strdup("SHELL=/bin/sh") } };
        char **env = evd_exec_environment(base, job, &id);

        /* The daemon's user goes (finding 13 of issue 18: root's runtime
         * directory and session bus), the run's comes, the job's wins. */
        ck_assert_str_eq(joined(env), "PATH=/bin TERM=xterm USER=app LOGNAME=app SHELL=/bin/sh HOME=/srv/job");
        free(env);
        /* Without a user to switch to, the daemon's stay. */
        id.set_uid = false;
        env = evd_exec_environment(base, NULL, &id);
        ck_assert_str_eq(joined(env), "PATH=/bin USER=root LOGNAME=root HOME=/root SHELL=/bin/bash TERM=xterm "
                                      "XDG_RUNTIME_DIR=/run/user/0 SUDO_USER=admin DBUS_SESSION_BUS_ADDRESS=unix:x");
        free(env);
        evd_identity_clear(&id);
        ck_assert_ptr_null(id.env[0]);
}
END_TEST

START_TEST(environment_empty) {
        evd_identity same = { 0 };
        char **env = evd_exec_environment(NULL, NULL, &same);

        ck_assert_ptr_nonnull(env);
        ck_assert_ptr_null(env[0]);
        free(env);
}
END_TEST

static const char *escaped(const char *p, size_t n) {
        static char out[4 * 64 + 1];

        ck_assert_uint_le(n, 64);
        ck_assert_uint_eq(evd_output_escape(p, n, out, sizeof(out) - 1, NULL), strlen(out));
        return out;
}

START_TEST(output_escaped) {
#define ESCAPED(s) escaped(s, sizeof(s) - 1)
        ck_assert_str_eq(ESCAPED("plain text\twith a tab"), "plain text\twith a tab");
        ck_assert_str_eq(ESCAPED("bell\a cr\r esc\x1b[31m del\x7f"), "bell\\x07 cr\\x0d esc\\x1b[31m del\\x7f");
        ck_assert_str_eq(ESCAPED("nul\0byte"), "nul\\x00byte");
        /* UTF-8 stays; what is not UTF-8 is shown byte by byte. */
        ck_assert_str_eq(ESCAPED("caf\xc3\xa9 \xf0\x9f\x90\x87"), "caf\xc3\xa9 \xf0\x9f\x90\x87");
        ck_assert_str_eq(ESCAPED("bad \xff \xc3 \xe2\x82"), "bad \\xff \\xc3 \\xe2\\x82");
        ck_assert_str_eq(ESCAPED(""), "");
        /* Issue 18, finding 6: the text \x01 and the byte 0x01 differ; C1
         * controls (U+009B is a terminal's CSI) are escaped as C0 ones are. */
        ck_assert_str_eq(ESCAPED("\\x01"), "\\\\x01");
        ck_assert_str_eq(ESCAPED("\x01"), "\\x01");
        ck_assert_str_eq(ESCAPED("csi \xc2\x9b" "31m nel \xc2\x85 nbsp \xc2\xa0"),
                         "csi \\xc2\\x9b31m nel \\xc2\\x85 nbsp \xc2\xa0");
#undef ESCAPED
}
END_TEST

/* Issue 18, finding 2: escaping stops at max, at a character's end, and
 * says how much it took: the rest goes in the next record. */
START_TEST(output_escape_bounded) {
        char out[16];
        size_t used;

        ck_assert_uint_eq(evd_output_escape("\x01\x01\x01\x01\x01", 5, out, 10, &used), 8);
        ck_assert_uint_eq(used, 2);
        ck_assert_str_eq(out, "\\x01\\x01");
        ck_assert_uint_eq(evd_output_escape("ab\xc3\xa9", 4, out, 3, &used), 2);
        ck_assert_uint_eq(used, 2);
        ck_assert_uint_eq(evd_output_escape("ab\xc3\xa9", 4, out, 4, &used), 4);
        ck_assert_uint_eq(used, 4);
}
END_TEST

Suite *evt_test_suite(void) {
        Suite *s = suite_create("exec");
        TCase *tc;

        tc = tcase_create("environment");
        tcase_add_test(tc, environment_cleaned);
        tcase_add_test(tc, environment_overrides);
        tcase_add_test(tc, environment_of_a_user);
        tcase_add_test(tc, environment_empty);
        suite_add_tcase(s, tc);

        tc = tcase_create("output");
        tcase_add_test(tc, output_escaped);
        tcase_add_test(tc, output_escape_bounded);
        suite_add_tcase(s, tc);
        return s;
}
