/* Shared helpers of the Check suites. */
#pragma once

#include <check.h>
#include <ev.h>
#include <stdint.h>

#include "evtask.h"

/* Each suite file defines this; check_main.c runs it. */
Suite *evt_test_suite(void);

/* A loop on libev's default loop, for one test. */
evt_loop *test_loop_new(void);

/* Runs the loop until every task has ended and checks that nothing is left
 * behind: no task, no active watcher, no stack in use, no blocking call. */
void test_loop_run(evt_loop *loop);
/* The same check, then frees the loop. */
void test_loop_free(evt_loop *loop);

/* A second loop, on a libev loop of its own: for the checks that an object
 * of another loop is refused. test_other_loop_free frees both. */
evt_loop *test_other_loop_new(void);
void test_other_loop_free(evt_loop *loop);

/* Context switches into tasks so far (evt_loop_stats.switches). */
uint64_t test_switches(evt_loop *loop);

/* Is the task waiting (evt_task_state_name)? */
bool test_is_waiting(const evt_task *t);

/* Milliseconds since an evt_time_now() value. */
int64_t test_ms_since(int64_t start);

/* Spawn with a name, asserting success; returns the caller's reference. */
evt_task *test_spawn(evt_loop *loop, evt_task_fn fn, void *arg, const char *name, unsigned flags);

/* Does starting a thread fail here (a limit on processes, on memory)? */
bool test_thread_create_fails(void);

/* The longest a test waits for something to happen. */
#define POLL_LIMIT EVT_SEC(10)

/* From a task: evaluates `cond` every millisecond, the loop running in
 * between, until it holds or POLL_LIMIT has passed; its last value. */
#define POLL_UNTIL(cond) ({                                                     \
        int64_t poll_end_ = evt_deadline_in(POLL_LIMIT).at;                      \
        bool poll_ok_;                                                          \
        while (!(poll_ok_ = (cond)) && evt_time_now() < poll_end_ &&            \
               evt_sleep(EVT_MSEC(1)) == 0)                                     \
                ;                                                               \
        poll_ok_;                                                               \
})
