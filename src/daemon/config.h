/* evtaskd's configuration: INI sections [daemon] and [task.NAME]. The keys
 * of each section are one list below; the structs, their defaults, copy,
 * clear and comparison, the parser's key table and the fields records show
 * all come from it, so a new key is one row here (and one entry in
 * evtaskd.conf(5)).
 *
 * Reading a config is two steps: evd_config_parse_* turns text into the
 * structs and touches nothing outside them (no user database, no $PATH, no
 * dlopen); evd_config_probe then checks them against this host (users,
 * groups, programs, modules). evd_config_load_* does both. Every error
 * names file, line and key. */
#pragma once

#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "name_index.h"
#include "util.h"
#include "values.h"

/* ---- the words some keys take: X(ID, name) ---- */

#define EVD_KIND_LIST(X)                                                                \
        X(EVD_KIND_TICKER, "ticker")    /* `speed` steps per second, `steps` of them */ \
        X(EVD_KIND_SLEEP, "sleep")      /* sleeps `duration`, then finishes */          \
        X(EVD_KIND_BLOCKING, "blocking") /* `duration` of CPU work in a pool thread */  \
        X(EVD_KIND_WEDGE, "wedge")      /* after `duration`, never yields again */      \
        X(EVD_KIND_EXEC, "exec")        /* runs a command */                            \
        X(EVD_KIND_MODULE, "module")    /* a shared object's entry function */

#define EVD_SCHEDULE_LIST(X)                                                            \
        X(EVD_SCHEDULE_ONCE, "once")    /* one run (and restarts, per `restart`) */     \
        X(EVD_SCHEDULE_INTERVAL, "interval") /* a run every `interval`, start to start */ \
        X(EVD_SCHEDULE_ALWAYS, "always") /* a new run as soon as one ends */            \
        X(EVD_SCHEDULE_CALENDAR, "calendar") /* at the times `on_calendar` names */

#define EVD_RESTART_LIST(X)                     \
        X(EVD_RESTART_NO, "no")                 \
        X(EVD_RESTART_ON_FAILURE, "on-failure") \
        X(EVD_RESTART_ALWAYS, "always")

/* What schedule = calendar does about runs due while the daemon was down. */
#define EVD_CATCH_UP_LIST(X)                                                           \
        X(EVD_CATCH_UP_NONE, "none")    /* nothing */                                   \
        X(EVD_CATCH_UP_ONCE, "once")    /* one run at start, for all of them */
/* What SIGINT does: the product's pause, or what SIGTERM does (for
 * orchestrators that stop with SIGINT, and Ctrl-C in `podman run -it`). */
#define EVD_SIGINT_LIST(X)                      \
        X(EVD_SIGINT_PAUSE, "pause")            \
        X(EVD_SIGINT_SHUTDOWN, "shutdown")
/* When an exec job is ready for the tasks that start `after` it. */
#define EVD_READY_LIST(X)                                                               \
        X(EVD_READY_STARTED, "started") /* its first run has started */                 \
        X(EVD_READY_EXITED, "exited")   /* a run has exited 0 */                        \
        X(EVD_READY_NOTIFY, "notify")   /* a run sent READY=1 to its NOTIFY_SOCKET */

#define EVD_OUTPUT_LIST(X)                                                              \
        X(EVD_OUTPUT_LOG, "log")        /* each line an `output` record */              \
        X(EVD_OUTPUT_DISCARD, "discard") /* read from the pipes and dropped */

enum evd_kind_id { EVD_KIND_LIST(EVD_ENUM_ID) EVD_KIND_COUNT };
enum evd_ready { EVD_READY_LIST(EVD_ENUM_ID) };
enum evd_schedule { EVD_SCHEDULE_LIST(EVD_ENUM_ID) };
enum evd_restart { EVD_RESTART_LIST(EVD_ENUM_ID) };
enum evd_catch_up { EVD_CATCH_UP_LIST(EVD_ENUM_ID) };
enum evd_sigint { EVD_SIGINT_LIST(EVD_ENUM_ID) };
enum evd_output_mode { EVD_OUTPUT_LIST(EVD_ENUM_ID) };

