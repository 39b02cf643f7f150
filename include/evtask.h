/* libevtask: coroutine tasks on a libev loop.
 *
 * The task model of Python's asyncio and trio, in C: spawn, join, cancel,
 * shield, groups, deadlines, events, sleeps, fd and child waits, and
 * blocking work in a thread pool.
 *
 * Conventions, everywhere below:
 * - Every call returns 0 or a negative errno. Output parameters (ret_...)
 *   are written only on success; a call that fails has no side effects.
 * - An *await point* is a call that can block the calling task. It may only
 *   be called from inside a task (else -EINVAL). It returns -ECANCELED once
 *   the task (or a cancel scope it is in) has been cancelled, and
 *   -ETIMEDOUT when its deadline passes (or that of a fail scope).
 * - Cancellation is level-triggered: once a task is cancelled, every later
 *   await point fails at once with -ECANCELED, except inside a shield.
 * - Deadlines are evt_deadline values, absolute CLOCK_MONOTONIC times;
 *   EVT_FOREVER never passes and EVT_NOW has always passed (poll).
 *   Durations are int64_t nanoseconds (EVT_SEC(n) and so on).
 * - Everything runs on the thread that owns the loop; nothing here is
 *   thread-safe unless it says so (evt_time_now, the evt_deadline_* calls,
 *   evt_async_post and the evt_token_* calls do).
 */
#ifndef EVTASK_H
#define EVTASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define EVT_API __attribute__((visibility("default")))
#else
#define EVT_API
#endif

struct ev_loop;
struct addrinfo;

/* ========================================================================
 * Time
 * ======================================================================== */

/* Durations are int64_t nanoseconds. */
#define EVT_USEC(n) ((int64_t) (n) * 1000)
#define EVT_MSEC(n) ((int64_t) (n) * 1000000)
#define EVT_SEC(n) ((int64_t) (n) * 1000000000)

/* A deadline: an absolute CLOCK_MONOTONIC time in nanoseconds (`at`, which
 * is evt_time_now's clock). A type of its own, so that a duration passed
 * where a deadline is expected (evt_fd_wait(fd, EV_READ, EVT_SEC(5), ...),
 * which would have passed long ago) does not compile. Make one with
 * evt_deadline_in or evt_deadline_at, or use a constant below. */
typedef struct evt_deadline {
        int64_t at;
} evt_deadline;

#ifdef __cplusplus
#define EVT__DEADLINE(ns) (evt_deadline{ (int64_t) (ns) })
#else
#define EVT__DEADLINE(ns) ((evt_deadline) { .at = (int64_t) (ns) })
#endif
/* Constants of the type, usable in initialisers too. */
#define EVT_FOREVER EVT__DEADLINE(INT64_MAX)  /* a deadline that never passes */
#define EVT_NOW EVT__DEADLINE(0)              /* one that has always passed */

/* The current CLOCK_MONOTONIC time in nanoseconds. Thread-safe. */
EVT_API int64_t evt_time_now(void);
/* The deadline `ns` nanoseconds from now: saturated, EVT_FOREVER if that
 * overflows (INT64_MAX included), EVT_NOW if it would be before the clock's
 * zero. Thread-safe. */
EVT_API evt_deadline evt_deadline_in(int64_t ns);
/* The deadline at the CLOCK_MONOTONIC time `ns` (evt_time_now's clock);
 * EVT_NOW for a negative one. Thread-safe. */
EVT_API evt_deadline evt_deadline_at(int64_t ns);
/* The earlier of two deadlines. */
EVT_API evt_deadline evt_deadline_min(evt_deadline a, evt_deadline b);
/* Nanoseconds from now until the deadline: 0 once it has passed,
 * INT64_MAX for EVT_FOREVER. Thread-safe. */
EVT_API int64_t evt_deadline_left(evt_deadline deadline);
/* True for EVT_FOREVER (or any deadline at INT64_MAX). */
EVT_API bool evt_deadline_is_forever(evt_deadline deadline);

/* ========================================================================
 * Loops
 * ======================================================================== */

typedef struct evt_loop evt_loop;

/* Settings of a loop; a zeroed struct (or NULL) gives the defaults.
 *
 * Stacks are committed page by page as tasks touch them. The first stacks
 * of the process (a quarter of vm.max_map_count, 16,382 by default) have a
 * guard page: an overflow faults, and a SIGSEGV handler on an alternate
 * signal stack names the task on stderr and aborts. Beyond that budget,
 * stacks come from slabs and have a canary, checked each time a task leaves
 * the CPU: an overflow is named the same way. Free stacks beyond
 * stack_pool_max are given back to the system when the loop is idle. */
typedef struct evt_loop_opts {
        size_t stack_size;      /* usable bytes per task stack; 0: 64 KiB */
        size_t stack_pool_max;  /* free stacks kept for reuse; 0: 1024 */
        /* A pause stops the clock for the deadlines of pausable tasks (see
         * the pause gate); false: deadlines keep running. */
        bool pause_stops_deadlines;
} evt_loop_opts;

/* A scheduler on the libev loop `ev`, or on libev's default loop if ev is
 * NULL (the only loop that can wait for children). The default loop honours
 * LIBEV_FLAGS to choose its backend. -EINVAL for a bad option (stack_size
 * outside 16 KiB to 1 GiB) or a NULL ret_loop, -ENOMEM, or -EMFILE or
 * -ENFILE when libev's default loop, made by the first such call, cannot
 * have its two descriptors.
 *
 * The first loop installs a SIGSEGV handler for the process; a fault that
 * is not the running task's stack overflow goes to the disposition SIGSEGV
 * had before (a handler installed later replaces it). A thread without an
 * alternate signal stack gets one (64 KiB) until its last loop is freed; a
 * loop is freed on the thread that made it. */
EVT_API int evt_loop_new(struct ev_loop *ev, const evt_loop_opts *opts, evt_loop **ret_loop);
/* Force-cancels every task, runs them until they have ended, frees the
 * thread pools left (evt_pool_free) and the loop. A libev loop passed to
 * evt_loop_new is left alive. Not from inside a task; a lifecycle on the
 * loop must be freed first. Accepts NULL. */
EVT_API void evt_loop_free(evt_loop *loop);
/* Runs the libev loop until every task has ended: 0. If tasks remain but no
 * watcher is left that could wake them: -EDEADLK. -EINVAL from inside a
 * task. Does not return while the loop is paused. */
EVT_API int evt_loop_run(evt_loop *loop);
/* The libev loop underneath, for the caller's own watchers; NULL for a NULL
 * loop. */
EVT_API struct ev_loop *evt_loop_ev(evt_loop *loop);

