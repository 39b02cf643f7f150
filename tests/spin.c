/* A program whose only task spins without ever yielding, wedging the loop:
 * the shutdown signals' escape hatch (the third one _exit()s from the
 * signal handler) is the only way out. Used by the daemon tests. */
#include <stdio.h>
#include <unistd.h>

#include "evtask.h"

static int spin(void *arg) {
        volatile unsigned long *n = arg;

        printf("spinning\n");
        fflush(stdout);
        for (;;)
                (*n)++;
        return 0;
}

int main(void) {
        static const char message[] = "{\"event\":\"exit\",\"msg\":\"third shutdown signal\"}\n";
        evt_lifecycle_opts opts = { .emergency_message = message, .emergency_fd = STDOUT_FILENO };
        unsigned long n = 0;
        evt_lifecycle *lc;
        evt_loop *loop;

        if (evt_loop_new(NULL, NULL, &loop) < 0 || evt_lifecycle_new(loop, &opts, NULL, &lc) < 0 ||
            evt_task_spawn(loop, spin, &n, NULL, NULL) < 0)
                return 1;
        return evt_lifecycle_run(lc); /* never returns: the task never yields */
}
