/* Layer 3, blocking calls: a bounded pool of worker threads.
 *
 * Two sides share a call's record:
 * - the loop side (the awaiting task, async_cb, evt_pool_free), on the
 *   loop's thread, which owns `struct evt_pool`;
 * - the worker that runs the call's function, which shares only the pool's
 *   core (its lock, queues and counters) and the record.
 *
 * A record's state changes under core->lock:
 *
 *   QUEUED --a worker takes it--> RUNNING --fn returns--> DONE (core->done)
 *
 * and a worker tells the loop of a DONE record with ev_async; also of a
 * record that has started running, if it has a run bound (core->started):
 * the awaiting task learns when its bound begins. The loop side
 * releases a record when the awaiting task has taken its result, or when the
 * task gave up on it: at once if it is QUEUED (it never runs) or DONE, else
 * when async_cb collects it ("orphaned": stop is set, nobody waits).
 *
 * evt_pool_free detaches the core: queued calls are dropped, and the records
 * of calls still running pass to their workers, which free them when the
 * function returns and then exit without touching the loop. The core lives
 * on until its last thread has left (a reference per thread), so a thread
 * that never returns costs its own memory and nothing else. */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "pool.h"
#include "scheduler.h"

#define DEFAULT_QUEUE_MAX 1024
#define THREADS_MAX 1024

enum call_state {
        CALL_QUEUED,            /* on core->queue */
        CALL_RUNNING,           /* its function runs on a worker */
        CALL_DONE,              /* returned; on core->done until collected */
};

struct pool_core;

struct evt_token {
        struct pool_core *core;
        atomic_bool stop;       /* set under core->lock, read anywhere */
        bool nopause;           /* made by an EVT_TASK_NOPAUSE task */
};

typedef struct call {
        evt_token token;        /* what fn gets */
        evt_blocking_fn fn;
        void *arg;
        void (*arg_free)(void *arg);
        int64_t run_timeout;    /* the run bound, from evt_call_opts */
        /* Under core->lock: */
        enum call_state state;
        evt__list core_link;    /* on core->queue, core->started or core->done */
        int64_t started_at;     /* when fn started; 0 while queued */
        int result;             /* fn's return value, once DONE */
        /* The loop side's, while the pool lives: */
        evt__list pool_link;    /* on pool->calls */
        evt_task *task;         /* the task that made it (a reference) */
        int64_t made_at;
        bool awaited;           /* the task is still waiting for it */
} call;

struct worker {
        evt__list link;         /* on core->workers until detached */
        pthread_t thread;
        struct pool_core *core;
        bool busy;              /* running a function (under core->lock) */
        bool detached;          /* abandoned: frees itself on exit */
};

struct pool_core {
        pthread_mutex_t lock;
        pthread_cond_t work;    /* workers wait here for a call */
        pthread_cond_t resume;  /* checkpoints wait here during a pause */
        atomic_uint refs;       /* one for the pool while attached, one per thread */
        atomic_bool paused;     /* written under lock, read by tokens */
        /* Under lock: */
        bool attached;          /* the pool lives: DONE calls go to `done` */
        struct ev_loop *ev;     /* where to send `async`, while attached */
        ev_async *async;
        evt__list queue;        /* QUEUED calls, oldest first */
        evt__list started;      /* RUNNING calls with a run bound that the
                                 * loop has not been told of */
        evt__list done;         /* DONE calls the loop has not collected */
        evt__list workers;      /* struct worker.link of joinable threads */
        unsigned max_threads;
        size_t n_threads;       /* alive */
        size_t idle;            /* waiting on `work`, or spinning for a call */
        bool spinning;          /* a worker spins in spin_for_call */
        atomic_size_t queued_hint; /* queued, for spinning workers */
        size_t queued;          /* length of queue */
        size_t running;
        uint64_t completed;
};

