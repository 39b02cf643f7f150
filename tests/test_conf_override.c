/* [daemon] keys from outside the file (conf_override.c): --set KEY=VALUE
 * and EVTASKD_KEY=VALUE, their precedence over the file and each other,
 * the errors that name where a bad value came from, and the probe of a
 * value set that way. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "testutil.h"

#define SEC ((int64_t) 1000000000)
#define CONF "[daemon]\ndrain_timeout = 7s\nabandon_grace = 3s\n[task.a]\nkind = sleep\nduration = 1s\n"

static char err[768];

static evd_config *parse(const char *text) {
        evd_config *c = NULL;

        ck_assert_msg(evd_config_parse_string("test.conf", text, &c, err, sizeof(err)) == 0, "%s", err);
        return c;
}

START_TEST(arg_forms) {
        evd_overrides o = { 0 };

        ck_assert_int_eq(evd_overrides_add_arg(&o, "drain_timeout=5s", err, sizeof(err)), 0);
        ck_assert_int_eq(evd_overrides_add_arg(&o, "control_socket=/run/x=y", err, sizeof(err)), 0);
        ck_assert_int_eq(o.n, 2);
        ck_assert_str_eq(o.v[0].key->name, "drain_timeout");
        ck_assert_str_eq(o.v[0].value, "5s");
        ck_assert_str_eq(o.v[0].origin, "--set drain_timeout");
        ck_assert_str_eq(o.v[1].value, "/run/x=y");

        ck_assert_int_eq(evd_overrides_add_arg(&o, "drain_timeout", err, sizeof(err)), -EINVAL);
        ck_assert_str_eq(err, "--set: 'drain_timeout' is not KEY=VALUE");
        ck_assert_int_eq(evd_overrides_add_arg(&o, "=5s", err, sizeof(err)), -EINVAL);
        /* Only [daemon] keys; a task key is unknown here. */
        ck_assert_int_eq(evd_overrides_add_arg(&o, "duration=5s", err, sizeof(err)), -EINVAL);
        ck_assert_msg(strstr(err, "unknown [daemon] key 'duration'") && strstr(err, "drain_timeout"), "%s", err);
        ck_assert_int_eq(evd_overrides_add_arg(&o, "Drain_timeout=5s", err, sizeof(err)), -EINVAL);
        ck_assert_int_eq(o.n, 2);
        evd_overrides_free(&o);
        evd_overrides_free(&o);
        evd_overrides_free(NULL);
}
END_TEST

START_TEST(env_forms) {
        char *env[] = { "PATH=/bin", "EVTASKD_DRAIN_TIMEOUT=5s", "EVTASKD_drain_timeout=6s", "EVTASKD_NOPE=1",
                        "EVTASKD_=2", "EVTASKD_STACK_SIZE", "XEVTASKD_LOG=json", "EVTASKD_LOG=json", NULL };
        evd_overrides o = { 0 };

        ck_assert_int_eq(evd_overrides_add_env(&o, env), 0);
        ck_assert_int_eq(o.n, 2);
        ck_assert_str_eq(o.v[0].key->name, "drain_timeout");
        ck_assert_str_eq(o.v[0].origin, "environment EVTASKD_DRAIN_TIMEOUT");
        ck_assert(o.v[0].from_env);
        ck_assert_str_eq(o.v[1].key->name, "log");
        ck_assert_str_eq(o.unknown, " EVTASKD_drain_timeout EVTASKD_NOPE EVTASKD_");
        evd_overrides_free(&o);
}
END_TEST

/* Command line over environment over file, whatever order they came in. */
START_TEST(precedence) {
        char *env[] = { "EVTASKD_DRAIN_TIMEOUT=5s", "EVTASKD_EXIT_WHEN_DONE=yes", NULL };
        evd_overrides o = { 0 };
        evd_config *c = parse(CONF);
        char list[256];

        ck_assert_int_eq(evd_overrides_add_arg(&o, "drain_timeout=2s", err, sizeof(err)), 0);
        ck_assert_int_eq(evd_overrides_add_arg(&o, "drain_timeout=4s", err, sizeof(err)), 0);
        ck_assert_int_eq(evd_overrides_add_env(&o, env), 0);
        ck_assert_int_eq(evd_config_apply_overrides(c, &o, err, sizeof(err)), 0);
        ck_assert_int_eq(c->drain_timeout, 4 * SEC);    /* the last --set */
        ck_assert(c->exit_when_done);                   /* the environment's */
        ck_assert_int_eq(c->abandon_grace, 3 * SEC);    /* the file's */
        ck_assert_int_eq(c->key_line[EVD_KEY_drain_timeout], 0);
        ck_assert_str_eq(c->origin[EVD_KEY_drain_timeout], "--set drain_timeout");
        ck_assert_ptr_null(c->origin[EVD_KEY_abandon_grace]);
        evd_config_overrides_list(c, list, sizeof(list));
        ck_assert_str_eq(list, " drain_timeout (--set drain_timeout),"
                               " exit_when_done (environment EVTASKD_EXIT_WHEN_DONE)");
        evd_config_key_where(c, EVD_KEY_drain_timeout, list, sizeof(list));
        ck_assert_str_eq(list, "--set drain_timeout");
        evd_config_key_where(c, EVD_KEY_abandon_grace, list, sizeof(list));
        ck_assert_str_eq(list, "test.conf:3");
        evd_config_free(c);
        evd_overrides_free(&o);
}
END_TEST

