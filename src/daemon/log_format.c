/* What a record looks like: the console line, the JSON object (both
 * built in one bounded buffer, cut as a whole line when it does not fit),
 * and the journal's fields. log.c decides where a record goes and when. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#if EVD_HAVE_LIBSYSTEMD
/* CODE_FILE= and CODE_LINE= would name this file in every record. */
#define SD_JOURNAL_SUPPRESS_LOCATION 1
#include <systemd/sd-journal.h>
#endif

#include "log.h"
#include "log_format.h"

static const char *const level_names[] = {
        "emerg", "alert", "crit", "error", "warning", "notice", "info", "debug",
};

/* ---- a bounded string builder ---- */

__attribute__((format(printf, 2, 3)))
static void put(struct evd_log_buf *b, const char *fmt, ...) {
        va_list ap;
        int n;

        if (b->overflow)
                return;
        va_start(ap, fmt);
        n = vsnprintf(b->p + b->len, b->size - b->len, fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t) n >= b->size - b->len) {
                b->overflow = true;
                return;
        }
        b->len += (size_t) n;
}

static void put_bytes(struct evd_log_buf *b, const char *p, size_t n) {
        if (b->overflow)
                return;
        if (n >= b->size - b->len) {
                b->overflow = true;
                return;
        }
        memcpy(b->p + b->len, p, n);
        b->len += n;
        b->p[b->len] = '\0';
}

static void put_lit(struct evd_log_buf *b, const char *s) {
        put_bytes(b, s, strlen(s));
}

size_t evd_utf8_len(const unsigned char *s, size_t avail) {
        size_t n;

        if (avail == 0)
                return 0;
        if (s[0] < 0x80)
                return 1;
        if ((s[0] & 0xe0) == 0xc0 && s[0] >= 0xc2)
                n = 2;
        else if ((s[0] & 0xf0) == 0xe0)
                n = 3;
        else if ((s[0] & 0xf8) == 0xf0 && s[0] <= 0xf4)
                n = 4;
        else
                return 0;
        if (n > avail)
                return 0;
        for (size_t i = 1; i < n; i++)
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
        return n;
}

/* A JSON string of at most `max` bytes of output: cut at a character
 * boundary, with "..." inside the quotes, so that the record stays valid
 * JSON. Bytes that are not UTF-8 become U+FFFD. */
static bool json_plain(unsigned char c) {
        return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
}

static void put_json_string(struct evd_log_buf *b, const char *str, size_t max) {
        const unsigned char *s = (const unsigned char *) (str ? str : "");
        size_t limit = b->len + max;

        put_lit(b, "\"");
        while (*s) {
                char esc[8];
                const char *out = esc;
                size_t n, out_len;

                /* A run of plain ASCII at once: the common case, by far. */
                if (json_plain(*s)) {
                        size_t run = 1, room = limit > b->len + 5 ? limit - b->len - 5 : 0;

                        while (json_plain(s[run]))
                                run++;
                        if (run > room) {
                                put_bytes(b, (const char *) s, room);
                                put_lit(b, "...");
                                break;
                        }
                        put_bytes(b, (const char *) s, run);
                        s += run;
                        continue;
                }
                n = evd_utf8_len(s, SIZE_MAX); /* NUL-terminated: the NUL stops it */
                if (n == 0) {
                        out = "\\ufffd";
                        n = 1;
                } else if (*s == '"' || *s == '\\') {
                        snprintf(esc, sizeof(esc), "\\%c", *s);
                } else if (*s == '\n') {
                        out = "\\n";
                } else if (*s == '\t') {
                        out = "\\t";
                } else if (*s < 0x20 || *s == 0x7f) {
                        snprintf(esc, sizeof(esc), "\\u%04x", *s);
                } else {
                        memcpy(esc, s, n);
                        esc[n] = '\0';
                }
                out_len = strlen(out);
                if (b->len + out_len + 5 > limit) {
                        put_lit(b, "...");
                        break;
                }
                put_bytes(b, out, out_len);
                s += n;
        }
        put_lit(b, "\"");
}

/* A record that does not fit is cut, and still ends as a whole line; in
 * a buffer too small for even that, it stays an overflow. */
static void finish_line(struct evd_log_buf *b, const char *json_tail) {
        static const char cut[] = "...";
        size_t room = strlen(json_tail) + sizeof(cut) + 2;

        if (b->overflow && b->size >= room) {
                b->overflow = false;
                b->len = b->size - room;
                put(b, "%s", cut);
        }
        put(b, "%s\n", json_tail);
}

