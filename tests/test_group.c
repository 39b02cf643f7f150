/* Layer 3: task groups, waited for and cancelled together. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define N_MEMBERS 4
#define UNTIL_RELEASED (-1)     /* a member's sleep_ns: waits for st.release */

/* Tasks run inside evt_loop_run: they record what they saw here, and the
 * test body asserts on it afterwards. Reset by every test (under CK_FORK=no
 * all tests share one process). */
static struct {
        evt_loop *loop;
        evt_group *group;
        evt_task *member[N_MEMBERS + 1];
        evt_task *waiter;
        int64_t sleep_ns[N_MEMBERS + 1]; /* each member sleeps this long */
        int r[N_MEMBERS + 1];           /* the member's sleep */
        bool started[N_MEMBERS + 1];
        bool finished[N_MEMBERS + 1];
        /* What orders a test: set when want_started members have started,
         * and set by the test to end the members that wait for it. */
        evt_event *all_started, *release;
        int n_started, want_started;
        /* The waiter's view. */
        int r_wait, r_wait2;
        evt_deadline deadline;
        int64_t waited_at;
        bool finished_at_wait[N_MEMBERS + 1];
        size_t size_at_wait;
        int r_ctl;
} st;

static void reset(void) {
        memset(&st, 0, sizeof(st));
        for (int i = 0; i <= N_MEMBERS; i++)
                st.r[i] = 1;
        st.r_wait = st.r_wait2 = st.r_ctl = 1;
        st.deadline = EVT_FOREVER;
}

static int member_fn(void *arg) {
        int i = (int) (intptr_t) arg;

        st.started[i] = true;
        if (++st.n_started == st.want_started)
                evt_event_set(st.all_started);
        if (st.sleep_ns[i] == UNTIL_RELEASED)
                st.r[i] = evt_event_wait(st.release, EVT_FOREVER);
        else
                st.r[i] = evt_sleep(st.sleep_ns[i]);
        st.finished[i] = true;
        return st.r[i];
}

/* The events of a test whose order matters: all_started once `members`
 * members have started, and release. */
static void events_new(int members) {
        st.want_started = members;
        ck_assert_int_eq(evt_event_new(st.loop, &st.all_started), 0);
        ck_assert_int_eq(evt_event_new(st.loop, &st.release), 0);
}

static void events_free(void) {
        evt_event_free(st.all_started);
        evt_event_free(st.release);
}

static bool waiting(const evt_task *t) {
        return strcmp(evt_task_state_name(t), "waiting") == 0;
}

/* From a task: until every member has started and the waiter waits for
 * the group. */
static int await_members_and_waiter(void) {
        if (evt_event_wait(st.all_started, EVT_FOREVER) < 0)
                return -1;
        return POLL_UNTIL(waiting(st.waiter)) ? 0 : -1;
}

static void spawn_members(int n, int64_t first_ns, int64_t step_ns, unsigned flags) {
        for (int i = 0; i < n; i++) {
                st.sleep_ns[i] = first_ns + i * step_ns;
                ck_assert_int_eq(evt_group_spawn(st.group, member_fn, (void *) (intptr_t) i,
                                                 &(evt_task_opts) { .name = "member", .flags = flags },
                                                 &st.member[i]), 0);
        }
}

static void unref_members(void) {
        for (int i = 0; i <= N_MEMBERS; i++)
                evt_task_unref(st.member[i]);
        evt_task_unref(st.waiter);
}

/* Waits for the group with st.deadline, then records which members had
 * finished at that moment. */
static int waiter_fn(void *arg) {
        (void) arg;
        st.r_wait = evt_group_wait(st.group, st.deadline);
        st.waited_at = evt_time_now();
        for (int i = 0; i <= N_MEMBERS; i++)
                st.finished_at_wait[i] = st.finished[i];
        /* The group may be gone by now (-EIDRM). */
        if (st.r_wait != -EIDRM)
                st.size_at_wait = evt_group_size(st.group);
        return 0;
}

static void spawn_waiter(void) {
        st.waiter = test_spawn(st.loop, waiter_fn, NULL, "waiter", 0);
}

/* ---- waiting ---- */

START_TEST(group_wait_all) {
        reset();
        st.loop = test_loop_new();
        ck_assert_int_eq(evt_group_new(st.loop, &st.group), 0);
        ck_assert_uint_eq(evt_group_size(st.group), 0);
        spawn_members(N_MEMBERS, EVT_MSEC(10), EVT_MSEC(10), 0);
        ck_assert_uint_eq(evt_group_size(st.group), N_MEMBERS);
        spawn_waiter();
        test_loop_run(st.loop);
        ck_assert_int_eq(st.r_wait, 0);
        /* Not before the last member ended. */
        for (int i = 0; i < N_MEMBERS; i++) {
                ck_assert_int_eq(st.r[i], 0);
                ck_assert(st.finished_at_wait[i]);
        }
        ck_assert_uint_eq(st.size_at_wait, 0);
        ck_assert_uint_eq(evt_group_size(st.group), 0);
        evt_group_free(st.group);
        unref_members();
        test_loop_free(st.loop);
}
END_TEST

/* The size counts the members that have not ended, as they end. The
 * watcher ends the members one by one (cancel, then join), so the order
 * does not depend on timing, and reads the size after each. */
static int size_watcher_fn(void *arg) {
        size_t *sizes = arg;

        sizes[0] = evt_group_size(st.group);
        for (int i = 0; i < 3; i++) {
                evt_task_cancel(st.member[i], 0);
                if (evt_task_join(st.member[i], EVT_FOREVER, NULL) < 0)
                        return -1;
                sizes[i + 1] = evt_group_size(st.group);
        }
        return 0;
}

START_TEST(group_size_follows_members) {
        size_t sizes[4] = { 99, 99, 99, 99 };

        reset();
        st.loop = test_loop_new();
        ck_assert_int_eq(evt_group_new(st.loop, &st.group), 0);
        spawn_members(3, EVT_SEC(30), 0, 0);
        ck_assert_int_eq(evt_task_spawn(st.loop, size_watcher_fn, sizes, NULL, NULL), 0);
        test_loop_run(st.loop);
        ck_assert_uint_eq(sizes[0], 3);
        ck_assert_uint_eq(sizes[1], 2);
        ck_assert_uint_eq(sizes[2], 1);
        ck_assert_uint_eq(sizes[3], 0);
        evt_group_free(st.group);
        unref_members();
        test_loop_free(st.loop);
}
END_TEST

