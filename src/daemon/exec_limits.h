/* An exec job's resource limits (memory_max, pids_max, cpu_weight,
 * cpu_quota, limit_nofile, limit_nproc, limit_cpu): written to the run's
 * own cgroup where the daemon's cgroup v2 delegates the memory, pids and
 * cpu controllers, else set as rlimits in the child before its exec, some
 * of them only approximately and some not at all. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/resource.h>

#include "config.h"
#include "log.h"

/* The rlimits a run's child sets before its exec. */
#define EVD_RLIMITS_MAX 4
typedef struct evd_rlimits {
        unsigned n;
        struct {
                int resource;   /* RLIMIT_* */
                struct rlimit value;
        } r[EVD_RLIMITS_MAX];
} evd_rlimits;

/* Whether the task sets any limit. */
bool evd_limits_any(const evd_task_conf *c);

/* The rlimits of a run: limit_nofile, limit_nproc and limit_cpu always;
 * memory_max as RLIMIT_AS and pids_max as RLIMIT_NPROC without the
 * cgroup's controllers (cgroup false). */
void evd_limits_rlimits(const evd_task_conf *c, bool cgroup, evd_rlimits *ret);

/* Writes the task's memory_max (with memory.oom.group), pids_max,
 * cpu_weight and cpu_quota to a run's cgroup directory. 0, or -errno with
 * the file that refused in why. */
int evd_limits_apply_cgroup(const evd_task_conf *c, int dirfd, char *why, size_t whylen);

/* Whether the cgroup's memory.events counts an OOM kill. */
bool evd_limits_oom_killed(int dirfd);

/* One `limits` record for a task that sets limits, when its job starts:
 * how each applies, and which apply only approximately or not at all
 * (cgroup false: without the controllers, for the reason in no_cgroup). */
void evd_limits_log(evd_log *log, const evd_task_conf *c, bool cgroup, const char *no_cgroup);

/* Why a failed run ended, when its limits say so for certain: "oom-killed"
 * (oom true: the cgroup's count) or "limit_cpu" (SIGXCPU, or SIGKILL
 * past the hard limit); else NULL. */
const char *evd_limits_cause(const evd_task_conf *c, int status, bool oom);