extern const evd_names evd_kind_names;
extern const evd_names evd_schedule_names;
extern const evd_names evd_restart_names;
extern const evd_names evd_catch_up_names;
extern const evd_names evd_sigint_names;
extern const evd_names evd_ready_names;
extern const evd_names evd_output_names;

/* ---- the keys ----
 *
 * X(field, type, kinds, required, default, record):
 *   field     the key's name and the struct field's;
 *   type      how its value is read (the evd_type_<type> parsers of
 *             conf_types.c), which also gives the field's C type
 *             (EVD_CTYPE_<type>);
 *   kinds     the task kinds it is valid for (EVD_ANY_KIND, or the
 *             EVD_KIND_BIT()s of some: EVD_EXEC, EVD_TIMED_KINDS, ...);
 *   required  the kinds that must set it (0: none);
 *   default   the field's value when the key is not set;
 *   record    the field's name in records about the task (spawned, the
 *             task table, the journal), or NULL: not shown. */

#define EVD_KIND_BIT(k) (1u << (k))
#define EVD_ANY_KIND (~0u)
#define EVD_TIMED_KINDS (EVD_KIND_BIT(EVD_KIND_SLEEP) | EVD_KIND_BIT(EVD_KIND_BLOCKING) | EVD_KIND_BIT(EVD_KIND_WEDGE))
#define EVD_TICKER EVD_KIND_BIT(EVD_KIND_TICKER)
#define EVD_BLOCKING EVD_KIND_BIT(EVD_KIND_BLOCKING)
#define EVD_EXEC EVD_KIND_BIT(EVD_KIND_EXEC)
#define EVD_MODULE EVD_KIND_BIT(EVD_KIND_MODULE)

#define EVD_SEC(n) ((int64_t) (n) * EVD_NSEC_PER_SEC)

#define EVD_DAEMON_KEYS(X)                                                                        \
        X(drain_timeout, positive_duration, EVD_ANY_KIND, 0, EVD_SEC(20), NULL)                  \
        X(exit_when_done, boolean, EVD_ANY_KIND, 0, false, NULL)                                  \
        X(log, log_target, EVD_ANY_KIND, 0, EVD_LOG_AUTO, NULL)                                   \
        X(log_overflow, log_overflow, EVD_ANY_KIND, 0, EVD_LOG_OVERFLOW_BLOCK, NULL)              \
        X(stack_size, stack_size, EVD_ANY_KIND, 0, 0, NULL)       /* 0: the library's default */ \
        X(threads, threads, EVD_ANY_KIND, 0, 0, NULL)             /* 0: one per CPU */            \
        X(abandon_grace, positive_duration, EVD_ANY_KIND, 0, EVD_SEC(1), NULL)                   \
        X(slow_step_warn, duration, EVD_ANY_KIND, 0, EVD_SEC(1) / 10, NULL) /* 0: off */          \
        X(user, identity, EVD_ANY_KIND, 0, NULL, NULL)            /* NULL: stay as started */     \
        X(group, identity, EVD_ANY_KIND, 0, NULL, NULL)           /* NULL: the user's */          \
        X(control_socket, socket_path, EVD_ANY_KIND, 0, NULL, NULL) /* NULL: the default place */ \
        X(control_group, group_name, EVD_ANY_KIND, 0, NULL, NULL)  /* may also send commands */   \
        X(control_readonly, boolean, EVD_ANY_KIND, 0, false, NULL) /* anyone may read status */ \
        X(http_listen, listen_address, EVD_ANY_KIND, 0, NULL, NULL) /* NULL: no HTTP endpoint */  \
        X(ready_when_paused, boolean, EVD_ANY_KIND, 0, true, NULL) /* /readyz while paused */       \
        X(state_directory, path, EVD_ANY_KIND, 0, NULL, NULL) /* NULL: $STATE_DIRECTORY or the default */ \
        X(stop_grace, duration, EVD_ANY_KIND, 0, 0, NULL)         /* 0: not known */             \
        X(sigint, sigint, EVD_ANY_KIND, 0, EVD_SIGINT_PAUSE, NULL)                                \
        X(reload_on_change, boolean, EVD_ANY_KIND, 0, false, NULL) /* inotify on the directory */

