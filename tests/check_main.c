/* The main of every suite binary: runs the file's suite, exits non-zero if
 * anything failed. */
#include <stdlib.h>

#include "testutil.h"

int main(void) {
        SRunner *sr = srunner_create(evt_test_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
