/* Users and groups: lookups, the identity a run switches to, and the
 * daemon's own drop of root. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "identity.h"
#include "util.h"
#include "values.h"

/* "123": an id; past the id type's range (whose last value means "no id")
 * it is no one, rather than a cast that makes 4294967296 root. */
static bool numeric_id(const char *s, uint64_t max, uint64_t *ret_id, bool *ret_valid) {
        uint64_t id;

        if (!*s || strspn(s, "0123456789") != strlen(s))
                return false;
        *ret_valid = evd_parse_uint(s, &id) == 0 && id < max;
        *ret_id = id;
        return true;
}

int evd_lookup_user(const char *s, struct passwd *pw, char *buf, size_t len, struct passwd **ret) {
        uint64_t id;
        bool valid;
        int r;

        *ret = NULL;
        if (numeric_id(s, (uid_t) -1, &id, &valid)) {
                if (!valid)
                        return 0;
                r = getpwuid_r((uid_t) id, pw, buf, len, ret);
        } else {
                r = getpwnam_r(s, pw, buf, len, ret);
        }
        return r == 0 || r == ENOENT || r == ESRCH ? 0 : -r;
}

int evd_lookup_group(const char *s, struct group *gr, char *buf, size_t len, struct group **ret) {
        uint64_t id;
        bool valid;
        int r;

        *ret = NULL;
        if (numeric_id(s, (gid_t) -1, &id, &valid)) {
                if (!valid)
                        return 0;
                r = getgrgid_r((gid_t) id, gr, buf, len, ret);
        } else {
                r = getgrnam_r(s, gr, buf, len, ret);
        }
        return r == 0 || r == ENOENT || r == ESRCH ? 0 : -r;
}

void evd_identity_clear(evd_identity *id) {
        for (size_t i = 0; i < ARRAY_SIZE(id->env); i++) {
                free(id->env[i]);
                id->env[i] = NULL;
        }
}

int evd_identity_get(const char *user, const char *group, evd_identity *id, char *why, size_t whylen) {
        struct passwd pw, *pwp = NULL;
        struct group gr, *grp = NULL;
        char buf[16384];
        int r;

        *id = (evd_identity) { .uid = geteuid(), .gid = getegid() };
        if (group) {
                r = evd_lookup_group(group, &gr, buf, sizeof(buf), &grp);
                if (r < 0 || !grp) {
                        snprintf(why, whylen, "unknown group '%s'", group);
                        return r < 0 ? r : -ENOENT;
                }
                id->gid = grp->gr_gid;
                id->groups[0] = id->gid;
                id->n_groups = 1;
        }
        if (!user)
                return 0;
        r = evd_lookup_user(user, &pw, buf, sizeof(buf), &pwp);
        if (r < 0 || !pwp) {
                snprintf(why, whylen, "unknown user '%s'", user);
                return r < 0 ? r : -ENOENT;
        }
        id->set_uid = true;
        id->uid = pwp->pw_uid;
        if (!group)
                id->gid = pwp->pw_gid;
        id->n_groups = ARRAY_SIZE(id->groups);
        if (getgrouplist(pwp->pw_name, id->gid, id->groups, &id->n_groups) < 0) {
                snprintf(why, whylen, "user '%s' is in more than %zu groups", user, ARRAY_SIZE(id->groups));
                return -E2BIG;
        }
        if (asprintf(&id->env[0], "USER=%s", pwp->pw_name) < 0 ||
            asprintf(&id->env[1], "LOGNAME=%s", pwp->pw_name) < 0 ||
            asprintf(&id->env[2], "HOME=%s", pwp->pw_dir) < 0 ||
            asprintf(&id->env[3], "SHELL=%s", pwp->pw_shell && *pwp->pw_shell ? pwp->pw_shell : "/bin/sh") < 0) {
                snprintf(why, whylen, "out of memory");
                return -ENOMEM;
        }
        return 0;
}

int evd_identity_drop(const char *user, const char *group) {
        char ubuf[16384], gbuf[16384];
        struct passwd pw, *pwp = NULL;
        struct group gr, *grp = NULL;
        uid_t uid;
        gid_t gid;
        int r;

        if (!user && !group)
                return 0;
        if (user) {
                r = evd_lookup_user(user, &pw, ubuf, sizeof(ubuf), &pwp);
                if (r < 0)
                        return r;
                if (!pwp)
                        return -ESRCH; /* deleted since the config was read */
        }
        if (group) {
                r = evd_lookup_group(group, &gr, gbuf, sizeof(gbuf), &grp);
                if (r < 0)
                        return r;
                if (!grp)
                        return -ESRCH;
        }
        uid = pwp ? pwp->pw_uid : geteuid();
        gid = grp ? grp->gr_gid : pwp->pw_gid;
        if (uid == geteuid() && gid == getegid() && geteuid() != 0)
                return 0; /* already that user: nothing to give up */
        if ((pwp ? initgroups(pwp->pw_name, gid) : setgroups(1, &gid)) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
                return -errno;
        /* Root, once given up, stays given up. */
        if (uid != 0 && setuid(0) == 0)
                return -EPERM;
        return 0;
}
