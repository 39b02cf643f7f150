/* kind = exec: runs of a command, each in its own process group.
 *
 * A run is the job's task: it spawns the child (posix_spawn: a new process
 * group, an empty signal mask, default dispositions, stdin from /dev/null,
 * no fd of the daemon but the two pipes; fork and exec instead when the
 * job has a `user` or `group` to switch to), logs each line of its stdout and
 * stderr as an `output` record from two reader tasks, and awaits its exit
 * with a child wait. A cancel (shutdown, reload, the run's timeout) sends
 * kill_signal to the group, SIGKILL after kill_timeout, and reaps. Pausing
 * the daemon stops every pausable job's group (SIGSTOP, jobs.c); a run's
 * timeout counts only the time it was not paused. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "command.h"
#include "exec.h"
#include "identity.h"
#include "kind.h"
#include "util.h"

#define LINE_MAX_BYTES 1024     /* longer lines are split */
#define DRAIN_OUTPUT EVT_SEC(1) /* after the exit, output still coming */
#define REAP_AFTER_KILL EVT_SEC(5)
#define BACKOFF_MAX EVT_SEC(60)

extern char **environ;

/* ---- the config ---- */

/* An exec task's keys, together: the schedule's, and the command split
 * into argv (or given to sh -c as it is). */
static int exec_check(evd_task_conf *t, evd_conf_error *e) {
        char why[128];
        int r;

        if (t->schedule == EVD_SCHEDULE_INTERVAL && !t->key_line[EVD_TASK_KEY(interval)])
                return evd_conf_fail_task_key(e, t, EVD_TASK_KEY(schedule),
                                              "schedule = interval needs an 'interval' duration");
        if (t->schedule != EVD_SCHEDULE_INTERVAL && t->key_line[EVD_TASK_KEY(interval)])
                return evd_conf_fail_task_key(e, t, EVD_TASK_KEY(interval), "only for schedule = interval");
        if (t->shell) {
                char *argv[] = { "/bin/sh", "-c", t->command, NULL };

                t->argv = evd_strv_copy(argv);
                return t->argv ? 0 : evd_conf_fail(e, -ENOMEM, t->line, "out of memory");
        }
        r = evd_split_command(t->command, &t->argv, why, sizeof(why));
        if (r == -ENOMEM)
                return evd_conf_fail(e, r, t->line, "out of memory");
        if (r < 0)
                return evd_conf_fail_task_key(e, t, EVD_TASK_KEY(command), "%s", why);
        return 0;
}

/* The program must be there: by its path, or on $PATH. */
static int exec_probe(const evd_task_conf *t, evd_conf_error *e) {
        if (!evd_program_found(t->argv[0]))
                return evd_conf_fail_task_key(e, t, EVD_TASK_KEY(command), "'%s' is not an executable program%s",
                                              t->argv[0], strchr(t->argv[0], '/') ? "" : " on $PATH");
        return 0;
}

/* ---- output --------------------------------------------------------------- */

/* A reader task's own state: a forced cancel may end the run while its
 * readers still have to run once, so they share nothing with it. Each
 * closes its pipe and frees this at its end. */
struct reader {
        evd_log *log;
        int fd;                 /* the pipe's read end */
        const char *stream;     /* "stdout", "stderr" */
        pid_t pid;
        char name[];            /* the job's */
};

/* One line, with bytes that are not printable text (control characters,
 * bytes that are not UTF-8) shown as \xNN. */
