/* Mutexes: one permit (waitq.c) and the task that holds it, handed to
 * waiters one at a time in the order they came. */
#include <errno.h>
#include <stdlib.h>

#include "scheduler.h"

struct evt_mutex {
        evt_loop *loop;
        evt__permits permit;    /* n is 1 while nobody holds it */
        evt_task *owner;        /* NULL while free; a reference, so that an
                                 * owner that ends still has a name */
};

int evt_mutex_new(evt_loop *loop, evt_mutex **ret_mutex) {
        evt_mutex *m;

        if (!loop || !ret_mutex)
                return -EINVAL;
        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->loop = loop;
        m->permit.n = 1;
        evt__list_init(&m->permit.waiters);
        *ret_mutex = m;
        return 0;
}

void evt_mutex_free(evt_mutex *mutex) {
        if (!mutex)
                return;
        evt__waiters_wake_all(&mutex->permit.waiters, -EIDRM);
        evt_task_unref(mutex->owner);
        free(mutex);
}

int evt_mutex_lock(evt_mutex *mutex, evt_deadline deadline) {
        evt_task *t;
        int r;

        r = evt__enter_on(mutex, mutex ? mutex->loop : NULL, &t);
        if (r < 0)
                return r;
        if (mutex->owner == t)
                return -EDEADLK;
        evt__waits(t, "mutex", -1);
        r = evt__permits_acquire(&mutex->permit, t, deadline.at);
        if (r == 0)
                mutex->owner = evt_task_ref(t);
        return r;
}

int evt_mutex_unlock(evt_mutex *mutex) {
        if (!mutex)
                return -EINVAL;
        if (!mutex->owner || mutex->owner != evt_task_current())
                return -EPERM;
        /* The next owner sets itself when it runs; until then nobody holds
         * the mutex, and nobody can take it (its permit was handed on). */
        evt_task_unref(mutex->owner);
        mutex->owner = NULL;
        evt__permits_release(&mutex->permit);
        return 0;
}

evt_task *evt_mutex_owner(const evt_mutex *mutex) {
        return mutex ? mutex->owner : NULL;
}
