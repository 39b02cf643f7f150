/* Task groups: tasks waited for and cancelled together, with the policies
 * that give them structure: fail-fast, results in completion order, and a
 * bound on the members running at once. */
#include <errno.h>
#include <stdlib.h>

#include "scheduler.h"

#define GROUP_FLAGS (EVT_GROUP_FAIL_FAST | EVT_GROUP_KEEP_DONE)

struct evt_group {
        evt_loop *loop;
        evt__taskset set;
        unsigned flags;         /* EVT_GROUP_* */
        size_t max_running;     /* 0: no bound */
        evt__permits room;      /* with max_running: one per free place */
        evt_task *failed;       /* fail-fast: the first failure (a reference) */
        evt__list done;         /* KEEP_DONE: ended members not yet taken
                                 * (set_link), a reference each */
        evt__list next_waiters; /* evt_group_next callers (evt__waiter) */
};

static void cancel_members(evt_group *g, unsigned flags) {
        evt__list *n;

        /* evt_group_cancel, or a fail-fast failure: later members start
         * cancelled too. */
        g->set.cancelled = true;
        g->set.cancel_flags |= flags;
        /* Cancelling only wakes tasks; none leaves the set during this walk. */
        evt__list_for_each(n, &g->set.tasks)
                evt_task_cancel(evt__container_of(n, evt_task, set_link), flags);
}

/* A failure, for fail-fast: a negative result, except the -ECANCELED of a
 * member that was cancelled (the group's own cancel, or any other). */
static bool is_failure(const evt_task *t) {
        return t->result < 0 && !(t->result == -ECANCELED && t->cancelled);
}

static void member_end_cb(evt__taskset *s, evt_task *t) {
        evt_group *g = evt__container_of(s, evt_group, set);

        if (g->max_running)
                evt__permits_release(&g->room);
        if ((g->flags & EVT_GROUP_FAIL_FAST) && !g->failed && is_failure(t)) {
                g->failed = evt_task_ref(t);
                cancel_members(g, 0);
        }
        if (g->flags & EVT_GROUP_KEEP_DONE) {
                evt__waiter *w = evt__waiter_next(&g->next_waiters);

                if (w) {
                        *(evt_task **) w->data = evt_task_ref(t);
                        evt__waiter_hand(w);
                } else {
                        evt__list_push_back(&g->done, &evt_task_ref(t)->set_link);
                }
                /* Nothing more will end: the rest wait in vain. */
                if (s->n_tasks == 0)
                        evt__waiters_wake_all(&g->next_waiters, -ENOENT);
        }
}

int evt_group_new_opts(evt_loop *loop, const evt_group_opts *opts, evt_group **ret_group) {
        static const evt_group_opts defaults = { 0 };
        evt_group *g;

        if (!loop || !ret_group)
                return -EINVAL;
        if (!opts)
                opts = &defaults;
        if (opts->flags & ~(unsigned) GROUP_FLAGS)
                return -EINVAL;
        g = calloc(1, sizeof(*g));
        if (!g)
                return -ENOMEM;
        g->loop = loop;
        g->flags = opts->flags;
        g->max_running = opts->max_running;
        g->room.n = opts->max_running;
        evt__list_init(&g->room.waiters);
        evt__list_init(&g->done);
        evt__list_init(&g->next_waiters);
        evt__taskset_init(&g->set);
        g->set.end_cb = member_end_cb;
        *ret_group = g;
        return 0;
}

int evt_group_new(evt_loop *loop, evt_group **ret_group) {
        return evt_group_new_opts(loop, NULL, ret_group);
}

void evt_group_free(evt_group *group) {
        evt__list *n;

        if (!group)
                return;
        evt__taskset_done(&group->set);
        evt__waiters_wake_all(&group->room.waiters, -EIDRM);
        evt__waiters_wake_all(&group->next_waiters, -EIDRM);
        while ((n = evt__list_pop_front(&group->done)))
                evt_task_unref(evt__container_of(n, evt_task, set_link));
        evt_task_unref(group->failed);
        free(group);
}

/* With max_running, a place for one more member: at once, or for a task
 * by waiting in line; outside a task, -EAGAIN. */
static int room_take(evt_group *g) {
        evt_task *t;
        int r;

        if (g->room.n > 0) {
                g->room.n--;
                return 0;
        }
        if (!evt_task_current())
                return -EAGAIN;
        r = evt__enter(&t);
        if (r < 0)
                return r;
        if (t->loop != g->loop)
                return -EINVAL;
        evt__waits(t, "group room", -1);
        return evt__permits_acquire(&g->room, t, EVT__NEVER);
}

int evt_group_spawn(evt_group *group, evt_task_fn fn, void *arg, const evt_task_opts *opts,
                    evt_task **ret_task) {
        evt_task *t;
        int r;

        if (!group || !fn)
                return -EINVAL;
        if (group->max_running) {
                r = room_take(group);
                if (r < 0)
                        return r; /* -EIDRM: the group is gone */
        }
        r = evt__task_spawn(group->loop, fn, arg, opts, &group->set, &t);
        if (r < 0) {
                if (group->max_running)
                        evt__permits_release(&group->room);
                return r;
        }
        if (ret_task)
                *ret_task = t;
        else
                evt_task_unref(t);
        return 0;
}

/* The entry of the group's await points: the calling task, of its loop. */
static int group_enter(evt_group *g, evt_task **ret_task) {
        return evt__enter_on(g, g ? g->loop : NULL, ret_task);
}

int evt_group_wait(evt_group *group, evt_deadline deadline) {
        evt_task *t;
        int r;

        r = group_enter(group, &t);
        if (r < 0)
                return r;
        /* A member would wait for its own end: as evt_task_join of itself. */
        if (t->set == &group->set)
                return -EDEADLK;
        if (group->set.n_tasks > 0) {
                evt__waits(t, "group", -1);
                r = evt__wait_on(t, &group->set.waiters, deadline.at);
                if (r < 0)
                        return r; /* -EIDRM: the group is gone */
        }
        return group->failed ? group->failed->result : 0;
}

int evt_group_next(evt_group *group, evt_deadline deadline, evt_task **ret_task) {
        evt_task *t, *got = NULL;
        evt__waiter w;
        evt__list *n;
        int r;

        if (!ret_task || (group && !(group->flags & EVT_GROUP_KEEP_DONE)))
                return -EINVAL;
        r = group_enter(group, &t);
        if (r < 0)
                return r;
        n = evt__list_pop_front(&group->done);
        if (n) {
                *ret_task = evt__container_of(n, evt_task, set_link);
                return 0;
        }
        if (group->set.n_tasks == 0)
                return -ENOENT;
        if (t->set == &group->set && group->set.n_tasks == 1)
                return -EDEADLK; /* only itself is left to end */
        evt__waits(t, "group", -1);
        r = evt__waiter_wait(&w, t, &group->next_waiters, &got, deadline.at);
        /* A task handed over is reported, even if a cancel came after. */
        if (!w.handed)
                return r;
        *ret_task = got;
        return 0;
}

int evt_group_cancel(evt_group *group, unsigned flags) {
        if (!group || (flags & ~(unsigned) EVT_CANCEL_FORCE))
                return -EINVAL;
        cancel_members(group, flags);
        return 0;
}

bool evt_group_is_cancelled(const evt_group *group) {
        return group && group->set.cancelled;
}

evt_task *evt_group_failed(const evt_group *group) {
        return group ? group->failed : NULL;
}

size_t evt_group_size(const evt_group *group) {
        return group ? group->set.n_tasks : 0;
}
