/* Which processes belong to a run, and ending them all. With a cgroup
 * (cgroup.c), the members are its cgroup.procs. Without, /proc is walked:
 * a member is in the run's session, or is a child of a member, or was a
 * member at an earlier walk (same pid and start time). The daemon is child
 * subreaper, so a process whose parent exits stays below it, and one that
 * left the session is still found through its parent while that lives;
 * one that does both between two walks belongs to no run: a pause stops
 * it with the runs, and the daemon's last sweep (every descendant) ends
 * it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cgroup.h"
#include "evtask.h"
#include "proctree.h"
#include "values.h"

#define REAP_AFTER_KILL EVT_SEC(5)
#define POLL_FIRST EVT_MSEC(1)
#define POLL_MAX EVT_MSEC(50)

/* ---- /proc ---- */

/* A process as /proc/PID/stat shows it. */
typedef struct stat_entry {
        pid_t pid, ppid, sid;
        unsigned long long start;
        char state;
        bool member;
} stat_entry;

static bool read_stat(pid_t pid, stat_entry *e) {
        char path[32], buf[1024], *p;
        ssize_t n;
        int fd;

        snprintf(path, sizeof(path), "/proc/%ld/stat", (long) pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return false;
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
                return false;
        buf[n] = '\0';
        /* The command may hold spaces and parentheses: fields follow the
         * last ')'. starttime is the 22nd field, the 20th after it. */
        p = strrchr(buf, ')');
        if (!p)
                return false;
        e->pid = pid;
        e->member = false;
        return sscanf(p + 2, "%c %d %*d %d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
                      &e->state, &e->ppid, &e->sid, &e->start) == 4;
}

static void read_comm(pid_t pid, char *buf, size_t size) {
        char path[32];
        ssize_t n = -1;
        int fd;

        snprintf(path, sizeof(path), "/proc/%ld/comm", (long) pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
                n = read(fd, buf, size - 1);
                close(fd);
        }
        if (n <= 0)
                n = snprintf(buf, size, "?");
        buf[n] = '\0';
        buf[strcspn(buf, "\n")] = '\0';
}

/* Every process of the system: 0, or -errno. */
static int read_all(stat_entry **ret, size_t *ret_n) {
        DIR *dir = opendir("/proc");
        stat_entry *all = NULL;
        size_t n = 0, cap = 0;
        struct dirent *de;

        if (!dir)
                return -errno;
        while ((de = readdir(dir))) {
                char *end;
                long pid = strtol(de->d_name, &end, 10);

                if (*end || pid <= 0)
                        continue;
                if (evd_array_grow(&all, &cap, n + 1, sizeof(*all)) < 0) {
                        free(all);
                        closedir(dir);
                        return -ENOMEM;
                }
                if (read_stat((pid_t) pid, &all[n]))
                        n++;
        }
        closedir(dir);
        *ret = all;
        *ret_n = n;
        return 0;
}

static int by_pid(const void *a, const void *b) {
        const stat_entry *x = a, *y = b;

        return (x->pid > y->pid) - (x->pid < y->pid);
}

static stat_entry *find(stat_entry *all, size_t n, pid_t pid) {
        stat_entry key = { .pid = pid };

        return bsearch(&key, all, n, sizeof(*all), by_pid);
}

/* ---- the members ---- */

static const evd_proc *known(const evd_proctree *t, pid_t pid, unsigned long long start) {
        for (size_t i = 0; i < t->n_procs; i++)
                if (t->procs[i].pid == pid && t->procs[i].start == start)
                        return &t->procs[i];
        return NULL;
}

/* Marks the members among all (sorted by pid): the root, the session,
 * those seen before, and their children, down to the last generation. */
static void mark_members(const evd_proctree *t, stat_entry *all, size_t n) {
        bool more = true;

        for (size_t i = 0; i < n; i++)
                all[i].member = (!t->is_daemon && (all[i].sid == t->root || all[i].pid == t->root)) ||
                                known(t, all[i].pid, all[i].start);
        while (more) {
                more = false;
                for (size_t i = 0; i < n; i++) {
                        stat_entry *parent;

                        if (all[i].member || (t->is_daemon && all[i].pid == t->root))
                                continue;
                        parent = find(all, n, all[i].ppid);
                        if ((t->is_daemon && all[i].ppid == t->root) || (parent && parent->member))
                                all[i].member = more = true;
                }
        }
}

/* Whether a member counts: alive, or a zombie the daemon has still to
 * reap (libev does, from the loop): until then it is not gone. Another's
 * zombie is its parent's to reap, and that parent is a member. */
static bool counts(const stat_entry *e, pid_t self) {
        return e->member && (e->state != 'Z' || e->ppid == self);
}

/* Replaces the members with those of all that count. */
static size_t take_members(evd_proctree *t, stat_entry *all, size_t n) {
        pid_t self = getpid();
        evd_proc *procs;
        size_t k = 0;

        for (size_t i = 0; i < n; i++)
                k += counts(&all[i], self);
        /* A new list: known() reads the old one while this one is made (in
         * place, a new process with a lower pid, after the pids wrap, took
         * the slot of an old one, which lost its `signalled`). */
        procs = calloc(k ? k : 1, sizeof(*procs));
        if (!procs)
                return t->n_procs; /* the old list: still a member each */
        k = 0;
        for (size_t i = 0; i < n; i++) {
                const evd_proc *old;

                if (!counts(&all[i], self))
                        continue;
                old = known(t, all[i].pid, all[i].start);
                procs[k++] = (evd_proc) { all[i].pid, all[i].start, old && old->signalled };
        }
        free(t->procs);
        t->procs = procs;
        t->cap = k ? k : 1;
        t->n_procs = k;
        return k;
}

/* The cgroup's processes, as stat entries. */
static int read_cgroup(const evd_proctree *t, stat_entry **ret, size_t *ret_n) {
        pid_t *pids;
        size_t n, k = 0;
        stat_entry *all;
        int r = evd_cgroup_pids(t->cgroup, &pids, &n);

        if (r < 0)
                return r;
        all = calloc(n ? n : 1, sizeof(*all));
        if (!all) {
                free(pids);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++)
                if (read_stat(pids[i], &all[k])) {
                        all[k].member = true;
                        k++;
                }
        free(pids);
        *ret = all;
        *ret_n = k;
        return 0;
}

size_t evd_proctree_scan(evd_proctree *t) {
        stat_entry *all = NULL;
        size_t n = 0, alive;

        if (t->root <= 0)
                return 0;
        if (t->cgroup >= 0) {
                if (read_cgroup(t, &all, &n) < 0)
                        return t->n_procs;
        } else {
                if (read_all(&all, &n) < 0)
                        return t->n_procs;
                qsort(all, n, sizeof(*all), by_pid);
                mark_members(t, all, n);
        }
        alive = take_members(t, all, n);
        free(all);
        return alive;
}

/* ---- set-up ---- */

bool evd_proctree_setup(char *why, size_t whylen) {
        return evd_cgroup_setup(why, whylen);
}

int evd_proctree_open(evd_proctree *t, evd_log *log, const char *task, unsigned run, int *ret_procs) {
        int fd;

        *t = (evd_proctree) { .cgroup = -1, .log = log, .task = task, .run = run };
        *ret_procs = -1;
        if (!evd_cgroup_enabled())
                return 0;
        fd = evd_cgroup_create(task, t->cgroup_name, sizeof(t->cgroup_name));
        if (fd < 0)
                return fd;
        t->cgroup = fd;
        fd = evd_cgroup_procs_open(t->cgroup);
        if (fd < 0)
                return fd;
        *ret_procs = fd;
        return 0;
}

void evd_proctree_open_daemon(evd_proctree *t, evd_log *log) {
        *t = (evd_proctree) { .root = getpid(), .is_daemon = true, .cgroup = -1, .log = log };
}

void evd_proctree_cleanup(void) {
        evd_cgroup_remove_all();
}

void evd_proctree_attach(evd_proctree *t, pid_t root) {
        t->root = root;
}

void evd_proctree_close(evd_proctree *t) {
        if (t->cgroup >= 0)
                evd_cgroup_remove(t->cgroup_name, t->cgroup);
        t->cgroup = -1;
        free(t->procs);
        t->procs = NULL;
        t->n_procs = t->cap = 0;
}

/* ---- signals ---- */

static bool named(const evd_proctree *t, const evd_proc *p) {
        return !(p->pid == t->root && !t->is_daemon);
}

/* One record per member given the end's signal (the run's own command's
 * end has its record already). */
static void log_leftover(const evd_proctree *t, const evd_proc *p, int sig) {
        char comm[32];
        evd_field f[] = {
                EVD_NUM("run", t->run), EVD_NUM("pid", p->pid), EVD_STR("comm", comm),
                EVD_STR("signal", evd_signal_name(sig)),
        };

        read_comm(p->pid, comm, sizeof(comm));
        if (t->is_daemon)
                evd_log_emit(t->log, LOG_WARNING, EVD_EV_LEFTOVER, NULL, f + 1, ARRAY_SIZE(f) - 1,
                             "process %ld (%s) is left at the exit: %s", (long) p->pid, comm,
                             evd_signal_name(sig));
        else
                evd_log_emit(t->log, LOG_WARNING, EVD_EV_LEFTOVER, t->task, f, ARRAY_SIZE(f),
                             "run %u left process %ld (%s): %s", t->run, (long) p->pid, comm,
                             evd_signal_name(sig));
}

void evd_proctree_freeze(evd_proctree *t, bool frozen) {
        size_t n, seen = (size_t) -1;

        if (t->root <= 0)
                return;
        if (t->cgroup >= 0 && evd_cgroup_freeze(t->cgroup, frozen) == 0 && frozen)
                return;
        /* Again while the walk finds more: a process may fork between the
         * walk and its SIGSTOP. */
        n = evd_proctree_scan(t);
        for (int rounds = 0; n != seen && rounds < 8; rounds++) {
                for (size_t i = 0; i < t->n_procs; i++)
                        kill(t->procs[i].pid, frozen ? SIGSTOP : SIGCONT);
                seen = n;
                n = evd_proctree_scan(t);
        }
}

bool evd_proctree_has(const evd_proctree *t, pid_t pid, unsigned long long start) {
        return known(t, pid, start) != NULL;
}

/* Keeps, of the members, those that `belongs` puts in no run: how many. */
static size_t keep_strays(evd_proctree *t, bool (*belongs)(void *, pid_t, unsigned long long), void *data) {
        size_t k = 0;

        for (size_t i = 0; i < t->n_procs; i++)
                if (!belongs(data, t->procs[i].pid, t->procs[i].start))
                        t->procs[k++] = t->procs[i];
        t->n_procs = k;
        return k;
}

void evd_proctree_freeze_strays(evd_proctree *t, bool frozen,
                                bool (*belongs)(void *data, pid_t pid, unsigned long long start), void *data) {
        size_t n, seen = (size_t) -1;

        if (!frozen) {
                for (size_t i = 0; i < t->n_procs; i++)
                        kill(t->procs[i].pid, SIGCONT);
                evd_proctree_close(t);
                return;
        }
        if (evd_cgroup_enabled())
                return;
        /* Again while the walk finds more, as for a run; those stopped
         * stay members (seen before), so the last list has them all. */
        evd_proctree_scan(t);
        n = keep_strays(t, belongs, data);
        for (int rounds = 0; n != seen && rounds < 8; rounds++) {
                for (size_t i = 0; i < t->n_procs; i++)
                        kill(t->procs[i].pid, SIGSTOP);
                seen = n;
                evd_proctree_scan(t);
                n = keep_strays(t, belongs, data);
        }
}

size_t evd_proctree_signal(evd_proctree *t, int sig) {
        size_t sent = 0;

        if (t->root <= 0)
                return 0;
        evd_proctree_scan(t);
        for (size_t i = 0; i < t->n_procs; i++)
                sent += kill(t->procs[i].pid, sig) == 0;
        return sent;
}

/* sig (and SIGCONT: a stopped process cannot act on it) to each member
 * that has not had it. */
static void signal_new(evd_proctree *t, int sig) {
        for (size_t i = 0; i < t->n_procs; i++) {
                evd_proc *p = &t->procs[i];

                if (p->signalled)
                        continue;
                p->signalled = true;
                if (named(t, p))
                        log_leftover(t, p, sig);
                kill(p->pid, sig);
                kill(p->pid, SIGCONT);
        }
}

void evd_proctree_terminate(evd_proctree *t, int sig, int64_t timeout) {
        if (t->kill_at || t->root <= 0)
                return;
        t->kill_at = evt_time_now() + timeout;
        if (t->cgroup >= 0)
                evd_cgroup_freeze(t->cgroup, false);
        evd_proctree_scan(t);
        signal_new(t, sig);
}

void evd_proctree_kill(evd_proctree *t) {
        if (t->root <= 0)
                return;
        if (t->cgroup >= 0 && evd_cgroup_kill(t->cgroup) == 0)
                return;
        evd_proctree_scan(t);
        for (size_t i = 0; i < t->n_procs; i++)
                kill(t->procs[i].pid, SIGKILL);
}

void evd_proctree_kill_now(const evd_proctree *t) {
        if (t->root <= 0)
                return;
        if (t->cgroup >= 0 && evd_cgroup_kill(t->cgroup) == 0)
                return;
        kill(-t->root, SIGKILL);
        for (size_t i = 0; i < t->n_procs; i++)
                kill(t->procs[i].pid, SIGKILL);
}

/* Sleeps a little longer each time (libev reaps the daemon's children
 * meanwhile); false on a cancel that pierces the shield. */
static bool poll_sleep(int64_t *interval, int64_t until) {
        int64_t now = evt_time_now(), wake = now + *interval;
        int r;

        if (wake > until)
                wake = until;
        evt_shield_push();
        r = evt_sleep_until(evt_deadline_at(wake));
        evt_shield_pop();
        *interval = *interval * 2 > POLL_MAX ? POLL_MAX : *interval * 2;
        return r != -ECANCELED;
}

size_t evd_proctree_end(evd_proctree *t, int sig, int64_t timeout) {
        int64_t interval = POLL_FIRST;
        size_t left = evd_proctree_scan(t);
        bool killed = false;

        if (left == 0)
                return 0;
        evd_proctree_terminate(t, sig, timeout);
        while ((left = evd_proctree_scan(t)) > 0) {
                int64_t now = evt_time_now();

                if (!killed && now >= t->kill_at) {
                        /* Named once more: these outlived kill_timeout. */
                        for (size_t i = 0; i < t->n_procs; i++)
                                if (named(t, &t->procs[i]))
                                        log_leftover(t, &t->procs[i], SIGKILL);
                        evd_proctree_kill(t);
                        killed = true;
                        continue;
                }
                if (killed)
                        evd_proctree_kill(t); /* and those forked meanwhile */
                else
                        signal_new(t, sig);
                if (killed && now >= t->kill_at + REAP_AFTER_KILL)
                        break;
                if (!poll_sleep(&interval, killed ? t->kill_at + REAP_AFTER_KILL : t->kill_at)) {
                        evd_proctree_kill(t);
                        break;
                }
        }
        return left;
}
