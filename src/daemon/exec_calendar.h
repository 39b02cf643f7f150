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
} evd_exec_calendar;

/* Reads the job's schedule and sets the first due time: the next one
 * from now, or at once for catch_up = once when one was missed since the
 * last run (logged). 0; -ENOENT when no time matches any more (logged);
 * -ENOMEM. */
int evd_exec_calendar_start(evd_job *job, evd_exec_calendar *s);
/* Nanoseconds from now (the wall clock) to the due run; 0 when due. */
int64_t evd_exec_calendar_left(const evd_exec_calendar *s);
/* A run begins, at its due time (covered) or early: for catch_up, the
 * state file records the due time, written atomically. */
void evd_exec_calendar_began(evd_job *job, evd_exec_calendar *s, bool covered);
/* Run `run` has ended: the next due time still ahead, the ones the run
 * covered skipped and logged as one record. 0, or -ENOENT (logged). */
int evd_exec_calendar_after(evd_job *job, evd_exec_calendar *s, unsigned run);
void evd_exec_calendar_clear(evd_exec_calendar *s);

/* Where state is kept, into buf: [daemon] state_directory (configured),
 * else the first of $STATE_DIRECTORY (systemd's StateDirectory=), else
 * /var/lib/evtaskd. 0 or -ENAMETOOLONG. */
int evd_state_directory(const char *configured, char *buf, size_t size);
