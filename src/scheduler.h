/* Layer 2, sched: tasks, the run queue, the pause gate, cancellation, and
 * the one wait/wake mechanism that every primitive (layer 3) is built on.
 *
 * How a primitive waits:
 *
 *      r = evt__enter(&t);                   // in a task? cancelled?
 *      ...register t where a waker finds it (a list, a watcher)...
 *      r = evt__wait(t, deadline);           // suspended until woken
 *      ...unregister, whatever woke it...
 *
 * and a waker calls evt__wake(t, result). The first wake wins; later ones
 * (a deadline, a cancel) are ignored until the task waits again. */
#pragma once

#include <errno.h>
#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "coro.h"
#include "evtask.h"
#include "list.h"
#include "stack.h"

enum evt__task_state {
        EVT__TASK_NEW,          /* spawned, queued, never run */
        EVT__TASK_RUNNABLE,     /* on the run queue or held by the gate */
        EVT__TASK_RUNNING,      /* the current task */
        EVT__TASK_WAITING,      /* in evt__wait, until evt__wake */
        EVT__TASK_DONE,         /* its function has returned */
};

/* Something outside tasks that follows the loop's pause and end: how layer
 * 3 objects with their own threads (pools) hear of them without the
 * scheduler knowing what they are. Callbacks run on the loop's thread. */
typedef struct evt__loop_observer {
        evt__list link;         /* on evt_loop.observers */
        void (*pause_cb)(struct evt__loop_observer *o, bool paused);
        void (*free_cb)(struct evt__loop_observer *o); /* the loop is going */
} evt__loop_observer;

/* Inside the scheduler deadlines are bare times (evt_deadline.at), and
 * this one is EVT_FOREVER's. */
#define EVT__NEVER INT64_MAX

/* The deadline of a wait, in the waiting task's frame (deadline.c). */
typedef struct evt__deadline {
        int64_t at;             /* in evt_time_now() terms */
        evt_task *task;
        size_t pos;             /* its heap index + 1; 0: not in the heap */
        evt__list frozen_link;  /* on deadlines.frozen while a pause stops
                                 * its clock (then pos is 0) */
        bool frozen;
} evt__deadline;

typedef struct evt__deadline_entry {
        int64_t at;             /* d->at, kept here for the heap's compares */
        evt__deadline *d;
} evt__deadline_entry;

/* A loop's deadlines: a binary min-heap, and the one timer that wakes the
 * loop for the earliest: a timerfd, or an ev_timer without one. */
typedef struct evt__deadlines {
        evt__deadline_entry *heap;
        size_t n, cap;
        int64_t armed_at;       /* the timer fires then; INT64_MAX: not armed */
        int fd;                 /* the timerfd; -1: the ev_timer */
        bool opened;            /* fd has been tried */
        bool watching;          /* the watcher is active (n > 0) */
        /* evt_loop_opts.pause_stops_deadlines: the deadlines of pausable
         * tasks taken out of the heap while the loop is paused. */
        bool pause_stops;
        evt__list frozen;       /* evt__deadline.frozen_link */
        int64_t paused_at;      /* when the pause began */
        ev_io io;               /* on fd */
        ev_timer timer;         /* without fd */
} evt__deadlines;

