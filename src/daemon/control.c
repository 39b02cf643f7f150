/* The control socket: an AF_UNIX stream socket, one JSON request a
 * connection (a line), one JSON reply (a line), then the daemon closes it.
 * The loop never waits on a client: every socket is non-blocking, a
 * request is at most REQUEST_MAX bytes, at most CLIENTS_MAX connections
 * are served at once, and each has CLIENT_TIMEOUT in all to send its
 * request and take its reply. Who may do what follows from the peer's
 * credentials (SO_PEERCRED, SO_PEERGROUPS). */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "control.h"
#include "control_path.h"
#include "daemon.h"
#include "identity.h"

#define REQUEST_MAX (64 * 1024)
#define CLIENTS_MAX 64
#define CLIENT_TIMEOUT 5.0 /* seconds, from accept to the reply's last byte */
#define PEER_GROUPS_MAX 256

struct evd_control {
        evd_daemon *d;
        int fd;
        char *path;             /* to remove at the end */
        ev_io accept_w;
        evt__list clients;
        unsigned n_clients;
        gid_t group;            /* control_group's, when has_group */
        bool has_group;
        bool readonly;          /* control_readonly: anyone may read */
};

typedef struct client {
        evd_control *ctl;
        int fd;
        ev_io io;
        ev_timer timeout;
        evd_control_peer peer;
        char *buf;              /* the request as it comes, then the reply */
        size_t len, sent;
        bool replying;
        evt__list link;
} client;

static void client_free(client *c) {
        struct ev_loop *ev = evt_loop_ev(c->ctl->d->loop);

        ev_io_stop(ev, &c->io);
        ev_timer_stop(ev, &c->timeout);
        close(c->fd);
        free(c->buf);
        evt__list_remove(&c->link);
        c->ctl->n_clients--;
        free(c);
}

/* ---- who is asking ---- */

static bool in_group(int fd, gid_t primary, gid_t group) {
        gid_t groups[PEER_GROUPS_MAX];
        socklen_t len = sizeof(groups);

        if (primary == group)
                return true;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
                return false;
        for (size_t i = 0; i < len / sizeof(gid_t); i++)
                if (groups[i] == group)
                        return true;
        return false;
}

/* 0 with the peer filled, or -EACCES for one that may not talk at all. */
static int peer_get(evd_control *ctl, int fd, evd_control_peer *p) {
        struct ucred cred;
        socklen_t len = sizeof(cred);

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
                return -errno;
        *p = (evd_control_peer) { .pid = cred.pid, .uid = cred.uid, .gid = cred.gid };
        p->may_change =
                cred.uid == 0 || cred.uid == geteuid() || (ctl->has_group && in_group(fd, cred.gid, ctl->group));
        return p->may_change || ctl->readonly ? 0 : -EACCES;
}

/* ---- one connection ---- */

static void reply_cb(struct ev_loop *ev, ev_io *w, int revents);

/* Sends what is left of the reply; frees the client once it is out or the
 * peer is gone. */
static void reply_send(client *c) {
        while (c->sent < c->len) {
                ssize_t n = send(c->fd, c->buf + c->sent, c->len - c->sent, MSG_NOSIGNAL);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                        return; /* the watcher waits for room */
                if (n < 0) {
                        client_free(c);
                        return;
                }
                c->sent += (size_t) n;
        }
        client_free(c);
}

/* A reply as its line of text, "version" added; takes the reference.
 * NULL: no memory. */
static char *reply_text(json_t *reply) {
        char *text, *line = NULL;

        json_object_set_new(reply, "version", json_integer(EVD_CONTROL_VERSION));
        text = json_dumps(reply, JSON_COMPACT);
        json_decref(reply);
        if (text && asprintf(&line, "%s\n", text) < 0)
                line = NULL;
        free(text);
        return line;
}

/* Turns the connection around: from here it only writes `reply`. */
static void reply_start(client *c, json_t *reply) {
        struct ev_loop *ev = evt_loop_ev(c->ctl->d->loop);

        free(c->buf);
        c->buf = reply_text(reply);
        if (!c->buf) {
                client_free(c);
                return;
        }
        c->len = strlen(c->buf);
        c->sent = 0;
        c->replying = true;
        ev_io_stop(ev, &c->io);
        ev_io_set(&c->io, c->fd, EV_WRITE);
        ev_set_cb(&c->io, reply_cb);
        ev_io_start(ev, &c->io);
        reply_send(c);
}

json_t *evd_control_error(const char *code, const char *fmt, ...) {
        char msg[256];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        return json_pack("{s:b, s:s, s:s}", "ok", 0, "error", msg, "code", code);
}

/* The request is the bytes up to the first newline, or all of them at
 * the end of the stream. */
static void request_handle(client *c, size_t len) {
        json_error_t jerr;
        json_t *req = json_loadb(c->buf, len, JSON_REJECT_DUPLICATES, &jerr), *reply;

        if (!req)
                reply = evd_control_error("bad-request", "not a JSON request: %s (at byte %d)", jerr.text,
                                          jerr.position);
        else if (!json_is_object(req))
                reply = evd_control_error("bad-request", "a request is a JSON object");
        else
                reply = evd_control_answer(c->ctl->d, &c->peer, req);
        json_decref(req);
        if (!reply)
                reply = evd_control_error("internal", "out of memory");
        reply_start(c, reply);
}

