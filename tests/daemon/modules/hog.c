/* A task module that holds the loop, as a task with a slow computation
 * between its await points would: `arg.hold` milliseconds of busy work
 * without yielding, `arg.times` times, with a yield between. */
#include <stdlib.h>
#include <time.h>

#include <evtask-module.h>

EVTASK_MODULE();

static long arg_long(const evtask_module_ctx *ctx, const char *key, long fallback) {
        const char *v = evtask_module_arg_get(ctx, key);

        return v ? strtol(v, NULL, 10) : fallback;
}

int evtask_task(const evtask_module_ctx *ctx) {
        long hold = arg_long(ctx, "hold", 200), times = arg_long(ctx, "times", 1);

        for (long i = 0; i < times; i++) {
                int64_t until = evt_time_now() + EVT_MSEC(hold);
                int r;

                while (evt_time_now() < until)
                        ;
                r = evt_yield();
                if (r < 0)
                        return r;
        }
        return 0;
}
