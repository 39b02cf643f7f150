/* The HTTP endpoint: libmicrohttpd, driven by the daemon's loop through its
 * epoll descriptor (an ev_io on it, and an ev_timer for its timeouts), so
 * that every request is answered by the loop itself: /livez answering at
 * all is the proof that the loop turns. libmicrohttpd parses and bounds the
 * requests (connection limit, timeout, memory per connection; a deadline
 * per connection is the daemon's own); its sockets
 * are non-blocking, so a slow or hostile client never holds the loop. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon.h"
#include "http.h"

#define CONNECTIONS_MAX 64
#define CONNECTION_TIMEOUT 5            /* seconds without progress */
#define CONNECTION_DEADLINE 10.0        /* seconds from accept to the end */
#define CONNECTION_MEMORY (32 * 1024)   /* a request's headers must fit */
#define BACKLOG 128
#define METRICS_BLOCK (64 * 1024)       /* bytes of /metrics a write at most */

struct evd_http {
        evd_daemon *d;
        struct MHD_Daemon *mhd;
        int fd;                 /* the listening socket */
        char *unlink_path;      /* a unix socket's path, to remove at the end */
        ev_io io;               /* on libmicrohttpd's epoll descriptor */
        ev_timer timer;         /* its next timeout */
        unsigned connections;   /* open now */
        bool hit_limit;         /* reached CONNECTIONS_MAX, not run since below it */
};

int evd_listen_address_parse(const char *s, struct sockaddr_storage *ret, socklen_t *ret_len) {
        const char *colon = strrchr(s, ':');
        char host[INET6_ADDRSTRLEN + 2], *end;
        unsigned long port;
        size_t hlen;

        if (!colon || !colon[1])
                return -EINVAL;
        errno = 0;
        port = strtoul(colon + 1, &end, 10);
        if (*end || errno || port == 0 || port > 65535 || colon[1] == '-' || colon[1] == '+')
                return -EINVAL;
        hlen = (size_t) (colon - s);
        if (hlen == 0 || hlen >= sizeof(host))
                return -EINVAL;
        memcpy(host, s, hlen);
        host[hlen] = '\0';
        memset(ret, 0, sizeof(*ret));
        if (host[0] == '[' && host[hlen - 1] == ']') {
                struct sockaddr_in6 *a = (struct sockaddr_in6 *) ret;

                host[hlen - 1] = '\0';
                if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) != 1)
                        return -EINVAL;
                a->sin6_family = AF_INET6;
                a->sin6_port = htons((uint16_t) port);
                *ret_len = sizeof(*a);
        } else {
                struct sockaddr_in *a = (struct sockaddr_in *) ret;

                if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
                        return -EINVAL;
                a->sin_family = AF_INET;
                a->sin_port = htons((uint16_t) port);
                *ret_len = sizeof(*a);
        }
        return 0;
}

bool evd_http_ready(evd_daemon *d) {
        if (!d->started || evt_lifecycle_phase(d->lc) != EVT_PHASE_RUNNING)
                return false;
        return d->config->ready_when_paused || !evt_loop_is_paused(d->loop);
}

/* ---- answering ---- */

/* The probes' and the errors' short answers. */
static enum MHD_Result text(struct MHD_Connection *conn, unsigned status, const char *body) {
        struct MHD_Response *r =
                MHD_create_response_from_buffer(strlen(body), (void *) body, MHD_RESPMEM_PERSISTENT);
        enum MHD_Result ret;

        if (!r)
                return MHD_NO; /* closes the connection */
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
        if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
                MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
        ret = MHD_queue_response(conn, status, r);
        MHD_destroy_response(r);
        return ret;
}

