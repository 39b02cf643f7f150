/* Calendar expressions (calendar.c): what the parser takes and the column
 * its refusals name, and the next run in a zone, with TZ set per case:
 * month ends, leap days, weekdays with days, year rollover, and the hours
 * a clock change skips or repeats. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "calendar.h"
#include "testutil.h"
#include "util.h"

/* "YYYY-MM-DD HH:MM:SS" in UTC, as seconds since the epoch. */
static int64_t utc(const char *s) {
        struct tm tm = { 0 };

        ck_assert_ptr_nonnull(strptime(s, "%Y-%m-%d %H:%M:%S", &tm));
        return (int64_t) timegm(&tm);
}

/* The next match of expr after `after` (UTC), as local time in tz with its
 * offset, or "none". */
static const char *next(const char *expr, const char *tz, const char *after) {
        static char out[64];
        evd_calendar c;
        char why[160];
        int64_t t;
        time_t tt;
        struct tm tm;
        int r;

        r = evd_calendar_parse(expr, &c, why, sizeof(why));
        ck_assert_msg(r == 0, "'%s': %s", expr, why);
        r = evd_calendar_next(&c, tz, utc(after), &t);
        if (r == -ENOENT)
                return "none";
        ck_assert_int_eq(r, 0);
        ck_assert_int_gt(t, utc(after));
        setenv("TZ", tz, 1);
        tzset();
        tt = (time_t) t;
        localtime_r(&tt, &tm);
        strftime(out, sizeof(out), "%a %Y-%m-%d %H:%M:%S %z", &tm);
        unsetenv("TZ");
        tzset();
        return out;
}

#define NEXT(expr, tz, after, want) ck_assert_str_eq(next(expr, tz, after), want)

START_TEST(ordinary) {
        NEXT("*-*-* 02:00:00", "UTC", "2026-12-08 01:59:58", "Tue 2026-12-08 02:00:00 +0000");
        NEXT("*-*-* 02:00:00", "UTC", "2026-12-08 02:00:00", "Wed 2026-12-09 02:00:00 +0000");
        NEXT("Mon..Fri 02:00", "UTC", "2026-12-04 03:00:00", "Mon 2026-12-07 02:00:00 +0000");
        NEXT("Sat,Sun 10:30", "UTC", "2026-12-07 00:00:00", "Sat 2026-12-12 10:30:00 +0000");
        NEXT("Sat,Sun 10:30", "UTC", "2026-12-12 10:30:00", "Sun 2026-12-13 10:30:00 +0000");
        NEXT("*-*-01 00:00:00", "UTC", "2026-12-07 00:00:00", "Fri 2027-01-01 00:00:00 +0000");
        NEXT("*-*-31", "UTC", "2026-02-01 00:00:00", "Tue 2026-03-31 00:00:00 +0000");
        NEXT("*-*-31", "UTC", "2026-03-31 00:00:00", "Sun 2026-05-31 00:00:00 +0000");
        NEXT("*-02-29", "UTC", "2026-01-01 00:00:00", "Tue 2028-02-29 00:00:00 +0000");
        NEXT("*-02-29 12:00", "UTC", "2100-01-01 00:00:00", "Fri 2104-02-29 12:00:00 +0000");
        NEXT("Mon *-*-01", "UTC", "2026-01-01 00:00:00", "Mon 2026-06-01 00:00:00 +0000");
        NEXT("Mon *-*-1..7 09:00", "UTC", "2026-12-07 09:00:00", "Mon 2027-01-04 09:00:00 +0000");
        NEXT("*-01-01 00:00", "UTC", "2026-12-31 23:59:59", "Fri 2027-01-01 00:00:00 +0000");
        NEXT("2027-06-15 12:00", "UTC", "2026-12-07 00:00:00", "Tue 2027-06-15 12:00:00 +0000");
        NEXT("2027-06-15 12:00", "UTC", "2027-06-15 12:00:00", "none");
        NEXT("*:0/15", "UTC", "2026-12-07 10:07:00", "Mon 2026-12-07 10:15:00 +0000");
        NEXT("*:0/15", "UTC", "2026-12-07 23:45:00", "Tue 2026-12-08 00:00:00 +0000");
        NEXT("8..10:30", "UTC", "2026-12-07 10:30:00", "Tue 2026-12-08 08:30:00 +0000");
        NEXT("*:*:10/20", "UTC", "2026-12-07 10:00:51", "Mon 2026-12-07 10:01:10 +0000");
        NEXT("*-1/2-1", "UTC", "2026-01-01 00:00:00", "Sun 2026-03-01 00:00:00 +0000");
        NEXT("12-25", "UTC", "2026-12-07 00:00:00", "Fri 2026-12-25 00:00:00 +0000");
        NEXT("2026,2028-*-* 00:00", "UTC", "2026-12-31 00:00:00", "Sat 2028-01-01 00:00:00 +0000");
        NEXT("12:00", "Asia/Kolkata", "2026-12-07 07:00:00", "Tue 2026-12-08 12:00:00 +0530");
        NEXT("daily", "Asia/Kolkata", "2026-12-07 00:00:00", "Tue 2026-12-08 00:00:00 +0530");
}
END_TEST

