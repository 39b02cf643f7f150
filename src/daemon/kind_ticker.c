/* kind = ticker: `speed` steps a second, one `step` record each, `steps`
 * of them (0: forever). The racers of the demo. */
#include "kind.h"

/* The pause between two steps is relative, so after a pause the race goes
 * on at its pace instead of catching up. */
static int ticker_run(evd_job *job) {
        const evd_task_conf *c = &job->conf;
        int64_t interval = (int64_t) (1e9 / c->speed);

        for (uint64_t distance = 1; c->steps == 0 || distance <= c->steps; distance++) {
                int r = evt_sleep(interval);

                if (r < 0)
                        return r;
                evd_log_emit(job->log, LOG_INFO, EVD_EV_STEP, c->name, EVD_FIELDS(EVD_NUM("distance", distance)),
                             "distance=%llu%s%s", (unsigned long long) distance, c->message ? " " : "",
                             c->message ? c->message : "");
        }
        return 0;
}

const evd_kind evd_kind_ticker = { .run = ticker_run };
