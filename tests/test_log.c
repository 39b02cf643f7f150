/* The log sinks (log.c): a record as JSON and as a console line, with
 * every byte a task may put in a message, a name or a field escaped so
 * that a record stays one line and valid JSON; cut records; the event and
 * sink names. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "testutil.h"

static evd_log *log_new(enum evd_log_target target) {
        evd_log *log = NULL;

        ck_assert_int_eq(evd_log_new(target, &log), 0);
        ck_assert_ptr_nonnull(log);
        ck_assert_int_eq(evd_log_get_target(log), target);
        return log;
}

/* The record as the sink writes it, asserted to be one whole line. */
static const char *format(evd_log *log, evd_event event, const char *task, const evd_field *f, size_t n,
                          const char *msg) {
        static char buf[4096];
        int len = evd_log_format(log, buf, sizeof(buf), LOG_INFO, event, task, f, n, msg);

        ck_assert_int_gt(len, 0);
        ck_assert_uint_eq(strlen(buf), (size_t) len);
        ck_assert_msg(buf[len - 1] == '\n' && !memchr(buf, '\n', (size_t) len - 1), "not one line: '%s'", buf);
        return buf;
}

static void assert_has(const char *rec, const char *needle) {
        ck_assert_msg(strstr(rec, needle), "'%s' lacks '%s'", rec, needle);
}

/* No byte below 0x20 but '\n' at the end, and no DEL. */
static void assert_printable(const char *rec) {
        for (const unsigned char *p = (const unsigned char *) rec; *p; p++)
                ck_assert_msg((*p >= 0x20 && *p != 0x7f) || (*p == '\n' && !p[1]), "byte 0x%02x at %zu of '%s'", *p,
                              (size_t) (p - (const unsigned char *) rec), rec);
}

START_TEST(json_escapes) {
        evd_log *log = log_new(EVD_LOG_JSON);
        const char *rec = format(log, EVD_EV_OUTPUT, "a\"b\\c",
                                 EVD_FIELDS(EVD_STR("stream", "x\ny"), EVD_NUM("pid", -42)),
                                 "quote \" backslash \\ newline \n tab \t ctl \x01\x1f del \x7f");

        assert_printable(rec);
        ck_assert_msg(strncmp(rec, "{\"ts\":\"", 7) == 0, "'%s'", rec);
        assert_has(rec, "\"level\":\"info\"");
        assert_has(rec, "\"event\":\"output\"");
        assert_has(rec, "\"task\":\"a\\\"b\\\\c\"");
        assert_has(rec, "\"msg\":\"quote \\\" backslash \\\\ newline \\n tab \\t ctl \\u0001\\u001f del \\u007f\"");
        assert_has(rec, "\"stream\":\"x\\ny\"");
        assert_has(rec, "\"pid\":-42}");
        /* No task: null. */
        rec = format(log, EVD_EV_STARTED, NULL, EVD_NO_FIELDS, "m");
        assert_has(rec, "\"task\":null,\"msg\":\"m\"}");
        evd_log_free(log);
}
END_TEST

