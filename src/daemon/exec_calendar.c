/* schedule = calendar for exec jobs: due times from on_calendar on the wall
 * clock, the host's fixed jitter after each, the catch-up run and its
 * state file, and the due times a long run covered.
 *
 * Due times are whole seconds since the epoch, matched in the task's
 * zone; a run starts `jitter` after its due time. The wait is on the
 * loop's monotonic clock, for as long as the wall clock says is left, and
 * a timerfd with TFD_TIMER_CANCEL_ON_SET ends it early when the system
 * clock is set: the time left is then asked again. A slice of at most
 * CLOCK_SLICE bounds each wait where no such timerfd can be had, or the
 * wall clock moves without the kernel (libfaketime). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "exec_calendar.h"

#define NS EVD_NSEC_PER_SEC
#define DEFAULT_STATE_DIRECTORY "/var/lib/evtaskd"
/* Skipped due times are counted one by one up to this many; a run that
 * covered more says "at least". */
#define SKIPPED_COUNT_MAX 1000
/* The longest the wall clock is trusted not to have moved unseen. */
#define CLOCK_SLICE EVT_SEC(10)

static int64_t wall_now(void) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t) ts.tv_sec * NS + ts.tv_nsec;
}

/* The due time (s) whose run would start at or before wall time ns. */
static int64_t due_before(const evd_exec_calendar *s, int64_t ns) {
        int64_t t = ns - s->jitter;

        return t >= 0 ? t / NS : -((-t + NS - 1) / NS);
}

int evd_state_directory(const char *configured, char *buf, size_t size) {
        const char *env = getenv("STATE_DIRECTORY");
        int n;

        if (configured)
                n = snprintf(buf, size, "%s", configured);
        else if (env && env[0] == '/')
                n = snprintf(buf, size, "%.*s", (int) strcspn(env, ":"), env);
        else
                n = snprintf(buf, size, "%s", DEFAULT_STATE_DIRECTORY);
        return n < 0 || (size_t) n >= size ? -ENAMETOOLONG : 0;
}

/* /etc/machine-id, or "" where there is none. */
static void machine_id(char *buf, size_t size) {
        FILE *f = fopen("/etc/machine-id", "re");

        buf[0] = '\0';
        if (f && fgets(buf, (int) size, f))
                buf[strcspn(buf, "\n")] = '\0';
        if (f)
                fclose(f);
}

/* ---- the state file ---- */

static int state_read(const char *path, int64_t *ret) {
        FILE *f = fopen(path, "re");
        long long v;
        int ok;

        if (!f)
                return -errno;
        ok = fscanf(f, "%lld", &v) == 1;
        fclose(f);
        if (!ok)
                return -EBADMSG;
        *ret = v;
        return 0;
}

/* Written to a temporary file, synced, renamed over the old one, and the
 * directory synced: a crash leaves the old time or the new, never half. */
