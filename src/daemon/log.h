/* evtaskd's log: one record per event, with a stable event name and the
 * task's name, to one sink: the console, JSON lines, or the journal. */
#pragma once

#include <stddef.h>
#include <syslog.h>

#include "config.h"

typedef struct evd_log evd_log;

/* A structured field of a record: a string, or (str NULL) a number. */
typedef struct evd_field {
        const char *key;        /* lower case, [a-z0-9_] */
        const char *str;
        long long num;
} evd_field;

#define EVD_STR(k, v) ((evd_field) { .key = (k), .str = (v) })
#define EVD_NUM(k, v) ((evd_field) { .key = (k), .num = (long long) (v) })

/* EVD_LOG_AUTO becomes the journal when stderr is connected to it
 * (JOURNAL_STREAM), else the console. -EOPNOTSUPP for the journal in a
 * build without libsystemd. */
int evd_log_new(enum evd_log_target target, evd_log **ret_log);
void evd_log_free(evd_log *log);
enum evd_log_target evd_log_get_target(const evd_log *log);
const char *evd_log_target_name(enum evd_log_target target);

/* Emits one record, with one write: records are never torn or interleaved.
 * priority is a syslog LOG_* level; task may be NULL. */
__attribute__((format(printf, 7, 8)))
void evd_log_emit(evd_log *log, int priority, const char *event, const char *task,
                  const evd_field *fields, size_t n_fields, const char *fmt, ...);

/* The length of the valid UTF-8 sequence at s (at most avail bytes), or 0
 * if there is none. */
size_t evd_utf8_len(const unsigned char *s, size_t avail);

/* Formats a record the way the sink would write it, for a message that must
 * later be written without formatting (from a signal handler). Returns the
 * length, or -ENOSPC. The journal sink formats for stderr's console. */
int evd_log_format(evd_log *log, char *buf, size_t size, int priority, const char *event,
                   const char *msg);
