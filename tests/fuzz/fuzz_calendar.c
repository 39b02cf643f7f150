/* The calendar expression parser (evd_calendar_parse) and the next match
 * (evd_calendar_next), in Europe/Berlin, where clocks change:
 * - a refusal is -EINVAL with a message, the output left alone;
 * - what is taken has a value in every column and a weekday, and reads the
 *   same twice;
 * - from a few instants, the next match comes later, is a local time the
 *   expression names (or the first instant after a gap of the clock, where
 *   the offset changes), and asking again from just before it finds it. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "calendar.h"
#include "fuzz.h"

static const int column_min[EVD_CAL_COLUMNS] = { EVD_CAL_YEAR_MIN, 1, 1, 0, 0, 0 };

static bool has(const evd_calendar *c, int col, int v) {
        unsigned bit = (unsigned) (v - column_min[col]);

        return bit < 256 && (c->set[col][bit / 64] >> (bit % 64) & 1);
}

static bool matches(const evd_calendar *c, const struct tm *tm) {
        int v[EVD_CAL_COLUMNS] = { tm->tm_year + 1900, tm->tm_mon + 1, tm->tm_mday,
                                   tm->tm_hour, tm->tm_min, tm->tm_sec };

        for (int i = 0; i < EVD_CAL_COLUMNS; i++)
                if (!has(c, i, v[i]))
                        return false;
        return c->weekdays >> ((tm->tm_wday + 6) % 7) & 1;
}

static void check_next(const char *s, const evd_calendar *c, int64_t after) {
        int64_t t = -42, again = -42;
        int r = evd_calendar_next(c, NULL, after, &t);
        struct tm tm, before;
        time_t tt, tb;

        if (r == -ENOENT) {
                fuzz_require(t == -42, "'%s' from %lld: no match, but the output changed", s, (long long) after);
                return;
        }
        fuzz_require(r == 0, "'%s' from %lld: returned %d", s, (long long) after, r);
        fuzz_require(t > after, "'%s' from %lld: %lld is not later", s, (long long) after, (long long) t);
        tt = (time_t) t;
        tb = tt - 1;
        localtime_r(&tt, &tm);
        localtime_r(&tb, &before);
        fuzz_require(matches(c, &tm) || tm.tm_gmtoff != before.tm_gmtoff,
                     "'%s' from %lld: %lld is neither a time it names nor the end of a gap", s, (long long) after,
                     (long long) t);
        r = evd_calendar_next(c, NULL, t - 1, &again);
        fuzz_require(r == 0 && again == t, "'%s': from %lld, %lld; from a second before it, %lld", s,
                     (long long) after, (long long) t, (long long) again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        /* Around the clock changes of 2026 in Berlin, and plain days. */
        static const int64_t from[] = { 0, 1774746000 - 3600, 1792800000, 1796695198, 4102444800 };
        char *s = fuzz_string(data, size), why[200] = "";
        evd_calendar c, d, untouched;
        int r;

        if (!s)
                return 0;
        setenv("TZ", "Europe/Berlin", 1);
        tzset();
        memset(&c, 0x5a, sizeof(c));
        untouched = c;
        r = evd_calendar_parse(s, &c, why, sizeof(why));
        if (r < 0) {
                fuzz_require(r == -EINVAL, "'%s': returned %d", s, r);
                fuzz_require(memcmp(&c, &untouched, sizeof(c)) == 0, "'%s': output changed on failure", s);
                fuzz_require(why[0] != '\0', "'%s': refused without a message", s);
                free(s);
                return 0;
        }
        for (int i = 0; i < EVD_CAL_COLUMNS; i++)
                fuzz_require(c.set[i][0] | c.set[i][1] | c.set[i][2] | c.set[i][3], "'%s': column %d is empty", s,
                             i);
        fuzz_require(c.weekdays != 0 && c.weekdays < 0x80, "'%s': weekdays %#x", s, c.weekdays);
        fuzz_require(evd_calendar_parse(s, &d, why, sizeof(why)) == 0 && memcmp(c.set, d.set, sizeof(c.set)) == 0 &&
                             c.weekdays == d.weekdays,
                     "'%s' reads differently the second time", s);
        for (size_t i = 0; i < sizeof(from) / sizeof(from[0]); i++)
                check_next(s, &c, from[i]);
        free(s);
        return 0;
}
