/* Calendar expressions matched: the next time a parsed expression
 * (calendar_parse.c) matches in a zone, the zones themselves, and the
 * fixed jitter (calendar.h).
 *
 * The next match is searched for in local time, column by column from the
 * year down, then turned into an instant by the C library's mktime under
 * the zone's TZ rules: no offset is computed here. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "calendar.h"

#define ZONEINFO "/usr/share/zoneinfo/"

const evd_calendar_column evd_calendar_columns[EVD_CAL_COLUMNS] = {
        [EVD_CAL_YEAR] = { "year", EVD_CAL_YEAR_MIN, EVD_CAL_YEAR_MAX },
        [EVD_CAL_MONTH] = { "month", 1, 12 },
        [EVD_CAL_DAY] = { "day", 1, 31 },
        [EVD_CAL_HOUR] = { "hour", 0, 23 },
        [EVD_CAL_MINUTE] = { "minute", 0, 59 },
        [EVD_CAL_SECOND] = { "second", 0, 59 },
};

/* ---- sets ---- */

static bool set_has(const evd_calendar *c, int col, int v) {
        unsigned bit = (unsigned) (v - evd_calendar_columns[col].min);

        return c->set[col][bit / 64] >> (bit % 64) & 1;
}

/* The least value of column col in [v, max], or -1. */
static int set_next(const evd_calendar *c, int col, int v, int max) {
        for (; v <= max; v++)
                if (set_has(c, col, v))
                        return v;
        return -1;
}

/* ---- the next match ---- */

static bool leap(int y) {
        return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m) {
        static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

        return m == 2 && leap(y) ? 29 : days[m - 1];
}

/* 0 Monday ... 6 Sunday (Sakamoto's method). */
static int weekday(int y, int m, int d) {
        static const int t[] = { 0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4 };

        if (m < 3)
                y--;
        return ((y + y / 4 - y / 100 + y / 400 + t[m - 1] + d) % 7 + 6) % 7;
}

static void reset_below(int v[EVD_CAL_COLUMNS], int col) {
        for (int i = col; i < EVD_CAL_COLUMNS; i++)
                v[i] = evd_calendar_columns[i].min;
}

/* Each step moves v forward, and the year is bounded. */
int evd_calendar_find(const evd_calendar *c, int v[EVD_CAL_COLUMNS]) {
again:
        for (int i = 0; i < EVD_CAL_COLUMNS; i++) {
                int max = i == EVD_CAL_DAY ? days_in_month(v[EVD_CAL_YEAR], v[EVD_CAL_MONTH])
                                           : evd_calendar_columns[i].max;
                int n = set_next(c, i, v[i], max);

                if (n < 0) {
                        if (i == 0)
                                return -ENOENT;
                        v[i - 1]++;
                        reset_below(v, i);
                        goto again;
                }
                if (n != v[i]) {
                        v[i] = n;
                        reset_below(v, i + 1);
                }
                if (i == EVD_CAL_DAY && !(c->weekdays >> weekday(v[0], v[1], v[2]) & 1)) {
                        v[i]++;
                        reset_below(v, i + 1);
                        goto again;
                }
        }
        return 0;
}

static void to_columns(const struct tm *tm, int v[EVD_CAL_COLUMNS]) {
        v[EVD_CAL_YEAR] = tm->tm_year + 1900;
        v[EVD_CAL_MONTH] = tm->tm_mon + 1;
        v[EVD_CAL_DAY] = tm->tm_mday;
        v[EVD_CAL_HOUR] = tm->tm_hour;
        v[EVD_CAL_MINUTE] = tm->tm_min;
        v[EVD_CAL_SECOND] = tm->tm_sec;
}

static int compare(const int a[EVD_CAL_COLUMNS], const int b[EVD_CAL_COLUMNS]) {
        for (int i = 0; i < EVD_CAL_COLUMNS; i++)
                if (a[i] != b[i])
                        return a[i] < b[i] ? -1 : 1;
        return 0;
}

/* Whether the local time at t comes after v. */
static bool local_after(time_t t, const int v[EVD_CAL_COLUMNS]) {
        struct tm tm;
        int w[EVD_CAL_COLUMNS];

        localtime_r(&t, &tm);
        to_columns(&tm, w);
        return compare(w, v) > 0;
}

/* The instant of local time v: its first occurrence if the clock shows it
 * twice, the first instant after the gap if the clock skips it. 0 with
 * *ret when that is after `after`, 1 when not. */
