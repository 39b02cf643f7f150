/* sd_notify from evtaskd. The watchdog is pinged by a timer of the event
 * loop itself, never by a thread: if a task wedges the loop, the pings stop
 * and the service manager kills the service. Pause does not stop them
 * (pause holds tasks, not the loop's own watchers). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if EVD_HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "notify.h"

#define STATUS_MAX 256

struct evd_notify {
        struct ev_loop *ev;
        ev_timer watchdog;      /* active if the manager wants pings */
        int64_t watchdog_ns;    /* its interval; 0: none */
        char status[STATUS_MAX]; /* the last STATUS= sent */
};

static void notify(const char *text) {
#if EVD_HAVE_LIBSYSTEMD
        (void) sd_notify(0, text);
#else
        (void) text;
#endif
}

static void watchdog_cb(struct ev_loop *ev, ev_timer *w, int revents) {
        (void) ev;
        (void) w;
        (void) revents;
        notify("WATCHDOG=1");
}

int evd_notify_new(struct ev_loop *ev, evd_notify **ret) {
        evd_notify *n = calloc(1, sizeof(*n));
        uint64_t usec = 0;

        if (!n)
                return -ENOMEM;
        n->ev = ev;
        ev_init(&n->watchdog, watchdog_cb);
#if EVD_HAVE_LIBSYSTEMD
        /* The variables stay: a reload does not re-read them, and jobs'
         * children get their environment cleaned separately. */
        if (sd_watchdog_enabled(0, &usec) <= 0)
                usec = 0;
#endif
        if (usec > 0) {
                /* Twice per interval, as sd_watchdog_enabled(3) advises. */
                double every = (double) usec / 2e6;

                n->watchdog_ns = (int64_t) usec * 1000;
                ev_timer_set(&n->watchdog, every, every);
                ev_timer_start(ev, &n->watchdog);
                ev_unref(ev);
                notify("WATCHDOG=1");
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
        free(n);
}

void evd_notify_send(evd_notify *n, const char *fmt, ...) {
        char text[512];
        va_list ap;

        (void) n;
        va_start(ap, fmt);
        vsnprintf(text, sizeof(text), fmt, ap);
        va_end(ap);
        notify(text);
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
        notify(text);
}

int64_t evd_notify_watchdog_interval(const evd_notify *n) {
        return n ? n->watchdog_ns : 0;
}
