/* evtask-module.h: task modules for evtaskd.
 *
 * A module is a shared object that evtaskd loads for a config section
 *
 *     [task.NAME]
 *     kind = module
 *     path = /usr/local/lib/evtask/NAME.so
 *     entry = my_task           ; the default: evtask_task
 *     arg.KEY = VALUE           ; any number, handed to the module
 *
 * The entry function is the task's body: it runs on the task's own
 * coroutine, and its await points (evt_sleep, evt_event_wait, evt_pool_call,
 * ...) are the task's, with every guarantee of the built-in kinds: `shield`,
 * `pausable`, cancellation at shutdown or reload, the drain, records under
 * the task's name. It returns 0 or a negative errno, as any task does, and
 * returns -ECANCELED from a cancelled await point (after its cleanup).
 *
 * Build a module without linking libevtask: the evt_* functions it calls
 * are evtaskd's own (evtaskd exports them), so that it runs on the daemon's
 * loop. With gcc:
 *
 *     cc -shared -fPIC $(pkg-config --cflags evtask) -o NAME.so NAME.c
 *
 * and declare it once, at file scope, with EVTASK_MODULE(). evtaskd loads
 * modules built for EVTASK_MODULE_ABI_OLDEST up to its own
 * EVTASK_MODULE_ABI and refuses any other, naming both. */
#ifndef EVTASK_MODULE_H
#define EVTASK_MODULE_H

#include <stddef.h>
#include <string.h>

#include <evtask.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Raised whenever evtask_module_ctx or the rules above change, so that an
 * older evtaskd refuses a module that needs more than it has. 2: the
 * context's ready(). */
#define EVTASK_MODULE_ABI 2
/* The oldest ABI this evtaskd still loads: a change that only adds at the
 * end of the context keeps the modules built before it. */
#define EVTASK_MODULE_ABI_OLDEST 1

typedef struct evtask_module_arg {
        const char *key;        /* KEY of arg.KEY */
        const char *value;
} evtask_module_arg;

typedef struct evtask_module_ctx {
        const char *task;               /* the task's name */
        const evtask_module_arg *args;  /* its arg.KEY lines, in file order */
        size_t n_args;
        /* One record in evtaskd's log, event "log", under the task's name;
         * priority as syslog's (LOG_INFO, LOG_WARNING, ...). */
        void (*log)(const struct evtask_module_ctx *ctx, int priority, const char *fmt, ...)
                __attribute__((format(printf, 3, 4)));
        void *daemon;                   /* evtaskd's, not the module's */
        /* The task is ready: the tasks that start after it (`after`,
         * `requires`) may start. Until then, or until the entry function
         * returns 0, they wait. Once is enough; more are harmless. ABI 2:
         * at the end, so that a module built for ABI 1 still loads. */
        void (*ready)(const struct evtask_module_ctx *ctx);
} evtask_module_ctx;

/* The entry function's type. ctx stays valid until it returns. */
typedef int evtask_module_fn(const evtask_module_ctx *ctx);

/* Once per module, at file scope. */
#define EVTASK_MODULE() __attribute__((visibility("default"))) const unsigned evtask_module_abi = EVTASK_MODULE_ABI

/* The value of arg.KEY, or NULL if the section has none. */
static inline const char *evtask_module_arg_get(const evtask_module_ctx *ctx, const char *key) {
        for (size_t i = 0; i < ctx->n_args; i++)
                if (strcmp(ctx->args[i].key, key) == 0)
                        return ctx->args[i].value;
        return NULL;
}

#ifdef __cplusplus
}
#endif

#endif
