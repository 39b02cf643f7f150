/* Layer 3: channels, bounded queues of values between tasks. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define N 8
#define N_MSGS 1000

/* Tasks record here; the test body asserts afterwards. Reset by every test
 * (under CK_FORK=no all tests share one process). */
static struct {
        evt_loop *loop;
        evt_channel *ch;
        evt_task *task[N];
        int r[N];
        int got[N];             /* what receiver i received */
        int order[4 * N];       /* what happened, in order */
        int n_order;
        evt_deadline deadline;
} st;

static void reset(size_t capacity) {
        memset(&st, 0, sizeof(st));
        for (int i = 0; i < N; i++) {
                st.r[i] = 1;
                st.got[i] = -1;
        }
        st.deadline = EVT_FOREVER;
        st.loop = test_loop_new();
        ck_assert_int_eq(evt_channel_new(st.loop, sizeof(int), capacity, &st.ch), 0);
}

static void finish(void) {
        for (int i = 0; i < N; i++)
                evt_task_unref(st.task[i]);
        evt_channel_free(st.ch);
        test_loop_free(st.loop);
}

static void note(int what) {
        st.order[st.n_order++] = what;
}

/* Sends its own index, then notes 100 + index. */
static int sender_fn(void *arg) {
        int i = (int) (intptr_t) arg;

        st.r[i] = evt_channel_send(st.ch, &i, st.deadline);
        note(100 + i);
        return 0;
}

/* Receives one value into got[i], then notes 200 + index. */
static int receiver_fn(void *arg) {
        int i = (int) (intptr_t) arg;

        st.r[i] = evt_channel_recv(st.ch, &st.got[i], st.deadline);
        note(200 + i);
        return 0;
}

static void spawn(int i, evt_task_fn fn) {
        st.task[i] = test_spawn(st.loop, fn, (void *) (intptr_t) i, fn == sender_fn ? "sender" : "receiver", 0);
}

/* From a task: until task i waits. */
static bool await_waiting(int i) {
        return POLL_UNTIL(test_is_waiting(st.task[i]));
}

/* ---- buffered and rendezvous ---- */

/* Sends fill the buffer without waiting; the next one waits; receives take
 * the values in the order they were sent. */
static int fill_fn(void *arg) {
        int v;

        (void) arg;
        for (v = 0; v < 3; v++)
                if (evt_channel_send(st.ch, &v, EVT_NOW) < 0)
                        return -1;
        st.r[0] = evt_channel_send(st.ch, &v, EVT_NOW); /* full */
        st.r[1] = (int) evt_channel_len(st.ch);
        for (int i = 0; i < 3; i++)
                if (evt_channel_recv(st.ch, &st.got[i], EVT_NOW) < 0)
                        return -1;
        st.r[2] = evt_channel_recv(st.ch, &v, EVT_NOW); /* empty */
        return 0;
}

START_TEST(buffered_fifo) {
        reset(3);
        evt_task_unref(test_spawn(st.loop, fill_fn, NULL, "fill", 0));
        test_loop_run(st.loop);
        ck_assert_int_eq(st.r[0], -ETIMEDOUT);
        ck_assert_int_eq(st.r[1], 3);
        for (int i = 0; i < 3; i++)
                ck_assert_int_eq(st.got[i], i);
        ck_assert_int_eq(st.r[2], -ETIMEDOUT);
        finish();
}
END_TEST

/* At capacity 0 a send waits until a receiver has taken the value. */
START_TEST(rendezvous) {
        reset(0);
        spawn(0, sender_fn);
        spawn(1, receiver_fn);
        test_loop_run(st.loop);
        ck_assert_int_eq(st.r[0], 0);
        ck_assert_int_eq(st.r[1], 0);
        ck_assert_int_eq(st.got[1], 0);
        /* The receiver ran first once the value was there. */
        ck_assert_int_eq(st.n_order, 2);
        ck_assert_int_eq(st.order[0], 201);
        ck_assert_int_eq(st.order[1], 100);
        ck_assert_uint_eq(evt_channel_len(st.ch), 0);
        finish();
}
END_TEST

/* Senders wait in line on a full channel, and receivers on an empty one:
 * each side is served in the order it came. */
static int fifo_ctl(void *arg) {
        int v;

        (void) arg;
        /* Four senders wait on a rendezvous channel, in order. */
        for (int i = 0; i < 4; i++) {
                spawn(i, sender_fn);
                if (!await_waiting(i))
                        return -1;
        }
        for (int i = 0; i < 4; i++) {
                if (evt_channel_recv(st.ch, &v, EVT_FOREVER) < 0)
                        return -1;
                st.got[i] = v;
        }
        /* Four receivers wait, in order. */
        for (int i = 4; i < 8; i++) {
                spawn(i, receiver_fn);
                if (!await_waiting(i))
                        return -1;
        }
        for (v = 40; v < 44; v++)
                if (evt_channel_send(st.ch, &v, EVT_FOREVER) < 0)
                        return -1;
        return 0;
}

