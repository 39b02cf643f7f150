/* The processes of one exec run, or all the daemon's descendants: found as
 * a whole whatever group or session they moved to, stopped and continued
 * together, and ended together (the signal, then SIGKILL), each one that
 * is left named in a record. Where the daemon's cgroup v2 is delegated to
 * it, a run is a child cgroup (cgroup.c); otherwise the daemon is child
 * subreaper and walks /proc. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "log.h"

/* A member, as last seen: a pid with another start time is another
 * process. */
typedef struct evd_proc {
        pid_t pid;
        unsigned long long start; /* starttime of /proc/PID/stat */
        bool signalled;         /* has had the end's first signal */
} evd_proc;

typedef struct evd_proctree {
        pid_t root;             /* the run's command (its pid, group and
                                 * session), or the daemon: 0 before a spawn */
        bool is_daemon;         /* every descendant of the daemon, itself not */
        int cgroup;             /* the run's cgroup directory, or -1: walk /proc */
        char cgroup_name[64];   /* ... its name in the daemon's cgroup */
        evd_proc *procs;        /* the members found alive by the last scan */
        size_t n_procs, cap;
        int64_t kill_at;        /* when the end turns to SIGKILL; 0: not ending */
        /* For the records: */
        evd_log *log;
        const char *task;       /* borrowed; NULL: the daemon's */
        unsigned run;
} evd_proctree;

/* ---- the mechanism, chosen once per daemon ---- */

/* After the daemon has its final identity: a cgroup v2 subtree per run if
 * the daemon's own cgroup (not the root) is writable to it, else the walk
 * (the daemon is subreaper already). Returns true for cgroups; `why` says
 * why not. */
bool evd_proctree_setup(char *why, size_t whylen);

/* ---- one run's tree ---- */

/* Before a spawn: an empty tree, with a cgroup of its own where they are
 * used, and in *ret_procs the descriptor of its cgroup.procs that the
 * child writes "0" to (the caller closes it), or -1: no cgroup, the
 * child's session is enough. 0 or -errno; the tree is closable either way. */
int evd_proctree_open(evd_proctree *t, evd_log *log, const char *task, unsigned run, int *ret_procs);
/* The spawned command, once started: its pid is the session's. */
void evd_proctree_attach(evd_proctree *t, pid_t root);
/* Every descendant of the daemon (for its last sweep, and a pause's
 * strays). */
void evd_proctree_open_daemon(evd_proctree *t, evd_log *log);
/* After the last sweep: what is left of the runs' cgroups goes. */
void evd_proctree_cleanup(void);
/* Frees it (and removes an empty cgroup). Accepts a zeroed one. */
void evd_proctree_close(evd_proctree *t);

/* Finds the members now; returns how many are alive (zombies do not
 * count). */
size_t evd_proctree_scan(evd_proctree *t);
/* Stops (SIGSTOP, or the cgroup's freeze) or continues every member; a
 * continue also sends SIGCONT, for one that someone else stopped. */
void evd_proctree_freeze(evd_proctree *t, bool frozen);
/* Whether the last scan found pid (started at start) a member. */
bool evd_proctree_has(const evd_proctree *t, pid_t pid, unsigned long long start);
/* A pause of the daemon's tree t (evd_proctree_open_daemon), kept until
 * the resume: stops every descendant of the daemon that `belongs` puts in
 * no run (one that left its run's session and lost its parent before a
 * walk saw it), and at the resume continues them. Nothing to do where runs
 * are cgroups: no process leaves one. */
void evd_proctree_freeze_strays(evd_proctree *t, bool frozen,
                                bool (*belongs)(void *data, pid_t pid, unsigned long long start), void *data);
/* sig to every member, as it is now (evtaskctl signal): how many had it. */
size_t evd_proctree_signal(evd_proctree *t, int sig);
/* The end's first step, once: sig and SIGCONT to every member; SIGKILL due
 * `timeout` later. Members found later get sig when found. */
void evd_proctree_terminate(evd_proctree *t, int sig, int64_t timeout);
/* SIGKILL to every member (the cgroup's kill). */
void evd_proctree_kill(evd_proctree *t);
/* For a handler of a fatal signal or of exit(): SIGKILL through the
 * cgroup, else to the run's process group and each member the last look
 * found. No walk, no allocation: only async-signal-safe calls. */
void evd_proctree_kill_now(const evd_proctree *t);
/* Await point: ends every member (terminate with sig and timeout, unless
 * begun; then SIGKILL) and waits until none is left, or a cancel that
 * pierces the shield (then SIGKILL, and no wait). Each member other than
 * the root is named in a `leftover` record. Returns how many are left. */
size_t evd_proctree_end(evd_proctree *t, int sig, int64_t timeout);
