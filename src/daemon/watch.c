/* [daemon] reload_on_change: inotify on the config file's directory, so
 * that an edit, a rename over the file and a Kubernetes ConfigMap update
 * (the kubelet writes a new directory, points `..data_tmp` at it and
 * renames that over `..data`, which the config's symlink goes through)
 * are all seen; a burst of events settles for a moment, then, if what the
 * path now leads to differs, the daemon reloads as on SIGHUP. */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.h"

/* A burst (the kubelet's three steps, an editor's write and rename) ends
 * within this. */
#define SETTLE_SEC 0.2

static bool same_file(const struct stat *a, const struct stat *b) {
        return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
               a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* What the config path leads to now (through its symlinks); a path that
 * leads nowhere for a moment counts as a change, which the reload reports. */
static void look(evd_daemon *d, struct stat *st) {
        if (stat(d->config_path, st) < 0)
                memset(st, 0, sizeof(*st));
}

static void settled_cb(struct ev_loop *ev, ev_timer *w, int revents) {
        evd_daemon *d = w->data;
        struct stat now;

        (void) revents;
        ev_ref(ev);
        ev_timer_stop(ev, w);
        look(d, &now);
        if (same_file(&now, &d->watch.seen))
                return;
        d->watch.seen = now;
        if (evt_lifecycle_phase(d->lc) == EVT_PHASE_RUNNING)
                evd_daemon_reload(d);
}

static void events_cb(struct ev_loop *ev, ev_io *w, int revents) {
        evd_daemon *d = w->data;
        char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
        bool any = false;

        (void) revents;
        while (read(d->watch.fd, buf, sizeof(buf)) > 0)
                any = true;
        if (!any)
                return;
        if (!ev_is_active(&d->watch.settle)) {
                ev_timer_set(&d->watch.settle, SETTLE_SEC, 0.);
                ev_timer_start(ev, &d->watch.settle);
                ev_unref(ev); /* it keeps nothing running */
        } else {
                /* Settles from the last event of the burst. */
                ev_timer_stop(ev, &d->watch.settle);
                ev_timer_set(&d->watch.settle, SETTLE_SEC, 0.);
                ev_timer_start(ev, &d->watch.settle);
        }
}

int evd_watch_start(evd_daemon *d, char *err, size_t errlen) {
        struct ev_loop *ev = evt_loop_ev(d->loop);
        char dir[PATH_MAX];
        int r;

        d->watch.fd = -1;
        if (!d->config->reload_on_change || !d->config_path)
                return 0;
        snprintf(dir, sizeof(dir), "%s", d->config_path);
        d->watch.fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        /* The directory, not the file: a rename over the file, or over a
         * symlink on its way, replaces what a watch on it would follow. */
        if (d->watch.fd < 0 ||
            inotify_add_watch(d->watch.fd, dirname(dir),
                              IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_ATTRIB) < 0) {
                r = -errno;
                snprintf(err, errlen, "reload_on_change: cannot watch the directory of %s: %s", d->config_path,
                         strerror(-r));
                evd_watch_stop(d);
                return r;
        }
        look(d, &d->watch.seen);
        ev_timer_init(&d->watch.settle, settled_cb, SETTLE_SEC, 0.);
        d->watch.settle.data = d;
        ev_io_init(&d->watch.io, events_cb, d->watch.fd, EV_READ);
        d->watch.io.data = d;
        ev_io_start(ev, &d->watch.io);
        ev_unref(ev);
        return 0;
}

void evd_watch_stop(evd_daemon *d) {
        struct ev_loop *ev = d->loop ? evt_loop_ev(d->loop) : NULL;

        if (ev && ev_is_active(&d->watch.settle)) {
                ev_ref(ev);
                ev_timer_stop(ev, &d->watch.settle);
        }
        if (ev && ev_is_active(&d->watch.io)) {
                ev_ref(ev);
                ev_io_stop(ev, &d->watch.io);
        }
        if (d->watch.fd >= 0)
                close(d->watch.fd);
        d->watch.fd = -1;
}
