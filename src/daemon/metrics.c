/* What /metrics shows: counters fed by the daemon's own records (a task's
 * runs, failures, cancels and output are each a record already, so
 * counting them touches no job), the loop's and the pool's counts, and the
 * process basics, written in the Prometheus text format 0.0.4. Every
 * metric is listed in evtaskd(8), METRICS. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "http.h"
#include "name_index.h"

/* Why a run failed, from the fields of its `failed` record. */
#define FAILURE_LIST(X)                                                         \
        X(FAIL_EXIT, "exit")            /* an exec run exited non-zero */       \
        X(FAIL_SIGNAL, "signal")        /* ... was killed by a signal */        \
        X(FAIL_START, "start")          /* ... could not be started */          \
        X(FAIL_ERROR, "error")          /* a task's body returned an error */

enum failure { FAILURE_LIST(EVD_ENUM_ID) FAILURE_COUNT };
static const char *const failure_names[] = { FAILURE_LIST(EVD_ENUM_NAME) };

/* The states evd_status_state shows, one-hot per task. */
static const char *const state_names[] = { "running", "waiting", "suspended", "paused", "draining", "done" };

#define SIGNALS_MAX 32

typedef struct task_metrics {
        char *name;
        char kind[16];          /* from its `spawned` record */
        uint64_t runs, cancels, forced, abandoned, output_records, output_bytes;
        uint64_t failures[FAILURE_COUNT];
        uint64_t durations;     /* runs whose duration is known */
        double duration_sum;    /* seconds */
        double last_start, last_end; /* Unix time; 0: none yet */
        int last_exit_code;
        bool has_exit_code;
} task_metrics;

struct evd_metrics {
        task_metrics **tasks;   /* in the order first seen */
        size_t n_tasks, cap;
        evd_name_index by_name;
        uint64_t records[EVD_EVENT_COUNT];
        uint64_t reloads_ok, reloads_failed, slow_steps;
        struct {
                char name[16];
                uint64_t count;
        } signals[SIGNALS_MAX];
        double start_time;      /* Unix time */
};

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

/* ---- counting records ---- */

