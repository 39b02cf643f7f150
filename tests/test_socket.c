/* Layer 3: socket calls on non-blocking descriptors, and name resolution
 * on a pool. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

#define BIG (4 * 1024 * 1024)   /* far beyond a socket's buffers */

static struct {
        evt_loop *loop;
        int fd[2];
        int r[4];
        size_t n;
        unsigned char *out, *in;
        size_t got;
} st;

static void reset(void) {
        memset(&st, 0, sizeof(st));
        for (int i = 0; i < 4; i++)
                st.r[i] = 1;
        st.loop = test_loop_new();
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, st.fd), 0);
}

static void finish(void) {
        for (int i = 0; i < 2; i++)
                if (st.fd[i] >= 0)
                        close(st.fd[i]);
        free(st.out);
        free(st.in);
        test_loop_free(st.loop);
}

/* ---- read and write ---- */

static int big_writer_fn(void *arg) {
        (void) arg;
        st.r[0] = evt_write(st.fd[0], st.out, BIG, evt_deadline_in(POLL_LIMIT));
        close(st.fd[0]);
        st.fd[0] = -1;
        return 0;
}

static int big_reader_fn(void *arg) {
        (void) arg;
        for (;;) {
                size_t n = 0;

                st.r[1] = evt_read(st.fd[1], st.in + st.got, BIG + 1 - st.got, evt_deadline_in(POLL_LIMIT), &n);
                if (st.r[1] < 0 || n == 0)
                        return 0;
                st.got += n;
        }
}

/* evt_write writes it all, however often the buffer fills; evt_read
 * reads what comes, then 0 at the end of the stream. */
START_TEST(write_all_read_to_end) {
        reset();
        st.out = malloc(BIG);
        st.in = malloc(BIG + 1);
        ck_assert_ptr_nonnull(st.out);
        ck_assert_ptr_nonnull(st.in);
        for (size_t i = 0; i < BIG; i++)
                st.out[i] = (unsigned char) (i * 7 + i / 4096);
        evt_task_unref(test_spawn(st.loop, big_writer_fn, NULL, "writer", 0));
        evt_task_unref(test_spawn(st.loop, big_reader_fn, NULL, "reader", 0));
        test_loop_run(st.loop);
        ck_assert_int_eq(st.r[0], 0);
        ck_assert_int_eq(st.r[1], 0);
        ck_assert_uint_eq(st.got, BIG);
        ck_assert(memcmp(st.in, st.out, BIG) == 0);
        finish();
}
END_TEST

/* A peer that has gone: -EPIPE, and no SIGPIPE (the suites run with its
 * default disposition, which would end the process). */
static int epipe_fn(void *arg) {
        char buf[4096] = { 0 };

        (void) arg;
        close(st.fd[1]);
        st.fd[1] = -1;
        st.r[0] = evt_write(st.fd[0], buf, sizeof(buf), EVT_FOREVER);
        return 0;
}

START_TEST(write_to_closed_peer_is_epipe) {
        reset();
        evt_task_unref(test_spawn(st.loop, epipe_fn, NULL, "writer", 0));
        test_loop_run(st.loop);
        ck_assert_int_eq(st.r[0], -EPIPE);
        finish();
}
END_TEST

/* Deadlines and cancels end a read that waits; a read with EVT_NOW and
 * nothing to read is -ETIMEDOUT. */
static int read_deadline_fn(void *arg) {
        char c;

        (void) arg;
        st.r[0] = evt_read(st.fd[1], &c, 1, EVT_NOW, NULL);
        st.r[1] = evt_read(st.fd[1], &c, 1, evt_deadline_in(EVT_MSEC(20)), NULL);
        st.r[2] = evt_read(st.fd[1], &c, 1, EVT_FOREVER, NULL);
        return 0;
}

static int canceller_fn(void *arg) {
        evt_task *reader = arg;

        if (!POLL_UNTIL(st.r[1] != 1 && test_is_waiting(reader)))
                return -1;
        return evt_task_cancel(reader, 0);
}