struct evt_pool {
        evt_loop *loop;
        evt__list loop_link;    /* on loop->pools until evt_pool_free has
                                 * released its calls */
        evt__loop_observer observer;
        struct pool_core *core;
        ev_async async;         /* a worker finished a call */
        evt__list calls;        /* call.pool_link: every record the loop holds */
        size_t n_calls;         /* length of calls; evt__pool_calls_in_flight
                                 * sums them over the loop's pools */
        size_t limit;           /* in flight at most: threads + queue_max */
        size_t n_awaited;       /* calls a task waits for */
        evt__list room_waiters; /* tasks waiting for n_calls < limit */
        bool holds_loop;        /* an ev_ref keeps libev running for waiters */
        unsigned refs;          /* evt_pool_free's, and one per evt_pool_call */
        bool gone;              /* evt_pool_free has run */
};

/* ---- the core, shared with the threads ----------------------------------- */

static void core_unref(struct pool_core *c) {
        if (atomic_fetch_sub(&c->refs, 1) != 1)
                return;
        pthread_cond_destroy(&c->resume);
        pthread_cond_destroy(&c->work);
        pthread_mutex_destroy(&c->lock);
        free(c);
}

/* The next call a worker may start: the oldest, or while paused the oldest
 * that pauses do not hold. Under lock. */
static call *next_call(struct pool_core *c) {
        evt__list *n;

        evt__list_for_each(n, &c->queue) {
                call *k = evt__container_of(n, call, core_link);

                if (!atomic_load(&c->paused) || k->token.nopause)
                        return k;
        }
        return NULL;
}

#define SPIN_NS 50000


/* A task that awaits calls one after another makes the next one a loop
 * wake-up after the last returned: a worker that went to sleep at once
 * would cost a second wake-up, dear on a virtual machine
 * (docs/BENCHMARKS.md, blocking calls). So one idle worker at a time
 * watches the queue for SPIN_NS first (not while paused: queued calls wait
 * for the resume then). It yields the CPU between looks, so the loop's
 * thread is never kept from running; measured with `evtask-bench call`,
 * that also makes the loop's own wake-up faster. Under lock; drops it
 * while spinning. True if there is a call to take. */
static bool spin_for_call(struct pool_core *c) {
        int64_t end;

        if (c->spinning || atomic_load(&c->paused))
                return false;
        c->spinning = true;
        pthread_mutex_unlock(&c->lock);
        end = evt_time_now() + SPIN_NS;
        while (atomic_load_explicit(&c->queued_hint, memory_order_relaxed) == 0 && evt_time_now() < end)
                sched_yield();
        pthread_mutex_lock(&c->lock);
        c->spinning = false;
        /* A call queued after the last look above found no waiter to
         * signal: look again, under lock. */
        return next_call(c) != NULL;
}

static void *worker_main(void *arg) {
        struct worker *w = arg;
        struct pool_core *c = w->core;
        bool detached;

        pthread_mutex_lock(&c->lock);
        for (;;) {
                call *k = next_call(c);
                int r;

                if (!k) {
                        if (!c->attached)
                                break;
                        c->idle++;
                        /* The pool may have gone during the spin: its
                         * broadcast is not waited for again. */
                        if (!spin_for_call(c) && c->attached)
                                pthread_cond_wait(&c->work, &c->lock);
                        c->idle--;
                        continue;
                }
                evt__list_remove(&k->core_link);
                c->queued--;
                atomic_store_explicit(&c->queued_hint, c->queued, memory_order_relaxed);
                c->running++;
                k->state = CALL_RUNNING;
                k->started_at = evt_time_now();
                if (k->run_timeout && c->attached) {
                        evt__list_push_back(&c->started, &k->core_link);
                        ev_async_send(c->ev, c->async);
                }
                w->busy = true;
                pthread_mutex_unlock(&c->lock);

                r = k->fn(&k->token, k->arg);
                if (k->arg_free)
                        k->arg_free(k->arg);

                pthread_mutex_lock(&c->lock);
                w->busy = false;
                c->running--;
                c->completed++;
                k->result = r;
                k->state = CALL_DONE;
                evt__list_remove(&k->core_link); /* off `started`, if there */
                if (c->attached) {
                        evt__list_push_back(&c->done, &k->core_link);
                        ev_async_send(c->ev, c->async);
                } else {
                        free(k); /* the pool went while it ran */
                }
        }
        c->n_threads--;
        detached = w->detached;
        pthread_mutex_unlock(&c->lock);
        if (detached)
                free(w);
        core_unref(c);
        return NULL;
}