/* ========================================================================
 * The pause gate
 *
 * While a loop is paused, no pausable task is resumed: tasks that become
 * ready (timer, event, I/O) are held, and run in order after resume. A
 * task running when the pause is requested finishes its current step.
 * By default deadlines keep running: one that passes during a pause is
 * delivered after resume. With evt_loop_opts.pause_stops_deadlines, a pause
 * stops their clock instead, for pausable tasks: the deadlines of their
 * waits (pool calls' included) and scopes that lie ahead at the pause move
 * on by its length at the resume, so that a pause does not turn into a
 * wave of timeouts; a deadline computed after the resume is not moved. Tasks spawned with EVT_TASK_NOPAUSE, and cancelled tasks (so their
 * cleanup can run), pass the gate. A paused loop keeps libev running (and
 * evt_loop_run from returning) until it is resumed.
 * ======================================================================== */

/* Closes the gate: from the return on, no pausable task is resumed. 0,
 * also if the loop is paused already; -EINVAL for NULL. */
EVT_API int evt_loop_pause(evt_loop *loop);
/* Opens the gate: held tasks become ready, in the order they were held. 0,
 * also if the loop is not paused; -EINVAL for NULL. */
EVT_API int evt_loop_resume(evt_loop *loop);
/* True from evt_loop_pause until evt_loop_resume; false for NULL. */
EVT_API bool evt_loop_is_paused(const evt_loop *loop);

/* ========================================================================
 * Tasks
 * ======================================================================== */

typedef struct evt_task evt_task;
typedef struct evt_group evt_group;

/* A task's body. Its return value is the task's result, by convention 0 or
 * a negative errno; it never affects any other task. */
typedef int (*evt_task_fn)(void *arg);

enum {
        EVT_TASK_SHIELDED = 1 << 0, /* ignores every cancel but a forced one */
        EVT_TASK_NOPAUSE = 1 << 1,  /* runs on while the loop is paused */
        EVT_TASK_EAGER = 1 << 2,    /* first step inside evt_task_spawn */
};

/* EVT_TASK_EAGER (asyncio's eager_task_factory): the task's first step runs
 * inside evt_task_spawn, at once, until the task first waits or ends; then
 * the spawner goes on. What that changes in ordering:
 * - the new task runs before the spawner's next statement, and before every
 *   task that was ready already (without the flag it runs after them, in
 *   the loop's next round); tasks it wakes in that step are queued as
 *   usual, behind those ready already;
 * - a task that ends in its first step has ended when evt_task_spawn
 *   returns (its result is there, its joiners and group have been told)
 *   and never took a place in the run queue; its stack, taken from the
 *   loop's pool (warm, the one the last task to end gave back), went back
 *   to the pool at once;
 * - the spawner's step lasts as long as the new task's first step too
 *   (for slow-step reports), and a spawn from outside any task, before
 *   evt_loop_run or in a libev callback, runs the step there and then;
 * - so a burst of eager spawns holds the loop until all their first steps
 *   are done: no timer, I/O or signal is served in between, where the
 *   default lets the loop poll every 50 us between first steps. Tasks
 *   whose first step waits are better spawned without the flag.
 * A task that waits in its first step is from then on a task as any other.
 * The flag has no effect, and the task is queued as without it, if it
 * would not run now: spawned cancelled (into a cancelled group), held by
 * the pause gate, or spawned from a task of another loop. */

typedef struct evt_task_opts {
        const char *name;       /* copied; NULL: "task-<id>" */
        size_t stack_size;      /* 0: the loop's */
        unsigned flags;         /* EVT_TASK_* */
        /* If set, called as arg_free(arg), on the loop's thread, exactly
         * once if the task ends without having run: cancelled before its
         * first step (evt_loop_free included), or no stack for it. A task
         * that runs owns arg from its first step on; arg_free is never
         * called for it. A failed spawn takes nothing. */
        void (*arg_free)(void *arg);
} evt_task_opts;

/* Creates a task that runs fn(arg) from the loop's next iteration on. With
 * ret_task, the caller holds a reference (see evt_task_unref); without, the
 * task is detached. -EINVAL for a bad option (an unknown flag, a stack_size
 * outside 16 KiB to 1 GiB), -ENOMEM. The task gets its stack when it first
 * runs: if none can be had then, it ends with -ENOMEM, without running
 * (opts->arg_free says what becomes of arg then). */
EVT_API int evt_task_spawn(evt_loop *loop, evt_task_fn fn, void *arg,
                           const evt_task_opts *opts, evt_task **ret_task);

/* Await point: waits until `task` has ended and stores its result
 * (ret_result may be NULL). Returns at once for a task that already ended.
 * -EDEADLK for the calling task, -EINVAL for NULL. */
EVT_API int evt_task_join(evt_task *task, evt_deadline deadline, int *ret_result);
/* The result of a task that has ended, without waiting (ret_result may be
 * NULL): 0, or -EBUSY while it has not ended, -EINVAL for NULL. */
EVT_API int evt_task_result(const evt_task *task, int *ret_result);

enum {
        EVT_CANCEL_FORCE = 1 << 0,  /* pierce shields */
};
/* Requests cancellation, delivered at the task's next await point (now, if
 * it is waiting). A task that has not started never runs (unless shielded
 * and the cancel is not forced): its result is -ECANCELED. For an ended
 * task, nothing happens: 0. -EINVAL for an unknown flag. */
EVT_API int evt_task_cancel(evt_task *task, unsigned flags);

/* Takes a reference, which keeps the task's memory (not the task) alive
 * until evt_task_unref. Returns task; accepts NULL. */
EVT_API evt_task *evt_task_ref(evt_task *task);
/* Drops a reference. The task runs on; its memory goes once it has ended
 * and no reference is left. Accepts NULL. */
EVT_API void evt_task_unref(evt_task *task);

/* The running task, or NULL outside tasks. */
EVT_API evt_task *evt_task_current(void);
/* The name given at spawn, or "task-<id>"; it lives as long as the task's
 * memory (see evt_task_unref). NULL for NULL. */
EVT_API const char *evt_task_name(const evt_task *task);
/* The EVT_TASK_* flags it was spawned with; 0 for NULL. */
EVT_API unsigned evt_task_flags(const evt_task *task);
/* True once a cancel has been requested, shielded or not, delivered or not;
 * false for NULL. */
EVT_API bool evt_task_is_cancelled(const evt_task *task);
/* True once the task has ended: its function returned, or it never ran
 * (cancelled before it started, or no stack); false for NULL. */
EVT_API bool evt_task_is_done(const evt_task *task);

/* Suspends one task, pausable or not: from its next wake-up it takes not
 * one step until evt_task_resume, as the loop-wide pause gate holds tasks
 * (its wake-ups are kept, in order; deadlines keep running; a cancel gets
 * it through, so that its cleanup runs). A blocking call it made runs on
 * in its thread. 0 (also if suspended already), -ESRCH for a task that has
 * ended, -EINVAL for NULL. */
