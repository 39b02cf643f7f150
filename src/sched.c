/* The scheduler: loops, tasks, the run queue, wait and wake, cancellation.
 *
 * Tasks run from one ev_idle watcher at the highest priority, active while
 * the run queue is not empty, so libev polls without blocking between two
 * rounds of tasks and blocks when no task is ready. Every switch goes from
 * the scheduler's context to a task and back; tasks never switch to each
 * other directly. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if EVT_HAVE_EVENTFD
#include <sys/eventfd.h>
#endif
#include <time.h>
#include <unistd.h>

#include "cache.h"
#include "overflow.h"
#include "sanitizer.h"
#include "scheduler.h"

/* The task running on this thread, NULL in the scheduler and outside. */
static __thread evt_task *current;

#define DEFAULT_STACK_SIZE ((size_t) 64 * 1024)
#define DEFAULT_STACK_POOL_MAX 1024
#define DEFAULT_NAME_MAX 25 /* "task-" and a 64-bit id */

/* ---- the run queue and the pause gate ----------------------------------- */

/* Does the pause gate hold this ready task: the loop's pause (for a
 * pausable task) or its own suspension? Cancelled tasks pass, so that
 * their cleanup runs. */
static bool gate_holds(const evt_loop *l, const evt_task *t) {
        return ((l->paused && !(t->flags & EVT_TASK_NOPAUSE)) || t->suspended) && !evt__cancel_deliverable(t);
}

static void run_watcher_update(evt_loop *l) {
        bool want = !evt__list_empty(&l->run) || !evt__list_empty(&l->round);

        if (want == ev_is_active(&l->run_watcher))
                return;
        if (want) {
                ev_idle_start(l->ev, &l->run_watcher);
                evt__watcher_started(l);
        } else {
                ev_idle_stop(l->ev, &l->run_watcher);
                evt__watcher_stopped(l);
        }
}

static void enqueue(evt_loop *l, evt_task *t) {
        t->held = gate_holds(l, t);
        evt__list_push_back(t->held ? &l->held : &l->run, &t->queue_link);
        if (!t->held)
                run_watcher_update(l);
}

/* Moves a held task to the run queue if the gate no longer holds it. */
static void unhold(evt_loop *l, evt_task *t) {
        if (!t->held || gate_holds(l, t))
                return;
        evt__list_remove(&t->queue_link);
        t->held = false;
        evt__list_push_back(&l->run, &t->queue_link);
        run_watcher_update(l);
}

static void observers_tell_pause(evt_loop *l) {
        evt__list *n;

        evt__list_for_each(n, &l->observers) {
                evt__loop_observer *o = evt__container_of(n, evt__loop_observer, link);

                if (o->pause_cb)
                        o->pause_cb(o, l->paused);
        }
}

void evt__loop_observer_add(evt_loop *loop, evt__loop_observer *o) {
        evt__list_push_back(&loop->observers, &o->link);
}

void evt__loop_observer_remove(evt__loop_observer *o) {
        evt__list_remove(&o->link);
}

int evt_loop_pause(evt_loop *loop) {
        if (!loop)
                return -EINVAL;
        if (loop->paused)
                return 0;
        loop->paused = true;
        /* Held tasks wait for a resume: the loop must not run out of work
         * and return while it is paused. */
        ev_ref(loop->ev);
        evt__deadlines_pause(loop);
        observers_tell_pause(loop);
        return 0;
}

int evt_loop_resume(evt_loop *loop) {
        evt__list *n;

        if (!loop)
                return -EINVAL;
        if (!loop->paused)
                return 0;
        loop->paused = false;
        ev_unref(loop->ev);
        evt__deadlines_resume(loop);
        /* Held tasks keep the order in which they became ready; suspended
         * ones stay held. */
        for (n = loop->held.next; n != &loop->held;) {
                evt_task *t = evt__container_of(n, evt_task, queue_link);

                n = n->next;
                unhold(loop, t);
        }
        run_watcher_update(loop);
        observers_tell_pause(loop);
        return 0;
}

/* A suspended task waits for evt_task_resume: while one is, the loop must
 * not run out of work and return. */
static void suspended_set(evt_task *t, bool on) {
        evt_loop *l = t->loop;

        if (t->suspended == on)
                return;
        t->suspended = on;
        if (on && l->n_suspended++ == 0)
                ev_ref(l->ev);
        else if (!on && --l->n_suspended == 0)
                ev_unref(l->ev);
}

int evt_task_suspend(evt_task *task) {
        if (!task)
                return -EINVAL;
        if (task->state == EVT__TASK_DONE)
                return -ESRCH;
        /* A ready task is held when its turn comes (the round checks the
         * gate); a running or waiting one when it is next ready. */
        suspended_set(task, true);
        return 0;
}

