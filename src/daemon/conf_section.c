/* The config's sections: [daemon] once, [task.NAME] with a name of its own
 * (each task indexed by name as it comes); and when a task's section ends,
 * what one key cannot check: that kind is there, that every key is valid
 * for it and the required ones are set, then the kind's own rules. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "conf_parser.h"
#include "kind.h"

static bool task_name_char(char ch) {
        return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
               ch == '.' || ch == '-';
}

bool evd_task_name_valid(const char *name, size_t len) {
        if (len == 0 || len > EVD_TASK_NAME_MAX)
                return false;
        for (size_t i = 0; i < len; i++)
                if (!task_name_char(name[i]))
                        return false;
        return true;
}

static int task_add(evd_parser *p, const char *name, size_t len) {
        evd_config *c = p->config;
        evd_task_conf *t;
        uintptr_t first;
        int r;

        if (c->n_tasks == p->tasks_cap) {
                size_t cap = p->tasks_cap ? 2 * p->tasks_cap : 8;
                evd_task_conf *tasks = reallocarray(c->tasks, cap, sizeof(*tasks));

                if (!tasks)
                        return evd__parser_fail(p, -ENOMEM, p->line, "out of memory");
                c->tasks = tasks;
                p->tasks_cap = cap;
        }
        t = &c->tasks[c->n_tasks];
        evd__task_conf_defaults(t);
        t->line = p->line;
        /* Counted before the name is copied: evd_config_free() copes with a
         * NULL name. */
        p->task = c->n_tasks++;
        t->name = strndup(name, len);
        if (!t->name)
                return evd__parser_fail(p, -ENOMEM, p->line, "out of memory");

        r = evd_name_index_put(&c->by_name, t->name, p->task, &first);
        if (r == -EEXIST)
                return evd__parser_fail(p, -EINVAL, p->line,
                        "duplicate section [%s] (first at line %u)", p->section_name, c->tasks[first].line);
        if (r < 0)
                return evd__parser_fail(p, -ENOMEM, p->line, "out of memory");
        return 0;
}

/* Opens the section named by the header on the current line. */
static int section_open(evd_parser *p, const char *name, size_t len) {
        const char *tname = name + 5;
        size_t tlen = len - 5;

        if (len == 6 && memcmp(name, "daemon", 6) == 0) {
                if (p->config->daemon_line)
                        return evd__parser_fail(p, -EINVAL, p->line,
                                "duplicate section [daemon] (first at line %u)", p->config->daemon_line);
                p->config->daemon_line = p->line;
                p->section = EVD_SECTION_DAEMON;
                strcpy(p->section_name, "daemon");
                return 0;
        }
        if (len < 5 || memcmp(name, "task.", 5) != 0) {
                if (len == 4 && memcmp(name, "task", 4) == 0)
                        return evd__parser_fail(p, -EINVAL, p->line, "unknown section [task]; a task is [task.NAME]");
                return evd__parser_fail(p, -EINVAL, p->line, "unknown section [%.*s]", (int) len, name);
        }
        if (tlen == 0)
                return evd__parser_fail(p, -EINVAL, p->line, "empty task name in [task.]");
        if (tlen > EVD_TASK_NAME_MAX)
                return evd__parser_fail(p, -EINVAL, p->line,
                        "task name in [%.*s] is longer than %d characters", (int) len, name, EVD_TASK_NAME_MAX);
        for (size_t i = 0; i < tlen; i++)
                if (!task_name_char(tname[i]))
                        return evd__parser_fail(p, -EINVAL, p->line,
                                "task name '%.*s' in [%.*s]: only letters, digits, '_', '.' and '-' are allowed",
                                (int) tlen, tname, (int) len, name);
        p->section = EVD_SECTION_TASK;
        snprintf(p->section_name, sizeof(p->section_name), "%.*s", (int) len, name);
        return task_add(p, tname, tlen);
}

/* What one key cannot check: kind may come after the keys it rules out,
 * and a key that is missing has no line of its own, so the header's is
 * named. Then the kind's own rules. */
int evd__section_close(evd_parser *p) {
        evd_task_conf *t = evd__parser_task(p);
        const char *kind;
        const evd_key *bad = NULL;
        const evd_kind *ops;

        if (!t)
                return 0;
        if (!t->key_line[EVD_TASK_KEY(kind)]) {
                char kinds[128];

                evd_names_list(&evd_kind_names, kinds, sizeof(kinds));
                return evd__parser_fail(p, -EINVAL, t->line,
                        "section [%s]: missing key 'kind' (%s)", p->section_name, kinds);
        }
        kind = evd_kind_name(t->kind);
        for (size_t i = 0; i < evd_n_keys; i++) {
                const evd_key *k = &evd_keys[i];

                if (k->section == EVD_SECTION_TASK && t->key_line[k->index] && !(k->kinds & EVD_KIND_BIT(t->kind)) &&
                    (!bad || t->key_line[k->index] < t->key_line[bad->index]))
                        bad = k;
        }
        if (bad)
                return evd_conf_fail_key(&p->error, p->section_name, bad->name, t->key_line[bad->index],
                                         "not valid for kind %s", kind);
        if (t->args_line && t->kind != EVD_KIND_MODULE)
                return evd__parser_fail(p, -EINVAL, t->args_line,
                        "key 'arg.*' in [%s]: only for kind module", p->section_name);
        for (size_t i = 0; i < evd_n_keys; i++) {
                const evd_key *k = &evd_keys[i];

                if (k->section == EVD_SECTION_TASK && (k->required & EVD_KIND_BIT(t->kind)) && !t->key_line[k->index])
                        return evd__parser_fail(p, -EINVAL, t->line,
                                "section [%s]: missing key '%s' (required for kind %s)",
                                p->section_name, k->name, kind);
        }
        ops = evd_kind_get(t->kind);
        return ops->check ? ops->check(t, &p->error) : 0;
}

/* A "[...]" line: closes the section before it and opens the new one. */
int evd__section_header(evd_parser *p, const char *line) {
        const char *name = line + 1, *end = name, *rest;
        bool was_space = false;
        int r;

        /* The ']' is found the way inih finds it: an inline comment (';'
         * after whitespace) ends the search. */
        while (*end && *end != ']' && !(was_space && *end == ';')) {
                was_space = isspace((unsigned char) *end);
                end++;
        }
        if (*end != ']')
                return evd__parser_fail(p, -EINVAL, p->line, "syntax error: no ']' after '['");
        /* inih ignores what follows; "[task.a] kind = sleep" is a mistake. */
        for (rest = end + 1; isspace((unsigned char) *rest); rest++)
                ;
        if (*rest && *rest != ';' && *rest != '#')
                return evd__parser_fail(p, -EINVAL, p->line, "syntax error: text after ']'");

        r = evd__section_close(p);
        if (r < 0)
                return r;
        return section_open(p, name, (size_t) (end - name));
}

