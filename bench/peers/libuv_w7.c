/* W7 on libuv: the TCP line-echo server of bench/peers/README.md, the
 * physical reference for an epoll reactor. Prints "listening PORT" and
 * serves until killed. Each read's whole lines are echoed with one write
 * (uv_try_write, or a copy queued with uv_write when the socket is full). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <uv.h>

#define LINE 256

struct conn {
        uv_tcp_t tcp;
        char buf[LINE];
        size_t have;
};

struct write_req {
        uv_write_t req;
        char data[];
};

static void on_close(uv_handle_t *h) {
        free(h);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
        struct conn *c = (struct conn *) h;

        (void) suggested;
        *buf = uv_buf_init(c->buf + c->have, (unsigned) (LINE - c->have));
}

static void on_written(uv_write_t *req, int status) {
        (void) status;
        free(req);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
        struct conn *c = (struct conn *) s;
        char *end;
        size_t len;
        int w;

        (void) buf;
        if (n < 0) {
                uv_close((uv_handle_t *) s, on_close);
                return;
        }
        end = memrchr(c->buf + c->have, '\n', (size_t) n);
        c->have += (size_t) n;
        if (!end)
                return;
        len = (size_t) (end - c->buf) + 1;
        uv_buf_t out = uv_buf_init(c->buf, (unsigned) len);
        w = uv_try_write(s, &out, 1);
        if (w < 0)
                w = 0;
        if ((size_t) w < len) {
                struct write_req *r = malloc(sizeof(*r) + len - (size_t) w);

                memcpy(r->data, c->buf + w, len - (size_t) w);
                out = uv_buf_init(r->data, (unsigned) (len - (size_t) w));
                uv_write(&r->req, s, &out, 1, on_written);
        }
        c->have -= len;
        memmove(c->buf, c->buf + len, c->have);
}

static void on_connection(uv_stream_t *server, int status) {
        struct conn *c;

        if (status < 0)
                return;
        c = calloc(1, sizeof(*c));
        uv_tcp_init(server->loop, &c->tcp);
        if (uv_accept(server, (uv_stream_t *) &c->tcp) == 0)
                uv_read_start((uv_stream_t *) &c->tcp, on_alloc, on_read);
        else
                uv_close((uv_handle_t *) &c->tcp, on_close);
}

int main(int argc, char **argv) {
        uv_loop_t *loop = uv_default_loop();
        struct sockaddr_in addr;
        int len = sizeof(addr);
        struct rlimit lim;
        uv_tcp_t server;

        if (argc < 2 || strcmp(argv[1], "W7") != 0) {
                fprintf(stderr, "usage: libuv-w7 W7\n");
                return 64;
        }
        /* A descriptor per connection: as many as the hard limit allows. */
        if (getrlimit(RLIMIT_NOFILE, &lim) == 0) {
                lim.rlim_cur = lim.rlim_max;
                setrlimit(RLIMIT_NOFILE, &lim);
        }
        uv_ip4_addr("127.0.0.1", 0, &addr);
        uv_tcp_init(loop, &server);
        if (uv_tcp_bind(&server, (struct sockaddr *) &addr, 0) < 0 ||
            uv_listen((uv_stream_t *) &server, 4096, on_connection) < 0 ||
            uv_tcp_getsockname(&server, (struct sockaddr *) &addr, &len) < 0) {
                fprintf(stderr, "libuv-w7: cannot listen\n");
                return 1;
        }
        printf("listening %u\n", (unsigned) ntohs(addr.sin_port));
        fflush(stdout);
        return uv_run(loop, UV_RUN_DEFAULT);
}