#define EVD_TASK_KEYS(X)                                                                          \
        X(kind, kind, EVD_ANY_KIND, EVD_ANY_KIND, EVD_KIND_TICKER, "kind")                        \
        X(shield, boolean, EVD_ANY_KIND, 0, false, "shielded")                                    \
        X(pausable, boolean, EVD_ANY_KIND, 0, true, "pausable")                                   \
        X(description, text, EVD_ANY_KIND, 0, NULL, "description") /* for people */              \
        X(after, task_names, EVD_ANY_KIND, 0, NULL, NULL)         /* starts once these are ready */ \
        X(requires, task_names, EVD_ANY_KIND, 0, NULL, NULL)      /* ... and ends when one fails */ \
        X(speed, speed, EVD_TICKER, 0, 1, NULL)                   /* steps per second */          \
        X(steps, count, EVD_TICKER, 0, 0, NULL)                   /* 0: forever */                \
        X(message, text, EVD_TICKER, 0, NULL, NULL)                                               \
        X(duration, positive_duration, EVD_TIMED_KINDS, EVD_TIMED_KINDS, 0, NULL)                 \
        X(check_every, duration, EVD_BLOCKING, 0, EVD_SEC(1), NULL) /* 0: never */                \
        X(command, string, EVD_EXEC, EVD_EXEC, NULL, NULL)        /* as written */                \
        X(shell, boolean, EVD_EXEC, 0, false, NULL)               /* argv is sh -c COMMAND */     \
        X(schedule, schedule, EVD_EXEC, 0, EVD_SCHEDULE_ONCE, NULL)                               \
        X(interval, positive_duration, EVD_EXEC, 0, 0, NULL)      /* for schedule = interval */   \
        X(on_calendar, calendar, EVD_EXEC, 0, NULL, NULL)         /* for schedule = calendar */   \
        X(timezone, timezone, EVD_EXEC, 0, NULL, NULL)            /* NULL: the system's */        \
        X(jitter, duration, EVD_EXEC, 0, 0, NULL)                 /* the span of the host's offset */ \
        X(catch_up, catch_up, EVD_EXEC, 0, EVD_CATCH_UP_NONE, NULL)                               \
        X(timeout, duration, EVD_EXEC, 0, 0, NULL)                /* per run; 0: none */          \
        X(kill_signal, signal, EVD_EXEC, 0, SIGTERM, NULL)                                        \
        X(kill_timeout, positive_duration, EVD_EXEC, 0, EVD_SEC(5), NULL)                         \
        X(restart, restart, EVD_EXEC, 0, EVD_RESTART_NO, NULL)                                    \
        X(ready, ready, EVD_EXEC, 0, EVD_READY_STARTED, NULL)     /* exited for schedule = once */ \
        X(restart_delay, duration, EVD_EXEC, 0, EVD_SEC(1), NULL) /* alias restart_sec */         \
        X(restart_max_delay, duration, EVD_EXEC, 0, EVD_SEC(60), NULL) /* the back-off's cap */   \
        X(restart_reset_after, duration, EVD_EXEC, 0, 0, NULL)    /* 0: only a success resets */  \
        X(start_limit, start_limit, EVD_EXEC, 0, EVD_NO_START_LIMIT, NULL) /* N / INTERVAL */     \
        X(working_directory, path, EVD_EXEC, 0, NULL, NULL)       /* NULL: the daemon's */        \
        X(environment, environment, EVD_EXEC, 0, NULL, NULL)      /* K=V entries */               \
        X(umask, umask, EVD_EXEC, 0, 0022, NULL)                  /* the run's file mode mask */  \
        X(user, identity, EVD_EXEC, 0, NULL, NULL)                /* NULL: the daemon's */        \
        X(group, identity, EVD_EXEC, 0, NULL, NULL)               /* NULL: the user's */          \
        X(output, output, EVD_EXEC, 0, EVD_OUTPUT_LOG, NULL)                                      \
        X(output_rate, rate, EVD_EXEC, 0, 0, NULL)                /* records a second; 0: all */  \
        X(output_burst, count, EVD_EXEC, 0, 0, NULL)              /* 0: a second's worth */       \
        X(memory_max, memory_size, EVD_EXEC, 0, 0, NULL)          /* bytes; 0: none */            \
        X(pids_max, count, EVD_EXEC, 0, 0, NULL)                  /* 0: none */                   \
        X(cpu_weight, cpu_weight, EVD_EXEC, 0, 0, NULL)           /* 1 to 10000; 0: the default */ \
        X(cpu_quota, percent, EVD_EXEC, 0, 0, NULL)               /* % of one CPU; 0: none */     \
        X(limit_nofile, count, EVD_EXEC, 0, 0, NULL)              /* RLIMIT_NOFILE; 0: evtaskd's */ \
        X(limit_nproc, count, EVD_EXEC, 0, 0, NULL)               /* RLIMIT_NPROC; 0: evtaskd's */ \
        X(limit_cpu, duration, EVD_EXEC, 0, 0, NULL)              /* RLIMIT_CPU; 0: evtaskd's */  \
        X(path, path, EVD_MODULE, EVD_MODULE, NULL, NULL)         /* the shared object */         \
        X(entry, symbol, EVD_MODULE, 0, NULL, NULL)               /* NULL: evtask_task */

