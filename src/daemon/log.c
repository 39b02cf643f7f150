/* Log sinks: where a record goes, and when (log_format.c says what it
 * looks like). Each record is formatted into one buffer and goes out whole:
 * records from one process never interleave, and none is torn by a
 * partial write (the rest goes before the next record starts).
 *
 * Nothing is lost to a slow reader. The sink's fd is written non-blocking;
 * what it does not take waits in a queue, written when the fd is writable
 * again (an ev_io). Job output waits for room in the queue before it is
 * read (evd_log_wait_room), so the jobs block on their pipes, as they would
 * on a terminal; with log_overflow = drop their records are dropped
 * instead, counted, and reported once per interval. The daemon's own
 * records always go in the queue. A sink that fails (its reader gone, the
 * journal down) is said on stderr and ends the daemon (EX_IOERR). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ev.h>

#include "evtask.h"
#include "log.h"
#include "log_format.h"

/* Queued bytes beyond which job output waits (or, with drop, is dropped). */
#define QUEUE_ROOM (64 * 1024)
/* A queue this large is given back to the system once it is empty. */
#define QUEUE_KEEP (1024 * 1024)
#define DROP_REPORT_EVERY 1.0 /* seconds */
#define JOURNAL_SOCKET "/run/systemd/journal/socket"

struct evd_log {
        enum evd_log_target target;
        enum evd_log_overflow overflow;
        bool prefix;            /* console: sd-daemon <N> prefixes */
        int fd;                 /* console: stderr; json: stdout */
        int own_fd;             /* a non-blocking reopening of fd, or -1 */
        bool sock;              /* fd is a socket: sent with MSG_DONTWAIT */

        pthread_mutex_t lock;   /* what follows: records come from pool threads too */
        char *queue;            /* bytes the sink has not taken yet */
        size_t head, len, size; /* ... from queue + head, len of them */
        unsigned held;          /* evd_log_hold() depth: writes wait */
        int error;              /* the sink's failure, or 0 */
        unsigned long long dropped, dropped_bytes; /* since the last report */
        struct ev_loop *ev;     /* attached: the loop writes the queue */
        pthread_t loop_thread;
        ev_io writable;
        ev_async wake;          /* a thread queued a record */
        ev_timer drop_report;
        void (*failed_cb)(void *data);
        void *failed_data;
        evd_log_observer *observer; /* called on the loop's thread only */
        void *observer_data;
};

static const char *const target_names[] = { EVD_LOG_TARGET_LIST(EVD_ENUM_NAME) };
const evd_names evd_log_target_names = { target_names, ARRAY_SIZE(target_names), "log target" };
static const char *const overflow_names[] = { EVD_LOG_OVERFLOW_LIST(EVD_ENUM_NAME) };
const evd_names evd_log_overflow_names = { overflow_names, ARRAY_SIZE(overflow_names), "log overflow policy" };

#define EVENT_NAME(id, name, message_id) [id] = name,
static const char *const event_names[] = { EVD_EVENT_LIST(EVENT_NAME) };

const char *evd_event_name(evd_event event) {
        return (size_t) event < ARRAY_SIZE(event_names) ? event_names[event] : "unknown";
}

/* Is stdout the journal's stream? systemd names it in JOURNAL_STREAM. */
static bool stdout_is_journal(void) {
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2 || fstat(STDOUT_FILENO, &st) < 0)
                return false;
        return (unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino;
}

/* journald takes records on its socket; without it, sd_journal_sendv
 * fails for every record. */
static int journal_reachable(void) {
        return access(JOURNAL_SOCKET, W_OK) < 0 ? -errno : 0;
}

int evd_log_new(enum evd_log_target target, evd_log **ret_log) {
        evd_log *log;

        /* A service manager's journal, a person at a terminal, or else a
         * container's log collector, which parses JSON lines. */
        if (target == EVD_LOG_AUTO && stdout_is_journal())
                target = EVD_HAVE_LIBSYSTEMD && journal_reachable() == 0 ? EVD_LOG_JOURNAL : EVD_LOG_CONSOLE;
        else if (target == EVD_LOG_AUTO)
                target = isatty(STDOUT_FILENO) ? EVD_LOG_CONSOLE : EVD_LOG_JSON;
        if (target == EVD_LOG_JOURNAL && !EVD_HAVE_LIBSYSTEMD)
                return -EOPNOTSUPP;
        log = calloc(1, sizeof(*log));
        if (!log)
                return -ENOMEM;
        if (target == EVD_LOG_JOURNAL && journal_reachable() < 0) {
                int r = journal_reachable();

                free(log);
                return r;
        }
        log->target = target;
        log->fd = target == EVD_LOG_JSON ? STDOUT_FILENO : STDERR_FILENO;
        log->own_fd = -1;
        pthread_mutex_init(&log->lock, NULL);
        /* Under a service manager (not a terminal) the console gets the
         * priority prefixes systemd and others understand. */
        log->prefix = !isatty(STDERR_FILENO);
        *ret_log = log;
        return 0;
}