static task_metrics *task_get(evd_metrics *m, const char *name) {
        task_metrics *t;
        uintptr_t i;

        if (evd_name_index_get(&m->by_name, name, &i) == 0)
                return m->tasks[i];
        if (m->n_tasks == m->cap) {
                size_t cap = m->cap ? 2 * m->cap : 64;
                task_metrics **p = realloc(m->tasks, cap * sizeof(*p));

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

/* A run ended: its duration and exit code, when the record has them. */
static void run_ended(task_metrics *t, const evd_field *f, size_t n) {
        const evd_field *ms = field(f, n, "duration_ms"), *code = field(f, n, "exit_code");

        t->last_end = wall_now();
        if (ms) {
                t->durations++;
                t->duration_sum += (double) ms->num / 1e3;
        }
        if (code) {
                t->last_exit_code = (int) code->num;
                t->has_exit_code = true;
        }
}

static void signal_count(evd_metrics *m, const evd_field *f, size_t n) {
        const evd_field *sig = field(f, n, "signal");

        for (size_t i = 0; sig && sig->str && i < SIGNALS_MAX; i++) {
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
        task_metrics *t = NULL;
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
        case EVD_EV_SPAWNED:
        case EVD_EV_RUN:
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
                /* An exec job counts its runs by their `run` records. */
                kind = field(f, n, "kind");
                if (kind && kind->str)
                        snprintf(t->kind, sizeof(t->kind), "%s", kind->str);
                if (strcmp(t->kind, "exec") == 0)
                        break;
                /* fallthrough */
        case EVD_EV_RUN:
                t->runs++;
                t->last_start = wall_now();
                break;
        case EVD_EV_FINISHED:
                run_ended(t, f, n);
                break;
        case EVD_EV_FAILED:
                run_ended(t, f, n);
                t->failures[field(f, n, "exit_code")       ? FAIL_EXIT
                            : field(f, n, "signal_number") ? FAIL_SIGNAL
                            : field(f, n, "run")           ? FAIL_START
                                                           : FAIL_ERROR]++;
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

/* ---- the exposition ---- */

static void family(FILE *f, const char *name, const char *type, const char *help) {
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
static void task_sample(FILE *f, const char *name, const task_metrics *t) {
        fprintf(f, "%s{task=\"", name);
        label_value(f, t->name);
        fprintf(f, "\",kind=\"%s\"", t->kind[0] ? t->kind : "unknown");
}

typedef uint64_t counter_fn(const task_metrics *t);
#define COUNTER(field) \
        static uint64_t get_##field(const task_metrics *t) { return t->field; }
COUNTER(runs)
COUNTER(cancels)
COUNTER(forced)
COUNTER(abandoned)
COUNTER(output_records)
COUNTER(output_bytes)

/* The per-task counters: X(metric, field, help). */
#define TASK_COUNTERS(X)                                                                                \
        X("evtask_task_runs_total", runs, "Runs started (an exec command each, else each start).")     \
        X("evtask_task_cancels_total", cancels, "Runs that ended cancelled.")                          \
        X("evtask_task_forced_total", forced, "Times the task was force-cancelled in a shutdown.")     \
        X("evtask_task_abandoned_total", abandoned, "Blocking calls of the task abandoned at exit.")    \
        X("evtask_task_output_records_total", output_records, "Output records of the task's runs.")   \
        X("evtask_task_output_bytes_total", output_bytes, "Bytes of the task's output records, as logged.")

static const char *task_state(evd_daemon *d, const task_metrics *t) {
        evd_job *job = evd_jobs_find(d->jobs, t->name);

        return job ? evd_status_state(d, job->task) : "done";
}

static void write_tasks(evd_daemon *d, FILE *f) {
        const evd_metrics *m = d->metrics;
        size_t by_state[ARRAY_SIZE(state_names)] = { 0 };

        family(f, "evtask_task_state", "gauge", "The task's state: 1 for the one it is in.");
        for (size_t i = 0; i < m->n_tasks; i++) {
                const char *state = task_state(d, m->tasks[i]);

                for (size_t s = 0; s < ARRAY_SIZE(state_names); s++) {
                        bool in = strcmp(state, state_names[s]) == 0;

                        by_state[s] += in;
                        task_sample(f, "evtask_task_state", m->tasks[i]);
                        fprintf(f, ",state=\"%s\"} %d\n", state_names[s], in);
                }
        }
#define WRITE_COUNTER(metric, field, help)                                      \
        family(f, metric, "counter", help);                                     \
        for (size_t i = 0; i < m->n_tasks; i++) {                               \
                task_sample(f, metric, m->tasks[i]);                            \
                fprintf(f, "} %llu\n", (unsigned long long) get_##field(m->tasks[i])); \
        }
        TASK_COUNTERS(WRITE_COUNTER)
        family(f, "evtask_task_failures_total", "counter", "Runs that failed, by reason.");
        for (size_t i = 0; i < m->n_tasks; i++)
                for (size_t r = 0; r < FAILURE_COUNT; r++) {
                        task_sample(f, "evtask_task_failures_total", m->tasks[i]);
                        fprintf(f, ",reason=\"%s\"} %llu\n", failure_names[r],
                                (unsigned long long) m->tasks[i]->failures[r]);
                }
        family(f, "evtask_task_last_exit_code", "gauge", "The exit code of the task's last run that exited.");
        for (size_t i = 0; i < m->n_tasks; i++)
                if (m->tasks[i]->has_exit_code) {
                        task_sample(f, "evtask_task_last_exit_code", m->tasks[i]);
                        fprintf(f, "} %d\n", m->tasks[i]->last_exit_code);
                }
        family(f, "evtask_task_last_run_start_time_seconds", "gauge", "When the last run started, Unix time.");
        for (size_t i = 0; i < m->n_tasks; i++)
                if (m->tasks[i]->last_start > 0) {
                        task_sample(f, "evtask_task_last_run_start_time_seconds", m->tasks[i]);
                        fprintf(f, "} %.3f\n", m->tasks[i]->last_start);
                }
        family(f, "evtask_task_last_run_end_time_seconds", "gauge", "When the last run ended, Unix time.");
        for (size_t i = 0; i < m->n_tasks; i++)
                if (m->tasks[i]->last_end > 0) {
                        task_sample(f, "evtask_task_last_run_end_time_seconds", m->tasks[i]);
                        fprintf(f, "} %.3f\n", m->tasks[i]->last_end);
                }
        family(f, "evtask_task_run_duration_seconds", "summary", "How long the task's runs took.");
        for (size_t i = 0; i < m->n_tasks; i++) {
                task_sample(f, "evtask_task_run_duration_seconds_sum", m->tasks[i]);
                fprintf(f, "} %.3f\n", m->tasks[i]->duration_sum);
                task_sample(f, "evtask_task_run_duration_seconds_count", m->tasks[i]);
                fprintf(f, "} %llu\n", (unsigned long long) m->tasks[i]->durations);
        }

        family(f, "evtask_tasks", "gauge", "Tasks by state.");
        for (size_t s = 0; s < ARRAY_SIZE(state_names); s++)
                fprintf(f, "evtask_tasks{state=\"%s\"} %zu\n", state_names[s], by_state[s]);
}

/* ---- the process, as the Prometheus client libraries name it ---- */

static void write_process(FILE *f) {
        long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
        unsigned long long utime = 0, stime = 0, start = 0, btime = 0;
        long long rss = 0;
        size_t fds = 0;
        char line[256];
        FILE *p;
        DIR *dir;

        if ((p = fopen("/proc/self/stat", "re"))) {
                /* After "(comm)", which may hold spaces: fields 3 on. */
                char buf[1024], *s = fgets(buf, sizeof(buf), p) ? strrchr(buf, ')') : NULL;

                if (s && sscanf(s + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d "
                                       "%*d %llu %*u %lld",
                                &utime, &stime, &start, &rss) != 4)
                        utime = stime = start = 0;
                fclose(p);
        }
        if ((p = fopen("/proc/stat", "re"))) {
                while (fgets(line, sizeof(line), p))
                        if (sscanf(line, "btime %llu", &btime) == 1)
                                break;
                fclose(p);
        }
        if ((dir = opendir("/proc/self/fd"))) {
                for (struct dirent *e; (e = readdir(dir));)
                        fds += e->d_name[0] != '.';
                closedir(dir);
                fds--; /* the directory's own */
        }
        family(f, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.");
        fprintf(f, "process_cpu_seconds_total %.2f\n", (double) (utime + stime) / (double) tick);
        family(f, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
        fprintf(f, "process_resident_memory_bytes %lld\n", rss * page);
        family(f, "process_open_fds", "gauge", "Number of open file descriptors.");
        fprintf(f, "process_open_fds %zu\n", fds);
        family(f, "process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.");
        fprintf(f, "process_start_time_seconds %.2f\n", (double) btime + (double) start / (double) tick);
}

static void write_daemon(evd_daemon *d, FILE *f) {
        const evd_metrics *m = d->metrics;
        evt_phase phase = evt_lifecycle_phase(d->lc);
        evt_loop_stats ls = { 0 };
        evt_pool_stats ps = { 0 };

        evt_loop_stats_get(d->loop, &ls);
        evt_pool_stats_get(d->pool, &ps);
        family(f, "evtask_build_info", "gauge", "The evtaskd version, as a label; always 1.");
        fprintf(f, "evtask_build_info{version=\"%s\"} 1\n", EVTASK_VERSION);
        family(f, "evtask_start_time_seconds", "gauge", "When the daemon started, Unix time.");
        fprintf(f, "evtask_start_time_seconds %.3f\n", m->start_time);
        family(f, "evtask_paused", "gauge", "1 while the daemon is paused (SIGINT, evtaskctl pause).");
        fprintf(f, "evtask_paused %d\n", evt_loop_is_paused(d->loop));
        family(f, "evtask_ready", "gauge", "1 while /readyz answers 200.");
        fprintf(f, "evtask_ready %d\n", evd_http_ready(d));
        family(f, "evtask_phase", "gauge", "The lifecycle's phase: 1 for the one it is in.");
        for (evt_phase p = EVT_PHASE_RUNNING; p <= EVT_PHASE_DONE; p++)
                fprintf(f, "evtask_phase{phase=\"%s\"} %d\n", evt_phase_name(p), p == phase);
        family(f, "evtask_pool_threads", "gauge", "Threads of the blocking pool, busy or idle.");
        fprintf(f, "evtask_pool_threads{state=\"busy\"} %zu\nevtask_pool_threads{state=\"idle\"} %zu\n",
                ps.threads - ps.idle, ps.idle);
        family(f, "evtask_calls", "gauge", "Blocking calls in flight, queued or running.");
        fprintf(f, "evtask_calls{state=\"queued\"} %zu\nevtask_calls{state=\"running\"} %zu\n", ps.queued,
                ps.running);
        family(f, "evtask_calls_completed_total", "counter", "Blocking calls whose function returned.");
        fprintf(f, "evtask_calls_completed_total %llu\n", (unsigned long long) ps.completed);
        family(f, "evtask_loop_tasks", "gauge", "Tasks of the loop, helpers included (an exec run's readers).");
        fprintf(f, "evtask_loop_tasks %zu\n", ls.tasks);
        family(f, "evtask_context_switches_total", "counter", "Context switches into tasks.");
        fprintf(f, "evtask_context_switches_total %llu\n", (unsigned long long) ls.switches);
        family(f, "evtask_slow_steps_total", "counter", "Steps that held the loop longer than slow_step_warn.");
        fprintf(f, "evtask_slow_steps_total %llu\n", (unsigned long long) m->slow_steps);
        family(f, "evtask_reloads_total", "counter", "Config reloads, by result.");
        fprintf(f, "evtask_reloads_total{result=\"ok\"} %llu\nevtask_reloads_total{result=\"failed\"} %llu\n",
                (unsigned long long) m->reloads_ok, (unsigned long long) m->reloads_failed);
        family(f, "evtask_signals_total", "counter", "Signals received, by signal.");
        for (size_t i = 0; i < SIGNALS_MAX && m->signals[i].name[0]; i++)
                fprintf(f, "evtask_signals_total{signal=\"%s\"} %llu\n", m->signals[i].name,
                        (unsigned long long) m->signals[i].count);
        family(f, "evtask_log_records_total", "counter", "Records emitted on the loop's thread, by event.");
        for (int e = 0; e < EVD_EVENT_COUNT; e++)
                if (m->records[e])
                        fprintf(f, "evtask_log_records_total{event=\"%s\"} %llu\n", evd_event_name(e),
                                (unsigned long long) m->records[e]);
}

int evd_metrics_write(evd_daemon *d, char **ret, size_t *ret_len) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);

        if (!f)
                return -ENOMEM;
        write_tasks(d, f);
        write_daemon(d, f);
        write_process(f);
        if (ferror(f) | fclose(f)) {
                free(buf);
                return -ENOMEM;
        }
        *ret = buf;
        *ret_len = len;
        return 0;
}
