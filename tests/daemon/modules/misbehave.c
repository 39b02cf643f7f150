/* A task module that does what a module must not: its constructor runs
 * when it is loaded, and does what EVTASK_TEST_CTOR says ("mark=PATH":
 * append "PID EUID" to PATH; "exit": exit(3); "fault": SIGSEGV); its entry
 * functions exit the process (`exit_task`, with `arg.status`), fault
 * (`fault_task`) or just finish (`evtask_task`). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <evtask-module.h>

EVTASK_MODULE();

__attribute__((constructor)) static void on_load(void) {
        const char *what = getenv("EVTASK_TEST_CTOR");
        FILE *f;

        if (!what)
                return;
        if (strncmp(what, "mark=", 5) == 0 && (f = fopen(what + 5, "a"))) {
                fprintf(f, "%ld %ld\n", (long) getpid(), (long) geteuid());
                fclose(f);
        } else if (strcmp(what, "exit") == 0) {
                exit(3);
        } else if (strcmp(what, "fault") == 0) {
                raise(SIGSEGV);
        }
}

int evtask_task(const evtask_module_ctx *ctx) {
        (void) ctx;
        return 0;
}

int exit_task(const evtask_module_ctx *ctx) {
        const char *status = evtask_module_arg_get(ctx, "status");
        const char *after = evtask_module_arg_get(ctx, "after_ms");
        /* By then the daemon is well under way. */
        int r = evt_sleep(EVT_MSEC(after ? atoi(after) : 100));

        if (r < 0)
                return r;
        exit(status ? atoi(status) : 0);
}

int fault_task(const evtask_module_ctx *ctx) {
        int r = evt_sleep(EVT_MSEC(100));

        (void) ctx;
        if (r < 0)
                return r;
        /* A page no access is allowed to: a real fault, at a real address. */
        volatile char *page = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (page != MAP_FAILED)
                page[0] = 1;
        return -EFAULT;
}
