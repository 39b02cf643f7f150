/* The main of every suite binary: runs the file's suite, exits non-zero if
 * anything failed. */
#include <signal.h>
#include <stdlib.h>

#include "testutil.h"

/* The suites raise, block and route these signals and check what the
 * library leaves of their state. They start from the default disposition
 * and an empty mask, whatever the caller left: nohup ignores SIGHUP, a
 * shell's background job ignores SIGINT and SIGQUIT. Check's forked test
 * processes inherit this. */
static void signals_default(void) {
        static const int signals[] = { SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGPIPE };
        sigset_t none;

        for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++)
                signal(signals[i], SIG_DFL);
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
}

int main(void) {
        SRunner *sr;
        int failed;

        signals_default();
        sr = srunner_create(evt_test_suite());
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
