/* Two sleeping tasks end together, whatever the order they are awaited in
 * (seed 004).
 *
 * Two tasks each say hello, sleep 1 s and say world. The main task awaits
 * task 1 then task 2, and then, with two new tasks, task 2 then task 1:
 * both rounds take 1 s, not 2.
 *
 * This is asyncio's model, in C: evt_task_spawn is asyncio.create_task (the
 * task runs from the loop's next iteration), evt_task_join is `await task`
 * (it waits for that task while every other task runs on), and
 * evt_loop_run is asyncio.run. What differs: each task has its own stack,
 * so a task can wait deep inside plain C calls, with no async/await split
 * between functions; every wait returns an error code instead of raising;
 * and a task nobody holds a reference to still runs to its end (asyncio
 * keeps only weak references to tasks). */
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
                fprintf(stderr, "together: %s: %s\n", what, strerror(-r));
                exit(1);
        }
}

static int hello(void *arg) {
        const char *mark = arg;
        int r;

        say("Hello ...%s", mark);
        r = evt_sleep(EVT_SEC(1));
        if (r < 0)
                return r;
        say("...world%s", mark);
        return 0;
}

/* Spawns two tasks, then awaits task `first` (0 or 1) and the other one. */
static int round_of_two(evt_loop *loop, int first) {
        int64_t begin = evt_time_now();
        double done_at[2];
        evt_task *tasks[2];
        int r;

        check(evt_task_spawn(loop, hello, "!", NULL, &tasks[0]), "cannot spawn");
        check(evt_task_spawn(loop, hello, "?", NULL, &tasks[1]), "cannot spawn");
        for (int i = first, k = 0; k < 2; i = 1 - i, k++) {
                /* Only this task waits here; both hello tasks run on. */
                r = evt_task_join(tasks[i], EVT_FOREVER, NULL);
                if (r < 0)
                        return r;
                done_at[i] = (double) (evt_time_now() - begin) / 1e9;
        }
        say("awaited task%d, then task%d: task1 done after %.2f s, task2 after %.2f s", first + 1,
            2 - first, done_at[0], done_at[1]);
        evt_task_unref(tasks[0]);
        evt_task_unref(tasks[1]);
        return 0;
}

static int main_task(void *arg) {
        int r = round_of_two(arg, 0);

        return r < 0 ? r : round_of_two(arg, 1);
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