int evt_task_resume(evt_task *task) {
        if (!task)
                return -EINVAL;
        if (!task->suspended)
                return 0;
        suspended_set(task, false);
        unhold(task->loop, task);
        return 0;
}

bool evt_task_is_suspended(const evt_task *task) {
        return task && task->suspended;
}

bool evt_loop_is_paused(const evt_loop *loop) {
        return loop && loop->paused;
}

/* ---- task lifetime ------------------------------------------------------- */

static void task_free(evt_task *t) {
        assert(t->state == EVT__TASK_DONE);
        if (t->in_cache)
                evt__cache_free(t);
        else
                free(t);
}

evt_task *evt_task_ref(evt_task *task) {
        if (task)
                task->refs++;
        return task;
}

void evt_task_unref(evt_task *task) {
        if (!task)
                return;
        assert(task->refs > 0);
        if (--task->refs == 0)
                task_free(task);
}

/* The end of a task, on its own stack or (never started) the scheduler's:
 * wake joiners, leave the set. The stack and the running reference go in
 * task_release, once the scheduler is back on its own stack. */
static void task_end(evt_task *t, int result) {
        evt_loop *l = t->loop;
        evt__taskset *set = t->set;

        t->result = result;
        t->state = EVT__TASK_DONE;
        evt__scopes_drop(t); /* those its function left open */
        suspended_set(t, false); /* a cancel got it through the gate */
        evt__list_remove(&t->link);
        l->n_tasks--;
        evt__wake_all(&t->joiners, 0);
        if (set) {
                evt__list_remove(&t->set_link);
                t->set = NULL;
                set->n_tasks--;
                if (set->end_cb)
                        set->end_cb(set, t);
                if (set->n_tasks == 0)
                        evt__wake_all(&set->waiters, 0);
        }
}

static void task_main(void *arg);
static void task_release(evt_task *t);

/* A task that ends without having run: its argument was never handed to
 * it, so it goes to arg_free (once: fn and arg_free are both dropped). */
static void task_end_unrun(evt_task *t, int result) {
        void (*arg_free)(void *arg) = t->arg_free;
        void *arg = t->arg;

        t->arg_free = NULL;
        task_end(t, result);
        task_release(t); /* may free t */
        if (arg_free)
                arg_free(arg);
}

static void task_release(evt_task *t) {
        evt_loop *l = t->loop;

        if (t->stack) {
                evt__stack_put(&l->stacks, t->stack);
                t->stack = NULL;
                if (evt__stack_pool_over(&l->stacks) && !ev_is_active(&l->trim_watcher)) {
                        ev_idle_start(l->ev, &l->trim_watcher);
                        ev_unref(l->ev); /* housekeeping keeps no loop alive */
                }
        }
        /* Inside evt_loop_run, the last task's end is the run's end, even if
         * the caller's own watchers would keep libev going. */
        if (l->n_tasks == 0 && l->run_depth > 0)
                ev_break(l->ev, EVBREAK_ONE);
        evt_task_unref(t);
}

/* A task that ended switched away from its stack for good: whoever runs
 * next releases it, on a stack of its own. */
static void release_dead(evt_loop *l) {
        evt_task *t = l->dead;

        if (t) {
                l->dead = NULL;
                task_release(t);
        }
}

/* Free stacks beyond the pool's bound go back to the system when the loop
 * has nothing else to do, a few mappings at a time. */
static void trim_cb(struct ev_loop *ev, ev_idle *w, int revents) {
        evt_loop *l = w->data;

        (void) revents;
        if (!evt__stack_pool_trim(&l->stacks, 16)) {
                ev_ref(ev);
                ev_idle_stop(ev, w);
        }
}

/* ---- descriptors -------------------------------------------------------- */

int evt__fd_nonblock_cloexec(int fd) {
        int fl = fcntl(fd, F_GETFL);

        if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
                return -1;
        return 0;
}

int evt__fds_check(unsigned n) {
        int fds[2] = { -1, -1 }, r = 0;

#if EVT_HAVE_EVENTFD
        for (unsigned i = 0; i < n && i < 2; i++) {
                fds[i] = eventfd(0, EFD_CLOEXEC);
                if (fds[i] < 0) {
                        r = -errno;
                        break;
                }
        }
#else
        if (n > 0 && pipe(fds) < 0) /* two at once: asks one more for n = 1 */
                r = -errno;
#endif
        for (unsigned i = 0; i < 2; i++)
                if (fds[i] >= 0)
                        close(fds[i]);
        return r;
}

/* ---- slow steps ---------------------------------------------------------- */

