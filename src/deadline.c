/* Deadlines of waits: one heap per loop, one timer for the whole heap.
 *
 * libev rounds the time it blocks up to a whole millisecond (its epoll and
 * poll backends take milliseconds), so a timer of its own wakes a task
 * 0 to 1 ms late: 0.5 ms on average. The loop keeps its tasks' deadlines in
 * a heap of its own instead, and arms one timerfd (nanoseconds, absolute
 * CLOCK_MONOTONIC, which is evt_time_now's clock) for the earliest; libev
 * just watches the descriptor. The kernel may still add its timer slack
 * (50 µs by default) to the wake-up. Without timerfd (another system, the build
 * option, or no descriptor left) one ev_timer stands in for it, at libev's
 * precision.
 *
 * After the timer fires it is armed at least WAKE_GAP later, so deadlines
 * that crowd together (100,000 in a second) are served in batches instead
 * of a wake-up each; a deadline that comes in earlier than the armed time
 * re-arms it. A deadline is never served early. */
#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#if EVT_HAVE_TIMERFD
#include <sys/timerfd.h>
#endif

#include "scheduler.h"

#define WAKE_GAP EVT_USEC(100)
#define HEAP_MIN 64

/* ---- the heap: entries carry their deadline, so sifting reads no node -- */

static void heap_set(evt__deadlines *h, size_t i, evt__deadline_entry e) {
        h->heap[i] = e;
        e.d->pos = i + 1;
}

static void sift_up(evt__deadlines *h, size_t i) {
        evt__deadline_entry e = h->heap[i];

        while (i > 0) {
                size_t parent = (i - 1) / 2;

                if (h->heap[parent].at <= e.at)
                        break;
                heap_set(h, i, h->heap[parent]);
                i = parent;
        }
        heap_set(h, i, e);
}

static void sift_down(evt__deadlines *h, size_t i) {
        evt__deadline_entry e = h->heap[i];

        for (;;) {
                size_t c = 2 * i + 1;

                if (c >= h->n)
                        break;
                if (c + 1 < h->n && h->heap[c + 1].at < h->heap[c].at)
                        c++;
                if (e.at <= h->heap[c].at)
                        break;
                heap_set(h, i, h->heap[c]);
                i = c;
        }
        heap_set(h, i, e);
}

static int heap_grow(evt__deadlines *h) {
        size_t cap = h->cap ? 2 * h->cap : HEAP_MIN;
        evt__deadline_entry *heap;

        if (cap > SIZE_MAX / sizeof(*heap))
                return -ENOMEM;
        heap = realloc(h->heap, cap * sizeof(*heap));
        if (!heap)
                return -ENOMEM;
        h->heap = heap;
        h->cap = cap;
        return 0;
}

/* A heap that has shrunk to a quarter gives half back. */
static void heap_shrink(evt__deadlines *h) {
        evt__deadline_entry *heap;

        if (h->cap <= HEAP_MIN || h->n > h->cap / 4)
                return;
        heap = realloc(h->heap, h->cap / 2 * sizeof(*heap));
        if (heap) {
                h->heap = heap;
                h->cap /= 2;
        }
}

/* ---- the one timer ------------------------------------------------------ */

static void fallback_cb(struct ev_loop *ev, ev_timer *w, int revents);
/* A timerfd on first use; on failure, the ev_timer for good. */
static void timer_open(evt__deadlines *h) {
        h->opened = true;
#if EVT_HAVE_TIMERFD
        h->fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (h->fd >= 0)
                ev_io_set(&h->io, h->fd, EV_READ);
#endif
}

