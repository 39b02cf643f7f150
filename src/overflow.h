/* Layer 2, sched: what happens when a task runs off the bottom of its
 * stack. The task is named on stderr and the process aborts. A guarded
 * stack faults; the SIGSEGV handler, on the thread's alternate signal
 * stack, tells that fault from others. A slab stack's canary is checked by
 * the scheduler whenever a task leaves the CPU. */
#pragma once

#include "scheduler.h"

/* For a new loop, on its thread: installs the SIGSEGV handler (once per
 * process) and gives the thread an alternate signal stack if it has none,
 * shared by its loops. 0, or -ENOMEM. */
int evt__overflow_catch_start(void);
/* For a loop that goes, on its thread: the alternate signal stack goes with
 * the thread's last loop. */
void evt__overflow_catch_stop(void);

/* Names t, which ran off the bottom of its stack, on stderr and aborts.
 * Async-signal-safe. */
_Noreturn void evt__overflow_abort(const evt_task *t);
