/* loadgen: the load of W7, a separate process so that it can run on a CPU
 * of its own. Opens CONNS connections to 127.0.0.1:PORT; each keeps one
 * request in flight: it sends a line, waits for the echoed line, sends the
 * next. After a second of warm-up, counts for SECONDS: requests per second
 * and the p50 and p99 of the latency, from send to the whole echo. Plain
 * epoll, no library, so that it weighs the same on every server.
 *
 *     loadgen IMPL PORT [CONNS [SECONDS]]
 *
 * Prints the JSON lines of bench/peers/README.md with impl IMPL. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define REQUEST "ping from the load generator\n"
#define HIST_US 100000          /* latencies in whole µs up to 100 ms */

struct conn {
        int fd;
        int64_t sent_at;
        size_t got;             /* bytes of the echo so far */
};

static uint64_t hist[HIST_US + 1];

static int64_t now_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what) {
        perror(what);
        exit(1);
}

static void send_request(struct conn *c) {
        c->got = 0;
        c->sent_at = now_ns();
        if (send(c->fd, REQUEST, sizeof(REQUEST) - 1, MSG_NOSIGNAL) != (ssize_t) (sizeof(REQUEST) - 1))
                die("loadgen: send");
}

static double percentile(uint64_t total, double p) {
        uint64_t want = (uint64_t) ((double) total * p), seen = 0;

        for (int us = 0; us <= HIST_US; us++) {
                seen += hist[us];
                if (seen > want)
                        return us;
        }
        return HIST_US;
}

int main(int argc, char **argv) {
        struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        int nconns = argc > 3 ? atoi(argv[3]) : 1000;
        double seconds = argc > 4 ? atof(argv[4]) : 10;
        struct epoll_event ev, events[256];
        int64_t start, measure_from, end;
        uint64_t done = 0;
        struct conn *conns;
        struct rlimit lim;
        int ep, one = 1;

        if (argc < 3) {
                fprintf(stderr, "usage: loadgen IMPL PORT [CONNS [SECONDS]]\n");
                return 64;
        }
        addr.sin_port = htons((uint16_t) atoi(argv[2]));
        /* A descriptor per connection: as many as the hard limit allows. */
        if (getrlimit(RLIMIT_NOFILE, &lim) == 0) {
                lim.rlim_cur = lim.rlim_max;
                setrlimit(RLIMIT_NOFILE, &lim);
        }
        conns = calloc((size_t) nconns, sizeof(*conns));
        ep = epoll_create1(EPOLL_CLOEXEC);
        if (!conns || ep < 0)
                die("loadgen: setup");
        for (int i = 0; i < nconns; i++) {
                struct conn *c = &conns[i];

                c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (c->fd < 0 || connect(c->fd, (struct sockaddr *) &addr, sizeof(addr)) < 0)
                        die("loadgen: connect");
                setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                ev = (struct epoll_event) { .events = EPOLLIN, .data.ptr = c };
                if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
                        die("loadgen: epoll_ctl");
        }
        start = now_ns();
        measure_from = start + 1000000000;
        end = measure_from + (int64_t) (seconds * 1e9);
        for (int i = 0; i < nconns; i++)
                send_request(&conns[i]);
        for (;;) {
                int64_t t = now_ns();
                int n;

                if (t >= end)
                        break;
                n = epoll_wait(ep, events, 256, 100);
                if (n < 0 && errno != EINTR)
                        die("loadgen: epoll_wait");
                for (int i = 0; i < n; i++) {
                        struct conn *c = events[i].data.ptr;
                        char buf[256];
                        ssize_t r = recv(c->fd, buf, sizeof(buf), 0);

                        if (r <= 0) {
                                fprintf(stderr, "loadgen: the server closed a connection\n");
                                return 1;
                        }
                        c->got += (size_t) r;
                        if (c->got < sizeof(REQUEST) - 1)
                                continue;
                        t = now_ns();
                        if (c->sent_at >= measure_from && t < end) {
                                int64_t us = (t - c->sent_at) / 1000;

                                hist[us < HIST_US ? us : HIST_US]++;
                                done++;
                        }
                        send_request(c);
                }
        }
        printf("{\"impl\":\"%s\",\"workload\":\"W7\",\"metric\":\"requests_per_s\",\"value\":%.0f}\n", argv[1],
               (double) done / seconds);
        printf("{\"impl\":\"%s\",\"workload\":\"W7\",\"metric\":\"p50_us\",\"value\":%.0f}\n", argv[1],
               percentile(done, 0.50));
        printf("{\"impl\":\"%s\",\"workload\":\"W7\",\"metric\":\"p99_us\",\"value\":%.0f}\n", argv[1],
               percentile(done, 0.99));
        return done > 0 ? 0 : 1;
}
