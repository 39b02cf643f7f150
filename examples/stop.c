/* A background task stopped gracefully, its cleanup awaited (seed 001).
 *
 * A background task does something every second; after 2.5 s the main
 * task stops it and waits until its cleanup is over.
 *
 * asyncio's task.cancel() "is not guaranteed": the task can catch
 * CancelledError and carry on, and nothing waits for its cleanup unless
 * the caller awaits the task. The write-up's fix is a stop Event the task
 * checks on every turn, then `await task`. Here no flag is needed, because
 * a cancel cannot be lost: evt_task_cancel is delivered at the task's next
 * await point, and from then on every await point fails with -ECANCELED,
 * so the task cannot swallow it and sleep on. Cleanup that must itself
 * wait runs in a shield scope. evt_task_join returns once the cleanup is
 * over, with the task's result; its deadline bounds the wait, and a forced
 * cancel ends a cleanup that would not. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <evtask.h>

static int64_t started;

__attribute__((format(printf, 1, 2)))
static void say(const char *fmt, ...) {
        va_list ap;

        printf("[%5.2f] ", (double) (evt_time_now() - started) / 1e9);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        putchar('\n');
}

static void check(int r, const char *what) {
        if (r < 0) {
                fprintf(stderr, "stop: %s: %s\n", what, strerror(-r));
                exit(1);
        }
}

static int background(void *arg) {
        int r;

        (void) arg;
        do {
                say("background: doing something");
                r = evt_sleep(EVT_SEC(1));
        } while (r == 0);

        /* Stopped (r is -ECANCELED). Outside a shield this sleep would fail
         * at once: the cancel stays in force for the rest of the task. */
        say("background: stopping (%s); flushing", strerror(-r));
        evt_shield_push();
        evt_sleep(EVT_MSEC(300)); /* say, writing out what is buffered */
        evt_shield_pop(); /* -ECANCELED: the cancel is still pending, as we know */
        say("background: cleanup done");
        return r;
}

static int main_task(void *arg) {
        evt_loop *loop = arg;
        evt_task *bg;
        int r, result;

        r = evt_task_spawn(loop, background, NULL, &(evt_task_opts) { .name = "background" }, &bg);
        if (r < 0)
                return r;
        evt_sleep(EVT_MSEC(2500));

        say("main: stopping the background task");
        evt_task_cancel(bg, 0);
        r = evt_task_join(bg, evt_deadline_in(EVT_SEC(5)), &result);
        if (r == -ETIMEDOUT) {
                /* A cleanup stuck in its shield: a forced cancel pierces it. */
                say("main: cleanup takes too long; forcing");
                evt_task_cancel(bg, EVT_CANCEL_FORCE);
                r = evt_task_join(bg, EVT_FOREVER, &result);
        }
        if (r == 0)
                say("main: background task ended (%s) after its cleanup", strerror(-result));
        evt_task_unref(bg);
        return r;
}

int main(void) {
        evt_loop *loop;
        evt_task *main_t;
        int result;

        setvbuf(stdout, NULL, _IOLBF, 0); /* a line at a time, into a pipe too */
        started = evt_time_now();
        check(evt_loop_new(NULL, NULL, &loop), "cannot create the loop");
        check(evt_task_spawn(loop, main_task, loop, &(evt_task_opts) { .name = "main" }, &main_t),
              "cannot start the main task");
        check(evt_loop_run(loop), "cannot run the loop");
        check(evt_task_result(main_t, &result), "the main task has not ended");
        evt_task_unref(main_t);
        evt_loop_free(loop);
        return result == 0 ? 0 : 1;
}
