/* Graceful shutdown: shielded work finishes, the rest is cancelled
 * (seed 002).
 *
 * Six workers each work for 10 s (or SECONDS); workers 0-2 are shielded.
 * SIGTERM or Ctrl-\ (SIGQUIT) cancels workers 3-5 at once, lets 0-2 finish
 * and exits 0: three cancelled, three done. A second SIGTERM cancels the
 * shielded ones too (exit status 3); a third exits at once. Ctrl-C
 * (SIGINT) pauses every worker and resumes them, as in evtaskd; a SIGTERM
 * while paused shuts down all the same.
 *
 *     shutdown [SECONDS]
 *
 * In Python this takes a signal handler of one's own and a hand-kept set
 * of tasks not to cancel (asyncio), a helper library (aiorun's
 * shutdown_waits_for), or a shielded cancel scope (trio), and nothing
 * bounds how long the shielded work may take. Here the shield is a flag
 * given at spawn (EVT_TASK_SHIELDED; evt_shield_push/pop shields a stretch
 * of code instead), and the lifecycle owns the signals and the phases:
 * cancel what is not shielded, drain the rest, and force-cancel what is
 * left once drain_timeout has passed. */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <evtask.h>

static int64_t work_time;

static void check(int r, const char *what) {
        if (r < 0) {
                fprintf(stderr, "shutdown: %s: %s\n", what, strerror(-r));
                exit(1);
        }
}

static int work(void *arg) {
        int n = (int) (intptr_t) arg;
        int r;

        printf("[%d] task start!%s\n", n, n < 3 ? " (shielded)" : "");
        r = evt_sleep(work_time);
        if (r < 0) {
                printf("[%d] cancelled! (%s)\n", n, strerror(-r));
                return r;
        }
        printf("[%d] task done!\n", n);
        return 0;
}

static void on_signal(evt_lifecycle *lc, const evt_signal_info *si, void *data) {
        static const char *const what[] = {
                [EVT_SIGNAL_PAUSED] = "paused (Ctrl-C resumes)",
                [EVT_SIGNAL_RESUMED] = "resumed",
                [EVT_SIGNAL_IGNORED] = "ignored during the shutdown",
                [EVT_SIGNAL_SHUTDOWN] = "shutting down (again to force)",
                [EVT_SIGNAL_FORCED] = "forcing",
                [EVT_SIGNAL_REPORTED] = "ignored",
        };
        const char *name = si->signo == SIGINT    ? "SIGINT"
                           : si->signo == SIGTERM ? "SIGTERM"
                           : si->signo == SIGQUIT ? "SIGQUIT"
                                                  : "a signal";

        (void) lc;
        (void) data;
        printf("%s: %s\n", name, what[si->action]);
}

static void on_phase(evt_lifecycle *lc, evt_phase phase, size_t tasks_left, void *data) {
        (void) lc;
        (void) data;
        printf("%s: %zu tasks left\n", evt_phase_name(phase), tasks_left);
}

int main(int argc, char **argv) {
        int seconds = argc > 1 ? atoi(argv[1]) : 10;
        evt_lifecycle_opts opts = {
                .drain_timeout = EVT_SEC(20), /* the most shielded work may take */
                .exit_when_idle = true,       /* also end when the work is done */
        };
        evt_lifecycle_ops ops = { .signal_cb = on_signal, .phase_cb = on_phase };
        evt_lifecycle *lc;
        evt_loop *loop;
        int status;

        if (seconds < 1) {
                fprintf(stderr, "usage: shutdown [SECONDS]\n");
                return 64;
        }
        setvbuf(stdout, NULL, _IOLBF, 0); /* a line at a time, into a pipe too */
        work_time = EVT_SEC(seconds);
        check(evt_loop_new(NULL, NULL, &loop), "cannot create the loop");
        check(evt_lifecycle_new(loop, &opts, &ops, &lc), "cannot take the signals");
        for (int n = 0; n < 6; n++) {
                char name[16];
                evt_task_opts topts = { .name = name, .flags = n < 3 ? EVT_TASK_SHIELDED : 0 };

                snprintf(name, sizeof(name), "worker-%d", n);
                check(evt_task_spawn(loop, work, (void *) (intptr_t) n, &topts, NULL), "cannot spawn");
        }

        printf("PID: %d (SIGTERM or Ctrl-\\ shuts down, Ctrl-C pauses)\n", (int) getpid());
        status = evt_lifecycle_run(lc);
        printf("exit status %d\n", status);
        evt_lifecycle_free(lc);
        evt_loop_free(loop);
        return status;
}
