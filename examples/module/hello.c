/* A task module for evtaskd: greets every `arg.every` milliseconds.
 *
 *     [task.greeter]
 *     kind = module
 *     path = /usr/local/lib/evtask/hello.so
 *     entry = hello_task
 *     arg.greeting = hello
 *     arg.every = 500
 *     arg.times = 10          ; 0 (the default): until cancelled
 *
 * Each greeting is a record under the task's name. The module does no
 * signal handling and no bookkeeping of its own: SIGINT holds it at its
 * sleep (no greeting while paused), a shutdown or a reload cancels it at
 * its sleep, and with `shield = yes` it finishes its greetings during the
 * drain, as any built-in task would. Its cleanup, a farewell, runs after a
 * cancel too: evt_sleep returned -ECANCELED, and the log call is not an
 * await point. The tasks that start `after` it wait for its first
 * greeting: it calls ctx->ready() then.
 *
 * Build: cc -shared -fPIC $(pkg-config --cflags evtask) -o hello.so hello.c */
#include <errno.h>
#include <stdlib.h>
#include <syslog.h>

#include <evtask-module.h>

EVTASK_MODULE();

static long arg_long(const evtask_module_ctx *ctx, const char *key, long fallback) {
        const char *v = evtask_module_arg_get(ctx, key);
        char *end;
        long n;

        if (!v)
                return fallback;
        n = strtol(v, &end, 10);
        return *v && !*end && n >= 0 ? n : -1;
}

int hello_task(const evtask_module_ctx *ctx) {
        const char *greeting = evtask_module_arg_get(ctx, "greeting");
        long every = arg_long(ctx, "every", 1000), times = arg_long(ctx, "times", 0);
        int r = 0;

        if (every <= 0 || times < 0) {
                ctx->log(ctx, LOG_ERR, "arg.every must be a positive number of ms, arg.times a count");
                return -EINVAL;
        }
        for (long i = 1; times == 0 || i <= times; i++) {
                r = evt_sleep(EVT_MSEC(every));
                if (r < 0)
                        break;
                ctx->log(ctx, LOG_INFO, "%s %ld from %s", greeting ? greeting : "hello", i, ctx->task);
                if (i == 1)
                        ctx->ready(ctx);
        }
        ctx->log(ctx, LOG_INFO, "goodbye from %s%s", ctx->task, r == -ECANCELED ? " (cancelled)" : "");
        return r;
}