static void timer_arm(evt_loop *l, int64_t at) {
        evt__deadlines *h = &l->deadlines;
        double after;

        h->armed_at = at;
#if EVT_HAVE_TIMERFD
        if (h->fd >= 0) {
                struct itimerspec its = { { 0, 0 }, { 0, 0 } };

                /* A 32-bit time_t ends in 2038: fire then, for nothing, and
                 * be armed again. */
                if (sizeof(time_t) < sizeof(int64_t) && at / 1000000000 > INT32_MAX)
                        at = (int64_t) INT32_MAX * 1000000000;
                its.it_value.tv_sec = (time_t) (at / 1000000000);
                its.it_value.tv_nsec = (long) (at % 1000000000);

                if (timerfd_settime(h->fd, TFD_TIMER_ABSTIME, &its, NULL) == 0)
                        return;
                /* Cannot fail with these arguments; if it does, libev's. */
                ev_io_stop(l->ev, &h->io);
                close(h->fd);
                h->fd = -1;
        }
#endif
        /* libev counts from the time it cached at the start of its
         * iteration: bring that up to now, read after ours, so that the
         * timer fires late by the gap if anything, not early. */
        after = (double) (at - evt_time_now()) / 1e9;
        ev_now_update(l->ev);
        ev_timer_stop(l->ev, &h->timer);
        ev_timer_set(&h->timer, after > 0 ? after : 0, 0.);
        ev_timer_start(l->ev, &h->timer);
}

/* The timer's watcher runs while there are deadlines: a scheduler watcher,
 * so that evt_loop_run knows a waiting task can be woken. */
static void timer_watch(evt_loop *l, bool on) {
        evt__deadlines *h = &l->deadlines;

        if (on == h->watching)
                return;
        h->watching = on;
        if (on) {
                if (h->fd >= 0)
                        ev_io_start(l->ev, &h->io);
                evt__watcher_started(l);
        } else {
                if (h->fd >= 0)
                        ev_io_stop(l->ev, &h->io);
                else
                        ev_timer_stop(l->ev, &h->timer);
                h->armed_at = INT64_MAX;
                evt__watcher_stopped(l);
        }
}

/* Wakes every task whose deadline has passed, then arms the timer for the
 * next: if it woke any, WAKE_GAP from now at the earliest. */
static void expire(evt_loop *l) {
        evt__deadlines *h = &l->deadlines;
        int64_t now = evt_time_now(), next;
        bool woke = false;

        h->armed_at = INT64_MAX;
        while (h->n > 0 && h->heap[0].at <= now) {
                evt__deadline *d = h->heap[0].d;

                evt__deadline_remove(l, d);
                evt__wake(d->task, -ETIMEDOUT);
                woke = true;
        }
        if (h->n == 0)
                return;
        /* A fire for a deadline that has gone since woke nobody: no gap. */
        next = h->heap[0].at;
        if (woke && next < now + WAKE_GAP)
                next = now + WAKE_GAP;
        timer_arm(l, next);
}

#if EVT_HAVE_TIMERFD
static void timerfd_cb(struct ev_loop *ev, ev_io *w, int revents) {
        evt_loop *l = w->data;
        uint64_t expirations;
        ssize_t n;

        (void) ev;
        (void) revents;
        /* Non-blocking: nothing to read (a re-arm since) is fine. */
        n = read(l->deadlines.fd, &expirations, sizeof(expirations));
        (void) n;
        expire(l);
}
#endif

static void fallback_cb(struct ev_loop *ev, ev_timer *w, int revents) {
        (void) ev;
        (void) revents;
        expire(w->data);
}

/* ---- the interface ------------------------------------------------------ */

void evt__deadlines_init(evt_loop *l) {
        evt__deadlines *h = &l->deadlines;

        h->heap = NULL;
        h->n = h->cap = 0;
        h->armed_at = INT64_MAX;
        h->fd = -1;
        h->opened = false;
        h->watching = false;
        h->pause_stops = false;
        evt__list_init(&h->frozen);
        h->paused_at = 0;
#if EVT_HAVE_TIMERFD
        ev_init(&h->io, timerfd_cb);
#endif
        h->io.data = l;
        ev_init(&h->timer, fallback_cb);
        h->timer.data = l;
}

void evt__deadlines_done(evt_loop *l) {
        evt__deadlines *h = &l->deadlines;

        assert(h->n == 0 && !h->watching);
        if (h->fd >= 0)
                close(h->fd);
        free(h->heap);
        h->heap = NULL;
}

