/* A cgroup v2 directory per exec run, under the daemon's own cgroup when
 * that is delegated to it: found from /proc/self/cgroup and the cgroup2
 * mount in /proc/self/mountinfo, used only if it is not the hierarchy's
 * root (the host's, never the daemon's to divide) and the daemon can make
 * a directory in it and write cgroup.kill there. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup.h"
#include "util.h"

/* The controllers a run's limits need. */
#define LIMIT_CONTROLLERS "memory pids cpu"
/* Where the daemon moves itself so that its cgroup may delegate them. */
#define SELF_CGROUP "evtaskd"

static int base_fd = -1;        /* the daemon's cgroup directory */
static bool limits;             /* the controllers are on for the runs */
static char no_limits[160] = "no cgroup v2 delegated to the daemon";
static unsigned long long seq;  /* runs made so far */

/* The first line of file `path` that `take` accepts: it writes what it
 * wants of it into buf. */
static bool first_line(const char *path, bool (*take)(char *line, char *buf, size_t size), char *buf,
                       size_t size) {
        FILE *f = fopen(path, "re");
        char line[1024];
        bool found = false;

        if (!f)
                return false;
        while (!found && fgets(line, sizeof(line), f))
                found = take(line, buf, size);
        fclose(f);
        return found;
}

/* A cgroup2 mount's point, in /proc/self/mountinfo. */
static bool unified_mount(char *line, char *buf, size_t size) {
        char point[512], type[64];
        const char *sep = strstr(line, " - ");

        if (!sep || sscanf(line, "%*s %*s %*s %*s %511s", point) != 1 || sscanf(sep + 3, "%63s", type) != 1 ||
            strcmp(type, "cgroup2") != 0)
                return false;
        return (size_t) snprintf(buf, size, "%s", point) < size;
}

/* The daemon's path in the unified hierarchy, in /proc/self/cgroup
 * ("0::/PATH"). */
static bool own_path(char *line, char *buf, size_t size) {
        if (strncmp(line, "0::", 3) != 0)
                return false;
        line[strcspn(line, "\n")] = '\0';
        return (size_t) snprintf(buf, size, "%s", line + 3) < size;
}

static int write_file(int dirfd, const char *file, const char *text) {
        int fd = openat(dirfd, file, O_WRONLY | O_CLOEXEC);
        ssize_t n;

        if (fd < 0)
                return -errno;
        n = write(fd, text, strlen(text));
        n = n < 0 ? -errno : 0;
        close(fd);
        return (int) n;
}

static bool read_line(int dirfd, const char *file, char *buf, size_t size) {
        int fd = openat(dirfd, file, O_RDONLY | O_CLOEXEC);
        ssize_t n = fd < 0 ? -1 : read(fd, buf, size - 1);

        if (fd >= 0)
                close(fd);
        if (n < 0)
                return false;
        buf[n] = '\0';
        buf[strcspn(buf, "\n")] = '\0';
        return true;
}

/* Whether word w is in the blank-separated list. */
static bool has_word(const char *list, const char *w, size_t len) {
        for (const char *p = list; (p = strstr(p, w)); p += len)
                if ((p == list || p[-1] == ' ') && (p[len] == ' ' || p[len] == '\0'))
                        return true;
        return false;
}

/* The limits' controllers, delegated to the daemon's cgroup (dirfd):
 * the daemon moves into SELF_CGROUP, a child cgroup, and enables them in
 * its cgroup's subtree_control. false with the reason (the controllers
 * missing) otherwise. */
