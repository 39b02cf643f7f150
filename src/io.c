/* Waits for file descriptors (ev_io) and child processes (ev_child).
 *
 * Each wait starts a watcher in the waiting task's frame and stops it before
 * returning. The callback stops the watcher too, at once: a level-triggered
 * ev_io left active while the task is held by the pause gate would make
 * libev spin. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>

#include "scheduler.h"

/* A wait whose deadline has passed still reports an fd that is ready. */
static int poll_now(int fd, unsigned events, unsigned *ret_events) {
        struct pollfd p = {
                .fd = fd,
                .events = (short) (((events & EVT_READ) ? POLLIN : 0) | ((events & EVT_WRITE) ? POLLOUT : 0)),
        };
        unsigned ready;

        if (poll(&p, 1, 0) < 0)
                return -errno;
        if (p.revents & POLLNVAL)
                return -EBADF;
        /* Hang-up and error count as readable and writable, as libev has it. */
        ready = ((p.revents & (POLLIN | POLLHUP | POLLERR)) ? EVT_READ : 0) |
                ((p.revents & (POLLOUT | POLLHUP | POLLERR)) ? EVT_WRITE : 0);
        ready &= events;
        if (!ready)
                return -ETIMEDOUT;
        if (ret_events)
                *ret_events = ready;
        return 0;
}

struct fd_wait {
        ev_io io;
        evt_task *task;
};

static void fd_cb(struct ev_loop *ev, ev_io *w, int revents) {
        struct fd_wait *fw = evt__container_of(w, struct fd_wait, io);

        ev_io_stop(ev, w);
        evt__watcher_stopped(fw->task->loop);
        /* EV_ERROR: libev found the fd invalid. */
        evt__wake(fw->task, (revents & EV_ERROR) ? -EBADF : (revents & (EV_READ | EV_WRITE)));
}

int evt_fd_wait(int fd, unsigned events, evt_deadline deadline, unsigned *ret_events) {
        if (fd < 0 || events == 0 || (events & ~(unsigned) (EVT_READ | EVT_WRITE)))
                return -EINVAL;
        /* libev asserts on a descriptor that is not open: refuse it here. */
        if (fcntl(fd, F_GETFD) < 0)
                return -EBADF;
        return evt__fd_wait(fd, events, deadline.at, ret_events);
}

int evt__fd_wait(int fd, unsigned events, int64_t deadline, unsigned *ret_events) {
        struct fd_wait fw;
        evt_task *t;
        int r;

        r = evt__enter(&t);
        if (r < 0)
                return r;
        if (deadline != INT64_MAX && deadline <= evt_time_now())
                return poll_now(fd, events, ret_events);

        fw.task = t;
        ev_io_init(&fw.io, fd_cb, fd, ((events & EVT_READ) ? EV_READ : 0) |
                                      ((events & EVT_WRITE) ? EV_WRITE : 0));
        ev_io_start(t->loop->ev, &fw.io);
        evt__watcher_started(t->loop);
        evt__waits(t, "fd", fd);
        r = evt__wait(t, deadline);
        if (ev_is_active(&fw.io)) {
                ev_io_stop(t->loop->ev, &fw.io);
                evt__watcher_stopped(t->loop);
        }
        if (r < 0)
                return r;
        if (ret_events)
                *ret_events = ((r & EV_READ) ? EVT_READ : 0) | ((r & EV_WRITE) ? EVT_WRITE : 0);
        return 0;
}

struct child_wait {
        ev_child child;
        evt_task *task;
        bool exited;            /* libev has reaped the child */
};

static void child_cb(struct ev_loop *ev, ev_child *w, int revents) {
        struct child_wait *cw = evt__container_of(w, struct child_wait, child);

        (void) revents;
        ev_child_stop(ev, w);
        evt__watcher_stopped(cw->task->loop);
        cw->exited = true;
        evt__wake(cw->task, 0);
}

int evt_child_wait(pid_t pid, evt_deadline deadline, int *ret_status) {
        struct child_wait cw;
        evt_task *t;
        int r;

        if (pid <= 0)
                return -EINVAL;
        r = evt__enter(&t);
        if (r < 0)
                return r;
        if (!ev_is_default_loop(t->loop->ev))
                return -EOPNOTSUPP;

        cw.task = t;
        cw.exited = false;
        ev_child_init(&cw.child, child_cb, pid, 0);
        ev_child_start(t->loop->ev, &cw.child);
        evt__watcher_started(t->loop);
        evt__waits(t, "child", pid);
        r = evt__wait(t, deadline.at);
        if (ev_is_active(&cw.child)) {
                ev_child_stop(t->loop->ev, &cw.child);
                evt__watcher_stopped(t->loop);
        }
        /* A reaped child's status exists once only: report it even if a
         * cancel came in meanwhile (the next await point fails anyway). */
        if (!cw.exited)
                return r < 0 ? r : -EIO;
        if (ret_status)
                *ret_status = cw.child.rstatus;
        return 0;
}