/* UTF-8 stays as it is; a byte that is not UTF-8 becomes U+FFFD. */
START_TEST(json_utf8) {
        evd_log *log = log_new(EVD_LOG_JSON);
        const char *rec = format(log, EVD_EV_STEP, "t", EVD_NO_FIELDS,
                                 "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\x87 bad \xff \xc3 \xed\xa0");

        assert_has(rec, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\x87 bad \\ufffd \\ufffd ");
        evd_log_free(log);
}
END_TEST

/* A message too long for a record is cut inside its quotes, at a
 * character, and the record stays valid JSON with its fields. */
START_TEST(json_cut) {
        evd_log *log = log_new(EVD_LOG_JSON);
        char msg[3600], *long_field = malloc(1000);
        const char *rec;
        size_t len;

        memset(msg, 'x', sizeof(msg) - 1);
        msg[sizeof(msg) - 1] = '\0';
        memcpy(msg + 1500, "\xe2\x82\xac", 3);
        memcpy(msg + 3000, "\xe2\x82\xac", 3);
        rec = format(log, EVD_EV_STEP, "t", EVD_FIELDS(EVD_NUM("n", 1)), msg);
        assert_has(rec, "...\",\"n\":1}");
        len = strlen(rec);
        ck_assert_uint_lt(len, 4096);
        evd_log_free(log);

        ck_assert_ptr_nonnull(long_field);
        memset(long_field, '"', 999);
        long_field[999] = '\0';
        log = log_new(EVD_LOG_JSON);
        rec = format(log, EVD_EV_STEP, "t", EVD_FIELDS(EVD_STR("f", long_field)), "m");
        assert_has(rec, "\"f\":\"\\\"\\\"");
        assert_has(rec, "...\"}");
        evd_log_free(log);
        free(long_field);
}
END_TEST

START_TEST(console_line) {
        evd_log *log = log_new(EVD_LOG_CONSOLE);
        const char *rec = format(log, EVD_EV_CANCELLED, "worker-1", EVD_FIELDS(EVD_NUM("ms", 5)), "cancelled");

        if (!isatty(STDERR_FILENO))
                ck_assert_str_eq(rec, "<6>[worker-1] cancelled: cancelled\n");
        else
                assert_has(rec, " [worker-1] cancelled: cancelled\n");
        rec = format(log, EVD_EV_DRAINED, NULL, EVD_NO_FIELDS, "every task has ended");
        assert_has(rec, "drained: every task has ended\n");
        ck_assert(!strchr(rec, '['));
        evd_log_free(log);
}
END_TEST

/* A record longer than the buffer is cut, and is still one line; a
 * buffer too small even for that is an error. */
START_TEST(console_cut) {
        evd_log *log = log_new(EVD_LOG_CONSOLE);
        char small[64], tiny[4], msg[256];
        int len;

        memset(msg, 'y', sizeof(msg) - 1);
        msg[sizeof(msg) - 1] = '\0';
        len = evd_log_format(log, small, sizeof(small), LOG_WARNING, EVD_EV_STEP, "t", EVD_NO_FIELDS, msg);
        ck_assert_int_gt(len, 0);
        ck_assert_int_lt(len, (int) sizeof(small));
        ck_assert_msg(strcmp(small + len - 4, "...\n") == 0, "'%s'", small);
        ck_assert_ptr_null(memchr(small, '\n', (size_t) len - 1));
        len = evd_log_format(log, tiny, sizeof(tiny), LOG_WARNING, EVD_EV_STEP, "t", EVD_NO_FIELDS, msg);
        ck_assert_int_eq(len, -ENOSPC);
        evd_log_free(log);
}
END_TEST

/* evd_log_emit writes each record with one write, whole, to its fd. */
START_TEST(emit_writes_one_line) {
        evd_log *log = log_new(EVD_LOG_JSON);
        int fds[2], saved = dup(STDOUT_FILENO);
        char buf[8192];
        ssize_t n;

        ck_assert_int_eq(pipe(fds), 0);
        ck_assert_int_eq(dup2(fds[1], STDOUT_FILENO), STDOUT_FILENO);
        evd_log_emit(log, LOG_NOTICE, EVD_EV_SIGNAL, NULL, EVD_FIELDS(EVD_STR("signal", "SIGINT")), "%s: %s",
                     "SIGINT", "pause");
        dup2(saved, STDOUT_FILENO);
        close(saved);
        close(fds[1]);
        n = read(fds[0], buf, sizeof(buf) - 1);
        close(fds[0]);
        ck_assert_int_gt(n, 0);
        buf[n] = '\0';
        assert_has(buf, "\"level\":\"notice\",\"event\":\"signal\",\"task\":null,\"msg\":\"SIGINT: pause\","
                        "\"signal\":\"SIGINT\"}\n");
        evd_log_free(log);
}
END_TEST

/* Reads a pipe slowly, to its end, counting lines. */
static void *slow_reader(void *arg) {
        int fd = *(int *) arg;
        char buf[512];
        ssize_t n;
        long lines = 0;

        while ((n = read(fd, buf, sizeof(buf))) > 0) {
                for (ssize_t i = 0; i < n; i++)
                        lines += buf[i] == '\n';
                usleep(200);
        }
        return (void *) lines;
}

/* Issue 18, finding 3: stdout non-blocking and read slowly; no record is
 * lost on EAGAIN. */
START_TEST(emit_nonblocking_loses_nothing) {
        evd_log *log = log_new(EVD_LOG_JSON);
        int fds[2], saved = dup(STDOUT_FILENO);
        pthread_t reader;
        void *lines;

        ck_assert_int_eq(pipe(fds), 0);
        ck_assert_int_eq(fcntl(fds[1], F_SETFL, O_NONBLOCK), 0);
        ck_assert_int_eq(dup2(fds[1], STDOUT_FILENO), STDOUT_FILENO);
        close(fds[1]);
        ck_assert_int_eq(pthread_create(&reader, NULL, slow_reader, &fds[0]), 0);
        for (int i = 0; i < 2000; i++)
                evd_log_emit(log, LOG_INFO, EVD_EV_OUTPUT, "t", EVD_NO_FIELDS, "line %d", i);
        evd_log_free(log);
        dup2(saved, STDOUT_FILENO);
        close(saved);
        pthread_join(reader, &lines);
        close(fds[0]);
        ck_assert_int_eq((long) lines, 2000);
}
END_TEST

START_TEST(names) {
        ck_assert_str_eq(evd_event_name(EVD_EV_TASK_TABLE), "task-table");
        ck_assert_str_eq(evd_event_name(EVD_EVENT_COUNT), "unknown");
        for (int i = 0; i < EVD_EVENT_COUNT; i++) {
                const char *a = evd_event_name(i);

                ck_assert_msg(a && a[0] && strspn(a, "abcdefghijklmnopqrstuvwxyz-") == strlen(a), "event %d: '%s'",
                              i, a);
                for (int j = 0; j < i; j++)
                        ck_assert_str_ne(a, evd_event_name(j));
        }
        ck_assert_int_eq(evd_names_find(&evd_log_target_names, "journal"), EVD_LOG_JOURNAL);
        ck_assert_int_eq(evd_names_find(&evd_log_target_names, "syslog"), -1);
}
END_TEST

Suite *evt_test_suite(void) {
        Suite *s = suite_create("log");
        TCase *tc;

        tc = tcase_create("json");
        tcase_add_test(tc, json_escapes);
        tcase_add_test(tc, json_utf8);
        tcase_add_test(tc, json_cut);
        suite_add_tcase(s, tc);

        tc = tcase_create("console");
        tcase_add_test(tc, console_line);
        tcase_add_test(tc, console_cut);
        suite_add_tcase(s, tc);

        tc = tcase_create("emit");
        tcase_add_test(tc, emit_writes_one_line);
        tcase_add_test(tc, emit_nonblocking_loses_nothing);
        tcase_add_test(tc, names);
        suite_add_tcase(s, tc);
        return s;
}
