/* The loop's counts (evt_loop_stats_get): the scheduler's, and the blocking
 * calls in flight in its pools. A file above both, so that the scheduler
 * need not know the pools and each pool keeps its own count. */
#include <errno.h>
#include <string.h>

#include "pool.h"
#include "scheduler.h"

int evt_loop_stats_get(evt_loop *loop, evt_loop_stats *ret_stats) {
        if (!loop || !ret_stats)
                return -EINVAL;
        *ret_stats = (evt_loop_stats) {
                .tasks = loop->n_tasks,
                .stacks_used = loop->stacks.n_used,
                .stacks_free = loop->stacks.n_free,
                .watchers = loop->n_watchers,
                .calls = evt__pool_calls_in_flight(loop),
                .switches = loop->switches,
                .suspended = loop->n_suspended,
                .steps_ns = loop->steps_ns,
        };
        memcpy(ret_stats->steps, loop->steps, sizeof(loop->steps));
        return 0;
}
