/* kind = blocking: `duration` of CPU work on a pool thread, with a
 * checkpoint every `check_every` of it, where the thread waits while the
 * daemon is paused and stops once asked to (check_every = 0: never, as a
 * function that ignores its token). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kind.h"

/* The thread's copy of what it needs. The thread may be abandoned and
 * outlive the job, the config and the loop, so it shares nothing with
 * them; the pool frees this when the function returns. */
struct blocking_work {
        evd_log *log;           /* never freed while a thread may run */
        int64_t duration;
        int64_t check_every;    /* 0: never checks its token */
        char name[];
};

/* Some CPU work that the compiler cannot drop. */
static uint64_t crunch(uint64_t x) {
        for (int i = 0; i < 4096; i++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
        }
        return x;
}

/* Runs on a pool thread: `duration` of work in slices of `check_every`,
 * a checkpoint after each. Time spent waiting at a checkpoint is not work:
 * the job ends after `duration` of work. */
static int blocking_fn(evt_token *token, void *arg) {
        struct blocking_work *w = arg;
        volatile uint64_t sink;
        uint64_t x = 88172645463325252ull;
        int64_t worked = 0;

        for (uint64_t checks = 1; worked < w->duration; checks++) {
                int64_t slice = w->duration - worked, start = evt_time_now();
                int r;

                if (w->check_every > 0 && w->check_every < slice)
                        slice = w->check_every;
                while (evt_time_now() - start < slice)
                        x = crunch(x);
                worked += evt_time_now() - start;
                if (w->check_every == 0)
                        continue;
                r = evt_token_checkpoint(token);
                if (r < 0)
                        return r;
                evd_log_emit(w->log, LOG_INFO, EVD_EV_STEP, w->name,
                             EVD_FIELDS(EVD_NUM("checks", checks), EVD_NUM("worked_ms", worked / 1000000)),
                             "checkpoint %llu, %lld ms of work", (unsigned long long) checks,
                             (long long) (worked / 1000000));
        }
        sink = x;
        (void) sink;
        return 0;
}

static int blocking_run(evd_job *job) {
        const evd_task_conf *c = &job->conf;
        size_t len = strlen(c->name);
        struct blocking_work *w = malloc(sizeof(*w) + len + 1);
        evt_call_opts opts = { .arg_free = free };
        int result = 0, r;

        if (!w)
                return -ENOMEM;
        w->log = job->log;
        w->duration = c->duration;
        w->check_every = c->check_every;
        memcpy(w->name, c->name, len + 1);
        r = evt_pool_call(job->pool, blocking_fn, w, &opts, EVT_FOREVER, &result);
        if (r == -EINVAL || r == -EAGAIN)
                free(w); /* the two results that leave arg with the caller */
        return r < 0 ? r : result;
}

const evd_kind evd_kind_blocking = { .run = blocking_run };
