/* Sleeping: a wait with only a deadline. */
#include <errno.h>

#include "scheduler.h"

int evt_sleep_until(evt_deadline deadline) {
        evt_task *t;
        int r = evt__enter(&t);

        if (r < 0)
                return r;
        /* A deadline that has passed still lets the others run, so a task
         * that falls behind its schedule cannot starve the loop. */
        if (deadline.at <= evt_time_now())
                return evt_yield();
        evt__waits(t, "sleep", -1);
        r = evt__wait(t, deadline.at);
        /* Its own deadline is its end; a fail scope's is an error. */
        return r == -ETIMEDOUT && evt__cancel_status(t) == 0 ? 0 : r;
}

int evt_sleep(int64_t ns) {
        return evt_sleep_until(evt_deadline_in(ns));
}
