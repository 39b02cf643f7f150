/* The host check of a parsed config (probe.c): users and groups that do
 * not exist, another user without root, programs not on $PATH, modules
 * that do not load; each named at its key's line, the earliest first. It
 * looks at this host as it is: root and its group exist everywhere, and
 * the names it invents do not. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "testutil.h"

#define NO_USER "evtask-test-no-such-user"
#define NO_GROUP "evtask-test-no-such-group"

static char err[512];

static evd_config *parse(const char *text) {
        evd_config *c = NULL;

        ck_assert_msg(evd_config_parse_string("test.conf", text, &c, err, sizeof(err)) == 0, "%s", err);
        return c;
}

static void probe_ok_at(int at, const char *text) {
        evd_config *c = parse(text);

        ck_assert_msg(evd_config_probe(c, err, sizeof(err)) == 0, "test line %d: %s", at, err);
        evd_config_free(c);
}
#define probe_ok(text) probe_ok_at(__LINE__, text)

static void probe_bad_at(int at, const char *text, unsigned line, const char *const *needles) {
        static evd_config sentinel;
        evd_config *c = parse(text), *out = &sentinel;
        char prefix[64];

        ck_assert_msg(evd_config_probe(c, err, sizeof(err)) == -EINVAL, "test line %d: the probe passed", at);
        snprintf(prefix, sizeof(prefix), "test.conf:%u: ", line);
        ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0, "test line %d: '%s' does not start with '%s'", at,
                      err, prefix);
        for (; *needles; needles++)
                ck_assert_msg(strstr(err, *needles), "test line %d: '%s' lacks '%s'", at, err, *needles);
        evd_config_free(c);
        /* Loading is parsing and probing: the same message, nothing out. */
        ck_assert_int_eq(evd_config_load_string("test.conf", text, NULL, &out, err, sizeof(err)), -EINVAL);
        ck_assert_ptr_eq(out, &sentinel);
        ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0, "test line %d: load says '%s'", at, err);
}
#define probe_bad(text, line, ...) probe_bad_at(__LINE__, text, line, (const char *const[]) { __VA_ARGS__, NULL })

START_TEST(programs) {
        probe_ok("[task.e]\nkind = exec\ncommand = /bin/sh -c true\n[task.f]\nkind = exec\ncommand = sh -c true\n");
        probe_bad("[task.e]\nkind = sleep\nduration = 1s\n[task.f]\nkind = exec\ncommand = no-such-program-xyz a\n", 6,
                  "key 'command' in [task.f]", "'no-such-program-xyz' is not an executable program on $PATH");
        probe_bad("[task.e]\nkind = exec\ncommand = /no/such/program\n", 3, "'/no/such/program' is not an executable");
        /* A directory is no program. */
        probe_bad("[task.e]\nkind = exec\ncommand = /tmp\n", 3, "'/tmp' is not an executable program");
        /* With shell = yes, the program is /bin/sh. */
        probe_ok("[task.e]\nkind = exec\nshell = yes\ncommand = no-such-program-xyz\n");
}
END_TEST

START_TEST(users_and_groups) {
        probe_bad("[task.e]\nkind = exec\ncommand = true\nuser = " NO_USER "\n", 4, "key 'user' in [task.e]",
                  "unknown user '" NO_USER "'");
        probe_bad("[task.e]\nkind = exec\ncommand = true\ngroup = " NO_GROUP "\n", 4, "key 'group' in [task.e]",
                  "unknown group '" NO_GROUP "'");
        probe_bad("[daemon]\nuser = " NO_USER "\n", 2, "key 'user' in [daemon]", "unknown user");
        /* A number past uid_t is no one, not a wrap to root. */
        probe_bad("[daemon]\nuser = 4294967296\n", 2, "unknown user '4294967296'");
        probe_bad("[daemon]\ngroup = 4294967296\n", 2, "unknown group '4294967296'");
        if (geteuid() == 0) {
                probe_ok("[daemon]\nuser = root\ngroup = 0\n");
                probe_ok("[task.e]\nkind = exec\ncommand = true\nuser = 0\ngroup = root\n");
        } else {
                char text[256];

                /* Naming itself is fine; another user is root's alone. */
                snprintf(text, sizeof(text), "[daemon]\nuser = %u\ngroup = %u\n", (unsigned) geteuid(),
                         (unsigned) getegid());
                probe_ok(text);
                probe_bad("[task.e]\nkind = exec\ncommand = true\nuser = root\n", 4, "'root' is uid 0",
                          "only a daemon running as root can switch to it");
        }
}
END_TEST

/* The path of this process's libc, from its memory map. */
static void libc_path(char *path, size_t size) {
        FILE *f = fopen("/proc/self/maps", "r");
        char line[1024];

        ck_assert_ptr_nonnull(f);
        path[0] = '\0';
        while (!path[0] && fgets(line, sizeof(line), f)) {
                char *p = strchr(line, '/');

                if (p && strstr(p, "/libc.so")) {
                        p[strcspn(p, "\n")] = '\0';
                        snprintf(path, size, "%s", p);
                }
        }
        fclose(f);
        ck_assert_msg(path[0], "no libc in /proc/self/maps");
}

START_TEST(modules) {
        char libc[512], text[1024];

        probe_bad("[task.m]\nkind = module\npath = /no/such/module.so\n", 3, "key 'path' in [task.m]", "cannot load");
        /* A shared object that is no module: libc, which every process has. */
        libc_path(libc, sizeof(libc));
        snprintf(text, sizeof(text), "[task.m]\nkind = module\n\npath = %s\n", libc);
        probe_bad(text, 4, "key 'path' in [task.m]", "is not an evtask module");
}
END_TEST

/* Several problems: the one on the earliest line is told, wherever the
 * [daemon] section is. */
START_TEST(earliest_first) {
        probe_bad("[task.a]\nkind = exec\ncommand = no-such-program-xyz\n"
                  "[task.b]\nkind = exec\ncommand = true\nuser = " NO_USER "\n",
                  3, "[task.a]", "no-such-program-xyz");
        probe_bad("[task.a]\nkind = exec\ncommand = true\nuser = " NO_USER "\n"
                  "[task.b]\nkind = exec\n\ncommand = no-such-program-xyz\n",
                  4, "[task.a]", "unknown user");
        probe_bad("[task.a]\nkind = exec\n\n\n\n\ncommand = no-such-program-xyz\n"
                  "[daemon]\nuser = " NO_USER "\n",
                  7, "[task.a]", "no-such-program-xyz");
        probe_bad("[daemon]\nuser = " NO_USER "\n"
                  "[task.a]\nkind = exec\ncommand = no-such-program-xyz\n",
                  2, "[daemon]", "unknown user");
}
END_TEST

START_TEST(message_buffer) {
        evd_config *c = parse("[task.e]\nkind = exec\ncommand = no-such-program-xyz\n");
        char small[8];

        ck_assert_int_eq(evd_config_probe(c, small, sizeof(small)), -EINVAL);
        ck_assert_str_eq(small, "test.co");
        ck_assert_int_eq(evd_config_probe(c, NULL, 0), -EINVAL);
        evd_config_free(c);
}
END_TEST

Suite *evt_test_suite(void) {
        Suite *s = suite_create("probe");
        TCase *tc = tcase_create("probe");

        tcase_add_test(tc, programs);
        tcase_add_test(tc, users_and_groups);
        tcase_add_test(tc, modules);
        tcase_add_test(tc, earliest_first);
        tcase_add_test(tc, message_buffer);
        suite_add_tcase(s, tc);
        return s;
}
