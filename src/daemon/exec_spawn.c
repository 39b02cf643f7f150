/* Starting an exec job's command. posix_spawn when the run keeps the
 * daemon's identity and file mode mask and has no cgroup: a new session
 * (so no controlling terminal), an empty signal mask, default
 * dispositions, stdin from /dev/null, no fd of the daemon but the two
 * pipes. Fork and exec when it switches to a `user` or `group`, to its own
 * `umask`, enters a cgroup or sets rlimits before its exec: the child only makes system
 * calls (identity looked up before the fork), and a step that fails is
 * reported back through a pipe. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "command.h"
#include "exec_spawn.h"

extern char **environ;

static bool overridden(const char *entry, char *const *overrides) {
        size_t n = strcspn(entry, "=");

        for (char *const *o = overrides; o && *o; o++)
                if (strncmp(entry, *o, n + 1) == 0)
                        return true;
        return false;
}

/* Whether entry's name is one of names, each given with its '=' ("FOO=")
 * or as a prefix ending in '_' ("MONITOR_"). */
static bool named(const char *entry, const char *const *names, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (strncmp(entry, names[i], strlen(names[i])) == 0)
                        return true;
        return false;
}

/* The user's who started the daemon: a run as another user gets its own
 * USER, LOGNAME, HOME and SHELL, and none of the rest. */
static const char *const users[] = {
        "USER=", "LOGNAME=", "HOME=", "SHELL=", "MAIL=", "XDG_RUNTIME_DIR=", "XDG_SESSION_", "XDG_SEAT=",
        "XDG_VTNR=", "DBUS_SESSION_BUS_ADDRESS=", "SSH_AUTH_SOCK=", "SSH_AGENT_PID=", "SUDO_", "RUNTIME_DIRECTORY=",
        "STATE_DIRECTORY=", "CACHE_DIRECTORY=", "LOGS_DIRECTORY=", "CONFIGURATION_DIRECTORY=",
};

static bool inherited(const char *entry, char *const *overrides, bool new_user) {
        /* The daemon's, not its jobs': what the service manager hands the
         * daemon (systemd.exec(5)): a child must not notify, ping or log
         * in the daemon's name, take its sockets or read its credentials. */
        static const char *const daemons[] = {
                "NOTIFY_SOCKET=", "WATCHDOG_PID=", "WATCHDOG_USEC=", "JOURNAL_STREAM=", "LISTEN_FDS=",
                "LISTEN_PID=", "LISTEN_FDNAMES=", "CREDENTIALS_DIRECTORY=", "MAINPID=", "MANAGERPID=",
                "SYSTEMD_EXEC_PID=", "FDSTORE=", "PIDFILE=", "MEMORY_PRESSURE_WATCH=", "MEMORY_PRESSURE_WRITE=",
                "SERVICE_RESULT=", "EXIT_CODE=", "EXIT_STATUS=", "MONITOR_", "TRIGGER_",
        };

        if (named(entry, daemons, ARRAY_SIZE(daemons)))
                return false;
        if (new_user && named(entry, users, ARRAY_SIZE(users)))
                return false;
        return !overridden(entry, overrides);
}

char **evd_exec_environment(char *const *base, char *const *overrides, const evd_identity *id) {
        size_t n = ARRAY_SIZE(id->env) + evd_strv_length(base) + evd_strv_length(overrides), k = 0;
        char **env = calloc(n + 1, sizeof(*env));

        if (!env)
                return NULL;
        for (char *const *e = base; e && *e; e++)
                if (inherited(*e, overrides, id->set_uid))
                        env[k++] = *e;
        for (size_t i = 0; id->set_uid && i < ARRAY_SIZE(id->env); i++)
                if (!overridden(id->env[i], overrides))
                        env[k++] = id->env[i];
        for (char *const *e = overrides; e && *e; e++)
                env[k++] = *e;
        return env;
}

int evd_exec_environment_become(const evd_identity *id) {
        char **e = environ;

        while (*e) {
                char *name;

                if (!named(*e, users, ARRAY_SIZE(users))) {
                        e++;
                        continue;
                }
                name = strndup(*e, strcspn(*e, "="));
                if (!name)
                        return -ENOMEM;
                unsetenv(name); /* environ shifts: look again from the start */
                free(name);
                e = environ;
        }
        for (size_t i = 0; id->set_uid && i < ARRAY_SIZE(id->env); i++) {
                char *name = strndup(id->env[i], strcspn(id->env[i], "="));
                int r = name ? setenv(name, id->env[i] + strlen(name) + 1, 1) : -1;

                free(name);
                if (r < 0)
                        return -ENOMEM;
        }
        return 0;
}

/* What a forked child was doing when it failed. */
enum child_step {
        STEP_STDIO,
        STEP_CGROUP,
        STEP_LIMITS,
        STEP_IDENTITY,
        STEP_DIRECTORY,
        STEP_EXEC,
};

/* The child of fork_child: only system calls from here to the exec. A
 * failure on the way writes its step and errno to the report pipe. */