EVT_API int evt_task_suspend(evt_task *task);
/* Lets a suspended task run again (unless the loop is paused and it is
 * pausable). 0, also if it was not suspended; -EINVAL for NULL. */
EVT_API int evt_task_resume(evt_task *task);
/* True from evt_task_suspend until evt_task_resume or its end. */
EVT_API bool evt_task_is_suspended(const evt_task *task);

/* ========================================================================
 * Await points: yield, sleep
 * ======================================================================== */

/* Await point: lets every other ready task run once, then continues. 0, or
 * -ECANCELED, also for a cancel that came while the task waited its turn. */
EVT_API int evt_yield(void);
/* Await point: sleeps until the deadline: 0 when it has passed, never
 * -ETIMEDOUT. A deadline that has passed already still yields. */
EVT_API int evt_sleep_until(evt_deadline deadline);
/* Sleeps `ns` nanoseconds: evt_sleep_until(evt_deadline_in(ns)). */
EVT_API int evt_sleep(int64_t ns);

/* ========================================================================
 * Cancel scopes and shields
 *
 * Trio's model. A scope is a region of a task, from its push to its pop,
 * that can be cancelled as a unit and can carry a deadline: once it is
 * cancelled (evt_scope_cancel) or its deadline has passed, every await
 * point inside it fails, level-triggered, until the scope is popped. The
 * deadline of every wait inside it (evt_sleep and evt_yield included) is
 * the earliest of its own and those of the scopes it is in. Scopes nest
 * and belong to the task that pushed them; they are popped innermost
 * first. What fails at an await point inside:
 * - a move-on scope (evt_move_on_at/after): -ECANCELED, and its pop
 *   returns 0: the code unwinds to the pop and goes on quietly;
 * - a fail scope (evt_fail_at/after): -ETIMEDOUT once its deadline has
 *   passed, and its pop returns -ETIMEDOUT; an explicit cancel of it
 *   behaves as a move-on scope's;
 * - a shield scope (EVT_SCOPE_SHIELD, or evt_shield_push): the cancels of
 *   the task and of the scopes outside it, and their deadlines, do not
 *   reach inside; its own still do.
 * A forced cancel pierces every scope. A task's own cancel (evt_task_cancel)
 * acts as the cancel of a scope around the whole task.
 * ======================================================================== */

typedef struct evt_scope evt_scope;

enum {
        EVT_SCOPE_SHIELD = 1 << 0,  /* cancels from outside do not reach in */
        EVT_SCOPE_FAIL = 1 << 1,    /* its deadline fails with -ETIMEDOUT */
};

/* Opens a scope in the current task with a deadline (EVT_FOREVER: none;
 * one that has passed cancels it at once) and EVT_SCOPE_* flags; it lives
 * until evt_scope_pop, or the end of the task. -EINVAL outside a task, for
 * a NULL ret_scope or an unknown flag; -ENOMEM. */
EVT_API int evt_scope_push(evt_deadline deadline, unsigned flags, evt_scope **ret_scope);
/* evt_scope_push of a move-on scope with a deadline. */
EVT_API int evt_move_on_at(evt_deadline deadline, evt_scope **ret_scope);
/* evt_move_on_at(evt_deadline_in(ns)). */
EVT_API int evt_move_on_after(int64_t ns, evt_scope **ret_scope);
/* evt_scope_push of a fail scope: EVT_SCOPE_FAIL. */
EVT_API int evt_fail_at(evt_deadline deadline, evt_scope **ret_scope);
/* evt_fail_at(evt_deadline_in(ns)). */
EVT_API int evt_fail_after(int64_t ns, evt_scope **ret_scope);
/* Ends the innermost scope of the calling task, and frees it. ret_caught
 * (may be NULL) tells whether an await point inside failed because of this
 * scope (trio's cancelled_caught). Then returns, in this order: the error
 * of a cancel from outside that can be delivered now (-ECANCELED, or
 * -ETIMEDOUT of an outer fail scope), as every later await point would;
 * -ETIMEDOUT for a fail scope whose deadline made an await point fail; 0.
 * The scope ends either way. -EINVAL (and nothing ends) for NULL, a scope
 * that is not the innermost, or one with an evt_shield_push still open
 * inside. */
EVT_API int evt_scope_pop(evt_scope *scope, bool *ret_caught);
/* Cancels the scope: its task's await points inside it fail from now on
 * (and one it waits in returns now). From any code on the loop's thread,
 * while the scope is open. The first cause stays: a scope whose deadline
 * has passed already is left as it is (a fail scope keeps failing with
 * -ETIMEDOUT). 0, or -EINVAL for NULL. */
EVT_API int evt_scope_cancel(evt_scope *scope);
/* True once the scope was cancelled or its deadline has passed (trio's
 * cancel_called); false for NULL. */
EVT_API bool evt_scope_cancel_called(const evt_scope *scope);
/* The deadline it was pushed with; EVT_FOREVER for NULL. */
EVT_API evt_deadline evt_scope_deadline(const evt_scope *scope);
/* The deadline that bounds the current task's waits: the earliest of its
 * scopes' that reach it (a shield stops those outside it); EVT_NOW once a
 * cancel would fail its next await point. EVT_FOREVER if none, or outside
 * a task. */
EVT_API evt_deadline evt_current_deadline(void);

/* A shield scope without a handle: opens one in the current task; scopes
 * nest. 0, or -EINVAL outside a task. */
EVT_API int evt_shield_push(void);
/* Ends the innermost evt_shield_push scope, then returns -ECANCELED if a
 * cancel can be delivered (every later await point fails too): a pending
 * one once nothing shields the task any more, a forced one at any depth;
 * -ETIMEDOUT in a fail scope past its deadline. The scope ends either way.
 * -EINVAL outside a task or such a scope, or past an evt_scope_push scope
 * still open inside it. */
EVT_API int evt_shield_pop(void);

/* ========================================================================
 * Events
 *
 * A flag tasks can wait for. Setting it wakes every waiter; it stays set
 * until cleared, so a wait on a set event returns at once.
 * ======================================================================== */

typedef struct evt_event evt_event;

/* A new event on `loop`, not set. -EINVAL for a NULL argument, -ENOMEM. */
EVT_API int evt_event_new(evt_loop *loop, evt_event **ret_event);
/* Wakes remaining waiters with -EIDRM. Accepts NULL. */
EVT_API void evt_event_free(evt_event *event);
/* Sets the event and wakes every waiter; each gets 0, even if the event is
 * cleared before it runs. 0, or -EINVAL for NULL. */
EVT_API int evt_event_set(evt_event *event);
/* Clears the event; later waits block until the next set. 0, or -EINVAL
 * for NULL. */