/* The coarse clock: to within a few milliseconds, at a fraction of the cost
 * of a precise reading; the precise one where there is none. */
#if EVT_HAVE_COARSE_CLOCK
#define COARSE_CLOCK CLOCK_MONOTONIC_COARSE
#else
#define COARSE_CLOCK CLOCK_MONOTONIC
#endif
static int64_t coarse_now(void) {
        struct timespec ts;

        clock_gettime(COARSE_CLOCK, &ts);
        return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int evt_loop_slow_step_set(evt_loop *loop, int64_t threshold_ns, evt_slow_step_fn fn, void *data) {
        if (!loop || threshold_ns < 0 || (threshold_ns > 0 && !fn))
                return -EINVAL;
        loop->slow_ns = threshold_ns;
        loop->slow_fn = fn;
        loop->slow_data = data;
        loop->step_start = coarse_now();
        return 0;
}

/* At the end of t's step: counted by its duration, and was it too long? */
static void step_check(evt_task *t) {
        evt_loop *l = t->loop;
        int64_t held, bound = EVT_MSEC(1);
        size_t i = 0;

        if (l->slow_ns == 0)
                return;
        held = coarse_now() - l->step_start;
        while (i < EVT_STEP_BUCKETS && held >= bound) {
                i++;
                bound *= 10;
        }
        l->steps[i]++;
        l->steps_ns += held;
        if (held >= l->slow_ns)
                l->slow_fn(t, held, l->slow_data);
}

/* ---- rounds ------------------------------------------------------------ */

/* Asks the cache for the next task of the round while this one runs: its
 * record, and the stack it resumes on. A cancel that wakes many parked
 * tasks at once finds each one cold, record and page of stack, and waits
 * on one miss after another; fetched a task ahead, the misses overlap
 * with this task's work (docs/BENCHMARKS.md, W3 cancel).
 * Always inlined: GCC takes a function that only loads and prefetches for
 * a pure one, and drops the call. */
static inline __attribute__((always_inline)) void round_prefetch(const evt_loop *l) {
        const evt__list *n = l->round.next;
        const evt_task *t;

        if (n == &l->round)
                return;
        t = evt__container_of(n, evt_task, queue_link);
        for (size_t i = 0; i < sizeof(*t); i += 64)
                __builtin_prefetch((const char *) t + i);
        if (t->stack)
                evt__coro_prefetch(&t->coro);
}

/* A long round is cut: libev polls at least every ROUNDS_WITHOUT_POLL
 * while tasks are ready, even in a round of 100,000 new tasks, so timers,
 * I/O and signals are served on time. The clock is read every CUT_CHECK
 * tasks the round takes (a first step counts NEW_TASK_WEIGHT). */
#define ROUNDS_WITHOUT_POLL EVT_USEC(50)
#define CUT_CHECK 64
#define NEW_TASK_WEIGHT 8

static bool round_cut_due(evt_loop *l) {
        if (evt_time_now() - l->run_start < ROUNDS_WITHOUT_POLL) {
                l->cut_check = CUT_CHECK;
                return false;
        }
        /* Due again at the next check: run_cb's call to round_next, which
         * reads the clock once more and ends the round there. */
        l->cut_check = 1;
        return true;
}

/* The task after n in the round, if it has not started; else NULL. */
static evt_task *round_new_after(const evt_loop *l, const evt__list *n) {
        evt_task *t;

        if (n->next == &l->round)
                return NULL;
        t = evt__container_of(n->next, evt_task, queue_link);
        return t->state == EVT__TASK_NEW ? t : NULL;
}

/* The next task of the round, made ready to run: held tasks go to the held
 * list, a task cancelled before it started ends without running, and a new
 * task gets its stack now (a task that never ran holds none, so spawning
 * many costs little until they run). NULL once the round is over, or cut. */
static evt_task *round_next(evt_loop *l) {
        while (!evt__list_empty(&l->round)) {
                evt__list *n = l->round.next;
                evt_task *t;
                int r;

                if (--l->cut_check == 0 && round_cut_due(l)) {
                        /* Each poll interval starts at least one task that
                         * waits for its first step, whatever the poll put
                         * ahead of it: a burst of wake-ups cannot starve
                         * the tasks not yet started. */
                        if (l->birth_started || !l->first_new)
                                return NULL;
                        n = &l->first_new->queue_link;
                }
                if (l->first_new && n == &l->first_new->queue_link)
                        l->first_new = round_new_after(l, n);
                evt__list_remove(n);
                t = evt__container_of(n, evt_task, queue_link);

                /* The gate is checked here and not only at enqueue: a task
                 * running in this round may have paused the loop. */
                if (gate_holds(l, t)) {
                        t->held = true;
                        evt__list_push_back(&l->held, n);
                        continue;
                }
                if (t->state == EVT__TASK_NEW) {
                        if (evt__cancel_deliverable(t)) {
                                /* Cancelled before it started: it never runs. */
                                task_end_unrun(t, -ECANCELED);
                                continue;
                        }
                        /* A first step costs a stack, maybe a fresh one:
                         * microseconds, where a switch costs nanoseconds.
                         * It counts for NEW_TASK_WEIGHT towards the cut. */
                        l->cut_check = l->cut_check > NEW_TASK_WEIGHT ? l->cut_check - NEW_TASK_WEIGHT + 1 : 1;
                        l->birth_started = true;
                        r = evt__stack_get(&l->stacks, t->stack_size, &t->stack);
                        if (r < 0) {
                                task_end_unrun(t, r);
                                continue;
                        }
                        evt__coro_init(&t->coro, t->stack, task_main, t);
                }
                t->state = EVT__TASK_RUNNING;
                round_prefetch(l);
                l->switches++;
                if (l->slow_ns)
                        l->step_start = coarse_now();
                return t;
        }
        return NULL;
}

/* Leaves the running task for the next one of the round (one switch, not
 * two through the scheduler), or for the scheduler at the round's end. */
static void switch_next(evt_loop *l, evt__coro *from, bool final) {
        evt_task *next;
        evt__coro *to;

        /* An eager first step ends at the task's first wait or its end:
         * back to the spawner, in the middle of evt_task_spawn. */
        if (l->eager && from == &l->eager->coro) {
                next = l->eager_spawner;
                to = l->eager_back;
        } else {
                next = round_next(l);
                to = next ? &next->coro : &l->main;
        }

        current = next;
        if (final)
                evt__coro_switch_final(from, to);
        evt__coro_switch(from, to);
}

static void task_main(void *arg) {
        evt_task *t = arg;
        evt_loop *l = t->loop;
        int result;

        release_dead(l);
        result = t->fn(t->arg);
        if (!evt__stack_intact(t->stack))
                evt__overflow_abort(t);
        step_check(t);
        task_end(t, result);
        l->dead = t;
        switch_next(l, &t->coro, true);
}

/* After a cut: the first task of the rest of the round that has not
 * started, if one is among the next CUT_CHECK; else NULL. */
static evt_task *round_first_new(evt_loop *l) {
        evt__list *n;
        unsigned k = 0;

        evt__list_for_each(n, &l->round) {
                evt_task *t = evt__container_of(n, evt_task, queue_link);

                if (t->state == EVT__TASK_NEW)
                        return t;
                if (++k == CUT_CHECK)
                        break;
        }
        return NULL;
}

/* What became ready since a cut (by the poll: timers, I/O, signals; or by
 * the round's own tasks) goes ahead of the round's tasks that have not
 * started, so that a burst of spawns does not hold up the tasks already
 * running: that is what the cut is for. Tasks that have not started join
 * the end. Each kind keeps its order. The place (first_new) is kept from
 * one cut to the next; without such a task near the front, everything
 * joins the end, as without a cut. */
static void round_merge(evt_loop *l) {
        evt__list *n;

        if (!l->first_new)
                l->first_new = round_first_new(l);
        if (!l->first_new)
                return; /* run_cb appends it all */
        while ((n = evt__list_pop_front(&l->run))) {
                if (evt__container_of(n, evt_task, queue_link)->state == EVT__TASK_NEW)
                        evt__list_push_back(&l->round, n);
                else
                        evt__list_insert_before(&l->first_new->queue_link, n);
        }
}

static void run_cb(struct ev_loop *ev, ev_idle *w, int revents) {
        evt_loop *l = w->data;
        evt_task *t;

        (void) revents;

        /* libev timers armed in tasks (the caller's own) count from here. */
        ev_now_update(ev);
        l->run_start = evt_time_now();
        l->cut_check = CUT_CHECK;
        l->birth_started = false;

        /* The rest of a round that was cut: what became ready since joins
         * it, tasks that have run ahead of those that have not started. */
        if (!evt__list_empty(&l->round))
                round_merge(l);

        /* One round runs the tasks ready now; tasks that become ready during
         * the round run in the next. Each task hands the CPU to the next;
         * the last comes back here. Rounds follow each other for up to
         * ROUNDS_WITHOUT_POLL (a task that wakes another costs no system
         * call), and then libev polls. */
        for (;;) {
                evt__list_splice_back(&l->round, &l->run);
                while ((t = round_next(l))) {
                        current = t;
                        evt__coro_switch(&l->main, &t->coro);
                        current = NULL;
                        release_dead(l);
                }
                if (!evt__list_empty(&l->round))
                        break; /* cut: libev polls, then round_merge */
                if (evt__list_empty(&l->run))
                        break;
                if (evt_time_now() - l->run_start >= ROUNDS_WITHOUT_POLL)
                        break;
        }
        run_watcher_update(l);
}

/* EVT_TASK_EAGER: can t take its first step inside evt_task_spawn? Not
 * if it never would run now: cancelled (a cancelled group), or held by the
 * pause gate; nor from a task of another loop. */
static bool eager_now(const evt_loop *l, const evt_task *t) {
        return !(current && current->loop != l) && !gate_holds(l, t) && !evt__cancel_deliverable(t);
}

/* Runs t's first step now, on a stack from the pool: the one the last task
 * to end gave back, warm in the cache, if there is one. A task that ends
 * in it gives the stack back before evt_task_spawn returns, and never
 * enters the run queue; one that waits keeps it, as any task. */
static void eager_step(evt_loop *l, evt_task *t) {
        evt_task *spawner = current, *outer = l->eager, *outer_spawner = l->eager_spawner;
        evt__coro here, *back = spawner ? &spawner->coro : &here, *outer_back = l->eager_back;
        int64_t step_start = l->step_start;
        int r;

        r = evt__stack_get(&l->stacks, t->stack_size, &t->stack);
        if (r < 0) {
                task_end_unrun(t, r);
                return;
        }
        evt__coro_init(&t->coro, t->stack, task_main, t);
        if (!spawner)
                evt__coro_init_main(&here);
        l->eager = t;
        l->eager_back = back;
        l->eager_spawner = spawner;
        t->state = EVT__TASK_RUNNING;
        l->switches++;
        if (l->slow_ns)
                l->step_start = coarse_now();
        current = t;
        evt__coro_switch(back, &t->coro);
        current = spawner;
        l->eager = outer;
        l->eager_back = outer_back;
        l->eager_spawner = outer_spawner;
        l->step_start = step_start;
        release_dead(l);
}

int evt__task_spawn(evt_loop *loop, evt_task_fn fn, void *arg, const evt_task_opts *opts,
                    evt__taskset *set, evt_task **ret_task) {
        static const evt_task_opts defaults = { 0 };
        const char *name;
        size_t len;
        evt_task *t;

        if (!loop || !fn)
                return -EINVAL;
        if (!opts)
                opts = &defaults;
        if (opts->flags & ~(unsigned) (EVT_TASK_SHIELDED | EVT_TASK_NOPAUSE | EVT_TASK_EAGER))
                return -EINVAL;
        if (opts->stack_size != 0 && evt__stack_size_round(opts->stack_size) == 0)
                return -EINVAL;

        /* A default name is written when first asked for (evt_task_name):
         * most tasks are never asked. */
        name = opts->name ? opts->name : "";
        len = strlen(name);
        if (len <= DEFAULT_NAME_MAX)
                t = evt__cache_alloc(loop->task_cache);
        else
                t = malloc(sizeof(*t) + len + 1);
        if (!t)
                return -ENOMEM;

        /* Every field, one by one: cache memory is not zeroed, and a
         * compound literal would clear the whole record first. */
        t->loop = loop;
        t->stack = NULL;
        t->fn = fn;
        t->arg = arg;
        t->arg_free = opts->arg_free;
        t->id = ++loop->next_id;
        t->spawned_at = coarse_now();
        t->flags = opts->flags;
        t->stack_size = (unsigned) opts->stack_size; /* checked above */
        t->state = EVT__TASK_NEW;
        t->result = 0;
        t->wake_result = 0;
        t->refs = 1 + (ret_task != NULL); /* the running reference, and the caller's */
        t->shield_depth = 0;
        t->scope = NULL;
        t->cancelled = false;
        t->forced = false;
        t->held = false;
        t->suspended = false;
        t->in_cache = len <= DEFAULT_NAME_MAX;
        t->deadline = NULL;
        t->set = NULL;
        if (len)
                memcpy(t->name, name, len);
        t->name[len] = '\0';
        evt__list_init(&t->queue_link);
        evt__list_init(&t->wait_link);
        evt__list_init(&t->set_link);
        evt__list_init(&t->joiners);

        evt__list_push_back(&loop->tasks, &t->link);
        loop->n_tasks++;
        if (set) {
                t->set = set;
                evt__list_push_back(&set->tasks, &t->set_link);
                set->n_tasks++;
                /* Level-triggered, as for a task: a cancelled set's new
                 * members start cancelled (so never run, bar a shielded
                 * one). */
                if (set->cancelled) {
                        t->cancelled = true;
                        t->forced = (set->cancel_flags & EVT_CANCEL_FORCE) != 0;
                }
        }
        /* Before an eager step: the task may end in it, and the caller's
         * reference is what keeps it then. */
        if (ret_task)
                *ret_task = t;
        if ((opts->flags & EVT_TASK_EAGER) && eager_now(loop, t))
                eager_step(loop, t);
        else
                enqueue(loop, t);
        return 0;
}

int evt_task_spawn(evt_loop *loop, evt_task_fn fn, void *arg, const evt_task_opts *opts,
                   evt_task **ret_task) {
        return evt__task_spawn(loop, fn, arg, opts, NULL, ret_task);
}

/* ---- wait and wake ------------------------------------------------------- */

int evt__enter(evt_task **ret_task) {
        evt_task *t = current;
        int r;

        if (!t)
                return -EINVAL;
        r = evt__cancel_status(t);
        if (r < 0)
                return r;
        *ret_task = t;
        return 0;
}

/* Switches from the current task to the scheduler. errno is the task's own:
 * it lives on the task's stack while others run. */
static void suspend(evt_task *t) {
        int saved_errno = errno;

        if (!evt__stack_intact(t->stack))
                evt__overflow_abort(t);
        step_check(t);
        switch_next(t->loop, &t->coro, false);
        release_dead(t->loop);
        errno = saved_errno;
}

int evt__wait(evt_task *t, int64_t deadline) {
        evt__deadline d;
        int r;

        assert(t == current);

        /* Every wait honours the deadlines of the task's scopes. */
        if (t->scope) {
                int64_t at = evt__scope_deadline(t);

                if (at < deadline)
                        deadline = at;
        }
        /* The deadline lives in this frame, on the task's stack: few waits
         * have one, and every task record would otherwise carry it. */
        if (deadline != EVT__NEVER) {
                if (deadline <= evt_time_now()) {
                        r = evt__cancel_status(t);
                        return r < 0 ? r : -ETIMEDOUT;
                }
                d = (evt__deadline) { .at = deadline, .task = t };
                evt__list_init(&d.frozen_link);
                r = evt__deadline_add(t->loop, &d);
                if (r < 0)
                        return r;
                t->deadline = &d;
        }
        t->state = EVT__TASK_WAITING;
        t->wait_since = coarse_now();
        suspend(t);
        assert(!t->deadline || !evt__deadline_pending(t->deadline));
        t->deadline = NULL;
        /* Level-triggered: a cancel that came after the wake-up but before
         * the task ran again is delivered here too; and a scope's deadline
         * is told from the wait's own. */
        r = evt__cancel_status(t);
        return r < 0 ? r : t->wake_result;
}

void evt__wake(evt_task *t, int result) {
        if (t->state != EVT__TASK_WAITING)
                return;
        if (t->deadline && evt__deadline_pending(t->deadline))
                evt__deadline_remove(t->loop, t->deadline);
        t->wake_result = result;
        t->state = EVT__TASK_RUNNABLE;
        enqueue(t->loop, t);
}

int evt__wait_on(evt_task *t, evt__list *waiters, int64_t deadline) {
        int r;

        evt__list_push_back(waiters, &t->wait_link);
        r = evt__wait(t, deadline);
        /* A waker has already taken the node off the list; a deadline or a
         * cancel has not. The list itself may be gone by now (-EIDRM), which
         * is why removal needs only the node. */
        evt__list_remove(&t->wait_link);
        return r;
}

void evt__wake_all(evt__list *waiters, int result) {
        evt__list *n;

        while ((n = evt__list_pop_front(waiters)))
                evt__wake(evt__container_of(n, evt_task, wait_link), result);
}

int evt_yield(void) {
        evt_task *t;
        int r = evt__enter(&t);

        if (r < 0)
                return r;
        t->state = EVT__TASK_RUNNABLE;
        enqueue(t->loop, t);
        suspend(t);
        /* A cancel that came while the task stood in the queue is delivered
         * here, not at the next await point. */
        return evt__cancel_status(t);
}

/* ---- cancellation -------------------------------------------------------- */

int evt_task_cancel(evt_task *task, unsigned flags) {
        if (!task || (flags & ~(unsigned) EVT_CANCEL_FORCE))
                return -EINVAL;
        if (task->state == EVT__TASK_DONE)
                return 0;

        task->cancelled = true;
        if (flags & EVT_CANCEL_FORCE)
                task->forced = true;
        evt__cancel_notify(task);
        return 0;
}

void evt__cancel_notify(evt_task *t) {
        if (t->state == EVT__TASK_DONE || !evt__cancel_deliverable(t))
                return; /* shielded: delivered when the shield ends */
        if (t->state == EVT__TASK_WAITING)
                evt__wake(t, -ECANCELED);
        else
                unhold(t->loop, t);
}

/* ---- joining and inspecting tasks ---------------------------------------- */

int evt_task_join(evt_task *task, evt_deadline deadline, int *ret_result) {
        evt_task *t;
        int r;

        if (!task)
                return -EINVAL;
        r = evt__enter(&t);
        if (r < 0)
                return r;
        if (task == t)
                return -EDEADLK;
        if (task->state != EVT__TASK_DONE) {
                /* Another task may drop the last reference meanwhile. */
                evt_task_ref(task);
                evt__waits(t, "join", -1);
                t->waits_join = true;
                t->waits_task = task;
                r = evt__wait_on(t, &task->joiners, deadline.at);
                if (r == 0 && ret_result)
                        *ret_result = task->result;
                evt_task_unref(task);
                return r;
        }
        if (ret_result)
                *ret_result = task->result;
        return 0;
}

int evt_task_result(const evt_task *task, int *ret_result) {
        if (!task)
                return -EINVAL;
        if (task->state != EVT__TASK_DONE)
                return -EBUSY;
        if (ret_result)
                *ret_result = task->result;
        return 0;
}

evt_task *evt_task_current(void) {
        return current;
}

evt_task *evt__task_running(void) {
        return current;
}

const char *evt_task_name(const evt_task *task) {
        if (!task)
                return NULL;
        if (!task->name[0])
                snprintf((char *) task->name, DEFAULT_NAME_MAX + 1, "task-%llu", (unsigned long long) task->id);
        return task->name;
}

unsigned evt_task_flags(const evt_task *task) {
        return task ? task->flags : 0;
}

bool evt_task_is_cancelled(const evt_task *task) {
        return task && task->cancelled;
}

bool evt_task_is_done(const evt_task *task) {
        return task && task->state == EVT__TASK_DONE;
}

int64_t evt_task_age(const evt_task *task) {
        if (!task)
                return 0;
        return coarse_now() - task->spawned_at;
}

int evt_task_wait_info(const evt_task *task, evt_wait_info *ret) {
        if (!task || !ret)
                return -EINVAL;
        *ret = (evt_wait_info) { .arg = -1, .deadline = EVT_FOREVER };
        if (task->state != EVT__TASK_WAITING)
                return 0;
        ret->what = task->waits_on ? task->waits_on : "other";
        ret->arg = task->waits_join ? -1 : task->waits_arg;
        ret->task = task->waits_join ? evt_task_name(task->waits_task) : NULL;
        ret->since = task->wait_since;
        if (task->deadline)
                ret->deadline = evt_deadline_at(task->deadline->at);
        return 0;
}

int evt_task_backtrace(const evt_task *task, void **pcs, size_t n) {
        if (!task || !pcs)
                return -EINVAL;
        if (task == current)
                return -EBUSY;
        /* A stack from the first run to the end; a context saved on it
         * whenever the task is not the running one. */
        if (!task->stack || task->state == EVT__TASK_NEW || task->state == EVT__TASK_DONE)
                return -ESRCH;
        return evt__coro_backtrace(&task->coro, task->stack->lo, task->stack->size, pcs, n);
}

const char *evt_task_state_name(const evt_task *task) {
        if (!task)
                return NULL;
        switch (task->state) {
        case EVT__TASK_NEW:
                return "new";
        case EVT__TASK_RUNNABLE:
                return task->held ? "held" : "ready";
        case EVT__TASK_RUNNING:
                return "running";
        case EVT__TASK_WAITING:
                return "waiting";
        case EVT__TASK_DONE:
                return "done";
        }
        return "unknown";
}

int evt_loop_foreach_task(evt_loop *loop, void (*fn)(evt_task *task, void *data), void *data) {
        evt__list *n, *next;

        if (!loop || !fn)
                return -EINVAL;
        /* Only the scheduler removes tasks from the list, when they end, and
         * that does not happen during this walk; next is read first anyway. */
        for (n = loop->tasks.next; n != &loop->tasks; n = next) {
                next = n->next;
                fn(evt__container_of(n, evt_task, link), data);
        }
        return 0;
}

/* ---- task sets ----------------------------------------------------------- */

void evt__taskset_init(evt__taskset *s) {
        evt__list_init(&s->tasks);
        evt__list_init(&s->waiters);
        s->n_tasks = 0;
        s->end_cb = NULL;
        s->cancelled = false;
        s->cancel_flags = 0;
}

void evt__taskset_done(evt__taskset *s) {
        evt__list *n;

        while ((n = evt__list_pop_front(&s->tasks)))
                evt__container_of(n, evt_task, set_link)->set = NULL;
        s->n_tasks = 0;
        evt__wake_all(&s->waiters, -EIDRM);
}

/* ---- loops --------------------------------------------------------------- */

int evt_loop_new(struct ev_loop *ev, const evt_loop_opts *opts, evt_loop **ret_loop) {
        static const evt_loop_opts defaults = { 0 };
        size_t stack_size;
        evt_loop *l;

        if (!ret_loop)
                return -EINVAL;
        if (!opts)
                opts = &defaults;
        stack_size = opts->stack_size ? opts->stack_size : DEFAULT_STACK_SIZE;
#if EVT__ASAN
        /* ASan's redzones make frames several times larger. */
        if (!opts->stack_size)
                stack_size *= 4;
#endif
        if (evt__stack_size_round(stack_size) == 0)
                return -EINVAL;
        if (!ev) {
                /* libev aborts if the default loop cannot have its two
                 * descriptors (the backend's and its signal pipe's). */
                int r = ev_default_loop_uc_() ? 0 : evt__fds_check(2);

                if (r < 0)
                        return r;
                ev = ev_default_loop(0);
                if (!ev)
                        return -ENOMEM;
        }

        l = calloc(1, sizeof(*l));
        /* An overflow into a guard page faults: the handler names the task. */
        if (!l || evt__overflow_catch_start() < 0) {
                free(l);
                return -ENOMEM;
        }
        l->task_cache = evt__cache_new(sizeof(evt_task) + DEFAULT_NAME_MAX + 1,
                                       _Alignof(evt_task) > 8 ? 16 : 8);
        if (!l->task_cache) {
                evt__overflow_catch_stop();
                free(l);
                return -ENOMEM;
        }
        l->ev = ev;
        evt__coro_init_main(&l->main);
        evt__deadlines_init(l);
        l->deadlines.pause_stops = opts->pause_stops_deadlines;
        evt__stack_pool_init(&l->stacks, stack_size,
                             opts->stack_pool_max ? opts->stack_pool_max : DEFAULT_STACK_POOL_MAX);
        evt__list_init(&l->run);
        evt__list_init(&l->round);
        evt__list_init(&l->held);
        evt__list_init(&l->tasks);
        evt__list_init(&l->observers);
        evt__list_init(&l->pools);
        ev_idle_init(&l->run_watcher, run_cb);
        ev_set_priority(&l->run_watcher, EV_MAXPRI);
        l->run_watcher.data = l;
        ev_idle_init(&l->trim_watcher, trim_cb);
        ev_set_priority(&l->trim_watcher, EV_MINPRI);
        l->trim_watcher.data = l;

        *ret_loop = l;
        return 0;
}

void evt_loop_free(evt_loop *loop) {
        evt__list *n;

        if (!loop)
                return;
        assert(!current);

        /* Tasks' watchers and waiter nodes live on their stacks: every task
         * has to run to its end before the loop can go. A forced cancel makes
         * every await point fail, so each one ends promptly. */
        evt_loop_resume(loop); /* gives back the pause's reference on libev */
        while (loop->n_tasks > 0) {
                /* Again each time: cleanup code may have spawned tasks. */
                evt__list_for_each(n, &loop->tasks)
                        evt_task_cancel(evt__container_of(n, evt_task, link), EVT_CANCEL_FORCE);
                ev_run(loop->ev, EVRUN_ONCE);
        }
        /* Each removes itself. */
        while (!evt__list_empty(&loop->observers)) {
                evt__loop_observer *o = evt__container_of(loop->observers.next, evt__loop_observer, link);

                o->free_cb(o);
                assert(loop->observers.next != &o->link);
        }
        assert(evt__list_empty(&loop->pools));

        assert(loop->n_watchers == 0);
        if (ev_is_active(&loop->trim_watcher)) {
                ev_ref(loop->ev);
                ev_idle_stop(loop->ev, &loop->trim_watcher);
        }
        evt__deadlines_done(loop);
        evt__stack_pool_done(&loop->stacks);
        /* Records the caller still holds keep it until they go. */
        evt__cache_release(loop->task_cache);
        evt__overflow_catch_stop();
        free(loop);
}

int evt_loop_run(evt_loop *loop) {
        if (!loop || current)
                return -EINVAL;
        if (loop->n_tasks == 0)
                return 0;
        loop->run_depth++;
        ev_run(loop->ev, 0);
        loop->run_depth--;
        /* Done: what the idle trim had no time for is given back now. */
        while (evt__stack_pool_trim(&loop->stacks, UINT_MAX))
                ;
        return loop->n_tasks == 0 ? 0 : -EDEADLK;
}

struct ev_loop *evt_loop_ev(evt_loop *loop) {
        return loop ? loop->ev : NULL;
}
