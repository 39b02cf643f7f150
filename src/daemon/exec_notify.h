/* An exec run's own NOTIFY_SOCKET, for `ready = notify`: the service
 * manager's protocol (sd_notify(3)), so that a program written for
 * systemd says READY=1 and STATUS= to evtaskd unchanged. */
#pragma once

#include "identity.h"
#include "jobs.h"

typedef struct evd_exec_notify evd_exec_notify;

/* Opens run `run`'s socket and watches it from the loop: READY=1 makes
 * the job ready (evd_job_ready), STATUS= is kept as its notify_status and
 * logged. Only datagrams from the run's user (id, or the daemon's) or
 * root count. *env becomes a new array (free only it): the entries of
 * *env, then NOTIFY_SOCKET=. 0 or -errno. */
int evd_exec_notify_open(evd_job *job, unsigned run, const evd_identity *id, char ***env, evd_exec_notify **ret);
/* Reads what is left in the socket, then closes it. Accepts NULL. */
void evd_exec_notify_close(evd_exec_notify *n);