/* A string value replaces the file's (which is freed: valgrind), and a
 * reload's config, overridden the same way, shows no [daemon] change. */
START_TEST(strings_and_reload) {
        evd_overrides o = { 0 };
        evd_config *a = parse("[daemon]\ncontrol_socket = /run/a.sock\n"), *b = parse("[daemon]\n");
        char changes[256];

        ck_assert_int_eq(evd_overrides_add_arg(&o, "control_socket=/run/b.sock", err, sizeof(err)), 0);
        ck_assert_int_eq(evd_config_apply_overrides(a, &o, err, sizeof(err)), 0);
        ck_assert_int_eq(evd_config_apply_overrides(b, &o, err, sizeof(err)), 0);
        ck_assert_str_eq(a->control_socket, "/run/b.sock");
        evd_config_daemon_changes(a, b, changes, sizeof(changes));
        ck_assert_str_eq(changes, "");
        ck_assert_int_eq(evd_config_apply_overrides(a, NULL, err, sizeof(err)), 0);
        evd_config_free(a);
        evd_config_free(b);
        evd_overrides_free(&o);
}
END_TEST

/* A bad value gets the message the file's would, under its origin, and
 * leaves the config as it was. */
START_TEST(bad_values) {
        char *env[] = { "EVTASKD_DRAIN_TIMEOUT=0", NULL };
        evd_overrides o = { 0 };
        evd_config *c = parse(CONF);

        ck_assert_int_eq(evd_overrides_add_arg(&o, "drain_timeout=5x", err, sizeof(err)), 0);
        ck_assert_int_eq(evd_config_apply_overrides(c, &o, err, sizeof(err)), -EINVAL);
        ck_assert_str_eq(err, "--set drain_timeout: key 'drain_timeout' in [daemon]: '5x' is not a duration"
                              " (for example 250ms, 10s, 1.5s, 5min, 1h)");
        ck_assert_int_eq(c->drain_timeout, 7 * SEC);
        evd_overrides_free(&o);

        ck_assert_int_eq(evd_overrides_add_env(&o, env), 0);
        ck_assert_int_eq(evd_config_apply_overrides(c, &o, err, sizeof(err)), -EINVAL);
        ck_assert_str_eq(err, "environment EVTASKD_DRAIN_TIMEOUT: key 'drain_timeout' in [daemon]:"
                              " must be more than 0, not 0");
        evd_overrides_free(&o);

        /* The rules between keys hold as in the file. */
        evd_config_free(c);
        c = parse("[task.a]\nkind = exec\ncommand = /bin/true\nuser = nobody\n");
        ck_assert_int_eq(evd_overrides_add_arg(&o, "user=nobody", err, sizeof(err)), 0);
        ck_assert_int_eq(evd_config_apply_overrides(c, &o, err, sizeof(err)), -EINVAL);
        ck_assert_msg(strncmp(err, "--set user: key 'user' in [daemon]: [task.a] switches users", 59) == 0, "%s",
                      err);
        evd_config_free(c);
        evd_overrides_free(&o);
}
END_TEST

/* The probe names the origin of a value set outside the file, and the
 * whole load (parse, overrides, probe) fails with it. */
START_TEST(probe_origin) {
        evd_overrides o = { 0 };
        evd_config *c = NULL;

        ck_assert_int_eq(evd_overrides_add_arg(&o, "user=no-such-user-here", err, sizeof(err)), 0);
        ck_assert_int_eq(evd_config_load_string("test.conf", "[daemon]\ngroup = no-such-group-here\n", &o, &c, err,
                                                sizeof(err)),
                         -EINVAL);
        ck_assert_ptr_null(c);
        ck_assert_str_eq(err, "--set user: key 'user' in [daemon]: unknown user 'no-such-user-here'");
        evd_overrides_free(&o);
}
END_TEST

Suite *evt_test_suite(void) {
        Suite *s = suite_create("conf_override");
        TCase *tc = tcase_create("override");

        tcase_add_test(tc, arg_forms);
        tcase_add_test(tc, env_forms);
        tcase_add_test(tc, precedence);
        tcase_add_test(tc, strings_and_reload);
        tcase_add_test(tc, bad_values);
        tcase_add_test(tc, probe_origin);
        suite_add_tcase(s, tc);
        return s;
}