START_TEST(read_deadline_and_cancel) {
        evt_task *reader;

        reset();
        reader = test_spawn(st.loop, read_deadline_fn, NULL, "reader", 0);
        evt_task_unref(test_spawn(st.loop, canceller_fn, reader, "canceller", 0));
        test_loop_run(st.loop);
        ck_assert_int_eq(st.r[0], -ETIMEDOUT);
        ck_assert_int_eq(st.r[1], -ETIMEDOUT);
        ck_assert_int_eq(st.r[2], -ECANCELED);
        evt_task_unref(reader);
        finish();
}
END_TEST

/* ---- accept and connect over TCP on loopback ---- */

static struct sockaddr_in srv_addr;

static int listener_new(void) {
        socklen_t len = sizeof(srv_addr);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

        ck_assert_int_ge(fd, 0);
        memset(&srv_addr, 0, sizeof(srv_addr));
        srv_addr.sin_family = AF_INET;
        srv_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ck_assert_int_eq(bind(fd, (struct sockaddr *) &srv_addr, sizeof(srv_addr)), 0);
        ck_assert_int_eq(listen(fd, 16), 0);
        ck_assert_int_eq(getsockname(fd, (struct sockaddr *) &srv_addr, &len), 0);
        return fd;
}

static int server_fn(void *arg) {
        int lfd = (int) (intptr_t) arg, c;
        char buf[5];
        size_t n;

        st.r[0] = evt_accept(lfd, evt_deadline_in(POLL_LIMIT), &c);
        if (st.r[0] < 0)
                return 0;
        st.r[2] = (fcntl(c, F_GETFL) & O_NONBLOCK) != 0 && (fcntl(c, F_GETFD) & FD_CLOEXEC) != 0;
        if (evt_read(c, buf, sizeof(buf), evt_deadline_in(POLL_LIMIT), &n) == 0)
                evt_write(c, buf, n, evt_deadline_in(POLL_LIMIT));
        close(c);
        return 0;
}

static int client_fn(void *arg) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        char buf[6] = { 0 };
        size_t n = 0;

        (void) arg;
        st.r[1] = evt_connect(fd, (struct sockaddr *) &srv_addr, sizeof(srv_addr), evt_deadline_in(POLL_LIMIT));
        if (st.r[1] == 0 && evt_write(fd, "hello", 5, evt_deadline_in(POLL_LIMIT)) == 0 &&
            evt_read(fd, buf, 5, evt_deadline_in(POLL_LIMIT), &n) == 0)
                st.r[3] = strcmp(buf, "hello") == 0;
        close(fd);
        return 0;
}

START_TEST(accept_connect_echo) {
        int lfd;

        reset();
        lfd = listener_new();
        evt_task_unref(test_spawn(st.loop, server_fn, (void *) (intptr_t) lfd, "server", 0));
        evt_task_unref(test_spawn(st.loop, client_fn, NULL, "client", 0));
        test_loop_run(st.loop);
        ck_assert_int_eq(st.r[0], 0);
        ck_assert_int_eq(st.r[1], 0);
        ck_assert_int_eq(st.r[2], 1);
        ck_assert_int_eq(st.r[3], 1);
        close(lfd);
        finish();
}
END_TEST

/* A port nobody listens on: -ECONNREFUSED. An accept with nothing to
 * accept times out. */
static int refused_fn(void *arg) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int lfd = (int) (intptr_t) arg, c = -1;

        st.r[1] = evt_accept(lfd, evt_deadline_in(EVT_MSEC(20)), &c);
        close(lfd);
        st.r[0] = evt_connect(fd, (struct sockaddr *) &srv_addr, sizeof(srv_addr), evt_deadline_in(POLL_LIMIT));
        close(fd);
        return 0;
}

START_TEST(connect_refused_accept_deadline) {
        reset();
        evt_task_unref(test_spawn(st.loop, refused_fn, (void *) (intptr_t) listener_new(), "client", 0));
        test_loop_run(st.loop);
        ck_assert_int_eq(st.r[1], -ETIMEDOUT);
        ck_assert_int_eq(st.r[0], -ECONNREFUSED);
        finish();
}
END_TEST

/* ---- names, on a pool ---- */

