/* kind = sleep: a unit of work that takes `duration`, and can be
 * cancelled or shielded like any other. */
#include "kind.h"

static int sleep_run(evd_job *job) {
        return evt_sleep(job->conf.duration);
}

const evd_kind evd_kind_sleep = { .run = sleep_run };