EVT_API int evt_event_clear(evt_event *event);
/* True while the event is set; false for NULL. */
EVT_API bool evt_event_is_set(const evt_event *event);
/* Await point: 0 once the event is set (at once if it is). -EIDRM if it is
 * freed meanwhile; -EINVAL for NULL or an event of another loop. */
EVT_API int evt_event_wait(evt_event *event, evt_deadline deadline);

/* ========================================================================
 * Groups
 *
 * A set of tasks that are waited for and cancelled together. A task joins
 * its group at spawn and leaves it when it ends. Options give a group
 * structure: fail-fast (the first failure cancels the rest), the ended
 * members kept to be taken one at a time in the order they ended, and a
 * bound on the members not yet ended.
 *
 * Freeing a group with live members lets them run on outside any group
 * (nothing is cancelled); tasks waiting in evt_group_wait, evt_group_next
 * or for room in evt_group_spawn get -EIDRM, and ended members kept for
 * evt_group_next are let go.
 * ======================================================================== */

enum {
        /* The first member to end with a negative result (bar -ECANCELED
         * after a cancel) cancels the group; evt_group_wait returns that
         * result, and evt_group_failed names the member. */
        EVT_GROUP_FAIL_FAST = 1 << 0,
        /* Ended members are kept, in the order they ended, for
         * evt_group_next. */
        EVT_GROUP_KEEP_DONE = 1 << 1,
};

typedef struct evt_group_opts {
        unsigned flags;         /* EVT_GROUP_* */
        size_t max_running;     /* members not yet ended at most; 0: no
                                 * bound (see evt_group_spawn) */
} evt_group_opts;

/* A new, empty group on `loop` with the options (NULL: none). -EINVAL for
 * a NULL argument or an unknown flag, -ENOMEM. */
EVT_API int evt_group_new_opts(evt_loop *loop, const evt_group_opts *opts, evt_group **ret_group);
/* evt_group_new_opts without options. */
EVT_API int evt_group_new(evt_loop *loop, evt_group **ret_group);
/* evt_task_spawn on the group's loop, with the task in the group; its
 * errors, and -EINVAL for a NULL group. In a cancelled group the task
 * starts cancelled, with the group's cancel flags: it never runs unless
 * shielded (see evt_task_opts.arg_free). With max_running members not yet
 * ended, a task waits in line for one to end (an await point then: also
 * -ECANCELED, and -EIDRM if the group is freed meanwhile); other code gets
 * -EAGAIN. */
EVT_API int evt_group_spawn(evt_group *group, evt_task_fn fn, void *arg,
                            const evt_task_opts *opts, evt_task **ret_task);
/* See the section's head. Accepts NULL. */
EVT_API void evt_group_free(evt_group *group);
/* Await point: once every task in the group has ended (at once if none):
 * 0, or with EVT_GROUP_FAIL_FAST the result of the member that failed.
 * -EDEADLK for a task of the group itself, whatever the deadline (it would
 * wait for its own end); -EIDRM if the group is freed meanwhile; -EINVAL
 * for NULL or a group of another loop. */
EVT_API int evt_group_wait(evt_group *group, evt_deadline deadline);
/* Await point, for an EVT_GROUP_KEEP_DONE group: takes the member that
 * ended first of those not yet taken, waiting for one to end; the caller
 * gets a reference to it (evt_task_unref). -ENOENT once none is left to
 * take or to end; -EDEADLK for the last member itself; -EIDRM if the group
 * is freed meanwhile; -EINVAL for NULL, a group without the flag or of
 * another loop. A member handed over is reported even if a cancel came
 * after. */
EVT_API int evt_group_next(evt_group *group, evt_deadline deadline, evt_task **ret_task);
/* Cancels every task in the group now, as evt_task_cancel, and the tasks
 * spawned into it later (they start cancelled). 0, or -EINVAL for NULL or
 * an unknown flag. */
EVT_API int evt_group_cancel(evt_group *group, unsigned flags);
/* True once the group was cancelled (evt_group_cancel, or a fail-fast
 * failure); false for NULL. */
EVT_API bool evt_group_is_cancelled(const evt_group *group);
/* With EVT_GROUP_FAIL_FAST, the member whose failure cancelled the group
 * (its result: evt_task_result); it lives as long as the group. NULL if
 * none failed, or for NULL. */
EVT_API evt_task *evt_group_failed(const evt_group *group);
/* Tasks in the group that have not ended; 0 for NULL. */
EVT_API size_t evt_group_size(const evt_group *group);

/* ========================================================================
 * Channels
 *
 * A bounded FIFO queue of fixed-size values between the tasks of a loop.
 * Values are copied in and out. Senders wait while the buffer is full,
 * receivers while it is empty; with capacity 0 every send waits for a
 * receiver to take its value (a rendezvous). Waiting senders, and waiting
 * receivers, are served in the order they came, each value to one
 * receiver. A sender whose value was taken, or a receiver that took one,
 * gets 0 even if a cancel came after (the next await point fails); a task
 * that gave up first (cancel, deadline) takes and leaves nothing.
 * ======================================================================== */

typedef struct evt_channel evt_channel;

/* A channel on `loop` for values of elem_size bytes (> 0), with room for
 * `capacity` of them (0: rendezvous). -EINVAL for a NULL argument or an
 * elem_size of 0, -ENOMEM. */
EVT_API int evt_channel_new(evt_loop *loop, size_t elem_size, size_t capacity, evt_channel **ret_channel);
/* Wakes waiting senders and receivers with -EIDRM; buffered values are
 * dropped. Accepts NULL. */
EVT_API void evt_channel_free(evt_channel *channel);
/* Await point: copies elem_size bytes from elem into the channel: to the
 * first waiting receiver, else into the buffer, else waits until one of
 * them has room. -EPIPE once the channel is closed (before the call or
 * while it waits: the value is not sent); -EIDRM if it is freed meanwhile;
 * -EINVAL for a NULL argument or a channel of another loop. */
EVT_API int evt_channel_send(evt_channel *channel, const void *elem, evt_deadline deadline);
/* evt_channel_send without waiting, also from outside a task (a libev
 * callback, an evt_loop_post function): -EAGAIN where the send would
 * wait. Not an await point: never -ECANCELED. */
EVT_API int evt_channel_try_send(evt_channel *channel, const void *elem);
/* Await point: takes the oldest value into ret_elem (NULL: drops it),
 * waiting while there is none. Once the channel is closed, receivers still
 * get the buffered values, then -EPIPE. -EIDRM if it is freed meanwhile;
 * -EINVAL for NULL or a channel of another loop. */
EVT_API int evt_channel_recv(evt_channel *channel, void *ret_elem, evt_deadline deadline);
/* No value can be sent from now on: waiting senders get -EPIPE (their
 * values are not sent), and so do waiting receivers, who found the buffer
 * empty. 0, also if it was closed; -EINVAL for NULL. */