struct evt_loop {
        struct ev_loop *ev;     /* the libev loop; never destroyed here */
        evt__coro main;         /* the scheduler's own context */
        evt__stack_pool stacks; /* free stacks of the default size */
        ev_idle run_watcher;    /* active while `run` is not empty */
        evt__list run;          /* ready tasks, in order (queue_link) */
        evt__list round;        /* the tasks of the round being run, or
                                 * the rest of a round that was cut */
        size_t cut_check;       /* round_next reads the clock at 0 */
        evt_task *first_new;    /* after a cut: a task in `round` that has
                                 * not started, before which what the poll
                                 * made ready goes; NULL if none is known */
        bool birth_started;     /* a task took its first step in this
                                 * run_cb */
        evt_task *dead;         /* ended, its stack not yet released */
        /* The task in its eager first step (EVT_TASK_EAGER), innermost if
         * one spawns another; its first wait or its end switches back to
         * eager_back, the spawner's context (eager_spawner, NULL outside
         * tasks). NULL: none. */
        evt_task *eager;
        evt__coro *eager_back;
        evt_task *eager_spawner;
        ev_idle trim_watcher;   /* gives free stacks back, when idle */
        int64_t run_start;      /* evt_time_now() as run_cb began */
        evt__deadlines deadlines;
        evt__list held;         /* ready tasks the pause gate holds */
        evt__list tasks;        /* every task not yet ended (link) */
        size_t n_tasks;         /* length of tasks */
        size_t n_watchers;      /* scheduler watchers active in libev */
        uint64_t switches;      /* switches into tasks */
        uint64_t next_id;       /* for default task names */
        unsigned run_depth;     /* evt_loop_run calls in progress */
        bool paused;            /* the pause gate is closed */
        size_t n_suspended;     /* tasks evt_task_suspend holds, not ended */
        evt__list observers;    /* evt__loop_observer.link */
        evt__list pools;        /* the loop's thread pools, kept by pool.c
                                 * (evt_pool.loop_link) */
        int64_t slow_ns;        /* steps this long are reported; 0: none */
        evt_slow_step_fn slow_fn;
        void *slow_data;
        int64_t step_start;     /* coarse clock as the running step began */
        uint64_t steps[EVT_STEP_BUCKETS + 1]; /* steps timed, by duration */
        int64_t steps_ns;       /* ... and their sum */
        struct evt__cache *task_cache; /* records with a short name */
};

struct evt_task {
        evt_loop *loop;
        evt__coro coro;         /* the task's context */
        evt__stack *stack;      /* from its first run until it has ended */
        evt_task_fn fn;
        void *arg;
        void (*arg_free)(void *arg); /* for a task that never runs */
        uint64_t id;
        int64_t spawned_at;     /* CLOCK_MONOTONIC_COARSE at spawn, in ns */
        unsigned flags;         /* EVT_TASK_* */
        unsigned stack_size;    /* asked for at spawn (at most
                                 * EVT__STACK_MAX); 0: the loop's */
        enum evt__task_state state;
        int result;             /* fn's return value, once DONE */
        int wake_result;        /* what evt__wait returns */
        unsigned refs;          /* callers' references, +1 until DONE */
        unsigned shield_depth;  /* open evt_shield_push scopes */
        struct evt_scope *scope; /* the innermost cancel scope (scope.c);
                                 * NULL: none */
        bool cancelled;         /* a cancel was requested */
        bool forced;            /* ... and it pierces shields */
        bool held;              /* queue_link is on loop->held, not run */
        bool suspended;         /* evt_task_suspend: the gate holds it alone */
        bool in_cache;          /* from loop->task_cache, else malloc */
        bool waits_join;        /* its wait is a join: waits_task is set */
        const char *waits_on;   /* what its current or last wait is for
                                 * (evt_wait_info.what), set by the
                                 * primitive before evt__wait */
        union {                 /* what the wait is on: */
                long long waits_arg; /* the fd, the pid, or -1 */
                const evt_task *waits_task; /* for a join: the task joined */
        };
        int64_t wait_since;     /* when the wait began, to a few ms */
        evt__deadline *deadline; /* on its stack while it waits with a
                                 * deadline, else NULL */
        evt__list link;         /* on loop->tasks until DONE */
        evt__list queue_link;   /* on loop->run or loop->held */
        evt__list wait_link;    /* on the waiter list of what it waits for */
        evt__list set_link;     /* on set->tasks */
        struct evt__taskset *set; /* NULL if none, or the set went away */
        evt__list joiners;      /* tasks in evt_task_join (wait_link) */
        char name[];            /* NUL-terminated */
};

/* A cancel scope (scope.c), from its push to its pop. */
struct evt_scope {
        evt_task *task;
        struct evt_scope *parent; /* the scope it is in; NULL: the task */
        int64_t deadline;       /* EVT__NEVER: none */
        unsigned flags;         /* EVT_SCOPE_* */
        unsigned shield_base;   /* the task's shield depth at the push */
        bool cancel_called;     /* evt_scope_cancel */
        int caught;             /* the error an await point inside returned
                                 * for this scope; 0: none */
};

/* Cancel scopes (scope.c). What the task's next await point would return
 * for its cancels and its scopes: -ECANCELED, -ETIMEDOUT (a fail scope
 * whose deadline passed), or 0; the scope that decides in ret_owner (NULL:
 * the task's own cancel, or none). Not for a forced cancel. */
