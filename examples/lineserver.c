/* A TCP line server: a task per connection, a cap on connections, requests
 * that finish across a shutdown.
 *
 * Listens on 127.0.0.1:PORT (0: a free port, printed) and answers each
 * line with "echo: " and the line; a line "slow" takes half a second.
 * At most MAX connections are served at once (default 1000): the acceptor
 * waits for one to end before it accepts the next. SIGTERM stops
 * accepting, closes idle connections at once, lets requests under way
 * finish and answer, and exits 0; a second SIGTERM forces.
 *
 *     lineserver [PORT [MAX]]
 *
 * The pieces: evt_accept, evt_read and evt_write do the socket plumbing
 * (EAGAIN, EINTR, SIGPIPE); a group with max_running caps connections;
 * evt_shield_push keeps a request from being cut by the shutdown; arg_free
 * closes the socket of a connection whose task was cancelled before it
 * ran; the lifecycle owns the signals. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <evtask.h>

#define LINE_MAX_LEN 1024

static evt_group *connections;

static void check(int r, const char *what) {
        if (r < 0) {
                fprintf(stderr, "lineserver: %s: %s\n", what, strerror(-r));
                exit(1);
        }
}

/* One request: its answer, written in full. Shielded, so that a shutdown
 * lets it finish; the cancel is delivered at the shield's end. */
static int answer(int fd, const char *line, size_t len) {
        char out[LINE_MAX_LEN + 8];
        int r;

        evt_shield_push();
        if (len == 4 && memcmp(line, "slow", 4) == 0) {
                printf("request started: slow\n");
                fflush(stdout);
                evt_sleep(EVT_MSEC(500));
        }
        memcpy(out, "echo: ", 6);
        memcpy(out + 6, line, len);
        out[6 + len] = '\n';
        r = evt_write(fd, out, 6 + len + 1, evt_deadline_in(EVT_SEC(10)));
        if (evt_shield_pop() < 0 && r == 0)
                r = -ECANCELED;
        return r;
}

/* A connection: lines in, answers out, until the peer closes, an error,
 * a cancel, or a minute without a line. */
static int connection(void *arg) {
        int fd = (int) (intptr_t) arg;
        char buf[LINE_MAX_LEN];
        size_t have = 0;
        int r;

        for (;;) {
                char *nl;
                size_t n;

                r = evt_read(fd, buf + have, sizeof(buf) - have, evt_deadline_in(EVT_SEC(60)), &n);
                if (r < 0 || n == 0)
                        break;
                have += n;
                while ((nl = memchr(buf, '\n', have))) {
                        size_t len = (size_t) (nl - buf);

                        r = answer(fd, buf, len);
                        if (r < 0)
                                goto out;
                        have -= len + 1;
                        memmove(buf, nl + 1, have);
                }
                if (have == sizeof(buf))
                        break; /* a line too long */
        }
out:
        close(fd);
        return r;
}

static void close_fd(void *arg) {
        close((int) (intptr_t) arg);
}

static int acceptor(void *arg) {
        int lfd = (int) (intptr_t) arg;
        int r;

        for (;;) {
                int fd;

                r = evt_accept(lfd, EVT_FOREVER, &fd);
                if (r < 0)
                        break;
                /* Waits while the group is full. */
                r = evt_group_spawn(connections, connection, (void *) (intptr_t) fd,
                                    &(evt_task_opts) { .name = "connection", .arg_free = close_fd }, NULL);
                if (r < 0) {
                        close(fd);
                        break;
                }
        }
        close(lfd);
        printf("stopped accepting (%s)\n", strerror(-r));
        return r == -ECANCELED ? 0 : r;
}

static void on_phase(evt_lifecycle *lc, evt_phase phase, size_t tasks_left, void *data) {
        (void) lc;
        (void) data;
        printf("phase %s, %zu tasks left\n", evt_phase_name(phase), tasks_left);
        fflush(stdout);
}

int main(int argc, char **argv) {
        struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof(addr);
        evt_lifecycle_ops ops = { .phase_cb = on_phase };
        size_t max = argc > 2 ? (size_t) atol(argv[2]) : 1000;
        evt_lifecycle *lc;
        evt_loop *loop;
        int lfd, r, one = 1;

        addr.sin_port = htons((uint16_t) (argc > 1 ? atoi(argv[1]) : 0));
        lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
            bind(lfd, (struct sockaddr *) &addr, sizeof(addr)) < 0 || listen(lfd, 1024) < 0 ||
            getsockname(lfd, (struct sockaddr *) &addr, &len) < 0)
                check(-errno, "cannot listen");

        check(evt_loop_new(NULL, NULL, &loop), "cannot create the loop");
        check(evt_lifecycle_new(loop, &(evt_lifecycle_opts) { .exit_when_idle = true }, &ops, &lc),
              "cannot take the signals");
        check(evt_group_new_opts(loop, &(evt_group_opts) { .max_running = max }, &connections),
              "cannot create the group");
        check(evt_task_spawn(loop, acceptor, (void *) (intptr_t) lfd, &(evt_task_opts) { .name = "acceptor" }, NULL),
              "cannot spawn");
        printf("listening on %u\n", (unsigned) ntohs(addr.sin_port));
        fflush(stdout);

        r = evt_lifecycle_run(lc);
        evt_group_free(connections);
        evt_lifecycle_free(lc);
        evt_loop_free(loop);
        return r;
}
