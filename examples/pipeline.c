/* A pipeline on channels: a producer, workers on a thread pool, a
 * consumer, each stage bounded and each ended by closing its input.
 *
 * The producer sends 1..N into a channel of 8; WORKERS tasks take numbers
 * from it, square each one on the pool (a blocking function, as a hash or
 * a compression would be), and send the squares on into a channel of 8;
 * the consumer adds them up. The producer closes the first channel when it
 * is done; the workers see -EPIPE once it has drained and end; once the
 * group of workers has ended, the second channel is closed, and the
 * consumer ends the same way. No stage runs more than 8 values ahead of
 * the next. Prints the sum and the most values that stood in a channel.
 *
 *     pipeline [N [WORKERS]]
 *
 * Built from events and lists, this takes a queue, a lock and a
 * counting semaphore of one's own; here it is two channels and a group. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <evtask.h>

#define DEPTH 8

static evt_channel *numbers, *squares;
static evt_pool *pool;
static size_t most_queued;

static void check(int r, const char *what) {
        if (r < 0) {
                fprintf(stderr, "pipeline: %s: %s\n", what, strerror(-r));
                exit(1);
        }
}

static void note_depth(evt_channel *c) {
        if (evt_channel_len(c) > most_queued)
                most_queued = evt_channel_len(c);
}

static int produce(void *arg) {
        int64_t n = (int64_t) (intptr_t) arg;
        int r = 0;

        for (int64_t i = 1; i <= n && r == 0; i++) {
                r = evt_channel_send(numbers, &i, EVT_FOREVER);
                note_depth(numbers);
        }
        evt_channel_close(numbers);
        return r;
}

static int square(evt_token *token, void *arg) {
        int64_t *v = arg;

        (void) token;
        *v *= *v;
        return 0;
}

static int work(void *arg) {
        int64_t v;
        int r;

        (void) arg;
        while ((r = evt_channel_recv(numbers, &v, EVT_FOREVER)) == 0) {
                r = evt_pool_call(pool, square, &v, NULL, EVT_FOREVER, NULL);
                if (r == 0)
                        r = evt_channel_send(squares, &v, EVT_FOREVER);
                if (r < 0)
                        return r;
                note_depth(squares);
        }
        return r == -EPIPE ? 0 : r; /* -EPIPE: closed and drained */
}

/* Closes the squares once every worker has ended. */
static int close_after(void *arg) {
        int r = evt_group_wait(arg, EVT_FOREVER);

        evt_channel_close(squares);
        return r;
}

static int consume(void *arg) {
        int64_t *sum = arg, v;
        int r;

        while ((r = evt_channel_recv(squares, &v, EVT_FOREVER)) == 0)
                *sum += v;
        return r == -EPIPE ? 0 : r;
}

int main(int argc, char **argv) {
        long n = argc > 1 ? atol(argv[1]) : 1000;
        int workers = argc > 2 ? atoi(argv[2]) : 4;
        evt_group *group;
        evt_loop *loop;
        int64_t sum = 0;

        check(evt_loop_new(NULL, NULL, &loop), "cannot create the loop");
        check(evt_pool_new(loop, NULL, &pool), "cannot create the pool");
        check(evt_channel_new(loop, sizeof(int64_t), DEPTH, &numbers), "cannot create a channel");
        check(evt_channel_new(loop, sizeof(int64_t), DEPTH, &squares), "cannot create a channel");
        check(evt_group_new_opts(loop, &(evt_group_opts) { .flags = EVT_GROUP_FAIL_FAST }, &group),
              "cannot create the group");
        check(evt_task_spawn(loop, produce, (void *) (intptr_t) n, NULL, NULL), "cannot spawn");
        for (int i = 0; i < workers; i++)
                check(evt_group_spawn(group, work, NULL, NULL, NULL), "cannot spawn");
        check(evt_task_spawn(loop, close_after, group, NULL, NULL), "cannot spawn");
        check(evt_task_spawn(loop, consume, &sum, NULL, NULL), "cannot spawn");
        check(evt_loop_run(loop), "the loop");

        printf("sum of squares 1..%ld = %lld\n", n, (long long) sum);
        printf("most values in a channel: %zu of %d\n", most_queued, DEPTH);
        evt_group_free(group);
        evt_channel_free(numbers);
        evt_channel_free(squares);
        evt_loop_free(loop);
        return 0;
}
