/* The formats of log.c's sinks (log_format.c): records built in a bounded
 * buffer, and the journal's fields. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "log.h"

#define EVD_RECORD_MAX 4096

/* A bounded string: what does not fit sets overflow, and stops there. */
struct evd_log_buf {
        char *p;
        size_t len, size;
        bool overflow;
};

/* A record as the console sink (with sd-daemon <N> prefixes, or a time)
 * or the JSON sink writes it: one whole line in b. */
void evd_log_format_record(enum evd_log_target target, bool prefix, struct evd_log_buf *b, int priority,
                           evd_event event, const char *task, const evd_field *fields, size_t n_fields,
                           const char *msg);
/* The record to the journal, with its fields as journal fields: 0 or the
 * negative errno of sd_journal_sendv. */
int evd_log_journal_send(int priority, evd_event event, const char *task, const evd_field *fields, size_t n,
                         const char *msg);