int evt__scope_check(const evt_task *t, struct evt_scope **ret_owner);
/* evt__cancel_status's walk, for a task with scopes or a forced cancel. */
int evt__scope_status(evt_task *t);
/* The earliest deadline of the scopes the task's await points see;
 * EVT__NEVER if none. */
int64_t evt__scope_deadline(const evt_task *t);
/* Frees the scopes a task left open when it ended. */
void evt__scopes_drop(evt_task *t);

/* Will the task's next await point fail with a cancel? */
static inline bool evt__cancel_deliverable(const evt_task *t) {
        struct evt_scope *owner;

        if (t->forced)
                return true;
        if (t->scope)
                return evt__scope_check(t, &owner) < 0;
        return t->cancelled && t->shield_depth == 0 && !(t->flags & EVT_TASK_SHIELDED);
}

/* What an await point of t returns for its cancels, now that it fails (or
 * not: 0): -ECANCELED, or -ETIMEDOUT in a fail scope past its deadline.
 * The scope that decides notes that an await point inside failed for it. */
static inline int evt__cancel_status(evt_task *t) {
        if (t->scope || t->forced)
                return evt__scope_status(t);
        return t->cancelled && t->shield_depth == 0 && !(t->flags & EVT_TASK_SHIELDED) ? -ECANCELED : 0;
}

/* The running task, as evt_task_current, NULL outside tasks. Hidden, so
 * that a signal handler (overflow.c) calls it without the dynamic linker. */
evt_task *evt__task_running(void);
/* Entry check of every await point: the calling task, or -EINVAL outside a
 * task, or evt__cancel_status's error. */
int evt__enter(evt_task **ret_task);
/* evt__enter for an await point on an object of `loop`: -EINVAL also for
 * a NULL object (obj) or a task of another loop. */
static inline int evt__enter_on(const void *obj, const evt_loop *loop, evt_task **ret_task) {
        int r;

        if (!obj)
                return -EINVAL;
        r = evt__enter(ret_task);
        if (r < 0)
                return r;
        return (*ret_task)->loop == loop ? 0 : -EINVAL;
}
/* Suspends t (the current task) until evt__wake, the deadline or that of
 * its scopes. Returns evt__cancel_status's error if there is one by the
 * time it runs again, else the wake result or -ETIMEDOUT; at once if the
 * deadline has passed.
 * The caller has checked cancellation with evt__enter. A primitive whose
 * wake-up consumed something keeps it itself (see evt_child_wait). */
int evt__wait(evt_task *t, int64_t deadline);
/* Says what t's next wait is for (evt_wait_info), for introspection. */
static inline void evt__waits(evt_task *t, const char *what, long long arg) {
        t->waits_on = what;
        t->waits_join = false;
        t->waits_arg = arg;
}
/* Makes a waiting task ready; evt__wait will return `result`. Does nothing
 * to a task that is not waiting. Never switches. */
/* After a cancel of the task or of one of its scopes: if an await point
 * would now fail, wakes the task if it waits, or lets it pass the pause
 * gate. Never switches. */
void evt__cancel_notify(evt_task *t);
void evt__wake(evt_task *t, int result);
/* evt__wait with t on a list of waiters (wait_link) for the duration, for
 * primitives whose wakers walk such a list. */
int evt__wait_on(evt_task *t, evt__list *waiters, int64_t deadline);
/* Wakes every task on a list of wait_links, emptying it. */
void evt__wake_all(evt__list *waiters, int result);

/* Deadlines (deadline.c). A deadline is added by evt__wait, and taken off
 * by the wake-up, whatever it is; when it passes, its task is woken with
 * -ETIMEDOUT. evt__deadline_add fails only with -ENOMEM. */
void evt__deadlines_init(evt_loop *l);
void evt__deadlines_done(evt_loop *l);
int evt__deadline_add(evt_loop *l, evt__deadline *d);
void evt__deadline_remove(evt_loop *l, evt__deadline *d);
/* Is d waiting to pass (in the heap, or frozen by a pause)? */
static inline bool evt__deadline_pending(const evt__deadline *d) {
        return d->pos > 0 || d->frozen;
}
/* With pause_stops: the pause stops the clock of pausable tasks'
 * deadlines, and the resume moves them on by the pause's length. */
void evt__deadlines_pause(evt_loop *l);
void evt__deadlines_resume(evt_loop *l);

