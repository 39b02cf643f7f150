/* Calendar expressions read: the parser of our subset of systemd.time(7)'s
 * calendar events (calendar.h). An expression is read into one set of
 * values per column (year ... second) and a set of weekdays; calendar.c
 * finds the times such sets match. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "calendar.h"

#define EXPR_MAX 256

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

/* ---- the parser ---- */

static void set_add(evd_calendar *c, int col, int v) {
        unsigned bit = (unsigned) (v - evd_calendar_columns[col].min);

        c->set[col][bit / 64] |= (uint64_t) 1 << (bit % 64);
}

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
        const char *name = evd_calendar_columns[col].name, *s = text;
        int min = evd_calendar_columns[col].min, max = evd_calendar_columns[col].max;

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
        if (evd_calendar_find(&c, first) < 0)
                return fail(&p, "'%s' never matches: no day has that year, month, day and weekday", s);
        *ret = c;
        return 0;
}
