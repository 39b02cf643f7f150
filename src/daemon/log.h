/* evtaskd's log: one record per event, with a stable event name and the
 * task's name, to one sink: the console, JSON lines, or the journal. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <syslog.h>

#include "util.h"

/* The sinks: X(ID, name). */
#define EVD_LOG_TARGET_LIST(X)                                                          \
        X(EVD_LOG_AUTO, "auto")         /* journal, console on a terminal, else JSON */ \
        X(EVD_LOG_CONSOLE, "console")   /* human-readable lines on stderr */            \
        X(EVD_LOG_JSON, "json")         /* one JSON object per line on stdout */        \
        X(EVD_LOG_JOURNAL, "journal")   /* systemd's journal, structured fields */

enum evd_log_target { EVD_LOG_TARGET_LIST(EVD_ENUM_ID) };
extern const evd_names evd_log_target_names;

/* What job output does when the sink is slower than the jobs: X(ID, name). */
#define EVD_LOG_OVERFLOW_LIST(X)                                                        \
        X(EVD_LOG_OVERFLOW_BLOCK, "block") /* the daemon stops reading the jobs' pipes */ \
        X(EVD_LOG_OVERFLOW_DROP, "drop")   /* their records are dropped and counted */

enum evd_log_overflow { EVD_LOG_OVERFLOW_LIST(EVD_ENUM_ID) };
extern const evd_names evd_log_overflow_names;

/* Every record's event: X(ID, name, journal MESSAGE_ID or NULL). The names
 * and the MESSAGE_IDs are stable: `journalctl MESSAGE_ID=...` finds one
 * kind of record across versions. Never change one; add new ones. */
#define EVD_EVENT_LIST(X)                                                       \
        X(EVD_EV_STARTED, "started", "e3b4cf405eac4e15ae3df1db846f8d1e")        \
        X(EVD_EV_SPAWNED, "spawned", "f54b561b125b4d72ae8811574d8736f0")        \
        X(EVD_EV_STEP, "step", "38b56747ba144952a3a9bcb72a0b190f")              \
        X(EVD_EV_LOG, "log", NULL)                                              \
        X(EVD_EV_SIGNAL, "signal", "159eeba5b7d54446963a0401525d195b")          \
        X(EVD_EV_PAUSED, "paused", "435b978fc3984bdabd5a92fd465d228a")          \
        X(EVD_EV_RESUMED, "resumed", "1472237afd1f4960bc74b26740ed2bfb")        \
        X(EVD_EV_STOPPING, "stopping", "effbec0e51e045a19deb30a25c1bafbb")      \
        X(EVD_EV_DRAINING, "draining", "dcc96cb6330645b6989cd75b404a9f83")      \
        X(EVD_EV_CANCELLED, "cancelled", "6718d04bc65b440ea9c518e1617abb99")    \
        X(EVD_EV_FINISHED, "finished", "390974f86e054165b400d7e80e8d7232")      \
        X(EVD_EV_FAILED, "failed", "bc7e21a11b1b476ea80eadf4d682730e")          \
        X(EVD_EV_FORCING, "forcing", "91df55bb02364b588b9ae7d90526182e")        \
        X(EVD_EV_FORCED, "forced", "53d53c991b034cf193c041678626c85d")          \
        X(EVD_EV_ABANDONED, "abandoned", "3f8dfcf4981541beb191e7f4347a141b")    \
        X(EVD_EV_DRAINED, "drained", "2e13383d9d304c6ea18d31ecd1da28c8")        \
        X(EVD_EV_DONE, "done", "bda3f923f2974192a44e95d78492e2d2")              \
        X(EVD_EV_EXIT, "exit", "cf3424bdc80a48cf8bc8a26dcfaf0c63")              \
        X(EVD_EV_TASK_TABLE, "task-table", "8ba01009684646a4a80584223d4832e6")  \
        X(EVD_EV_RELOADING, "reloading", "1463c876532942f69f3a86af05b611a7")    \
        X(EVD_EV_RELOAD_FAILED, "reload-failed", "18227ad5379743118ff83ae063e86b08") \
        X(EVD_EV_ADDED, "added", "2f76177990214e289c220bb94b9e2b76")            \
        X(EVD_EV_REMOVED, "removed", "2094d63eea784362b787fb3930e143ac")        \
        X(EVD_EV_CHANGED, "changed", "073621ced4d446dc8058c02a90d99c4f")        \
        X(EVD_EV_RELOADED, "reloaded", "744074e824d34ee88d3c3674c30e0f3a")      \
        X(EVD_EV_RUN, "run", "796276f4b86e4905a41e8e84eec62b45")                \
        X(EVD_EV_OUTPUT, "output", "04f17791cfc94040816ca318d43134bb")          \
        X(EVD_EV_SKIPPED, "skipped", "1f9eb373e1b74313ba5e29b272c59de7")        \
        X(EVD_EV_RESTARTING, "restarting", "a2d206c98308420c9b52f8ce55ffdc5b")  \
        X(EVD_EV_SCHEDULED, "scheduled", "019183ad1792469c8f8cc6a46f1704f4")    \
        X(EVD_EV_READY, "ready", "881b61f2400e422890b9af61b3e98ae5")       \
        X(EVD_EV_DEPENDENCY, "dependency", "646329838f864169a75318d0cda94138")  \
        X(EVD_EV_REAPED, "reaped", "ceae86b01fb440598f42503e7c75c49c")          \
        X(EVD_EV_LEFTOVER, "leftover", "b10e3fbf8a2e434db673069e1a36e179")      \
        X(EVD_EV_SLOW_STEP, "slow-step", NULL)                                  \
        X(EVD_EV_DROPPED, "dropped", "8ad88c39ab3348eb93d92a7fcb4fbe41")        \
        X(EVD_EV_CONTROL, "control", "b405acb3f7f24da085a77e8fcaa36d26")        \
        X(EVD_EV_SUPPRESSED, "suppressed", "584fe23b02bf4fd087e90c9ef8ba549a")  \
        X(EVD_EV_LIMITS, "limits", "252496a00ccc4cadaa78d6ad0be78fbe")