START_TEST(group_wait_empty) {
        reset();
        st.loop = test_loop_new();
        ck_assert_int_eq(evt_group_new(st.loop, &st.group), 0);
        /* A deadline that has passed: only an immediate return succeeds. */
        st.deadline = EVT_NOW;
        spawn_waiter();
        test_loop_run(st.loop);
        ck_assert_int_eq(st.r_wait, 0);
        evt_group_free(st.group);
        unref_members();
        test_loop_free(st.loop);
}
END_TEST

/* Members that all ended leave the group empty: a later wait returns at
 * once, and the group takes new members. */
static int wait_twice_fn(void *arg) {
        (void) arg;
        st.r_wait = evt_group_wait(st.group, EVT_FOREVER);
        st.r_wait2 = evt_group_wait(st.group, EVT_NOW);
        st.r_ctl = evt_group_spawn(st.group, member_fn, (void *) (intptr_t) N_MEMBERS, NULL,
                                   &st.member[N_MEMBERS]);
        st.size_at_wait = evt_group_size(st.group);
        if (evt_group_wait(st.group, EVT_FOREVER) < 0)
                return -1;
        st.finished_at_wait[N_MEMBERS] = st.finished[N_MEMBERS];
        return 0;
}

START_TEST(group_reused_after_empty) {
        reset();
        st.loop = test_loop_new();
        ck_assert_int_eq(evt_group_new(st.loop, &st.group), 0);
        spawn_members(2, EVT_MSEC(5), EVT_MSEC(5), 0);
        st.sleep_ns[N_MEMBERS] = EVT_MSEC(10);
        ck_assert_int_eq(evt_task_spawn(st.loop, wait_twice_fn, NULL, NULL, NULL), 0);
        test_loop_run(st.loop);
        ck_assert_int_eq(st.r_wait, 0);
        ck_assert_int_eq(st.r_wait2, 0);
        ck_assert_int_eq(st.r_ctl, 0);
        ck_assert_uint_eq(st.size_at_wait, 1);
        ck_assert(st.finished_at_wait[N_MEMBERS]);
        ck_assert_uint_eq(evt_group_size(st.group), 0);
        evt_group_free(st.group);
        unref_members();
        test_loop_free(st.loop);
}
END_TEST

/* Lets the members end once the waiter has given up. */
static int release_after_waiter_fn(void *arg) {
        (void) arg;
        if (evt_task_join(st.waiter, EVT_FOREVER, NULL) < 0)
                return -1;
        return evt_event_set(st.release);
}

START_TEST(group_wait_deadline) {
        reset();
        st.loop = test_loop_new();
        ck_assert_int_eq(evt_group_new(st.loop, &st.group), 0);
        events_new(2);
        spawn_members(2, UNTIL_RELEASED, 0, 0);
        st.deadline = evt_deadline_in(EVT_MSEC(30));
        spawn_waiter();
        ck_assert_int_eq(evt_task_spawn(st.loop, release_after_waiter_fn, NULL, NULL, NULL), 0);
        test_loop_run(st.loop);
        ck_assert_int_eq(st.r_wait, -ETIMEDOUT);
        ck_assert_int_ge(st.waited_at, st.deadline.at);
        /* While the members still ran (nothing ends them before the wait
         * has given up); they ran on, unaffected. */
        ck_assert_uint_eq(st.size_at_wait, 2);
        ck_assert(!st.finished_at_wait[0]);
        ck_assert(!st.finished_at_wait[1]);
        ck_assert_int_eq(st.r[0], 0);
        ck_assert_int_eq(st.r[1], 0);
        ck_assert_uint_eq(evt_group_size(st.group), 0);
        evt_group_free(st.group);
        events_free();
        unref_members();
        test_loop_free(st.loop);
}
END_TEST

/* ---- cancelling ---- */

/* Once every member has started, cancels the group, then waits for it;
 * also spawns one member just before the cancel, which therefore never
 * starts. */
static int group_canceller_fn(void *arg) {
        unsigned flags = (unsigned) (uintptr_t) arg;

        if (evt_event_wait(st.all_started, EVT_FOREVER) < 0)
                return -1;
        st.sleep_ns[N_MEMBERS] = EVT_SEC(10);
        if (evt_group_spawn(st.group, member_fn, (void *) (intptr_t) N_MEMBERS, NULL,
                            &st.member[N_MEMBERS]) < 0)
                return -1;
        st.r_ctl = evt_group_cancel(st.group, flags);
        st.r_wait = evt_group_wait(st.group, EVT_FOREVER);
        st.waited_at = evt_time_now();
        for (int i = 0; i <= N_MEMBERS; i++)
                st.finished_at_wait[i] = st.finished[i];
        return 0;
}

START_TEST(group_cancel_all) {
        int64_t start;

        reset();
        st.loop = test_loop_new();
        ck_assert_int_eq(evt_group_new(st.loop, &st.group), 0);
        events_new(N_MEMBERS);
        spawn_members(N_MEMBERS, EVT_SEC(10), 0, 0);
        ck_assert_int_eq(evt_task_spawn(st.loop, group_canceller_fn, (void *) (uintptr_t) 0, NULL, NULL), 0);
        start = evt_time_now();
        test_loop_run(st.loop);
        ck_assert_int_eq(st.r_ctl, 0);
        ck_assert_int_eq(st.r_wait, 0);
        ck_assert_int_lt(st.waited_at - start, EVT_SEC(5));
        for (int i = 0; i < N_MEMBERS; i++) {
                int result = 0;

                ck_assert(st.finished_at_wait[i]);
                ck_assert_int_eq(st.r[i], -ECANCELED);
                ck_assert_int_eq(evt_task_result(st.member[i], &result), 0);
                ck_assert_int_eq(result, -ECANCELED);
        }
        /* The one cancelled before it started never ran. */
        {
                int result = 0;

                ck_assert(!st.started[N_MEMBERS]);
                ck_assert_int_eq(evt_task_result(st.member[N_MEMBERS], &result), 0);
                ck_assert_int_eq(result, -ECANCELED);
        }
        ck_assert_uint_eq(evt_group_size(st.group), 0);
        evt_group_free(st.group);
        events_free();
        unref_members();
        test_loop_free(st.loop);
}
END_TEST

