/* The daemon's small helpers: names tables (util.c), the name index
 * (name_index.c), command lines and program lookup (command.c), and user
 * and group lookup (identity.c). */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "command.h"
#include "identity.h"
#include "name_index.h"
#include "testutil.h"
#include "util.h"

START_TEST(names_tables) {
        static const char *const words[] = { "once", "interval", "always" };
        const evd_names t = { words, ARRAY_SIZE(words), "schedule" };
        char list[64];

        ck_assert_int_eq(evd_names_find(&t, "interval"), 1);
        ck_assert_int_eq(evd_names_find(&t, "Interval"), -1);
        evd_names_list(&t, list, sizeof(list));
        ck_assert_str_eq(list, "once, interval or always");
        evd_names_list(&(evd_names) { words, 1, "x" }, list, sizeof(list));
        ck_assert_str_eq(list, "once");
        evd_names_list(&t, list, 6);
        ck_assert_str_eq(list, "once,");
}
END_TEST

/* Many names in, every other out, the rest still found, in any order. */
START_TEST(name_index) {
        enum { N = 5000 };
        static char names[N][16];
        evd_name_index x = { 0 };
        uintptr_t v;

        ck_assert_int_eq(evd_name_index_get(&x, "a", &v), -ENOENT);
        evd_name_index_remove(&x, "a");
        for (int i = 0; i < N; i++) {
                snprintf(names[i], sizeof(names[i]), "task-%d", i);
                ck_assert_int_eq(evd_name_index_put(&x, names[i], (uintptr_t) i, NULL), 0);
        }
        v = 12345;
        ck_assert_int_eq(evd_name_index_put(&x, "task-7", 99, &v), -EEXIST);
        ck_assert_uint_eq(v, 7);
        for (int i = 0; i < N; i += 2)
                evd_name_index_remove(&x, names[i]);
        ck_assert_uint_eq(x.n, N / 2);
        for (int i = 0; i < N; i++) {
                int r = evd_name_index_get(&x, names[i], &v);

                if (i % 2) {
                        ck_assert_int_eq(r, 0);
                        ck_assert_uint_eq(v, (uintptr_t) i);
                } else {
                        ck_assert_int_eq(r, -ENOENT);
                }
        }
        /* Back in, with new values. */
        for (int i = 0; i < N; i += 2)
                ck_assert_int_eq(evd_name_index_put(&x, names[i], (uintptr_t) i + 1, NULL), 0);
        ck_assert_int_eq(evd_name_index_get(&x, "task-4000", &v), 0);
        ck_assert_uint_eq(v, 4001);
        evd_name_index_free(&x);
        ck_assert_uint_eq(x.n, 0);
        evd_name_index_free(&x);
}
END_TEST

static char **split_ok(const char *s) {
        char **argv = NULL, why[64];

        ck_assert_msg(evd_split_command(s, &argv, why, sizeof(why)) == 0, "'%s': %s", s, why);
        return argv;
}

START_TEST(split_words) {
        char **argv = split_ok("  a 'b c'\t\"d \\\"e\\\" \\$f\" g\\ h 'i'\"j\"k ''  ");
        char *want[] = { "a", "b c", "d \"e\" $f", "g h", "ijk", "", NULL };
        char **copy, why[64], **untouched = (char **) why;

        for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
                if (!want[i]) {
                        ck_assert_ptr_null(argv[i]);
                        break;
                }
                ck_assert_str_eq(argv[i], want[i]);
        }
        ck_assert_uint_eq(evd_strv_length(argv), 6);
        copy = evd_strv_copy(argv);
        ck_assert(evd_strv_equal(copy, argv));
        free(copy[5]);
        copy[5] = strdup("x");
        ck_assert(!evd_strv_equal(copy, argv));
        ck_assert(!evd_strv_equal(copy, NULL));
        ck_assert(evd_strv_equal(NULL, NULL));
        evd_strv_free(copy);
        evd_strv_free(argv);
        evd_strv_free(NULL);

        for (const char *const *bad = (const char *const[]) { "a 'b", "a \"b", "a\\", "", " \t ", NULL }; *bad;
             bad++) {
                argv = untouched;
                ck_assert_int_eq(evd_split_command(*bad, &argv, why, sizeof(why)), -EINVAL);
                ck_assert_ptr_eq(argv, untouched);
                ck_assert_uint_gt(strlen(why), 0);
        }
}
END_TEST

