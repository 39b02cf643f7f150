/* The host check of a parsed config: its users and groups exist (and only
 * a daemon running as root would switch to another), and each task's kind
 * finds what it needs (a program, a module); as root, the config file and
 * the modules are files no other user could have written. Errors read as
 * the parser's, "FILE:LINE: key 'K' in [S]: ...", and the one on the
 * earliest line is reported. */
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "identity.h"
#include "kind.h"
#include "trust.h"

/* `user` or `group` = v, set on `line` of [section]: it must exist, and
 * only root can become another. */
static int probe_identity(evd_conf_error *e, const char *section, const char *key, unsigned line, const char *v) {
        bool user = strcmp(key, "user") == 0;
        unsigned long id, own = user ? (unsigned long) geteuid() : (unsigned long) getegid();
        char buf[16384];
        int r;

        if (!v)
                return 0;
        if (user) {
                struct passwd pw, *pwp;

                r = evd_lookup_user(v, &pw, buf, sizeof(buf), &pwp);
                id = pwp ? pwp->pw_uid : 0;
                if (r == 0 && !pwp)
                        return evd_conf_fail_key(e, section, key, line, "unknown user '%s'", v);
        } else {
                struct group gr, *grp;

                r = evd_lookup_group(v, &gr, buf, sizeof(buf), &grp);
                id = grp ? grp->gr_gid : 0;
                if (r == 0 && !grp)
                        return evd_conf_fail_key(e, section, key, line, "unknown group '%s'", v);
        }
        if (r < 0)
                return evd_conf_fail_key(e, section, key, line, "cannot look up '%s': %s", v, strerror(-r));
        if (geteuid() != 0 && id != own)
                return evd_conf_fail_key(e, section, key, line,
                                         "'%s' is %s %lu: only a daemon running as root can switch to it", v,
                                         user ? "uid" : "gid", id);
        return 0;
}

/* The user a root daemon of config c becomes: its files are trusted as
 * root's are. 0 when it stays root (or the user is unknown: the identity
 * probe says so). */
static uid_t own_uid(const evd_config *c) {
        struct passwd pw, *pwp = NULL;
        char buf[16384];

        if (c->user && evd_lookup_user(c->user, &pw, buf, sizeof(buf), &pwp) == 0 && pwp)
                return pwp->pw_uid;
        return 0;
}

int evd_probe_trusted(const evd_config *c, const char *path, char *why, size_t whylen) {
        if (geteuid() != 0)
                return 0;
        /* A path that cannot be looked at (missing, a loop) is for the
         * reader or the loader to report, in its own words. */
        return evd_trust_path(path, own_uid(c), why, whylen) == -EPERM ? -EPERM : 0;
}

/* A group named only to be looked up (not switched to): it must exist. */
static void probe_group_exists(evd_conf_error *e, const char *key, unsigned line, const char *v) {
        struct group gr, *grp;
        char buf[16384];
        int r;

        if (!v)
                return;
        r = evd_lookup_group(v, &gr, buf, sizeof(buf), &grp);
        if (r < 0)
                evd_conf_fail_key(e, "daemon", key, line, "cannot look up '%s': %s", v, strerror(-r));
        else if (!grp)
                evd_conf_fail_key(e, "daemon", key, line, "unknown group '%s'", v);
}

static void probe_task(const evd_config *c, const evd_task_conf *t, evd_conf_error *e) {
        const evd_kind *kind = evd_kind_get(t->kind);
        char section[128];

        snprintf(section, sizeof(section), "task.%s", t->name);
        probe_identity(e, section, "user", t->key_line[EVD_TASK_KEY(user)], t->user);
        probe_identity(e, section, "group", t->key_line[EVD_TASK_KEY(group)], t->group);
        if (kind->probe)
                kind->probe(c, t, e);
}

/* Where a problem with [daemon] key k goes: the file's errors, or, for a
 * key set outside the file, the errors under its origin (which have no
 * line to be ordered by, and come first). */
static evd_conf_error *daemon_key_error(const evd_config *c, enum evd_daemon_key k, evd_conf_error *file,
                                        evd_conf_error *outside) {
        if (!c->origin[k])
                return file;
        outside->path = c->origin[k];
        return outside;
}

int evd_config_probe(const evd_config *c, char *err, size_t errlen) {
        evd_conf_error e = { .path = c->path, .buf = err, .len = errlen, .earliest = true };
        char outside_err[512];
        evd_conf_error o = { .buf = outside_err, .len = sizeof(outside_err) };

        probe_identity(daemon_key_error(c, EVD_KEY_user, &e, &o), "daemon", "user", c->key_line[EVD_KEY_user],
                       c->user);
        probe_identity(daemon_key_error(c, EVD_KEY_group, &e, &o), "daemon", "group", c->key_line[EVD_KEY_group],
                       c->group);
        probe_group_exists(daemon_key_error(c, EVD_KEY_control_group, &e, &o), "control_group",
                           c->key_line[EVD_KEY_control_group], c->control_group);
        if (o.code) {
                if (err && errlen)
                        snprintf(err, errlen, "%s", outside_err);
                return o.code;
        }
        for (size_t i = 0; i < c->n_tasks; i++) {
                /* The tasks come in the file's order: one after a problem
                 * found cannot hold an earlier one. */
                if (e.code && c->tasks[i].line > e.line)
                        break;
                probe_task(c, &c->tasks[i], &e);
        }
        return e.code;
}

/* A parsed config, probed: *ret only once both passed. */
static int probed(evd_config *c, evd_config **ret, char *err, size_t errlen) {
        int r = evd_config_probe(c, err, errlen);

        if (r < 0) {
                evd_config_free(c);
                return r;
        }
        *ret = c;
        return 0;
}

/* A parsed config with the overrides on top: *ret only if they apply. */
static int overridden(evd_config *c, const evd_overrides *o, char *err, size_t errlen) {
        int r = evd_config_apply_overrides(c, o, err, errlen);

        if (r < 0)
                evd_config_free(c);
        return r;
}

int evd_config_load_file(const char *path, const evd_overrides *o, evd_config **ret, char *err, size_t errlen) {
        char why[2 * PATH_MAX + 256];
        evd_config *c;
        int r;

        if (!ret)
                return -EINVAL;
        r = evd_config_parse_file(path, &c, err, errlen);
        if (r < 0 || (r = overridden(c, o, err, errlen)) < 0)
                return r;
        /* Before anything it says is looked at: as root, a file another
         * user could have written is refused whole. */
        r = evd_probe_trusted(c, path, why, sizeof(why));
        if (r < 0) {
                snprintf(err, errlen, "%s: %s", path, why);
                evd_config_free(c);
                return r;
        }
        return probed(c, ret, err, errlen);
}

int evd_config_load_string(const char *name, const char *text, const evd_overrides *o, evd_config **ret,
                           char *err, size_t errlen) {
        evd_config *c;
        int r;

        if (!ret)
                return -EINVAL;
        r = evd_config_parse_string(name, text, &c, err, errlen);
        if (r < 0 || (r = overridden(c, o, err, errlen)) < 0)
                return r;
        return probed(c, ret, err, errlen);
}

