/* Layer 3, reaching a loop from other threads: functions posted from any
 * thread run on the loop's thread, in the order they were posted, from an
 * ev_async callback. From there they may set events, send on channels
 * without waiting, spawn tasks: anything that does not need a task. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "scheduler.h"

struct post {
        struct post *next;
        void (*fn)(void *arg);
        void *arg;
};

struct evt_async {
        evt_loop *loop;
        evt__loop_observer observer; /* frees it with the loop */
        ev_async watcher;
        pthread_mutex_t lock;
        struct post *head;      /* under lock: posts not yet run, in order */
        struct post **tail;
        bool dispatching;       /* in async_cb: a free there waits for its end */
        bool freed;             /* evt_async_free came during dispatch */
};

/* Takes the posts queued so far and runs them, in order. */
static void run_posts(evt_async *a) {
        struct post *p;

        pthread_mutex_lock(&a->lock);
        p = a->head;
        a->head = NULL;
        a->tail = &a->head;
        pthread_mutex_unlock(&a->lock);
        while (p) {
                struct post *next = p->next;

                p->fn(p->arg);
                free(p);
                p = next;
        }
}

static void async_destroy(evt_async *a) {
        /* Posts that came before the free still run: their arguments may
         * own something. */
        run_posts(a);
        evt__loop_observer_remove(&a->observer);
        ev_async_stop(a->loop->ev, &a->watcher);
        pthread_mutex_destroy(&a->lock);
        free(a);
}

static void async_cb(struct ev_loop *ev, ev_async *w, int revents) {
        evt_async *a = w->data;

        (void) ev;
        (void) revents;
        /* A function may free this very object: that waits until the
         * dispatch is over. */
        a->dispatching = true;
        run_posts(a);
        a->dispatching = false;
        if (a->freed)
                async_destroy(a);
}

static void free_cb(evt__loop_observer *o) {
        evt_async_free(evt__container_of(o, evt_async, observer));
}

int evt_async_new(evt_loop *loop, evt_async **ret_async) {
        evt_async *a;
        int r;

        if (!loop || !ret_async)
                return -EINVAL;
        /* libev opens the loop's wake-up descriptor at the first
         * ev_async_start, and aborts if it cannot. */
        r = evt__fds_check(1);
        if (r < 0)
                return r;
        a = calloc(1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        a->loop = loop;
        a->tail = &a->head;
        pthread_mutex_init(&a->lock, NULL);
        a->observer.free_cb = free_cb;
        evt__loop_observer_add(loop, &a->observer);
        ev_async_init(&a->watcher, async_cb);
        a->watcher.data = a;
        /* Active and keeping libev running: while it exists, tasks waiting
         * for what another thread will post are not a deadlock. The
         * caller's, not a scheduler watcher (evt_loop_stats). */
        ev_async_start(loop->ev, &a->watcher);
        *ret_async = a;
        return 0;
}

void evt_async_free(evt_async *async) {
        if (!async)
                return;
        if (async->dispatching)
                async->freed = true;
        else
                async_destroy(async);
}

int evt_async_post(evt_async *async, void (*fn)(void *arg), void *arg) {
        struct post *p;

        if (!async || !fn)
                return -EINVAL;
        p = malloc(sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->next = NULL;
        p->fn = fn;
        p->arg = arg;
        pthread_mutex_lock(&async->lock);
        *async->tail = p;
        async->tail = &p->next;
        pthread_mutex_unlock(&async->lock);
        /* Thread-safe in libev; coalesced with other sends. */
        ev_async_send(async->loop->ev, &async->watcher);
        return 0;
}