EVT_API int evt_channel_close(evt_channel *channel);
/* True once closed; false for NULL. */
EVT_API bool evt_channel_is_closed(const evt_channel *channel);
/* Values in the buffer; 0 for NULL. */
EVT_API size_t evt_channel_len(const evt_channel *channel);

/* ========================================================================
 * Locks: mutexes and counting semaphores
 *
 * A release hands the lock or the permit straight to the first task in
 * line and wakes it alone: waiters get it in the order they came, and a
 * task that comes later cannot take it first. A waiter cancelled before
 * it ran again takes nothing: what it was handed goes to the next.
 * ======================================================================== */

typedef struct evt_mutex evt_mutex;
typedef struct evt_sem evt_sem;

/* A new mutex on `loop`, unlocked. -EINVAL for a NULL argument, -ENOMEM. */
EVT_API int evt_mutex_new(evt_loop *loop, evt_mutex **ret_mutex);
/* Wakes waiting tasks with -EIDRM, held or not. Accepts NULL. */
EVT_API void evt_mutex_free(evt_mutex *mutex);
/* Await point: locks the mutex for the calling task, waiting in line while
 * another task holds it. -EDEADLK if the caller holds it; -EIDRM if it is
 * freed meanwhile; -EINVAL for NULL or a mutex of another loop. */
EVT_API int evt_mutex_lock(evt_mutex *mutex, evt_deadline deadline);
/* Unlocks a mutex the calling task holds, handing it to the first waiter.
 * 0, -EPERM if the caller does not hold it, -EINVAL for NULL. A task that
 * ends holding a mutex leaves it locked. */
EVT_API int evt_mutex_unlock(evt_mutex *mutex);
/* The task that holds the mutex, NULL if none (also for NULL, and while a
 * waiter it was handed to has not run yet). */
EVT_API evt_task *evt_mutex_owner(const evt_mutex *mutex);

/* A semaphore on `loop` with `permits` free. -EINVAL for a NULL argument,
 * -ENOMEM. */
EVT_API int evt_sem_new(evt_loop *loop, size_t permits, evt_sem **ret_sem);
/* Wakes waiting tasks with -EIDRM. Accepts NULL. */
EVT_API void evt_sem_free(evt_sem *sem);
/* Await point: takes a permit, waiting in line while none is free. -EIDRM
 * if it is freed meanwhile; -EINVAL for NULL or a semaphore of another
 * loop. */
EVT_API int evt_sem_acquire(evt_sem *sem, evt_deadline deadline);
/* Gives a permit back: to the first waiter, or to the free ones. Any code
 * on the loop's thread may release, a task or not. 0, -EOVERFLOW beyond
 * SIZE_MAX free permits, -EINVAL for NULL. */
EVT_API int evt_sem_release(evt_sem *sem);
/* Free permits; 0 for NULL. */
EVT_API size_t evt_sem_value(const evt_sem *sem);

/* ========================================================================
 * Reaching a loop from other threads
 *
 * asyncio's call_soon_threadsafe, trio's from_thread: any thread (a pool's
 * function, a thread of its own) posts a function that then runs on the
 * loop's thread, waking the loop. From there it may do what code outside a
 * task may: set an event, evt_channel_try_send, release a semaphore, spawn
 * or cancel a task.
 * ======================================================================== */

typedef struct evt_async evt_async;

/* A post box on `loop`, made on the loop's thread. While it exists, it
 * keeps libev running: tasks waiting for what will be posted are not a
 * deadlock for evt_loop_run (it is not one of evt_loop_stats' watchers). -EINVAL for a NULL argument, -ENOMEM, or
 * -EMFILE or -ENFILE (libev may need a descriptor to wake the loop). */
EVT_API int evt_async_new(evt_loop *loop, evt_async **ret_async);
/* On the loop's thread, also from a posted function: runs the posts still
 * queued, then frees it. Freed with its loop if left, but a post that
 * spawns a task must run before evt_loop_free. No thread may post once
 * the free may have begun. Accepts NULL. */
EVT_API void evt_async_free(evt_async *async);
/* Thread-safe: queues fn(arg) to run on the loop's thread, from a libev
 * callback (not in a task), after the functions posted before it. 0,
 * -ENOMEM, -EINVAL for a NULL argument. */
EVT_API int evt_async_post(evt_async *async, void (*fn)(void *arg), void *arg);

/* ========================================================================
 * File descriptors and child processes
 * ======================================================================== */

enum {
        EVT_READ = 1 << 0,
        EVT_WRITE = 1 << 1,
};

/* Await point: waits until fd is ready for one of `events` (EVT_READ,
 * EVT_WRITE; a hang-up or an error counts as both) and stores which in
 * ret_events (may be NULL); a passed deadline polls once. -EBADF for a
 * descriptor that is not open; it must stay open during the wait. */
EVT_API int evt_fd_wait(int fd, unsigned events, evt_deadline deadline, unsigned *ret_events);

/* Await point: waits until child `pid` (> 0) has exited and stores its wait
 * status (ret_status may be NULL), even if a cancel came meanwhile. Only on
 * libev's default loop (else -EOPNOTSUPP). libev reaps children as they
 * exit: wait before the task's next other await point after fork, or the
 * status is lost and the wait lasts until its deadline. */
EVT_API int evt_child_wait(pid_t pid, evt_deadline deadline, int *ret_status);

/* ========================================================================
 * Socket calls
 *
 * On non-blocking descriptors (O_NONBLOCK; evt_accept's are): each tries
 * its system call first and waits for the descriptor only when it would
 * block; EINTR and EAGAIN never come out. Writes to a socket use
 * MSG_NOSIGNAL, so a peer that has gone is -EPIPE, not SIGPIPE; a write to
 * a pipe whose reader has gone raises SIGPIPE unless the program ignores
 * or blocks it. A call that gives up (deadline, cancel) may have moved
 * part of the data: the stream is then in an unknown state.
 * ======================================================================== */

/* Await point: reads up to len bytes, waiting until there are some, and
 * stores how many in ret_n (may be NULL): 0 is the end of the stream.
 * The errno of read otherwise (-ECONNRESET...); -EINVAL for fd < 0 or a
 * NULL buf with len > 0. */
EVT_API int evt_read(int fd, void *buf, size_t len, evt_deadline deadline, size_t *ret_n);
/* Await point: writes all len bytes, waiting for room as often as needed:
 * 0 once all are written, else the error (-EPIPE for a peer that has
 * gone), however much was written before it. -EINVAL as evt_read. */