static void request_cb(struct ev_loop *ev, ev_io *w, int revents) {
        client *c = w->data;
        char *nl;
        ssize_t n;

        (void) ev;
        (void) revents;
        n = recv(c->fd, c->buf + c->len, REQUEST_MAX + 1 - c->len, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
                return;
        if (n < 0 || (n == 0 && c->len == 0)) {
                client_free(c);
                return;
        }
        c->len += (size_t) n;
        nl = memchr(c->buf, '\n', c->len);
        if (nl)
                request_handle(c, (size_t) (nl - c->buf));
        else if (c->len > REQUEST_MAX)
                reply_start(c, evd_control_error("too-large", "a request is at most %d bytes", REQUEST_MAX));
        else if (n == 0)
                request_handle(c, c->len);
}

static void reply_cb(struct ev_loop *ev, ev_io *w, int revents) {
        (void) ev;
        (void) revents;
        reply_send(w->data);
}

/* A client too slow to ask or to read its answer is closed. */
static void timeout_cb(struct ev_loop *ev, ev_timer *w, int revents) {
        (void) ev;
        (void) revents;
        client_free(w->data);
}

/* Says no on a connection that will not be served, without waiting: a
 * reply that does not fit in the socket's buffer at once is dropped. */
static void refuse(int fd, const char *code, const char *why) {
        char *line = reply_text(evd_control_error(code, "%s", why));

        if (line)
                (void) !send(fd, line, strlen(line), MSG_NOSIGNAL | MSG_DONTWAIT);
        free(line);
        close(fd);
}

static void accept_cb(struct ev_loop *ev, ev_io *w, int revents) {
        evd_control *ctl = w->data;

        (void) revents;
        /* A few at a time: a flood of connections leaves the loop to the
         * tasks between rounds. */
        for (int i = 0; i < 16; i++) {
                int fd = accept4(ctl->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                evd_control_peer peer;
                client *c;

                if (fd < 0)
                        return; /* EAGAIN, or out of descriptors: the next round */
                if (peer_get(ctl, fd, &peer) < 0) {
                        refuse(fd, "denied", "permission denied: not root, the daemon's user or in control_group");
                        continue;
                }
                if (ctl->n_clients >= CLIENTS_MAX) {
                        refuse(fd, "busy", "too many clients at once; try again");
                        continue;
                }
                c = calloc(1, sizeof(*c));
                if (c)
                        c->buf = malloc(REQUEST_MAX + 1);
                if (!c || !c->buf) {
                        if (c)
                                free(c);
                        refuse(fd, "internal", "out of memory");
                        continue;
                }
                c->ctl = ctl;
                c->fd = fd;
                c->peer = peer;
                ev_io_init(&c->io, request_cb, fd, EV_READ);
                c->io.data = c;
                ev_timer_init(&c->timeout, timeout_cb, CLIENT_TIMEOUT, 0);
                c->timeout.data = c;
                ev_io_start(ev, &c->io);
                ev_timer_start(ev, &c->timeout);
                evt__list_push_back(&ctl->clients, &c->link);
                ctl->n_clients++;
        }
}

/* ---- the socket ---- */

/* The pid of the live daemon that holds the socket at path, or 0 when
 * there is none (a stale file, or nothing). */
static pid_t holder(const struct sockaddr_un *sa) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct ucred cred = { 0 };
        socklen_t len = sizeof(cred);

        if (fd < 0)
                return 0;
        if (connect(fd, (const struct sockaddr *) sa, sizeof(*sa)) < 0 ||
            getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
                cred.pid = 0;
        close(fd);
        return cred.pid;
}

/* Binds and listens at path: 0, or -errno with the reason in why. */
static int listen_at(evd_control *ctl, const char *path, uid_t uid, gid_t gid, char *why, size_t whylen) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        mode_t mode = ctl->readonly ? 0666 : 0660;
        struct stat st;
        pid_t pid;

        if (strlen(path) >= sizeof(sa.sun_path)) {
                snprintf(why, whylen, "'%s' is too long for a socket", path);
                return -ENAMETOOLONG;
        }
        strcpy(sa.sun_path, path);
        ctl->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (ctl->fd < 0)
                goto fail;
        if (bind(ctl->fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                if (errno != EADDRINUSE)
                        goto fail;
                pid = holder(&sa);
                if (pid > 0) {
                        snprintf(why, whylen, "'%s' is the control socket of evtaskd pid %ld, which is running", path,
                                 (long) pid);
                        return -EADDRINUSE;
                }
                /* A daemon that died left it: only a socket is replaced. */
                if (lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode)) {
                        snprintf(why, whylen, "'%s' exists and is not a socket", path);
                        return -EEXIST;
                }
                if (unlink(path) < 0 || bind(ctl->fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                        goto fail;
        }
        ctl->path = strdup(path);
        if (!ctl->path)
                return -ENOMEM;
        /* Made as the daemon is now; given away only when that is not
         * whom it is for (systemd's @system-service filter denies chown
         * to a unit that has no need of it). */
        if ((uid != geteuid() || gid != getegid()) && chown(path, uid, gid) < 0)
                goto fail;
        if (chmod(path, mode) < 0 || listen(ctl->fd, 128) < 0)
                goto fail;
        return 0;
fail:
        snprintf(why, whylen, "cannot listen at '%s': %s", path, strerror(errno));
        return -errno;
}

/* The directory of a default socket: made for the daemon's user when it
 * is missing (/run/evtaskd, $XDG_RUNTIME_DIR/evtaskd). */
static void make_parent(const char *path, uid_t uid, gid_t gid) {
        char dir[sizeof(((struct sockaddr_un *) NULL)->sun_path)];
        char *slash;

        snprintf(dir, sizeof(dir), "%s", path);
        slash = strrchr(dir, '/');
        if (!slash || slash == dir)
                return;
        *slash = '\0';
        if (mkdir(dir, 0755) == 0 && chown(dir, uid, gid) < 0)
                rmdir(dir);
}

/* Whom the socket belongs to: the daemon's user-to-be and control_group
 * (else its group). */
static int owners(evd_control *ctl, const evd_config *c, uid_t *uid, gid_t *gid) {
        evd_identity id;
        char why[256];
        int r = evd_identity_get(c->user, c->group, &id, why, sizeof(why));

        if (r == 0) {
                *uid = id.uid;
                *gid = id.gid;
        }
        evd_identity_clear(&id);
        if (r == 0 && c->control_group) {
                struct group gr, *grp;
                char buf[16384];

                r = evd_lookup_group(c->control_group, &gr, buf, sizeof(buf), &grp);
                if (r == 0 && !grp)
                        r = -ESRCH;
                if (r == 0) {
                        *gid = ctl->group = grp->gr_gid;
                        ctl->has_group = true;
                }
        }
        return r;
}

int evd_control_open(evd_daemon *d, char *err, size_t errlen) {
        const evd_config *c = d->config;
        char path[sizeof(((struct sockaddr_un *) NULL)->sun_path)], why[PATH_MAX + 128];
        bool chosen = c->control_socket != NULL;
        evd_control *ctl;
        uid_t uid = 0;
        gid_t gid = 0;
        int r;

        d->control = NULL;
        if (chosen && strcmp(c->control_socket, "none") == 0)
                return 0;
        ctl = calloc(1, sizeof(*ctl));
        if (!ctl)
                return -ENOMEM;
        ctl->d = d;
        ctl->fd = -1;
        ctl->readonly = c->control_readonly;
        evt__list_init(&ctl->clients);
        r = owners(ctl, c, &uid, &gid);
        if (r < 0) {
                snprintf(why, sizeof(why), "cannot look up its owners: %s", strerror(-r));
        } else if (chosen) {
                r = listen_at(ctl, c->control_socket, uid, gid, why, sizeof(why));
        } else {
                r = evd_control_default_path(path, sizeof(path));
                if (r < 0) {
                        snprintf(why, sizeof(why), "no place for it: no $RUNTIME_DIRECTORY or $XDG_RUNTIME_DIR");
                } else {
                        make_parent(path, uid, gid);
                        r = listen_at(ctl, path, uid, gid, why, sizeof(why));
                }
        }
        if (r < 0) {
                evd_control_free(ctl);
                if (chosen) {
                        char where[PATH_MAX + 32];

                        evd_config_key_where(c, EVD_KEY_control_socket, where, sizeof(where));
                        snprintf(err, errlen, "%s: key 'control_socket' in [daemon]: %s", where, why);
                        return r;
                }
                evd_log_emit(d->log, LOG_WARNING, EVD_EV_CONTROL, NULL, EVD_NO_FIELDS,
                             "no control socket (%s); evtaskctl cannot reach this daemon", why);
                return 0;
        }
        ev_io_init(&ctl->accept_w, accept_cb, ctl->fd, EV_READ);
        ctl->accept_w.data = ctl;
        ev_io_start(evt_loop_ev(d->loop), &ctl->accept_w);
        /* The socket alone does not keep the loop alive. */
        ev_unref(evt_loop_ev(d->loop));
        d->control = ctl;
        return 0;
}

void evd_control_free(evd_control *ctl) {
        if (!ctl)
                return;
        while (!evt__list_empty(&ctl->clients))
                client_free(evt__container_of(ctl->clients.next, client, link));
        if (ev_is_active(&ctl->accept_w)) {
                ev_ref(evt_loop_ev(ctl->d->loop));
                ev_io_stop(evt_loop_ev(ctl->d->loop), &ctl->accept_w);
        }
        if (ctl->fd >= 0)
                close(ctl->fd);
        if (ctl->path)
                unlink(ctl->path);
        free(ctl->path);
        free(ctl);
}