static void format_console(bool prefix, struct evd_log_buf *b, int priority, const char *event, const char *task,
                           const char *msg) {
        if (prefix) {
                put(b, "<%d>", priority);
        } else {
                struct timespec ts;
                struct tm tm;

                clock_gettime(CLOCK_REALTIME, &ts);
                localtime_r(&ts.tv_sec, &tm);
                put(b, "%02d:%02d:%02d.%03ld ", tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
        }
        if (task)
                put(b, "[%s] ", task);
        /* The message says what a person needs; the fields are for
         * machines, and go to the JSON and journal sinks. */
        put(b, "%s: %s", event, msg);
        finish_line(b, "");
}

static void format_json(struct evd_log_buf *b, int priority, const char *event, const char *task,
                        const evd_field *fields, size_t n, const char *msg) {
        struct timespec rt, mono;
        struct tm tm;

        clock_gettime(CLOCK_REALTIME, &rt);
        clock_gettime(CLOCK_MONOTONIC, &mono);
        gmtime_r(&rt.tv_sec, &tm);
        put(b, "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ\",\"mono_us\":%lld,\"level\":\"%s\",\"event\":",
            tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
            rt.tv_nsec / 1000, (long long) mono.tv_sec * 1000000 + mono.tv_nsec / 1000,
            level_names[priority & 7]);
        put_json_string(b, event, 64);
        put_lit(b, ",\"task\":");
        if (task)
                put_json_string(b, task, 128);
        else
                put_lit(b, "null");
        put_lit(b, ",\"msg\":");
        /* Room for the fields after the message. */
        put_json_string(b, msg, EVD_RECORD_MAX - 1024);
        for (size_t i = 0; i < n; i++) {
                put_lit(b, ",\"");
                put_lit(b, fields[i].key);
                put_lit(b, "\":");
                if (fields[i].str)
                        put_json_string(b, fields[i].str, 256);
                else
                        put(b, "%lld", fields[i].num);
        }
        finish_line(b, "}");
}

void evd_log_format_record(enum evd_log_target target, bool prefix, struct evd_log_buf *b, int priority,
                           evd_event event, const char *task, const evd_field *fields, size_t n_fields,
                           const char *msg) {
        if (target == EVD_LOG_JSON)
                format_json(b, priority, evd_event_name(event), task, fields, n_fields, msg);
        else
                format_console(prefix, b, priority, evd_event_name(event), task, msg);
}

#if EVD_HAVE_LIBSYSTEMD
#define EVENT_MESSAGE_ID(id, name, message_id) [id] = message_id,
/* The journal's MESSAGE_ID of each event, from the event list. */
static const char *const message_ids[] = { EVD_EVENT_LIST(EVENT_MESSAGE_ID) };

int evd_log_journal_send(int priority, evd_event event, const char *task, const evd_field *fields, size_t n,
                         const char *msg) {
        enum { MAX_FIELDS = 16 };
        char message[EVD_RECORD_MAX];
        char fixed[5][256];     /* PRIORITY, SYSLOG_IDENTIFIER, MESSAGE_ID, EVENT, TASK */
        char extra[MAX_FIELDS][256];
        struct iovec iov[1 + 5 + MAX_FIELDS];
        const char *id = message_ids[event];
        size_t k = 0, nf = 0;

        snprintf(message, sizeof(message), "MESSAGE=%s%s%s", task ? task : "", task ? ": " : "", msg);
        snprintf(fixed[nf++], sizeof(fixed[0]), "PRIORITY=%d", priority);
        snprintf(fixed[nf++], sizeof(fixed[0]), "SYSLOG_IDENTIFIER=evtaskd");
        if (id)
                snprintf(fixed[nf++], sizeof(fixed[0]), "MESSAGE_ID=%s", id);
        snprintf(fixed[nf++], sizeof(fixed[0]), "EVENT=%s", evd_event_name(event));
        if (task)
                snprintf(fixed[nf++], sizeof(fixed[0]), "TASK=%s", task);
        iov[k++] = (struct iovec) { .iov_base = message, .iov_len = strlen(message) };
        for (size_t i = 0; i < nf; i++)
                iov[k++] = (struct iovec) { .iov_base = fixed[i], .iov_len = strlen(fixed[i]) };
        for (size_t i = 0; i < n && i < MAX_FIELDS; i++) {
                char key[64];
                size_t j;

                for (j = 0; fields[i].key[j] && j < sizeof(key) - 1; j++)
                        key[j] = (char) (fields[i].key[j] >= 'a' && fields[i].key[j] <= 'z'
                                                 ? fields[i].key[j] - 'a' + 'A'
                                                 : fields[i].key[j]);
                key[j] = '\0';
                /* Field keys are [a-z0-9_]: upper-cased, valid journal
                 * field names (SIGNAL, SENDER_PID, EXIT_CODE, ...). */
                if (fields[i].str)
                        snprintf(extra[i], sizeof(extra[i]), "%s=%s", key, fields[i].str);
                else
                        snprintf(extra[i], sizeof(extra[i]), "%s=%lld", key, fields[i].num);
                iov[k++] = (struct iovec) { .iov_base = extra[i], .iov_len = strlen(extra[i]) };
        }
        return sd_journal_sendv(iov, (int) k);
}
#endif