static _Noreturn void child_exec(const evd_task_conf *c, const evd_identity *id, char **env, int out, int err,
                                 int cgroup_procs, const evd_rlimits *rl, int report) {
        struct sigaction dfl = { .sa_handler = SIG_DFL };
        sigset_t none;
        int failure[2], null;

        /* Its own session: a job can neither open the daemon's terminal
         * (/dev/tty) nor be signalled through it. */
        setsid();
        umask((mode_t) c->umask);
        for (int sig = 1; sig < NSIG; sig++)
                sigaction(sig, &dfl, NULL); /* fails, harmlessly, for KILL, STOP and glibc's own */
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        /* A pipe that already is fd 1 or 2 only loses its CLOEXEC. */
        if (out == STDOUT_FILENO)
                fcntl(out, F_SETFD, 0);
        if (err == STDERR_FILENO)
                fcntl(err, F_SETFD, 0);
        failure[0] = STEP_STDIO;
        null = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (null < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(out, STDOUT_FILENO) < 0 ||
            dup2(err, STDERR_FILENO) < 0)
                goto fail;
        /* Into the run's cgroup before anything it runs can fork. */
        failure[0] = STEP_CGROUP;
        if (cgroup_procs >= 0 && write(cgroup_procs, "0", 1) < 0)
                goto fail;
        /* As root still: a limit above the daemon's own may be set. */
        failure[0] = STEP_LIMITS;
        for (unsigned i = 0; i < rl->n; i++)
                if (setrlimit(rl->r[i].resource, &rl->r[i].value) < 0)
                        goto fail;
        /* Not root: only its own ids pass the config check; nothing to do. */
        failure[0] = STEP_IDENTITY;
        if (geteuid() == 0) {
                if (setgroups((size_t) id->n_groups, id->groups) < 0 || setgid(id->gid) < 0 ||
                    setuid(id->uid) < 0)
                        goto fail;
        } else if ((id->gid != getegid() && setgid(id->gid) < 0) || (id->uid != geteuid() && setuid(id->uid) < 0)) {
                goto fail;
        }
        /* As the user: a directory only root may enter fails the run. */
        failure[0] = STEP_DIRECTORY;
        if (c->working_directory && chdir(c->working_directory) < 0)
                goto fail;
        failure[0] = STEP_EXEC;
        close_range(STDERR_FILENO + 1, report - 1, 0);
        close_range(report + 1, ~0u, 0);
        execvpe(c->argv[0], c->argv, env);
fail:
        failure[1] = errno;
        (void) !write(report, failure, sizeof(failure));
        _exit(127);
}

static int fork_child(const evd_task_conf *c, const evd_identity *id, char **env, int out, int err,
                      int cgroup_procs, const evd_rlimits *rl, pid_t *ret_pid, char *why, size_t whylen) {
        static const char *const steps[] = {
                [STEP_STDIO] = "cannot set up stdin, stdout and stderr",
                [STEP_CGROUP] = "cannot enter the run's cgroup",
                [STEP_LIMITS] = "cannot set its limits (limit_*, memory_max, pids_max)",
                [STEP_IDENTITY] = "cannot switch user and group",
                [STEP_DIRECTORY] = "cannot enter the working directory",
                [STEP_EXEC] = "cannot execute it",
        };
        int report[2], failure[2];
        ssize_t n;
        pid_t pid;

        if (pipe2(report, O_CLOEXEC) < 0)
                return -errno;
        pid = fork();
        if (pid == 0)
                child_exec(c, id, env, out, err, cgroup_procs, rl, report[1]);
        close(report[1]);
        if (pid < 0) {
                close(report[0]);
                return -errno;
        }
        /* The exec closes the pipe; a failure writes to it first. */
        do
                n = read(report[0], failure, sizeof(failure));
        while (n < 0 && errno == EINTR);
        close(report[0]);
        if (n == (ssize_t) sizeof(failure)) {
                /* Reaped here, before the loop runs again: not an orphan. */
                while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                        ;
                snprintf(why, whylen, "%s: %s", steps[failure[0]], strerror(failure[1]));
                return -failure[1];
        }
        *ret_pid = pid;
        return 0;
}

/* The daemon's own file mode mask, or -1 when it cannot be read without
 * changing it (umask(2) only sets; a moment at another mask would apply to
 * a file a pool thread creates meanwhile). */
static int daemon_umask(void) {
        char line[256];
        unsigned mask;
        int found = -1;
        FILE *f = fopen("/proc/self/status", "re");

        if (!f)
                return -1;
        while (found < 0 && fgets(line, sizeof(line), f))
                if (sscanf(line, "Umask: %o", &mask) == 1)
                        found = (int) mask;
        fclose(f);
        return found;
}

int evd_exec_spawn(const evd_task_conf *c, const evd_identity *id, int out, int err, int cgroup_procs,
                   const evd_rlimits *rl, pid_t *ret_pid, char *why, size_t whylen) {
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        sigset_t none, all;
        char **env = evd_exec_environment(environ, c->environment, id);
        int r;

        if (!env)
                return -ENOMEM;
        /* posix_spawn has no umask step, nor a cgroup or an rlimit one:
         * such a run is forked. */
        if (c->user || c->group || cgroup_procs >= 0 || rl->n > 0 || daemon_umask() != (int) c->umask) {
                r = fork_child(c, id, env, out, err, cgroup_procs, rl, ret_pid, why, whylen);
                free(env);
                return r;
        }
        sigemptyset(&none);
        sigfillset(&all);
        posix_spawn_file_actions_init(&fa);
        posix_spawnattr_init(&attr);
        posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_adddup2(&fa, out, STDOUT_FILENO);
        posix_spawn_file_actions_adddup2(&fa, err, STDERR_FILENO);
        posix_spawn_file_actions_addclosefrom_np(&fa, STDERR_FILENO + 1);
        if (c->working_directory)
                posix_spawn_file_actions_addchdir_np(&fa, c->working_directory);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
        posix_spawnattr_setsigmask(&attr, &none);
        posix_spawnattr_setsigdefault(&attr, &all);
        r = posix_spawnp(ret_pid, c->argv[0], &fa, &attr, c->argv, env);
        posix_spawnattr_destroy(&attr);
        posix_spawn_file_actions_destroy(&fa);
        free(env);
        return -r;
}

