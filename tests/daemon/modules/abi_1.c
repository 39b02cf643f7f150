/* A module built for module ABI 1, before the context had ready(): evtaskd
 * still loads it. It may use only what ABI 1 has. */
#include <syslog.h>

#include <evtask-module.h>

__attribute__((visibility("default"))) const unsigned evtask_module_abi = 1;

int evtask_task(const evtask_module_ctx *ctx) {
        ctx->log(ctx, LOG_INFO, "built for ABI 1");
        return 0;
}