/* evt_group_cancel is evt_task_cancel on each member: results through
 * evt_task_join, from a task outside the group. */
static int join_all_fn(void *arg) {
        int *results = arg;

        if (evt_sleep(EVT_MSEC(10)) < 0)
                return -1;
        st.r_ctl = evt_group_cancel(st.group, 0);
        for (int i = 0; i < N_MEMBERS; i++)
                if (evt_task_join(st.member[i], EVT_FOREVER, &results[i]) < 0)
                        return -1;
        return 0;
}

START_TEST(group_cancel_join) {
        int results[N_MEMBERS];

        reset();
        for (int i = 0; i < N_MEMBERS; i++)
                results[i] = 1;
        st.loop = test_loop_new();
        ck_assert_int_eq(evt_group_new(st.loop, &st.group), 0);
        spawn_members(N_MEMBERS, EVT_SEC(10), 0, 0);
        ck_assert_int_eq(evt_task_spawn(st.loop, join_all_fn, results, NULL, NULL), 0);
        test_loop_run(st.loop);
        ck_assert_int_eq(st.r_ctl, 0);
        for (int i = 0; i < N_MEMBERS; i++)
                ck_assert_int_eq(results[i], -ECANCELED);
        evt_group_free(st.group);
        unref_members();
        test_loop_free(st.loop);
}
END_TEST

/* A shielded member ignores a plain group cancel and finishes its sleep;
 * the others are cancelled. The canceller starts first and waits for the
 * members: woken as the shielded one (the last) starts, before its 60 ms
 * sleep is even armed, it runs ahead of that sleep's end however slow the
 * machine (a task that had not started yet could be passed by it). */
START_TEST(group_cancel_spares_shielded) {
        reset();
        st.loop = test_loop_new();
        ck_assert_int_eq(evt_group_new(st.loop, &st.group), 0);
        events_new(3);
        ck_assert_int_eq(evt_task_spawn(st.loop, group_canceller_fn, (void *) (uintptr_t) 0, NULL, NULL), 0);
        spawn_members(2, EVT_SEC(10), 0, 0);
        st.sleep_ns[2] = EVT_MSEC(60);
        ck_assert_int_eq(evt_group_spawn(st.group, member_fn, (void *) (intptr_t) 2,
                                         &(evt_task_opts) { .flags = EVT_TASK_SHIELDED }, &st.member[2]), 0);
        test_loop_run(st.loop);
        ck_assert_int_eq(st.r_ctl, 0);
        ck_assert_int_eq(st.r_wait, 0);
        ck_assert_int_eq(st.r[0], -ECANCELED);
        ck_assert_int_eq(st.r[1], -ECANCELED);
        /* Its full sleep, and the group waited for it. */
        ck_assert_int_eq(st.r[2], 0);
        ck_assert(st.finished_at_wait[2]);
        ck_assert(evt_task_is_cancelled(st.member[2]));
        evt_group_free(st.group);
        events_free();
        unref_members();
        test_loop_free(st.loop);
}
END_TEST

START_TEST(group_cancel_force_pierces_shield) {
        int64_t start;

        reset();
        st.loop = test_loop_new();
        ck_assert_int_eq(evt_group_new(st.loop, &st.group), 0);
        events_new(2);
        spawn_members(2, EVT_SEC(10), 0, EVT_TASK_SHIELDED);
        ck_assert_int_eq(evt_task_spawn(st.loop, group_canceller_fn,
                                        (void *) (uintptr_t) EVT_CANCEL_FORCE, NULL, NULL), 0);
        start = evt_time_now();
        test_loop_run(st.loop);
        ck_assert_int_eq(st.r_ctl, 0);
        ck_assert_int_eq(st.r_wait, 0);
        ck_assert_int_eq(st.r[0], -ECANCELED);
        ck_assert_int_eq(st.r[1], -ECANCELED);
        ck_assert_int_lt(st.waited_at - start, EVT_SEC(5));
        evt_group_free(st.group);
        events_free();
        unref_members();
        test_loop_free(st.loop);
}
END_TEST

/* ---- freeing a group ---- */

/* Once the members run and the waiter waits, frees the group; then lets
 * the members end. */
static int group_freer_fn(void *arg) {
        (void) arg;
        if (await_members_and_waiter() < 0)
                return -1;
        evt_group_free(st.group);
        st.group = NULL;
        return evt_event_set(st.release);
}

/* Running members leave a freed group and run on to their end; a task
 * waiting for the group is woken with -EIDRM at once: before any member
 * that the free let go of has ended. */
START_TEST(group_free_members_run_on) {
        reset();
        st.loop = test_loop_new();
        ck_assert_int_eq(evt_group_new(st.loop, &st.group), 0);
        events_new(N_MEMBERS);
        spawn_members(N_MEMBERS, UNTIL_RELEASED, 0, 0);
        spawn_waiter();
        ck_assert_int_eq(evt_task_spawn(st.loop, group_freer_fn, NULL, NULL, NULL), 0);
        test_loop_run(st.loop);
        ck_assert_ptr_null(st.group);
        ck_assert_int_eq(st.r_wait, -EIDRM);
        for (int i = 0; i < N_MEMBERS; i++) {
                ck_assert(!st.finished_at_wait[i]);
                ck_assert(st.finished[i]);
                ck_assert_int_eq(st.r[i], 0);
        }
        events_free();
        unref_members();
        test_loop_free(st.loop);
}
END_TEST

/* Freed before the loop runs: the members have not started, and still run. */
START_TEST(group_free_before_start) {
        reset();
        st.loop = test_loop_new();
        ck_assert_int_eq(evt_group_new(st.loop, &st.group), 0);
        spawn_members(N_MEMBERS, EVT_MSEC(1), 0, 0);
        evt_group_free(st.group);
        st.group = NULL;
        test_loop_run(st.loop);
        for (int i = 0; i < N_MEMBERS; i++) {
                ck_assert(st.finished[i]);
                ck_assert_int_eq(st.r[i], 0);
        }
        unref_members();
        test_loop_free(st.loop);
}
END_TEST

/* Member 0 frees its own group while it runs, then goes on: once member 1
 * has ended, the others run and the waiter waits; it lets the others end
 * after the free. */
