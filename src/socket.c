/* Socket calls: read, write all, accept, connect on non-blocking
 * descriptors, each a system call tried first and an fd wait (io.c) when
 * it would block, with EINTR and EAGAIN handled here; and name resolution
 * on a thread pool.
 *
 * Writes to a socket use send with MSG_NOSIGNAL, so a peer that has gone
 * is -EPIPE and not a SIGPIPE that ends the process; writes to anything
 * else (a pipe) use write, where only the program can decide about
 * SIGPIPE. Where MSG_NOSIGNAL or accept4 does not exist (macOS), their
 * portable equivalents (meson options msg_nosignal and accept4). */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "scheduler.h"

/* The entry of a call on fd with a buffer: the arguments, then those of
 * every await point. */
static int io_enter(int fd, const void *buf, size_t len) {
        evt_task *t;

        if (fd < 0 || (!buf && len > 0))
                return -EINVAL;
        return evt__enter(&t);
}

/* After a call on fd failed with err: 0 to try it again (at once after
 * EINTR, once fd is ready after EAGAIN), or the error to return. */
static int io_again(int fd, unsigned events, int64_t deadline, int err) {
        if (err == EINTR)
                return 0;
        if (err != EAGAIN && err != EWOULDBLOCK)
                return -err;
        return evt__fd_wait(fd, events, deadline, NULL);
}

int evt_read(int fd, void *buf, size_t len, evt_deadline deadline, size_t *ret_n) {
        int r = io_enter(fd, buf, len);

        while (r == 0) {
                ssize_t n = read(fd, buf, len);

                if (n >= 0) {
                        if (ret_n)
                                *ret_n = (size_t) n;
                        return 0;
                }
                r = io_again(fd, EVT_READ, deadline.at, errno);
        }
        return r;
}

/* send without a SIGPIPE: MSG_NOSIGNAL, or SIGPIPE blocked in this thread
 * around the send and the one it raised (sent to this thread) taken back
 * before the mask is put back; one pending already stays pending. */
static ssize_t send_nosignal(int fd, const void *p, size_t len) {
#if EVT_HAVE_MSG_NOSIGNAL
        return send(fd, p, len, MSG_NOSIGNAL);
#else
        sigset_t pipe_set, old, pending;
        bool was_pending;
        ssize_t n;
        int e, sig;

        sigemptyset(&pipe_set);
        sigaddset(&pipe_set, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
        was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE);
        n = send(fd, p, len, 0);
        e = errno;
        if (n < 0 && e == EPIPE && !was_pending && sigpending(&pending) == 0 &&
            sigismember(&pending, SIGPIPE))
                sigwait(&pipe_set, &sig);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        errno = e;
        return n;
#endif
}

int evt_write(int fd, const void *buf, size_t len, evt_deadline deadline) {
        const char *p = buf;
        bool sock = true;       /* until send says ENOTSOCK */
        int r = io_enter(fd, buf, len);

        while (r == 0 && len > 0) {
                ssize_t n = sock ? send_nosignal(fd, p, len) : write(fd, p, len);

                if (n >= 0) {
                        p += n;
                        len -= (size_t) n;
                } else if (sock && errno == ENOTSOCK) {
                        sock = false;
                } else {
                        r = io_again(fd, EVT_WRITE, deadline.at, errno);
                }
        }
        return r;
}

/* Errors of accept that concern the connection that failed, not the
 * listening socket: Linux reports a pending network error there. The
 * next connection may be fine. */
static bool accept_retry(int err) {
        switch (err) {
        case ECONNABORTED:
        case EPROTO:
        case ENETDOWN:
        case ENOPROTOOPT:
        case EHOSTDOWN:
#ifdef ENONET
        case ENONET:    /* Linux's only */
#endif
        case EHOSTUNREACH:
        case ENETUNREACH:
                return true;
        }
        return false;
}

/* accept4, or accept and fcntl (a thread that forks and execs in between
 * could take the descriptor along). */
static int accept_nonblock_cloexec(int fd) {
#if EVT_HAVE_ACCEPT4
        return accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
#else
        int c = accept(fd, NULL, NULL);

        if (c >= 0 && evt__fd_nonblock_cloexec(c) < 0) {
                int e = errno;

                close(c);
                errno = e;
                return -1;
        }
        return c;
#endif
}

int evt_accept(int fd, evt_deadline deadline, int *ret_fd) {
        int r = ret_fd ? io_enter(fd, NULL, 0) : -EINVAL;

        while (r == 0) {
                int c = accept_nonblock_cloexec(fd);

                if (c >= 0) {
                        *ret_fd = c;
                        return 0;
                }
                if (!accept_retry(errno))
                        r = io_again(fd, EVT_READ, deadline.at, errno);
        }
        return r;
}