/* Starts a worker, under lock. It starts with every signal blocked but
 * those a fault raises in the thread itself: the loop's thread handles the
 * process's signals (the self-pipe, signalfd). */
static int worker_start(struct pool_core *c) {
        static const int faults[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGSYS };
        sigset_t all, old;
        struct worker *w;
        int r;

        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        w->core = c;
        sigfillset(&all);
        for (size_t i = 0; i < sizeof(faults) / sizeof(faults[0]); i++)
                sigdelset(&all, faults[i]);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        atomic_fetch_add(&c->refs, 1);
        r = pthread_create(&w->thread, NULL, worker_main, w);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (r != 0) {
                atomic_fetch_sub(&c->refs, 1); /* the pool's own is still held */
                free(w);
                return -r;
        }
        evt__list_push_back(&c->workers, &w->link);
        c->n_threads++;
        return 0;
}

/* Sets a running call's stop flag, under lock, and wakes its checkpoint. */
static void call_stop(struct pool_core *c, call *k) {
        atomic_store(&k->token.stop, true);
        pthread_cond_broadcast(&c->resume);
}

/* ---- the loop side ------------------------------------------------------- */

/* While a task waits for a call or for room, the pool's ev_async must keep
 * libev running; otherwise it must not (an orphaned call that never ends
 * would keep evt_loop_run from returning). */
static void hold_update(evt_pool *p) {
        bool want = p->n_awaited > 0 || !evt__list_empty(&p->room_waiters);

        if (want == p->holds_loop)
                return;
        p->holds_loop = want;
        if (want)
                ev_ref(p->loop->ev);
        else
                ev_unref(p->loop->ev);
}

/* The loop side is done with a record that no worker holds. */
static void call_release(evt_pool *p, call *k) {
        evt__list_remove(&k->pool_link);
        p->n_calls--;
        if (k->state == CALL_QUEUED && k->arg_free)
                k->arg_free(k->arg); /* never ran */
        evt_task_unref(k->task);
        free(k);
        evt__wake_all(&p->room_waiters, 0);
}

/* What wakes a task whose call has started running under a run bound: it
 * waits again, with the bound's deadline. Not an errno, and not 0. */
#define WAKE_STARTED 1

/* Takes the calls whose function has returned from the workers, and tells
 * tasks whose call has started under a run bound. */
static void collect(evt_pool *p) {
        struct pool_core *c = p->core;
        evt__list done;
        evt__list *n;

        evt__list_init(&done);
        pthread_mutex_lock(&c->lock);
        evt__list_splice_back(&done, &c->done);
        /* Under lock: the worker takes a record off `started` when its
         * function returns. */
        while ((n = evt__list_pop_front(&c->started))) {
                call *k = evt__container_of(n, call, core_link);

                if (k->awaited)
                        evt__wake(k->task, WAKE_STARTED);
        }
        pthread_mutex_unlock(&c->lock);

        /* Collected records are DONE and off every core list: no worker
         * touches them again. The awaiting task takes its own. */
        while ((n = evt__list_pop_front(&done))) {
                call *k = evt__container_of(n, call, core_link);

                if (k->awaited)
                        evt__wake(k->task, 0);
                else
                        call_release(p, k);
        }
}