START_TEST(programs_found) {
        ck_assert(evd_program_found("sh"));
        ck_assert(evd_program_found("/bin/sh"));
        ck_assert(!evd_program_found("/bin"));
        ck_assert(!evd_program_found("evtask-no-such-program"));
        ck_assert(!evd_program_found("/etc/passwd")); /* not executable */
        setenv("PATH", "/nowhere:", 1);
        ck_assert(!evd_program_found("sh"));
        setenv("PATH", "/bin", 1);
        ck_assert(evd_program_found("sh"));
}
END_TEST

START_TEST(lookups) {
        struct passwd pw, *pwp = (struct passwd *) 1;
        struct group gr, *grp = (struct group *) 1;
        char buf[16384];

        ck_assert_int_eq(evd_lookup_user("root", &pw, buf, sizeof(buf), &pwp), 0);
        ck_assert_ptr_nonnull(pwp);
        ck_assert_uint_eq(pwp->pw_uid, 0);
        ck_assert_int_eq(evd_lookup_user("0", &pw, buf, sizeof(buf), &pwp), 0);
        ck_assert_str_eq(pwp->pw_name, "root");
        /* Numbers past the id type are no one. */
        ck_assert_int_eq(evd_lookup_user("4294967296", &pw, buf, sizeof(buf), &pwp), 0);
        ck_assert_ptr_null(pwp);
        ck_assert_int_eq(evd_lookup_user("4294967295", &pw, buf, sizeof(buf), &pwp), 0);
        ck_assert_ptr_null(pwp);
        ck_assert_int_eq(evd_lookup_user("evtask-no-such-user", &pw, buf, sizeof(buf), &pwp), 0);
        ck_assert_ptr_null(pwp);
        ck_assert_int_eq(evd_lookup_group("0", &gr, buf, sizeof(buf), &grp), 0);
        ck_assert_ptr_nonnull(grp);
        ck_assert_uint_eq(grp->gr_gid, 0);
        ck_assert_int_eq(evd_lookup_group("18446744073709551616", &gr, buf, sizeof(buf), &grp), 0);
        ck_assert_ptr_null(grp);
}
END_TEST

START_TEST(identities) {
        evd_identity id;
        char why[128];

        ck_assert_int_eq(evd_identity_get(NULL, NULL, &id, why, sizeof(why)), 0);
        ck_assert(!id.set_uid);
        ck_assert_uint_eq(id.uid, geteuid());
        evd_identity_clear(&id);

        ck_assert_int_eq(evd_identity_get("root", NULL, &id, why, sizeof(why)), 0);
        ck_assert(id.set_uid);
        ck_assert_uint_eq(id.uid, 0);
        ck_assert_uint_eq(id.gid, 0);
        ck_assert_int_ge(id.n_groups, 1);
        ck_assert_str_eq(id.env[0], "USER=root");
        ck_assert_str_eq(id.env[1], "LOGNAME=root");
        evd_identity_clear(&id);

        ck_assert_int_eq(evd_identity_get(NULL, "evtask-no-such-group", &id, why, sizeof(why)), -ENOENT);
        ck_assert_str_eq(why, "unknown group 'evtask-no-such-group'");
        evd_identity_clear(&id);
        ck_assert_int_eq(evd_identity_get("evtask-no-such-user", NULL, &id, why, sizeof(why)), -ENOENT);
        ck_assert_str_eq(why, "unknown user 'evtask-no-such-user'");
        evd_identity_clear(&id);
        /* Nothing to give up without a user or group. */
        ck_assert_int_eq(evd_identity_drop(NULL, NULL), 0);
}
END_TEST

Suite *evt_test_suite(void) {
        Suite *s = suite_create("helpers");
        TCase *tc;

        tc = tcase_create("names");
        tcase_add_test(tc, names_tables);
        tcase_add_test(tc, name_index);
        suite_add_tcase(s, tc);

        tc = tcase_create("command");
        tcase_add_test(tc, split_words);
        tcase_add_test(tc, programs_found);
        suite_add_tcase(s, tc);

        tc = tcase_create("identity");
        tcase_add_test(tc, lookups);
        tcase_add_test(tc, identities);
        suite_add_tcase(s, tc);
        return s;
}