static int self_freeing_member_fn(void *arg) {
        (void) arg;
        st.started[0] = true;
        if (evt_task_join(st.member[1], EVT_FOREVER, NULL) < 0 || await_members_and_waiter() < 0)
                return -1;
        evt_group_free(st.group);
        st.group = NULL;
        evt_event_set(st.release);
        st.r[0] = evt_sleep(EVT_MSEC(10));
        st.finished[0] = true;
        return 0;
}

START_TEST(group_member_frees_group) {
        reset();
        st.loop = test_loop_new();
        ck_assert_int_eq(evt_group_new(st.loop, &st.group), 0);
        events_new(N_MEMBERS - 1);
        ck_assert_int_eq(evt_group_spawn(st.group, self_freeing_member_fn, NULL, NULL, &st.member[0]), 0);
        for (int i = 1; i < N_MEMBERS; i++) {
                /* Member 1 ends before the free, the others after. */
                st.sleep_ns[i] = i == 1 ? EVT_MSEC(10) : UNTIL_RELEASED;
                ck_assert_int_eq(evt_group_spawn(st.group, member_fn, (void *) (intptr_t) i, NULL,
                                                 &st.member[i]), 0);
        }
        spawn_waiter();
        test_loop_run(st.loop);
        ck_assert_ptr_null(st.group);
        /* The waiter was woken by the free, before the others ended. */
        ck_assert_int_eq(st.r_wait, -EIDRM);
        ck_assert(st.finished_at_wait[1]);
        ck_assert(!st.finished_at_wait[0]);
        ck_assert(!st.finished_at_wait[2]);
        ck_assert(!st.finished_at_wait[3]);
        for (int i = 0; i < N_MEMBERS; i++) {
                ck_assert(st.finished[i]);
                ck_assert_int_eq(st.r[i], 0);
        }
        events_free();
        unref_members();
        test_loop_free(st.loop);
}
END_TEST

/* ---- a cancelled waiter ---- */

/* Once the members run and the waiter waits, cancels the waiter; then lets
 * the members end. */
static int waiter_canceller_fn(void *arg) {
        (void) arg;
        if (await_members_and_waiter() < 0)
                return -1;
        st.r_ctl = evt_task_cancel(st.waiter, 0);
        return evt_event_set(st.release);
}

START_TEST(group_wait_cancelled) {
        reset();
        st.loop = test_loop_new();
        ck_assert_int_eq(evt_group_new(st.loop, &st.group), 0);
        events_new(2);
        spawn_members(2, UNTIL_RELEASED, 0, 0);
        spawn_waiter();
        ck_assert_int_eq(evt_task_spawn(st.loop, waiter_canceller_fn, NULL, NULL, NULL), 0);
        test_loop_run(st.loop);
        ck_assert_int_eq(st.r_ctl, 0);
        ck_assert_int_eq(st.r_wait, -ECANCELED);
        /* The waiter's cancel is not the group's. */
        ck_assert(!st.finished_at_wait[0]);
        ck_assert_int_eq(st.r[0], 0);
        ck_assert_int_eq(st.r[1], 0);
        ck_assert(!evt_task_is_cancelled(st.member[0]));
        evt_group_free(st.group);
        events_free();
        unref_members();
        test_loop_free(st.loop);
}
END_TEST

/* ---- argument errors ---- */

static int dummy_fn(void *arg) {
        (void) arg;
        return 0;
}

/* ---- policies: fail-fast, completion order, a bound, precancelled ---- */

#define N_POL 6

static struct {
        evt_group *g;
        evt_task *t[N_POL];
        evt_event *go[N_POL];   /* member i ends once go[i] is set */
        int value[N_POL];       /* ... with this result */
        bool started[N_POL], finished[N_POL];
        int running, most_running;
        int r_wait, r_spawn_outside;
        evt_task *order[N_POL + 1];
        int r_next[N_POL + 1];
        int freed;              /* arg_free calls */
} pol;

static void pol_reset(const evt_group_opts *opts) {
        reset();
        memset(&pol, 0, sizeof(pol));
        pol.r_wait = 1;
        st.loop = test_loop_new();
        ck_assert_int_eq(evt_group_new_opts(st.loop, opts, &pol.g), 0);
        for (int i = 0; i < N_POL; i++)
                ck_assert_int_eq(evt_event_new(st.loop, &pol.go[i]), 0);
}

static void pol_finish(void) {
        for (int i = 0; i < N_POL; i++) {
                evt_task_unref(pol.t[i]);
                evt_task_unref(pol.order[i]);
                evt_event_free(pol.go[i]);
        }
        evt_group_free(pol.g);
        test_loop_free(st.loop);
}

/* Waits for go[i], then returns value[i]; a cancel ends it earlier. */
static int pol_member_fn(void *arg) {
        int i = (int) (intptr_t) arg;
        int r;

        pol.started[i] = true;
        if (++pol.running > pol.most_running)
                pol.most_running = pol.running;
        r = evt_event_wait(pol.go[i], EVT_FOREVER);
        pol.running--;
        pol.finished[i] = true;
        return r < 0 ? r : pol.value[i];
}

static void pol_spawn(int i) {
        ck_assert_int_eq(evt_group_spawn(pol.g, pol_member_fn, (void *) (intptr_t) i, NULL, &pol.t[i]), 0);
}

static int pol_waiter_fn(void *arg) {
        (void) arg;
        pol.r_wait = evt_group_wait(pol.g, EVT_FOREVER);
        return 0;
}

/* Ported from asyncio's test_taskgroups.py, test_cancel_children_on_child_error:
 * three members fail, one sleeps; the first failure cancels the sleeper,
 * and the group's wait returns that failure and names its member. */
START_TEST(group_fail_fast_cancels_siblings) {
        pol_reset(&(evt_group_opts) { .flags = EVT_GROUP_FAIL_FAST });
        for (int i = 0; i < 4; i++) {
                pol.value[i] = i < 3 ? -EDOM : 0;
                pol_spawn(i);
        }
        for (int i = 0; i < 3; i++)
                ck_assert_int_eq(evt_event_set(pol.go[i]), 0);
        evt_task_unref(test_spawn(st.loop, pol_waiter_fn, NULL, "waiter", 0));
        test_loop_run(st.loop);
        ck_assert_int_eq(pol.r_wait, -EDOM);
        ck_assert_ptr_eq(evt_group_failed(pol.g), pol.t[0]);
        ck_assert(evt_group_is_cancelled(pol.g));
        ck_assert(evt_task_is_cancelled(pol.t[3]));
        {
                int res;

                ck_assert_int_eq(evt_task_result(pol.t[3], &res), 0);
                ck_assert_int_eq(res, -ECANCELED);
        }
        pol_finish();
}
END_TEST

