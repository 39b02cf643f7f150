/* kind = exec: runs of a command, each in its own session and process
 * tree (proctree.c).
 *
 * A run is the job's task: it spawns the child (exec_spawn.c), logs each
 * line of its stdout and stderr as an `output` record from two reader
 * tasks (exec_output.c), and awaits its exit with a child wait. A cancel
 * (shutdown, reload, the run's timeout) sends kill_signal to every process
 * of the run, SIGKILL after kill_timeout, and reaps. Once the command has
 * exited, whatever it left running gets the same: a run ends when all its
 * processes have. Pausing the daemon stops every pausable job's processes
 * (jobs.c); a run's timeout counts only the time it was not paused. Runs
 * follow each other per `schedule` and `restart`. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "calendar.h"
#include "cgroup.h"
#include "command.h"
#include "exec_calendar.h"
#include "exec_limits.h"
#include "exec_notify.h"
#include "exec_output.h"
#include "exec_spawn.h"
#include "kind.h"
#include "proctree.h"

#define REAP_AFTER_KILL EVT_SEC(5)
/* The back-off's first step when restart_delay is 0: failures in a row
 * must not start a command as fast as it can fail. */
#define BACKOFF_MIN EVT_MSEC(100)
/* A shorter interval would start a process more often than one can be
 * started and logged. */
#define INTERVAL_MIN EVT_MSEC(10)

/* ---- the config ---- */

/* The keys of one schedule only, and those it needs. */
static const struct {
        enum evd_task_key key;
        enum evd_schedule schedule;
        const char *needed;     /* "an 'interval' duration": required; NULL: not */
} schedule_keys[] = {
        { EVD_TASK_KEY(interval), EVD_SCHEDULE_INTERVAL, "an 'interval' duration" },
        { EVD_TASK_KEY(on_calendar), EVD_SCHEDULE_CALENDAR, "an 'on_calendar' expression" },
        { EVD_TASK_KEY(timezone), EVD_SCHEDULE_CALENDAR, NULL },
        { EVD_TASK_KEY(jitter), EVD_SCHEDULE_CALENDAR, NULL },
        { EVD_TASK_KEY(catch_up), EVD_SCHEDULE_CALENDAR, NULL },
};

/* An exec task's keys, together: the schedule's, and the command split
 * into argv (or given to sh -c as it is). */