static void async_cb(struct ev_loop *ev, ev_async *w, int revents) {
        (void) ev;
        (void) revents;
        collect(w->data);
}

static void pause_cb(evt__loop_observer *o, bool paused) {
        evt_pool *p = evt__container_of(o, evt_pool, observer);
        struct pool_core *c = p->core;

        pthread_mutex_lock(&c->lock);
        atomic_store(&c->paused, paused);
        if (!paused) {
                pthread_cond_broadcast(&c->work);
                pthread_cond_broadcast(&c->resume);
        }
        pthread_mutex_unlock(&c->lock);
}

static void free_cb(evt__loop_observer *o) {
        evt_pool_free(evt__container_of(o, evt_pool, observer));
}

static evt_pool *pool_ref(evt_pool *p) {
        p->refs++;
        return p;
}

static void pool_unref(evt_pool *p) {
        if (--p->refs == 0)
                free(p);
}

int evt_pool_new(evt_loop *loop, const evt_pool_opts *opts, evt_pool **ret_pool) {
        static const evt_pool_opts defaults = { 0 };
        struct pool_core *c;
        unsigned threads;
        size_t queue_max;
        evt_pool *p;
        int r;

        if (!loop || !ret_pool)
                return -EINVAL;
        if (!opts)
                opts = &defaults;
        threads = opts->threads;
        if (threads == 0) {
                long cpus = sysconf(_SC_NPROCESSORS_ONLN);

                threads = cpus > 0 ? (unsigned) (cpus < THREADS_MAX ? cpus : THREADS_MAX) : 1;
        }
        if (threads > THREADS_MAX || opts->queue_max > SIZE_MAX / 2)
                return -EINVAL;
        queue_max = opts->queue_max ? opts->queue_max : DEFAULT_QUEUE_MAX;
        /* libev opens a loop's wake-up descriptor (an eventfd, else a pipe)
         * at the first ev_async_start on it, and aborts the process if it
         * cannot. Whether the loop has one already is libev's secret. */
        r = evt__fds_check(1);
        if (r < 0)
                return r;

        p = calloc(1, sizeof(*p));
        c = calloc(1, sizeof(*c));
        if (!p || !c) {
                free(p);
                free(c);
                return -ENOMEM;
        }
        pthread_mutex_init(&c->lock, NULL);
        pthread_cond_init(&c->work, NULL);
        pthread_cond_init(&c->resume, NULL);
        atomic_init(&c->refs, 1);
        atomic_init(&c->paused, loop->paused);
        c->attached = true;
        c->ev = loop->ev;
        c->async = &p->async;
        c->max_threads = threads;
        evt__list_init(&c->queue);
        evt__list_init(&c->started);
        evt__list_init(&c->done);
        evt__list_init(&c->workers);

        p->loop = loop;
        p->core = c;
        p->limit = threads + queue_max;
        p->refs = 1;
        evt__list_init(&p->calls);
        evt__list_init(&p->room_waiters);
        evt__list_push_back(&loop->pools, &p->loop_link);
        p->observer.pause_cb = pause_cb;
        p->observer.free_cb = free_cb;
        evt__loop_observer_add(loop, &p->observer);

        ev_async_init(&p->async, async_cb);
        p->async.data = p;
        ev_async_start(loop->ev, &p->async);
        ev_unref(loop->ev); /* see hold_update */
        evt__watcher_started(loop);

        *ret_pool = p;
        return 0;
}

