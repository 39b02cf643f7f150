/* kind = module: a shared object's entry function as the task's body, with
 * the section's arg.KEY lines as its arguments. The object is checked when
 * the config is read (it loads, it is built for this ABI, it has the entry
 * function) and opened again for each run, so that a reload after the file
 * changed runs the new code. */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evtask-module.h"
#include "command.h"
#include "kind.h"

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

static int module_run(evd_job *job) {
        const evd_task_conf *c = &job->conf;
        size_t n = evd_strv_length(c->args);
        evtask_module_arg *args = NULL;
        evtask_module_fn *entry;
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

const evd_kind evd_kind_module = { .check = module_check, .probe = module_probe, .run = module_run };
