/* kind = module: a shared object's entry function as the task's body, with
 * the section's arg.KEY lines as its arguments. The object is checked when
 * the config is read (as root, no other user could have written it; it
 * loads, it is built for this ABI, it has the entry function), in a child
 * that has become the daemon's [daemon] user first: no code of the module
 * runs in the daemon, or as root, before the daemon gives root up. It is
 * opened again for each run, so that a reload after the file changed runs
 * the new code. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "evtask-module.h"
#include "command.h"
#include "daemon.h"
#include "identity.h"
#include "kind.h"

#define ENTRY_DEFAULT "evtask_task"
/* The longest a module may take to load in the check's child. */
#define LOAD_TIMEOUT_MS 5000

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
        } else if (*abi < EVTASK_MODULE_ABI_OLDEST || *abi > EVTASK_MODULE_ABI) {
                snprintf(err, errlen, "'%s' was built for module ABI %u; this evtaskd loads ABI %u to %u: rebuild it",
                         path, *abi, EVTASK_MODULE_ABI_OLDEST, EVTASK_MODULE_ABI);
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

/* What the check's child reports: module_open's result and reason. */
typedef struct load_report {
        int r;
        char why[PATH_MAX + 256];
} load_report;

/* The child of load_in_child: becomes the daemon's user, opens the module,
 * reports, and leaves without running the daemon's exit handlers. */
static _Noreturn void load_child(const evd_config *c, const evd_task_conf *t, int report) {
        load_report rep = { 0 };
        void *handle, *fn;

        /* A fault kills the child: its status names the signal. */
        evd_fatal_default();
        rep.r = evd_identity_drop(c->user, c->group);
        if (rep.r < 0)
                snprintf(rep.why, sizeof(rep.why), "cannot become [daemon] user and group to load it: %s",
                         strerror(-rep.r));
        else
                rep.r = module_open(t->path, t->entry, &handle, &fn, rep.why, sizeof(rep.why));
        (void) !write(report, &rep, sizeof(rep));
        _exit(0);
}

/* module_open, in a child that first becomes the [daemon] user: whatever
 * the module's constructors do (run as root, exit, fault, hang) happens
 * there. The same results as module_open; -ENOEXEC for a module that
 * kills or ends its loader. */
static int load_in_child(const evd_config *c, const evd_task_conf *t, char *why, size_t whylen) {
        load_report rep = { .r = -ENOEXEC };
        struct pollfd pfd = { .events = POLLIN };
        int fds[2], status = 0, ready;
        ssize_t n = 0;
        pid_t pid;

        if (pipe2(fds, O_CLOEXEC) < 0)
                return -errno;
        fflush(NULL); /* a constructor's exit() must not write the daemon's buffers twice */
        pid = fork();
        if (pid == 0)
                load_child(c, t, fds[1]);
        close(fds[1]);
        if (pid < 0) {
                close(fds[0]);
                return -errno;
        }
        pfd.fd = fds[0];
        do
                ready = poll(&pfd, 1, LOAD_TIMEOUT_MS);
        while (ready < 0 && errno == EINTR);
        if (ready > 0)
                do
                        n = read(fds[0], &rep, sizeof(rep));
                while (n < 0 && errno == EINTR);
        close(fds[0]);
        if (ready == 0)
                kill(pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        if (n == (ssize_t) sizeof(rep)) {
                snprintf(why, whylen, "%s", rep.why);
                return rep.r;
        }
        if (ready == 0)
                snprintf(why, whylen, "'%s' did not finish loading within %d ms", t->path, LOAD_TIMEOUT_MS);
        else if (WIFSIGNALED(status))
                snprintf(why, whylen, "'%s' killed its loader with signal %d (%s)", t->path, WTERMSIG(status),
                         strsignal(WTERMSIG(status)));
        else
                snprintf(why, whylen, "'%s' ended its loader with exit status %d while loading", t->path,
                         WEXITSTATUS(status));
        return -ENOEXEC;
}

/* It must be a file no other user could have written (as root), load, be
 * built for this ABI, and export its entry function. */
static int module_probe(const evd_config *c, const evd_task_conf *t, evd_conf_error *e) {
        char why[2 * PATH_MAX + 256];
        int r;

        r = evd_probe_trusted(c, t->path, why, sizeof(why));
        if (r == 0)
                r = load_in_child(c, t, why, sizeof(why));
        if (r == -ENOENT && t->key_line[EVD_TASK_KEY(entry)])
                return evd_conf_fail_task_key(e, t, EVD_TASK_KEY(entry), "%s", why);
        if (r < 0)
                return evd_conf_fail_task_key(e, t, EVD_TASK_KEY(path), "%s", why);
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

static void module_ready(const evtask_module_ctx *ctx) {
        evd_job_ready(ctx->daemon, "module");
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
                .ready = module_ready,
        });
out:
        for (size_t i = 0; args && i < n; i++)
                free((char *) args[i].key);
        free(args);
        dlclose(handle);
        return r;
}

const evd_kind evd_kind_module = { .check = module_check, .probe = module_probe, .run = module_run };
