/* swapcontext-w1: benchmark peer for bench/run, workload W1 only, with
 * makecontext/swapcontext: 100 contexts, each yields 10,000 times back to a
 * round-robin scheduler. One yield = switch into the context + its switch
 * back. See README.md beside this file.
 *
 *   swapcontext-w1 W1 [N]    (N is accepted and ignored, like the other peers) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>

#define TASKS 100
#define YIELDS 10000
#define STACK_SIZE (64 * 1024)

static ucontext_t scheduler, task[TASKS];
static int done[TASKS];
static long count;

static long long now_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void run(int i) {
        for (int j = 0; j < YIELDS; j++) {
                count++;
                swapcontext(&task[i], &scheduler);
        }
        done[i] = 1; /* returning switches to uc_link, the scheduler */
}

int main(int argc, char **argv) {
        long long start, elapsed;

        if (argc < 2 || argc > 3 || strcmp(argv[1], "W1") != 0) { /* N is ignored */
                fprintf(stderr, "usage: swapcontext-w1 W1 [N]\n");
                return 2;
        }
        for (int i = 0; i < TASKS; i++) {
                void *stack = malloc(STACK_SIZE);

                if (!stack || getcontext(&task[i]) < 0) {
                        fprintf(stderr, "swapcontext-w1: context %d: out of memory\n", i);
                        return 1;
                }
                task[i].uc_stack.ss_sp = stack;
                task[i].uc_stack.ss_size = STACK_SIZE;
                task[i].uc_link = &scheduler;
                makecontext(&task[i], (void (*)(void)) run, 1, i);
        }

        start = now_ns();
        for (int live = TASKS; live > 0;)
                for (int i = 0; i < TASKS; i++)
                        if (!done[i]) {
                                swapcontext(&scheduler, &task[i]);
                                if (done[i])
                                        live--;
                        }
        elapsed = now_ns() - start;

        if (count != (long) TASKS * YIELDS) {
                fprintf(stderr, "swapcontext-w1: %ld yields, want %d\n", count, TASKS * YIELDS);
                return 1;
        }
        printf("{\"impl\":\"swapcontext\",\"workload\":\"W1\",\"metric\":\"ns_per_yield\",\"value\":%.2f}\n",
               (double) elapsed / (TASKS * YIELDS));
        for (int i = 0; i < TASKS; i++)
                free(task[i].uc_stack.ss_sp);
        return 0;
}