static ssize_t metrics_read(void *cls, uint64_t pos, char *buf, size_t max) {
        ssize_t n = evd_metrics_read(cls, buf, max);

        (void) pos;
        return n > 0 ? n : n == 0 ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void metrics_free(void *cls) {
        evd_metrics_reader_free(cls);
}

/* /metrics, written a piece at a time as the client takes it: the loop
 * runs between the pieces of a large exposition. */
static enum MHD_Result metrics(struct MHD_Connection *conn, evd_daemon *d) {
        struct MHD_Response *r;
        evd_metrics_reader *reader;
        enum MHD_Result ret;

        if (evd_metrics_reader_new(d, &reader) < 0)
                return MHD_NO;
        r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, METRICS_BLOCK, metrics_read, reader, metrics_free);
        if (!r) {
                evd_metrics_reader_free(reader);
                return MHD_NO;
        }
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
        ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
        MHD_destroy_response(r);
        return ret;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **state) {
        evd_http *http = cls;
        evd_daemon *d = http->d;
        (void) version;
        (void) upload;
        (void) upload_size;
        (void) state;
        if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
                return text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        if (strcmp(url, "/metrics") == 0)
                return metrics(conn, d);
        /* Answered by the loop: it turns. */
        if (strcmp(url, "/livez") == 0)
                return text(conn, MHD_HTTP_OK, "ok\n");
        if (strcmp(url, "/readyz") == 0) {
                if (evd_http_ready(d))
                        return text(conn, MHD_HTTP_OK, "ready\n");
                if (evt_lifecycle_phase(d->lc) != EVT_PHASE_RUNNING)
                        return text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting down\n");
                return text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, d->started ? "paused\n" : "starting\n");
        }
        return text(conn, MHD_HTTP_NOT_FOUND, "not found: /metrics, /livez and /readyz are\n");
}

/* ---- a deadline for each connection ----
 *
 * libmicrohttpd's timeout counts from the last byte, so a client sending a
 * byte a second would keep its connection (and its slot) for ever. Each
 * connection also gets CONNECTION_DEADLINE in all: then its socket is shut
 * down, and libmicrohttpd, seeing it end, closes it. */

typedef struct deadline {
        ev_timer timer;
        struct ev_loop *ev;
        int fd;
} deadline;

static void deadline_cb(struct ev_loop *ev, ev_timer *w, int revents) {
        (void) ev;
        (void) revents;
        shutdown(((deadline *) w)->fd, SHUT_RDWR);
}

static void connection_cb(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
        evd_http *http = cls;
        deadline *dl = *socket_context;
        const union MHD_ConnectionInfo *info;

        if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
                http->connections--;
                if (dl)
                        ev_timer_stop(dl->ev, &dl->timer);
                free(dl);
                *socket_context = NULL;
                return;
        }
        if (++http->connections >= CONNECTIONS_MAX)
                http->hit_limit = true;
        info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        dl = info ? malloc(sizeof(*dl)) : NULL;
        if (!dl)
                return; /* the inactivity timeout still applies */
        dl->ev = evt_loop_ev(http->d->loop);
        dl->fd = info->connect_fd;
        ev_timer_init(&dl->timer, deadline_cb, CONNECTION_DEADLINE, 0);
        ev_timer_start(dl->ev, &dl->timer);
        *socket_context = dl;
}

/* ---- driving libmicrohttpd from the loop ---- */

static void run(evd_http *http) {
        struct ev_loop *ev = evt_loop_ev(http->d->loop);
        MHD_UNSIGNED_LONG_LONG ms;

        MHD_run(http->mhd);
        ev_timer_stop(ev, &http->timer);
        /* At the limit libmicrohttpd takes its listening socket out of its
         * epoll set, and puts it back only in a later run: when slots freed
         * up meanwhile, that run must come, with no event to bring it. */
        if (http->hit_limit && http->connections < CONNECTIONS_MAX) {
                http->hit_limit = false;
                ev_timer_set(&http->timer, 0, 0);
                ev_timer_start(ev, &http->timer);
        } else if (MHD_get_timeout(http->mhd, &ms) == MHD_YES) {
                ev_timer_set(&http->timer, (double) ms / 1e3, 0);
                ev_timer_start(ev, &http->timer);
        }
}