void evt_pool_free(evt_pool *pool) {
        evt_pool *p = pool;
        struct pool_core *c;
        evt__list dropped, joinable;
        evt__list *n, *next;

        if (!p)
                return;
        assert(!p->gone);
        c = p->core;
        p->gone = true;
        evt__loop_observer_remove(&p->observer);
        evt__list_init(&dropped);
        evt__list_init(&joinable);
        evt__wake_all(&p->room_waiters, -EIDRM);

        pthread_mutex_lock(&c->lock);
        c->attached = false;
        /* Every record the loop holds: queued ones never run, and the loop
         * side lets go of running ones, which their workers free. */
        for (n = p->calls.next; n != &p->calls; n = next) {
                call *k = evt__container_of(n, call, pool_link);

                next = n->next;
                if (k->awaited) {
                        k->awaited = false;
                        p->n_awaited--;
                        evt__wake(k->task, -EIDRM);
                }
                switch (k->state) {
                case CALL_QUEUED:
                        evt__list_remove(&k->core_link);
                        c->queued--;
                        evt__list_remove(&k->pool_link);
                        evt__list_push_back(&dropped, &k->pool_link);
                        break;
                case CALL_RUNNING:
                        call_stop(c, k);
                        evt__list_remove(&k->core_link); /* off `started` */
                        evt__list_remove(&k->pool_link);
                        p->n_calls--;
                        evt_task_unref(k->task);
                        k->task = NULL;
                        break;
                case CALL_DONE:
                        evt__list_remove(&k->core_link); /* if not collected */
                        evt__list_remove(&k->pool_link);
                        evt__list_push_back(&dropped, &k->pool_link);
                        break;
                }
        }
        /* Idle threads are joined; busy ones are abandoned to their
         * function and free themselves. */
        for (n = c->workers.next; n != &c->workers; n = next) {
                struct worker *w = evt__container_of(n, struct worker, link);

                next = n->next;
                evt__list_remove(&w->link);
                if (w->busy) {
                        w->detached = true;
                        pthread_detach(w->thread);
                } else {
                        evt__list_push_back(&joinable, &w->link);
                }
        }
        pthread_cond_broadcast(&c->work);
        pthread_mutex_unlock(&c->lock);

        /* call_release wants them on p->calls, where they were. */
        while ((n = evt__list_pop_front(&dropped))) {
                evt__list_push_back(&p->calls, n);
                call_release(p, evt__container_of(n, call, pool_link));
        }
        while ((n = evt__list_pop_front(&joinable))) {
                struct worker *w = evt__container_of(n, struct worker, link);

                pthread_join(w->thread, NULL);
                free(w);
        }
        assert(p->n_calls == 0 && p->n_awaited == 0);
        /* Off the loop's list only now: a call counts as in flight until
         * it is released, and an arg_free above may ask for the count. */
        evt__list_remove(&p->loop_link);

        hold_update(p);
        ev_ref(p->loop->ev); /* undoes evt_pool_new's unref before the stop */
        ev_async_stop(p->loop->ev, &p->async);
        evt__watcher_stopped(p->loop);
        core_unref(c);
        pool_unref(p);
}

/* Queues k and makes sure a thread will take it, under lock. Fails only if
 * no thread exists and none can be started (pthread_create's error). */
static int submit(struct pool_core *c, call *k) {
        int r = 0;

        evt__list_push_back(&c->queue, &k->core_link);
        c->queued++;
        atomic_store_explicit(&c->queued_hint, c->queued, memory_order_relaxed);
        if (c->queued > c->idle && c->n_threads < c->max_threads) {
                r = worker_start(c);
                if (r < 0 && c->n_threads > 0)
                        r = 0; /* the threads there are will get to it */
        }
        if (r < 0) {
                evt__list_remove(&k->core_link);
                c->queued--;
                return r;
        }
        pthread_cond_signal(&c->work);
        return 0;
}

/* The awaiting task gives up on k (cancel, deadline) or takes its result:
 * returns what evt_pool_call returns, `r` being what the wait returned. */
