/* schedule = calendar for exec jobs: when the next run is due on the wall
 * clock (on_calendar in timezone, plus the host's jitter), the run missed
 * while the daemon was down (catch_up, kept in the state directory), and
 * the due times a long run covered (skipped, logged). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "calendar.h"
#include "jobs.h"

typedef struct evd_exec_calendar {
        evd_calendar cal;
        int64_t jitter;         /* ns after each due time, fixed for the host */
        int64_t due;            /* the due time (s since the epoch, without
                                 * the jitter) of the next run */
        bool covered;           /* the run under way started at `due`, not
                                 * early by evtaskctl run */
        char *state_path;       /* catch_up = once: the last due time run;
                                 * NULL: no state kept */
        int clock_fd;           /* a timerfd that wakes the wait when the
                                 * system clock is set, or -1 */
        bool rezone;            /* the due time is asked again (a reload:
                                 * the system's zone may have changed) */
} evd_exec_calendar;

/* Reads the job's schedule and sets the first due time: the next one
 * from now, or at once for catch_up = once when one was missed since the
 * last run (logged). 0; -ENOENT when no time matches any more (logged);
 * -ENOMEM. */
int evd_exec_calendar_start(evd_job *job, evd_exec_calendar *s);
/* Until the due run, on the wall clock, or until evtaskctl run asks for
 * it at once; then the run begins (for catch_up, the state file records
 * its due time, written atomically). 0, or the cancel. */
int evd_exec_calendar_wait(evd_job *job, evd_exec_calendar *s);
/* evtaskctl run: wakes the job's wait (its run_now event is set). */
void evd_exec_calendar_poke(evd_exec_calendar *s);
/* A reload: the wait asks for the next due time again, from now. */
void evd_exec_calendar_rezone(evd_exec_calendar *s);
/* Run `run` has ended: the next due time still ahead, the ones the run
 * covered skipped and logged as one record. 0, or -ENOENT (logged). */
int evd_exec_calendar_after(evd_job *job, evd_exec_calendar *s, unsigned run);
void evd_exec_calendar_clear(evd_exec_calendar *s);

/* Where state is kept, into buf: [daemon] state_directory (configured),
 * else the first of $STATE_DIRECTORY (systemd's StateDirectory=), else
 * /var/lib/evtaskd. 0 or -ENAMETOOLONG. */
int evd_state_directory(const char *configured, char *buf, size_t size);