/* Other names of task keys, each a row of the key table that sets the
 * same field (so setting both is "set twice"): X(alias, field, type), the
 * type the field's own row gives it. Appended after the keys' own rows. */
#define EVD_TASK_KEY_ALIASES(X) X(restart_sec, restart_delay, duration)

/* The task keys a reload applies to a running task at once, without
 * restarting it: X(field). */
#define EVD_TASK_LIVE_KEYS(X) X(description) X(after) X(requires)

/* start_limit: more than `burst` starts within `interval` and the task
 * gives up. burst 0: no limit. Two 64-bit fields, no padding: compared
 * as bytes. */
typedef struct evd_start_limit {
        uint64_t burst;
        int64_t interval;
} evd_start_limit;
#define EVD_NO_START_LIMIT ((evd_start_limit) { 0, 0 })

/* The C type of each value type. */
#define EVD_CTYPE_boolean bool
#define EVD_CTYPE_duration int64_t
#define EVD_CTYPE_positive_duration int64_t
#define EVD_CTYPE_stack_size size_t
#define EVD_CTYPE_threads unsigned
#define EVD_CTYPE_count uint64_t
#define EVD_CTYPE_speed double
#define EVD_CTYPE_text char *
#define EVD_CTYPE_string char *
#define EVD_CTYPE_path char *
#define EVD_CTYPE_symbol char *
#define EVD_CTYPE_identity char *
#define EVD_CTYPE_socket_path char *
#define EVD_CTYPE_group_name char *
#define EVD_CTYPE_listen_address char *
#define EVD_CTYPE_environment char **
#define EVD_CTYPE_signal int
#define EVD_CTYPE_umask unsigned
#define EVD_CTYPE_kind enum evd_kind_id
#define EVD_CTYPE_schedule enum evd_schedule
#define EVD_CTYPE_restart enum evd_restart
#define EVD_CTYPE_ready enum evd_ready
#define EVD_CTYPE_task_names char **
#define EVD_CTYPE_start_limit evd_start_limit
#define EVD_CTYPE_calendar char *
#define EVD_CTYPE_timezone char *
#define EVD_CTYPE_catch_up enum evd_catch_up
#define EVD_CTYPE_sigint enum evd_sigint
#define EVD_CTYPE_output enum evd_output_mode
#define EVD_CTYPE_rate double
#define EVD_CTYPE_memory_size uint64_t
#define EVD_CTYPE_cpu_weight unsigned
#define EVD_CTYPE_percent unsigned
#define EVD_CTYPE_log_target enum evd_log_target
#define EVD_CTYPE_log_overflow enum evd_log_overflow