static int call_finish(evt_pool *p, call *k, int r, int *ret_result) {
        struct pool_core *c = p->core;

        k->awaited = false;
        p->n_awaited--;
        pthread_mutex_lock(&c->lock);
        switch (k->state) {
        case CALL_DONE:
                /* Returned: the result counts, even if a cancel came after. */
                evt__list_remove(&k->core_link); /* if not collected yet */
                pthread_mutex_unlock(&c->lock);
                if (ret_result)
                        *ret_result = k->result;
                call_release(p, k);
                return 0;
        case CALL_QUEUED:
                /* Never started: it never will. */
                evt__list_remove(&k->core_link);
                c->queued--;
                pthread_mutex_unlock(&c->lock);
                call_release(p, k);
                return r;
        case CALL_RUNNING:
                /* Orphaned: async_cb releases it when fn returns. */
                evt__list_remove(&k->core_link); /* off `started`, if there */
                call_stop(c, k);
                pthread_mutex_unlock(&c->lock);
                return r;
        }
        pthread_mutex_unlock(&c->lock);
        return r;
}

/* The awaiting task's wait for k: until the deadline, and once a thread
 * has taken k, until its run bound too. What evt__wait returns. */
static int await_call(evt_pool *p, call *k, int64_t deadline) {
        int64_t until = deadline;
        int r;

        evt__waits(k->task, "pool call", -1);
        while ((r = evt__wait(k->task, until)) == WAKE_STARTED && !p->gone) {
                bool done;

                pthread_mutex_lock(&p->core->lock);
                done = k->state == CALL_DONE; /* its collect found us awake */
                if (k->started_at < INT64_MAX - k->run_timeout && k->started_at + k->run_timeout < until)
                        until = k->started_at + k->run_timeout;
                pthread_mutex_unlock(&p->core->lock);
                if (done)
                        return 0;
        }
        return r;
}

int evt_pool_call(evt_pool *pool, evt_blocking_fn fn, void *arg, const evt_call_opts *opts,
                  evt_deadline deadline, int *ret_result) {
        static const evt_call_opts defaults = { 0 };
        evt_pool *p = pool;
        evt_task *t;
        call *k;
        int r;

        if (!p || !fn || p->gone)
                return -EINVAL;
        if (!opts)
                opts = &defaults;
        if ((opts->flags & ~(unsigned) EVT_CALL_NOWAIT) || opts->run_timeout < 0)
                return -EINVAL;
        t = evt_task_current();
        if (!t || t->loop != p->loop)
                return -EINVAL;
        r = evt__enter(&t);
        if (r == 0 && p->n_calls >= p->limit && (opts->flags & EVT_CALL_NOWAIT))
                return -EAGAIN;

        /* From here on, arg is the pool's (opts->arg_free). */
        pool_ref(p);
        while (r == 0 && p->n_calls >= p->limit) {
                evt__list_push_back(&p->room_waiters, &t->wait_link);
                hold_update(p);
                evt__waits(t, "pool room", -1);
                r = evt__wait(t, deadline.at);
                evt__list_remove(&t->wait_link);
                if (p->gone)
                        r = -EIDRM;
                else
                        hold_update(p);
        }
        if (r == 0 && !evt_deadline_is_forever(deadline) && deadline.at <= evt_time_now())
                r = -ETIMEDOUT;
        if (r < 0)
                goto out;

        k = calloc(1, sizeof(*k));
        if (!k) {
                r = -ENOMEM;
                goto out;
        }
        k->token.core = p->core;
        atomic_init(&k->token.stop, false);
        k->token.nopause = t->flags & EVT_TASK_NOPAUSE;
        k->fn = fn;
        k->arg = arg;
        k->arg_free = opts->arg_free;
        k->run_timeout = opts->run_timeout;
        k->state = CALL_QUEUED;
        k->task = evt_task_ref(t);
        k->made_at = evt_time_now();
        evt__list_init(&k->core_link);

        pthread_mutex_lock(&p->core->lock);
        r = submit(p->core, k);
        pthread_mutex_unlock(&p->core->lock);
        if (r < 0) {
                /* No thread to run it: like a full queue, this takes
                 * nothing, not even arg. */
                evt_task_unref(t);
                free(k);
                pool_unref(p);
                return -EAGAIN;
        }
        arg = NULL; /* the record has it now */
        evt__list_push_back(&p->calls, &k->pool_link);
        p->n_calls++;
        k->awaited = true;
        p->n_awaited++;
        hold_update(p);

        r = await_call(p, k, deadline.at);
        if (p->gone) {
                r = -EIDRM; /* evt_pool_free has dealt with the record */
        } else {
                r = call_finish(p, k, r, ret_result);
                hold_update(p);
        }
out:
        if (arg && opts->arg_free)
                opts->arg_free(arg);
        pool_unref(p);
        return r;
}

