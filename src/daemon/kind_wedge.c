/* kind = wedge: after `duration`, a task that stops yielding, as a bug
 * would. For testing a deployment's watchdog and the third-signal escape
 * hatch: the loop is wedged, signals still reach the handler, and only the
 * third shutdown signal or the service manager's watchdog ends the
 * process. */
#include "kind.h"

static int wedge_run(evd_job *job) {
        volatile uint64_t spins = 0;
        int r = evt_sleep(job->conf.duration);

        if (r < 0)
                return r;
        evd_log_emit(job->log, LOG_WARNING, EVD_EV_STEP, job->conf.name, EVD_NO_FIELDS, "wedging the loop now");
        for (;;)
                spins++;
        return 0;
}

const evd_kind evd_kind_wedge = { .run = wedge_run };
