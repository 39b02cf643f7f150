/* Layer 3: functions posted from other threads run on the loop's thread. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sched.h>
#include <string.h>

#include "testutil.h"

#define N_POSTS 1000

static struct {
        evt_loop *loop;
        evt_async *async;
        evt_channel *ch;
        evt_event *ev;
        pthread_t loop_thread;
        int r_post[N_POSTS];
        int got[N_POSTS];
        int n_got;
        int r_wait;
        int ran;                /* posted functions run */
        bool off_thread;        /* one ran on another thread */
        int spawned_ran;
        atomic_bool waiting;    /* the waiter is about to wait */
} st;

static void reset(void) {
        memset(&st, 0, sizeof(st));
        st.loop_thread = pthread_self();
        st.loop = test_loop_new();
        ck_assert_int_eq(evt_async_new(st.loop, &st.async), 0);
}

static void note_thread(void) {
        st.ran++;
        if (!pthread_equal(pthread_self(), st.loop_thread))
                st.off_thread = true;
}

/* ---- a foreign thread sends values, in order ---- */

static void send_value(void *arg) {
        int v = (int) (intptr_t) arg;

        note_thread();
        if (evt_channel_try_send(st.ch, &v) < 0)
                st.off_thread = true; /* cannot happen: the buffer has room */
}

static void *sender_thread(void *arg) {
        (void) arg;
        for (int i = 0; i < N_POSTS; i++)
                st.r_post[i] = evt_async_post(st.async, send_value, (void *) (intptr_t) i);
        return NULL;
}

static int receiver_fn(void *arg) {
        (void) arg;
        for (int i = 0; i < N_POSTS; i++) {
                if (evt_channel_recv(st.ch, &st.got[i], EVT_FOREVER) < 0)
                        return -1;
                st.n_got++;
        }
        return 0;
}

START_TEST(posts_run_in_order_on_loop) {
        pthread_t th;

        reset();
        ck_assert_int_eq(evt_channel_new(st.loop, sizeof(int), N_POSTS, &st.ch), 0);
        evt_task_unref(test_spawn(st.loop, receiver_fn, NULL, "receiver", 0));
        ck_assert_int_eq(pthread_create(&th, NULL, sender_thread, NULL), 0);
        test_loop_run(st.loop);
        ck_assert_int_eq(pthread_join(th, NULL), 0);
        ck_assert_int_eq(st.n_got, N_POSTS);
        for (int i = 0; i < N_POSTS; i++) {
                ck_assert_int_eq(st.r_post[i], 0);
                ck_assert_int_eq(st.got[i], i);
        }
        ck_assert_int_eq(st.ran, N_POSTS);
        ck_assert(!st.off_thread);
        evt_async_free(st.async);
        evt_channel_free(st.ch);
        test_loop_free(st.loop);
}
END_TEST

/* ---- a foreign thread wakes a waiting task, and spawns one ---- */

static int spawned_fn(void *arg) {
        (void) arg;
        st.spawned_ran++;
        return 0;
}

static void set_and_spawn(void *arg) {
        (void) arg;
        note_thread();
        evt_event_set(st.ev);
        evt_task_spawn(st.loop, spawned_fn, NULL, NULL, NULL);
}

static void *waker_thread(void *arg) {
        (void) arg;
        /* Once the task waits, the loop blocks in its poll: the post has
         * to wake it (if it comes earlier, the wait finds the event set). */
        while (!atomic_load(&st.waiting))
                sched_yield();
        st.r_post[0] = evt_async_post(st.async, set_and_spawn, NULL);
        return NULL;
}

static int waiter_fn(void *arg) {
        (void) arg;
        atomic_store(&st.waiting, true);
        st.r_wait = evt_event_wait(st.ev, evt_deadline_in(POLL_LIMIT));
        return 0;
}

START_TEST(post_wakes_the_loop) {
        evt_task *waiter;
        pthread_t th;

        reset();
        ck_assert_int_eq(evt_event_new(st.loop, &st.ev), 0);
        waiter = test_spawn(st.loop, waiter_fn, NULL, "waiter", 0);
        ck_assert_int_eq(pthread_create(&th, NULL, waker_thread, NULL), 0);
        test_loop_run(st.loop);
        ck_assert_int_eq(pthread_join(th, NULL), 0);
        ck_assert_int_eq(st.r_post[0], 0);
        ck_assert_int_eq(st.r_wait, 0);
        ck_assert_int_eq(st.spawned_ran, 1);
        ck_assert(!st.off_thread);
        evt_task_unref(waiter);
        evt_async_free(st.async);
        evt_event_free(st.ev);
        test_loop_free(st.loop);
}
END_TEST

/* ---- freeing ---- */

static void free_own(void *arg) {
        (void) arg;
        note_thread();
        evt_async_free(st.async);
}

static void count_run(void *arg) {
        (void) arg;
        note_thread();
}

static int post_from_task(void *arg) {
        (void) arg;
        evt_async_post(st.async, count_run, NULL);
        evt_async_post(st.async, free_own, NULL);
        evt_async_post(st.async, count_run, NULL);
        return 0;
}

/* A posted function may free its post box: the posts of the same batch
 * still run, then it goes. */
START_TEST(posted_function_frees_async) {
        reset();
        evt_task_unref(test_spawn(st.loop, post_from_task, NULL, "poster", 0));
        test_loop_run(st.loop);
        /* The posts run once the task has ended and libev polls. */
        while (st.ran < 3)
                ev_run(evt_loop_ev(st.loop), EVRUN_ONCE);
        ck_assert_int_eq(st.ran, 3);
        test_loop_free(st.loop);
}
END_TEST

/* Posts still queued at the free run; a box left is freed with its loop. */
START_TEST(free_runs_queued_posts) {
        reset();
        ck_assert_int_eq(evt_async_post(st.async, count_run, NULL), 0);
        ck_assert_int_eq(evt_async_post(st.async, count_run, NULL), 0);
        evt_async_free(st.async);
        ck_assert_int_eq(st.ran, 2);
        ck_assert_int_eq(evt_async_new(st.loop, &st.async), 0);
        ck_assert_int_eq(evt_async_post(st.async, count_run, NULL), 0);
        evt_loop_free(st.loop);
        ck_assert_int_eq(st.ran, 3);
}
END_TEST

START_TEST(async_args) {
        evt_async *a = (evt_async *) &a;

        reset();
        ck_assert_int_eq(evt_async_new(NULL, &a), -EINVAL);
        ck_assert_int_eq(evt_async_new(st.loop, NULL), -EINVAL);
        ck_assert_ptr_eq(a, (evt_async *) &a);
        ck_assert_int_eq(evt_async_post(NULL, count_run, NULL), -EINVAL);
        ck_assert_int_eq(evt_async_post(st.async, NULL, NULL), -EINVAL);
        evt_async_free(NULL);
        evt_async_free(st.async);
        test_loop_free(st.loop);
}
END_TEST

Suite *evt_test_suite(void) {
        Suite *s = suite_create("async");
        TCase *tc = tcase_create("async");

        tcase_add_test(tc, posts_run_in_order_on_loop);
        tcase_add_test(tc, post_wakes_the_loop);
        tcase_add_test(tc, posted_function_frees_async);
        tcase_add_test(tc, free_runs_queued_posts);
        tcase_add_test(tc, async_args);
        suite_add_tcase(s, tc);
        return s;
}
