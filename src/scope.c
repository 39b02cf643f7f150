/* Layer 2, cancel scopes (trio's model): regions of a task with a deadline
 * of their own, that can be cancelled as a unit, and shields.
 *
 * A task's scopes form a stack, innermost first (evt_task.scope). Shields
 * opened with evt_shield_push nest among them: each scope notes the task's
 * shield depth at its push, so a shield opened after a scope hides that
 * scope, and everything outside it, from the code within. What an await
 * point sees (evt__cancel_check) comes from a walk outward from the
 * innermost scope, stopped by the first shield: of the scopes it reaches
 * that are cancelled (explicitly, or their deadline has passed), and the
 * task's own cancel past the last scope, the outermost decides. A forced cancel pierces all of it. The
 * deadline of a wait is the earliest of its own and those the same walk
 * reaches (evt__scope_deadline), so every await point honours them. */
#include <errno.h>
#include <stdlib.h>

#include "scheduler.h"

#define SCOPE_FLAGS (EVT_SCOPE_SHIELD | EVT_SCOPE_FAIL)

/* Is s cancelled, and with what error? Its deadline counts from the
 * moment it passes; an explicit cancel wins over it. */
static int scope_error(const evt_scope *s, int64_t *now) {
        if (s->cancel_called)
                return -ECANCELED;
        if (s->deadline == EVT__NEVER)
                return 0;
        if (*now == 0)
                *now = evt_time_now();
        if (*now < s->deadline)
                return 0;
        return (s->flags & EVT_SCOPE_FAIL) ? -ETIMEDOUT : -ECANCELED;
}

int evt__scope_check(const evt_task *t, evt_scope **ret_owner) {
        unsigned depth = t->shield_depth;
        int64_t now = 0;
        int r = 0;

        /* Of the cancelled scopes the walk reaches, the outermost wins, as
         * in trio: the code unwinds to it anyway. */
        *ret_owner = NULL;
        for (evt_scope *s = t->scope; s; s = s->parent) {
                int e;

                if (depth > s->shield_base)
                        return r; /* a shield opened inside s */
                e = scope_error(s, &now);
                if (e < 0) {
                        *ret_owner = s;
                        r = e;
                }
                if (s->flags & EVT_SCOPE_SHIELD)
                        return r;
                depth = s->shield_base;
        }
        if (depth > 0 || (t->flags & EVT_TASK_SHIELDED) || !t->cancelled)
                return r;
        *ret_owner = NULL; /* the task's own cancel is the outermost */
        return -ECANCELED;
}

int evt__scope_status(evt_task *t) {
        evt_scope *owner;
        int r;

        if (t->forced)
                return -ECANCELED;
        r = evt__scope_check(t, &owner);
        if (owner)
                owner->caught = r;
        return r;
}

int64_t evt__scope_deadline(const evt_task *t) {
        unsigned depth = t->shield_depth;
        int64_t at = EVT__NEVER;

        for (evt_scope *s = t->scope; s && depth <= s->shield_base; s = s->parent) {
                if (s->deadline < at)
                        at = s->deadline;
                if (s->flags & EVT_SCOPE_SHIELD)
                        break;
                depth = s->shield_base;
        }
        return at;
}

void evt__scopes_drop(evt_task *t) {
        while (t->scope) {
                evt_scope *s = t->scope;

                t->scope = s->parent;
                free(s);
        }
}

/* ---- the interface ------------------------------------------------------ */

int evt_scope_push(evt_deadline deadline, unsigned flags, evt_scope **ret_scope) {
        evt_task *t = evt_task_current();
        evt_scope *s;

        if (!t || !ret_scope || (flags & ~(unsigned) SCOPE_FLAGS))
                return -EINVAL;
        s = malloc(sizeof(*s));
        if (!s)
                return -ENOMEM;
        *s = (evt_scope) {
                .task = t,
                .parent = t->scope,
                .deadline = deadline.at,
                .flags = flags,
                .shield_base = t->shield_depth,
        };
        t->scope = s;
        *ret_scope = s;
        return 0;
}

int evt_move_on_at(evt_deadline deadline, evt_scope **ret_scope) {
        return evt_scope_push(deadline, 0, ret_scope);
}

int evt_move_on_after(int64_t ns, evt_scope **ret_scope) {
        return evt_scope_push(evt_deadline_in(ns), 0, ret_scope);
}

int evt_fail_at(evt_deadline deadline, evt_scope **ret_scope) {
        return evt_scope_push(deadline, EVT_SCOPE_FAIL, ret_scope);
}

int evt_fail_after(int64_t ns, evt_scope **ret_scope) {
        return evt_scope_push(evt_deadline_in(ns), EVT_SCOPE_FAIL, ret_scope);
}

int evt_scope_pop(evt_scope *scope, bool *ret_caught) {
        evt_task *t = evt_task_current();
        int caught, r;

        /* Only the innermost, and not across a shield opened inside it. */
        if (!scope || !t || t->scope != scope || t->shield_depth != scope->shield_base)
                return -EINVAL;
        t->scope = scope->parent;
        caught = scope->caught;
        free(scope);
        if (ret_caught)
                *ret_caught = caught != 0;
        /* A cancel from outside is delivered at the scope's end. */
        r = evt__cancel_status(t);
        if (r < 0)
                return r;
        return caught == -ETIMEDOUT ? -ETIMEDOUT : 0;
}

int evt_scope_cancel(evt_scope *scope) {
        int64_t now = 0;

        if (!scope)
                return -EINVAL;
        /* Cancelled already: by its deadline, that stays the cause (a fail
         * scope keeps failing with -ETIMEDOUT), as in trio. */
        if (scope_error(scope, &now) < 0)
                return 0;
        scope->cancel_called = true;
        evt__cancel_notify(scope->task);
        return 0;
}

bool evt_scope_cancel_called(const evt_scope *scope) {
        int64_t now = 0;

        return scope && scope_error(scope, &now) < 0;
}

evt_deadline evt_scope_deadline(const evt_scope *scope) {
        return scope ? evt_deadline_at(scope->deadline) : EVT_FOREVER;
}

evt_deadline evt_current_deadline(void) {
        evt_task *t = evt_task_current();

        if (!t)
                return EVT_FOREVER;
        /* Cancelled: every wait fails at once, as if its deadline had
         * passed (trio's current_effective_deadline gives -inf). */
        if (evt__cancel_deliverable(t))
                return EVT_NOW;
        return evt_deadline_at(evt__scope_deadline(t));
}
