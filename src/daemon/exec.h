/* kind = exec: commands run as child processes, in their own process
 * group. */
#pragma once

#include <stdbool.h>

#include "jobs.h"

/* The job's task body: runs the command per its schedule and restart
 * policy, logging each run (`run`, `output`, `finished`/`failed`,
 * `skipped`). Returns -ECANCELED once cancelled and the child is gone. */
int evd_exec_run(evd_job *job);