void evd_log_free(evd_log *log) {
        if (!log)
                return;
        evd_log_detach(log);
        pthread_mutex_destroy(&log->lock);
        free(log->queue);
        free(log);
}

void evd_log_set_overflow(evd_log *log, enum evd_log_overflow overflow) {
        log->overflow = overflow;
}

int evd_log_error(evd_log *log) {
        int r;

        pthread_mutex_lock(&log->lock);
        r = log->error;
        pthread_mutex_unlock(&log->lock);
        return r;
}

enum evd_log_target evd_log_get_target(const evd_log *log) {
        return log->target;
}

/* ---- the queue and the sink ---- */

/* What the sink takes now: bytes written, -EAGAIN, or another -errno. */
static ssize_t sink_write(evd_log *log, const char *p, size_t len) {
        for (;;) {
                ssize_t n = log->sock ? send(log->fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL)
                                      : write(log->own_fd >= 0 ? log->own_fd : log->fd, p, len);

                if (n >= 0)
                        return n;
                if (errno == EINTR)
                        continue;
                return errno == EWOULDBLOCK ? -EAGAIN : -errno;
        }
}

/* The sink failed: nothing more is written, and whoever attached hears of
 * it (the daemon shuts down and exits EX_IOERR). Under the lock. */
static void sink_failed(evd_log *log, int r) {
        static const char *const names[] = { [EVD_LOG_CONSOLE] = "stderr", [EVD_LOG_JSON] = "stdout",
                                             [EVD_LOG_JOURNAL] = "the journal" };

        if (log->error)
                return;
        log->error = r;
        log->len = 0;
        /* stderr may be the sink that failed; then nothing can be said. */
        fprintf(stderr, "evtaskd: cannot write the log to %s: %s\n", names[log->target], strerror(-r));
        /* Its callback logs: it runs from the loop, outside the lock. */
        if (log->ev)
                ev_async_send(log->ev, &log->wake);
}

/* Writes what the sink takes of the queue now. Under the lock. */
static void queue_write(evd_log *log) {
        while (log->len > 0 && !log->error) {
                ssize_t n = sink_write(log, log->queue + log->head, log->len);

                if (n == -EAGAIN)
                        break;
                if (n <= 0) {
                        sink_failed(log, n < 0 ? (int) n : -EIO);
                        break;
                }
                log->head += (size_t) n;
                log->len -= (size_t) n;
        }
        if (log->len == 0) {
                log->head = 0;
                if (log->size > QUEUE_KEEP) {
                        free(log->queue);
                        log->queue = NULL;
                        log->size = 0;
                }
        }
}

/* The loop's watcher follows the queue: on while bytes wait. On the loop
 * thread only; a pool thread wakes the loop for it. Under the lock. */
static void watcher_update(evd_log *log) {
        bool want = log->len > 0 && !log->error && log->held == 0;

        if (!log->ev)
                return;
        if (!pthread_equal(pthread_self(), log->loop_thread)) {
                if (want)
                        ev_async_send(log->ev, &log->wake);
                return;
        }
        if (want && !ev_is_active(&log->writable))
                ev_io_start(log->ev, &log->writable);
        else if (!want && ev_is_active(&log->writable))
                ev_io_stop(log->ev, &log->writable);
}

static bool queue_append(evd_log *log, const char *p, size_t len) {
        if (log->head + log->len + len > log->size) {
                size_t size = log->size ? log->size : 8192;
                char *q;

                if (log->head > 0) {
                        memmove(log->queue, log->queue + log->head, log->len);
                        log->head = 0;
                }
                while (log->len + len > size)
                        size *= 2;
                if (size > log->size) {
                        q = realloc(log->queue, size);
                        if (!q)
                                return false;
                        log->queue = q;
                        log->size = size;
                }
        }
        memcpy(log->queue + log->head + log->len, p, len);
        log->len += len;
        return true;
}

/* Unattached (at the start, at the exit, in tests), a full sink is waited
 * for here: nothing else runs meanwhile anyway. Under the lock. */
static void queue_write_waiting(evd_log *log) {
        queue_write(log);
        while (log->len > 0 && !log->error) {
                struct pollfd pfd = { .fd = log->own_fd >= 0 ? log->own_fd : log->fd, .events = POLLOUT };

                if (poll(&pfd, 1, -1) < 0 && errno != EINTR) {
                        sink_failed(log, -errno);
                        break;
                }
                queue_write(log);
        }
}