typedef enum evd_event { EVD_EVENT_LIST(EVD_ENUM_ID) EVD_EVENT_COUNT } evd_event;
const char *evd_event_name(evd_event event);

typedef struct evd_log evd_log;
struct ev_loop;

/* A structured field of a record: a string, or (str NULL) a number. */
typedef struct evd_field {
        const char *key;        /* lower case, [a-z0-9_] */
        const char *str;
        long long num;
} evd_field;

#define EVD_STR(k, v) ((evd_field) { .key = (k), .str = (v) })
#define EVD_NUM(k, v) ((evd_field) { .key = (k), .num = (long long) (v) })

/* A record's fields, counted by the compiler: the two arguments
 * evd_log_emit takes for them. EVD_NO_FIELDS for none. */
#define EVD_FIELDS(...) \
        ((const evd_field[]) { __VA_ARGS__ }), (sizeof((const evd_field[]) { __VA_ARGS__ }) / sizeof(evd_field))
#define EVD_NO_FIELDS NULL, 0

/* EVD_LOG_AUTO becomes the journal when stdout is connected to it
 * (JOURNAL_STREAM) and journald's socket is there (else the console), the
 * console when stdout is a terminal, and JSON lines on stdout otherwise.
 * -EOPNOTSUPP for the journal in a build without libsystemd, the errno of
 * journald's socket when it is not there. */
int evd_log_new(enum evd_log_target target, evd_log **ret_log);
/* Detaches, writing what is queued (waiting for the sink), and frees. */
void evd_log_free(evd_log *log);
enum evd_log_target evd_log_get_target(const evd_log *log);
void evd_log_set_overflow(evd_log *log, enum evd_log_overflow overflow);

/* From here the loop ev writes what the sink cannot take at once, and
 * failed_cb(data) is called on the loop's thread if the sink fails. Until
 * then, and after evd_log_detach (which writes the queue out, waiting for
 * the sink), a full sink is waited for in place. */
int evd_log_attach(evd_log *log, struct ev_loop *ev, void (*failed_cb)(void *data), void *data);
void evd_log_detach(evd_log *log);
/* The sink's failure (-errno), once it failed, else 0. */
int evd_log_error(evd_log *log);

/* For job output, in a task: waits until the queue has room (with
 * log_overflow = block; at once with drop, whose records are dropped when
 * there is none). 0, or -ECANCELED. */
int evd_log_wait_room(evd_log *log);
/* Records emitted between these two go out in as few writes as possible. */
void evd_log_hold(evd_log *log);
void evd_log_release(evd_log *log);

/* Calls fn(data, event, task, fields, n_fields, msg) for each record
 * emitted on the loop's thread from here (metrics count them); records
 * of other threads are not seen. fn NULL: none. */
typedef void evd_log_observer(void *data, evd_event event, const char *task, const evd_field *fields,
                              size_t n_fields, const char *msg);
void evd_log_set_observer(evd_log *log, evd_log_observer *fn, void *data);

/* Emits one record, whole: records are never torn or interleaved. What the
 * sink does not take at once waits in a queue; only `output` records are
 * ever dropped (log_overflow = drop). priority is a syslog LOG_* level;
 * task may be NULL. */
__attribute__((format(printf, 7, 8)))
void evd_log_emit(evd_log *log, int priority, evd_event event, const char *task, const evd_field *fields,
                  size_t n_fields, const char *fmt, ...);

/* The length of the valid UTF-8 sequence at s (at most avail bytes), or 0
 * if there is none. */
size_t evd_utf8_len(const unsigned char *s, size_t avail);

/* Formats a record the way the sink would write it, for a message that must
 * later be written without formatting (from a signal handler), or for a
 * test. Returns the length, or -ENOSPC. The journal sink formats for
 * stderr's console. */
int evd_log_format(evd_log *log, char *buf, size_t size, int priority, evd_event event, const char *task,
                   const evd_field *fields, size_t n_fields, const char *msg);
