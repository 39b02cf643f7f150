/* Log sinks. Each record is formatted into one buffer and written with one
 * write(2), so that records from one process never interleave, and no
 * record is torn by a partial write (the rest is written before the next
 * record starts). */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#if EVD_HAVE_LIBSYSTEMD
/* CODE_FILE= and CODE_LINE= would name this file in every record. */
#define SD_JOURNAL_SUPPRESS_LOCATION 1
#include <systemd/sd-journal.h>
#endif

#include "log.h"

#define RECORD_MAX 4096

struct evd_log {
        enum evd_log_target target;
        bool prefix;            /* console: sd-daemon <N> prefixes */
        int fd;                 /* console: stderr; json: stdout */
};

static const char *const level_names[] = {
        "emerg", "alert", "crit", "error", "warning", "notice", "info", "debug",
};

static const char *const target_names[] = { EVD_LOG_TARGET_LIST(EVD_ENUM_NAME) };
const evd_names evd_log_target_names = { target_names, ARRAY_SIZE(target_names), "log target" };

#define EVENT_NAME(id, name, message_id) [id] = name,
#define EVENT_MESSAGE_ID(id, name, message_id) [id] = message_id,
static const char *const event_names[] = { EVD_EVENT_LIST(EVENT_NAME) };

const char *evd_event_name(evd_event event) {
        return (size_t) event < ARRAY_SIZE(event_names) ? event_names[event] : "unknown";
}

/* Is stderr the journal's stream? systemd says so in JOURNAL_STREAM. */
static bool stderr_is_journal(void) {
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) < 0)
                return false;
        return (unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino;
}

int evd_log_new(enum evd_log_target target, evd_log **ret_log) {
        evd_log *log;

        if (target == EVD_LOG_AUTO)
                target = stderr_is_journal() && EVD_HAVE_LIBSYSTEMD ? EVD_LOG_JOURNAL : EVD_LOG_CONSOLE;
        if (target == EVD_LOG_JOURNAL && !EVD_HAVE_LIBSYSTEMD)
                return -EOPNOTSUPP;
        log = calloc(1, sizeof(*log));
        if (!log)
                return -ENOMEM;
        log->target = target;
        log->fd = target == EVD_LOG_JSON ? STDOUT_FILENO : STDERR_FILENO;
        /* Under a service manager (not a terminal) the console gets the
         * priority prefixes systemd and others understand. */
        log->prefix = !isatty(STDERR_FILENO);
        *ret_log = log;
        return 0;
}

void evd_log_free(evd_log *log) {
        free(log);
}

enum evd_log_target evd_log_get_target(const evd_log *log) {
        return log->target;
}

/* ---- a bounded string builder ---- */

struct buf {
        char *p;
        size_t len, size;
        bool overflow;
};

__attribute__((format(printf, 2, 3)))
static void put(struct buf *b, const char *fmt, ...) {
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
static void put_json_string(struct buf *b, const char *str, size_t max) {
        const unsigned char *s = (const unsigned char *) (str ? str : "");
        size_t limit = b->len + max;

        put(b, "\"");
        while (*s) {
                size_t n = evd_utf8_len(s, SIZE_MAX); /* NUL-terminated: the NUL stops it */
                char esc[8];
                const char *out = esc;
                size_t out_len;

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
                        put(b, "...");
                        break;
                }
                put(b, "%s", out);
                s += n;
        }
        put(b, "\"");
}

/* A record that does not fit is cut, and still ends as a whole line; in
 * a buffer too small for even that, it stays an overflow. */
static void finish_line(struct buf *b, const char *json_tail) {
        static const char cut[] = "...";
        size_t room = strlen(json_tail) + sizeof(cut) + 2;

        if (b->overflow && b->size >= room) {
                b->overflow = false;
                b->len = b->size - room;
                put(b, "%s", cut);
        }
        put(b, "%s\n", json_tail);
}

static void format_console(const evd_log *log, struct buf *b, int priority, const char *event,
                           const char *task, const char *msg) {
        if (log->prefix) {
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

static void format_json(struct buf *b, int priority, const char *event, const char *task,
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
        put(b, ",\"task\":");
        if (task)
                put_json_string(b, task, 128);
        else
                put(b, "null");
        put(b, ",\"msg\":");
        /* Room for the fields after the message. */
        put_json_string(b, msg, RECORD_MAX - 1024);
        for (size_t i = 0; i < n; i++) {
                put(b, ",\"%s\":", fields[i].key);
                if (fields[i].str)
                        put_json_string(b, fields[i].str, 256);
                else
                        put(b, "%lld", fields[i].num);
        }
        finish_line(b, "}");
}

static void write_all(int fd, const char *p, size_t len) {
        while (len > 0) {
                ssize_t n = write(fd, p, len);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return; /* nowhere left to report it */
                }
                p += n;
                len -= (size_t) n;
        }
}

#if EVD_HAVE_LIBSYSTEMD
/* The journal's MESSAGE_ID of each event, from the event list. */
static const char *const message_ids[] = { EVD_EVENT_LIST(EVENT_MESSAGE_ID) };

static void emit_journal(int priority, evd_event event, const char *task, const evd_field *fields, size_t n,
                         const char *msg) {
        enum { MAX_FIELDS = 16 };
        char message[RECORD_MAX];
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
        sd_journal_sendv(iov, (int) k);
}
#endif

/* A record as the console or JSON sink writes it. */
static void format_record(const evd_log *log, struct buf *b, int priority, evd_event event, const char *task,
                          const evd_field *fields, size_t n_fields, const char *msg) {
        if (log->target == EVD_LOG_JSON)
                format_json(b, priority, evd_event_name(event), task, fields, n_fields, msg);
        else
                format_console(log, b, priority, evd_event_name(event), task, msg);
}

void evd_log_emit(evd_log *log, int priority, evd_event event, const char *task, const evd_field *fields,
                  size_t n_fields, const char *fmt, ...) {
        char msg[RECORD_MAX / 2], line[RECORD_MAX];
        struct buf b = { .p = line, .size = sizeof(line) };
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);

        if (log->target == EVD_LOG_JOURNAL) {
#if EVD_HAVE_LIBSYSTEMD
                emit_journal(priority, event, task, fields, n_fields, msg);
#endif
                return;
        }
        format_record(log, &b, priority, event, task, fields, n_fields, msg);
        write_all(log->fd, b.p, b.len);
}

int evd_log_format(evd_log *log, char *out, size_t size, int priority, evd_event event, const char *task,
                   const evd_field *fields, size_t n_fields, const char *msg) {
        struct buf b = { .p = out, .size = size };

        format_record(log, &b, priority, event, task, fields, n_fields, msg);
        if (b.overflow)
                return -ENOSPC;
        return (int) b.len;
}