#define EVD_KEY_FIELD(field, type, kinds, required, dflt, record) EVD_CTYPE_##type field;
#define EVD_KEY_INDEX(field, type, kinds, required, dflt, record) EVD_KEY_##field,

enum evd_daemon_key { EVD_DAEMON_KEYS(EVD_KEY_INDEX) EVD_DAEMON_KEY_COUNT };
/* The task keys' indexes: EVD_TASK_KEY(duration). */
#define EVD_TASK_KEY(field) EVD_TASK_KEY_##field
#define EVD_TASK_KEY_INDEX(field, type, kinds, required, dflt, record) EVD_TASK_KEY_##field,
enum evd_task_key { EVD_TASK_KEYS(EVD_TASK_KEY_INDEX) EVD_TASK_KEY_COUNT };

typedef struct evd_task_conf {
        EVD_TASK_KEYS(EVD_KEY_FIELD)
        /* Set by the parser, not by a key of the same name: */
        char *name;             /* NAME of [task.NAME] */
        char **argv;            /* `command` split, or sh -c COMMAND; NULL-terminated */
        char **args;            /* a module's arg.KEY lines, as KEY=VALUE; NULL-terminated */
        /* Where each came from (not settings: copied, never compared): */
        unsigned line;          /* the section header */
        unsigned args_line;     /* the first arg.KEY line; 0: none */
        unsigned key_line[EVD_TASK_KEY_COUNT]; /* each key's line; 0: not set */
} evd_task_conf;

typedef struct evd_config {
        EVD_DAEMON_KEYS(EVD_KEY_FIELD)
        char *path;             /* the file, or the name given for a string */
        evd_task_conf *tasks;   /* in the order of the file */
        size_t n_tasks;
        evd_name_index by_name; /* index in tasks of each name */
        unsigned daemon_line;   /* the [daemon] header; 0: none */
        unsigned key_line[EVD_DAEMON_KEY_COUNT];
        /* Where a key set from outside the file came from ("--set K",
         * "environment EVTASKD_K"), borrowed from the overrides, which
         * outlive every config; NULL: the file's, or the default. */
        const char *origin[EVD_DAEMON_KEY_COUNT];
} evd_config;

/* ---- reading ---- */

/* The built-in config (conf/demo.conf), read when no file is given, under
 * this name. */
#define EVD_DEMO_NAME "<built-in demo.conf>"
extern const char evd_demo_conf[];

/* Parses a file. On failure returns a negative errno (-ENOENT, -EACCES, ...
 * for a file that cannot be read, -EINVAL for any content error, -ENOMEM),
 * writes a one-line message into err (for example "demo.conf:12: key
 * 'speed' in [task.rabbit]: '3x' is not a number") and leaves *ret
 * untouched. */
int evd_config_parse_file(const char *path, evd_config **ret, char *err, size_t errlen);
/* The same for a config held in memory; `name` stands for the file name. */
int evd_config_parse_string(const char *name, const char *text, evd_config **ret, char *err, size_t errlen);

/* Checks a parsed config against this host: that its users and groups
 * exist (and that only root would switch to another), that exec commands
 * are programs, that modules load. 0, or -EINVAL with the message of the
 * problem on the earliest line, as the parser writes them. */
int evd_config_probe(const evd_config *c, char *err, size_t errlen);

/* ---- [daemon] keys from the command line and the environment ---- */

/* One value from outside the file: --set KEY=VALUE, or EVTASKD_KEY=VALUE. */
typedef struct evd_override {
        const struct evd_key *key;
        char *value;
        char *origin;           /* "--set KEY" or "environment EVTASKD_KEY" */
        bool from_env;
} evd_override;

