/* Job kinds: ticker (the racers of the demo) and sleep (a unit of work that
 * takes a while). Each kind returns 0 when done or a negative errno, and
 * evd_job_run logs the outcome, so every kind ends with one record. */
#include <errno.h>
#include <string.h>

#include "jobs.h"

const char *evd_kind_name(enum evd_kind kind) {
        switch (kind) {
        case EVD_KIND_TICKER:
                return "ticker";
        case EVD_KIND_SLEEP:
                return "sleep";
        }
        return "unknown";
}

/* `speed` steps per second, one `step` record each. The pause between two
 * steps is relative, so after a pause the race goes on at its pace instead
 * of catching up. */
static int run_ticker(evd_job *job) {
        const evd_task_conf *c = job->conf;
        int64_t interval = (int64_t) (1e9 / c->speed);

        for (uint64_t distance = 1; c->steps == 0 || distance <= c->steps; distance++) {
                evd_field f[] = { EVD_NUM("distance", distance) };
                int r = evt_sleep(interval);

                if (r < 0)
                        return r;
                evd_log_emit(job->log, LOG_INFO, "step", c->name, f, 1, "distance=%llu%s%s",
                             (unsigned long long) distance, c->message ? " " : "",
                             c->message ? c->message : "");
        }
        return 0;
}

static int run_sleep(evd_job *job) {
        return evt_sleep(job->conf->duration);
}

int evd_job_run(void *arg) {
        evd_job *job = arg;
        const char *name = job->conf->name;
        int64_t start = evt_time_now();
        int r;

        switch (job->conf->kind) {
        case EVD_KIND_TICKER:
                r = run_ticker(job);
                break;
        case EVD_KIND_SLEEP:
                r = run_sleep(job);
                break;
        default:
                r = -EINVAL;
                break;
        }

        {
                long long ms = (evt_time_now() - start) / 1000000;
                evd_field f[] = { EVD_NUM("duration_ms", ms), EVD_NUM("result", r) };

                /* This is the task's cleanup path: it runs even after a cancel
                 * (level-triggered, so nothing here may block). */
                if (r == 0)
                        evd_log_emit(job->log, LOG_INFO, "finished", name, f, 2, "finished after %lld ms", ms);
                else if (r == -ECANCELED)
                        evd_log_emit(job->log, LOG_NOTICE, "cancelled", name, f, 2, "cancelled after %lld ms",
                                     ms);
                else
                        evd_log_emit(job->log, LOG_ERR, "failed", name, f, 2, "failed after %lld ms: %s", ms,
                                     strerror(-r));
        }
        return r;
}