START_TEST(shorthands) {
        NEXT("minutely", "UTC", "2026-12-07 10:00:30", "Mon 2026-12-07 10:01:00 +0000");
        NEXT("hourly", "UTC", "2026-12-07 10:00:00", "Mon 2026-12-07 11:00:00 +0000");
        NEXT("daily", "UTC", "2026-12-07 10:00:00", "Tue 2026-12-08 00:00:00 +0000");
        NEXT("weekly", "UTC", "2026-12-07 00:00:00", "Mon 2026-12-14 00:00:00 +0000");
        NEXT("monthly", "UTC", "2027-01-31 00:00:00", "Mon 2027-02-01 00:00:00 +0000");
        NEXT("quarterly", "UTC", "2026-12-07 00:00:00", "Fri 2027-01-01 00:00:00 +0000");
        NEXT("semiannually", "UTC", "2027-01-01 00:00:00", "Thu 2027-07-01 00:00:00 +0000");
        NEXT("Yearly", "UTC", "2026-12-07 00:00:00", "Fri 2027-01-01 00:00:00 +0000");
        NEXT("annually", "UTC", "2026-12-07 00:00:00", "Fri 2027-01-01 00:00:00 +0000");
}
END_TEST

/* Europe/Berlin: on 2026-03-29 the clock goes from 02:00 to 03:00; on
 * 2026-10-25 from 03:00 back to 02:00. */
START_TEST(spring_forward) {
        /* In the gap: once, at the first instant after it. */
        NEXT("*-*-* 02:30:00", "Europe/Berlin", "2026-03-28 12:00:00", "Sun 2026-03-29 03:00:00 +0200");
        NEXT("*-*-* 02:30:00", "Europe/Berlin", "2026-03-29 01:00:00", "Mon 2026-03-30 02:30:00 +0200");
        /* From the last second before the gap (found by fuzz-calendar). */
        NEXT("*-*-* 02:30:00", "Europe/Berlin", "2026-03-29 00:59:59", "Sun 2026-03-29 03:00:00 +0200");
        NEXT("minutely", "Europe/Berlin", "2026-03-29 00:59:00", "Sun 2026-03-29 03:00:00 +0200");
        NEXT("minutely", "Europe/Berlin", "2026-03-29 01:00:00", "Sun 2026-03-29 03:01:00 +0200");
        NEXT("hourly", "Europe/Berlin", "2026-03-29 00:00:00", "Sun 2026-03-29 03:00:00 +0200");
        NEXT("hourly", "Europe/Berlin", "2026-03-29 01:00:00", "Sun 2026-03-29 04:00:00 +0200");
        /* New York: 2026-03-08, 02:00 to 03:00. */
        NEXT("Sun 02:15", "America/New_York", "2026-03-07 12:00:00", "Sun 2026-03-08 03:00:00 -0400");
        NEXT("Sun 02:15", "America/New_York", "2026-03-08 07:00:00", "Sun 2026-03-15 02:15:00 -0400");
}
END_TEST

START_TEST(fall_back) {
        /* Repeated: once, at its first occurrence. */
        NEXT("*-*-* 02:30:00", "Europe/Berlin", "2026-10-24 12:00:00", "Sun 2026-10-25 02:30:00 +0200");
        NEXT("*-*-* 02:30:00", "Europe/Berlin", "2026-10-25 00:30:00", "Mon 2026-10-26 02:30:00 +0100");
        /* From within the second pass, the first has gone by. */
        NEXT("*-*-* 02:30:00", "Europe/Berlin", "2026-10-25 01:00:00", "Mon 2026-10-26 02:30:00 +0100");
        NEXT("*:0/20", "Europe/Berlin", "2026-10-25 00:40:00", "Sun 2026-10-25 03:00:00 +0100");
        NEXT("*-*-* 03:00:00", "Europe/Berlin", "2026-10-24 12:00:00", "Sun 2026-10-25 03:00:00 +0100");
        NEXT("Sun 01:30", "America/New_York", "2026-10-31 12:00:00", "Sun 2026-11-01 01:30:00 -0400");
        NEXT("Sun 01:30", "America/New_York", "2026-11-01 05:30:00", "Sun 2026-11-08 01:30:00 -0500");
}
END_TEST

