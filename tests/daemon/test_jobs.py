#!/usr/bin/env python3
"""How operators shape jobs (issue 23), through the real daemon: the
restart policy's back-off, its reset and the start limit.

Run by meson (`meson test --suite jobs`), one class per meson test, with
EVTASKD and EVTASKCTL set to the built programs. Every figure is measured
from the records' own monotonic times (mono_us), and every check waits for
a record, never for a span of time.
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_evtaskd as T  # noqa: E402  (the Daemon helper and its conventions)
import test_control as C  # noqa: E402  (evtaskctl against a daemon)

exec_task = T.exec_task
HEAD = "[daemon]\nexit_when_done = yes\n\n"
# What a wait may overrun by on a busy, shared machine, in ms.
SLACK_MS = 250


class Restart(C.ControlTest):
    def gaps(self, d, task, n):
        """The first n waits of task between a run's end (its failed record)
        and the next run's start (its run record), in ms, with the delays
        its restarting records announced."""
        d.wait_for(lambda r: r["event"] == "run" and r["task"] == task and r["run"] == n + 1,
                   what=f"run {n + 1} of {task}", timeout=30)
        ends = {r["run"]: r["mono_us"] for r in d.of("failed", task) if "run" in r}
        starts = {r["run"]: r["mono_us"] for r in d.of("run", task)}
        announced = [r["delay_ms"] for r in d.of("restarting", task)][:n]
        measured = [(starts[k + 1] - ends[k]) / 1000 for k in range(1, n + 1)]
        return announced, measured

    def check_waits(self, announced, measured, want):
        self.assertEqual(announced, want)
        for got, delay in zip(measured, want):
            self.assertGreaterEqual(got, delay - 1)  # a record's microseconds round down
            self.assertLess(got, delay + SLACK_MS)

    def test_failures_back_off_exponentially_up_to_the_maximum(self):
        d = self.start(exec_task("flaky", "false", restart="on-failure", restart_delay="100ms",
                                 restart_max_delay="400ms"))
        announced, measured = self.gaps(d, "flaky", 5)
        self.check_waits(announced, measured, [100, 200, 400, 400, 400])
        self.assertEqual([r["failures"] for r in d.of("restarting", "flaky")][:5], [1, 2, 3, 4, 5])
        # Status counts the runs after the first: between the records seen
        # before the question and those seen after it.
        before = len(d.of("run", "flaky")) - 1
        restarts = self.tasks()["flaky"]["restarts"]
        self.assertLessEqual(before, restarts)
        self.assertLessEqual(restarts, len(d.of("run", "flaky")) - 1)

    def test_restart_sec_is_restart_delay(self):
        d = self.start(exec_task("old", "false", restart="always", restart_sec="150ms",
                                 restart_max_delay="150ms"))
        announced, measured = self.gaps(d, "old", 2)
        self.check_waits(announced, measured, [150, 150])

    def test_a_long_run_resets_the_back_off(self):
        # Both fail after 300 ms; only the first counts that as long.
        slow_fail = "sh -c 'sleep 0.3; exit 1'"
        d = self.start(exec_task("reset", slow_fail, restart="on-failure", restart_delay="100ms",
                                 restart_max_delay="1s", restart_reset_after="250ms") +
                       exec_task("kept", slow_fail, restart="on-failure", restart_delay="100ms",
                                 restart_max_delay="1s"))
        announced, measured = self.gaps(d, "reset", 3)
        self.check_waits(announced, measured, [100, 100, 100])
        announced, measured = self.gaps(d, "kept", 3)
        self.check_waits(announced, measured, [100, 200, 400])

    def test_the_start_limit_leaves_the_task_down_until_started(self):
        d = self.start(exec_task("crash", "false", restart="always", restart_delay="50ms",
                                 start_limit="3 / 1min"))
        gave_up = d.wait_for(lambda r: r["event"] == "failed" and r["task"] == "crash" and
                             "start limit" in r["msg"], what="the start limit's record")
        self.assertIn("more than 3 starts", gave_up["msg"])
        self.assertEqual(gave_up["start_limit"], 3)
        # Three runs and their ends, then the record, and no fourth run.
        self.assertEqual([r["run"] for r in d.of("run", "crash")], [1, 2, 3])
        self.assertEqual(len(d.of("restarting", "crash")), 2)
        crash = self.tasks()["crash"]
        self.assertEqual(crash["state"], "failed")
        self.assertEqual(crash["restarts"], 2)  # runs 2 and 3
        self.assertEqual([r["run"] for r in d.of("run", "crash")], [1, 2, 3])
        # evtaskctl start brings it back, with a start limit of its own.
        code, out, err = self.ctl("start", "crash")
        self.assertEqual(code, 0, err)
        again = d.wait_for(lambda r: r["event"] == "failed" and r["task"] == "crash" and
                           "start limit" in r["msg"] and r["mono_us"] > gave_up["mono_us"],
                           what="the second start limit's record")
        runs = [r for r in d.of("run", "crash") if r["mono_us"] > gave_up["mono_us"]]
        self.assertEqual([r["run"] for r in runs], [1, 2, 3])
        self.assertLess(runs[0]["mono_us"], again["mono_us"])


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0]] + sys.argv[1:], verbosity=2)