static int state_write(const char *path, int64_t due) {
        char tmp[4096], text[32], dir[4096];
        int fd, n = snprintf(text, sizeof(text), "%lld\n", (long long) due), r = 0;

        if ((size_t) snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
                return -ENAMETOOLONG;
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;
        if (write(fd, text, (size_t) n) != n || fsync(fd) < 0)
                r = errno ? -errno : -EIO;
        if (close(fd) < 0 && r == 0)
                r = -errno;
        if (r == 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0) {
                unlink(tmp);
                return r;
        }
        snprintf(dir, sizeof(dir), "%.*s", (int) (strrchr(path, '/') - path), path);
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        r = fsync(fd) < 0 ? -errno : 0;
        close(fd);
        return r;
}

/* ---- due times ---- */

/* The first due time after `after`, recorded as the job's next run. */
static int set_next(evd_job *job, evd_exec_calendar *s, int64_t after) {
        const evd_task_conf *c = &job->conf;
        char when[64];
        int r = evd_calendar_next(&s->cal, c->timezone, after, &s->due);

        job->next_run = 0;
        if (r == -ENOENT) {
                evd_log_emit(job->log, LOG_NOTICE, EVD_EV_FINISHED, c->name, EVD_NO_FIELDS,
                             "no time matches on_calendar '%s' any more", c->on_calendar);
                return r;
        }
        if (r < 0)
                return r;
        job->next_run = s->due * NS + s->jitter;
        evd_calendar_format(job->next_run / NS, c->timezone, when, sizeof(when));
        evd_log_emit(job->log, LOG_INFO, EVD_EV_SCHEDULED, c->name,
                     EVD_FIELDS(EVD_NUM("due", s->due), EVD_NUM("jitter_ms", s->jitter / 1000000)),
                     "next run at %s", when);
        return 0;
}

/* catch_up = once: the state file's path, and the due time a run is owed
 * for, if one was missed. Problems with the directory are warnings: the
 * schedule goes on, without catching up. */
static int catch_up(evd_job *job, evd_exec_calendar *s, bool *ret_owed) {
        const evd_task_conf *c = &job->conf;
        char dir[4096], was[64], due[64];
        int64_t last = 0, missed;
        int r;

        *ret_owed = false;
        r = evd_state_directory(evd_jobs_state_directory(job->jobs), dir, sizeof(dir));
        if (r == 0 && mkdir(dir, 0755) < 0 && errno != EEXIST)
                r = -errno;
        if (r < 0) {
                evd_log_emit(job->log, LOG_WARNING, EVD_EV_FAILED, c->name, EVD_NO_FIELDS,
                             "state directory %s: %s: missed runs will not be caught up", dir, strerror(-r));
                return 0;
        }
        if (asprintf(&s->state_path, "%s/%s.last-run", dir, c->name) < 0) {
                s->state_path = NULL;
                return -ENOMEM;
        }
        r = state_read(s->state_path, &last);
        if (r == -ENOENT)
                return 0; /* never run here: nothing was missed */
        if (r < 0) {
                evd_log_emit(job->log, LOG_WARNING, EVD_EV_FAILED, c->name, EVD_NO_FIELDS,
                             "cannot read %s: %s: missed runs will not be caught up", s->state_path,
                             r == -EBADMSG ? "not a time" : strerror(-r));
                return 0;
        }
        if (evd_calendar_next(&s->cal, c->timezone, last, &missed) < 0 || missed > due_before(s, wall_now()))
                return 0;
        evd_calendar_format(last, c->timezone, was, sizeof(was));
        evd_calendar_format(missed, c->timezone, due, sizeof(due));
        evd_log_emit(job->log, LOG_NOTICE, EVD_EV_SCHEDULED, c->name,
                     EVD_FIELDS(EVD_NUM("due", missed), EVD_NUM("last", last)),
                     "catching up: the run due at %s was missed (the last was due at %s)", due, was);
        *ret_owed = true;
        return 0;
}

int evd_exec_calendar_start(evd_job *job, evd_exec_calendar *s) {
        const evd_task_conf *c = &job->conf;
        char why[200], id[128];
        bool owed = false;
        int r;

        *s = (evd_exec_calendar) { .clock_fd = -1 };
        r = evd_calendar_parse(c->on_calendar, &s->cal, why, sizeof(why));
        if (r < 0)
                return r; /* the config's check read it already */
        machine_id(id, sizeof(id));
        s->jitter = evd_calendar_jitter(id, c->name, c->jitter);
        if (c->catch_up == EVD_CATCH_UP_ONCE)
                r = catch_up(job, s, &owed);
        if (r < 0)
                return r;
        if (owed) {
                /* One run for all that were missed: it stands for every
                 * due time up to now. */
                s->due = due_before(s, wall_now());
                job->next_run = wall_now();
                return 0;
        }
        return set_next(job, s, due_before(s, wall_now()));
}

/* ---- the wait ---- */

/* Armed to wake when the system clock is set (and, far in the future,
 * never otherwise): 0, or -errno and the wait goes by slices alone. */
static int clock_arm(evd_exec_calendar *s) {
        struct itimerspec far = { .it_value = { .tv_sec = (time_t) 1 << 40 } };

        if (s->clock_fd < 0)
                s->clock_fd = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK | TFD_CLOEXEC);
        if (s->clock_fd < 0)
                return -errno;
        if (timerfd_settime(s->clock_fd, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &far, NULL) < 0) {
                int r = -errno;

                close(s->clock_fd);
                s->clock_fd = -1;
                return r;
        }
        return 0;
}

