/* Calendar expressions: the parser of our subset of systemd.time(7)'s
 * calendar events, and the next matching time in a zone (calendar.h).
 *
 * An expression is read into one set of values per column (year ... second)
 * and a set of weekdays; the next match is searched for in local time,
 * column by column from the year down, then turned into an instant by the
 * C library's mktime under the zone's TZ rules: no offset is computed
 * here. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "calendar.h"

#define EXPR_MAX 256
#define ZONEINFO "/usr/share/zoneinfo/"

static const struct {
        const char *name;       /* for messages */
        int min, max;
} columns[EVD_CAL_COLUMNS] = {
        [EVD_CAL_YEAR] = { "year", EVD_CAL_YEAR_MIN, EVD_CAL_YEAR_MAX },
        [EVD_CAL_MONTH] = { "month", 1, 12 },
        [EVD_CAL_DAY] = { "day", 1, 31 },
        [EVD_CAL_HOUR] = { "hour", 0, 23 },
        [EVD_CAL_MINUTE] = { "minute", 0, 59 },
        [EVD_CAL_SECOND] = { "second", 0, 59 },
};

static const char *const weekday_names[7] = { "monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
                                              "sunday" };

/* systemd's shorthands, as the expressions they stand for. */
static const struct {
        const char *word, *expr;
} shorthands[] = {
        { "minutely", "*-*-* *:*:00" },
        { "hourly", "*-*-* *:00:00" },
        { "daily", "*-*-* 00:00:00" },
        { "weekly", "Mon *-*-* 00:00:00" },
        { "monthly", "*-*-01 00:00:00" },
        { "quarterly", "*-01,04,07,10-01 00:00:00" },
        { "semiannually", "*-01,07-01 00:00:00" },
        { "yearly", "*-01-01 00:00:00" },
        { "annually", "*-01-01 00:00:00" },
};

/* ---- sets ---- */

static void set_add(evd_calendar *c, int col, int v) {
        unsigned bit = (unsigned) (v - columns[col].min);

        c->set[col][bit / 64] |= (uint64_t) 1 << (bit % 64);
}

static bool set_has(const evd_calendar *c, int col, int v) {
        unsigned bit = (unsigned) (v - columns[col].min);

        return c->set[col][bit / 64] >> (bit % 64) & 1;
}

/* The least value of column col in [v, max], or -1. */
static int set_next(const evd_calendar *c, int col, int v, int max) {
        for (; v <= max; v++)
                if (set_has(c, col, v))
                        return v;
        return -1;
}

/* ---- the parser ---- */

typedef struct parser {
        char *why;
        size_t whylen;
} parser;

__attribute__((format(printf, 2, 3))) static int fail(parser *p, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(p->why, p->whylen, fmt, ap);
        va_end(ap);
        return -EINVAL;
}

/* DIGITS at *s, at most 4 of them; -1 if none or more. */
static int read_number(const char **s) {
        const char *d = *s;
        int v = 0;

        while (isdigit((unsigned char) *d) && d - *s < 5)
                v = v * 10 + (*d++ - '0');
        if (d == *s || d - *s > 4)
                return -1;
        *s = d;
        return v;
}

/* VALUE, VALUE..VALUE, VALUE/N, VALUE..VALUE/N or *, in a list by commas. */
static int parse_column(parser *p, evd_calendar *c, int col, const char *text) {
        const char *name = columns[col].name, *s = text;
        int min = columns[col].min, max = columns[col].max;

        if (!*s)
                return fail(p, "the %s column is empty", name);
        for (;;) {
                const char *item = s;
                int from, to, step = 1;

                if (*s == '*') {
                        s++;
                        if (*s == '/')
                                return fail(p, "'%s' in the %s column: write FIRST/N (%d/N), not */N", text, name,
                                            min);
                        from = min, to = max;
                } else {
                        if ((from = read_number(&s)) < 0)
                                return fail(p, "'%s' in the %s column: '%.*s' is not a number", text, name,
                                            (int) strcspn(item, ",."), item);
                        to = from;
                        if (s[0] == '.' && s[1] == '.') {
                                s += 2;
                                if ((to = read_number(&s)) < 0)
                                        return fail(p, "'%s' in the %s column: a range needs an end", text, name);
                        }
                        if (*s == '/') {
                                s++;
                                if ((step = read_number(&s)) <= 0)
                                        return fail(p, "'%s' in the %s column: '/' needs a number above 0", text,
                                                    name);
                                if (to == from)
                                        to = max;
                        }
                        if (from < min || from > max || to > max)
                                return fail(p, "'%s' in the %s column: %d is out of range (%d..%d)", text, name,
                                            from < min || from > max ? from : to, min, max);
                        if (to < from)
                                return fail(p, "'%s' in the %s column: the range %d..%d goes backwards", text, name,
                                            from, to);
                }
                for (int v = from; v <= to; v += step)
                        set_add(c, col, v);
                if (*s == '\0')
                        return 0;
                if (*s != ',')
                        return fail(p, "'%s' in the %s column: unexpected '%c'", text, name, *s);
                s++;
        }
}

/* A weekday's name, whole or its first three letters, at *s. */
static int read_weekday(const char **s) {
        size_t n = 0;

        while (isalpha((unsigned char) (*s)[n]))
                n++;
        for (int d = 0; d < 7; d++)
                if ((n == 3 || n == strlen(weekday_names[d])) && strncasecmp(*s, weekday_names[d], n) == 0) {
                        *s += n;
                        return d;
                }
        return -1;
}