START_TEST(fifo_many_senders_receivers) {
        reset(0);
        evt_task_unref(test_spawn(st.loop, fifo_ctl, NULL, "ctl", 0));
        test_loop_run(st.loop);
        for (int i = 0; i < 4; i++) {
                ck_assert_int_eq(st.r[i], 0);
                ck_assert_int_eq(st.got[i], i);
                ck_assert_int_eq(st.r[4 + i], 0);
                ck_assert_int_eq(st.got[4 + i], 40 + i);
        }
        finish();
}
END_TEST

/* A buffered channel keeps FIFO order across a full buffer: the value of
 * the sender first in line goes in behind the buffered ones. */
static int refill_ctl(void *arg) {
        int v = 10;

        (void) arg;
        if (evt_channel_send(st.ch, &v, EVT_NOW) < 0)
                return -1;
        spawn(1, sender_fn);
        spawn(2, sender_fn);
        if (!await_waiting(1) || !await_waiting(2))
                return -1;
        for (int i = 4; i < 7; i++)
                if (evt_channel_recv(st.ch, &st.got[i], EVT_FOREVER) < 0)
                        return -1;
        return 0;
}

START_TEST(buffered_waiting_senders) {
        reset(1);
        evt_task_unref(test_spawn(st.loop, refill_ctl, NULL, "ctl", 0));
        test_loop_run(st.loop);
        ck_assert_int_eq(st.got[4], 10);
        ck_assert_int_eq(st.got[5], 1);
        ck_assert_int_eq(st.got[6], 2);
        ck_assert_int_eq(st.r[1], 0);
        ck_assert_int_eq(st.r[2], 0);
        finish();
}
END_TEST

/* ---- close ---- */

/* Receivers drain the buffer after a close, then get -EPIPE; a send after
 * it fails with -EPIPE and leaves the buffer alone. */
static int drain_ctl(void *arg) {
        int v;

        (void) arg;
        for (v = 0; v < 2; v++)
                if (evt_channel_send(st.ch, &v, EVT_NOW) < 0)
                        return -1;
        if (evt_channel_close(st.ch) < 0 || evt_channel_close(st.ch) < 0)
                return -1;
        st.r[0] = evt_channel_send(st.ch, &v, EVT_NOW);
        st.r[1] = evt_channel_recv(st.ch, &st.got[1], EVT_FOREVER);
        st.r[2] = evt_channel_recv(st.ch, &st.got[2], EVT_FOREVER);
        st.r[3] = evt_channel_recv(st.ch, &st.got[3], EVT_FOREVER);
        st.r[4] = evt_channel_try_send(st.ch, &v);
        return 0;
}

START_TEST(close_drains_then_epipe) {
        reset(4);
        evt_task_unref(test_spawn(st.loop, drain_ctl, NULL, "ctl", 0));
        test_loop_run(st.loop);
        ck_assert_int_eq(st.r[0], -EPIPE);
        ck_assert_int_eq(st.r[1], 0);
        ck_assert_int_eq(st.got[1], 0);
        ck_assert_int_eq(st.r[2], 0);
        ck_assert_int_eq(st.got[2], 1);
        ck_assert_int_eq(st.r[3], -EPIPE);
        ck_assert_int_eq(st.r[4], -EPIPE);
        ck_assert(evt_channel_is_closed(st.ch));
        finish();
}
END_TEST

/* Tasks waiting at the close: receivers on an empty channel, senders on a
 * full one; all get -EPIPE, and no sender's value is taken. */
static int close_waiters_ctl(void *arg) {
        (void) arg;
        spawn(0, receiver_fn);
        spawn(1, receiver_fn);
        if (!await_waiting(0) || !await_waiting(1))
                return -1;
        if (evt_channel_close(st.ch) < 0)
                return -1;
        return 0;
}

START_TEST(close_wakes_receivers) {
        reset(0);
        evt_task_unref(test_spawn(st.loop, close_waiters_ctl, NULL, "ctl", 0));
        test_loop_run(st.loop);
        ck_assert_int_eq(st.r[0], -EPIPE);
        ck_assert_int_eq(st.r[1], -EPIPE);
        ck_assert_int_eq(st.got[0], -1);
        finish();
}
END_TEST

static int close_senders_ctl(void *arg) {
        (void) arg;
        spawn(0, sender_fn);
        spawn(1, sender_fn);
        if (!await_waiting(0) || !await_waiting(1))
                return -1;
        if (evt_channel_close(st.ch) < 0)
                return -1;
        st.r[2] = evt_channel_recv(st.ch, &st.got[2], EVT_FOREVER);
        return 0;
}