/* Ported from asyncio's test_taskgroups.py, test_taskgroup_03: a member
 * cancelled on its own is not a failure; the others run on. */
static int cancel_one_fn(void *arg) {
        (void) arg;
        if (!POLL_UNTIL(pol.started[0] && pol.started[1]))
                return -1;
        evt_task_cancel(pol.t[0], 0);
        if (evt_task_join(pol.t[0], EVT_FOREVER, NULL) < 0)
                return -1;
        return evt_event_set(pol.go[1]);
}

START_TEST(group_fail_fast_own_cancel_is_no_failure) {
        int res;

        pol_reset(&(evt_group_opts) { .flags = EVT_GROUP_FAIL_FAST });
        pol.value[1] = 11;
        pol_spawn(0);
        pol_spawn(1);
        evt_task_unref(test_spawn(st.loop, cancel_one_fn, NULL, "ctl", 0));
        evt_task_unref(test_spawn(st.loop, pol_waiter_fn, NULL, "waiter", 0));
        test_loop_run(st.loop);
        ck_assert_int_eq(pol.r_wait, 0);
        ck_assert_ptr_null(evt_group_failed(pol.g));
        ck_assert(!evt_group_is_cancelled(pol.g));
        ck_assert_int_eq(evt_task_result(pol.t[0], &res), 0);
        ck_assert_int_eq(res, -ECANCELED);
        ck_assert_int_eq(evt_task_result(pol.t[1], &res), 0);
        ck_assert_int_eq(res, 11);
        pol_finish();
}
END_TEST

/* Without the policy a failure is only a result: nothing is cancelled. */
START_TEST(group_failure_without_policy) {
        pol_reset(NULL);
        pol.value[0] = -EDOM;
        pol_spawn(0);
        pol_spawn(1);
        ck_assert_int_eq(evt_event_set(pol.go[0]), 0);
        ck_assert_int_eq(evt_event_set(pol.go[1]), 0);
        evt_task_unref(test_spawn(st.loop, pol_waiter_fn, NULL, "waiter", 0));
        test_loop_run(st.loop);
        ck_assert_int_eq(pol.r_wait, 0);
        ck_assert_ptr_null(evt_group_failed(pol.g));
        ck_assert(!evt_task_is_cancelled(pol.t[1]));
        pol_finish();
}
END_TEST

static void count_free(void *arg) {
        (void) arg;
        pol.freed++;
}

/* Ported from trio's test_run.py, test_precancelled_task: a task spawned
 * into a cancelled group starts cancelled. Trio lets it start and fail at
 * its first await point; here a task cancelled before its first step never
 * runs, and its argument goes to arg_free. A shielded one runs. */
START_TEST(group_precancelled_task) {
        evt_task *shielded;
        int res;

        pol_reset(NULL);
        ck_assert_int_eq(evt_group_cancel(pol.g, 0), 0);
        ck_assert(evt_group_is_cancelled(pol.g));
        ck_assert_int_eq(evt_group_spawn(pol.g, pol_member_fn, (void *) 0,
                                         &(evt_task_opts) { .arg_free = count_free }, &pol.t[0]), 0);
        ck_assert(evt_task_is_cancelled(pol.t[0]));
        ck_assert_int_eq(evt_group_spawn(pol.g, pol_member_fn, (void *) 1,
                                         &(evt_task_opts) { .flags = EVT_TASK_SHIELDED }, &shielded), 0);
        ck_assert_int_eq(evt_event_set(pol.go[1]), 0);
        test_loop_run(st.loop);
        ck_assert(!pol.started[0]);
        ck_assert_int_eq(pol.freed, 1);
        ck_assert_int_eq(evt_task_result(pol.t[0], &res), 0);
        ck_assert_int_eq(res, -ECANCELED);
        ck_assert(pol.finished[1]);
        evt_task_unref(shielded);
        pol_finish();
}
END_TEST

/* ---- ported from trio's test_run.py and test_cancelled.py (nurseries)
 * and asyncio's test_taskgroups.py ---- */

static int looper_fn(void *arg) {
        int *loops = arg;
        int r;

        while ((r = evt_yield()) == 0)
                ++*loops;
        return r;
}

static int crasher_fn(void *arg) {
        return (int) (intptr_t) arg;
}

/* Ported from trio's test_run.py, test_task_crash_propagation: a member
 * that loops on a checkpoint is cancelled when a sibling fails; the
 * group's wait returns the failure. */
START_TEST(trio_task_crash_propagation) {
        evt_task *looper, *crasher;
        int loops = 0, res;

        pol_reset(&(evt_group_opts) { .flags = EVT_GROUP_FAIL_FAST });
        ck_assert_int_eq(evt_group_spawn(pol.g, looper_fn, &loops, NULL, &looper), 0);
        ck_assert_int_eq(evt_group_spawn(pol.g, crasher_fn, (void *) (intptr_t) -EDOM, NULL, &crasher), 0);
        evt_task_unref(test_spawn(st.loop, pol_waiter_fn, NULL, "waiter", 0));
        test_loop_run(st.loop);
        ck_assert_int_eq(pol.r_wait, -EDOM);
        ck_assert_ptr_eq(evt_group_failed(pol.g), crasher);
        ck_assert_int_eq(evt_task_result(looper, &res), 0);
        ck_assert_int_eq(res, -ECANCELED);
        ck_assert_int_ge(loops, 0);
        evt_task_unref(looper);
        evt_task_unref(crasher);
        pol_finish();
}
END_TEST

/* Sets go[0] and go[1] in one step, once both members wait for them. */
static int release_both_fn(void *arg) {
        (void) arg;
        if (!POLL_UNTIL(pol.started[0] && pol.started[1]))
                return -1;
        evt_event_set(pol.go[0]);
        evt_event_set(pol.go[1]);
        return 0;
}

/* Ported from trio's test_run.py, test_two_child_crashes: two members are
 * woken in the same loop iteration to fail. Trio raises both in a group;
 * here the first to end is the group's failure, and its cancel reaches
 * the second before it ran: a cancel that comes while a woken task waits
 * its turn is delivered at that wait, level-triggered, so the second ends
 * with -ECANCELED and is no failure of the group. */
