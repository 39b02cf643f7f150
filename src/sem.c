/* Counting semaphores: permits taken and given back, handed to waiters one
 * at a time in the order they came (waitq.c). */
#include <errno.h>
#include <stdlib.h>

#include "scheduler.h"

struct evt_sem {
        evt_loop *loop;
        evt__permits permits;
};

int evt_sem_new(evt_loop *loop, size_t permits, evt_sem **ret_sem) {
        evt_sem *s;

        if (!loop || !ret_sem)
                return -EINVAL;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->loop = loop;
        s->permits.n = permits;
        evt__list_init(&s->permits.waiters);
        *ret_sem = s;
        return 0;
}

void evt_sem_free(evt_sem *sem) {
        if (!sem)
                return;
        evt__waiters_wake_all(&sem->permits.waiters, -EIDRM);
        free(sem);
}

int evt_sem_acquire(evt_sem *sem, evt_deadline deadline) {
        evt_task *t;
        int r;

        r = evt__enter_on(sem, sem ? sem->loop : NULL, &t);
        if (r < 0)
                return r;
        evt__waits(t, "semaphore", -1);
        return evt__permits_acquire(&sem->permits, t, deadline.at);
}

int evt_sem_release(evt_sem *sem) {
        if (!sem)
                return -EINVAL;
        if (sem->permits.n == SIZE_MAX)
                return -EOVERFLOW;
        evt__permits_release(&sem->permits);
        return 0;
}

size_t evt_sem_value(const evt_sem *sem) {
        return sem ? sem->permits.n : 0;
}
