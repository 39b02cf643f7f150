/* An exec run's output: each line of its stdout and stderr becomes an
 * `output` record, read by a task of its own per pipe. */
#pragma once

#include "evtask.h"
#include "jobs.h"

/* Bytes of a line beyond which it is split into several records. */
#define EVD_OUTPUT_LINE_MAX 1024

/* Starts a reader of pipe fd (the run's `stream`, "stdout" or "stderr") in
 * `group`, named "NAME/stream" with the flags of opts. The reader owns fd
 * from here on, even if it cannot be started (group NULL, no memory). */
void evd_output_reader_start(evt_group *group, const evd_job *job, int fd, const char *stream,
                             const evt_task_opts *opts);

/* One line as an output record shows it: bytes that are not printable
 * text (control characters other than tab, bytes that are not UTF-8) as
 * \xNN. out must hold 4 * n + 1 bytes; returns the length written. */
size_t evd_output_escape(const char *p, size_t n, char *out);
