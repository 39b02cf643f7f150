/* Events: a flag that tasks wait for. */
#include <errno.h>
#include <stdlib.h>

#include "scheduler.h"

struct evt_event {
        evt_loop *loop;
        bool set;
        evt__list waiters;      /* evt_task.wait_link */
};

int evt_event_new(evt_loop *loop, evt_event **ret_event) {
        evt_event *e;

        if (!loop || !ret_event)
                return -EINVAL;
        e = calloc(1, sizeof(*e));
        if (!e)
                return -ENOMEM;
        e->loop = loop;
        evt__list_init(&e->waiters);
        *ret_event = e;
        return 0;
}

void evt_event_free(evt_event *event) {
        if (!event)
                return;
        evt__wake_all(&event->waiters, -EIDRM);
        free(event);
}

int evt_event_set(evt_event *event) {
        if (!event)
                return -EINVAL;
        event->set = true;
        evt__wake_all(&event->waiters, 0);
        return 0;
}

int evt_event_clear(evt_event *event) {
        if (!event)
                return -EINVAL;
        event->set = false;
        return 0;
}

bool evt_event_is_set(const evt_event *event) {
        return event && event->set;
}

int evt_event_wait(evt_event *event, evt_deadline deadline) {
        evt_task *t;
        int r;

        r = evt__enter_on(event, event ? event->loop : NULL, &t);
        if (r < 0)
                return r;
        if (event->set)
                return 0;
        evt__waits(t, "event", -1);
        return evt__wait_on(t, &event->waiters, deadline.at);
}
