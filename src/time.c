/* Monotonic time and deadlines. */
#include <time.h>

#include "evtask.h"

int64_t evt_time_now(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t evt_deadline_in(int64_t ns) {
        int64_t now = evt_time_now();

        if (ns <= 0)
                return now + ns;
        if (ns >= EVT_FOREVER - now)
                return EVT_FOREVER;
        return now + ns;
}