START_TEST(trio_two_child_crashes) {
        int res;

        pol_reset(&(evt_group_opts) { .flags = EVT_GROUP_FAIL_FAST });
        pol.value[0] = -EDOM;
        pol.value[1] = -ERANGE;
        pol_spawn(0);
        pol_spawn(1);
        evt_task_unref(test_spawn(st.loop, release_both_fn, NULL, "ctl", 0));
        evt_task_unref(test_spawn(st.loop, pol_waiter_fn, NULL, "waiter", 0));
        test_loop_run(st.loop);
        ck_assert_int_eq(pol.r_wait, -EDOM);
        ck_assert_ptr_eq(evt_group_failed(pol.g), pol.t[0]);
        ck_assert(pol.finished[1]);
        ck_assert_int_eq(evt_task_result(pol.t[1], &res), 0);
        ck_assert_int_eq(res, -ECANCELED);
        pol_finish();
}
END_TEST

/* Ported from trio's test_cancelled.py, test_cancel_reason_nursery: a
 * member fails before a sibling is spawned; the sibling starts cancelled
 * and never runs (its argument goes to arg_free), and the group names the
 * member that failed as the cause. */
static int fail_then_spawn_fn(void *arg) {
        evt_task *failing;

        (void) arg;
        if (evt_group_spawn(pol.g, crasher_fn, (void *) (intptr_t) -EDOM, NULL, &failing) < 0)
                return -1;
        if (evt_task_join(failing, EVT_FOREVER, NULL) < 0)
                return -1;
        evt_task_unref(failing);
        return evt_group_spawn(pol.g, pol_member_fn, (void *) 0,
                               &(evt_task_opts) { .arg_free = count_free }, &pol.t[0]);
}

START_TEST(trio_cancel_reason_nursery) {
        evt_task *failed;
        int res;

        pol_reset(&(evt_group_opts) { .flags = EVT_GROUP_FAIL_FAST });
        evt_task_unref(test_spawn(st.loop, fail_then_spawn_fn, NULL, "ctl", 0));
        evt_task_unref(test_spawn(st.loop, pol_waiter_fn, NULL, "waiter", 0));
        test_loop_run(st.loop);
        ck_assert_int_eq(pol.r_wait, -EDOM);
        failed = evt_group_failed(pol.g);
        ck_assert_ptr_nonnull(failed);
        ck_assert_int_eq(evt_task_result(failed, &res), 0);
        ck_assert_int_eq(res, -EDOM);
        ck_assert_ptr_nonnull(pol.t[0]);
        ck_assert(!pol.started[0]);
        ck_assert_int_eq(pol.freed, 1);
        ck_assert_int_eq(evt_task_result(pol.t[0], &res), 0);
        ck_assert_int_eq(res, -ECANCELED);
        pol_finish();
}
END_TEST

/* Ported from asyncio's test_taskgroups.py, test_taskgroup_25: hydras
 * spawn two more each after a short sleep; hercules fails once there are
 * ten. The failure cancels the group, the heads spawned after it start
 * cancelled and never run, so the group empties and its wait returns. */
static struct {
        int heads, unrun;
} hydra;

static void hydra_unrun(void *arg) {
        (void) arg;
        hydra.unrun++;
}

static int hydra_fn(void *arg) {
        const evt_task_opts opts = { .arg_free = hydra_unrun };

        (void) arg;
        hydra.heads++;
        if (evt_sleep(EVT_MSEC(1)) < 0)
                return 0;
        if (evt_group_spawn(pol.g, hydra_fn, NULL, &opts, NULL) < 0 ||
            evt_group_spawn(pol.g, hydra_fn, NULL, &opts, NULL) < 0)
                return -ENOMEM;
        return 0;
}

static int hercules_fn(void *arg) {
        (void) arg;
        while (hydra.heads < 10)
                if (evt_sleep(EVT_USEC(1500)) < 0)
                        return -1;
        return -EDOM;
}

START_TEST(asyncio_taskgroup_25) {
        memset(&hydra, 0, sizeof(hydra));
        pol_reset(&(evt_group_opts) { .flags = EVT_GROUP_FAIL_FAST });
        ck_assert_int_eq(evt_group_spawn(pol.g, hydra_fn, NULL, NULL, NULL), 0);
        ck_assert_int_eq(evt_group_spawn(pol.g, hercules_fn, NULL, NULL, NULL), 0);
        evt_task_unref(test_spawn(st.loop, pol_waiter_fn, NULL, "waiter", 0));
        test_loop_run(st.loop);
        ck_assert_int_eq(pol.r_wait, -EDOM);
        ck_assert_int_ge(hydra.heads, 10);
        ck_assert_uint_eq(evt_group_size(pol.g), 0);
        pol_finish();
}
END_TEST

/* Members end in the order 2, 0, 1 (each released once the one before was
 * taken), then 4 and 3 both before the next take: evt_group_next hands them
 * out in that order, then -ENOENT. */
static int next_fn(void *arg) {
        static const int ends[] = { 2, 0, 1 };
        int k = 0;

        (void) arg;
        for (; k < 3; k++) {
                evt_event_set(pol.go[ends[k]]);
                pol.r_next[k] = evt_group_next(pol.g, EVT_FOREVER, &pol.order[k]);
        }
        evt_event_set(pol.go[4]);
        if (evt_task_join(pol.t[4], EVT_FOREVER, NULL) < 0)
                return -1;
        evt_event_set(pol.go[3]);
        if (evt_task_join(pol.t[3], EVT_FOREVER, NULL) < 0)
                return -1;
        for (; k < 6; k++)
                pol.r_next[k] = evt_group_next(pol.g, EVT_FOREVER, &pol.order[k]);
        return 0;
}

START_TEST(group_next_in_completion_order) {
        static const int want[] = { 2, 0, 1, 4, 3 };

        pol_reset(&(evt_group_opts) { .flags = EVT_GROUP_KEEP_DONE });
        for (int i = 0; i < 5; i++) {
                pol.value[i] = 10 + i;
                pol_spawn(i);
        }
        evt_task_unref(test_spawn(st.loop, next_fn, NULL, "next", 0));
        test_loop_run(st.loop);
        for (int k = 0; k < 5; k++) {
                int res;

                ck_assert_int_eq(pol.r_next[k], 0);
                ck_assert_ptr_eq(pol.order[k], pol.t[want[k]]);
                ck_assert_int_eq(evt_task_result(pol.order[k], &res), 0);
                ck_assert_int_eq(res, 10 + want[k]);
        }
        ck_assert_int_eq(pol.r_next[5], -ENOENT);
        pol_finish();
}
END_TEST

