/* cgroup v2 for exec runs: the daemon's own cgroup, where it is delegated
 * to the daemon (systemd's Delegate=yes, a container's writable
 * cgroupfs), gets a child cgroup per run; its core files make membership
 * (cgroup.procs), pause (cgroup.freeze) and kill (cgroup.kill) exact. No
 * controller is needed or enabled. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Finds the daemon's cgroup and checks that runs can be made in it: true,
 * or false with the reason in why. Called once. */
bool evd_cgroup_setup(char *why, size_t whylen);
/* evd_cgroup_setup succeeded. */
bool evd_cgroup_enabled(void);
/* The memory, pids and cpu controllers are enabled for the runs' cgroups
 * (limits.c writes their files); if not, why not. */
bool evd_cgroup_limits(void);
const char *evd_cgroup_no_limits(void);

/* Makes a run's cgroup, named run-SEQ.TASK (never "cgroup.*"), into name:
 * its directory's descriptor, or -errno. */
int evd_cgroup_create(const char *task, char *name, size_t namelen);
/* Removes an empty run cgroup and closes dirfd. */
void evd_cgroup_remove(const char *name, int dirfd);
/* At the exit, once no process is left: removes the run cgroups that were
 * still busy when their runs ended. */
void evd_cgroup_remove_all(void);
/* The run's cgroup.procs, open for writing: -errno on failure. */
int evd_cgroup_procs_open(int dirfd);
/* The pids in the cgroup, in a new array (free it): 0 or -errno. */
int evd_cgroup_pids(int dirfd, pid_t **ret_pids, size_t *ret_n);
/* Freezes or thaws the cgroup. 0 or -errno. */
int evd_cgroup_freeze(int dirfd, bool frozen);
/* SIGKILL to every process in it. 0 or -errno. */
int evd_cgroup_kill(int dirfd);
