/* Layer 2, wait queues: tasks that wait in line to be handed something (a
 * permit, a value), the mechanism under locks and channels.
 *
 * A waker takes the first waiter that still waits and hands it what it
 * waits for before waking it, so that a handoff is never lost and never
 * barged: nothing is left lying for a task that happens to run first. A
 * waiter that a cancel or its deadline woke first is leaving: it is no
 * longer WAITING (evt__wake's first wake wins), and it takes itself off the
 * queue when it runs; wakers pass it by. */
#include "scheduler.h"

int evt__waiter_wait(evt__waiter *w, evt_task *t, evt__list *queue, void *data, int64_t deadline) {
        int r;

        w->task = t;
        w->data = data;
        w->handed = false;
        evt__list_push_back(queue, &w->link);
        r = evt__wait(t, deadline);
        /* A waker took it off already; a cancel or the deadline did not. */
        evt__list_remove(&w->link);
        return r;
}

evt__waiter *evt__waiter_next(evt__list *queue) {
        evt__list *n;

        while ((n = evt__list_pop_front(queue))) {
                evt__waiter *w = evt__container_of(n, evt__waiter, link);

                if (w->task->state == EVT__TASK_WAITING)
                        return w;
        }
        return NULL;
}

bool evt__waiter_waits(const evt__list *queue) {
        const evt__list *n;

        evt__list_for_each(n, queue)
                if (evt__container_of(n, evt__waiter, link)->task->state == EVT__TASK_WAITING)
                        return true;
        return false;
}

void evt__waiter_hand(evt__waiter *w) {
        w->handed = true;
        evt__wake(w->task, 0);
}

void evt__waiters_wake_all(evt__list *queue, int result) {
        evt__list *n;

        while ((n = evt__list_pop_front(queue)))
                evt__wake(evt__container_of(n, evt__waiter, link)->task, result);
}

/* ---- permits: what semaphores and mutexes count --------------------------- */

/* Invariant: n > 0 only while no task waits, since a release hands its
 * permit to the first waiter instead of counting it. So a task that finds
 * n > 0 is first in line, and FIFO order needs no other check. */
int evt__permits_acquire(evt__permits *p, evt_task *t, int64_t deadline) {
        evt__waiter w;
        int r;

        if (p->n > 0) {
                p->n--;
                return 0;
        }
        r = evt__waiter_wait(&w, t, &p->waiters, NULL, deadline);
        /* Handed a permit, then cancelled before it ran: a cancelled waiter
         * takes nothing, so the permit goes on. */
        if (w.handed && r < 0)
                evt__permits_release(p);
        return r;
}

void evt__permits_release(evt__permits *p) {
        evt__waiter *w = evt__waiter_next(&p->waiters);

        if (w)
                evt__waiter_hand(w);
        else
                p->n++;
}
