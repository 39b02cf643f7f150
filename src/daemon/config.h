/* evtaskd's configuration: INI sections [daemon] and [task.NAME], parsed
 * with inih. Every error names file, line and key. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "command.h"
#include "log.h"
#include "values.h"


enum evd_kind {
        EVD_KIND_TICKER,        /* `speed` steps per second, `steps` of them */
        EVD_KIND_SLEEP,         /* sleeps `duration`, then finishes */
        EVD_KIND_BLOCKING,      /* `duration` of CPU work in a pool thread */
        EVD_KIND_WEDGE,         /* after `duration`, never yields again */
        EVD_KIND_EXEC,          /* runs a command */
        EVD_KIND_MODULE,        /* a shared object's entry function */
};

enum evd_schedule {
        EVD_SCHEDULE_ONCE,      /* one run (and restarts, per `restart`) */
        EVD_SCHEDULE_INTERVAL,  /* a run every `interval`, start to start */
        EVD_SCHEDULE_ALWAYS,    /* a new run as soon as one ends */
};

enum evd_restart {
        EVD_RESTART_NO,
        EVD_RESTART_ON_FAILURE,
        EVD_RESTART_ALWAYS,
};

typedef struct evd_task_conf {
        char *name;             /* NAME of [task.NAME] */
        unsigned line;          /* line of the section header */
        enum evd_kind kind;     /* `kind`, required */
        bool shield;            /* `shield`, default no */
        bool pausable;          /* `pausable`, default yes */
        /* kind = ticker */
        double speed;           /* `speed`, steps per second, > 0; default 1 */
        uint64_t steps;         /* `steps`, 0 = forever; default 0 */
        char *message;          /* `message`, default NULL (none) */
        /* kind = sleep, blocking, wedge */
        int64_t duration;       /* `duration` in ns, required */
        /* kind = blocking */
        int64_t check_every;    /* `check_every` in ns, 0 = never; default 1s */
        /* kind = exec */
        char *command;          /* `command`, as written */
        char **argv;            /* ... split, or sh -c COMMAND; NULL-terminated */
        bool shell;             /* `shell`: argv is sh -c COMMAND */
        enum evd_schedule schedule; /* `schedule`, default once */
        int64_t interval;       /* `interval`, ns; for schedule = interval */
        int64_t timeout;        /* `timeout` per run, ns; 0 = none */
        int kill_signal;        /* `kill_signal`, default SIGTERM */
        int64_t kill_timeout;   /* `kill_timeout`, ns; default 5s */
        enum evd_restart restart; /* `restart`, default no */
        int64_t restart_sec;    /* `restart_sec`, ns; default 1s */
        char *working_directory; /* `working_directory`, NULL = the daemon's */
        char **environment;     /* `environment`, K=V entries; NULL-terminated */
        char *user;             /* `user` (name or uid), NULL = the daemon's */
        char *group;            /* `group` (name or gid), NULL = the user's */
        /* kind = module */
        char *path;             /* `path` of the shared object, required */
        char *entry;            /* `entry` symbol; default evtask_task */
        char **args;            /* the arg.KEY lines, as KEY=VALUE; NULL-terminated */
} evd_task_conf;

typedef struct evd_config {
        char *path;             /* the file, or the name given for a string */
        int64_t drain_timeout;  /* [daemon] drain_timeout, ns; default 20s */
        bool exit_when_done;    /* [daemon] exit_when_done; default no */
        enum evd_log_target log; /* [daemon] log; default auto */
        size_t stack_size;      /* [daemon] stack_size, bytes; 0 = library default */
        unsigned threads;       /* [daemon] threads; 0 = one per CPU */
        int64_t abandon_grace;  /* [daemon] abandon_grace, ns; default 1s */
        int64_t slow_step_warn; /* [daemon] slow_step_warn, ns; 0 = off; default 100ms */
        char *user;             /* [daemon] user to run as once set up; NULL = stay */
        char *group;            /* [daemon] group; NULL = the user's */
        evd_task_conf *tasks;   /* in the order of the file */
        size_t n_tasks;
} evd_config;

const char *evd_kind_name(enum evd_kind kind);

/* Opens a module and checks it (its ABI, its entry symbol): 0 with the
 * handle and the entry function, or, with the reason in err, -ENOEXEC (the
 * file: it does not load, or is no module for this ABI) or -ENOENT (it has
 * no such entry function). */
int evd_module_open(const char *path, const char *entry, void **ret_handle, void **ret_fn, char *err,
                    size_t errlen);

/* Deep copies of one task's settings, for jobs that outlive the config
 * they came from (a reload replaces it). 0 or -ENOMEM; dst is untouched on
 * failure. */
int evd_task_conf_copy(evd_task_conf *dst, const evd_task_conf *src);
void evd_task_conf_clear(evd_task_conf *t);
/* Same settings (the line a task came from does not count). */
bool evd_task_conf_equal(const evd_task_conf *a, const evd_task_conf *b);

/* The built-in config (conf/demo.conf), read when no file is given, under
 * this name. */
#define EVD_DEMO_NAME "<built-in demo.conf>"
extern const char evd_demo_conf[];

/* Parse a file. On failure returns a negative errno (-ENOENT, -EACCES, ...
 * for a file that cannot be read, -EINVAL for any content error), writes a
 * one-line message into err (for example "demo.conf:12: key 'speed' in
 * [task.rabbit]: '3x' is not a number") and leaves *ret untouched. */
int evd_config_load_file(const char *path, evd_config **ret, char *err, size_t errlen);
/* The same for a config held in memory; `name` stands for the file name. */
int evd_config_load_string(const char *name, const char *text, evd_config **ret, char *err,
                           size_t errlen);
/* Accepts NULL. */
void evd_config_free(evd_config *c);
