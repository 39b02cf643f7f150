/* Shield scopes: regions of a task in which cancellation waits. */
#include <errno.h>

#include "scheduler.h"

int evt_shield_push(void) {
        evt_task *t = evt_task_current();

        if (!t)
                return -EINVAL;
        t->shield_depth++;
        return 0;
}

int evt_shield_pop(void) {
        evt_task *t = evt_task_current();

        if (!t || t->shield_depth == 0)
                return -EINVAL;
        t->shield_depth--;
        /* The cancel that waited is delivered at the scope's end. */
        return evt__cancel_deliverable(t) ? -ECANCELED : 0;
}