START_TEST(close_wakes_senders) {
        reset(0);
        evt_task_unref(test_spawn(st.loop, close_senders_ctl, NULL, "ctl", 0));
        test_loop_run(st.loop);
        ck_assert_int_eq(st.r[0], -EPIPE);
        ck_assert_int_eq(st.r[1], -EPIPE);
        ck_assert_int_eq(st.r[2], -EPIPE);
        finish();
}
END_TEST

/* ---- deadlines, cancels, free ---- */

START_TEST(recv_deadline) {
        int64_t start;

        reset(1);
        start = evt_time_now();
        st.deadline = evt_deadline_in(EVT_MSEC(30));
        spawn(0, receiver_fn);
        test_loop_run(st.loop);
        ck_assert_int_eq(st.r[0], -ETIMEDOUT);
        ck_assert_int_ge(test_ms_since(start), 29);
        finish();
}
END_TEST

/* A receiver cancelled while it waits takes nothing: the value goes to the
 * receiver behind it. A sender cancelled while it waits leaves nothing. */
static int cancel_ctl(void *arg) {
        int v = 7;

        (void) arg;
        spawn(0, receiver_fn);
        spawn(1, receiver_fn);
        if (!await_waiting(0) || !await_waiting(1))
                return -1;
        evt_task_cancel(st.task[0], 0);
        if (evt_channel_send(st.ch, &v, EVT_FOREVER) < 0)
                return -1;
        if (evt_task_join(st.task[1], EVT_FOREVER, NULL) < 0)
                return -1;
        spawn(2, sender_fn);
        if (!await_waiting(2))
                return -1;
        evt_task_cancel(st.task[2], 0);
        if (evt_task_join(st.task[2], EVT_FOREVER, NULL) < 0)
                return -1;
        st.r[3] = evt_channel_recv(st.ch, &v, EVT_NOW);
        return 0;
}

START_TEST(cancelled_waiter_takes_nothing) {
        reset(0);
        evt_task_unref(test_spawn(st.loop, cancel_ctl, NULL, "ctl", 0));
        test_loop_run(st.loop);
        ck_assert_int_eq(st.r[0], -ECANCELED);
        ck_assert_int_eq(st.got[0], -1);
        ck_assert_int_eq(st.r[1], 0);
        ck_assert_int_eq(st.got[1], 7);
        ck_assert_int_eq(st.r[2], -ECANCELED);
        ck_assert_int_eq(st.r[3], -ETIMEDOUT);
        finish();
}
END_TEST

/* A receiver handed a value and cancelled before it ran again reports the
 * value: it was taken, and would otherwise be lost. */
static int handed_ctl(void *arg) {
        int v = 9;

        (void) arg;
        spawn(0, receiver_fn);
        if (!await_waiting(0))
                return -1;
        if (evt_channel_send(st.ch, &v, EVT_FOREVER) < 0)
                return -1;
        evt_task_cancel(st.task[0], 0);
        return 0;
}

START_TEST(handed_then_cancelled_keeps_value) {
        reset(0);
        evt_task_unref(test_spawn(st.loop, handed_ctl, NULL, "ctl", 0));
        test_loop_run(st.loop);
        ck_assert_int_eq(st.r[0], 0);
        ck_assert_int_eq(st.got[0], 9);
        finish();
}
END_TEST

static int free_ctl(void *arg) {
        (void) arg;
        spawn(0, receiver_fn);
        if (!await_waiting(0))
                return -1;
        evt_channel_free(st.ch);
        st.ch = NULL;
        return 0;
}

START_TEST(free_wakes_waiters) {
        reset(0);
        evt_task_unref(test_spawn(st.loop, free_ctl, NULL, "ctl", 0));
        test_loop_run(st.loop);
        ck_assert_int_eq(st.r[0], -EIDRM);
        finish();
}
END_TEST

/* ---- cost: one switch per message, not a wake-up of every waiter ---- */

static int ping_fn(void *arg) {
        evt_channel **ch = arg;

        for (int i = 0; i < N_MSGS; i++) {
                int v = i;

                if (evt_channel_send(ch[0], &v, EVT_FOREVER) < 0 || evt_channel_recv(ch[1], &v, EVT_FOREVER) < 0 ||
                    v != i + 1)
                        return -1;
        }
        return 0;
}

static int pong_fn(void *arg) {
        evt_channel **ch = arg;

        for (int i = 0; i < N_MSGS; i++) {
                int v;

                if (evt_channel_recv(ch[0], &v, EVT_FOREVER) < 0)
                        return -1;
                v++;
                if (evt_channel_send(ch[1], &v, EVT_FOREVER) < 0)
                        return -1;
        }
        return 0;
}

