/* Task groups: tasks waited for and cancelled together. */
#include <errno.h>
#include <stdlib.h>

#include "scheduler.h"

struct evt_group {
        evt_loop *loop;
        evt__taskset set;
};

int evt_group_new(evt_loop *loop, evt_group **ret_group) {
        evt_group *g;

        if (!loop || !ret_group)
                return -EINVAL;
        g = calloc(1, sizeof(*g));
        if (!g)
                return -ENOMEM;
        g->loop = loop;
        evt__taskset_init(&g->set);
        *ret_group = g;
        return 0;
}

void evt_group_free(evt_group *group) {
        if (!group)
                return;
        evt__taskset_done(&group->set);
        free(group);
}

int evt_group_spawn(evt_group *group, evt_task_fn fn, void *arg, const evt_task_opts *opts,
                    evt_task **ret_task) {
        if (!group)
                return -EINVAL;
        return evt__task_spawn(group->loop, fn, arg, opts, &group->set, ret_task);
}

int evt_group_wait(evt_group *group, int64_t deadline) {
        evt_task *t;
        int r;

        if (!group)
                return -EINVAL;
        r = evt__enter(&t);
        if (r < 0)
                return r;
        if (group->loop != t->loop)
                return -EINVAL;
        /* A member would wait for its own end: as evt_task_join of itself. */
        if (t->set == &group->set)
                return -EDEADLK;
        if (group->set.n_tasks == 0)
                return 0;
        return evt__wait_on(t, &group->set.waiters, deadline);
}

int evt_group_cancel(evt_group *group, unsigned flags) {
        evt__list *n;

        if (!group || (flags & ~(unsigned) EVT_CANCEL_FORCE))
                return -EINVAL;
        /* Cancelling only wakes tasks; none leaves the set during this walk. */
        evt__list_for_each(n, &group->set.tasks)
                evt_task_cancel(evt__container_of(n, evt_task, set_link), flags);
        return 0;
}

size_t evt_group_size(const evt_group *group) {
        return group ? group->set.n_tasks : 0;
}
