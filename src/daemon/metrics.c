/* What /metrics counts: counters fed by the daemon's own records (a
 * task's runs, failures, cancels and output are each a record already, so
 * counting them touches no job). metrics_exposition.c writes them. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon.h"
#include "http.h"
#include "metrics.h"

static double wall_now(void) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

int evd_metrics_new(evd_metrics **ret) {
        evd_metrics *m = calloc(1, sizeof(*m));

        if (!m)
                return -ENOMEM;
        m->start_time = wall_now();
        *ret = m;
        return 0;
}

void evd_metrics_free(evd_metrics *m) {
        if (!m)
                return;
        for (size_t i = 0; i < m->n_tasks; i++) {
                free(m->tasks[i]->name);
                free(m->tasks[i]);
        }
        free(m->tasks);
        evd_name_index_free(&m->by_name);
        free(m);
}

int evd_metrics_task_counts(const evd_metrics *m, const char *name, evd_task_counts *ret) {
        const evd_task_metrics *t;
        uintptr_t i;

        if (!m || evd_name_index_get(&m->by_name, name, &i) < 0)
                return -ENOENT;
        t = m->tasks[i];
        *ret = (evd_task_counts) { .runs = t->runs, .restarts = t->restarts, .last_exit_code = t->last_exit_code,
                                   .has_exit_code = t->has_exit_code };
        for (size_t k = 0; k < EVD_FAILURE_COUNT; k++)
                ret->failures += t->failures[k];
        return 0;
}

/* ---- counting records ---- */

static evd_task_metrics *task_get(evd_metrics *m, const char *name) {
        evd_task_metrics *t;
        uintptr_t i;

        if (evd_name_index_get(&m->by_name, name, &i) == 0)
                return m->tasks[i];
        if (m->n_tasks == m->cap) {
                size_t cap = m->cap ? 2 * m->cap : 64;
                evd_task_metrics **p = realloc(m->tasks, cap * sizeof(*p));

                if (!p)
                        return NULL;
                m->tasks = p;
                m->cap = cap;
        }
        t = calloc(1, sizeof(*t));
        if (!t || !(t->name = strdup(name)) || evd_name_index_put(&m->by_name, t->name, m->n_tasks, NULL) < 0) {
                if (t)
                        free(t->name);
                free(t);
                return NULL;
        }
        m->tasks[m->n_tasks++] = t;
        return t;
}

static const evd_field *field(const evd_field *f, size_t n, const char *key) {
        for (size_t i = 0; i < n; i++)
                if (strcmp(f[i].key, key) == 0)
                        return &f[i];
        return NULL;
}

/* Why a run failed: an exec run's end has its exit code or signal (and
 * whether its timeout ended it), a task body's its duration, a give-up its
 * start_limit; a record with none is about a run or task that could not
 * start. */
static enum evd_failure failure_reason(const evd_field *f, size_t n) {
        const evd_field *timed_out = field(f, n, "timed_out");

        if (timed_out && timed_out->num)
                return EVD_FAIL_TIMEOUT;
        return field(f, n, "start_limit")     ? EVD_FAIL_START_LIMIT
               : field(f, n, "exit_code")     ? EVD_FAIL_EXIT
               : field(f, n, "signal_number") ? EVD_FAIL_SIGNAL
               : field(f, n, "duration_ms")   ? EVD_FAIL_ERROR
                                              : EVD_FAIL_START;
}

/* A run ended: its duration and exit code, when the record has them. */
static void run_ended(evd_task_metrics *t, const evd_field *f, size_t n) {
        const evd_field *ms = field(f, n, "duration_ms"), *code = field(f, n, "exit_code");

        t->last_end = wall_now();
        if (ms) {
                double s = (double) ms->num / 1e3;
                size_t b = 0;

                while (b < ARRAY_SIZE(evd_run_bounds) && s > evd_run_bounds[b])
                        b++;
                t->durations[b]++;
                t->duration_sum += s;
        }
        if (code) {
                t->last_exit_code = (int) code->num;
                t->has_exit_code = true;
        }
}

static void signal_count(evd_metrics *m, const evd_field *f, size_t n) {
        const evd_field *sig = field(f, n, "signal");

        for (size_t i = 0; sig && sig->str && i < EVD_SIGNALS_MAX; i++) {
                if (!m->signals[i].name[0])
                        snprintf(m->signals[i].name, sizeof(m->signals[i].name), "%s", sig->str);
                if (strcmp(m->signals[i].name, sig->str) == 0) {
                        m->signals[i].count++;
                        return;
                }
        }
}

void evd_metrics_observe(void *data, evd_event event, const char *task, const evd_field *f, size_t n,
                         const char *msg) {
        evd_metrics *m = data;
        evd_task_metrics *t = NULL;
        const evd_field *kind;

        m->records[event]++;
        switch (event) {
        case EVD_EV_RELOADED:
                m->reloads_ok++;
                return;
        case EVD_EV_RELOAD_FAILED:
                m->reloads_failed++;
                return;
        case EVD_EV_SLOW_STEP:
                m->slow_steps++;
                return;
        case EVD_EV_SIGNAL:
                signal_count(m, f, n);
                return;
        case EVD_EV_DROPPED:
                kind = field(f, n, "records");
                m->dropped += kind ? (uint64_t) kind->num : 0;
                return;
        case EVD_EV_SPAWNED:
        case EVD_EV_RUN:
        case EVD_EV_RESTARTING:
        case EVD_EV_FINISHED:
        case EVD_EV_FAILED:
        case EVD_EV_CANCELLED:
        case EVD_EV_FORCED:
        case EVD_EV_ABANDONED:
        case EVD_EV_OUTPUT:
                t = task ? task_get(m, task) : NULL;
                break;
        default:
                return;
        }
        if (!t)
                return;
        switch (event) {
        case EVD_EV_SPAWNED:
                /* A task started again (restart, start, a reload's change)
                 * is a restart; an exec job counts its runs by their `run`
                 * records. */
                t->restarts += t->spawns++ > 0;
                kind = field(f, n, "kind");
                if (kind && kind->str)
                        snprintf(t->kind, sizeof(t->kind), "%s", kind->str);
                if (strcmp(t->kind, "exec") == 0)
                        break;
                /* fallthrough */
        case EVD_EV_RUN:
                t->restarts += t->restart_due;
                t->restart_due = false;
                t->runs++;
                t->last_start = wall_now();
                break;
        case EVD_EV_RESTARTING:
                /* The next run is the restart policy's, not the schedule's:
                 * counted when it starts. */
                t->restart_due = true;
                break;
        case EVD_EV_FINISHED:
                run_ended(t, f, n);
                break;
        case EVD_EV_FAILED:
                run_ended(t, f, n);
                t->failures[failure_reason(f, n)]++;
                break;
        case EVD_EV_CANCELLED:
                run_ended(t, f, n);
                t->cancels++;
                break;
        case EVD_EV_FORCED:
                t->forced++;
                break;
        case EVD_EV_ABANDONED:
                t->abandoned++;
                break;
        case EVD_EV_OUTPUT:
                t->output_records++;
                t->output_bytes += strlen(msg);
                break;
        default:
                break;
        }
}
