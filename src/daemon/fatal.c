/* When a module ends the daemon. A module's code runs inside evtaskd, so
 * its exit() or its fault is the daemon's; neither can be undone. What the
 * daemon does: name the task, stop what its jobs started (SIGKILL to
 * every process of each run), and exit 70 (EX_SOFTWARE) instead of 0 or a bare
 * signal, so a service manager restarts it. A fault anywhere else keeps
 * its default action (a core dump names the daemon's own bug). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "daemon.h"

static const int faults[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGSYS };

static evd_daemon *watched;     /* set once, before the loop exists */
static pid_t watched_pid;       /* a forked child is not the daemon */

/* The module job whose task runs now, or NULL (not a module's code). */
static const evd_job *module_running(void) {
        evt_task *t = evt_task_current();
        const evd_job *job;

        if (!t || !watched || !watched->jobs || getpid() != watched_pid)
                return NULL;
        job = evd_jobs_find_task(watched->jobs, t);
        return job && job->conf.kind == EVD_KIND_MODULE ? job : NULL;
}

/* Logs `what` of the module's task, kills the runs and exits 70. From a
 * fault handler as from exit(): the loop cannot run again either way. */
static _Noreturn void module_ended_daemon(const evd_job *job, int sig, const char *what) {
        char msg[256];

        snprintf(msg, sizeof(msg), "task %s (kind = module, %s) %s inside evtaskd: exiting with status %d",
                 job->conf.name, job->conf.path, what, EX_SOFTWARE);
        evd_log_emit(watched->log, LOG_CRIT, EVD_EV_EXIT, job->conf.name,
                     EVD_FIELDS(EVD_NUM("exit_code", EX_SOFTWARE), EVD_NUM("signal_number", sig)), "%s", msg);
        /* On stderr too: the journal or the container's log has it even
         * when the log is a pipe that went away. */
        if (evd_log_get_target(watched->log) != EVD_LOG_CONSOLE)
                fprintf(stderr, "evtaskd: %s\n", msg);
        evd_jobs_kill_runs(watched->jobs);
        fflush(NULL);
        _exit(EX_SOFTWARE);
}

static void on_exit_cb(int status, void *unused) {
        const evd_job *job = module_running();
        char what[64];

        (void) unused;
        if (!job)
                return; /* the daemon's own exit */
        snprintf(what, sizeof(what), "called exit(%d)", status);
        module_ended_daemon(job, 0, what);
}

static void fault_handler(int sig, siginfo_t *si, void *uc) {
        struct sigaction dfl = { .sa_handler = SIG_DFL };
        const evd_job *job = module_running();
        char what[64];

        (void) uc;
        if (job) {
                snprintf(what, sizeof(what), "faulted with signal %d (%s)", sig, sigabbrev_np(sig));
                module_ended_daemon(job, sig, what);
        }
        /* Not a module's: the default action, as if this handler were not
         * there. A fault repeats when the instruction does; a signal that
         * was sent is sent again. */
        sigaction(sig, &dfl, NULL);
        if (si->si_code <= 0)
                raise(sig);
}

void evd_fatal_default(void) {
        struct sigaction dfl = { .sa_handler = SIG_DFL };

        for (size_t i = 0; i < ARRAY_SIZE(faults); i++)
                sigaction(faults[i], &dfl, NULL);
}

void evd_fatal_start(evd_daemon *d) {
        struct sigaction sa = { .sa_sigaction = fault_handler, .sa_flags = SA_SIGINFO | SA_ONSTACK };

        watched = d;
        watched_pid = getpid();
        on_exit(on_exit_cb, NULL);
        sigemptyset(&sa.sa_mask);
        for (size_t i = 0; i < ARRAY_SIZE(faults); i++)
                sigaction(faults[i], &sa, NULL);
}
