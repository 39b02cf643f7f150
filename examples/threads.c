/* A blocking function that never ends, stopped through its token (seed 003).
 *
 * Two tasks each await a function on a worker thread: quick() takes 1 s,
 * endless() loops forever. The first to return cancels the other, like the
 * write-up's asyncio.wait(FIRST_COMPLETED) and cancel.
 *
 *     threads [--stubborn]         (endless() then ignores its token)
 *
 * In Python, cancelling the task that awaits asyncio.to_thread() leaves the
 * thread running (no thread can be killed), and the exit waits for it
 * forever; the write-up's fix is an Event the function checks. Here every
 * blocking function has one, its token: cancelling the awaiting task
 * returns at once and sets the token's stop flag, which endless() sees at
 * its next checkpoint (where a Ctrl-C pause holds it, too). The lifecycle
 * waits for it to return before exiting. A stubborn function keeps the
 * program running, but not past a shutdown: drain_timeout and abandon_grace
 * after SIGTERM, its thread is abandoned and reported, and the exit status
 * is 4. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <evtask.h>

struct job {
        const char *name;
        evt_blocking_fn fn;
        evt_pool *pool;
        evt_group *group;       /* the jobs that race */
        bool stubborn;
};

static void check(int r, const char *what) {
        if (r < 0) {
                fprintf(stderr, "threads: %s: %s\n", what, strerror(-r));
                exit(1);
        }
}

/* On a worker thread. */
static int quick(evt_token *token, void *arg) {
        (void) token;
        (void) arg;
        sleep(1);
        printf("quick: returning\n");
        return 0;
}

/* On a worker thread: a step, then a checkpoint, forever. */
static int endless(evt_token *token, void *arg) {
        const struct job *job = arg;

        for (;;) {
                nanosleep(&(struct timespec) { .tv_nsec = 300 * 1000 * 1000 }, NULL);
                if (!job->stubborn && evt_token_checkpoint(token) < 0) {
                        printf("endless: stop requested, returning\n");
                        return -ECANCELED;
                }
                printf("endless: I'm still standing\n");
        }
}

/* The task that awaits a job's function. */
static int await_job(void *arg) {
        struct job *job = arg;
        int result;
        int r = evt_pool_call(job->pool, job->fn, job, NULL, EVT_FOREVER, &result);

        if (r < 0) {
                printf("%s task: gave up on its call (%s)\n", job->name, strerror(-r));
                return r;
        }
        printf("%s task: done (its function returned %d); cancelling the rest\n", job->name, result);
        evt_group_cancel(job->group, 0); /* this task too, which ends now anyway */
        return result;
}

static void on_abandoned(evt_lifecycle *lc, const evt_call_info *call, void *data) {
        (void) lc;
        (void) data;
        printf("abandoned the call of task %s, running for %.1f s\n", call->task,
               (double) call->running / 1e9);
}

int main(int argc, char **argv) {
        bool stubborn = argc > 1 && strcmp(argv[1], "--stubborn") == 0;
        evt_lifecycle_opts opts = {
                .drain_timeout = EVT_SEC(2),  /* from SIGTERM to forcing */
                .abandon_grace = EVT_SEC(1),  /* from forcing to abandoning */
                .exit_when_idle = true,       /* end when tasks and calls have */
        };
        evt_lifecycle_ops ops = { .abandoned_cb = on_abandoned };
        /* A thread each: on one, quick() would queue behind endless(). */
        evt_pool_opts popts = { .threads = 2 };
        struct job jobs[] = {
                { .name = "quick", .fn = quick },
                { .name = "endless", .fn = endless, .stubborn = stubborn },
        };
        evt_lifecycle *lc;
        evt_group *group;
        evt_pool *pool;
        evt_loop *loop;
        int status;

        setvbuf(stdout, NULL, _IOLBF, 0); /* a line at a time, into a pipe too */
        check(evt_loop_new(NULL, NULL, &loop), "cannot create the loop");
        check(evt_lifecycle_new(loop, &opts, &ops, &lc), "cannot take the signals");
        check(evt_pool_new(loop, &popts, &pool), "cannot create the thread pool");
        check(evt_group_new(loop, &group), "cannot create the group");
        for (int i = 0; i < 2; i++) {
                jobs[i].pool = pool;
                jobs[i].group = group;
                check(evt_group_spawn(group, await_job, &jobs[i], &(evt_task_opts) { .name = jobs[i].name },
                                      NULL), "cannot spawn");
        }

        printf("PID: %d (SIGTERM shuts down, Ctrl-C pauses)\n", (int) getpid());
        status = evt_lifecycle_run(lc);
        printf("exit status %d\n", status);
        evt_group_free(group);
        evt_pool_free(pool); /* does not wait for an abandoned thread */
        evt_lifecycle_free(lc);
        evt_loop_free(loop);
        return status;
}
