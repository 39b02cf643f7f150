/* Monotonic time and deadlines. */
#include <time.h>

#include "evtask.h"

int64_t evt_time_now(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

evt_deadline evt_deadline_at(int64_t ns) {
        return EVT__DEADLINE(ns < 0 ? 0 : ns);
}

evt_deadline evt_deadline_in(int64_t ns) {
        int64_t now = evt_time_now();

        /* now is never negative, so only these two sums can overflow. */
        if (ns >= INT64_MAX - now)
                return EVT_FOREVER;
        return evt_deadline_at(ns < -now ? 0 : now + ns);
}

evt_deadline evt_deadline_min(evt_deadline a, evt_deadline b) {
        return a.at <= b.at ? a : b;
}

int64_t evt_deadline_left(evt_deadline deadline) {
        int64_t now;

        if (evt_deadline_is_forever(deadline))
                return INT64_MAX;
        now = evt_time_now();
        return deadline.at > now ? deadline.at - now : 0;
}

bool evt_deadline_is_forever(evt_deadline deadline) {
        return deadline.at == INT64_MAX;
}
