/* The control socket: evtaskctl's way into the running daemon (control.c:
 * the socket and its clients; control_verbs.c: what each request does). */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

struct evd_daemon;
struct json_t;

typedef struct evd_control evd_control;

/* Who sent a request, from the socket's credentials. */
typedef struct evd_control_peer {
        pid_t pid;
        uid_t uid;
        gid_t gid;
        bool may_change;        /* root, the daemon's user or control_group;
                                 * otherwise only the read-only verbs */
} evd_control_peer;

/* Opens the socket [daemon] control_socket names (or the default place),
 * before privileges are dropped: owned by the daemon's user and
 * control_group, mode 0660 (0666 with control_readonly). A stale socket of
 * a daemon that died is replaced; one a live daemon holds is not. 0 with
 * d->control set, or NULL when there is none (control_socket = none, or a
 * default place that cannot be had: a warning record says why); or, for
 * a control_socket that was set and cannot be had, -errno with
 * "FILE:LINE: key 'control_socket' ..." in err. */
int evd_control_open(struct evd_daemon *d, char *err, size_t errlen);
/* Closes the clients and removes the socket. Accepts NULL. */
void evd_control_free(evd_control *ctl);

/* A failed reply: ok false, the message and its code ("unknown-task",
 * evtaskctl(1) lists them). NULL: no memory. */
struct json_t *evd_control_error(const char *code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- control_verbs.c ---- */

/* The reply to a request (a JSON object, the caller's reference): its
 * `ok`, what was asked for or why not. Mutating verbs are logged with the
 * peer as `control` records. */
struct json_t *evd_control_answer(struct evd_daemon *d, const evd_control_peer *peer, struct json_t *request);