static int exec_check(evd_task_conf *t, evd_conf_error *e) {
        char why[128];
        int r;

        for (size_t i = 0; i < ARRAY_SIZE(schedule_keys); i++) {
                enum evd_task_key key = schedule_keys[i].key;
                enum evd_schedule schedule = schedule_keys[i].schedule;

                if (schedule_keys[i].needed && t->schedule == schedule && !t->key_line[key])
                        return evd_conf_fail_task_key(e, t, EVD_TASK_KEY(schedule), "schedule = %s needs %s",
                                                      evd_schedule_names.names[schedule], schedule_keys[i].needed);
                if (t->schedule != schedule && t->key_line[key])
                        return evd_conf_fail_task_key(e, t, key, "only for schedule = %s",
                                                      evd_schedule_names.names[schedule]);
        }
        if (t->key_line[EVD_TASK_KEY(interval)] && t->interval < INTERVAL_MIN)
                return evd_conf_fail_task_key(e, t, EVD_TASK_KEY(interval), "must be at least 10ms");
        if (t->restart_max_delay < t->restart_delay)
                return evd_conf_fail_task_key(e, t, 
                                              t->key_line[EVD_TASK_KEY(restart_max_delay)]
                                                      ? EVD_TASK_KEY(restart_max_delay)
                                                      : EVD_TASK_KEY(restart_delay),
                                              "restart_max_delay must be at least restart_delay");
        /* Not set: a one-off job is ready once it has done its work, any
         * other once it runs. */
        if (!t->key_line[EVD_TASK_KEY(ready)])
                t->ready = t->schedule == EVD_SCHEDULE_ONCE ? EVD_READY_EXITED : EVD_READY_STARTED;
        if ((t->schedule == EVD_SCHEDULE_INTERVAL || t->schedule == EVD_SCHEDULE_CALENDAR) &&
            t->key_line[EVD_TASK_KEY(start_limit)])
                return evd_conf_fail_task_key(e, t, EVD_TASK_KEY(start_limit),
                                              "not for schedule = %s: the %s paces its starts",
                                              evd_schedule_names.names[t->schedule],
                                              evd_schedule_names.names[t->schedule]);
        if (t->output_burst && !t->output_rate)
                return evd_conf_fail_task_key(e, t, EVD_TASK_KEY(output_burst), "needs an 'output_rate'");
        if (t->output == EVD_OUTPUT_DISCARD && t->output_rate)
                return evd_conf_fail_task_key(e, t, EVD_TASK_KEY(output_rate), "output = discard logs nothing");
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
static int exec_probe(const evd_config *c, const evd_task_conf *t, evd_conf_error *e) {
        char zone[256];
        struct stat st;

        (void) c;
        /* The C library would take an unknown zone for UTC, silently. */
        if (t->timezone && (evd_timezone_path(t->timezone, zone, sizeof(zone)) < 0 || stat(zone, &st) < 0 ||
                            !S_ISREG(st.st_mode)))
                return evd_conf_fail_task_key(e, t, EVD_TASK_KEY(timezone), "no time zone '%s' in %s", t->timezone,
                                              "/usr/share/zoneinfo");
        if (!evd_program_found(t->argv[0]))
                return evd_conf_fail_task_key(e, t, EVD_TASK_KEY(command), "'%s' is not an executable program%s",
                                              t->argv[0], strchr(t->argv[0], '/') ? "" : " on $PATH");
        return 0;
}

/* ---- one run ---- */

/* The end of a cancelled run: kill_signal to every process of the run,
 * SIGKILL after kill_timeout. The waits run in a shield scope, so a plain
 * cancel lets them happen; a forced one pierces it, and the child gets
 * SIGKILL at once (libev reaps it whenever it goes). What outlives the
 * command is ended with the run (evd_proctree_end), on the same deadline. */
static int stop_child(evd_job *job, int *ret_status) {
        const evd_task_conf *c = &job->conf;
        int r;

        evt_shield_push();
        evd_proctree_terminate(job->procs, c->kill_signal, c->kill_timeout);
        r = evt_child_wait(job->pid, evt_deadline_at(job->procs->kill_at), ret_status);
        if (r == -ETIMEDOUT || r == -ECANCELED) {
                evd_proctree_kill(job->procs);
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
                evt_deadline deadline = EVT_FOREVER;
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

/* The run's end. A failure says why when it is known (timed_out, or
 * `cause`: oom-killed, limit_cpu), and which rlimit held the run
 * otherwise: an allocation RLIMIT_AS refused ends a program in its own
 * way. */
static void log_end(evd_job *job, unsigned run, int status, bool timed_out, const char *cause,
                    const evd_rlimits *rl, int64_t started) {
        long long ms = (evt_time_now() - started) / 1000000;
        const evd_task_conf *c = &job->conf;
        bool as = false;
        char note[96] = "";
        evd_field f[] = {
                EVD_NUM("run", run), EVD_NUM("pid", job->pid), EVD_NUM("duration_ms", ms),
                EVD_NUM("timed_out", timed_out),
                EVD_NUM(WIFEXITED(status) ? "exit_code" : "signal_number",
                        WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status)),
                EVD_STR("cause", cause), EVD_STR("limits", "memory_max"),
        };
        size_t n = ARRAY_SIZE(f) - 2;
        const char *name = c->name;

        for (unsigned i = 0; i < rl->n; i++)
                as |= rl->r[i].resource == RLIMIT_AS;
        if (timed_out) {
                snprintf(note, sizeof(note), " (timeout)");
        } else if (cause) {
                snprintf(note, sizeof(note), " (%s)", cause);
                n++;
        } else if (as) {
                snprintf(note, sizeof(note), " (memory_max = %llu applied as RLIMIT_AS)",
                         (unsigned long long) c->memory_max);
                f[n++] = f[ARRAY_SIZE(f) - 1];
        }
        if (succeeded(status))
                evd_log_emit(job->log, LOG_INFO, EVD_EV_FINISHED, name, f, ARRAY_SIZE(f) - 2,
                             "run %u exited 0 after %lld ms", run, ms);
        else if (WIFEXITED(status))
                evd_log_emit(job->log, LOG_ERR, EVD_EV_FAILED, name, f, n, "run %u exited %d after %lld ms%s", run,
                             WEXITSTATUS(status), ms, note);
        else
                evd_log_emit(job->log, LOG_ERR, EVD_EV_FAILED, name, f, n, "run %u killed by %s after %lld ms%s",
                             run, evd_signal_name(WTERMSIG(status)), ms, note);
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
        evd_output *output;
        evd_exec_notify *notify = NULL;
        evd_task_conf spawn_conf = *c; /* borrowed: with NOTIFY_SOCKET */
        evd_proctree procs;
        evd_identity id = { 0 };
        char why[160] = "";
        int r, cgroup_procs = -1;
        bool limits_cgroup = false, oom;
        evd_rlimits rl;
        pid_t pid;

        r = evd_proctree_open(&procs, job->log, c->name, run, &cgroup_procs);
        if (r < 0)
                snprintf(why, sizeof(why), "cannot make the run's cgroup: %s", strerror(-r));
        limits_cgroup = r == 0 && procs.cgroup >= 0 && evd_cgroup_limits();
        if (limits_cgroup)
                r = evd_limits_apply_cgroup(c, procs.cgroup, why, sizeof(why));
        evd_limits_rlimits(c, limits_cgroup, &rl);
        if (r == 0)
                r = evd_identity_get(c->user, c->group, &id, why, sizeof(why));
        if (r == 0 && (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0))
                r = -errno;
        if (r == 0 && c->ready == EVD_READY_NOTIFY)
                r = evd_exec_notify_open(job, run, &id, &spawn_conf.environment, &notify);
        if (r == 0)
                r = evd_exec_spawn(&spawn_conf, &id, out[1], err[1], cgroup_procs, &rl, &pid, why, sizeof(why));
        if (cgroup_procs >= 0)
                close(cgroup_procs);
        evd_identity_clear(&id);
        if (r < 0) {
                evd_log_emit(job->log, LOG_ERR, EVD_EV_FAILED, c->name, EVD_FIELDS(EVD_NUM("run", run)),
                             "run %u: cannot start %s: %s", run, c->argv[0], why[0] ? why : strerror(-r));
                goto out;
        }
        /* From here, until the child is reaped, no await point but the
         * child wait's: libev reaps children as they exit. */
        job->pid = pid;
        evd_proctree_attach(&procs, pid);
        job->procs = &procs;
        close(out[1]);
        close(err[1]);
        out[1] = err[1] = -1;
        evd_log_emit(job->log, LOG_INFO, EVD_EV_RUN, c->name, EVD_FIELDS(EVD_NUM("run", run), EVD_NUM("pid", pid)),
                     "run %u: pid %ld: %s", run, (long) pid, c->command);
        if (c->ready == EVD_READY_STARTED)
                evd_job_ready(job, "started");
        output = evd_output_start(job, out[0], err[0], &topts);
        out[0] = err[0] = -1; /* the readers' now */

        r = await_child(job, ret_status, &timed_out);
        /* What the command left running ends with the run, and with
         * it the pipes it held. */
        evd_proctree_end(&procs, c->kill_signal, c->kill_timeout);
        /* A run is finished when its output is: what it wrote before its
         * exit is still in the pipes, and is logged before the run's end. */
        evd_output_finish(output);
        oom = limits_cgroup && evd_limits_oom_killed(procs.cgroup);
        if (r == 0)
                log_end(job, run, *ret_status, timed_out,
                        succeeded(*ret_status) ? NULL : evd_limits_cause(c, *ret_status, oom), &rl, started);
        job->pid = 0;
        job->procs = NULL;
out:
        evd_exec_notify_close(notify);
        if (spawn_conf.environment != c->environment)
                free(spawn_conf.environment);
        evd_proctree_close(&procs);
        for (int i = 0; i < 2; i++) {
                if (out[i] >= 0)
                        close(out[i]);
                if (err[i] >= 0)
                        close(err[i]);
        }
        return r;
}

/* ---- the schedule ---- */

/* Until `at`, the next run's time, or until evtaskctl run asks for it at
 * once: 0 either way, or the cancel. */
static int wait_next(evd_job *job, evt_deadline at) {
        int r;

        /* A time that has passed still lets the others run first. */
        if (at.at <= evt_time_now())
                return evt_yield();
        r = evt_event_wait(job->run_now, at);
        if (r == 0)
                evt_event_clear(job->run_now);
        return r == -ETIMEDOUT ? 0 : r;
}

/* Start to start: the first start of the grid started + k * interval that
 * is still ahead. The starts a long run covered are skipped, all in one
 * record, counted rather than walked: however short the interval or long
 * the run, this is a division. */
static int64_t next_start(evd_job *job, unsigned run, int64_t started) {
        const evd_task_conf *c = &job->conf;
        int64_t now = evt_time_now(), next = started + c->interval;
        uint64_t skipped;

        if (next > now)
                return next;
        skipped = (uint64_t) ((now - next) / c->interval) + 1;
        evd_log_emit(job->log, LOG_WARNING, EVD_EV_SKIPPED, c->name,
                     EVD_FIELDS(EVD_NUM("run", run), EVD_NUM("skipped", skipped)),
                     "run %u outlasted the interval: %llu start%s skipped", run, (unsigned long long) skipped,
                     skipped == 1 ? "" : "s");
        return next + (int64_t) skipped * c->interval;
}

/* ---- the restart policy ---- */

/* The wait before the run after one that ended: restart_delay after a
 * success; after failures in a row, restart_delay doubled per failure up
 * to restart_max_delay. A run that lasted restart_reset_after starts the
 * count again, as a success does. */
static int64_t restart_wait(const evd_task_conf *c, bool ok, int64_t lasted, unsigned *failures) {
        int64_t wait = c->restart_delay > 0 ? c->restart_delay : BACKOFF_MIN;

        if (ok || (c->restart_reset_after > 0 && lasted >= c->restart_reset_after))
                *failures = 0;
        if (ok)
                return c->restart_delay;
        ++*failures;
        for (unsigned i = 1; i < *failures && wait < c->restart_max_delay; i++)
                wait *= 2;
        return wait < c->restart_max_delay ? wait : c->restart_max_delay;
}

/* start_limit, systemd's way: a window opens at a start; more than burst
 * starts before it closes and the task gives up. */
typedef struct start_window {
        int64_t begin;
        uint64_t starts;
} start_window;

static bool start_allowed(const evd_task_conf *c, start_window *w, int64_t at) {
        if (c->start_limit.burst == 0)
                return true;
        if (w->starts == 0 || at - w->begin >= c->start_limit.interval) {
                w->begin = at;
                w->starts = 0;
        }
        return ++w->starts <= c->start_limit.burst;
}

/* The task gives up: marked failed, and down until evtaskctl start. */
static int give_up(evd_job *job, unsigned run) {
        const evd_task_conf *c = &job->conf;
        long long ms = c->start_limit.interval / 1000000;

        job->start_limited = true;
        evd_log_emit(job->log, LOG_ERR, EVD_EV_FAILED, c->name,
                     EVD_FIELDS(EVD_NUM("run", run), EVD_NUM("start_limit", c->start_limit.burst),
                                EVD_NUM("interval_ms", ms)),
                     "start limit hit: more than %llu starts in %lld ms; down until evtaskctl start",
                     (unsigned long long) c->start_limit.burst, ms);
        return -EIO;
}

/* A restart under the policy (not a schedule's next run): one record, with
 * the wait and the failures in a row it follows. */
static void log_restart(evd_job *job, unsigned run, int64_t wait, unsigned failures) {
        long long ms = wait / 1000000;

        evd_log_emit(job->log, LOG_NOTICE, EVD_EV_RESTARTING, job->conf.name,
                     EVD_FIELDS(EVD_NUM("run", run + 1), EVD_NUM("delay_ms", ms), EVD_NUM("failures", failures)),
                     "run %u in %lld ms (%u failure%s in a row)", run + 1, ms, failures, failures == 1 ? "" : "s");
}

static int exec_runs(evd_job *job, evd_exec_calendar *cal);

static int exec_run(evd_job *job) {
        const evd_task_conf *c = &job->conf;
        evd_exec_calendar cal = { .clock_fd = -1 }; /* fd 0 is not ours to close */
        int r = 0;

        if (c->schedule == EVD_SCHEDULE_CALENDAR) {
                r = evd_exec_calendar_start(job, &cal);
                if (r == 0)
                        r = evd_exec_calendar_wait(job, &cal);
        }
        if (r == 0)
                r = exec_runs(job, &cal);
        evd_exec_calendar_clear(&cal);
        return r == -ENOENT && c->schedule == EVD_SCHEDULE_CALENDAR ? 0 : r;
}

/* Run after run, per the schedule and the restart policy: ends with the
 * last (schedule = once), a cancel, the start limit, or a calendar with no
 * time left (-ENOENT). */
static int exec_runs(evd_job *job, evd_exec_calendar *cal) {
        const evd_task_conf *c = &job->conf;
        start_window window = { 0 };
        unsigned failures = 0;

        evd_limits_log(job->log, c, evd_cgroup_limits(), evd_cgroup_no_limits());
        start_allowed(c, &window, evt_time_now());
        for (unsigned run = 1;; run++) {
                int64_t started = evt_time_now(), next, wait;
                int status = 0, r;
                bool ok, cancelled;

                /* A shielded job's run completes whatever comes; a cancel
                 * that came meanwhile ends the job after it. */
                if (c->shield)
                        evt_shield_push();
                r = run_once(job, run, &status);
                cancelled = c->shield && evt_shield_pop() < 0;
                if (r == -ECANCELED)
                        return r;
                ok = r == 0 && succeeded(status);
                if (ok && c->ready == EVD_READY_EXITED)
                        evd_job_ready(job, "exited");
                if (c->schedule == EVD_SCHEDULE_ONCE &&
                    (c->restart == EVD_RESTART_NO || (c->restart == EVD_RESTART_ON_FAILURE && ok)))
                        return ok ? 0 : -EIO; /* done anyway: the cancel cut nothing short */
                if (cancelled)
                        return -ECANCELED;
                if (c->schedule == EVD_SCHEDULE_CALENDAR) {
                        r = evd_exec_calendar_after(job, cal, run);
                        if (r == 0)
                                r = evd_exec_calendar_wait(job, cal);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (c->schedule == EVD_SCHEDULE_INTERVAL) {
                        next = next_start(job, run, started);
                } else {
                        wait = restart_wait(c, ok, evt_time_now() - started, &failures);
                        next = evt_time_now() + wait;
                        if (!start_allowed(c, &window, next))
                                return give_up(job, run);
                        /* schedule = always runs again after a success by
                         * its schedule; anything else is a restart. */
                        if (!ok || c->schedule == EVD_SCHEDULE_ONCE)
                                log_restart(job, run, wait, failures);
                }
                r = wait_next(job, evt_deadline_at(next));
                if (r < 0)
                        return r;
        }
}

const evd_kind evd_kind_exec = { .check = exec_check, .probe = exec_probe, .run = exec_run, .logs_own_end = true };