/* The command line's and the environment's [daemon] values. They apply on
 * top of the file: the environment's, then the command line's, so that
 * the command line wins; of the same key given twice in one place, the
 * last. */
typedef struct evd_overrides {
        evd_override *v;
        size_t n;
        char unknown[256];      /* EVTASKD_* names that are no key, " A B" */
} evd_overrides;

#define EVD_ENV_PREFIX "EVTASKD_"

/* --set KEY=VALUE: 0, -EINVAL with the message (no '=', or no such
 * [daemon] key) in err, or -ENOMEM. The value is parsed when applied. */
int evd_overrides_add_arg(evd_overrides *o, const char *arg, char *err, size_t errlen);
/* The EVTASKD_KEY=VALUE entries of env (an environ array): 0 or -ENOMEM.
 * A name that is no [daemon] key is kept in o->unknown, for a warning:
 * the environment is inherited, and is no place for a hard error. */
int evd_overrides_add_env(evd_overrides *o, char *const *env);
/* Applies the overrides to a parsed config, each value read by its key's
 * type as the file's are: 0, or the error of the first bad one, as
 * "ORIGIN: key 'K' in [daemon]: ..." in err (-EINVAL or -ENOMEM). */
int evd_config_apply_overrides(evd_config *c, const evd_overrides *o, char *err, size_t errlen);
/* " KEY (ORIGIN),..." of the keys c took from outside the file, into buf;
 * empty when none. */
void evd_config_overrides_list(const evd_config *c, char *buf, size_t size);
/* Where [daemon] key `index` of c was set, for a message: "FILE:LINE", or
 * its origin outside the file. */
void evd_config_key_where(const evd_config *c, enum evd_daemon_key index, char *buf, size_t size);
/* Accepts NULL. */
void evd_overrides_free(evd_overrides *o);

/* Parse, apply the overrides (o may be NULL: none), then probe: what the
 * daemon reads. */
int evd_config_load_file(const char *path, const evd_overrides *o, evd_config **ret, char *err, size_t errlen);
int evd_config_load_string(const char *name, const char *text, const evd_overrides *o, evd_config **ret,
                           char *err, size_t errlen);
/* Accepts NULL. */
void evd_config_free(evd_config *c);

#define EVD_TASK_NAME_MAX 64
/* Whether name's len bytes make a task name ([task.NAME]): letters,
 * digits, '_', '.' and '-', at most 64 of them. */
bool evd_task_name_valid(const char *name, size_t len);

/* The task named `name`, or NULL. */
const evd_task_conf *evd_config_find_task(const evd_config *c, const char *name);

/* ---- task settings, for jobs that outlive the config they came from ---- */

/* A deep copy. 0 or -ENOMEM; dst is untouched on failure. */
int evd_task_conf_copy(evd_task_conf *dst, const evd_task_conf *src);
/* Frees what a task conf holds and leaves it empty; twice is harmless. */
void evd_task_conf_clear(evd_task_conf *t);
/* Same settings (where they were written does not count). */
bool evd_task_conf_equal(const evd_task_conf *a, const evd_task_conf *b);
/* Same settings but for those a reload applies at once (the live keys):
 * the task need not restart. */
bool evd_task_conf_same_run(const evd_task_conf *a, const evd_task_conf *b);
/* Takes src's live keys into dst: 0, or -ENOMEM with dst unchanged. The
 * names of those that differed, " a b", go into buf. */
int evd_task_conf_take_live(evd_task_conf *dst, const evd_task_conf *src, char *buf, size_t size);
/* The fields records show about a task: those keys whose row names a
 * record field and that are set. Returns how many were written (at most
 * max). */
size_t evd_task_conf_fields(const evd_task_conf *t, evd_field *fields, size_t max);
/* The names of the [daemon] keys whose values differ, " a b" into buf. */
void evd_config_daemon_changes(const evd_config *a, const evd_config *b, char *buf, size_t size);