static int lookup_fn(void *arg) {
        evt_pool *pool = arg;
        struct addrinfo hints = { .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV, .ai_socktype = SOCK_STREAM };
        struct addrinfo *res = NULL, *none = (struct addrinfo *) &hints;

        st.r[0] = evt_getaddrinfo(pool, "127.0.0.1", "80", &hints, EVT_FOREVER, &res);
        if (res) {
                const struct sockaddr_in *a = (const struct sockaddr_in *) res->ai_addr;

                st.r[3] = res->ai_family == AF_INET && ntohs(a->sin_port) == 80;
                freeaddrinfo(res);
        }
        st.r[1] = evt_getaddrinfo(pool, "not an address", NULL, &hints, EVT_FOREVER, &none);
        st.r[2] = evt_getaddrinfo(pool, NULL, NULL, NULL, EVT_FOREVER, &none);
        if (none != (struct addrinfo *) &hints)
                st.r[2] = 99; /* touched on failure */
        return 0;
}

/* A lookup the task gave up on (at once, with EVT_NOW) leaves nothing
 * behind: valgrind checks the memory. */
static int lookup_abandoned_fn(void *arg) {
        struct addrinfo *res = NULL;

        st.r[0] = evt_getaddrinfo(arg, "127.0.0.1", NULL, NULL, EVT_NOW, &res);
        return 0;
}

START_TEST(getaddrinfo_on_pool) {
        evt_pool *pool;

        reset();
        ck_assert_int_eq(evt_pool_new(st.loop, &(evt_pool_opts) { .threads = 1 }, &pool), 0);
        evt_task_unref(test_spawn(st.loop, lookup_fn, pool, "lookup", 0));
        /* The pool's watcher stays until the pool goes: finish() checks. */
        ck_assert_int_eq(evt_loop_run(st.loop), 0);
        ck_assert_int_eq(st.r[0], 0);
        ck_assert_int_eq(st.r[3], 1);
        ck_assert_int_eq(st.r[1], -ENOENT);
        ck_assert_int_eq(st.r[2], -EINVAL);
        evt_task_unref(test_spawn(st.loop, lookup_abandoned_fn, pool, "abandoned", 0));
        ck_assert_int_eq(evt_loop_run(st.loop), 0);
        ck_assert_int_eq(st.r[0], -ETIMEDOUT);
        evt_pool_free(pool);
        finish();
}
END_TEST

/* ---- arguments ---- */

static int args_fn(void *arg) {
        int fd;

        (void) arg;
        st.r[0] = evt_read(-1, NULL, 0, EVT_NOW, NULL);
        st.r[1] = evt_write(st.fd[0], NULL, 1, EVT_NOW);
        st.r[2] = evt_accept(st.fd[0], EVT_NOW, NULL);
        st.r[3] = evt_connect(st.fd[0], NULL, 0, EVT_NOW);
        return evt_accept(-1, EVT_NOW, &fd) == -EINVAL ? 0 : -1;
}

START_TEST(socket_args) {
        char c;

        reset();
        ck_assert_int_eq(evt_read(st.fd[0], &c, 1, EVT_NOW, NULL), -EINVAL); /* outside a task */
        evt_task_unref(test_spawn(st.loop, args_fn, NULL, "args", 0));
        test_loop_run(st.loop);
        for (int i = 0; i < 4; i++)
                ck_assert_int_eq(st.r[i], -EINVAL);
        finish();
}
END_TEST

Suite *evt_test_suite(void) {
        Suite *s = suite_create("socket");
        TCase *tc = tcase_create("stream");

        tcase_add_test(tc, write_all_read_to_end);
        tcase_add_test(tc, write_to_closed_peer_is_epipe);
        tcase_add_test(tc, read_deadline_and_cancel);
        suite_add_tcase(s, tc);

        tc = tcase_create("tcp");
        tcase_add_test(tc, accept_connect_echo);
        tcase_add_test(tc, connect_refused_accept_deadline);
        suite_add_tcase(s, tc);

        tc = tcase_create("names");
        tcase_add_test(tc, getaddrinfo_on_pool);
        suite_add_tcase(s, tc);

        tc = tcase_create("args");
        tcase_add_test(tc, socket_args);
        suite_add_tcase(s, tc);
        return s;
}
