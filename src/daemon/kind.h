/* Job kinds: what a [task.NAME] section's `kind` makes the task do. Each
 * kind is a row of one table (kind.c) and a file of its own
 * (kind_NAME.c): the rules between its keys, what it needs of the host,
 * and the task's body. */
#pragma once

#include "config.h"
#include "jobs.h"

typedef struct evd_kind {
        /* A section of this kind once all its keys are read: the rules
         * between them, and what follows from them (exec's argv). Pure:
         * no file, user or environment is looked at. 0 or an error through
         * e; NULL: nothing to check. */
        int (*check)(evd_task_conf *t, evd_conf_error *e);
        /* What the task needs of this host (a program, a module), in the
         * daemon config c. 0 or an error through e; NULL: nothing. */
        int (*probe)(const evd_config *c, const evd_task_conf *t, evd_conf_error *e);
        /* The task's body: 0 once done, or a negative errno. It runs on
         * the job's task, and its end is logged by evd_job_run. */
        int (*run)(evd_job *job);
        /* The kind's runs log their own ends (exec: one record per run);
         * evd_job_run logs only a cancel. */
        bool logs_own_end;
} evd_kind;

/* For a probe: whether a daemon of config c may take code from path. As
 * root, path must be a file only root or the daemon's [daemon] user could
 * have written (evd_trust_path); otherwise anything goes. 0, or -EPERM
 * with the reason in why. */
int evd_probe_trusted(const evd_config *c, const char *path, char *why, size_t whylen);

/* The row of a kind; never NULL for a kind of the list. */
const evd_kind *evd_kind_get(enum evd_kind_id id);
const char *evd_kind_name(enum evd_kind_id id);

/* The rows, one per file. */
extern const evd_kind evd_kind_ticker, evd_kind_sleep, evd_kind_blocking, evd_kind_wedge, evd_kind_exec,
        evd_kind_module;
