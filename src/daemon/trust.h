/* Which files a daemon running as root may take code or settings from: as
 * sshd's StrictModes, sudo and cron judge them. */
#pragma once

#include <stddef.h>
#include <sys/types.h>

/* Whether path may be trusted by a root daemon whose own user is `uid`
 * (0 when it stays root): the file is owned by root or uid and writable by
 * neither group nor others, and so is every directory above it, except
 * that a directory writable by all is accepted when it is sticky (as
 * /tmp). Both the path as written (its symbolic links too) and the file it
 * names are checked. 0; -EPERM with the reason in why, which names the
 * file or directory, its owner and its mode; or -errno when a part of it
 * cannot be looked at. */
int evd_trust_path(const char *path, uid_t uid, char *why, size_t whylen);
