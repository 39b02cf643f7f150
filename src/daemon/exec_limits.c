/* An exec job's resource limits: what each key becomes, in a run's cgroup
 * or as an rlimit, and what a run's end says about them. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exec_limits.h"

/* cpu.max's period; cpu_quota is a share of it. */
#define CPU_PERIOD_US 100000

bool evd_limits_any(const evd_task_conf *c) {
        return c->memory_max || c->pids_max || c->cpu_weight || c->cpu_quota || c->limit_nofile || c->limit_nproc ||
               c->limit_cpu;
}

static void add(evd_rlimits *rl, int resource, rlim_t soft, rlim_t hard) {
        rl->r[rl->n].resource = resource;
        rl->r[rl->n].value = (struct rlimit) { .rlim_cur = soft, .rlim_max = hard };
        rl->n++;
}

void evd_limits_rlimits(const evd_task_conf *c, bool cgroup, evd_rlimits *ret) {
        uint64_t nproc = c->limit_nproc;

        ret->n = 0;
        if (c->limit_nofile)
                add(ret, RLIMIT_NOFILE, c->limit_nofile, c->limit_nofile);
        if (c->limit_cpu) {
                rlim_t s = (rlim_t) ((c->limit_cpu + EVD_NSEC_PER_SEC - 1) / EVD_NSEC_PER_SEC);

                /* SIGXCPU at the limit, SIGKILL a second later. */
                add(ret, RLIMIT_CPU, s, s + 1);
        }
        if (!cgroup && c->pids_max && (!nproc || c->pids_max < nproc))
                nproc = c->pids_max;
        if (nproc)
                add(ret, RLIMIT_NPROC, nproc, nproc);
        if (!cgroup && c->memory_max)
                add(ret, RLIMIT_AS, c->memory_max, c->memory_max);
}

static int write_at(int dirfd, const char *file, const char *text, char *why, size_t whylen) {
        int fd = openat(dirfd, file, O_WRONLY | O_CLOEXEC);
        ssize_t n = fd < 0 ? -1 : write(fd, text, strlen(text));
        int r = n < 0 ? -errno : 0;

        if (fd >= 0)
                close(fd);
        if (r < 0)
                snprintf(why, whylen, "cannot write %s to the run's %s: %s", text, file, strerror(-r));
        return r;
}

int evd_limits_apply_cgroup(const evd_task_conf *c, int dirfd, char *why, size_t whylen) {
        char v[64];
        int r = 0;

        /* An OOM kill ends the whole run, not one process of it. */
        r = write_at(dirfd, "memory.oom.group", "1", why, whylen);
        if (r == 0 && c->memory_max) {
                snprintf(v, sizeof(v), "%llu", (unsigned long long) c->memory_max);
                r = write_at(dirfd, "memory.max", v, why, whylen);
        }
        if (r == 0 && c->pids_max) {
                snprintf(v, sizeof(v), "%llu", (unsigned long long) c->pids_max);
                r = write_at(dirfd, "pids.max", v, why, whylen);
        }
        if (r == 0 && c->cpu_weight) {
                snprintf(v, sizeof(v), "%u", c->cpu_weight);
                r = write_at(dirfd, "cpu.weight", v, why, whylen);
        }
        if (r == 0 && c->cpu_quota) {
                snprintf(v, sizeof(v), "%llu %d", (unsigned long long) c->cpu_quota * CPU_PERIOD_US / 100,
                         CPU_PERIOD_US);
                r = write_at(dirfd, "cpu.max", v, why, whylen);
        }
        return r;
}

bool evd_limits_oom_killed(int dirfd) {
        int fd = openat(dirfd, "memory.events", O_RDONLY | O_CLOEXEC);
        FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
        char line[128];
        unsigned long long n = 0;

        if (!f) {
                if (fd >= 0)
                        close(fd);
                return false;
        }
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "oom_kill %llu", &n) == 1)
                        break;
        fclose(f);
        return n > 0;
}

/* " name" into buf for each key set of a list. */
static void keys(char *buf, size_t size, const char *const *names, const bool *set, size_t n) {
        size_t len = 0;

        buf[0] = '\0';
        for (size_t i = 0; i < n && len < size; i++)
                if (set[i])
                        len += (size_t) snprintf(buf + len, size - len, "%s%s", len ? " " : "", names[i]);
}

void evd_limits_log(evd_log *log, const evd_task_conf *c, bool cgroup, const char *no_cgroup) {
        static const char *const names[] = { "memory_max", "pids_max", "cpu_weight", "cpu_quota",
                                             "limit_nofile", "limit_nproc", "limit_cpu" };
        bool set[] = { c->memory_max, c->pids_max, c->cpu_weight, c->cpu_quota, c->limit_nofile, c->limit_nproc,
                       c->limit_cpu };
        /* Exact: in the run's cgroup, or an rlimit that is per process
         * anyway. Approximate: RLIMIT_AS counts address space, not memory
         * used; RLIMIT_NPROC counts the user's processes, not the run's,
         * and binds no root. None: cgroup controllers only. */
        bool exact[] = { cgroup && set[0], cgroup && set[1], cgroup && set[2], cgroup && set[3], set[4], false, set[6] };
        bool approx[] = { !cgroup && set[0], !cgroup && set[1], false, false, false, set[5], false };
        bool none[] = { false, false, !cgroup && set[2], !cgroup && set[3], false, false, false };
        char applied[128], approximate[128], not_applied[64];

        if (!evd_limits_any(c))
                return;
        keys(applied, sizeof(applied), names, exact, ARRAY_SIZE(names));
        keys(approximate, sizeof(approximate), names, approx, ARRAY_SIZE(names));
        keys(not_applied, sizeof(not_applied), names, none, ARRAY_SIZE(names));
        evd_log_emit(log, approximate[0] || not_applied[0] ? LOG_WARNING : LOG_INFO, EVD_EV_LIMITS, c->name,
                     EVD_FIELDS(EVD_STR("limits", cgroup ? "cgroup" : "rlimit"), EVD_STR("applied", applied),
                                EVD_STR("approximate", approximate), EVD_STR("not_applied", not_applied)),
                     "limits %s%s%s: applied [%s]; only approximately [%s]%s%s%s; not applied [%s]",
                     cgroup ? "in each run's cgroup" : "as rlimits", cgroup ? "" : ", ", cgroup ? "" : no_cgroup,
                     applied, approximate, approx[0] ? ", memory_max as RLIMIT_AS: address space, not memory used" : "",
                     approx[1] || approx[5] ? ", RLIMIT_NPROC: the user's processes, not the run's" : "",
                     (approx[1] || approx[5]) && geteuid() == 0 && !c->user ? ", and not for root" : "", not_applied);
}

const char *evd_limits_cause(const evd_task_conf *c, int status, bool oom) {
        if (oom)
                return "oom-killed";
        if (c->limit_cpu && WIFSIGNALED(status) && WTERMSIG(status) == SIGXCPU)
                return "limit_cpu";
        return NULL;
}