/* evt_fd_wait for a descriptor known to be open (a system call on it just
 * failed with EAGAIN), without the check that costs a system call. */
int evt__fd_wait(int fd, unsigned events, int64_t deadline, unsigned *ret_events);

/* Scheduler watchers are counted so that tests can prove none is left. */
static inline void evt__watcher_started(evt_loop *l) {
        l->n_watchers++;
}

static inline void evt__watcher_stopped(evt_loop *l) {
        l->n_watchers--;
}

/* A set of tasks that can be waited for as a whole: the mechanism under
 * groups. A task joins at spawn and leaves when it ends; when the last one
 * leaves, the set's waiters are woken. */
typedef struct evt__taskset {
        evt__list tasks;        /* evt_task.set_link */
        size_t n_tasks;         /* length of tasks */
        evt__list waiters;      /* tasks waiting for it to empty (wait_link) */
        /* Called as each member ends, once it has left the set (its
         * set_link is free) and before the waiters are woken; or NULL.
         * It must not switch. */
        void (*end_cb)(struct evt__taskset *s, evt_task *t);
        /* Members spawned from now on start cancelled, with these
         * EVT_CANCEL_* flags: before an eager first step can run. */
        bool cancelled;
        unsigned cancel_flags;
} evt__taskset;

void evt__taskset_init(evt__taskset *s);
/* Members leave the set and run on; waiters are woken with -EIDRM. */
void evt__taskset_done(evt__taskset *s);

/* A task in a wait queue (waitq.c), in its own frame: the mechanism under
 * locks and channels, whose wakers hand each waiter what it waits for, in
 * FIFO order, before waking it. */
typedef struct evt__waiter {
        evt__list link;         /* on the queue while it waits */
        evt_task *task;
        void *data;             /* the primitive's: a value's source or
                                 * destination */
        bool handed;            /* a waker handed it what it waited for */
} evt__waiter;

/* Waits in `queue` until handed something, woken otherwise (a result for
 * every waiter, a cancel, the deadline): what evt__wait returns. w->handed
 * says whether the handoff happened, even if a cancel is returned. */
int evt__waiter_wait(evt__waiter *w, evt_task *t, evt__list *queue, void *data, int64_t deadline);
/* The first waiter that still waits, taken off the queue (with those before
 * it, which are leaving); NULL if none. */
evt__waiter *evt__waiter_next(evt__list *queue);
/* Does any waiter of the queue still wait? */
bool evt__waiter_waits(const evt__list *queue);
/* Marks w handed and wakes it with 0; w is off its queue. */
void evt__waiter_hand(evt__waiter *w);
/* Wakes every waiter with `result`, emptying the queue. */
void evt__waiters_wake_all(evt__list *queue, int result);

/* Permits handed out in FIFO order: the counter of semaphores and mutexes. */
typedef struct evt__permits {
        size_t n;               /* free; > 0 only while no task waits */
        evt__list waiters;      /* evt__waiter.link */
} evt__permits;

/* Takes a permit, waiting in line for one until the deadline: 0, or the
 * wait's error, and then no permit is held (one handed to a task cancelled
 * before it ran goes on to the next waiter). The caller has called
 * evt__enter. */
int evt__permits_acquire(evt__permits *p, evt_task *t, int64_t deadline);
/* Hands a permit to the first waiter that still waits, or keeps it. */
void evt__permits_release(evt__permits *p);

/* evt_task_spawn, with the new task put in `set` (may be NULL). */
int evt__task_spawn(evt_loop *loop, evt_task_fn fn, void *arg, const evt_task_opts *opts,
                    evt__taskset *set, evt_task **ret_task);

/* Can `n` (at most 2) more descriptors be opened now? 0 or -errno (-EMFILE,
 * -ENFILE): for calls into libev, which aborts when it cannot open one. */
int evt__fds_check(unsigned n);
/* Makes fd non-blocking and close-on-exec, where pipe2 and accept4 do not;
 * 0, or -1 with errno. */
int evt__fd_nonblock_cloexec(int fd);

/* Observers are told of every pause and resume, and freed with the loop
 * (after its tasks have ended) unless they have removed themselves. */
void evt__loop_observer_add(evt_loop *loop, evt__loop_observer *o);
void evt__loop_observer_remove(evt__loop_observer *o);