EVT_API int evt_write(int fd, const void *buf, size_t len, evt_deadline deadline);
/* Await point: accepts a connection on the listening socket fd, waiting
 * for one, and stores its descriptor, non-blocking and close-on-exec, in
 * ret_fd. Errors of a connection that failed before it was accepted are
 * passed over; the errno of accept4 otherwise (-EMFILE). -EINVAL for
 * fd < 0 or a NULL ret_fd. */
EVT_API int evt_accept(int fd, evt_deadline deadline, int *ret_fd);
/* Await point: connects the non-blocking socket fd to addr, waiting until
 * the connection is made or refused: 0, or the connection's errno
 * (-ECONNREFUSED...). After -ETIMEDOUT or -ECANCELED the connect may still
 * be under way: close fd. -EINVAL for fd < 0 or a NULL addr. */
EVT_API int evt_connect(int fd, const struct sockaddr *addr, socklen_t addrlen, evt_deadline deadline);

/* ========================================================================
 * Blocking work in threads
 *
 * A pool runs blocking functions on worker threads, so that a task can
 * await one without blocking the loop. Threads start on demand, up to the
 * pool's size, with every signal blocked: signals stay the loop thread's.
 *
 * A thread cannot be killed. When the awaiting task gives up (a cancel, its
 * deadline) it returns at once; a call that has not started never will, and
 * one that is running gets its token's stop flag set and runs on, its result
 * dropped. The function is expected to check its token: a thread that never
 * does is *abandoned* in the end (evt_pool_free, a lifecycle's drain), and
 * the process can exit without it.
 *
 * Pauses reach threads through the token too: a paused loop starts no new
 * call, and evt_token_checkpoint waits while the loop is paused.
 * ======================================================================== */

typedef struct evt_pool evt_pool;
typedef struct evt_token evt_token;

/* Runs on a worker thread. Its return value, by convention 0 or a negative
 * errno, is what the awaiting task gets. */
typedef int (*evt_blocking_fn)(evt_token *token, void *arg);

typedef struct evt_pool_opts {
        unsigned threads;       /* worker threads at most; 0: one per CPU */
        size_t queue_max;       /* calls in flight beyond `threads`; 0: 1024 */
} evt_pool_opts;

/* A pool on `loop`; no thread starts before the first call. -EINVAL for a
 * NULL argument or a bad option (more than 1024 threads), -ENOMEM, or
 * -EMFILE or -ENFILE when no descriptor is left (libev may need one to wake
 * the loop). Pools left are freed with the loop. */
EVT_API int evt_pool_new(evt_loop *loop, const evt_pool_opts *opts, evt_pool **ret_pool);
/* Tasks awaiting a call or room in the queue get -EIDRM; queued calls never
 * run; idle threads are joined. Threads still running a function get its
 * stop flag and are abandoned: each ends when its function returns, without
 * touching the loop again. Never waits for a function. Accepts NULL. */
EVT_API void evt_pool_free(evt_pool *pool);

enum {
        EVT_CALL_NOWAIT = 1 << 0, /* -EAGAIN at once when the queue is full */
};

typedef struct evt_call_opts {
        unsigned flags;         /* EVT_CALL_* */
        /* If set, the pool owns arg from the call on and calls arg_free(arg)
         * once no one can use it any more: on the worker thread right after
         * fn returns, or on the loop's thread for a call that never runs.
         * That happens whatever evt_pool_call returns, except -EINVAL and
         * -EAGAIN, which take nothing. Without arg_free, arg must stay valid
         * until fn has returned, which can be after the awaiting task gave
         * up on the call. */
        void (*arg_free)(void *arg);
        /* A bound on the run, in ns from when a thread takes the call (time
         * spent queued does not count); 0: none. When it passes, the call
         * ends as at its deadline: -ETIMEDOUT, the stop flag set. The
         * deadline stays the bound on the whole wait, queue included. */
        int64_t run_timeout;
} evt_call_opts;

/* Await point: runs fn(token, arg) on a worker thread and stores what it
 * returned in ret_result (may be NULL). Bounded by the deadline and, once a
 * thread has taken the call, by opts->run_timeout. At most threads + queue_max calls
 * are in flight (queued, running, or abandoned by their task and still
 * running); beyond that, first waits for room (until the deadline), or
 * returns -EAGAIN with EVT_CALL_NOWAIT. -EAGAIN too if no worker thread
 * exists and none can be started. -EINVAL for a negative run_timeout. A cancel or the deadline returns
 * -ECANCELED or -ETIMEDOUT at once and sets the call's stop flag; a call
 * that has already returned by then reports its result instead; with a
 * deadline passed already, fn never runs. -EIDRM if the pool is freed
 * meanwhile; -ENOMEM; -EINVAL also for a task of another loop.
 * While the loop is paused, a thread waiting at a checkpoint is not free
 * for other calls, EVT_TASK_NOPAUSE tasks' included. */
EVT_API int evt_pool_call(evt_pool *pool, evt_blocking_fn fn, void *arg,
                          const evt_call_opts *opts, evt_deadline deadline, int *ret_result);

/* Await point: getaddrinfo(host, service, hints) on a thread of `pool`
 * (host or service may be NULL, not both; hints may be NULL), and the list
 * in ret_res, to be freed with freeaddrinfo. Its errors as errnos:
 * -ENOENT (EAI_NONAME, EAI_NODATA, EAI_ADDRFAMILY), -EAGAIN (EAI_AGAIN),
 * -EIO (EAI_FAIL), -ENOMEM, -ESRCH (EAI_SERVICE), -EAFNOSUPPORT,
 * -ESOCKTNOSUPPORT, -EINVAL (EAI_BADFLAGS), -EOVERFLOW, errno for
 * EAI_SYSTEM; and evt_pool_call's. A lookup given up on runs on to its
 * end, and its result is freed then. */
EVT_API int evt_getaddrinfo(evt_pool *pool, const char *host, const char *service,
                            const struct addrinfo *hints, evt_deadline deadline, struct addrinfo **ret_res);

/* A token belongs to one call; these are for its function, on its worker
 * thread, and are thread-safe. */

/* True once the awaiting task gave up (cancel, deadline) or the pool ended;
 * false for NULL. */
EVT_API bool evt_token_stop_requested(const evt_token *token);
/* True while the loop is paused (never for a call made by an
 * EVT_TASK_NOPAUSE task); false for NULL. */
EVT_API bool evt_token_is_paused(const evt_token *token);
/* Where a function lets itself be paused or stopped: waits while the loop
 * is paused, then returns 0; -ECANCELED once stop is requested, at once and
 * also while paused. -EINVAL for NULL. */
EVT_API int evt_token_checkpoint(evt_token *token);

/* ========================================================================
 * Introspection
 *
 * What tests, status pages and watchdogs read of a loop: its counts, the
 * tasks and blocking calls in flight, and the steps that held it too long.
 * ======================================================================== */