static void io_cb(struct ev_loop *ev, ev_io *w, int revents) {
        (void) ev;
        (void) revents;
        run(w->data);
}

static void timer_cb(struct ev_loop *ev, ev_timer *w, int revents) {
        (void) ev;
        (void) revents;
        run(w->data);
}

/* The listening socket, bound: a unix socket for a path (a stale one
 * removed first), else TCP. */
static int listen_socket(evd_http *http, const char *where, char *err, size_t errlen) {
        struct sockaddr_storage ss;
        socklen_t len;
        int fd, one = 1;

        if (where[0] == '/') {
                struct sockaddr_un *a = (struct sockaddr_un *) &ss;
                struct stat st;

                memset(a, 0, sizeof(*a));
                a->sun_family = AF_UNIX;
                snprintf(a->sun_path, sizeof(a->sun_path), "%s", where);
                len = sizeof(*a);
                if (lstat(where, &st) == 0 && S_ISSOCK(st.st_mode))
                        unlink(where);
        } else if (evd_listen_address_parse(where, &ss, &len) < 0) {
                snprintf(err, errlen, "http_listen: '%s' is not an address", where);
                return -EINVAL;
        }
        fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                goto fail;
        if (ss.ss_family != AF_UNIX)
                setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, (struct sockaddr *) &ss, len) < 0 || listen(fd, BACKLOG) < 0)
                goto fail;
        if (ss.ss_family == AF_UNIX)
                http->unlink_path = strdup(where);
        http->fd = fd;
        return 0;
fail:
        snprintf(err, errlen, "http_listen: cannot listen on %s: %s", where, strerror(errno));
        if (fd >= 0)
                close(fd);
        return -errno;
}

int evd_http_open(evd_daemon *d, char *err, size_t errlen) {
        const char *where = d->config->http_listen;
        evd_http *http;
        const union MHD_DaemonInfo *info;
        int r;

        if (!where || strcmp(where, "none") == 0)
                return 0;
        http = calloc(1, sizeof(*http));
        if (!http)
                return -ENOMEM;
        http->d = d;
        http->fd = -1;
        r = listen_socket(http, where, err, errlen);
        if (r < 0) {
                free(http);
                return r;
        }
        http->mhd = MHD_start_daemon(MHD_USE_EPOLL, 0, NULL, NULL, answer, http, MHD_OPTION_LISTEN_SOCKET, http->fd,
                                     MHD_OPTION_CONNECTION_LIMIT, (unsigned) CONNECTIONS_MAX,
                                     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned) CONNECTION_TIMEOUT,
                                     MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) CONNECTION_MEMORY,
                                     MHD_OPTION_NOTIFY_CONNECTION, connection_cb, http,
                                     MHD_OPTION_END);
        if (http->mhd)
                http->fd = -1; /* libmicrohttpd's to close */
        info = http->mhd ? MHD_get_daemon_info(http->mhd, MHD_DAEMON_INFO_EPOLL_FD) : NULL;
        if (!info) {
                snprintf(err, errlen, "http_listen: cannot start the HTTP server on %s", where);
                evd_http_free(http);
                return -EIO;
        }
        ev_io_init(&http->io, io_cb, info->epoll_fd, EV_READ);
        http->io.data = http;
        ev_init(&http->timer, timer_cb);
        http->timer.data = http;
        ev_io_start(evt_loop_ev(d->loop), &http->io);
        d->http = http;
        return 0;
}

void evd_http_free(evd_http *http) {
        if (!http)
                return;
        if (http->mhd) {
                struct ev_loop *ev = evt_loop_ev(http->d->loop);

                ev_io_stop(ev, &http->io);
                ev_timer_stop(ev, &http->timer);
                MHD_stop_daemon(http->mhd);
        }
        if (http->fd >= 0)
                close(http->fd);
        if (http->unlink_path)
                unlink(http->unlink_path);
        free(http->unlink_path);
        free(http);
}