static void emit_line(struct reader *rd, const char *p, size_t n) {
        char safe[LINE_MAX_BYTES * 4 + 1];
        size_t k = 0;
        evd_field f[] = { EVD_STR("stream", rd->stream), EVD_NUM("pid", rd->pid) };

        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) p[i];
                size_t u = c >= 0x80 ? evd_utf8_len((const unsigned char *) p + i, n - i) : 0;

                if (u > 0) {
                        memcpy(safe + k, p + i, u);
                        k += u;
                        i += u - 1;
                } else if (c == '\t' || (c >= 0x20 && c < 0x7f)) {
                        safe[k++] = (char) c;
                } else {
                        static const char hex[] = "0123456789abcdef";

                        safe[k++] = '\\';
                        safe[k++] = 'x';
                        safe[k++] = hex[c >> 4];
                        safe[k++] = hex[c & 15];
                }
        }
        safe[k] = '\0';
        evd_log_emit(rd->log, rd->stream[3] == 'e' ? LOG_WARNING : LOG_INFO, EVD_EV_OUTPUT, rd->name, f,
                     ARRAY_SIZE(f), "%s", safe);
}

static int reader_fn(void *arg) {
        struct reader *rd = arg;
        char buf[LINE_MAX_BYTES + 1];
        size_t len = 0;
        int r = 0;

        for (;;) {
                ssize_t n;
                char *nl;

                r = evt_fd_wait(rd->fd, EVT_READ, EVT_FOREVER, NULL);
                if (r < 0)
                        break;
                n = read(rd->fd, buf + len, sizeof(buf) - len);
                if (n < 0 && (errno == EAGAIN || errno == EINTR))
                        continue;
                if (n <= 0)
                        break;
                len += (size_t) n;
                while ((nl = memchr(buf, '\n', len))) {
                        size_t line = (size_t) (nl - buf);

                        emit_line(rd, buf, line);
                        len -= line + 1;
                        memmove(buf, nl + 1, len);
                }
                /* A long line, in pieces; a line of exactly the limit is
                 * one piece (its newline may be the next byte). */
                if (len > LINE_MAX_BYTES) {
                        emit_line(rd, buf, LINE_MAX_BYTES);
                        len -= LINE_MAX_BYTES;
                        memmove(buf, buf + LINE_MAX_BYTES, len);
                }
        }
        if (len > 0)
                emit_line(rd, buf, len);
        close(rd->fd);
        free(rd);
        return r;
}

/* Starts a reader of fd in `group`; it owns fd from here on, even if it
 * cannot be started. */
static void reader_start(evt_group *group, const evd_job *job, int fd, const char *stream,
                         const evt_task_opts *opts) {
        size_t len = strlen(job->conf.name);
        struct reader *rd = malloc(sizeof(*rd) + len + 1);
        char task_name[128];
        evt_task_opts o = *opts;

        if (!rd || !group) {
                free(rd);
                close(fd);
                return;
        }
        *rd = (struct reader) { .log = job->log, .fd = fd, .stream = stream, .pid = job->pid };
        memcpy(rd->name, job->conf.name, len + 1);
        fcntl(fd, F_SETFL, O_NONBLOCK);
        /* "NAME/stdout" in the task table and forced records. */
        snprintf(task_name, sizeof(task_name), "%s/%s", job->conf.name, stream);
        o.name = task_name;
        if (evt_group_spawn(group, reader_fn, rd, &o, NULL) < 0) {
                close(fd);
                free(rd);
        }
}

/* ---- one run -------------------------------------------------------------- */

static bool overridden(const char *entry, char *const *overrides) {
        size_t n = strcspn(entry, "=");

        for (char *const *o = overrides; o && *o; o++)
                if (strncmp(entry, *o, n + 1) == 0)
                        return true;
        return false;
}

static bool inherited(const char *entry, char *const *overrides, bool new_user) {
        static const char *const dropped[] = {
                /* The daemon's, not its jobs': a child must not notify,
                 * ping or log in the daemon's name. */
                "NOTIFY_SOCKET=", "WATCHDOG_PID=", "WATCHDOG_USEC=", "JOURNAL_STREAM=",
                "LISTEN_FDS=", "LISTEN_PID=", "LISTEN_FDNAMES=",
        };
        static const char *const users[] = { "USER=", "LOGNAME=", "HOME=", "SHELL=" };

        for (size_t i = 0; i < ARRAY_SIZE(dropped); i++)
                if (strncmp(entry, dropped[i], strlen(dropped[i])) == 0)
                        return false;
        for (size_t i = 0; new_user && i < ARRAY_SIZE(users); i++)
                if (strncmp(entry, users[i], strlen(users[i])) == 0)
                        return false;
        return !overridden(entry, overrides);
}