/* Step durations are counted by bucket: steps[i] counts the steps that
 * held the loop less than 10^i ms (1 ms, 10 ms, 100 ms, 1 s, 10 s), and
 * steps[EVT_STEP_BUCKETS] the longer ones. */
#define EVT_STEP_BUCKETS 5

/* Counts, for tests and status pages: every loop test ends with tasks,
 * stacks_used, watchers and calls all zero. */
typedef struct evt_loop_stats {
        size_t tasks;           /* spawned and not yet ended */
        size_t stacks_used;     /* stacks held by tasks */
        size_t stacks_free;     /* stacks kept in the pool */
        size_t watchers;        /* libev watchers the scheduler has active */
        size_t calls;           /* blocking calls in flight, in all pools */
        uint64_t switches;      /* context switches into tasks so far */
        size_t suspended;       /* tasks evt_task_suspend holds */
        /* Steps timed so far, by duration (see EVT_STEP_BUCKETS), and their
         * sum in ns: counted while evt_loop_slow_step_set has a threshold,
         * with its coarse clock. */
        uint64_t steps[EVT_STEP_BUCKETS + 1];
        int64_t steps_ns;
} evt_loop_stats;

/* Fills ret_stats with the loop's counts: 0, or -EINVAL for a NULL
 * argument. */
EVT_API int evt_loop_stats_get(evt_loop *loop, evt_loop_stats *ret_stats);

/* Counts, for tests and status pages. */
typedef struct evt_pool_stats {
        size_t threads;         /* worker threads alive, idle ones included */
        size_t idle;            /* of those, waiting for a call */
        size_t queued;          /* calls waiting for a thread */
        size_t running;         /* calls whose function is running */
        size_t calls;           /* in flight: queued, running, or returned
                                 * and not yet collected by the loop */
        uint64_t completed;     /* functions that have returned so far */
        int64_t oldest_queued;  /* ns the oldest queued call has waited for
                                 * a thread; 0: none is queued */
} evt_pool_stats;

/* Fills ret_stats with the pool's counts: 0, or -EINVAL for a NULL
 * argument. */
EVT_API int evt_pool_stats_get(evt_pool *pool, evt_pool_stats *ret_stats);

/* Calls fn for every task that has not ended, in spawn order. fn may
 * cancel tasks; it must not free any. 0, or -EINVAL for a NULL argument. */
EVT_API int evt_loop_foreach_task(evt_loop *loop, void (*fn)(evt_task *task, void *data), void *data);
/* Nanoseconds since the task was spawned, to within a few milliseconds; 0
 * for NULL. */
EVT_API int64_t evt_task_age(const evt_task *task);
/* "new", "ready", "running", "waiting", "held" (by the pause gate), "done";
 * NULL for NULL. */
EVT_API const char *evt_task_state_name(const evt_task *task);

/* What a waiting task waits for, as a status page or a dump shows it. */
typedef struct evt_wait_info {
        const char *what;       /* "sleep", "event", "fd", "child", "join",
                                 * "group", "group room", "pool call",
                                 * "pool room", "channel send", "channel
                                 * receive", "mutex", "semaphore", "other";
                                 * NULL: the task is not waiting */
        long long arg;          /* the fd, the child's pid; -1: none */
        const char *task;       /* for a join: the joined task's name */
        int64_t since;          /* when the wait began (evt_time_now's clock,
                                 * to a few ms) */
        evt_deadline deadline;  /* when it times out; EVT_FOREVER: never */
} evt_wait_info;
/* Fills ret with what task waits for (what = NULL when it is not waiting):
 * 0, or -EINVAL for a NULL argument. The strings live as long as the
 * task's memory, or for ever. */
EVT_API int evt_task_wait_info(const evt_task *task, evt_wait_info *ret);

/* Where a parked task is: up to n return addresses unwound from its saved
 * context by its frame pointers, innermost first (the first few are the
 * scheduler's switch and the primitive it waits in, then the task's own
 * functions, its entry last). The walk reads only the task's stack, checks
 * each frame's alignment and range first and stops at the first that does
 * not fit, so a broken chain (code built without frame pointers) gives a
 * short trace, never a fault. An address is a return address: the call is
 * the instruction before it (symbolize pc - 1). The count stored (0..n),
 * -EINVAL for a NULL task or pcs, -EBUSY for the running task, -ESRCH for a
 * task that has not run yet or has ended, -ENOTSUP where the build cannot
 * walk (a context switch other than x86-64's, AArch64's or RISC-V's
 * assembly, or glibc's on x86-64). */
EVT_API int evt_task_backtrace(const evt_task *task, void **pcs, size_t n);

/* One blocking call in flight, as status pages and the lifecycle see it. */
typedef struct evt_call_info {
        const char *task;       /* the name of the task that made the call */
        int64_t age;            /* ns since it was made */
        int64_t running;        /* ns since its function started; 0: queued */
        bool stop_requested;
        bool awaited;           /* false once its task gave up on it */
} evt_call_info;

/* Calls fn for every call in flight in the loop's pools, oldest first in
 * each pool; calls whose function has returned are collected first, so
 * each one listed was queued or running a moment ago. fn must not make or
 * free calls or pools. 0, or -EINVAL for a NULL argument. */
EVT_API int evt_loop_foreach_call(evt_loop *loop, void (*fn)(const evt_call_info *info, void *data),
                                  void *data);

/* Called after a step (what a task runs between two await points, or from
 * its start to its end) that held the loop for held_ns: no other task, no
 * timer and no signal could run meanwhile. */
typedef void (*evt_slow_step_fn)(evt_task *task, int64_t held_ns, void *data);
/* From now on, calls fn for every step that holds the loop threshold_ns or
 * longer; 0 turns it off (the default). Steps are timed with the coarse
 * monotonic clock, so to within a few milliseconds. fn runs in the task, at
 * the await point that ends the step (the task may have ended); it must not
 * wait. A step that never ends is never reported: a watchdog outside the
 * loop has to catch that one. 0, or -EINVAL for a NULL loop, a negative
 * threshold, or a threshold without fn. */
EVT_API int evt_loop_slow_step_set(evt_loop *loop, int64_t threshold_ns, evt_slow_step_fn fn, void *data);

