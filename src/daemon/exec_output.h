/* An exec run's output: each line of its stdout and stderr becomes an
 * `output` record, read by a task of its own per pipe, to the pipe's end. */
#pragma once

#include "evtask.h"
#include "jobs.h"

/* Escaped bytes of a line beyond which it goes in several records. */
#define EVD_OUTPUT_RECORD_MAX 1024

typedef struct evd_output evd_output;

/* Starts the readers of a run's pipes (out_fd its stdout, err_fd its
 * stderr), with the flags of opts, named "NAME/stdout" and "NAME/stderr".
 * They own the fds from here on, even if they cannot be started (NULL: no
 * memory; the pipes are closed). */
evd_output *evd_output_start(const evd_job *job, int out_fd, int err_fd, const evt_task_opts *opts);

/* After the run's exit: waits until its output is logged, to the pipes'
 * end, or until they stay silent while something the run left behind keeps
 * them open. A forced cancel ends the wait at once, and the readers log
 * what is in the pipes without waiting. Frees o. 0, or why the wait was
 * cut (-ETIMEDOUT, -ECANCELED). */
int evd_output_finish(evd_output *o);

/* One line as an output record shows it: bytes that are not printable
 * text (control characters other than tab, C1 controls, bytes that are not
 * UTF-8) as \xNN, a backslash as \\. At most max bytes of whole characters
 * go to out, which must hold max + 1; returns the length written, and in
 * *ret_used (if not NULL) how many bytes of p it took. */
size_t evd_output_escape(const char *p, size_t n, char *out, size_t max, size_t *ret_used);
