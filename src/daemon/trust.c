/* The file checks of a daemon running as root: a config file or a module
 * that another user could have written is refused, with the file, its
 * owner and its mode in the error. */
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "trust.h"

/* "root", "nobody (uid 65534)" or "uid 1234". */
static void owner_name(uid_t uid, char *buf, size_t len) {
        struct passwd *pw = getpwuid(uid);

        if (uid == 0)
                snprintf(buf, len, "root");
        else if (pw)
                snprintf(buf, len, "%s (uid %lu)", pw->pw_name, (unsigned long) uid);
        else
                snprintf(buf, len, "uid %lu", (unsigned long) uid);
}

/* One part of the path to `file`: the file itself (when part is `whole`,
 * the path walked), or a directory or a link on the way to it. */
static int judge(const char *part, const struct stat *st, const char *whole, const char *file, uid_t uid,
                 char *why, size_t whylen) {
        bool dir = S_ISDIR(st->st_mode), link = S_ISLNK(st->st_mode);
        char where[2 * PATH_MAX + 64], owner[64];

        if (strcmp(part, whole) == 0)
                snprintf(where, sizeof(where), "'%s'", file);
        else
                snprintf(where, sizeof(where), "%s '%s' on the way to '%s'", dir ? "directory" : "link", part, file);
        if (st->st_uid != 0 && st->st_uid != uid) {
                owner_name(st->st_uid, owner, sizeof(owner));
                snprintf(why, whylen, "%s is owned by %s: as root, evtaskd trusts only what root or its own user "
                         "owns", where, owner);
                return -EPERM;
        }
        if (link || !(st->st_mode & (S_IWGRP | S_IWOTH)) || (dir && (st->st_mode & S_ISVTX)))
                return 0;
        snprintf(why, whylen, "%s is writable by %s (mode %04o): as root, evtaskd trusts nothing another user "
                 "could have written", where, st->st_mode & S_IWOTH ? "others" : "its group",
                 (unsigned) (st->st_mode & 07777));
        return -EPERM;
}

/* Each prefix of the absolute path p, from the whole down to "/", looked
 * at with lstat (follow: stat) and judged. */
static int walk(const char *p, bool follow, const char *file, uid_t uid, char *why, size_t whylen) {
        char part[PATH_MAX];
        size_t len = strlen(p);

        if (len >= sizeof(part))
                return -ENAMETOOLONG;
        memcpy(part, p, len + 1);
        for (;;) {
                struct stat st;
                char *slash;
                int r;

                if ((follow ? stat(part, &st) : lstat(part, &st)) < 0)
                        return -errno;
                r = judge(part, &st, p, file, uid, why, whylen);
                if (r < 0 || strcmp(part, "/") == 0)
                        return r;
                slash = strrchr(part, '/');
                slash[slash == part] = '\0'; /* "/etc" goes on to "/" */
        }
}

int evd_trust_path(const char *path, uid_t uid, char *why, size_t whylen) {
        char *real, abs[PATH_MAX];
        int r;

        if (!path || !why)
                return -EINVAL;
        if (path[0] == '/') {
                if (snprintf(abs, sizeof(abs), "%s", path) >= (int) sizeof(abs))
                        return -ENAMETOOLONG;
        } else {
                if (!getcwd(abs, sizeof(abs)))
                        return -errno;
                if (strlen(abs) + 1 + strlen(path) >= sizeof(abs))
                        return -ENAMETOOLONG;
                strcat(strcmp(abs, "/") ? strcat(abs, "/") : abs, path);
        }
        /* As written: a link or a directory on the way that another user
         * could change would redirect the daemon. */
        r = walk(abs, false, path, uid, why, whylen);
        if (r < 0)
                return r;
        /* As it resolves: what the links lead to. */
        real = realpath(abs, NULL);
        if (!real)
                return -errno;
        r = walk(real, true, path, uid, why, whylen);
        free(real);
        return r;
}