START_TEST(ping_pong_switches) {
        evt_channel *ch[2];
        evt_task *ping, *pong;
        int res;

        reset(0);
        ck_assert_int_eq(evt_channel_new(st.loop, sizeof(int), 0, &ch[0]), 0);
        ck_assert_int_eq(evt_channel_new(st.loop, sizeof(int), 0, &ch[1]), 0);
        ping = test_spawn(st.loop, ping_fn, ch, "ping", 0);
        pong = test_spawn(st.loop, pong_fn, ch, "pong", 0);
        test_loop_run(st.loop);
        ck_assert_int_eq(evt_task_result(ping, &res), 0);
        ck_assert_int_eq(res, 0);
        ck_assert_int_eq(evt_task_result(pong, &res), 0);
        ck_assert_int_eq(res, 0);
        /* Each message wakes its receiver once: one switch per message. */
        ck_assert_uint_le(test_switches(st.loop), 2 * N_MSGS + 4);
        evt_task_unref(ping);
        evt_task_unref(pong);
        evt_channel_free(ch[0]);
        evt_channel_free(ch[1]);
        finish();
}
END_TEST

/* ---- arguments ---- */

static int args_fn(void *arg) {
        evt_channel *other = arg;
        int v = 0;

        st.r[0] = evt_channel_send(NULL, &v, EVT_FOREVER);
        st.r[1] = evt_channel_send(st.ch, NULL, EVT_FOREVER);
        st.r[2] = evt_channel_recv(NULL, &v, EVT_FOREVER);
        st.r[3] = evt_channel_send(other, &v, EVT_NOW);
        st.r[4] = evt_channel_recv(other, &v, EVT_NOW);
        return 0;
}

START_TEST(channel_args) {
        evt_channel *c = (evt_channel *) &c, *other;
        evt_loop *l2 = test_other_loop_new();
        int v = 0;

        reset(0);
        ck_assert_int_eq(evt_channel_new(NULL, 4, 0, &c), -EINVAL);
        ck_assert_int_eq(evt_channel_new(st.loop, 0, 0, &c), -EINVAL);
        ck_assert_int_eq(evt_channel_new(st.loop, 4, 0, NULL), -EINVAL);
        ck_assert_int_eq(evt_channel_new(st.loop, 1u << 20, SIZE_MAX / 1024, &c), -ENOMEM);
        ck_assert_ptr_eq(c, (evt_channel *) &c);
        ck_assert_int_eq(evt_channel_send(st.ch, &v, EVT_FOREVER), -EINVAL); /* outside a task */
        ck_assert_int_eq(evt_channel_try_send(st.ch, &v), -EAGAIN);
        ck_assert_int_eq(evt_channel_try_send(NULL, &v), -EINVAL);
        ck_assert_int_eq(evt_channel_close(NULL), -EINVAL);
        ck_assert(!evt_channel_is_closed(NULL));
        ck_assert_uint_eq(evt_channel_len(NULL), 0);
        evt_channel_free(NULL);

        ck_assert_int_eq(evt_channel_new(l2, sizeof(int), 1, &other), 0);
        evt_task_unref(test_spawn(st.loop, args_fn, other, "args", 0));
        test_loop_run(st.loop);
        for (int i = 0; i < 5; i++)
                ck_assert_int_eq(st.r[i], -EINVAL);
        ck_assert_uint_eq(evt_channel_len(other), 0);
        evt_channel_free(other);
        test_other_loop_free(l2);
        finish();
}
END_TEST

Suite *evt_test_suite(void) {
        Suite *s = suite_create("channel");
        TCase *tc;

        tc = tcase_create("order");
        tcase_add_test(tc, buffered_fifo);
        tcase_add_test(tc, rendezvous);
        tcase_add_test(tc, fifo_many_senders_receivers);
        tcase_add_test(tc, buffered_waiting_senders);
        suite_add_tcase(s, tc);

        tc = tcase_create("close");
        tcase_add_test(tc, close_drains_then_epipe);
        tcase_add_test(tc, close_wakes_receivers);
        tcase_add_test(tc, close_wakes_senders);
        suite_add_tcase(s, tc);

        tc = tcase_create("give_up");
        tcase_add_test(tc, recv_deadline);
        tcase_add_test(tc, cancelled_waiter_takes_nothing);
        tcase_add_test(tc, handed_then_cancelled_keeps_value);
        tcase_add_test(tc, free_wakes_waiters);
        suite_add_tcase(s, tc);

        tc = tcase_create("cost");
        tcase_add_test(tc, ping_pong_switches);
        suite_add_tcase(s, tc);

        tc = tcase_create("args");
        tcase_add_test(tc, channel_args);
        suite_add_tcase(s, tc);
        return s;
}