void evd_exec_calendar_poke(evd_exec_calendar *s) {
        struct itimerspec now = { .it_value = { .tv_nsec = 1 } };

        if (s->clock_fd >= 0)
                timerfd_settime(s->clock_fd, 0, &now, NULL);
}

void evd_exec_calendar_rezone(evd_exec_calendar *s) {
        s->rezone = true;
        evd_exec_calendar_poke(s);
}

/* The run begins, at its due time (covered) or early. */
static void began(evd_job *job, evd_exec_calendar *s, bool covered) {
        int r;

        s->covered = covered;
        if (!covered || !s->state_path)
                return;
        r = state_write(s->state_path, s->due);
        if (r < 0)
                evd_log_emit(job->log, LOG_WARNING, EVD_EV_FAILED, job->conf.name, EVD_NO_FIELDS,
                             "cannot write %s: %s: a run missed later will not be caught up", s->state_path,
                             strerror(-r));
}

int evd_exec_calendar_wait(evd_job *job, evd_exec_calendar *s) {
        int r = 0;

        job->calendar = s;
        for (;;) {
                int64_t left = s->due * NS + s->jitter - wall_now();
                evt_deadline until = evt_deadline_in(left < CLOCK_SLICE ? left : CLOCK_SLICE);
                uint64_t expirations;

                if (evt_event_is_set(job->run_now) || left <= 0)
                        break;
                if (s->rezone) {
                        s->rezone = false;
                        r = set_next(job, s, due_before(s, wall_now()));
                        if (r < 0)
                                break;
                        continue;
                }
                if (clock_arm(s) == 0)
                        r = evt_fd_wait(s->clock_fd, EVT_READ, until, NULL);
                else
                        r = evt_event_wait(job->run_now, until);
                if (r < 0 && r != -ETIMEDOUT)
                        break;
                /* Set, or poked: ECANCELED or a count; look again either way. */
                if (s->clock_fd >= 0 && read(s->clock_fd, &expirations, sizeof(expirations)) < 0 &&
                    errno == ECANCELED) {
                        char when[64];

                        evd_calendar_format(s->due, job->conf.timezone, when, sizeof(when));
                        evd_log_emit(job->log, LOG_INFO, EVD_EV_SCHEDULED, job->conf.name,
                                     EVD_FIELDS(EVD_NUM("due", s->due)),
                                     "the system clock was set: the next run is still at %s", when);
                }
                r = 0;
        }
        job->calendar = NULL;
        if (r < 0)
                return r;
        if (evt_event_is_set(job->run_now)) {
                evt_event_clear(job->run_now);
                began(job, s, false);
        } else {
                began(job, s, true);
        }
        return 0;
}

int evd_exec_calendar_after(evd_job *job, evd_exec_calendar *s, unsigned run) {
        const evd_task_conf *c = &job->conf;
        int64_t now = wall_now(), n;
        uint64_t skipped = 0;
        /* A run started early (evtaskctl run) did not take its due time. */
        int r = evd_calendar_next(&s->cal, c->timezone, s->covered ? s->due : s->due - 1, &n);

        while (r == 0 && n * NS + s->jitter <= now && skipped < SKIPPED_COUNT_MAX) {
                skipped++;
                r = evd_calendar_next(&s->cal, c->timezone, n, &n);
        }
        if (skipped > 0)
                evd_log_emit(job->log, LOG_WARNING, EVD_EV_SKIPPED, c->name,
                             EVD_FIELDS(EVD_NUM("run", run), EVD_NUM("skipped", skipped)),
                             "run %u outlasted its due times: %s%llu run%s skipped", run,
                             skipped == SKIPPED_COUNT_MAX ? "at least " : "", (unsigned long long) skipped,
                             skipped == 1 ? "" : "s");
        return set_next(job, s, r == 0 && n * NS + s->jitter > now ? n - 1 : due_before(s, now));
}

void evd_exec_calendar_clear(evd_exec_calendar *s) {
        free(s->state_path);
        s->state_path = NULL;
        if (s->clock_fd >= 0)
                close(s->clock_fd);
        s->clock_fd = -1;
}