int evt_connect(int fd, const struct sockaddr *addr, socklen_t addrlen, evt_deadline deadline) {
        socklen_t len = sizeof(int);
        int r = addr ? io_enter(fd, NULL, 0) : -EINVAL;
        int err = 0;

        if (r < 0)
                return r;
        if (connect(fd, addr, addrlen) == 0)
                return 0;
        /* Interrupted, a connect goes on by itself, as one in progress. */
        if (errno != EINPROGRESS && errno != EINTR)
                return -errno;
        r = evt__fd_wait(fd, EVT_WRITE, deadline.at, NULL);
        if (r < 0)
                return r;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                return -errno;
        return -err;
}

/* ---- name resolution on a pool ------------------------------------------ */

/* getaddrinfo's EAI_* codes, each with the errno it becomes. */
#define GAI_ERRORS(X)                                                           \
        X(EAI_NONAME, ENOENT)           /* no such name */                      \
        X(EAI_AGAIN, EAGAIN)            /* the name server failed for now */    \
        X(EAI_FAIL, EIO)                /* the name server failed for good */   \
        X(EAI_MEMORY, ENOMEM)                                                   \
        X(EAI_SERVICE, ESRCH)           /* no such service for the socket type */ \
        X(EAI_FAMILY, EAFNOSUPPORT)                                             \
        X(EAI_SOCKTYPE, ESOCKTNOSUPPORT)                                        \
        X(EAI_BADFLAGS, EINVAL)                                                 \
        X(EAI_OVERFLOW, EOVERFLOW)

static int gai_errno(int eai) {
        switch (eai) {
#define X(e, errnum)                                                            \
        case e:                                                                 \
                return -errnum;
                GAI_ERRORS(X)
#undef X
        /* glibc's and macOS's; FreeBSD has neither. */
#ifdef EAI_NODATA
        case EAI_NODATA:                /* the name has no address */
                return -ENOENT;
#endif
#ifdef EAI_ADDRFAMILY
        case EAI_ADDRFAMILY:            /* none of the family asked for */
                return -ENOENT;
#endif
        case EAI_SYSTEM:
                return errno ? -errno : -EIO;
        }
        return -EIO;
}

/* What the loop's task and the worker share: freed by the last of the two
 * to let go, for the task may give up while getaddrinfo runs on. */
struct lookup {
        atomic_int refs;
        struct addrinfo hints;
        bool has_hints;
        struct addrinfo *res;   /* getaddrinfo's, until the task takes it */
        char *host, *service;   /* copies; NULL if not given */
};

static void lookup_unref(void *arg) {
        struct lookup *l = arg;

        if (atomic_fetch_sub(&l->refs, 1) != 1)
                return;
        if (l->res)
                freeaddrinfo(l->res);
        free(l->host);
        free(l->service);
        free(l);
}

static int lookup_fn(evt_token *token, void *arg) {
        struct lookup *l = arg;
        int r;

        (void) token; /* getaddrinfo cannot be told to stop */
        errno = 0;
        r = getaddrinfo(l->host, l->service, l->has_hints ? &l->hints : NULL, &l->res);
        return r == 0 ? 0 : gai_errno(r);
}

int evt_getaddrinfo(evt_pool *pool, const char *host, const char *service, const struct addrinfo *hints,
                    evt_deadline deadline, struct addrinfo **ret_res) {
        struct lookup *l;
        int r, result = 0;

        if (!pool || (!host && !service) || !ret_res)
                return -EINVAL;
        l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        atomic_init(&l->refs, 2); /* the task's, and the call's (arg_free) */
        if (hints) {
                l->hints = *hints;
                l->has_hints = true;
        }
        l->host = host ? strdup(host) : NULL;
        l->service = service ? strdup(service) : NULL;
        if ((host && !l->host) || (service && !l->service)) {
                lookup_unref(l);
                lookup_unref(l);
                return -ENOMEM;
        }
        r = evt_pool_call(pool, lookup_fn, l, &(evt_call_opts) { .arg_free = lookup_unref }, deadline, &result);
        if (r == -EINVAL || r == -EAGAIN)
                lookup_unref(l); /* the call took nothing: its reference too */
        if (r == 0 && result == 0) {
                /* fn has returned: nobody else touches res. */
                *ret_res = l->res;
                l->res = NULL;
        }
        lookup_unref(l);
        return r < 0 ? r : result;
}
