/* Starting an exec job's command: a child in a session of its own (no
 * controlling terminal), in the run's cgroup where there is one, with a
 * clean environment, stdin from /dev/null, the two output pipes as
 * stdout and stderr, and no other descriptor of the daemon. */
#pragma once

#include <sys/types.h>

#include "config.h"
#include "identity.h"
#include "exec_limits.h"

/* The environment of a run: `base` (the daemon's) without what the
 * service manager gave the daemon (NOTIFY_SOCKET, WATCHDOG_*,
 * JOURNAL_STREAM, LISTEN_*, CREDENTIALS_DIRECTORY, MAINPID, ...) and, when
 * the run switches users, without the starting user's (USER, LOGNAME, HOME,
 * SHELL, XDG_RUNTIME_DIR, DBUS_SESSION_BUS_ADDRESS, SUDO_*, ...); then
 * the user's (id->env, with set_uid), then `overrides` (the job's
 * `environment`), each replacing an entry of the same name before it. The
 * strings are borrowed: free only the array. NULL: no memory. */
char **evd_exec_environment(char *const *base, char *const *overrides, const evd_identity *id);

/* The daemon became `id` ([daemon] user): its own environment, which its
 * jobs inherit, loses the starting user's entries (as a run as another
 * user does) and takes id's. Before any thread reads the environment.
 * 0 or -ENOMEM. */
int evd_exec_environment_become(const evd_identity *id);

/* Starts c's argv as `id` under c's umask, with out and err as stdout and
 * stderr, and, with cgroup_procs >= 0 (a run's cgroup.procs), in that
 * cgroup from before its exec: 0 with the pid, or -errno with the reason
 * in why (the child's step that failed, when it could not become `id`,
 * enter its cgroup or directory, set its rlimits, or exec). rl: the
 * rlimits it sets before its exec. */
int evd_exec_spawn(const evd_task_conf *c, const evd_identity *id, int out, int err, int cgroup_procs,
                   const evd_rlimits *rl, pid_t *ret_pid, char *why, size_t whylen);