/* Does a pause stop the clock of d now? */
static bool freezes(const evt_loop *l, const evt__deadline *d) {
        return l->deadlines.pause_stops && l->paused && !(d->task->flags & EVT_TASK_NOPAUSE);
}

int evt__deadline_add(evt_loop *l, evt__deadline *d) {
        evt__deadlines *h = &l->deadlines;

        /* A wait begun during a pause (the step under way at the pause):
         * its clock starts at the resume. */
        if (freezes(l, d)) {
                d->frozen = true;
                evt__list_push_back(&h->frozen, &d->frozen_link);
                return 0;
        }
        if (h->n == h->cap && heap_grow(h) < 0)
                return -ENOMEM;
        if (!h->opened)
                timer_open(h);
        h->heap[h->n] = (evt__deadline_entry) { .at = d->at, .d = d };
        sift_up(h, h->n++);
        timer_watch(l, true);
        if (d->at < h->armed_at)
                timer_arm(l, d->at);
        return 0;
}

void evt__deadline_remove(evt_loop *l, evt__deadline *d) {
        evt__deadlines *h = &l->deadlines;
        size_t i = d->pos - 1;

        if (d->frozen) {
                d->frozen = false;
                evt__list_remove(&d->frozen_link);
                return;
        }
        assert(d->pos > 0 && h->heap[i].d == d);
        d->pos = 0;
        if (--h->n > i) {
                h->heap[i] = h->heap[h->n];
                h->heap[i].d->pos = i + 1;
                if (i > 0 && h->heap[i].at < h->heap[(i - 1) / 2].at)
                        sift_up(h, i);
                else
                        sift_down(h, i);
        }
        /* The timer stays armed for a deadline that has gone: it fires for
         * nothing, once, which costs less than re-arming at each removal. */
        if (h->n == 0)
                timer_watch(l, false);
        heap_shrink(h);
}

/* ---- pauses that stop the clock ---------------------------------------- */

void evt__deadlines_pause(evt_loop *l) {
        evt__deadlines *h = &l->deadlines;
        size_t i = 0;

        if (!h->pause_stops)
                return;
        h->paused_at = evt_time_now();
        /* Those due already are served as if the pause came later. */
        while (i < h->n) {
                evt__deadline *d = h->heap[i].d;

                if (d->at > h->paused_at && freezes(l, d)) {
                        evt__deadline_remove(l, d); /* moves another entry to i */
                        d->frozen = true;
                        evt__list_push_back(&h->frozen, &d->frozen_link);
                } else {
                        i++;
                }
        }
}

/* A time moved on by the pause's length, never past EVT__NEVER. */
static int64_t moved(int64_t at, int64_t by) {
        return at >= EVT__NEVER - by ? EVT__NEVER : at + by;
}

void evt__deadlines_resume(evt_loop *l) {
        evt__deadlines *h = &l->deadlines;
        int64_t paused;
        evt__list *n;

        if (!h->pause_stops)
                return;
        paused = evt_time_now() - h->paused_at;
        /* The scopes of pausable tasks: deadlines still ahead at the pause
         * move on (one that had passed stays passed). */
        evt__list_for_each(n, &l->tasks) {
                evt_task *t = evt__container_of(n, evt_task, link);

                if (t->flags & EVT_TASK_NOPAUSE)
                        continue;
                for (struct evt_scope *s = t->scope; s; s = s->parent)
                        if (s->deadline != EVT__NEVER && s->deadline > h->paused_at)
                                s->deadline = moved(s->deadline, paused);
        }
        while ((n = evt__list_pop_front(&h->frozen))) {
                evt__deadline *d = evt__container_of(n, evt__deadline, frozen_link);

                d->frozen = false;
                d->at = moved(d->at > h->paused_at ? d->at : h->paused_at, paused);
                if (evt__deadline_add(l, d) < 0) {
                        /* No room in the heap for it again: it passes now,
                         * as a wait whose deadline cannot be kept. */
                        evt__wake(d->task, -ENOMEM);
                }
        }
}
