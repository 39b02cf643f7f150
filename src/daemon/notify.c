/* The service manager's notify protocol (sd_notify(3)), spoken directly:
 * a datagram per message on a non-blocking socket of our own. sd_notify's
 * socket blocks, and a manager that stops reading (or a NOTIFY_SOCKET that
 * nobody reads) would then stop the event loop, shutdown included; here a
 * message that finds the queue full is dropped.
 *
 * The watchdog is pinged by a timer of the event loop itself, never by a
 * thread: if a task wedges the loop, the pings stop and the service manager
 * kills the service. Pause does not stop them (pause holds tasks, not the
 * loop's own watchers). */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "notify.h"

#define STATUS_MAX 256

struct evd_notify {
        struct ev_loop *ev;
        int fd;                 /* -1 without a NOTIFY_SOCKET */
        struct sockaddr_un addr;
        socklen_t addr_len;
        ev_timer watchdog;      /* active if the manager wants pings */
        int64_t watchdog_ns;    /* its interval; 0: none */
        char status[STATUS_MAX]; /* the last STATUS= sent */
};

/* NOTIFY_SOCKET: a path, or '@' and an abstract name. */
static void notify_open(evd_notify *n) {
        const char *path = getenv("NOTIFY_SOCKET");
        size_t len = path ? strlen(path) : 0;

        n->fd = -1;
        if (len < 2 || (path[0] != '/' && path[0] != '@') || len >= sizeof(n->addr.sun_path))
                return;
        n->addr.sun_family = AF_UNIX;
        memcpy(n->addr.sun_path, path, len);
        if (path[0] == '@')
                n->addr.sun_path[0] = '\0';
        n->addr_len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + len + (path[0] == '/'));
        n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
}

static void notify(evd_notify *n, const char *text) {
        if (n->fd >= 0)
                (void) sendto(n->fd, text, strlen(text), MSG_NOSIGNAL | MSG_DONTWAIT, (struct sockaddr *) &n->addr,
                              n->addr_len);
}

/* WATCHDOG_USEC, if meant for this process (WATCHDOG_PID, when set). */
static uint64_t watchdog_usec(void) {
        const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
        char *end;
        unsigned long long v;

        if (!usec || (pid && strtol(pid, NULL, 10) != (long) getpid()))
                return 0;
        errno = 0;
        v = strtoull(usec, &end, 10);
        return errno || end == usec || *end ? 0 : v;
}

static void watchdog_cb(struct ev_loop *ev, ev_timer *w, int revents) {
        (void) ev;
        (void) revents;
        notify(w->data, "WATCHDOG=1");
}

int evd_notify_new(struct ev_loop *ev, evd_notify **ret) {
        evd_notify *n = calloc(1, sizeof(*n));
        uint64_t usec = 0;

        if (!n)
                return -ENOMEM;
        n->ev = ev;
        ev_init(&n->watchdog, watchdog_cb);
        n->watchdog.data = n;
        notify_open(n);
        /* The variables stay: a reload does not re-read them, and jobs'
         * children get their environment cleaned separately. */
        usec = n->fd >= 0 ? watchdog_usec() : 0;
        if (usec > 0) {
                /* Twice per interval, as sd_watchdog_enabled(3) advises. */
                double every = (double) usec / 2e6;

                n->watchdog_ns = (int64_t) usec * 1000;
                ev_timer_set(&n->watchdog, every, every);
                ev_timer_start(ev, &n->watchdog);
                ev_unref(ev);
                notify(n, "WATCHDOG=1");
        }
        *ret = n;
        return 0;
}

void evd_notify_free(evd_notify *n) {
        if (!n)
                return;
        if (ev_is_active(&n->watchdog)) {
                ev_ref(n->ev);
                ev_timer_stop(n->ev, &n->watchdog);
        }
        if (n->fd >= 0)
                close(n->fd);
        free(n);
}

void evd_notify_send(evd_notify *n, const char *fmt, ...) {
        char text[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(text, sizeof(text), fmt, ap);
        va_end(ap);
        if (!n) {
                /* Before evd_notify_new (a bad config): a socket for once. */
                evd_notify once;

                notify_open(&once);
                notify(&once, text);
                if (once.fd >= 0)
                        close(once.fd);
                return;
        }
        notify(n, text);
}

void evd_notify_status(evd_notify *n, const char *fmt, ...) {
        char status[STATUS_MAX], text[STATUS_MAX + 8];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(status, sizeof(status), fmt, ap);
        va_end(ap);
        if (strcmp(status, n->status) == 0)
                return;
        memcpy(n->status, status, sizeof(status));
        snprintf(text, sizeof(text), "STATUS=%s", status);
        notify(n, text);
}

int64_t evd_notify_watchdog_interval(const evd_notify *n) {
        return n ? n->watchdog_ns : 0;
}