/* The daemon's environment, cleaned, with the user's (when the run
 * switches to one) and the job's `environment`. The strings are borrowed;
 * free only the array. */
static char **child_environment(const evd_task_conf *c, const evd_identity *cr) {
        size_t n = 4, k = 0;
        char **env;

        for (char **e = environ; *e; e++)
                n++;
        for (char **e = c->environment; e && *e; e++)
                n++;
        env = calloc(n + 1, sizeof(*env));
        if (!env)
                return NULL;
        for (char **e = environ; *e; e++)
                if (inherited(*e, c->environment, cr->set_uid))
                        env[k++] = *e;
        for (size_t i = 0; cr->set_uid && i < ARRAY_SIZE(cr->env); i++)
                if (!overridden(cr->env[i], c->environment))
                        env[k++] = cr->env[i];
        for (char **e = c->environment; e && *e; e++)
                env[k++] = *e;
        return env;
}

/* What a forked child was doing when it failed. */
enum child_step {
        STEP_STDIO,
        STEP_IDENTITY,
        STEP_DIRECTORY,
        STEP_EXEC,
};

/* The child of fork_child: only system calls from here to the exec. A
 * failure on the way writes its step and errno to the report pipe. */
static _Noreturn void child_exec(const evd_task_conf *c, const evd_identity *cr, char **env, int out, int err,
                                 int report) {
        struct sigaction dfl = { .sa_handler = SIG_DFL };
        sigset_t none;
        int failure[2], null;

        setpgid(0, 0);
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
        /* Not root: only its own ids pass the config check; nothing to do. */
        failure[0] = STEP_IDENTITY;
        if (geteuid() == 0) {
                if (setgroups((size_t) cr->n_groups, cr->groups) < 0 || setgid(cr->gid) < 0 ||
                    setuid(cr->uid) < 0)
                        goto fail;
        } else if ((cr->gid != getegid() && setgid(cr->gid) < 0) || (cr->uid != geteuid() && setuid(cr->uid) < 0)) {
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

static int fork_child(const evd_task_conf *c, const evd_identity *cr, char **env, int out, int err,
                      pid_t *ret_pid, char *why, size_t whylen) {
        static const char *const steps[] = {
                [STEP_STDIO] = "cannot set up stdin, stdout and stderr",
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
                child_exec(c, cr, env, out, err, report[1]);
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

static int spawn_child(const evd_task_conf *c, const evd_identity *cr, int out, int err, pid_t *ret_pid,
                       char *why, size_t whylen) {
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        sigset_t none, all;
        char **env = child_environment(c, cr);
        int r;

        if (!env)
                return -ENOMEM;
        if (c->user || c->group) {
                r = fork_child(c, cr, env, out, err, ret_pid, why, whylen);
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
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
        posix_spawnattr_setpgroup(&attr, 0);
        posix_spawnattr_setsigmask(&attr, &none);
        posix_spawnattr_setsigdefault(&attr, &all);
        r = posix_spawnp(ret_pid, c->argv[0], &fa, &attr, c->argv, env);
        posix_spawnattr_destroy(&attr);
        posix_spawn_file_actions_destroy(&fa);
        free(env);
        return -r;
}

/* The end of a cancelled run: kill_signal to the group, SIGKILL after
 * kill_timeout. The waits run in a shield scope, so a plain cancel lets
 * them happen; a forced one pierces it, and the child gets SIGKILL at once
 * (libev reaps it whenever it goes). */
static int stop_child(evd_job *job, int *ret_status) {
        const evd_task_conf *c = &job->conf;
        int r;

        evt_shield_push();
        killpg(job->pid, c->kill_signal);
        killpg(job->pid, SIGCONT); /* a stopped group cannot act on it */
        r = evt_child_wait(job->pid, evt_deadline_in(c->kill_timeout), ret_status);
        if (r == -ETIMEDOUT || r == -ECANCELED) {
                killpg(job->pid, SIGKILL);
                if (r == -ETIMEDOUT)
                        r = evt_child_wait(job->pid, evt_deadline_in(REAP_AFTER_KILL), ret_status);
        }
        evt_shield_pop();
        return r;
}

/* Waits for the child's exit; on the run's timeout (time paused not
 * counted) or a cancel, stops it. Returns 0 and the wait status, or
 * -ECANCELED once the child has been dealt with. */
static int await_child(evd_job *job, int *ret_status, bool *ret_timed_out) {
        const evd_task_conf *c = &job->conf;
        int64_t start = evd_jobs_unpaused_now(job->jobs);

        for (;;) {
                int64_t deadline = EVT_FOREVER;
                int r;

                if (c->timeout > 0) {
                        int64_t left = c->timeout - (evd_jobs_unpaused_now(job->jobs) - start);

                        if (left <= 0) {
                                *ret_timed_out = true;
                                return stop_child(job, ret_status) < 0 ? -ETIMEDOUT : 0;
                        }
                        deadline = evt_deadline_in(left);
                }
                r = evt_child_wait(job->pid, deadline, ret_status);
                if (r == -ETIMEDOUT)
                        continue; /* maybe paused meanwhile: look again */
                if (r == -ECANCELED) {
                        stop_child(job, ret_status);
                        return -ECANCELED;
                }
                return r;
        }
}

static bool succeeded(int status) {
        return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static void log_end(evd_job *job, unsigned run, int status, bool timed_out, int64_t started) {
        long long ms = (evt_time_now() - started) / 1000000;
        evd_field f[] = {
                EVD_NUM("run", run), EVD_NUM("pid", job->pid), EVD_NUM("duration_ms", ms),
                EVD_NUM(WIFEXITED(status) ? "exit_code" : "signal_number",
                        WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status)),
        };
        const char *name = job->conf.name;

        if (succeeded(status))
                evd_log_emit(job->log, LOG_INFO, EVD_EV_FINISHED, name, f, ARRAY_SIZE(f),
                             "run %u exited 0 after %lld ms", run, ms);
        else if (WIFEXITED(status))
                evd_log_emit(job->log, LOG_ERR, EVD_EV_FAILED, name, f, ARRAY_SIZE(f),
                             "run %u exited %d after %lld ms%s", run, WEXITSTATUS(status), ms,
                             timed_out ? " (timeout)" : "");
        else
                evd_log_emit(job->log, LOG_ERR, EVD_EV_FAILED, name, f, ARRAY_SIZE(f),
                             "run %u killed by %s after %lld ms%s", run, evd_signal_name(WTERMSIG(status)), ms,
                             timed_out ? " (timeout)" : "");
}

/* One run: 0 with the wait status, -ECANCELED, or another error (logged)
 * when the command could not be started. */
static int run_once(evd_job *job, unsigned run, int *ret_status) {
        const evd_task_conf *c = &job->conf;
        int out[2] = { -1, -1 }, err[2] = { -1, -1 };
        evt_task_opts topts = {
                .name = c->name,
                .flags = (c->shield ? EVT_TASK_SHIELDED : 0) | (c->pausable ? 0 : EVT_TASK_NOPAUSE),
        };
        int64_t started = evt_time_now();
        bool timed_out = false;
        evt_group *readers = NULL;
        evd_identity cr;
        char why[160] = "";
        pid_t pid;
        int r;

        r = evd_identity_get(c->user, c->group, &cr, why, sizeof(why));
        if (r == 0 && (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0))
                r = -errno;
        if (r == 0)
                r = spawn_child(c, &cr, out[1], err[1], &pid, why, sizeof(why));
        evd_identity_clear(&cr);
        if (r < 0) {
                evd_log_emit(job->log, LOG_ERR, EVD_EV_FAILED, c->name, EVD_FIELDS(EVD_NUM("run", run)),
                             "run %u: cannot start %s: %s", run, c->argv[0], why[0] ? why : strerror(-r));
                goto out;
        }
        /* From here, until the child is reaped, no await point but the
         * child wait's: libev reaps children as they exit. */
        job->pid = pid;
        close(out[1]);
        close(err[1]);
        out[1] = err[1] = -1;
        evd_log_emit(job->log, LOG_INFO, EVD_EV_RUN, c->name,
                     EVD_FIELDS(EVD_NUM("run", run), EVD_NUM("pid", pid)), "run %u: pid %ld: %s", run,
                     (long) pid, c->command);
        if (evt_group_new(job->loop, &readers) < 0)
                readers = NULL;
        reader_start(readers, job, out[0], "stdout", &topts);
        reader_start(readers, job, err[0], "stderr", &topts);
        out[0] = err[0] = -1; /* the readers' now */

        r = await_child(job, ret_status, &timed_out);
        /* Output written just before the exit is still in the pipes: it is
         * logged before the run's end. A grandchild that keeps them open
         * does not hold the run up. */
        if (readers) {
                evt_shield_push();
                if (evt_group_wait(readers, evt_deadline_in(DRAIN_OUTPUT)) < 0)
                        evt_group_cancel(readers, EVT_CANCEL_FORCE);
                evt_group_wait(readers, EVT_FOREVER);
                evt_shield_pop();
                evt_group_free(readers);
        }
        if (r == 0)
                log_end(job, run, *ret_status, timed_out, started);
        job->pid = 0;
out:
        for (int i = 0; i < 2; i++) {
                if (out[i] >= 0)
                        close(out[i]);
                if (err[i] >= 0)
                        close(err[i]);
        }
        return r;
}

/* ---- the schedule --------------------------------------------------------- */

int evd_exec_run(evd_job *job) {
        const evd_task_conf *c = &job->conf;
        int64_t backoff = c->restart_sec;

        for (unsigned run = 1;; run++) {
                int64_t started = evt_time_now(), next;
                int status = 0, r;
                bool ok;

                bool cancelled;

                /* A shielded job's run completes whatever comes; a cancel
                 * that came meanwhile ends the job after it. */
                if (c->shield)
                        evt_shield_push();
                r = run_once(job, run, &status);
                cancelled = c->shield && evt_shield_pop() < 0;
                if (r == -ECANCELED)
                        return r;
                ok = r == 0 && succeeded(status);
                if (c->schedule == EVD_SCHEDULE_ONCE &&
                    (c->restart == EVD_RESTART_NO || (c->restart == EVD_RESTART_ON_FAILURE && ok)))
                        return ok ? 0 : -EIO; /* done anyway: the cancel cut nothing short */
                if (cancelled)
                        return -ECANCELED;
                switch (c->schedule) {
                case EVD_SCHEDULE_INTERVAL:
                        /* Start to start; runs that would overlap are skipped. */
                        next = started + c->interval;
                        while (next <= evt_time_now()) {
                                evd_log_emit(job->log, LOG_WARNING, EVD_EV_SKIPPED, c->name,
                                             EVD_FIELDS(EVD_NUM("run", run)),
                                             "run %u outlasted the interval: the next start is skipped", run);
                                next += c->interval;
                        }
                        r = evt_sleep_until(next);
                        break;
                case EVD_SCHEDULE_ALWAYS:
                        r = evt_sleep(ok ? c->restart_sec : backoff);
                        break;
                default: /* once, with a restart due */
                        r = evt_sleep(ok ? c->restart_sec : backoff);
                        break;
                }
                if (r < 0)
                        return r;
                /* Failures in a row wait longer, up to BACKOFF_MAX. */
                backoff = ok ? c->restart_sec : (backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : backoff * 2);
                if (backoff == 0 && !ok)
                        backoff = EVT_MSEC(100);
        }
}

const evd_kind evd_kind_exec = { .check = exec_check, .probe = exec_probe };
