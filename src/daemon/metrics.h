/* The counters behind /metrics, shared by their two files: metrics.c
 * (counting the records into them) and metrics_exposition.c (writing them
 * in the Prometheus text format). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "log.h"
#include "name_index.h"
#include "util.h"

/* Why a run failed, from the fields of its `failed` record. */
#define EVD_FAILURE_LIST(X)                                                             \
        X(EVD_FAIL_EXIT, "exit")            /* an exec run exited non-zero */           \
        X(EVD_FAIL_SIGNAL, "signal")        /* ... was killed by a signal */            \
        X(EVD_FAIL_TIMEOUT, "timeout")      /* ... was ended by its timeout */          \
        X(EVD_FAIL_START, "cannot_start")   /* a run or task could not start */        \
        X(EVD_FAIL_START_LIMIT, "start_limit") /* it gave up at start_limit */         \
        X(EVD_FAIL_ERROR, "error")          /* a task's body returned an error */

enum evd_failure { EVD_FAILURE_LIST(EVD_ENUM_ID) EVD_FAILURE_COUNT };

#define EVD_SIGNALS_MAX 32

/* The upper bounds of the run duration histogram's buckets, in seconds. */
static const double evd_run_bounds[] = { 0.1, 1, 10, 100, 1000 };
#define EVD_RUN_BUCKETS (ARRAY_SIZE(evd_run_bounds) + 1)

typedef struct evd_task_metrics {
        char *name;
        char kind[16];          /* from its `spawned` record */
        uint64_t spawns;        /* `spawned` records: the first start, then restarts */
        bool restart_due;       /* a `restarting` record announced the next run */
        uint64_t runs, restarts, cancels, forced, abandoned, output_records, output_bytes;
        uint64_t failures[EVD_FAILURE_COUNT];
        uint64_t durations[EVD_RUN_BUCKETS]; /* runs whose duration is known, by it */
        double duration_sum;    /* seconds */
        double last_start, last_end; /* Unix time; 0: none yet */
        int last_exit_code;
        bool has_exit_code;
} evd_task_metrics;

struct evd_metrics {
        evd_task_metrics **tasks; /* in the order first seen */
        size_t n_tasks, cap;
        evd_name_index by_name;
        uint64_t records[EVD_EVENT_COUNT];
        uint64_t reloads_ok, reloads_failed, slow_steps, dropped;
        struct {
                char name[16];
                uint64_t count;
        } signals[EVD_SIGNALS_MAX];
        double start_time;      /* Unix time */
};
