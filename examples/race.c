/* The rabbit and the turtle (seed 000): pause and resume with Ctrl-C.
 *
 * Two tasks race over 10 steps (or STEPS), the rabbit at 3 steps a second
 * and the turtle at 1. Ctrl-C (SIGINT) pauses the race and the next Ctrl-C
 * resumes it; SIGTERM or Ctrl-\ (SIGQUIT) stops it.
 *
 *     race [STEPS]
 *
 * The Python version toggles an asyncio.Event that each runner awaits
 * before a step. A runner already past that check takes its step anyway,
 * so its own output shows a step after "stopped". Here the runners check
 * no flag at all: the lifecycle pauses the loop on SIGINT, and from then
 * on the scheduler's pause gate resumes no task until the next SIGINT. No
 * step is printed between "paused" and "resumed"; a sleep that falls due
 * meanwhile ends right after the resume. SIGTERM cancels both runners,
 * paused or not. */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <evtask.h>

struct runner {
        const char *name;
        int speed;      /* steps per second */
        int steps;      /* to the finish line */
};

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
                fprintf(stderr, "race: %s: %s\n", what, strerror(-r));
                exit(1);
        }
}

static int run(void *arg) {
        const struct runner *r = arg;

        for (int distance = 1; distance <= r->steps; distance++) {
                /* The one await point of a step: where a cancel arrives. */
                int e = evt_sleep(EVT_SEC(1) / r->speed);

                if (e < 0) {
                        say("%s: stopped at distance %d", r->name, distance - 1);
                        return e;
                }
                say("%s: distance=%d", r->name, distance);
        }
        say("%s: finish!", r->name);
        return 0;
}

/* Called on the loop's thread once the lifecycle has acted: when "paused"
 * is printed, the gate is already closed. */
static void on_signal(evt_lifecycle *lc, const evt_signal_info *si, void *data) {
        (void) lc;
        (void) data;
        if (si->action == EVT_SIGNAL_PAUSED)
                say("paused (Ctrl-C resumes)");
        else if (si->action == EVT_SIGNAL_RESUMED)
                say("resumed");
        else if (si->action == EVT_SIGNAL_SHUTDOWN)
                say("%s: stopping the race", si->signo == SIGTERM ? "SIGTERM" : "SIGQUIT");
}

int main(int argc, char **argv) {
        int steps = argc > 1 ? atoi(argv[1]) : 10;
        struct runner rabbit = { "rabbit", 3, steps }, turtle = { "turtle", 1, steps };
        /* Without exit_when_idle the run would wait for a SIGTERM even
         * after both runners have finished. */
        evt_lifecycle_opts opts = { .exit_when_idle = true };
        evt_lifecycle_ops ops = { .signal_cb = on_signal };
        evt_lifecycle *lc;
        evt_loop *loop;
        int status;

        if (steps < 1) {
                fprintf(stderr, "usage: race [STEPS]\n");
                return 64;
        }
        setvbuf(stdout, NULL, _IOLBF, 0); /* a line at a time, into a pipe too */
        started = evt_time_now();
        check(evt_loop_new(NULL, NULL, &loop), "cannot create the loop");
        check(evt_lifecycle_new(loop, &opts, &ops, &lc), "cannot take the signals");
        check(evt_task_spawn(loop, run, &rabbit, &(evt_task_opts) { .name = "rabbit" }, NULL),
              "cannot start the rabbit");
        check(evt_task_spawn(loop, run, &turtle, &(evt_task_opts) { .name = "turtle" }, NULL),
              "cannot start the turtle");

        say("race: pid %d; Ctrl-C pauses and resumes, Ctrl-\\ or SIGTERM stops", (int) getpid());
        status = evt_lifecycle_run(lc);
        evt_lifecycle_free(lc);
        evt_loop_free(loop);
        return status;
}
