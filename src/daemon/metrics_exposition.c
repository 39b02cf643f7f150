/* What /metrics shows: the counters metrics.c keeps, the loop's and the
 * pool's counts, and the process basics, written in the Prometheus text
 * format 0.0.4, a piece at a time. Every metric is listed in evtaskd(8),
 * METRICS. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "http.h"
#include "metrics.h"

static const char *const failure_names[] = { EVD_FAILURE_LIST(EVD_ENUM_NAME) };

/* The states evd_status_state shows, one-hot per task. */
static const char *const state_names[] = { "running", "waiting", "suspended", "paused", "draining", "done" };

void evd_metrics_family(FILE *f, const char *name, const char *type, const char *help) {
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value, escaped as the text format wants it. */
static void label_value(FILE *f, const char *s) {
        for (; *s; s++) {
                if (*s == '\\' || *s == '"')
                        fputc('\\', f);
                if (*s == '\n')
                        fputs("\\n", f);
                else
                        fputc(*s, f);
        }
}

/* name{task="...",kind="..." then the caller's labels and value. */
static void task_sample(FILE *f, const char *name, const evd_task_metrics *t) {
        fprintf(f, "%s{task=\"", name);
        label_value(f, t->name);
        fprintf(f, "\",kind=\"%s\"", t->kind[0] ? t->kind : "unknown");
}

/* ---- the per-task families, written a piece at a time ---- */

struct evd_metrics_reader {
        evd_daemon *d;
        size_t family;          /* in families[]; past them: the daemon's */
        size_t task;            /* the next task of the family */
        size_t n_tasks;         /* the tasks when the scrape began */
        size_t by_state[ARRAY_SIZE(state_names)];
        char *buf;              /* the piece written, and not yet read */
        size_t len, off;
        bool done;
};

typedef struct family_row {
        const char *name, *type, *help;
        /* One task's samples; NULL: the counter at `offset`. */
        void (*task)(FILE *f, const struct family_row *fam, evd_metrics_reader *r, const evd_task_metrics *t);
        size_t offset;
} family_row;

static const char *task_state(evd_daemon *d, const evd_task_metrics *t) {
        evd_job *job = evd_jobs_find(d->jobs, t->name);

        return job ? evd_status_state(d, job->task) : "done";
}

static void state_one(FILE *f, const family_row *fam, evd_metrics_reader *r, const evd_task_metrics *t) {
        const char *state = task_state(r->d, t);

        for (size_t s = 0; s < ARRAY_SIZE(state_names); s++) {
                bool in = strcmp(state, state_names[s]) == 0;

                r->by_state[s] += in;
                task_sample(f, fam->name, t);
                fprintf(f, ",state=\"%s\"} %d\n", state_names[s], in);
        }
}

static void failures_one(FILE *f, const family_row *fam, evd_metrics_reader *r, const evd_task_metrics *t) {
        (void) r;
        for (size_t i = 0; i < EVD_FAILURE_COUNT; i++) {
                task_sample(f, fam->name, t);
                fprintf(f, ",reason=\"%s\"} %llu\n", failure_names[i], (unsigned long long) t->failures[i]);
        }
}

static void exit_code_one(FILE *f, const family_row *fam, evd_metrics_reader *r, const evd_task_metrics *t) {
        (void) r;
        if (!t->has_exit_code)
                return;
        task_sample(f, fam->name, t);
        fprintf(f, "} %d\n", t->last_exit_code);
}

/* A time, Unix seconds; absent while 0. */
static void time_one(FILE *f, const family_row *fam, const evd_task_metrics *t, double when) {
        if (when <= 0)
                return;
        task_sample(f, fam->name, t);
        fprintf(f, "} %.3f\n", when);
}

static void start_one(FILE *f, const family_row *fam, evd_metrics_reader *r, const evd_task_metrics *t) {
        (void) r;
        time_one(f, fam, t, t->last_start);
}

static void end_one(FILE *f, const family_row *fam, evd_metrics_reader *r, const evd_task_metrics *t) {
        (void) r;
        time_one(f, fam, t, t->last_end);
}

static void duration_one(FILE *f, const family_row *fam, evd_metrics_reader *r, const evd_task_metrics *t) {
        uint64_t count = 0;

        (void) fam;
        (void) r;
        for (size_t b = 0; b < EVD_RUN_BUCKETS; b++) {
                count += t->durations[b];
                task_sample(f, "evtask_task_run_duration_seconds_bucket", t);
                if (b < ARRAY_SIZE(evd_run_bounds))
                        fprintf(f, ",le=\"%g\"} %llu\n", evd_run_bounds[b], (unsigned long long) count);
                else
                        fprintf(f, ",le=\"+Inf\"} %llu\n", (unsigned long long) count);
        }
        task_sample(f, "evtask_task_run_duration_seconds_sum", t);
        fprintf(f, "} %.3f\n", t->duration_sum);
        task_sample(f, "evtask_task_run_duration_seconds_count", t);
        fprintf(f, "} %llu\n", (unsigned long long) count);
}

/* A counter of evd_task_metrics' own. */
#define COUNTER(metric, field, help) { metric, "counter", help, NULL, offsetof(evd_task_metrics, field) }

static const family_row families[] = {
        { "evtask_task_state", "gauge", "The task's state: 1 for the one it is in.", state_one, 0 },
        COUNTER("evtask_task_runs_total", runs, "Runs started (an exec command each, else each start)."),
        COUNTER("evtask_task_restarts_total", restarts,
                "Restarts by the restart policy, or by an operator or a reload."),
        COUNTER("evtask_task_cancels_total", cancels, "Runs that ended cancelled."),
        COUNTER("evtask_task_forced_total", forced, "Times the task was force-cancelled in a shutdown."),
        COUNTER("evtask_task_abandoned_total", abandoned, "Blocking calls of the task abandoned at exit."),
        COUNTER("evtask_task_output_records_total", output_records, "Output records of the task's runs."),
        COUNTER("evtask_task_output_bytes_total", output_bytes, "Bytes of the task's output records, as logged."),
        { "evtask_task_failures_total", "counter", "Runs that failed, by reason.", failures_one, 0 },
        { "evtask_task_last_exit_code", "gauge", "The exit code of the task's last run that exited.",
          exit_code_one, 0 },
        { "evtask_task_last_run_start_time_seconds", "gauge", "When the last run started, Unix time.", start_one,
          0 },
        { "evtask_task_last_run_end_time_seconds", "gauge", "When the last run ended, Unix time.", end_one, 0 },
        { "evtask_task_run_duration_seconds", "histogram", "How long the task's runs took.", duration_one, 0 },
};

/* Tasks written in one piece: a scrape of many tasks lets the loop run
 * between its pieces. */
#define TASKS_PER_PIECE 256

/* The next piece of the per-task families into f; false past them. */
static bool write_task_piece(evd_metrics_reader *r, FILE *f) {
        const evd_metrics *m = r->d->metrics;
        const family_row *fam;
        size_t end;

        if (r->family == ARRAY_SIZE(families))
                return false;
        fam = &families[r->family];
        if (r->task == 0)
                evd_metrics_family(f, fam->name, fam->type, fam->help);
        end = r->task + TASKS_PER_PIECE < r->n_tasks ? r->task + TASKS_PER_PIECE : r->n_tasks;
        for (; r->task < end; r->task++) {
                const evd_task_metrics *t = m->tasks[r->task];

                if (fam->task) {
                        fam->task(f, fam, r, t);
                        continue;
                }
                task_sample(f, fam->name, t);
                fprintf(f, "} %llu\n", (unsigned long long) *(const uint64_t *) ((const char *) t + fam->offset));
        }
        if (r->task == r->n_tasks) {
                r->family++;
                r->task = 0;
        }
        return true;
}

static void write_states(evd_metrics_reader *r, FILE *f) {
        evd_metrics_family(f, "evtask_tasks", "gauge", "Tasks by state.");
        for (size_t s = 0; s < ARRAY_SIZE(state_names); s++)
                fprintf(f, "evtask_tasks{state=\"%s\"} %zu\n", state_names[s], r->by_state[s]);
}

static void count_abandoned(const evt_call_info *info, void *data) {
        *(size_t *) data += !info->awaited;
}

/* The loop's step durations, from the library's buckets (EVT_STEP_BUCKETS:
 * decades from 1 ms). */
static void write_steps(const evt_loop_stats *ls, FILE *f) {
        uint64_t count = 0;
        double bound = 0.001;

        evd_metrics_family(f, "evtask_step_duration_seconds", "histogram",
                           "How long each step held the loop (timed while slow_step_warn is set).");
        for (size_t b = 0; b <= EVT_STEP_BUCKETS; b++, bound *= 10) {
                count += ls->steps[b];
                if (b < EVT_STEP_BUCKETS)
                        fprintf(f, "evtask_step_duration_seconds_bucket{le=\"%g\"} %llu\n", bound,
                                (unsigned long long) count);
                else
                        fprintf(f, "evtask_step_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
                                (unsigned long long) count);
        }
        fprintf(f, "evtask_step_duration_seconds_sum %.6f\nevtask_step_duration_seconds_count %llu\n",
                (double) ls->steps_ns / 1e9, (unsigned long long) count);
}

static void write_daemon(evd_daemon *d, FILE *f) {
        const evd_metrics *m = d->metrics;
        evt_phase phase = evt_lifecycle_phase(d->lc);
        evt_loop_stats ls = { 0 };
        evt_pool_stats ps = { 0 };
        size_t abandoned = 0;

        evt_loop_stats_get(d->loop, &ls);
        evt_pool_stats_get(d->pool, &ps);
        evt_loop_foreach_call(d->loop, count_abandoned, &abandoned);
        evd_metrics_family(f, "evtask_build_info", "gauge", "The evtaskd version, as a label; always 1.");
        fprintf(f, "evtask_build_info{version=\"%s\"} 1\n", EVTASK_VERSION);
        evd_metrics_family(f, "evtask_start_time_seconds", "gauge", "When the daemon started, Unix time.");
        fprintf(f, "evtask_start_time_seconds %.3f\n", m->start_time);
        evd_metrics_family(f, "evtask_paused", "gauge", "1 while the daemon is paused (SIGINT, evtaskctl pause).");
        fprintf(f, "evtask_paused %d\n", evt_loop_is_paused(d->loop));
        evd_metrics_family(f, "evtask_held_tasks", "gauge",
                           "Tasks suspended one at a time (evtaskctl pause TASK).");
        fprintf(f, "evtask_held_tasks %zu\n", ls.suspended);
        evd_metrics_family(f, "evtask_ready", "gauge", "1 while /readyz answers 200.");
        fprintf(f, "evtask_ready %d\n", evd_http_ready(d));
        evd_metrics_family(f, "evtask_phase", "gauge", "The lifecycle's phase: 1 for the one it is in.");
        for (evt_phase p = EVT_PHASE_RUNNING; p <= EVT_PHASE_DONE; p++)
                fprintf(f, "evtask_phase{phase=\"%s\"} %d\n", evt_phase_name(p), p == phase);
        evd_metrics_family(f, "evtask_pool_threads", "gauge", "Threads of the blocking pool, busy or idle.");
        fprintf(f, "evtask_pool_threads{state=\"busy\"} %zu\nevtask_pool_threads{state=\"idle\"} %zu\n",
                ps.threads - ps.idle, ps.idle);
        evd_metrics_family(f, "evtask_calls", "gauge", "Blocking calls in flight, queued or running.");
        fprintf(f, "evtask_calls{state=\"queued\"} %zu\nevtask_calls{state=\"running\"} %zu\n", ps.queued,
                ps.running);
        evd_metrics_family(f, "evtask_calls_completed_total", "counter", "Blocking calls whose function returned.");
        fprintf(f, "evtask_calls_completed_total %llu\n", (unsigned long long) ps.completed);
        evd_metrics_family(f, "evtask_calls_abandoned", "gauge",
                           "Blocking calls in flight whose task has given up on them.");
        fprintf(f, "evtask_calls_abandoned %zu\n", abandoned);
        evd_metrics_family(f, "evtask_loop_tasks", "gauge", "Tasks of the loop, helpers included (an exec run's readers).");
        fprintf(f, "evtask_loop_tasks %zu\n", ls.tasks);
        evd_metrics_family(f, "evtask_context_switches_total", "counter", "Context switches into tasks.");
        fprintf(f, "evtask_context_switches_total %llu\n", (unsigned long long) ls.switches);
        evd_metrics_family(f, "evtask_slow_steps_total", "counter", "Steps that held the loop longer than slow_step_warn.");
        fprintf(f, "evtask_slow_steps_total %llu\n", (unsigned long long) m->slow_steps);
        write_steps(&ls, f);
        evd_metrics_family(f, "evtask_reloads_total", "counter", "Config reloads, by result.");
        fprintf(f, "evtask_reloads_total{result=\"ok\"} %llu\nevtask_reloads_total{result=\"failed\"} %llu\n",
                (unsigned long long) m->reloads_ok, (unsigned long long) m->reloads_failed);
        evd_metrics_family(f, "evtask_signals_total", "counter", "Signals received, by signal.");
        for (size_t i = 0; i < EVD_SIGNALS_MAX && m->signals[i].name[0]; i++)
                fprintf(f, "evtask_signals_total{signal=\"%s\"} %llu\n", m->signals[i].name,
                        (unsigned long long) m->signals[i].count);
        evd_metrics_family(f, "evtask_log_records_total", "counter", "Records emitted on the loop's thread, by event.");
        for (int e = 0; e < EVD_EVENT_COUNT; e++)
                if (m->records[e])
                        fprintf(f, "evtask_log_records_total{event=\"%s\"} %llu\n", evd_event_name(e),
                                (unsigned long long) m->records[e]);
        evd_metrics_family(f, "evtask_log_records_dropped_total", "counter",
                           "Output records dropped (log_overflow = drop, or no memory to queue them).");
        fprintf(f, "evtask_log_records_dropped_total %llu\n", (unsigned long long) m->dropped);
}

int evd_metrics_reader_new(evd_daemon *d, evd_metrics_reader **ret) {
        evd_metrics_reader *r = calloc(1, sizeof(*r));

        if (!r)
                return -ENOMEM;
        r->d = d;
        r->n_tasks = d->metrics->n_tasks;
        *ret = r;
        return 0;
}

void evd_metrics_reader_free(evd_metrics_reader *r) {
        if (!r)
                return;
        free(r->buf);
        free(r);
}

/* Writes the next piece into r->buf: 0, 1 at the end, or -ENOMEM. */
static int next_piece(evd_metrics_reader *r) {
        FILE *f;

        free(r->buf);
        r->buf = NULL;
        r->len = r->off = 0;
        if (r->done)
                return 1;
        f = open_memstream(&r->buf, &r->len);
        if (!f)
                return -ENOMEM;
        if (!write_task_piece(r, f)) {
                write_states(r, f);
                write_daemon(r->d, f);
                evd_metrics_write_process(f);
                r->done = true;
        }
        if (ferror(f) | fclose(f))
                return -ENOMEM;
        return 0;
}

ssize_t evd_metrics_read(evd_metrics_reader *r, char *buf, size_t max) {
        size_t n;

        while (r->off == r->len) {
                int e = next_piece(r);

                if (e != 0)
                        return e < 0 ? e : 0;
        }
        n = r->len - r->off < max ? r->len - r->off : max;
        memcpy(buf, r->buf + r->off, n);
        r->off += n;
        return (ssize_t) n;
}
