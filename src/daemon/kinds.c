/* The job kinds, and the task body every job runs. Kinds: ticker (the
 * racers of the demo), sleep (a unit of work that takes a while), blocking
 * (CPU work in a pool thread), wedge (a task that hangs the loop, for
 * watchdogs to catch) and module (a shared object's entry function as the
 * task's body); exec is in exec.c. Each kind returns 0 when done or a
 * negative errno, and evd_job_run logs the outcome, so every kind ends
 * with one record. */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evtask-module.h"
#include "exec.h"
#include "jobs.h"
#include "kind.h"

/* `speed` steps per second, one `step` record each. The pause between two
 * steps is relative, so after a pause the race goes on at its pace instead
 * of catching up. */
static int run_ticker(evd_job *job) {
        const evd_task_conf *c = &job->conf;
        int64_t interval = (int64_t) (1e9 / c->speed);

        for (uint64_t distance = 1; c->steps == 0 || distance <= c->steps; distance++) {
                evd_field f[] = { EVD_NUM("distance", distance) };
                int r = evt_sleep(interval);

                if (r < 0)
                        return r;
                evd_log_emit(job->log, LOG_INFO, EVD_EV_STEP, c->name, f, ARRAY_SIZE(f), "distance=%llu%s%s",
                             (unsigned long long) distance, c->message ? " " : "",
                             c->message ? c->message : "");
        }
        return 0;
}

static int run_sleep(evd_job *job) {
        return evt_sleep(job->conf.duration);
}

/* kind = blocking: the thread's copy of what it needs. The thread may be
 * abandoned and outlive the job, the config and the loop, so it shares
 * nothing with them; the pool frees this when the function returns. */
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

/* Runs on a pool thread: `duration` of CPU work, cut in slices of
 * `check_every` with a checkpoint after each, where the thread waits while
 * the daemon is paused and stops once asked to. Time spent waiting at a
 * checkpoint is not work: the job ends after `duration` of work. */
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
                {
                        evd_field f[] = { EVD_NUM("checks", checks), EVD_NUM("worked_ms", worked / 1000000) };

                        evd_log_emit(w->log, LOG_INFO, EVD_EV_STEP, w->name, f, ARRAY_SIZE(f),
                                     "checkpoint %llu, %lld ms of work", (unsigned long long) checks,
                                     (long long) (worked / 1000000));
                }
        }
        sink = x;
        (void) sink;
        return 0;
}

/* kind = wedge: a task that stops yielding, as a bug would: the loop is
 * wedged, signals still reach the handler, and only the third shutdown
 * signal or the service manager's watchdog ends the process. */
static int run_wedge(evd_job *job) {
        volatile uint64_t spins = 0;
        int r = evt_sleep(job->conf.duration);

        if (r < 0)
                return r;
        evd_log_emit(job->log, LOG_WARNING, EVD_EV_STEP, job->conf.name, EVD_NO_FIELDS, "wedging the loop now");
        for (;;)
                spins++;
        return 0;
}

static int run_blocking(evd_job *job) {
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

#define ENTRY_DEFAULT "evtask_task"

/* Opens a module and checks it (its ABI, its entry symbol): 0 with the
 * handle and the entry function, or, with the reason in err, -ENOEXEC (the
 * file: it does not load, or is no module for this ABI) or -ENOENT (it has
 * no such entry function). */
static int module_open(const char *path, const char *entry, void **ret_handle, void **ret_fn, char *err,
                       size_t errlen) {
        const unsigned *abi;
        void *handle;
        int r = -ENOEXEC;

        /* RTLD_NOW: a symbol the daemon lacks is an error here, not a crash
         * in the middle of a run. */
        handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!handle) {
                snprintf(err, errlen, "cannot load: %s", dlerror());
                return r;
        }
        abi = dlsym(handle, "evtask_module_abi");
        if (!abi) {
                snprintf(err, errlen, "'%s' is not an evtask module (no evtask_module_abi: declare EVTASK_MODULE())",
                         path);
        } else if (*abi != EVTASK_MODULE_ABI) {
                snprintf(err, errlen, "'%s' was built for module ABI %u; this evtaskd has ABI %u: rebuild it", path,
                         *abi, EVTASK_MODULE_ABI);
        } else if (!(*ret_fn = dlsym(handle, entry))) {
                snprintf(err, errlen, "'%s' has no entry function '%s'", path, entry);
                r = -ENOENT;
        } else {
                *ret_handle = handle;
                return 0;
        }
        dlclose(handle);
        return r;
}

static int module_check(evd_task_conf *t, evd_conf_error *e) {
        if (!t->entry && !(t->entry = strdup(ENTRY_DEFAULT)))
                return evd_conf_fail(e, -ENOMEM, t->line, "out of memory");
        return 0;
}

