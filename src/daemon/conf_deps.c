/* The rule of the whole file for the order between tasks: every name in
 * `after` and `requires` is a task of the config, and no task waits for
 * itself through them (a cycle would start none of its tasks). A cycle is
 * named in full, at the key that closes it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

/* The keys that order tasks, as X(field). */
#define ORDER_KEYS(X) X(after) X(requires)

enum mark { UNSEEN, ON_PATH, DONE };

struct walk {
        const evd_config *c;
        evd_conf_error *e;
        unsigned char *mark;    /* enum mark, per task */
        size_t *path;           /* the tasks from the walk's root */
        size_t depth;
};

static size_t task_index(const evd_config *c, const char *name) {
        return (size_t) (evd_config_find_task(c, name) - c->tasks);
}

/* "a -> b -> a": the path from `to` on, and `to` again. */
static int fail_cycle(struct walk *w, size_t from, enum evd_task_key key, size_t to) {
        const evd_config *c = w->c;
        char text[512];
        size_t len = 0, i = w->depth;

        while (i > 0 && w->path[i - 1] != to)
                i--;
        for (i = i ? i - 1 : 0; i < w->depth && len < sizeof(text); i++)
                len += (size_t) snprintf(text + len, sizeof(text) - len, "%s -> ", c->tasks[w->path[i]].name);
        if (len < sizeof(text))
                snprintf(text + len, sizeof(text) - len, "%s", c->tasks[to].name);
        return evd_conf_fail_task_key(w->e, &c->tasks[from], key, "a cycle: %s", text);
}

static int visit(struct walk *w, size_t t) {
        const evd_task_conf *task = &w->c->tasks[t];
        int r = 0;

        w->mark[t] = ON_PATH;
        w->path[w->depth++] = t;
#define VISIT_KEY(field)                                                                               \
        for (char **n = task->field; r == 0 && n && *n; n++) {                                         \
                size_t to = task_index(w->c, *n);                                                      \
                                                                                                       \
                if (w->mark[to] == ON_PATH)                                                            \
                        r = fail_cycle(w, t, EVD_TASK_KEY(field), to);                                 \
                else if (w->mark[to] == UNSEEN)                                                        \
                        r = visit(w, to);                                                              \
        }
        ORDER_KEYS(VISIT_KEY)
        w->depth--;
        w->mark[t] = DONE;
        return r;
}

int evd__config_check_order(const evd_config *c, evd_conf_error *e) {
        struct walk w = { .c = c, .e = e };
        int r = 0;

        for (size_t t = 0; t < c->n_tasks; t++) {
#define KNOWN_KEY(field)                                                                               \
                for (char **n = c->tasks[t].field; n && *n; n++)                                       \
                        if (!evd_config_find_task(c, *n))                                              \
                                return evd_conf_fail_task_key(e, &c->tasks[t], EVD_TASK_KEY(field),    \
                                                              "no task '%s' in the config", *n);
                ORDER_KEYS(KNOWN_KEY)
        }
        w.mark = calloc(c->n_tasks + 1, 1);
        w.path = calloc(c->n_tasks + 1, sizeof(*w.path));
        if (!w.mark || !w.path)
                r = evd_conf_fail(e, -ENOMEM, 0, "out of memory");
        for (size_t t = 0; r == 0 && t < c->n_tasks; t++)
                if (w.mark[t] == UNSEEN)
                        r = visit(&w, t);
        free(w.mark);
        free(w.path);
        return r;
}
