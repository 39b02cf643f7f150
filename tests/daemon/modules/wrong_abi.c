/* A module built for another module ABI: evtaskd must refuse it. */
#include <evtask-module.h>

__attribute__((visibility("default"))) const unsigned evtask_module_abi = EVTASK_MODULE_ABI + 1;

int evtask_task(const evtask_module_ctx *ctx) {
        (void) ctx;
        return 0;
}
