/* What each control request does: one table of verbs, each with whether
 * it changes anything (such a verb is for root, the daemon's user and
 * control_group only, and is logged as a `control` record naming the
 * peer), and its function from request to reply. */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "calendar.h"
#include "control.h"
#include "control_path.h"
#include "daemon.h"
#include "http.h"
#include "proctree.h"
#include "symbols.h"
#include "values.h"

typedef json_t *verb_fn(evd_daemon *d, json_t *req);

static json_t *done(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_t *done(const char *fmt, ...) {
        char msg[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        return json_pack("{s:b, s:s}", "ok", 1, "message", msg);
}

/* The request's task names: NULL when it names none, or an array. */
static json_t *task_names(json_t *req) {
        json_t *tasks = json_object_get(req, "tasks");

        return json_is_array(tasks) && json_array_size(tasks) > 0 ? tasks : NULL;
}

/* The job of the request's one task name, or NULL with *reply set. */
static evd_job *one_job(evd_daemon *d, json_t *req, json_t **reply) {
        json_t *tasks = task_names(req);
        const char *name = tasks ? json_string_value(json_array_get(tasks, 0)) : NULL;
        evd_job *job;

        if (!tasks || json_array_size(tasks) != 1 || !name) {
                *reply = evd_control_error("usage", "name one task");
                return NULL;
        }
        job = evd_jobs_find(d->jobs, name);
        if (job && strcmp(evt_task_state_name(job->task), "done") != 0)
                return job;
        *reply = job || evd_config_find_task(d->config, name)
                         ? evd_control_error("not-running", "task '%s' is not running", name)
                         : evd_control_error("unknown-task", "no task '%s'", name);
        return NULL;
}

/* ---- reading ---- */

static json_t *task_json(evd_daemon *d, evt_task *t) {
        const evd_job *job = evd_jobs_find_task(d->jobs, t);
        unsigned flags = evt_task_flags(t);
        evd_task_counts n;
        json_t *o = json_pack("{s:s, s:s, s:b, s:b, s:I}", "name", evt_task_name(t), "state", evd_status_state(d, t),
                              "shielded", (flags & EVT_TASK_SHIELDED) != 0, "pausable",
                              (flags & EVT_TASK_NOPAUSE) == 0, "age_ms", (json_int_t) (evt_task_age(t) / 1000000));

        if (o && job) {
                json_object_set_new(o, "kind", json_string(evd_kind_names.names[job->conf.kind]));
                if (job->conf.description)
                        json_object_set_new(o, "description", json_string(job->conf.description));
                if (job->pid > 0)
                        json_object_set_new(o, "pid", json_integer(job->pid));
                if (job->waiting_for[0])
                        json_object_set_new(o, "waiting_for", json_string(job->waiting_for));
                if (job->notify_status)
                        json_object_set_new(o, "notify_status", json_string(job->notify_status));
                /* Given up at start_limit: down until evtaskctl start. */
                if (job->start_limited)
                        json_object_set_new(o, "state", json_string("failed"));
                if (job->next_run > 0) {
                        char when[64];

                        evd_calendar_format(job->next_run / EVD_NSEC_PER_SEC, job->conf.timezone, when, sizeof(when));
                        json_object_set_new(o, "next_run", json_string(when));
                }
        }
        if (o && evd_metrics_task_counts(d->metrics, evt_task_name(t), &n) == 0) {
                json_object_set_new(o, "runs", json_integer((json_int_t) n.runs));
                json_object_set_new(o, "restarts", json_integer((json_int_t) n.restarts));
                json_object_set_new(o, "failures", json_integer((json_int_t) n.failures));
                if (n.has_exit_code)
                        json_object_set_new(o, "last_exit_code", json_integer(n.last_exit_code));
        }
        return o;
}

struct status_walk {
        evd_daemon *d;
        json_t *names;          /* NULL: every task */
        json_t *tasks;
};

static void status_one(evt_task *t, void *data) {
        struct status_walk *w = data;
        size_t i;
        json_t *v;

        /* Only the jobs' tasks: an exec run's readers are the run's. */
        if (!evd_jobs_find_task(w->d->jobs, t))
                return;
        json_array_foreach(w->names, i, v)
                if (json_is_string(v) && strcmp(json_string_value(v), evt_task_name(t)) == 0)
                        break;
        if (!w->names || i < json_array_size(w->names))
                json_array_append_new(w->tasks, task_json(w->d, t));
}

static json_t *daemon_json(evd_daemon *d) {
        evt_loop_stats st = { 0 };

        evt_loop_stats_get(d->loop, &st);
        return json_pack("{s:I, s:s, s:b, s:I, s:s}", "pid", (json_int_t) getpid(), "phase",
                         evt_phase_name(evt_lifecycle_phase(d->lc)), "paused", evt_loop_is_paused(d->loop),
                         "blocking_calls", (json_int_t) st.calls, "config", d->config->path);
}

static json_t *verb_status(evd_daemon *d, json_t *req) {
        struct status_walk w = { d, task_names(req), json_array() };
        json_t *v, *dmn;
        size_t i;

        /* Every name asked for must be a task of the config. */
        json_array_foreach(w.names, i, v)
                if (!json_is_string(v) || !evd_config_find_task(d->config, json_string_value(v))) {
                        json_decref(w.tasks);
                        return evd_control_error("unknown-task", "no task '%s'",
                                                 json_is_string(v) ? json_string_value(v) : "?");
                }
        evt_loop_foreach_task(d->loop, status_one, &w);
        /* Ended tasks are not shown, but for one that gave up at its
         * start_limit: it is down, failed, until evtaskctl start. */
        for (i = 0; i < d->config->n_tasks; i++) {
                evd_job *job = evd_jobs_find(d->jobs, d->config->tasks[i].name);

                if (job && job->start_limited && evt_task_is_done(job->task))
                        status_one(job->task, &w);
        }
        dmn = daemon_json(d);
        json_object_set_new(dmn, "tasks", json_integer((json_int_t) json_array_size(w.tasks)));
        return json_pack("{s:b, s:o, s:o}", "ok", 1, "daemon", dmn, "tasks", w.tasks);
}

/* Frames of a dump's backtrace: the library's switch, wait and primitive
 * take about six, which leaves room for the task's own. */
#define STACK_FRAMES 24

/* The task's backtrace, each frame named (symbols.h); NULL where the build
 * cannot walk, or the task is the running one (the control task). */
static json_t *stack_json(evt_task *t, evd_symbols *syms) {
        void *pcs[STACK_FRAMES];
        int n = evt_task_backtrace(t, pcs, STACK_FRAMES);
        json_t *frames;

        if (n < 0)
                return NULL;
        frames = json_array();
        for (int i = 0; frames && i < n; i++) {
                char name[EVD_SYMBOL_MAX];

                evd_symbolize(syms, pcs[i], name, sizeof(name));
                json_array_append_new(frames, json_string(name));
        }
        return frames;
}

struct dump_walk {
        evd_daemon *d;
        json_t *tasks;
        bool stacks;            /* dump --stacks */
        evd_symbols syms;       /* its frames' names, made at the first */
};

/* dump: every task of the loop (the jobs' and their helpers, such as an
 * exec run's output readers) with what it waits on and for how long, and
 * every blocking call in flight; with --stacks, where each parked task is. */
static void dump_task(evt_task *t, void *data) {
        struct dump_walk *walk = data;
        evd_daemon *d = walk->d;
        json_t *tasks = walk->tasks;
        int64_t now = evt_time_now();
        json_t *o = json_pack("{s:s, s:s}", "name", evt_task_name(t), "state", evd_status_state(d, t));
        evt_wait_info w;

        if (o && evt_task_wait_info(t, &w) == 0 && w.what) {
                json_object_set_new(o, "waits_on", json_string(w.what));
                json_object_set_new(o, "waiting_ms", json_integer((json_int_t) ((now - w.since) / 1000000)));
                if (w.arg >= 0)
                        json_object_set_new(o, "arg", json_integer(w.arg));
                if (w.task)
                        json_object_set_new(o, "joins", json_string(w.task));
                if (!evt_deadline_is_forever(w.deadline))
                        json_object_set_new(o, "deadline_in_ms",
                                            json_integer((json_int_t) ((w.deadline.at - now) / 1000000)));
        }
        if (o && walk->stacks) {
                json_t *stack = stack_json(t, &walk->syms);

                if (stack)
                        json_object_set_new(o, "stack", stack);
        }
        json_array_append_new(tasks, o);
}

static void dump_call(const evt_call_info *ci, void *data) {
        json_array_append_new(data, json_pack("{s:s, s:s, s:I, s:I, s:b, s:b}", "task", ci->task, "state",
                                              ci->running ? "running" : "queued", "age_ms",
                                              (json_int_t) (ci->age / 1000000), "running_ms",
                                              (json_int_t) (ci->running / 1000000), "stop_requested",
                                              ci->stop_requested, "awaited", ci->awaited));
}

static json_t *verb_dump(evd_daemon *d, json_t *req) {
        json_t *tasks = json_array(), *calls = json_array();
        struct dump_walk walk = { d, tasks, json_is_true(json_object_get(req, "stacks")), { 0 } };

        evt_loop_foreach_task(d->loop, dump_task, &walk);
        evd_symbols_done(&walk.syms);
        evt_loop_foreach_call(d->loop, dump_call, calls);
        return json_pack("{s:b, s:o, s:o, s:o}", "ok", 1, "daemon", daemon_json(d), "tasks", tasks, "calls", calls);
}

/* Ready: every task was started, and no shutdown has begun. */
static json_t *verb_health(evd_daemon *d, json_t *req) {
        evt_phase phase = evt_lifecycle_phase(d->lc);

        (void) req;
        return json_pack("{s:b, s:b, s:s, s:b}", "ok", 1, "ready", phase == EVT_PHASE_RUNNING, "phase",
                         evt_phase_name(phase), "paused", evt_loop_is_paused(d->loop));
}

/* ---- changing ---- */

/* pause and resume without a name: what SIGINT does, said in the reply. */
static json_t *pause_all(evd_daemon *d, bool pause) {
        if (evt_lifecycle_phase(d->lc) != EVT_PHASE_RUNNING)
                return evd_control_error("shutting-down", "not during a shutdown");
        if (evt_loop_is_paused(d->loop) == pause)
                return done("every task was %s already", pause ? "paused" : "running");
        evd_records_pause(d, pause);
        return done("%s every pausable task", pause ? "paused" : "resumed");
}

/* pause and resume with names: each task suspended or resumed alone. All
 * names are checked before any is acted on. */
static json_t *suspend_some(evd_daemon *d, json_t *names, bool suspend) {
        evd_job *jobs[64];
        size_t i, n = json_array_size(names);
        char done_names[512] = "";
        json_t *v, *reply = NULL;

        if (n > ARRAY_SIZE(jobs))
                return evd_control_error("usage", "at most %zu tasks at once", ARRAY_SIZE(jobs));
        json_array_foreach(names, i, v) {
                json_t *one = json_pack("{s:[O]}", "tasks", v);

                jobs[i] = one_job(d, one, &reply);
                json_decref(one);
                if (!jobs[i])
                        return reply;
        }
        for (i = 0; i < n; i++) {
                int r = evd_job_suspend(d->jobs, jobs[i], suspend);

                if (r < 0)
                        return evd_control_error("failed", "cannot %s task '%s': %s", suspend ? "suspend" : "resume",
                                                 jobs[i]->conf.name, strerror(-r));
                snprintf(done_names + strlen(done_names), sizeof(done_names) - strlen(done_names), "%s'%s'",
                         i ? ", " : "", jobs[i]->conf.name);
        }
        evd_status_update(d);
        return done("%s %s", suspend ? "suspended" : "resumed", done_names);
}

static json_t *verb_pause(evd_daemon *d, json_t *req) {
        return task_names(req) ? suspend_some(d, task_names(req), true) : pause_all(d, true);
}

static json_t *verb_resume(evd_daemon *d, json_t *req) {
        return task_names(req) ? suspend_some(d, task_names(req), false) : pause_all(d, false);
}

static json_t *verb_cancel(evd_daemon *d, json_t *req) {
        bool force = json_is_true(json_object_get(req, "force"));
        json_t *reply = NULL;
        evd_job *job = one_job(d, req, &reply);

        if (!job)
                return reply;
        evd_job_cancel(job, force ? EVT_CANCEL_FORCE : 0);
        if ((evt_task_flags(job->task) & EVT_TASK_SHIELDED) && !force)
                return done("task '%s' is shielded: it is cancelled when its shield ends (--force pierces it)",
                            job->conf.name);
        return done("cancelled task '%s'%s", job->conf.name, force ? ", through its shield" : "");
}

static json_t *verb_stop(evd_daemon *d, json_t *req) {
        json_t *reply = NULL;
        evd_job *job = one_job(d, req, &reply);

        if (!job)
                return reply;
        evd_job_cancel(job, 0);
        return done("stopping task '%s'%s; 'evtaskctl start %s' starts it again", job->conf.name,
                    (evt_task_flags(job->task) & EVT_TASK_SHIELDED) ? " once its shield ends" : "", job->conf.name);
}

static json_t *verb_start(evd_daemon *d, json_t *req) {
        json_t *tasks = task_names(req);
        const char *name = tasks && json_array_size(tasks) == 1 ? json_string_value(json_array_get(tasks, 0)) : NULL;
        int r;

        if (!name)
                return evd_control_error("usage", "name one task");
        r = evd_jobs_start_again(d->jobs, name);
        if (r == -EBUSY)
                return evd_control_error("running", "task '%s' is running already", name);
        if (r == -ENOENT)
                return evd_control_error("unknown-task", "no task '%s' to start (a reload starts the config's)",
                                         name);
        if (r < 0)
                return evd_control_error("failed", "cannot start task '%s': %s", name, strerror(-r));
        return done("started task '%s'", name);
}

static json_t *verb_restart(evd_daemon *d, json_t *req) {
        json_t *reply = NULL;
        evd_job *job = one_job(d, req, &reply);
        char name[256];
        int r;

        if (!job)
                return reply;
        snprintf(name, sizeof(name), "%s", job->conf.name);
        r = evd_jobs_restart(d->jobs, job);
        if (r < 0)
                return evd_control_error("failed", "cannot restart task '%s': %s", name, strerror(-r));
        return done("restarting task '%s': the new one starts when this one has ended", name);
}

static json_t *verb_run(evd_daemon *d, json_t *req) {
        json_t *reply = NULL;
        evd_job *job = one_job(d, req, &reply);
        int r;

        if (!job)
                return reply;
        r = evd_job_run_now(job);
        if (r == -ENOTSUP)
                return evd_control_error("not-applicable", "task '%s' is of kind %s: only exec jobs have runs",
                                         job->conf.name, evd_kind_names.names[job->conf.kind]);
        if (r == -EBUSY)
                return evd_control_error("running", "task '%s' has a run under way", job->conf.name);
        return done("task '%s' starts its next run now", job->conf.name);
}

static json_t *verb_signal(evd_daemon *d, json_t *req) {
        const char *name = json_string_value(json_object_get(req, "signal"));
        json_t *reply = NULL;
        evd_job *job = one_job(d, req, &reply);
        size_t n;
        int sig;

        if (!job)
                return reply;
        if (!name || evd_parse_signal(name, &sig) < 0)
                return evd_control_error("usage", "'%s' is not a signal (for example TERM, SIGHUP, 10)",
                                         name ? name : "");
        if (job->conf.kind != EVD_KIND_EXEC)
                return evd_control_error("not-applicable",
                                         "task '%s' is of kind %s: only an exec run's processes take signals",
                                         job->conf.name, evd_kind_names.names[job->conf.kind]);
        if (job->pid <= 0 || !job->procs)
                return evd_control_error("not-running", "task '%s' has no run now", job->conf.name);
        n = evd_proctree_signal(job->procs, sig);
        if (n == 0)
                return evd_control_error("failed", "no process of the run of '%s' took %s", job->conf.name,
                                         evd_signal_name(sig));
        return done("sent %s to %zu process%s of the run of task '%s' (pid %ld)", evd_signal_name(sig), n,
                    n == 1 ? "" : "es", job->conf.name, (long) job->pid);
}

static json_t *verb_reload(evd_daemon *d, json_t *req) {
        evd_jobs_changes n;
        char err[1024];

        (void) req;
        if (evd_daemon_reload_answer(d, &n, err, sizeof(err)) < 0)
                return evd_control_error("reload-failed", "%s", err);
        return json_pack("{s:b, s:s, s:I, s:I, s:I, s:I}", "ok", 1, "message", "reloaded", "added",
                         (json_int_t) n.added, "removed", (json_int_t) n.removed, "changed", (json_int_t) n.changed,
                         "unchanged", (json_int_t) n.kept);
}

static json_t *verb_shutdown(evd_daemon *d, json_t *req) {
        json_t *v = json_object_get(req, "drain_timeout");
        int64_t drain = 0;

        if (v && (!json_is_string(v) || evd_parse_duration(json_string_value(v), &drain) < 0 || drain <= 0))
                return evd_control_error("usage", "--drain-timeout takes a duration above 0 (for example 30s, 2min)");
        if (drain > 0)
                evt_lifecycle_shutdown_within(d->lc, drain);
        else
                evt_lifecycle_shutdown(d->lc, false);
        return done("shutting down: %s", evt_phase_name(evt_lifecycle_phase(d->lc)));
}

static const struct verb {
        const char *name;
        bool changes;
        verb_fn *fn;
} verbs[] = {
        { "status", false, verb_status },
        { "health", false, verb_health },
        { "dump", false, verb_dump },
        { "pause", true, verb_pause },
        { "resume", true, verb_resume },
        { "cancel", true, verb_cancel },
        { "stop", true, verb_stop },
        { "start", true, verb_start },
        { "restart", true, verb_restart },
        { "run", true, verb_run },
        { "signal", true, verb_signal },
        { "reload", true, verb_reload },
        { "shutdown", true, verb_shutdown },
};

/* The request in one line of text, for the record: the verb and its
 * arguments. */
static void request_words(json_t *req, char *buf, size_t len) {
        char *text = json_dumps(req, JSON_COMPACT | JSON_SORT_KEYS);

        snprintf(buf, len, "%s", text ? text : "?");
        free(text);
}

json_t *evd_control_answer(evd_daemon *d, const evd_control_peer *peer, json_t *req) {
        const char *verb = json_string_value(json_object_get(req, "verb"));
        json_t *version = json_object_get(req, "version");
        char words[512];

        if (version && json_integer_value(version) != EVD_CONTROL_VERSION)
                return evd_control_error("version", "this evtaskd speaks version %d of the protocol, not %lld",
                                         EVD_CONTROL_VERSION, (long long) json_integer_value(version));
        for (size_t i = 0; verb && i < ARRAY_SIZE(verbs); i++) {
                if (strcmp(verbs[i].name, verb) != 0)
                        continue;
                if (!verbs[i].changes)
                        return verbs[i].fn(d, req);
                if (!peer->may_change)
                        return evd_control_error("denied", "'%s' is for root, the daemon's user and control_group",
                                                 verb);
                request_words(req, words, sizeof(words));
                evd_log_emit(d->log, LOG_NOTICE, EVD_EV_CONTROL, NULL,
                             EVD_FIELDS(EVD_STR("verb", verb), EVD_NUM("peer_pid", peer->pid),
                                        EVD_NUM("peer_uid", peer->uid), EVD_STR("request", words)),
                             "%s from pid %ld (uid %ld): %s", verb, (long) peer->pid, (long) peer->uid, words);
                return verbs[i].fn(d, req);
        }
        return evd_control_error("unknown-verb", "unknown verb '%s'", verb ? verb : "");
}
