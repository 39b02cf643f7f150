/* evtaskd's HTTP endpoint ([daemon] http_listen): Prometheus metrics at
 * /metrics and the probes /livez and /readyz, served by libmicrohttpd from
 * the daemon's own loop (metrics.c counts, metrics_exposition.c writes). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "log.h"

typedef struct evd_http evd_http;
typedef struct evd_metrics evd_metrics;
struct evd_daemon;

/* HOST:PORT with an IPv4 address or a bracketed IPv6 one, as an address:
 * 0 or -EINVAL. */
int evd_listen_address_parse(const char *s, struct sockaddr_storage *ret, socklen_t *ret_len);

/* Opens http_listen when it is set (d->http stays NULL when not): 0, or
 * -errno with the reason in err. */
int evd_http_open(struct evd_daemon *d, char *err, size_t errlen);
/* What /readyz says: started, no shutdown begun, and not paused unless
 * ready_when_paused. */
bool evd_http_ready(struct evd_daemon *d);
/* Stops serving and closes every connection. Accepts NULL. */
void evd_http_free(evd_http *http);

/* ---- metrics.c ---- */

/* The counters the records feed (evd_log_set_observer's function and
 * data). 0 or -ENOMEM. */
int evd_metrics_new(evd_metrics **ret);
void evd_metrics_free(evd_metrics *m);
extern evd_log_observer evd_metrics_observe;

/* What evtaskctl status shows of a task's counters. */
typedef struct evd_task_counts {
        uint64_t runs, restarts, failures;
        int last_exit_code;
        bool has_exit_code;     /* a run has exited with a code */
} evd_task_counts;
/* Task `name`'s counters: 0, or -ENOENT for a task no record named. */
int evd_metrics_task_counts(const evd_metrics *m, const char *name, evd_task_counts *ret);

/* ---- metrics_exposition.c ---- */

/* A family's # HELP and # TYPE lines. */
void evd_metrics_family(FILE *f, const char *name, const char *type, const char *help);
/* The exposition, text format 0.0.4, read a piece at a time: the tasks
 * are the ones there when the reader is made (a task's entry is never
 * freed before the daemon's end), their values as they are when their
 * piece is written. */
typedef struct evd_metrics_reader evd_metrics_reader;
int evd_metrics_reader_new(struct evd_daemon *d, evd_metrics_reader **ret);
/* Up to max bytes of it into buf: how many, 0 at its end, or -ENOMEM. */
ssize_t evd_metrics_read(evd_metrics_reader *r, char *buf, size_t max);
void evd_metrics_reader_free(evd_metrics_reader *r);

/* ---- metrics_process.c ---- */
/* The process_* families. */
void evd_metrics_write_process(FILE *f);