/* ========================================================================
 * Lifecycle: signals, pause and resume, graceful shutdown
 *
 * A lifecycle owns the process's INT, TERM, QUIT, HUP, USR1 and USR2:
 * - SIGINT pauses the loop (evt_loop_pause) and the next one resumes it;
 *   during a shutdown it is reported and ignored.
 * - SIGTERM and SIGQUIT start a graceful shutdown: STOPPING (every
 *   unshielded task is cancelled, paused ones too), then DRAINING (the loop
 *   is resumed; shielded tasks run on until they end or drain_timeout
 *   passes), then FORCING (what is left is force-cancelled, and every
 *   blocking call has its stop flag set), then DONE. Blocking calls still
 *   running count as work to drain, even once their task gave up on them;
 *   those still running abandon_grace after FORCING are abandoned.
 *   A second shutdown signal forces at once; the third _exit()s from the
 *   signal handler itself, even while a task has wedged the loop.
 * - HUP, USR1 and USR2 are only reported, through signalfd (blocked in the
 *   calling thread, and so in threads it starts later) where it exists.
 * That is the default role of each of INT, TERM and QUIT; another can be
 * set (evt_lifecycle_signal_set): SIGINT as a shutdown signal, as
 * orchestrators that stop with SIGINT need.
 * It reports through callbacks and knows nothing of logs or service
 * managers. One per process.
 * ======================================================================== */

typedef struct evt_lifecycle evt_lifecycle;

typedef enum evt_phase {
        EVT_PHASE_RUNNING,      /* no shutdown requested */
        EVT_PHASE_STOPPING,     /* unshielded tasks are being cancelled */
        EVT_PHASE_DRAINING,     /* shielded tasks run on until the deadline */
        EVT_PHASE_FORCING,      /* the rest has been force-cancelled */
        EVT_PHASE_DONE,         /* no task left: evt_lifecycle_run returns */
} evt_phase;

/* What a signal of the self-pipe (INT, TERM, QUIT) does. */
typedef enum evt_signal_role {
        EVT_SIGNAL_ROLE_PAUSE,  /* pause; the next one resumes (SIGINT's) */
        EVT_SIGNAL_ROLE_SHUTDOWN, /* counts toward the shutdown: the first
                                 * drains, the second forces, the third
                                 * exits (TERM's and QUIT's) */
} evt_signal_role;

typedef enum evt_signal_action {
        EVT_SIGNAL_PAUSED,      /* a pause signal (SIGINT) paused the loop */
        EVT_SIGNAL_RESUMED,     /* ... resumed it */
        EVT_SIGNAL_IGNORED,     /* ... came during a shutdown */
        EVT_SIGNAL_SHUTDOWN,    /* the first shutdown signal (TERM, QUIT) */
        EVT_SIGNAL_FORCED,      /* the second */
        EVT_SIGNAL_REPORTED,    /* HUP, USR1, USR2: up to the callback */
} evt_signal_action;

typedef struct evt_signal_info {
        int signo;
        evt_signal_action action;
        pid_t sender_pid;       /* 0 where the platform does not tell */
        uid_t sender_uid;
        unsigned count;         /* shutdown requests before this signal
                                 * (0 for the first TERM or QUIT) */
} evt_signal_info;

/* Exit statuses of evt_lifecycle_run; a third shutdown signal exits with
 * 128 + its number from the signal handler. */
enum {
        EVT_EXIT_CLEAN = 0,     /* every task ended on its own or cancelled */
        EVT_EXIT_FORCED = 3,    /* a task had to be force-cancelled */
        EVT_EXIT_ABANDONED = 4, /* a blocking call was abandoned (maybe a
                                 * task was forced too) */
};

typedef struct evt_lifecycle_ops {
        /* Every signal, once acted on. */
        void (*signal_cb)(evt_lifecycle *lc, const evt_signal_info *info, void *data);
        /* Every phase change, with the tasks not yet ended. */
        void (*phase_cb)(evt_lifecycle *lc, evt_phase phase, size_t tasks_left, void *data);
        /* Each task about to be force-cancelled. */
        void (*forced_cb)(evt_lifecycle *lc, evt_task *task, void *data);
        /* Each blocking call still running when abandon_grace has passed. */
        void (*abandoned_cb)(evt_lifecycle *lc, const evt_call_info *call, void *data);
        void *data;
} evt_lifecycle_ops;

typedef struct evt_lifecycle_opts {
        int64_t drain_timeout;  /* ns from the shutdown to forcing; 0: 20 s */
        int64_t abandon_grace;  /* ns from forcing to abandoning blocking
                                 * calls that ignore their stop flag; 0: 1 s */
        bool exit_when_idle;    /* DONE as soon as no task or call is left */
        /* Written to emergency_fd by the signal handler before the third
         * signal's _exit (a complete log line in the caller's format). */
        const char *emergency_message;
        int emergency_fd;
} evt_lifecycle_opts;

/* Takes over the signals above for `loop`; *ops is copied. -EBUSY if the
 * process has a lifecycle; -EINVAL for a negative duration or an
 * emergency_message without emergency_fd; -ENOMEM, or the errno of a
 * failed pipe2, sigaction, sigprocmask or signalfd. */
EVT_API int evt_lifecycle_new(evt_loop *loop, const evt_lifecycle_opts *opts,
                              const evt_lifecycle_ops *ops, evt_lifecycle **ret_lc);
/* Restores the signal dispositions and mask. Call it before evt_loop_free
 * of its loop. Accepts NULL. */
EVT_API void evt_lifecycle_free(evt_lifecycle *lc);
/* Runs the loop until the phase is DONE; returns the exit status
 * (EVT_EXIT_*), or -EINVAL for NULL or from inside a task. Without
 * exit_when_idle, that is only after a shutdown. */
EVT_API int evt_lifecycle_run(evt_lifecycle *lc);
/* What the first (force = false) or second shutdown signal does; while a
 * shutdown is draining, any call forces, and once forcing it does nothing.
 * 0, or -EINVAL for NULL. A TERM or QUIT after it forces. */
EVT_API int evt_lifecycle_shutdown(evt_lifecycle *lc, bool force);
/* As evt_lifecycle_shutdown(lc, false), with a drain of drain_timeout
 * (> 0) instead of the one the lifecycle was made with: an operator's
 * shutdown that allows more, or less, time. -EINVAL for a bad argument. */
EVT_API int evt_lifecycle_shutdown_within(evt_lifecycle *lc, int64_t drain_timeout);
/* Sets what signo (SIGINT, SIGTERM or SIGQUIT) does from now on. Shutdown
 * signals are counted together, whichever they are: SIGINT set to
 * EVT_SIGNAL_ROLE_SHUTDOWN after one SIGTERM forces. A pause under way
 * stays until resumed (evt_loop_resume) or a shutdown. 0, or -EINVAL for
 * NULL, another signal, or a role that is none of the above. */
EVT_API int evt_lifecycle_signal_set(evt_lifecycle *lc, int signo, evt_signal_role role);
/* The current phase; EVT_PHASE_RUNNING for NULL. */
EVT_API evt_phase evt_lifecycle_phase(const evt_lifecycle *lc);
/* "running", "stopping", "draining", "forcing", "done"; "unknown" for a
 * value that is not a phase. */
EVT_API const char *evt_phase_name(evt_phase phase);

#ifdef __cplusplus
}
#endif

#endif