static int parse_weekdays(parser *p, evd_calendar *c, const char *text) {
        const char *s = text;

        c->weekdays = 0;
        for (;;) {
                const char *item = s;
                int from = read_weekday(&s), to;

                if (from < 0)
                        return fail(p, "'%s' in the weekday column: '%.*s' is not a weekday (Mon..Sun)", text,
                                    (int) strcspn(item, ",."), item);
                to = from;
                if (s[0] == '.' && s[1] == '.') {
                        s += 2;
                        item = s;
                        if ((to = read_weekday(&s)) < 0)
                                return fail(p, "'%s' in the weekday column: '%.*s' is not a weekday (Mon..Sun)",
                                            text, (int) strcspn(item, ","), item);
                        if (to < from)
                                return fail(p, "'%s' in the weekday column: a range goes from Mon towards Sun",
                                            text);
                }
                for (int d = from; d <= to; d++)
                        c->weekdays |= (uint8_t) (1u << d);
                if (*s == '\0')
                        return 0;
                if (*s != ',')
                        return fail(p, "'%s' in the weekday column: unexpected '%c'", text, *s);
                s++;
        }
}

/* Splits text at sep into at most n parts (in place); how many, or -1. */
static int split(char *text, char sep, char **parts, int n) {
        int k = 0;

        for (char *s = text;; s++) {
                if (k == n)
                        return -1;
                parts[k++] = s;
                s = strchr(s, sep);
                if (!s)
                        return k;
                *s = '\0';
        }
}

/* A date or a time: three columns by sep, or two with one left out. */
typedef struct group {
        char sep;
        int first;              /* the column of the first of three */
        int omitted;            /* the column left out of two ... */
        const char *omitted_value; /* ... and what it takes */
        const char *what;       /* for messages */
} group;

static const group date_group = { '-', EVD_CAL_YEAR, EVD_CAL_YEAR, "*", "a date (YEAR-MONTH-DAY or MONTH-DAY)" };
static const group time_group = { ':', EVD_CAL_HOUR, EVD_CAL_SECOND, "0",
                                  "a time (HOUR:MINUTE or HOUR:MINUTE:SECOND)" };

static int parse_group(parser *p, evd_calendar *c, const group *g, const char *text) {
        char *part[3], copy[EXPR_MAX];
        int n, col;

        snprintf(copy, sizeof(copy), "%s", text);
        n = split(copy, g->sep, part, 3);
        if (n < 2)
                return fail(p, "'%s' is not %s", text, g->what);
        col = n == 2 && g->omitted == g->first ? g->first + 1 : g->first;
        for (int i = 0; i < n; i++) {
                int r = parse_column(p, c, col + i, part[i]);

                if (r < 0)
                        return r;
        }
        return n == 2 ? parse_column(p, c, g->omitted, g->omitted_value) : 0;
}

static int find_next(const evd_calendar *c, int v[EVD_CAL_COLUMNS]);

int evd_calendar_parse(const char *s, evd_calendar *ret, char *why, size_t whylen) {
        parser p = { why, whylen };
        evd_calendar c = { .weekdays = 0x7f };
        char buf[EXPR_MAX], *tok[4], *save = NULL;
        bool date = false, time = false;
        int n = 0, r = 0;
        int first[EVD_CAL_COLUMNS] = { EVD_CAL_YEAR_MIN, 1, 1, 0, 0, 0 };

        if (strlen(s) >= sizeof(buf))
                return fail(&p, "longer than %zu characters", sizeof(buf) - 1);
        snprintf(buf, sizeof(buf), "%s", s);
        for (size_t i = 0; i < sizeof(shorthands) / sizeof(shorthands[0]); i++)
                if (strcasecmp(buf, shorthands[i].word) == 0)
                        snprintf(buf, sizeof(buf), "%s", shorthands[i].expr);
        for (char *t = strtok_r(buf, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
                if (n == 3)
                        return fail(&p, "'%s' has more than three parts (weekdays, date, time)", s);
                tok[n++] = t;
        }
        if (n == 0)
                return fail(&p, "empty: a calendar expression or one of minutely, hourly, daily, weekly, "
                                "monthly, quarterly, semiannually, yearly");
        for (int i = 0; r == 0 && i < n; i++) {
                if (i == 0 && isalpha((unsigned char) tok[i][0]))
                        r = parse_weekdays(&p, &c, tok[i]);
                else if (strchr(tok[i], ':') && !time)
                        r = (time = true, parse_group(&p, &c, &time_group, tok[i]));
                else if (strchr(tok[i], '-') && !date && !time)
                        r = (date = true, parse_group(&p, &c, &date_group, tok[i]));
                else
                        r = fail(&p, "'%s' in '%s': expected %s", tok[i], s,
                                 time ? "nothing after the time" : "weekdays, a date (YEAR-MONTH-DAY) or a time "
                                                                   "(HOUR:MINUTE[:SECOND]), in that order");
        }
        if (r == 0 && !date)
                r = parse_group(&p, &c, &date_group, "*-*-*");
        if (r == 0 && !time)
                r = parse_group(&p, &c, &time_group, "00:00:00");
        if (r < 0)
                return r;
        if (find_next(&c, first) < 0)
                return fail(&p, "'%s' never matches: no day has that year, month, day and weekday", s);
        *ret = c;
        return 0;
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
                v[i] = columns[i].min;
}

/* The least local date and time at or after v that c matches, into v: 0,
 * or -ENOENT. Each step moves v forward, and the year is bounded. */
static int find_next(const evd_calendar *c, int v[EVD_CAL_COLUMNS]) {
again:
        for (int i = 0; i < EVD_CAL_COLUMNS; i++) {
                int max = i == EVD_CAL_DAY ? days_in_month(v[EVD_CAL_YEAR], v[EVD_CAL_MONTH]) : columns[i].max;
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
        while ((r = find_next(c, v)) == 0 && resolve(v, (time_t) after, &found) != 0) {
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
