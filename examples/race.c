/* The rabbit and the turtle: two tasks race 10 steps, at 3 and 1 steps per
 * second. Ctrl-C (SIGINT) pauses the race and resumes it; SIGTERM or
 * Ctrl-\ (SIGQUIT) cancels it.
 *
 * Python's version of this (an asyncio.Event each runner awaits before a
 * step) still prints a step after "stopped": a step already scheduled runs.
 * Here the runners do not check any flag; the scheduler's pause gate holds
 * them, and no step is printed between "paused" and "resumed". */
#include <errno.h>
#include <ev.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "evtask.h"

struct runner {
        const char *name;
        int speed;      /* steps per second */
        int steps;      /* steps to finish */
};

__attribute__((format(printf, 1, 2)))
static void say(const char *fmt, ...) {
        char stamp[16];
        time_t now = time(NULL);
        va_list ap;

        strftime(stamp, sizeof(stamp), "%H:%M:%S", localtime(&now));
        printf("[%s] ", stamp);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        putchar('\n');
        fflush(stdout);
}

static int run(void *arg) {
        const struct runner *r = arg;

        for (int distance = 1; distance <= r->steps; distance++) {
                int e = evt_sleep(EVT_SEC(1) / r->speed);

                if (e < 0) {
                        say("%s: stopped at distance %d", r->name, distance - 1);
                        return e;
                }
                say("%s: distance=%d", r->name, distance);
        }
        say("%s: finish! (%d steps)", r->name, r->steps);
        return 0;
}

static void pause_cb(struct ev_loop *ev, ev_signal *w, int revents) {
        evt_loop *loop = w->data;

        (void) ev;
        (void) revents;
        if (evt_loop_is_paused(loop)) {
                evt_loop_resume(loop);
                say("resumed");
        } else {
                evt_loop_pause(loop);
                say("paused (Ctrl-C resumes)");
        }
}

static void stop_cb(struct ev_loop *ev, ev_signal *w, int revents) {
        (void) ev;
        (void) revents;
        evt_group_cancel(w->data, 0);
}

int main(void) {
        struct runner rabbit = { "rabbit", 3, 10 }, turtle = { "turtle", 1, 10 };
        ev_signal sigint, sigterm, sigquit;
        struct ev_loop *ev;
        evt_group *group;
        evt_loop *loop;
        int r;

        r = evt_loop_new(NULL, NULL, &loop);
        if (r < 0) {
                fprintf(stderr, "race: cannot create the loop: %s\n", strerror(-r));
                return 1;
        }
        ev = evt_loop_ev(loop);
        if (evt_group_new(loop, &group) < 0 ||
            evt_group_spawn(group, run, &rabbit, &(evt_task_opts) { .name = "rabbit" }, NULL) < 0 ||
            evt_group_spawn(group, run, &turtle, &(evt_task_opts) { .name = "turtle" }, NULL) < 0) {
                fprintf(stderr, "race: cannot start the runners\n");
                return 1;
        }

        ev_signal_init(&sigint, pause_cb, SIGINT);
        sigint.data = loop;
        ev_signal_init(&sigterm, stop_cb, SIGTERM);
        sigterm.data = group;
        ev_signal_init(&sigquit, stop_cb, SIGQUIT);
        sigquit.data = group;
        ev_signal_start(ev, &sigint);
        ev_signal_start(ev, &sigterm);
        ev_signal_start(ev, &sigquit);
        /* The signal watchers must not keep the loop alive on their own. */
        ev_unref(ev);
        ev_unref(ev);
        ev_unref(ev);

        printf("race: Ctrl-C pauses and resumes, Ctrl-\\ or SIGTERM stops\n");
        r = evt_loop_run(loop);

        ev_ref(ev);
        ev_ref(ev);
        ev_ref(ev);
        ev_signal_stop(ev, &sigint);
        ev_signal_stop(ev, &sigterm);
        ev_signal_stop(ev, &sigquit);
        evt_group_free(group);
        evt_loop_free(loop);
        return r < 0 ? 1 : 0;
}
