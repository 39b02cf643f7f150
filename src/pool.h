/* Layer 3, blocking calls: what the loop's other parts ask of its pools
 * (pool.c). */
#pragma once

#include <stddef.h>

#include "evtask.h"

/* Blocking calls in flight in all of the loop's pools: each pool's
 * evt_pool_stats.calls, summed. */
size_t evt__pool_calls_in_flight(const evt_loop *loop);