/* It must load, be built for this ABI, and export its entry function. */
static int module_probe(const evd_task_conf *t, evd_conf_error *e) {
        char why[PATH_MAX + 256];
        void *fn, *handle;
        int r;

        r = module_open(t->path, t->entry, &handle, &fn, why, sizeof(why));
        if (r == -ENOENT && t->key_line[EVD_TASK_KEY(entry)])
                return evd_conf_fail_task_key(e, t, EVD_TASK_KEY(entry), "%s", why);
        if (r < 0)
                return evd_conf_fail_task_key(e, t, EVD_TASK_KEY(path), "%s", why);
        dlclose(handle);
        return 0;
}

/* kind = module. The shared object is opened for the run and closed after
 * it, so that a reload after the file changed loads the new code. */
static void module_log(const evtask_module_ctx *ctx, int priority, const char *fmt, ...) {
        evd_job *job = ctx->daemon;
        char msg[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (priority < LOG_EMERG || priority > LOG_DEBUG)
                priority = LOG_INFO;
        evd_log_emit(job->log, priority, EVD_EV_LOG, job->conf.name, EVD_NO_FIELDS, "%s", msg);
}

static int run_module(evd_job *job) {
        const evd_task_conf *c = &job->conf;
        evtask_module_arg *args = NULL;
        evtask_module_fn *entry;
        size_t n = 0;
        char why[512];
        void *handle, *fn;
        int r;

        r = module_open(c->path, c->entry, &handle, &fn, why, sizeof(why));
        if (r < 0) {
                /* The file changed since the config was read. */
                evd_log_emit(job->log, LOG_ERR, EVD_EV_LOG, c->name, EVD_NO_FIELDS, "%s", why);
                return r;
        }
        r = -ENOMEM;
        *(void **) &entry = fn; /* dlsym's object pointer, as a function */
        for (char **a = c->args; a && *a; a++)
                n++;
        if (n && !(args = calloc(n, sizeof(*args))))
                goto out;
        for (size_t i = 0; i < n; i++) {
                const char *eq = strchr(c->args[i], '=');

                args[i].key = strndup(c->args[i], (size_t) (eq - c->args[i]));
                args[i].value = eq + 1;
                if (!args[i].key)
                        goto out;
        }
        r = entry(&(evtask_module_ctx) {
                .task = c->name,
                .args = args,
                .n_args = n,
                .log = module_log,
                .daemon = job,
        });
out:
        for (size_t i = 0; args && i < n; i++)
                free((char *) args[i].key);
        free(args);
        dlclose(handle);
        return r;
}

/* A job that replaces one (a reload changed its settings) starts once that
 * one has ended, so that the two never run at once: a shielded one may
 * take a while. */
static int wait_for_predecessor(evd_job *job) {
        int r = evt_task_join(job->after, EVT_FOREVER, NULL);

        evt_task_unref(job->after);
        job->after = NULL;
        return r;
}

int evd_job_run(void *arg) {
        evd_job *job = arg;
        const char *name = job->conf.name;
        int64_t start = evt_time_now();
        int r;

        job->began = true;
        r = job->after ? wait_for_predecessor(job) : 0;

        if (r < 0)
                goto out;
        switch (job->conf.kind) {
        case EVD_KIND_TICKER:
                r = run_ticker(job);
                break;
        case EVD_KIND_SLEEP:
                r = run_sleep(job);
                break;
        case EVD_KIND_BLOCKING:
                r = run_blocking(job);
                break;
        case EVD_KIND_WEDGE:
                r = run_wedge(job);
                break;
        case EVD_KIND_MODULE:
                r = run_module(job);
                break;
        case EVD_KIND_EXEC:
                r = evd_exec_run(job);
                /* Each run has logged how it ended; only a cancel is left. */
                if (r != -ECANCELED)
                        return r;
                break;
        default:
                r = -EINVAL;
                break;
        }
out:
        {
                long long ms = (evt_time_now() - start) / 1000000;
                evd_field f[] = { EVD_NUM("duration_ms", ms), EVD_NUM("result", r) };

                /* This is the task's cleanup path: it runs even after a cancel
                 * (level-triggered, so nothing here may block). */
                if (r == 0)
                        evd_log_emit(job->log, LOG_INFO, EVD_EV_FINISHED, name, f, ARRAY_SIZE(f),
                                     "finished after %lld ms", ms);
                else if (r == -ECANCELED)
                        evd_log_emit(job->log, LOG_NOTICE, EVD_EV_CANCELLED, name, f, ARRAY_SIZE(f),
                                     "cancelled after %lld ms", ms);
                else
                        evd_log_emit(job->log, LOG_ERR, EVD_EV_FAILED, name, f, ARRAY_SIZE(f),
                                     "failed after %lld ms: %s", ms, strerror(-r));
        }
        return r;
}

/* The kinds of this file; exec's is exec.c's. */
const evd_kind evd_kind_ticker = { 0 };
const evd_kind evd_kind_sleep = { 0 };
const evd_kind evd_kind_blocking = { 0 };
const evd_kind evd_kind_wedge = { 0 };
const evd_kind evd_kind_module = { .check = module_check, .probe = module_probe };