/* Unless held, writes what the sink takes. Under the lock. */
static void queue_flush(evd_log *log) {
        if (log->held == 0) {
                if (log->ev)
                        queue_write(log);
                else
                        queue_write_waiting(log);
        }
        watcher_update(log);
}

/* The report of drops runs while there are drops to report: one record
 * per interval. On the loop's thread; a pool thread wakes the loop for
 * it. Under the lock. */
static void drop_report_arm(evd_log *log) {
        if (!log->ev || log->dropped == 0)
                return;
        if (!pthread_equal(pthread_self(), log->loop_thread)) {
                ev_async_send(log->ev, &log->wake);
        } else if (!ev_is_active(&log->drop_report)) {
                ev_timer_start(log->ev, &log->drop_report);
                ev_unref(log->ev); /* it keeps no loop alive */
        }
}

static void count_drop(evd_log *log, size_t len) {
        log->dropped++;
        log->dropped_bytes += len;
        drop_report_arm(log);
}

static void record_put(evd_log *log, const char *p, size_t len, bool droppable) {
        pthread_mutex_lock(&log->lock);
        if (log->error) {
                pthread_mutex_unlock(&log->lock);
                return;
        }
        if (droppable && log->overflow == EVD_LOG_OVERFLOW_DROP && log->len >= QUEUE_ROOM) {
                count_drop(log, len);
                pthread_mutex_unlock(&log->lock);
                return;
        }
        if (!queue_append(log, p, len)) {
                /* No memory for more queue: the sink takes what waits
                 * first. Without memory even then, the record is counted. */
                queue_write_waiting(log);
                if (!queue_append(log, p, len))
                        count_drop(log, len);
        }
        queue_flush(log);
        pthread_mutex_unlock(&log->lock);
}

static void writable_cb(struct ev_loop *ev, ev_io *w, int revents) {
        evd_log *log = w->data;

        (void) ev;
        (void) revents;
        pthread_mutex_lock(&log->lock);
        queue_write(log);
        watcher_update(log);
        pthread_mutex_unlock(&log->lock);
}

static void wake_cb(struct ev_loop *ev, ev_async *w, int revents) {
        evd_log *log = w->data;
        bool failed;

        (void) ev;
        (void) revents;
        pthread_mutex_lock(&log->lock);
        watcher_update(log);
        drop_report_arm(log);
        failed = log->error != 0 && log->failed_cb;
        pthread_mutex_unlock(&log->lock);
        if (failed) {
                log->failed_cb(log->failed_data);
                log->failed_cb = NULL; /* once */
        }
}

static void drop_report_cb(struct ev_loop *ev, ev_timer *w, int revents) {
        evd_log *log = w->data;
        unsigned long long n, bytes;

        (void) ev;
        (void) revents;
        pthread_mutex_lock(&log->lock);
        n = log->dropped;
        bytes = log->dropped_bytes;
        log->dropped = log->dropped_bytes = 0;
        if (n == 0 && ev_is_active(w)) {
                ev_ref(ev);
                ev_timer_stop(ev, w);
        }
        pthread_mutex_unlock(&log->lock);
        if (n > 0)
                evd_log_emit(log, LOG_WARNING, EVD_EV_DROPPED, NULL,
                             EVD_FIELDS(EVD_NUM("records", n), EVD_NUM("bytes", bytes),
                                        EVD_NUM("interval_ms", DROP_REPORT_EVERY * 1000)),
                             "%llu output records (%llu bytes) dropped in the last %g s: %s", n, bytes,
                             DROP_REPORT_EVERY,
                             log->overflow == EVD_LOG_OVERFLOW_DROP
                                     ? "log_overflow = drop, and the log's reader is slower than the jobs"
                                     : "no memory to queue them");
}

/* A private, non-blocking file description of the sink's pipe or terminal:
 * O_NONBLOCK on the shared one would reach every process that shares it
 * (a shell's terminal). A socket is sent to with MSG_DONTWAIT instead; a
 * file never blocks for long. */
static void sink_open(evd_log *log) {
        char path[64];
        struct stat st;

        if (fstat(log->fd, &st) < 0)
                return;
        if (S_ISSOCK(st.st_mode)) {
                log->sock = true;
                return;
        }
        if (!S_ISFIFO(st.st_mode) && !S_ISCHR(st.st_mode))
                return;
        snprintf(path, sizeof(path), "/proc/self/fd/%d", log->fd);
        log->own_fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        if (log->own_fd < 0) {
                /* No /proc: the shared description, as it is; a blocking
                 * one stalls the loop while the sink is full, and loses
                 * nothing. */
                log->own_fd = -1;
        }
}

