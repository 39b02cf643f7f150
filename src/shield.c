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

        /* Not past a cancel scope opened inside the shield. */
        if (!t || t->shield_depth == (t->scope ? t->scope->shield_base : 0))
                return -EINVAL;
        t->shield_depth--;
        /* The cancel that waited is delivered at the scope's end. */
        return evt__cancel_status(t);
}
