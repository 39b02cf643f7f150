/* [daemon] values from outside the file: --set KEY=VALUE on the command
 * line and EVTASKD_KEY=VALUE in the environment, read by the same key
 * table and value parsers as the file, and applied on top of it (the
 * environment's, then the command line's). A reload re-reads the file and
 * applies them again. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

#define KEY_MAX 64

static int add(evd_overrides *o, const evd_key *k, const char *value, bool from_env, const char *fmt,
               const char *name) {
        evd_override *v = reallocarray(o->v, o->n + 1, sizeof(*v));
        evd_override *e;

        if (!v)
                return -ENOMEM;
        o->v = v;
        e = &v[o->n];
        *e = (evd_override) { .key = k, .from_env = from_env, .value = strdup(value) };
        if (!e->value || asprintf(&e->origin, fmt, name) < 0) {
                free(e->value);
                return -ENOMEM;
        }
        o->n++;
        return 0;
}

int evd_overrides_add_arg(evd_overrides *o, const char *arg, char *err, size_t errlen) {
        const char *eq = strchr(arg, '=');
        char name[KEY_MAX + 1];
        const evd_key *k = NULL;

        if (!eq || eq == arg) {
                snprintf(err, errlen, "--set: '%s' is not KEY=VALUE", arg);
                return -EINVAL;
        }
        if ((size_t) (eq - arg) <= KEY_MAX) {
                snprintf(name, sizeof(name), "%.*s", (int) (eq - arg), arg);
                k = evd_key_find(EVD_SECTION_DAEMON, name);
        }
        if (!k) {
                char known[512];

                evd_key_names(EVD_SECTION_DAEMON, known, sizeof(known));
                snprintf(err, errlen, "--set: unknown [daemon] key '%.*s' (known: %s)", (int) (eq - arg), arg,
                         known);
                return -EINVAL;
        }
        return add(o, k, eq + 1, false, "--set %s", k->name);
}

int evd_overrides_add_env(evd_overrides *o, char *const *env) {
        const size_t plen = strlen(EVD_ENV_PREFIX);
        size_t ulen = strlen(o->unknown);

        for (; env && *env; env++) {
                const char *var = *env, *eq = strchr(var, '=');
                char name[KEY_MAX + 1], envname[KEY_MAX + sizeof(EVD_ENV_PREFIX)];
                const evd_key *k = NULL;
                size_t n;
                int r;

                if (!eq || strncmp(var, EVD_ENV_PREFIX, plen) != 0)
                        continue;
                n = (size_t) (eq - var) - plen;
                if (n > 0 && n <= KEY_MAX) {
                        /* Only the upper-case spelling: EVTASKD_drain_timeout is no key. */
                        bool upper = true;

                        for (size_t i = 0; i < n; i++) {
                                upper &= !islower((unsigned char) var[plen + i]);
                                name[i] = (char) tolower((unsigned char) var[plen + i]);
                        }
                        name[n] = '\0';
                        k = upper ? evd_key_find(EVD_SECTION_DAEMON, name) : NULL;
                }
                if (!k) {
                        if (ulen < sizeof(o->unknown))
                                ulen += (size_t) snprintf(o->unknown + ulen, sizeof(o->unknown) - ulen, " %.*s",
                                                          (int) (eq - var), var);
                        continue;
                }
                snprintf(envname, sizeof(envname), "%.*s", (int) (eq - var), var);
                r = add(o, k, eq + 1, true, "environment %s", envname);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* One override onto c: its value parsed into a scratch config, as the file
 * would set it there, then exchanged with c's. */
static int apply_one(evd_config *c, const evd_override *v, char *err, size_t errlen) {
        evd_conf_error e = { .path = v->origin, .buf = err, .len = errlen };
        evd_config scratch;
        int r;

        evd__config_defaults(&scratch);
        r = v->key->type->parse(&(evd_key_ctx) {
                                        .key = v->key,
                                        .section = "daemon",
                                        .config = c,
                                        .error = &e,
                                },
                                v->value, (char *) &scratch + v->key->offset);
        if (r == 0) {
                evd__config_daemon_swap(c, &scratch, v->key->index);
                c->key_line[v->key->index] = 0;
                c->origin[v->key->index] = v->origin;
        }
        evd__config_daemon_clear(&scratch);
        return r;
}

int evd_config_apply_overrides(evd_config *c, const evd_overrides *o, char *err, size_t errlen) {
        if (!o)
                return 0;
        /* The environment's first: the command line's override them. */
        for (int env = 1; env >= 0; env--)
                for (size_t i = 0; i < o->n; i++)
                        if (o->v[i].from_env == (env == 1)) {
                                int r = apply_one(c, &o->v[i], err, errlen);

                                if (r < 0)
                                        return r;
                        }
        return 0;
}

void evd_config_overrides_list(const evd_config *c, char *buf, size_t size) {
        size_t len = 0;

        buf[0] = '\0';
        for (size_t i = 0; i < EVD_DAEMON_KEY_COUNT && len < size; i++)
                if (c->origin[i])
                        len += (size_t) snprintf(buf + len, size - len, "%s %s (%s)", len ? "," : "",
                                                 evd_keys[i].name, c->origin[i]);
}

void evd_config_key_where(const evd_config *c, enum evd_daemon_key index, char *buf, size_t size) {
        if (c->origin[index])
                snprintf(buf, size, "%s", c->origin[index]);
        else
                snprintf(buf, size, "%s:%u", c->path, c->key_line[index]);
}

void evd_overrides_free(evd_overrides *o) {
        if (!o)
                return;
        for (size_t i = 0; i < o->n; i++) {
                free(o->v[i].value);
                free(o->v[i].origin);
        }
        free(o->v);
        *o = (evd_overrides) { 0 };
}