int evd_log_attach(evd_log *log, struct ev_loop *ev, void (*failed_cb)(void *data), void *data) {
        /* The journal takes a datagram a record, blocking: no queue. */
        if (log->target != EVD_LOG_JOURNAL)
                sink_open(log);
        pthread_mutex_lock(&log->lock);
        log->ev = ev;
        log->loop_thread = pthread_self();
        log->failed_cb = failed_cb;
        log->failed_data = data;
        ev_io_init(&log->writable, writable_cb, log->own_fd >= 0 ? log->own_fd : log->fd, EV_WRITE);
        log->writable.data = log;
        ev_async_init(&log->wake, wake_cb);
        log->wake.data = log;
        ev_async_start(ev, &log->wake);
        ev_unref(ev); /* the log keeps no loop alive */
        ev_timer_init(&log->drop_report, drop_report_cb, DROP_REPORT_EVERY, DROP_REPORT_EVERY);
        log->drop_report.data = log;
        pthread_mutex_unlock(&log->lock);
        return 0;
}

void evd_log_detach(evd_log *log) {
        if (!log->ev)
                return;
        /* Drops of the last interval are reported too. */
        if (ev_is_active(&log->drop_report)) {
                ev_ref(log->ev);
                ev_timer_stop(log->ev, &log->drop_report);
        }
        drop_report_cb(log->ev, &log->drop_report, 0);
        pthread_mutex_lock(&log->lock);
        if (ev_is_active(&log->writable))
                ev_io_stop(log->ev, &log->writable);
        ev_ref(log->ev);
        ev_async_stop(log->ev, &log->wake);
        log->ev = NULL;
        log->failed_cb = NULL;
        queue_write_waiting(log);
        pthread_mutex_unlock(&log->lock);
        if (log->own_fd >= 0)
                close(log->own_fd);
        log->own_fd = -1;
}

void evd_log_hold(evd_log *log) {
        pthread_mutex_lock(&log->lock);
        log->held++;
        pthread_mutex_unlock(&log->lock);
}

void evd_log_release(evd_log *log) {
        pthread_mutex_lock(&log->lock);
        log->held--;
        queue_flush(log);
        pthread_mutex_unlock(&log->lock);
}

int evd_log_wait_room(evd_log *log) {
        for (;;) {
                int fd, r;

                pthread_mutex_lock(&log->lock);
                if (log->len < QUEUE_ROOM || log->error || log->overflow == EVD_LOG_OVERFLOW_DROP || !log->ev) {
                        pthread_mutex_unlock(&log->lock);
                        return 0;
                }
                fd = log->own_fd >= 0 ? log->own_fd : log->fd;
                pthread_mutex_unlock(&log->lock);
                r = evt_fd_wait(fd, EVT_WRITE, EVT_FOREVER, NULL);
                if (r < 0)
                        return r;
                pthread_mutex_lock(&log->lock);
                queue_write(log);
                watcher_update(log);
                pthread_mutex_unlock(&log->lock);
        }
}

void evd_log_emit(evd_log *log, int priority, evd_event event, const char *task, const evd_field *fields,
                  size_t n_fields, const char *fmt, ...) {
        char msg[EVD_RECORD_MAX / 2], line[EVD_RECORD_MAX];
        struct evd_log_buf b = { .p = line, .size = sizeof(line) };
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);

        if (log->observer && pthread_equal(log->loop_thread, pthread_self()))
                log->observer(log->observer_data, event, task, fields, n_fields, msg);
        if (log->target == EVD_LOG_JOURNAL) {
#if EVD_HAVE_LIBSYSTEMD
                int r = evd_log_journal_send(priority, event, task, fields, n_fields, msg);

                if (r < 0) {
                        pthread_mutex_lock(&log->lock);
                        sink_failed(log, r);
                        pthread_mutex_unlock(&log->lock);
                }
#endif
                return;
        }
        evd_log_format_record(log->target, log->prefix, &b, priority, event, task, fields, n_fields, msg);
        record_put(log, b.p, b.len, event == EVD_EV_OUTPUT);
}

void evd_log_set_observer(evd_log *log, evd_log_observer *fn, void *data) {
        log->observer = fn;
        log->observer_data = data;
}

int evd_log_format(evd_log *log, char *out, size_t size, int priority, evd_event event, const char *task,
                   const evd_field *fields, size_t n_fields, const char *msg) {
        struct evd_log_buf b = { .p = out, .size = size };

        evd_log_format_record(log->target, log->prefix, &b, priority, event, task, fields, n_fields, msg);
        if (b.overflow)
                return -ENOSPC;
        return (int) b.len;
}