/* ---- the key table ---- */

enum evd_section {
        EVD_SECTION_NONE,       /* before the first header */
        EVD_SECTION_DAEMON,
        EVD_SECTION_TASK,
};

typedef struct evd_key evd_key;

/* What a value type's parser is given. */
typedef struct evd_key_ctx {
        const evd_key *key;
        const char *section;    /* "daemon" or "task.NAME", for messages */
        unsigned line;
        const evd_config *config; /* the config so far, for rules between keys */
        const evd_task_conf *task; /* the task being read; NULL in [daemon] */
        struct evd_conf_error *error;
} evd_key_ctx;

typedef struct evd_type {
        /* Reads text v into *field; 0, or an error reported through ctx. */
        int (*parse)(const evd_key_ctx *ctx, const char *v, void *field);
        /* Fills f for records; false when there is nothing to show. */
        bool (*show)(const void *field, const char *record, evd_field *f);
        const evd_names *names; /* the words of an enum type, or NULL */
} evd_type;

struct evd_key {
        const char *name;
        enum evd_section section;
        unsigned index;         /* in key_line[] */
        unsigned kinds;         /* EVD_KIND_BIT of each kind it is valid for */
        unsigned required;      /* ... of each kind that must set it */
        const evd_type *type;
        size_t offset;          /* of the field in evd_config or evd_task_conf */
        const char *record;     /* the field's name in records, or NULL */
};

extern const evd_key evd_keys[];
extern const size_t evd_n_keys;
/* The key `name` of a section, or NULL. */
const evd_key *evd_key_find(enum evd_section section, const char *name);
/* The names of a section's keys, "a, b, c", into buf. */
void evd_key_names(enum evd_section section, char *buf, size_t size);
/* The row of task key `index`. */
const evd_key *evd_task_key(enum evd_task_key index);

/* ---- errors ---- */

/* The first error of a parse or a probe, as "FILE:LINE: ..." in the
 * caller's buffer. */
typedef struct evd_conf_error {
        const char *path;       /* for messages */
        char *buf;              /* the caller's buffer, or NULL */
        size_t len;
        int code;               /* 0, or the error kept: a negative errno */
        unsigned line;          /* its line; 0: none */
        bool earliest;          /* keep the error on the earliest line, not the first found */
} evd_conf_error;

int evd_conf_vfail(evd_conf_error *e, int code, unsigned line, const char *fmt, va_list ap);
/* Records an error unless one is kept already (or, with `earliest`, one of
 * an earlier line); returns the error now kept. */
__attribute__((format(printf, 4, 5)))
int evd_conf_fail(evd_conf_error *e, int code, unsigned line, const char *fmt, ...);
/* An error about one key: "key 'K' in [SECTION]: ...". */
__attribute__((format(printf, 5, 6)))
int evd_conf_fail_key(evd_conf_error *e, const char *section, const char *key, unsigned line, const char *fmt,
                      ...);
/* The same, for key `index` of a task, at the line it was set on. */
__attribute__((format(printf, 4, 5)))
int evd_conf_fail_task_key(evd_conf_error *e, const evd_task_conf *t, enum evd_task_key index, const char *fmt,
                           ...);
/* The same, for the key a parser is reading. */
__attribute__((format(printf, 2, 3)))
int evd_key_fail(const evd_key_ctx *ctx, const char *fmt, ...);

/* ---- for the parser: made from the key lists (conf_fields.c) ---- */

void evd__config_defaults(evd_config *c);
void evd__task_conf_defaults(evd_task_conf *t);
void evd__config_daemon_clear(evd_config *c);
/* The whole file's rule for `after` and `requires` (conf_deps.c): each
 * names a task of the config, and no task waits for itself through them.
 * 0, or -EINVAL through e. */
int evd__config_check_order(const evd_config *c, evd_conf_error *e);
/* Exchanges the values of [daemon] key `index` of a and b. */
void evd__config_daemon_swap(evd_config *a, evd_config *b, enum evd_daemon_key index);
