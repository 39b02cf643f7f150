/* Users and groups: looked up by name or number, resolved into what a
 * process needs to become one (ids, groups, environment), and the daemon's
 * own switch away from root. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct passwd;
struct group;

/* A user or group by name or number, from the system's databases: 0 with
 * *ret set (found) or NULL (there is none), or -errno when the lookup
 * itself failed. A number past the id type is no one (never a wrap to
 * root). */
int evd_lookup_user(const char *s, struct passwd *pw, char *buf, size_t len, struct passwd **ret);
int evd_lookup_group(const char *s, struct group *gr, char *buf, size_t len, struct group **ret);

/* Who a job's run runs as. */
typedef struct evd_identity {
        bool set_uid;           /* a user was named: uid, groups and env are its */
        uid_t uid;
        gid_t gid;
        int n_groups;
        gid_t groups[256];
        char *env[4];           /* USER, LOGNAME, HOME, SHELL; with set_uid */
} evd_identity;

/* Resolves `user` and `group` (either may be NULL: the daemon's own).
 * 0, or -errno with the reason in why; evd_identity_clear either way. */
int evd_identity_get(const char *user, const char *group, evd_identity *id, char *why, size_t whylen);
void evd_identity_clear(evd_identity *id);

/* The daemon gives up root for good: to `user` (its groups too) and/or
 * `group`. 0 when there is nothing to do or it is done, -ESRCH for a user
 * or group deleted meanwhile, -EPERM if root could be regained, or the
 * failing call's -errno. */
int evd_identity_drop(const char *user, const char *group);
