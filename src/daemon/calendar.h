/* Calendar expressions (`on_calendar =`): our subset of systemd.time(7)'s
 * calendar events, read into sets of the values each column takes, and
 * the next time such a set matches in a time zone. Pure: text in, values
 * out; the zone is the C library's (TZ and tzdata), nothing else is read. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* The columns of a date and time, in the order they are compared. */
enum evd_cal_column {
        EVD_CAL_YEAR,
        EVD_CAL_MONTH,
        EVD_CAL_DAY,
        EVD_CAL_HOUR,
        EVD_CAL_MINUTE,
        EVD_CAL_SECOND,
        EVD_CAL_COLUMNS
};

#define EVD_CAL_YEAR_MIN 1970
#define EVD_CAL_YEAR_MAX 2199

typedef struct evd_calendar {
        uint64_t set[EVD_CAL_COLUMNS][4]; /* bit (value - the column's least) of each value taken */
        uint8_t weekdays;       /* bit 0 Monday ... bit 6 Sunday; all 7 when none is named */
} evd_calendar;

/* ---- calendar.c: the columns, and the match ---- */

/* A column's name (for messages) and the values it takes. */
typedef struct evd_calendar_column {
        const char *name;
        int min, max;
} evd_calendar_column;
extern const evd_calendar_column evd_calendar_columns[EVD_CAL_COLUMNS];

/* The least local date and time at or after v that c matches, into v: 0, or -ENOENT. */
int evd_calendar_find(const evd_calendar *c, int v[EVD_CAL_COLUMNS]);

/* ---- calendar_parse.c ---- */

/* Reads an expression: "[WEEKDAYS] [[YEAR-]MONTH-DAY] [HOUR:MINUTE[:SECOND]]"
 * or a shorthand (minutely, hourly, daily, weekly, monthly, quarterly,
 * semiannually, yearly, annually), as evtaskd.conf(5) describes. 0, or
 * -EINVAL with a message naming the column into why (*ret untouched). */
int evd_calendar_parse(const char *s, evd_calendar *ret, char *why, size_t whylen);

/* ---- calendar.c ---- */

/* The first time, in seconds since the epoch, strictly after `after` at
 * which c matches in zone tz (an IANA name; NULL: the process's zone). A
 * local time that a clock change skips matches at the first instant after
 * the gap; one that it repeats, at its first occurrence only. 0, or
 * -ENOENT when c never matches again (before EVD_CAL_YEAR_MAX ends). */
int evd_calendar_next(const evd_calendar *c, const char *tz, int64_t after, int64_t *ret);

/* Time t (s since the epoch) as "2026-12-08 02:00:00 +0100" in zone tz
 * (NULL: the process's), into buf. */
void evd_calendar_format(int64_t t, const char *tz, char *buf, size_t size);

/* Whether name is written as a zone of the tz database is ("Europe/Berlin",
 * "UTC"): relative, no "." or ".." component. Whether it exists is the
 * probe's question (evd_timezone_path). */
int evd_timezone_check(const char *name);
/* Where tzdata keeps zone `name`, into buf; -ENAMETOOLONG if it does not fit. */
int evd_timezone_path(const char *name, char *buf, size_t size);
/* Makes the C library read the system's zone again (/etc/localtime, or
 * $TZ): at start and at each reload. */
void evd_timezone_reload(void);

/* A fixed offset in [0, span) for task `name` on the host whose
 * machine-id is `machine_id`: the same on every start, different across a
 * fleet (systemd's RandomizedDelaySec= with FixedRandomDelay=). */
int64_t evd_calendar_jitter(const char *machine_id, const char *name, int64_t span);