static bool controllers_setup(int dirfd, char *why, size_t whylen) {
        char have[256], missing[64] = "", self[32];
        const char *w = LIMIT_CONTROLLERS;
        int sub, r;

        if (!read_line(dirfd, "cgroup.controllers", have, sizeof(have))) {
                snprintf(why, whylen, "cannot read cgroup.controllers: %s", strerror(errno));
                return false;
        }
        while (*w) {
                size_t len = strcspn(w, " ");

                if (!has_word(have, w, len))
                        snprintf(missing + strlen(missing), sizeof(missing) - strlen(missing), "%s%.*s",
                                 missing[0] ? " " : "", (int) len, w);
                w += len + (w[len] == ' ');
        }
        if (missing[0]) {
                snprintf(why, whylen, "the daemon's cgroup v2 lacks the %s controller%s", missing,
                         strchr(missing, ' ') ? "s" : "");
                return false;
        }
        if (mkdirat(dirfd, SELF_CGROUP, 0755) < 0 && errno != EEXIST) {
                snprintf(why, whylen, "cannot make the cgroup %s: %s", SELF_CGROUP, strerror(errno));
                return false;
        }
        sub = openat(dirfd, SELF_CGROUP, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        snprintf(self, sizeof(self), "%ld", (long) getpid());
        r = sub < 0 ? -errno : write_file(sub, "cgroup.procs", self);
        if (sub >= 0)
                close(sub);
        if (r < 0) {
                snprintf(why, whylen, "cannot move into the cgroup %s: %s", SELF_CGROUP, strerror(-r));
                return false;
        }
        r = write_file(dirfd, "cgroup.subtree_control", "+memory +pids +cpu");
        if (r < 0) {
                snprintf(why, whylen, "cannot enable the %s controllers: %s", LIMIT_CONTROLLERS, strerror(-r));
                return false;
        }
        return true;
}

bool evd_cgroup_setup(char *why, size_t whylen) {
        char mount[512], path[512], dir[1100], probe[64];
        int fd;

        if (!first_line("/proc/self/mountinfo", unified_mount, mount, sizeof(mount)) ||
            !first_line("/proc/self/cgroup", own_path, path, sizeof(path))) {
                snprintf(why, whylen, "no cgroup v2 hierarchy");
                return false;
        }
        if (strcmp(path, "/") == 0) {
                snprintf(why, whylen, "the daemon's cgroup is the root of the hierarchy: not delegated");
                return false;
        }
        snprintf(dir, sizeof(dir), "%s%s", mount, path);
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) {
                snprintf(why, whylen, "%s: %s", dir, strerror(errno));
                return false;
        }
        /* Make and remove a run's cgroup: a read-only cgroupfs
         * (ProtectControlGroups=yes), one not delegated (not the daemon's
         * to write) or a kernel without cgroup.kill (before 5.14) fail
         * here, not at a run. */
        snprintf(probe, sizeof(probe), "run-probe.%ld", (long) getpid());
        if (mkdirat(fd, probe, 0755) < 0) {
                snprintf(why, whylen, "cannot make a cgroup in %s: %s", dir, strerror(errno));
                close(fd);
                return false;
        }
        {
                int sub = openat(fd, probe, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                bool ok = sub >= 0 && faccessat(sub, "cgroup.kill", W_OK, AT_EACCESS) == 0 &&
                          faccessat(sub, "cgroup.freeze", W_OK, AT_EACCESS) == 0;

                if (sub >= 0)
                        close(sub);
                unlinkat(fd, probe, AT_REMOVEDIR);
                if (!ok) {
                        snprintf(why, whylen, "%s has no writable cgroup.kill and cgroup.freeze", dir);
                        close(fd);
                        return false;
                }
        }
        base_fd = fd;
        limits = controllers_setup(fd, no_limits, sizeof(no_limits));
        return true;
}

bool evd_cgroup_limits(void) {
        return limits;
}

const char *evd_cgroup_no_limits(void) {
        return no_limits;
}

bool evd_cgroup_enabled(void) {
        return base_fd >= 0;
}

int evd_cgroup_create(const char *task, char *name, size_t namelen) {
        int fd;

        if (base_fd < 0)
                return -EOPNOTSUPP;
        snprintf(name, namelen, "run-%llu.%s", ++seq, task);
        if (mkdirat(base_fd, name, 0755) < 0 && errno != EEXIST)
                return -errno;
        fd = openat(base_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) {
                int r = -errno;

                unlinkat(base_fd, name, AT_REMOVEDIR);
                return r;
        }
        return fd;
}

void evd_cgroup_remove(const char *name, int dirfd) {
        if (dirfd < 0)
                return;
        close(dirfd);
        /* EBUSY while a process is in it: it stays, to be seen. */
        unlinkat(base_fd, name, AT_REMOVEDIR);
}

void evd_cgroup_remove_all(void) {
        int fd = base_fd >= 0 ? openat(base_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
        DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
        struct dirent *de;

        if (!dir) {
                if (fd >= 0)
                        close(fd);
                return;
        }
        while ((de = readdir(dir)))
                if (strncmp(de->d_name, "run-", 4) == 0)
                        unlinkat(base_fd, de->d_name, AT_REMOVEDIR);
        closedir(dir);
}

int evd_cgroup_procs_open(int dirfd) {
        int fd = openat(dirfd, "cgroup.procs", O_WRONLY | O_CLOEXEC);

        return fd < 0 ? -errno : fd;
}

int evd_cgroup_pids(int dirfd, pid_t **ret_pids, size_t *ret_n) {
        int fd = openat(dirfd, "cgroup.procs", O_RDONLY | O_CLOEXEC);
        FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
        pid_t *pids = NULL;
        size_t n = 0, cap = 0;
        long pid;

        if (!f) {
                int r = -errno;

                if (fd >= 0)
                        close(fd);
                return r;
        }
        while (fscanf(f, "%ld", &pid) == 1) {
                if (evd_array_grow(&pids, &cap, n + 1, sizeof(*pids)) < 0) {
                        free(pids);
                        fclose(f);
                        return -ENOMEM;
                }
                pids[n++] = (pid_t) pid;
        }
        fclose(f);
        *ret_pids = pids;
        *ret_n = n;
        return 0;
}

int evd_cgroup_freeze(int dirfd, bool frozen) {
        return write_file(dirfd, "cgroup.freeze", frozen ? "1" : "0");
}

int evd_cgroup_kill(int dirfd) {
        return write_file(dirfd, "cgroup.kill", "1");
}