int evt_pool_stats_get(evt_pool *pool, evt_pool_stats *ret_stats) {
        struct pool_core *c;

        if (!pool || !ret_stats || pool->gone)
                return -EINVAL;
        c = pool->core;
        pthread_mutex_lock(&c->lock);
        *ret_stats = (evt_pool_stats) {
                .threads = c->n_threads,
                .idle = c->idle,
                .queued = c->queued,
                .running = c->running,
                .calls = pool->n_calls,
                .completed = c->completed,
        };
        /* The queue is in call order: its head has waited longest. */
        if (!evt__list_empty(&c->queue)) {
                int64_t waited = evt_time_now() - evt__container_of(c->queue.next, call, core_link)->made_at;

                ret_stats->oldest_queued = waited > 0 ? waited : 1;
        }
        pthread_mutex_unlock(&c->lock);
        return 0;
}

/* ---- tokens, on the worker's thread --------------------------------------- */

bool evt_token_stop_requested(const evt_token *token) {
        return token && atomic_load(&token->stop);
}

bool evt_token_is_paused(const evt_token *token) {
        return token && !token->nopause && atomic_load(&token->core->paused);
}

int evt_token_checkpoint(evt_token *token) {
        struct pool_core *c;

        if (!token)
                return -EINVAL;
        if (atomic_load(&token->stop))
                return -ECANCELED;
        if (!evt_token_is_paused(token))
                return 0;
        c = token->core;
        pthread_mutex_lock(&c->lock);
        while (!atomic_load(&token->stop) && atomic_load(&c->paused))
                pthread_cond_wait(&c->resume, &c->lock);
        pthread_mutex_unlock(&c->lock);
        return atomic_load(&token->stop) ? -ECANCELED : 0;
}

/* ---- status -------------------------------------------------------------- */

size_t evt__pool_calls_in_flight(const evt_loop *loop) {
        const evt__list *n;
        size_t calls = 0;

        evt__list_for_each(n, &loop->pools)
                calls += evt__container_of(n, evt_pool, loop_link)->n_calls;
        return calls;
}

int evt_loop_foreach_call(evt_loop *loop, void (*fn)(const evt_call_info *info, void *data),
                          void *data) {
        int64_t now;
        evt__list *pn, *n;

        if (!loop || !fn)
                return -EINVAL;
        evt__list_for_each(pn, &loop->pools) {
                evt_pool *p = evt__container_of(pn, evt_pool, loop_link);

                if (p->gone)
                        continue; /* in evt_pool_free, its calls are dropped */
                /* Calls that have returned are not in flight any more, even
                 * if their completion has not reached the loop yet. */
                collect(p);
                now = evt_time_now();
                evt__list_for_each(n, &p->calls) {
                        call *k = evt__container_of(n, call, pool_link);
                        evt_call_info info = {
                                .task = evt_task_name(k->task),
                                .age = now - k->made_at,
                                .awaited = k->awaited,
                        };

                        pthread_mutex_lock(&p->core->lock);
                        if (k->started_at)
                                info.running = now > k->started_at ? now - k->started_at : 1;
                        info.stop_requested = atomic_load(&k->token.stop);
                        pthread_mutex_unlock(&p->core->lock);
                        fn(&info, data);
                }
        }
        return 0;
}