/* A group bound to 2 members: a task that spawns 6 waits for room each
 * time; never more than 2 run; code outside a task gets -EAGAIN. */
static int bounded_spawner_fn(void *arg) {
        (void) arg;
        for (int i = 0; i < N_POL; i++) {
                if (evt_group_spawn(pol.g, pol_member_fn, (void *) (intptr_t) i, NULL, &pol.t[i]) < 0)
                        return -1;
                /* Let the newest run, then end the oldest still running. */
                if (!POLL_UNTIL(pol.started[i]))
                        return -1;
                if (i >= 1)
                        evt_event_set(pol.go[i - 1]);
        }
        return evt_event_set(pol.go[N_POL - 1]);
}

START_TEST(group_bounded_spawn_waits) {
        pol_reset(&(evt_group_opts) { .max_running = 2 });
        ck_assert_int_eq(evt_group_spawn(pol.g, pol_member_fn, (void *) 0, NULL, &pol.t[0]), 0);
        ck_assert_int_eq(evt_group_spawn(pol.g, pol_member_fn, (void *) 1, NULL, &pol.t[1]), 0);
        ck_assert_int_eq(evt_group_spawn(pol.g, pol_member_fn, (void *) 2, NULL, NULL), -EAGAIN);
        ck_assert_uint_eq(evt_group_size(pol.g), 2);
        evt_group_cancel(pol.g, 0);
        test_loop_run(st.loop);
        evt_task_unref(pol.t[0]);
        evt_task_unref(pol.t[1]);
        pol.t[0] = pol.t[1] = NULL;
        evt_group_free(pol.g);

        memset(pol.started, 0, sizeof(pol.started));
        ck_assert_int_eq(evt_group_new_opts(st.loop, &(evt_group_opts) { .max_running = 2 }, &pol.g), 0);
        evt_task_unref(test_spawn(st.loop, bounded_spawner_fn, NULL, "spawner", 0));
        test_loop_run(st.loop);
        ck_assert_int_eq(pol.most_running, 2);
        for (int i = 0; i < N_POL; i++)
                ck_assert(pol.finished[i]);
        pol_finish();
}
END_TEST

/* Ported from asyncio's test_taskgroups.py, test_taskgroup_24: a member
 * spawns more members; the wait covers them too. */
static int root_fn(void *arg) {
        (void) arg;
        pol_spawn(1);
        pol_spawn(2);
        evt_event_set(pol.go[1]);
        return evt_event_set(pol.go[2]);
}

START_TEST(group_members_spawn_members) {
        pol_reset(NULL);
        ck_assert_int_eq(evt_group_spawn(pol.g, root_fn, NULL, NULL, &pol.t[0]), 0);
        evt_task_unref(test_spawn(st.loop, pol_waiter_fn, NULL, "waiter", 0));
        test_loop_run(st.loop);
        ck_assert_int_eq(pol.r_wait, 0);
        ck_assert(pol.finished[1] && pol.finished[2]);
        pol_finish();
}
END_TEST

/* Freeing a group lets go of kept members and wakes a task waiting for
 * room or for the next member with -EIDRM. */
static int free_policies_fn(void *arg) {
        evt_task *got = NULL;

        (void) arg;
        pol.r_next[0] = evt_group_next(pol.g, EVT_FOREVER, &got);
        return 0;
}

static int free_room_fn(void *arg) {
        (void) arg;
        pol.r_next[1] = evt_group_spawn(pol.g, pol_member_fn, (void *) 3, NULL, NULL);
        return 0;
}

static int group_freer2_fn(void *arg) {
        evt_task **waiters = arg;

        if (!POLL_UNTIL(test_is_waiting(waiters[0]) && test_is_waiting(waiters[1])))
                return -1;
        evt_group_free(pol.g);
        pol.g = NULL;
        evt_event_set(pol.go[0]);
        return evt_event_set(pol.go[1]);
}

START_TEST(group_free_with_policies) {
        evt_task *waiters[2];

        pol_reset(&(evt_group_opts) { .flags = EVT_GROUP_KEEP_DONE, .max_running = 2 });
        pol_spawn(0);
        pol_spawn(1);
        waiters[0] = test_spawn(st.loop, free_policies_fn, NULL, "next", 0);
        waiters[1] = test_spawn(st.loop, free_room_fn, NULL, "room", 0);
        evt_task_unref(test_spawn(st.loop, group_freer2_fn, waiters, "freer", 0));
        test_loop_run(st.loop);
        ck_assert_int_eq(pol.r_next[0], -EIDRM);
        ck_assert_int_eq(pol.r_next[1], -EIDRM);
        ck_assert(pol.finished[0] && pol.finished[1]);
        evt_task_unref(waiters[0]);
        evt_task_unref(waiters[1]);

        /* A member kept and never taken goes with the group. */
        ck_assert_int_eq(evt_group_new_opts(st.loop, &(evt_group_opts) { .flags = EVT_GROUP_KEEP_DONE }, &pol.g),
                         0);
        ck_assert_int_eq(evt_group_spawn(pol.g, dummy_fn, NULL, NULL, NULL), 0);
        test_loop_run(st.loop);
        pol_finish();
}
END_TEST

