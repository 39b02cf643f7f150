/* An exec run's NOTIFY_SOCKET. One socket per run, not one per daemon:
 * a datagram's sender is then known by the socket it came to, not by the
 * pid in its credentials, which names a process that may be gone by the
 * time the datagram is read (systemd-notify sends and exits; its parent,
 * a shell, is the run's process, it is not) and which only walking the
 * run's process tree could tie to the run. The socket is in the abstract
 * namespace, so a run under another `user` can reach it with no file to
 * own or to clean up; as an abstract name can be seen in /proc/net/unix,
 * a datagram counts only if its credentials (SO_PASSCRED, filled in by
 * the kernel) say it came from the run's user or from root. */
#include <errno.h>
#include <ev.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "command.h"
#include "exec_notify.h"

#define DATAGRAM_MAX 4096
#define STATUS_MAX 256
/* The variable, and the '@' that says "abstract": the name follows. */
#define VARIABLE "NOTIFY_SOCKET=@"
#define VARIABLE_LEN (sizeof(VARIABLE) - 1)

struct evd_exec_notify {
        ev_io io;
        struct ev_loop *ev;
        evd_job *job;
        uid_t uid;              /* the run's user */
        char env[128];          /* NOTIFY_SOCKET=@... */
};

static void handle(evd_exec_notify *n, char *msg) {
        evd_job *job = n->job;

        for (char *line = strtok(msg, "\n"); line; line = strtok(NULL, "\n")) {
                if (strcmp(line, "READY=1") == 0) {
                        evd_job_ready(job, "notify");
                } else if (strncmp(line, "STATUS=", 7) == 0) {
                        char *status = strndup(line + 7, STATUS_MAX);

                        if (!status)
                                continue;
                        free(job->notify_status);
                        job->notify_status = status;
                        evd_log_emit(job->log, LOG_INFO, EVD_EV_LOG, job->conf.name,
                                     EVD_FIELDS(EVD_STR("status", status)), "status: %s", status);
                }
        }
}

/* Every datagram waiting; those of another user are dropped. */
static void drain(evd_exec_notify *n) {
        for (;;) {
                char buf[DATAGRAM_MAX + 1];
                union {
                        struct cmsghdr h;
                        char space[CMSG_SPACE(sizeof(struct ucred))];
                } control;
                struct iovec iov = { buf, DATAGRAM_MAX };
                struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control,
                                     .msg_controllen = sizeof(control) };
                struct cmsghdr *c;
                const struct ucred *cred = NULL;
                ssize_t len = recvmsg(n->io.fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

                if (len < 0 && errno == EINTR)
                        continue;
                if (len < 0)
                        return;
                for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS)
                                cred = (const struct ucred *) CMSG_DATA(c);
                        else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
                                for (int *fd = (int *) CMSG_DATA(c);
                                     (char *) fd < (char *) c + c->cmsg_len; fd++)
                                        close(*fd); /* FDSTORE=: not kept */
                if (!cred || (cred->uid != n->uid && cred->uid != 0))
                        continue;
                buf[len] = '\0';
                handle(n, buf);
        }
}

static void readable_cb(struct ev_loop *ev, ev_io *w, int revents) {
        (void) ev;
        (void) revents;
        drain(w->data);
}

int evd_exec_notify_open(evd_job *job, unsigned run, const evd_identity *id, char ***env,
                         evd_exec_notify **ret) {
        evd_exec_notify *n = calloc(1, sizeof(*n));
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        size_t count = evd_strv_length(*env);
        unsigned long long nonce;
        socklen_t sa_len;
        char **e;
        int fd, one = 1, len;

        if (!n)
                return -ENOMEM;
        if (getrandom(&nonce, sizeof(nonce), 0) != sizeof(nonce))
                nonce = (unsigned long long) evt_time_now();
        len = snprintf(n->env, sizeof(n->env), VARIABLE "evtaskd/%ld/%u/%016llx", (long) getpid(), run,
                       nonce);
        /* The abstract name: a NUL, then the name after the '@'. */
        memcpy(sa.sun_path + 1, n->env + VARIABLE_LEN, (size_t) len - VARIABLE_LEN);
        sa_len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + 1 + (size_t) len - VARIABLE_LEN);
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0 ||
            bind(fd, (struct sockaddr *) &sa, sa_len) < 0) {
                int r = -errno;

                if (fd >= 0)
                        close(fd);
                free(n);
                return r;
        }
        e = calloc(count + 2, sizeof(*e));
        if (!e) {
                close(fd);
                free(n);
                return -ENOMEM;
        }
        if (count > 0) /* *env is NULL for a job without `environment` */
                memcpy(e, *env, count * sizeof(*e));
        e[count] = n->env;
        *env = e;
        n->job = job;
        n->uid = id->set_uid ? id->uid : geteuid();
        n->ev = evt_loop_ev(job->loop);
        ev_io_init(&n->io, readable_cb, fd, EV_READ);
        n->io.data = n;
        ev_io_start(n->ev, &n->io);
        ev_unref(n->ev); /* the run keeps the loop going, not its socket */
        *ret = n;
        return 0;
}

void evd_exec_notify_close(evd_exec_notify *n) {
        if (!n)
                return;
        drain(n);
        ev_ref(n->ev);
        ev_io_stop(n->ev, &n->io);
        close(n->io.fd);
        free(n);
}