/* Each refusal names the column at fault. */
START_TEST(refusals) {
        static const struct {
                const char *expr, *why;
        } bad[] = {
                { "", "empty" },
                { "   ", "empty" },
                { "25:00", "'25' in the hour column: 25 is out of range (0..23)" },
                { "*-13-01", "'13' in the month column: 13 is out of range (1..12)" },
                { "*-*-0", "'0' in the day column: 0 is out of range (1..31)" },
                { "1969-01-01", "year column: 1969 is out of range (1970..2199)" },
                { "12:60", "minute column: 60 is out of range" },
                { "12:00:61", "second column: 61 is out of range" },
                { "Mon..Foo", "'Mon..Foo' in the weekday column: 'Foo' is not a weekday" },
                { "Fri..Mon", "weekday column: a range goes from Mon towards Sun" },
                { "Mo 12:00", "'Mo' is not a weekday" },
                { "*/5:00", "hour column: write FIRST/N (0/N), not */N" },
                { "10..8:00", "hour column: the range 10..8 goes backwards" },
                { "0/0:00", "hour column: '/' needs a number above 0" },
                { "1..:00", "hour column: a range needs an end" },
                { "a:00", "is not a weekday" },
                { "12:x0", "'x0' in the minute column: 'x0' is not a number" },
                { "12:00:00:00", "not a time" },
                { "2026-01-01-01", "not a date" },
                { "12:00 2026-01-01", "expected nothing after the time" },
                { "Mon 12:00 13:00", "expected nothing after the time" },
                { "Mon Tue", "expected weekdays, a date" },
                { "Mon *-*-* *:*:* x", "more than three parts" },
                { "*-02-30", "never matches" },
                { "Mon 2026-12-08", "never matches" },
                { "12:0,", "minute column: '' is not a number" },
                { "12;00", "expected weekdays" },
                { "01234:00", "'01234' is not a number" },
        };

        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
                evd_calendar c = { .weekdays = 42 };
                char why[200] = "";
                int r = evd_calendar_parse(bad[i].expr, &c, why, sizeof(why));

                ck_assert_msg(r == -EINVAL, "'%s' taken", bad[i].expr);
                ck_assert_msg(strstr(why, bad[i].why), "'%s': '%s' does not say '%s'", bad[i].expr, why,
                              bad[i].why);
                ck_assert_int_eq(c.weekdays, 42);
        }
}
END_TEST

START_TEST(zones) {
        static const char *const good[] = { "UTC", "Europe/Berlin", "America/Argentina/Buenos_Aires", "Etc/GMT+3" };
        static const char *const bad[] = { "", "/etc/passwd", "../etc/passwd", "Europe/../../x", "Europe//Berlin",
                                           "Europe/", "./UTC", "Europe/Ber lin", "Europe/Berlin\n" };
        char path[64];

        for (size_t i = 0; i < ARRAY_SIZE(good); i++)
                ck_assert_msg(evd_timezone_check(good[i]) == 0, "'%s' refused", good[i]);
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
                ck_assert_msg(evd_timezone_check(bad[i]) == -EINVAL, "'%s' taken", bad[i]);
        ck_assert_int_eq(evd_timezone_path("Europe/Berlin", path, sizeof(path)), 0);
        ck_assert_str_eq(path, "/usr/share/zoneinfo/Europe/Berlin");
        ck_assert_int_eq(evd_timezone_path("Europe/Berlin", path, 10), -ENAMETOOLONG);
}
END_TEST

/* Stable for a host and a name, spread across hosts, within its span. */
START_TEST(jitter) {
        const int64_t span = (int64_t) 3600 * 1000000000;
        int64_t a = evd_calendar_jitter("0123456789abcdef0123456789abcdef", "backup", span);
        int distinct = 0;

        ck_assert_int_eq(a, evd_calendar_jitter("0123456789abcdef0123456789abcdef", "backup", span));
        ck_assert_int_ne(a, evd_calendar_jitter("0123456789abcdef0123456789abcdef", "rotate", span));
        for (int i = 0; i < 100; i++) {
                char id[33];
                int64_t j;

                snprintf(id, sizeof(id), "%032x", i);
                j = evd_calendar_jitter(id, "backup", span);
                ck_assert(j >= 0 && j < span);
                distinct += j != a;
        }
        ck_assert_int_ge(distinct, 99);
        ck_assert_int_eq(evd_calendar_jitter("x", "backup", 0), 0);
}
END_TEST

Suite *evt_test_suite(void) {
        Suite *s = suite_create("calendar");
        TCase *tc;

        tc = tcase_create("next");
        tcase_add_test(tc, ordinary);
        tcase_add_test(tc, shorthands);
        suite_add_tcase(s, tc);

        tc = tcase_create("dst");
        tcase_add_test(tc, spring_forward);
        tcase_add_test(tc, fall_back);
        suite_add_tcase(s, tc);

        tc = tcase_create("parse");
        tcase_add_test(tc, refusals);
        tcase_add_test(tc, zones);
        suite_add_tcase(s, tc);

        tc = tcase_create("jitter");
        tcase_add_test(tc, jitter);
        suite_add_tcase(s, tc);
        return s;
}