static int resolve(const int v[EVD_CAL_COLUMNS], time_t after, time_t *ret) {
        time_t t[2], lo, hi;
        bool ok[2];

        /* Read as standard time, then as daylight saving time: each reading
         * the zone knows at that moment gives back the same fields. */
        for (int dst = 0; dst < 2; dst++) {
                struct tm tm = {
                        .tm_year = v[EVD_CAL_YEAR] - 1900, .tm_mon = v[EVD_CAL_MONTH] - 1,
                        .tm_mday = v[EVD_CAL_DAY], .tm_hour = v[EVD_CAL_HOUR], .tm_min = v[EVD_CAL_MINUTE],
                        .tm_sec = v[EVD_CAL_SECOND], .tm_isdst = dst,
                };
                int w[EVD_CAL_COLUMNS];

                t[dst] = mktime(&tm);
                to_columns(&tm, w);
                ok[dst] = t[dst] != (time_t) -1 && compare(w, v) == 0;
        }
        if (ok[0] || ok[1]) {
                time_t first = ok[0] && ok[1] ? (t[0] < t[1] ? t[0] : t[1]) : ok[0] ? t[0] : t[1];

                if (first <= after)
                        return 1;
                *ret = first;
                return 0;
        }
        /* A gap: read with the offset before it, v lands after it; with
         * the one after, before it. The gap ends at the first instant whose
         * local time comes after v. */
        lo = t[0] < t[1] ? t[0] : t[1];
        hi = t[0] < t[1] ? t[1] : t[0];
        if (lo == (time_t) -1 || local_after(lo, v) || !local_after(hi, v))
                return 1;
        while (hi - lo > 1) {
                time_t mid = lo + (hi - lo) / 2;

                if (local_after(mid, v))
                        hi = mid;
                else
                        lo = mid;
        }
        if (hi <= after)
                return 1;
        *ret = hi;
        return 0;
}

/* TZ switched to a zone for the length of a computation, and back. */
typedef struct zone_guard {
        char *saved;            /* TZ as it was, or NULL: unset */
        bool switched;
} zone_guard;

static int zone_enter(zone_guard *g, const char *tz) {
        const char *cur = getenv("TZ");

        *g = (zone_guard) { NULL, false };
        if (tz && !(cur && strcmp(cur, tz) == 0)) {
                if (cur && !(g->saved = strdup(cur)))
                        return -ENOMEM;
                if (setenv("TZ", tz, 1) < 0) {
                        free(g->saved);
                        return -errno;
                }
                g->switched = true;
        }
        tzset();
        return 0;
}

static void zone_leave(zone_guard *g) {
        if (!g->switched)
                return;
        if (g->saved)
                setenv("TZ", g->saved, 1);
        else
                unsetenv("TZ");
        free(g->saved);
        tzset();
}

int evd_calendar_next(const evd_calendar *c, const char *tz, int64_t after, int64_t *ret) {
        int v[EVD_CAL_COLUMNS];
        time_t t = (time_t) after, found = 0;
        struct tm tm;
        zone_guard g;
        int r = zone_enter(&g, tz);

        if (r < 0)
                return r;
        if (!localtime_r(&t, &tm)) {
                zone_leave(&g);
                return -ENOENT;
        }
        /* The local time a second later, counted on the face of the clock:
         * from just before a gap, the times in it still come next. */
        to_columns(&tm, v);
        v[EVD_CAL_SECOND]++;
        if (v[EVD_CAL_YEAR] < EVD_CAL_YEAR_MIN)
                reset_below(v, EVD_CAL_YEAR);
        while ((r = evd_calendar_find(c, v)) == 0 && resolve(v, (time_t) after, &found) != 0) {
                /* Already past (a repeated hour's second pass): the next second. */
                v[EVD_CAL_SECOND]++;
        }
        zone_leave(&g);
        if (r == 0)
                *ret = found;
        return r;
}

void evd_calendar_format(int64_t t, const char *tz, char *buf, size_t size) {
        time_t tt = (time_t) t;
        struct tm tm;
        zone_guard g;

        if (zone_enter(&g, tz) < 0 || !localtime_r(&tt, &tm) || !strftime(buf, size, "%Y-%m-%d %H:%M:%S %z", &tm))
                snprintf(buf, size, "@%lld", (long long) t);
        if (g.switched)
                zone_leave(&g);
}

/* ---- zones ---- */

int evd_timezone_check(const char *name) {
        static const char allowed[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/_+-.";
        const char *s = name;

        if (!*name || strlen(name) > 128 || strspn(name, allowed) != strlen(name) || name[0] == '/')
                return -EINVAL;
        /* No empty, "." or ".." component: the name stays inside tzdata. */
        while (*s) {
                size_t n = strcspn(s, "/");

                if (n == 0 || (s[0] == '.' && (n == 1 || (n == 2 && s[1] == '.'))))
                        return -EINVAL;
                s += n;
                if (*s == '/' && !*++s)
                        return -EINVAL;
        }
        return 0;
}

int evd_timezone_path(const char *name, char *buf, size_t size) {
        int n = snprintf(buf, size, ZONEINFO "%s", name);

        return n < 0 || (size_t) n >= size ? -ENAMETOOLONG : 0;
}

void evd_timezone_reload(void) {
        /* The C library reads a zone again only when TZ's value changes
         * (unset, it stands for /etc/localtime): changed there and back. */
        const char *tz = getenv("TZ");
        char *saved = tz ? strdup(tz) : NULL;

        if (!tz || saved) {
                setenv("TZ", "UTC0", 1);
                tzset();
                if (saved)
                        setenv("TZ", saved, 1);
                else
                        unsetenv("TZ");
                free(saved);
        }
        tzset();
}

/* ---- jitter ---- */

int64_t evd_calendar_jitter(const char *machine_id, const char *name, int64_t span) {
        uint64_t h = 0xcbf29ce484222325u; /* FNV-1a, 64 bits */
        const char *parts[] = { machine_id, name };

        if (span <= 0)
                return 0;
        for (int i = 0; i < 2; i++)
                for (const char *s = parts[i];; s++) {
                        h = (h ^ (unsigned char) *s) * 0x100000001b3u;
                        if (!*s)
                                break;
                }
        return (int64_t) (h % (uint64_t) span);
}