START_TEST(group_args) {
        evt_loop *loop = test_loop_new();
        evt_group *g = (evt_group *) &g;
        evt_task *t = (evt_task *) &t;

        ck_assert_int_eq(evt_group_new(NULL, &g), -EINVAL);
        ck_assert_ptr_eq(g, (evt_group *) &g); /* untouched on failure */
        ck_assert_int_eq(evt_group_new(loop, NULL), -EINVAL);
        ck_assert_int_eq(evt_group_spawn(NULL, dummy_fn, NULL, NULL, &t), -EINVAL);
        ck_assert_ptr_eq(t, (evt_task *) &t);
        ck_assert_int_eq(evt_group_cancel(NULL, 0), -EINVAL);
        ck_assert_int_eq(evt_group_wait(NULL, EVT_FOREVER), -EINVAL);
        ck_assert_uint_eq(evt_group_size(NULL), 0);
        evt_group_free(NULL);

        ck_assert_int_eq(evt_group_new(loop, &g), 0);
        /* A failed spawn leaves no member behind. */
        ck_assert_int_eq(evt_group_spawn(g, NULL, NULL, NULL, &t), -EINVAL);
        ck_assert_int_eq(evt_group_spawn(g, dummy_fn, NULL, &(evt_task_opts) { .flags = 1u << 7 }, &t), -EINVAL);
        ck_assert_ptr_eq(t, (evt_task *) &t);
        ck_assert_uint_eq(evt_group_size(g), 0);
        ck_assert_int_eq(evt_group_cancel(g, 1u << 5), -EINVAL);
        /* Outside a task, with or without members. */
        ck_assert_int_eq(evt_group_wait(g, EVT_FOREVER), -EINVAL);
        ck_assert_int_eq(evt_group_spawn(g, dummy_fn, NULL, NULL, NULL), 0);
        ck_assert_int_eq(evt_group_wait(g, EVT_FOREVER), -EINVAL);
        ck_assert_uint_eq(evt_group_size(g), 1);
        test_loop_run(loop);
        ck_assert_uint_eq(evt_group_size(g), 0);
        evt_group_free(g);
        test_loop_free(loop);
}
END_TEST

static struct {
        evt_group *other;       /* of another loop */
        int r_null, r_other, r_other_empty;
} args;

static int args_fn(void *arg) {
        (void) arg;
        args.r_null = evt_group_wait(NULL, EVT_FOREVER);
        /* Empty, so the wait would not block; still another loop's. */
        args.r_other_empty = evt_group_wait(args.other, EVT_FOREVER);
        if (evt_group_spawn(args.other, dummy_fn, NULL, NULL, NULL) < 0)
                return -1;
        args.r_other = evt_group_wait(args.other, EVT_FOREVER);
        return 0;
}

START_TEST(group_wait_args_in_task) {
        struct ev_loop *ev2 = ev_loop_new(EVFLAG_AUTO);
        evt_loop *loop = test_loop_new(), *l2 = NULL;

        memset(&args, 0, sizeof(args));
        ck_assert_ptr_nonnull(ev2);
        ck_assert_int_eq(evt_loop_new(ev2, NULL, &l2), 0);
        ck_assert_int_eq(evt_group_new(l2, &args.other), 0);
        ck_assert_int_eq(evt_task_spawn(loop, args_fn, NULL, NULL, NULL), 0);
        test_loop_run(loop);
        ck_assert_int_eq(args.r_null, -EINVAL);
        ck_assert_int_eq(args.r_other_empty, -EINVAL);
        ck_assert_int_eq(args.r_other, -EINVAL);
        /* The member spawned from loop's task belongs to l2. */
        ck_assert_uint_eq(evt_group_size(args.other), 1);
        test_loop_run(l2);
        ck_assert_uint_eq(evt_group_size(args.other), 0);
        evt_group_free(args.other);
        test_loop_free(loop);
        test_loop_free(l2);
        ev_loop_destroy(ev2);
}
END_TEST

/* A member waiting for its own group would wait for its own end: -EDEADLK
 * at once, with or without a deadline, as evt_task_join of itself. Once
 * the group is gone the member is not in it any more. */
static int self_wait_fn(void *arg) {
        int *r = arg;

        r[0] = evt_group_wait(st.group, EVT_FOREVER);
        r[1] = evt_group_wait(st.group, evt_deadline_in(EVT_SEC(60)));
        return 0;
}

START_TEST(group_wait_own_group) {
        int r[2] = { 1, 1 };

        reset();
        st.loop = test_loop_new();
        ck_assert_int_eq(evt_group_new(st.loop, &st.group), 0);
        ck_assert_int_eq(evt_group_spawn(st.group, self_wait_fn, r, NULL, NULL), 0);
        test_loop_run(st.loop);
        ck_assert_int_eq(r[0], -EDEADLK);
        ck_assert_int_eq(r[1], -EDEADLK);
        evt_group_free(st.group);
        test_loop_free(st.loop);
}
END_TEST

Suite *evt_test_suite(void) {
        Suite *s = suite_create("group");
        TCase *tc;

        tc = tcase_create("wait");
        tcase_add_test(tc, group_wait_all);
        tcase_add_test(tc, group_size_follows_members);
        tcase_add_test(tc, group_wait_empty);
        tcase_add_test(tc, group_reused_after_empty);
        tcase_add_test(tc, group_wait_deadline);
        suite_add_tcase(s, tc);

        tc = tcase_create("cancel");
        tcase_add_test(tc, group_cancel_all);
        tcase_add_test(tc, group_cancel_join);
        tcase_add_test(tc, group_cancel_spares_shielded);
        tcase_add_test(tc, group_cancel_force_pierces_shield);
        suite_add_tcase(s, tc);

        tc = tcase_create("free");
        tcase_add_test(tc, group_free_members_run_on);
        tcase_add_test(tc, group_free_before_start);
        tcase_add_test(tc, group_member_frees_group);
        suite_add_tcase(s, tc);

        tc = tcase_create("wait_cancelled");
        tcase_add_test(tc, group_wait_cancelled);
        suite_add_tcase(s, tc);

        tc = tcase_create("policies");
        tcase_add_test(tc, group_fail_fast_cancels_siblings);
        tcase_add_test(tc, group_fail_fast_own_cancel_is_no_failure);
        tcase_add_test(tc, group_failure_without_policy);
        tcase_add_test(tc, group_precancelled_task);
        tcase_add_test(tc, group_next_in_completion_order);
        tcase_add_test(tc, group_bounded_spawn_waits);
        tcase_add_test(tc, group_members_spawn_members);
        tcase_add_test(tc, group_free_with_policies);
        suite_add_tcase(s, tc);

        tc = tcase_create("ported");
        tcase_add_test(tc, trio_task_crash_propagation);
        tcase_add_test(tc, trio_two_child_crashes);
        tcase_add_test(tc, trio_cancel_reason_nursery);
        tcase_add_test(tc, asyncio_taskgroup_25);
        suite_add_tcase(s, tc);

        tc = tcase_create("args");
        tcase_add_test(tc, group_args);
        tcase_add_test(tc, group_wait_args_in_task);
        tcase_add_test(tc, group_wait_own_group);
        suite_add_tcase(s, tc);
        return s;
}
