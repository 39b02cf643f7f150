#!/usr/bin/env python3
"""End-to-end tests of evtaskd: the real binary, real signals, its JSON log.

Run by meson (`meson test --suite daemon`) with EVTASKD and SPIN set to the
built programs. Times in the daemon's records (mono_us) are CLOCK_MONOTONIC,
the clock of time.monotonic_ns() here, so a record can be set against the
moment a signal was sent.
"""
import errno
import json
import os
import random
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import childenv  # noqa: E402  (the signal state of every child)

EVTASKD = os.environ.get("EVTASKD", "build/src/daemon/evtaskd")
SPIN = os.environ.get("SPIN", "build/tests/spin")
SIGNALFD = os.environ.get("EVTASK_SIGNALFD", "1") == "1"
MANPAGE = os.environ.get("EVTASKD_MAN", "man/evtaskd.8")


def now_us():
    return time.monotonic_ns() // 1000


def sleepers(n_shielded, n_plain, duration, extra=""):
    text = "[daemon]\nexit_when_done = yes\n" + extra + "\n"
    for i in range(n_shielded):
        text += f"[task.shielded-{i}]\nkind = sleep\nduration = {duration}\nshield = yes\n\n"
    for i in range(n_plain):
        text += f"[task.worker-{i}]\nkind = sleep\nduration = {duration}\n\n"
    return text


class Daemon:
    """evtaskd on a config text, with its JSON records collected as they come."""

    def __init__(self, config_text, args=(), program=None, env=None, pass_fds=(), preexec=None, stdin=None):
        self.conf = tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False)
        self.conf.write(config_text)
        self.conf.close()
        cmd = [program] if program else [EVTASKD, "--config", self.conf.name, "--log", "json", *args]
        self.proc = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                     pass_fds=pass_fds, preexec_fn=lambda: (childenv.default_signals(),
                                                                            preexec and preexec()))
        self.records = []
        self.bad_lines = []
        self.bytes = 0
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                rec = json.loads(line)
            except ValueError:
                rec = None
            with self.cond:
                self.bytes += len(line)
                if rec is None:
                    self.bad_lines.append(line)
                else:
                    self.records.append(rec)
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_for(self, pred, timeout=10.0, what="a record"):
        """The first record (in log order) that pred accepts."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for rec in self.records:
                    if pred(rec):
                        return rec
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self.reader.is_alive()):
                    raise AssertionError(f"no {what} within {timeout}s; records: {self.records[-20:]}")
                self.cond.wait(min(left, 0.05))

    def event(self, name, task=None, timeout=10.0):
        return self.wait_for(
            lambda r: r["event"] == name and (task is None or r["task"] == task),
            timeout, f"'{name}' record" + (f" of {task}" if task else ""))

    def started(self, timeout=10.0):
        """The start-up summary: the 'started' record with the daemon's pid
        (start-up warnings, such as no child subreaper under qemu-user,
        share its event)."""
        return self.wait_for(lambda r: r["event"] == "started" and "pid" in r, timeout, "the start-up summary")

    def call_running(self, task, timeout=10.0):
        """Once task's blocking call runs on a pool thread: asks for the
        task table (SIGUSR1) until a row of it says so. (Not before the
        start-up summary: until then SIGUSR1 would kill the daemon.)"""
        deadline = time.monotonic() + timeout
        self.started(timeout)
        while True:
            self.kill(signal.SIGUSR1)
            try:
                return self.wait_for(lambda r: r["event"] == "task-table" and r["task"] == task
                                     and r.get("blocking_call") == 1 and r["state"] == "running",
                                     min(0.5, max(0.0, deadline - time.monotonic())),
                                     f"a running blocking call of {task}")
            except AssertionError:
                if time.monotonic() > deadline:
                    raise

    def kill(self, sig):
        sent = now_us()
        self.proc.send_signal(sig)
        return sent

    def finish(self, timeout=30.0):
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"evtaskd did not exit within {timeout}s; records: {self.records[-20:]}")
        self.reader.join(5)
        self.stderr = self.proc.stderr.read().decode(errors="replace")
        self.proc.stdout.close()
        self.proc.stderr.close()
        self.remove_config()
        return code

    def remove_config(self):
        os.unlink(self.conf.name)

    def of(self, event, task=None):
        return [r for r in self.records if r["event"] == event and (task is None or r["task"] == task)]


class DaemonTest(unittest.TestCase):
    def run_daemon(self, *a, **kw):
        d = Daemon(*a, **kw)
        self.addCleanup(lambda: d.proc.poll() is None and (d.proc.kill(), d.proc.wait()))
        self.addCleanup(lambda: os.path.exists(d.conf.name) and os.unlink(d.conf.name))
        return d

    def assert_clean_log(self, d):
        self.assertEqual(d.bad_lines, [], "every stdout line is one JSON record")
        for rec in d.records:
            for key in ("ts", "level", "event", "task", "msg"):
                self.assertIn(key, rec)


class Pause(DaemonTest):
    RACE = """[daemon]
exit_when_done = yes
[task.rabbit]
kind = ticker
speed = 3
steps = 10
[task.turtle]
kind = ticker
speed = 1
steps = 10
"""

    def check_no_step_while_paused(self, d):
        records = d.records
        paused = [i for i, r in enumerate(records) if r["event"] == "paused"]
        resumed = [i for i, r in enumerate(records) if r["event"] == "resumed"]
        self.assertTrue(paused and resumed)
        for p, q in zip(paused, resumed):
            between = [r for r in records[p:q] if r["event"] == "step"]
            self.assertEqual(between, [], "a step between 'paused' and 'resumed'")

    def test_race_pauses_without_a_step(self):
        d = self.run_daemon(self.RACE)
        d.wait_for(lambda r: r["event"] == "step" and r["task"] == "turtle", what="a turtle step")
        d.kill(signal.SIGINT)
        paused = d.event("paused")
        time.sleep(1.5)  # the turtle would take a step, the rabbit four
        d.kill(signal.SIGINT)
        d.event("resumed")
        self.assertEqual(d.finish(), 0)
        self.assert_clean_log(d)
        self.check_no_step_while_paused(d)
        sig = d.of("signal")[0]
        self.assertEqual(sig["signal"], "SIGINT")
        self.assertEqual(sig["sender_pid"], os.getpid())
        self.assertGreater(paused["mono_us"], 0)
        for name in ("rabbit", "turtle"):
            steps = [r["distance"] for r in d.of("step", name)]
            self.assertEqual(steps, list(range(1, 11)), name)
            self.assertEqual(len(d.of("finished", name)), 1)

    def test_thousand_tickers_pause(self):
        text = "[daemon]\nexit_when_done = yes\n"
        for i in range(1000):
            text += f"[task.t{i}]\nkind = ticker\nspeed = 20\nsteps = 20\n"
        d = self.run_daemon(text)
        d.wait_for(lambda r: r["event"] == "step" and r["distance"] >= 3, what="a third step")
        d.kill(signal.SIGINT)
        d.event("paused")
        time.sleep(0.5)
        d.kill(signal.SIGINT)
        d.event("resumed")
        self.assertEqual(d.finish(60), 0)
        self.assert_clean_log(d)
        self.check_no_step_while_paused(d)
        self.assertEqual(len(d.of("step")), 20 * 1000)
        self.assertEqual(len(d.of("finished")), 1000)


class Shutdown(DaemonTest):
    def test_a_notify_socket_nobody_reads_stops_nothing(self):
        """A full notify queue drops messages; it never blocks the loop."""
        tmp = tempfile.TemporaryDirectory(prefix="evtaskd-notify-")
        self.addCleanup(tmp.cleanup)
        path = os.path.join(tmp.name, "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        sock.bind(path)
        d = self.run_daemon(sleepers(2, 2, "30s", "drain_timeout = 1s\n"),
                            env=dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="20000"))
        d.event("spawned", "worker-1")
        time.sleep(0.5)  # 50 watchdog pings, and more: the queue is full
        for _ in range(5):
            d.kill(signal.SIGUSR1)  # the status table, more messages
        d.kill(signal.SIGTERM)
        d.event("stopping", timeout=5)
        self.assertEqual(d.finish(timeout=10), 3, "the drain ends at drain_timeout, forced")
        sock.setblocking(False)
        queued = []
        try:
            while True:
                queued.append(sock.recv(4096).decode())
        except BlockingIOError:
            pass
        self.assertIn("READY=1", queued, "the messages before the queue filled up")

    def test_term_cancels_unshielded_and_drains_shielded(self):
        d = self.run_daemon(sleepers(3, 3, "2s"))
        spawned = [d.event("spawned", f"worker-{i}") for i in range(3)]
        time.sleep(0.3)
        sent = d.kill(signal.SIGTERM)
        d.event("drained")
        self.assertEqual(d.finish(), 0)
        self.assert_clean_log(d)
        cancelled = d.of("cancelled")
        self.assertEqual(sorted(r["task"] for r in cancelled), [f"worker-{i}" for i in range(3)])
        for r in cancelled:
            self.assertLess(r["mono_us"] - sent, 100_000, f"{r['task']} cancelled late")
        finished = d.of("finished")
        self.assertEqual(sorted(r["task"] for r in finished), [f"shielded-{i}" for i in range(3)])
        for r in finished:
            self.assertGreaterEqual(r["duration_ms"], 2000)
        self.assertEqual(d.of("stopping")[0]["tasks"], 6)
        self.assertEqual(d.of("signal")[0]["sender_pid"], os.getpid())
        self.assertEqual(d.of("exit")[-1]["exit_code"], 0)
        self.assertEqual(len(spawned), 3)

    def test_term_while_paused(self):
        d = self.run_daemon(sleepers(2, 2, "1s"))
        d.event("spawned", "worker-1")
        d.kill(signal.SIGINT)
        d.event("paused")
        time.sleep(1.3)  # every sleep is due now, and held
        self.assertEqual(d.of("finished"), [])
        d.kill(signal.SIGTERM)
        d.event("drained")
        d.kill(signal.SIGINT)  # during a shutdown: logged, ignored
        self.assertEqual(d.finish(), 0)
        self.assert_clean_log(d)
        self.assertEqual(sorted(r["task"] for r in d.of("cancelled")), ["worker-0", "worker-1"])
        self.assertEqual(sorted(r["task"] for r in d.of("finished")), ["shielded-0", "shielded-1"])

    def test_sigint_during_shutdown_is_ignored(self):
        d = self.run_daemon(sleepers(1, 0, "1s"))
        d.event("spawned", "shielded-0")
        d.kill(signal.SIGTERM)
        d.event("draining")
        d.kill(signal.SIGINT)
        ignored = d.wait_for(lambda r: r["event"] == "signal" and r["signal"] == "SIGINT",
                             what="the SIGINT record")
        self.assertEqual(ignored["action"], "ignored during shutdown")
        self.assertEqual(d.finish(), 0)
        self.assertEqual(d.of("paused"), [])
        self.assertEqual(len(d.of("finished", "shielded-0")), 1)

    def test_drain_timeout_forces(self):
        d = self.run_daemon(sleepers(1, 1, "30s", "drain_timeout = 500ms"))
        d.event("spawned", "worker-0")
        sent = d.kill(signal.SIGTERM)
        forced = d.event("forced", "shielded-0")
        self.assertEqual(d.finish(), 3)
        self.assert_clean_log(d)
        late = forced["mono_us"] - sent
        self.assertGreaterEqual(late, 500_000)
        self.assertLess(late, 5_000_000)
        self.assertEqual(d.of("exit")[-1]["exit_code"], 3)
        self.assertEqual(len(d.of("cancelled", "shielded-0")), 1)

    def test_second_term_forces_at_once(self):
        d = self.run_daemon(sleepers(2, 0, "30s", "drain_timeout = 60s"))
        d.event("spawned", "shielded-1")
        d.kill(signal.SIGTERM)
        d.event("draining")
        sent = d.kill(signal.SIGTERM)
        forced = d.event("forced")
        self.assertLess(forced["mono_us"] - sent, 1_000_000)
        self.assertEqual(d.finish(), 3)
        self.assertEqual(sorted(r["task"] for r in d.of("forced")), ["shielded-0", "shielded-1"])

    def test_third_signal_exits_from_the_handler(self):
        d = self.run_daemon("", program=SPIN)
        deadline = time.monotonic() + 10
        while not d.bad_lines and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertEqual(d.bad_lines, [b"spinning\n"])
        time.sleep(0.2)  # the task spins: the loop never polls again
        for _ in range(3):
            d.kill(signal.SIGTERM)
            self.assertTrue(childenv.wait_delivered(d.proc.pid, signal.SIGTERM), "a SIGTERM never delivered")
        self.assertEqual(d.finish(10), 128 + signal.SIGTERM)
        self.assertIn("third shutdown signal", json.dumps(d.records))


class Timing(DaemonTest):
    def test_two_sleeps_end_together(self):
        text = "[daemon]\nexit_when_done = yes\n[task.a]\nkind = sleep\nduration = 1s\n" \
               "[task.b]\nkind = sleep\nduration = 1s\n"
        start = time.monotonic()
        d = self.run_daemon(text)
        self.assertEqual(d.finish(), 0)
        elapsed = time.monotonic() - start
        self.assertEqual(len(d.of("finished")), 2)
        self.assertLess(elapsed, 1.9, "two 1 s sleeps took the sum of their times")
        self.assertGreaterEqual(elapsed, 1.0)


class Signals(DaemonTest):
    def test_usr1_writes_the_task_table(self):
        d = self.run_daemon(sleepers(1, 1, "5s"))
        d.event("spawned", "worker-0")
        d.kill(signal.SIGUSR1)
        rows = [d.wait_for(lambda r, n=n: r["event"] == "task-table" and r["task"] == n,
                           what=f"task table row of {n}") for n in ("shielded-0", "worker-0")]
        self.assertEqual(rows[0]["shielded"], 1)
        self.assertEqual(rows[1]["shielded"], 0)
        self.assertEqual(rows[0]["pausable"], 1)
        # Parked in its sleep, or (the signal came first) not yet at its
        # first step, which the table shows as running.
        self.assertIn(rows[1]["state"], ("waiting", "running"))
        sig = d.wait_for(lambda r: r["event"] == "signal" and r["signal"] == "SIGUSR1")
        self.assertEqual(sig["sender_pid"], os.getpid() if SIGNALFD else 0)
        d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(), 0)

    def test_description_is_shown_with_the_task(self):
        d = self.run_daemon("[task.nap]\nkind = sleep\nduration = 5s\n"
                            "description = a nap, \"quoted\"\n    over two lines\n\n"
                            "[task.plain]\nkind = sleep\nduration = 5s\n")
        spawned = d.event("spawned", "nap")
        self.assertEqual(spawned["description"], 'a nap, "quoted" over two lines')
        self.assertNotIn("description", d.event("spawned", "plain"))
        d.kill(signal.SIGUSR1)
        row = d.wait_for(lambda r: r["event"] == "task-table" and r["task"] == "nap", what="the row of nap")
        self.assertEqual(row["description"], 'a nap, "quoted" over two lines')
        self.assertEqual(row["kind"], "sleep")
        d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(), 0)


def blocking(name, duration, check_every, shield=False):
    text = f"[task.{name}]\nkind = blocking\nduration = {duration}\ncheck_every = {check_every}\n"
    return text + ("shield = yes\n\n" if shield else "\n")


class Blocking(DaemonTest):
    HEAD = "[daemon]\nexit_when_done = yes\nthreads = 4\n"

    def steps(self, d, task):
        return [r["checks"] for r in d.of("step", task)]

    def test_term_cancels_a_cooperative_call(self):
        d = self.run_daemon(self.HEAD + "drain_timeout = 10s\n"
                            + blocking("long", "60s", "100ms") + blocking("quick", "200ms", "50ms"))
        finished = d.event("finished", "quick")
        d.wait_for(lambda r: r["event"] == "step" and r["task"] == "long" and r["checks"] >= 3,
                   what="a third step of long")
        sent = d.kill(signal.SIGTERM)
        cancelled = d.event("cancelled", "long")
        self.assertEqual(d.finish(), 0)
        self.assertLess(now_us() - sent, 3_000_000, "a cooperative call held up the exit")
        self.assert_clean_log(d)
        self.assertEqual(d.of("abandoned"), [])
        self.assertEqual(d.of("forcing"), [])
        self.assertEqual(d.of("exit")[-1]["exit_code"], 0)
        self.assertGreaterEqual(finished["duration_ms"], 200)
        quick = self.steps(d, "quick")
        self.assertEqual(quick, list(range(1, len(quick) + 1)))
        self.assertGreaterEqual(d.of("step", "quick")[-1]["worked_ms"], 200)
        self.assertEqual(d.of("stopping")[0]["blocking_calls"], 1)
        self.assertGreaterEqual(cancelled["mono_us"], sent)
        # The call stops at its next checkpoint: at most the step that was
        # already past its checkpoint lands after the cancel.
        checks = self.steps(d, "long")
        self.assertEqual(checks, list(range(1, len(checks) + 1)))
        late = [r for r in d.of("step", "long") if r["mono_us"] > cancelled["mono_us"]]
        self.assertLessEqual(len(late), 1, late)
        for r in late:
            self.assertLess(r["mono_us"] - cancelled["mono_us"], 100_000 + 1_000_000)
        self.assertLess(d.of("drained")[0]["mono_us"] - sent, 3_000_000)

    def test_term_abandons_an_uncooperative_call(self):
        d = self.run_daemon(self.HEAD + "drain_timeout = 1s\nabandon_grace = 500ms\n"
                            + blocking("stubborn", "60s", "0"))
        d.call_running("stubborn")
        sent = d.kill(signal.SIGTERM)
        abandoned = d.event("abandoned", "stubborn", timeout=10)
        self.assertEqual(d.finish(), 4)
        exited = now_us()
        self.assert_clean_log(d)
        self.assertIn(abandoned["stop_requested"], (1, True))
        self.assertGreaterEqual(abandoned["ran_ms"], 1500)
        self.assertEqual(len(d.of("abandoned")), 1)
        self.assertEqual(d.of("step"), [])
        self.assertEqual(d.of("forcing")[0]["blocking_calls"], 1)
        exit_rec = d.of("exit")[-1]
        self.assertEqual(exit_rec["exit_code"], 4)
        self.assertGreaterEqual(exit_rec["mono_us"] - sent, 1_500_000 - 50_000)
        self.assertLess(exited - sent, 1_500_000 + 3_000_000)
        self.assertGreaterEqual(abandoned["mono_us"] - d.of("forcing")[0]["mono_us"], 500_000 - 50_000)

    def test_pause_holds_the_call_at_its_checkpoint(self):
        d = self.run_daemon(self.HEAD + blocking("worker", "60s", "100ms"))
        d.wait_for(lambda r: r["event"] == "step" and r["checks"] >= 2, what="a second step")
        d.kill(signal.SIGINT)
        paused = d.event("paused")
        time.sleep(0.1 + 0.2)  # the slice in progress reaches its checkpoint
        held = len(d.of("step"))
        time.sleep(0.6)
        self.assertEqual(len(d.of("step")), held, "a step while paused")
        after_pause = [r for r in d.of("step") if r["mono_us"] > paused["mono_us"]]
        self.assertLessEqual(len(after_pause), 1, after_pause)
        last = d.of("step")[-1]["checks"]
        d.kill(signal.SIGINT)
        d.event("resumed")
        resumed = d.wait_for(lambda r: r["event"] == "step" and r["checks"] == last + 1,
                             what="the step held by the pause")
        d.wait_for(lambda r: r["event"] == "step" and r["checks"] >= last + 3, what="steps after the pause")
        d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(), 0)
        self.assert_clean_log(d)
        checks = self.steps(d, "worker")
        self.assertEqual(checks, list(range(1, len(checks) + 1)))
        # Waiting at a checkpoint is not work: the pause (>= 0.9 s) is not
        # counted in worked_ms.
        self.assertGreaterEqual(resumed["worked_ms"], 100 * resumed["checks"])
        self.assertLess(resumed["worked_ms"], 100 * resumed["checks"] + 500)
        self.assertEqual(len(d.of("cancelled", "worker")), 1)
        self.assertEqual(d.of("abandoned"), [])

    def test_term_drains_a_shielded_call(self):
        d = self.run_daemon(self.HEAD + "drain_timeout = 10s\n"
                            + blocking("keeper", "1s", "100ms", shield=True) + blocking("worker", "60s", "100ms"))
        d.wait_for(lambda r: r["event"] == "step" and r["task"] == "keeper", what="a step of keeper")
        sent = d.kill(signal.SIGTERM)
        d.event("cancelled", "worker")
        finished = d.event("finished", "keeper")
        self.assertEqual(d.finish(), 0)
        self.assert_clean_log(d)
        self.assertEqual(d.of("cancelled", "keeper"), [])
        self.assertEqual(d.of("abandoned"), [])
        self.assertEqual(d.of("forcing"), [])
        self.assertEqual(d.of("exit")[-1]["exit_code"], 0)
        self.assertGreaterEqual(finished["duration_ms"], 1000)
        self.assertGreater(finished["mono_us"], sent)
        checks = self.steps(d, "keeper")
        self.assertEqual(checks, list(range(1, len(checks) + 1)))
        self.assertLessEqual(len(checks), 10)
        self.assertGreaterEqual(d.of("step", "keeper")[-1]["worked_ms"], 1000)
        self.assertGreater(d.of("step", "keeper")[-1]["mono_us"], sent)
        self.assertEqual(d.of("stopping")[0]["blocking_calls"], 2)

    def test_usr1_lists_the_call(self):
        d = self.run_daemon(self.HEAD + blocking("worker", "60s", "100ms"))
        d.event("step", "worker")
        d.kill(signal.SIGUSR1)
        row = d.wait_for(lambda r: r["event"] == "task-table" and r.get("blocking_call") == 1,
                         what="the blocking call's row")
        header = [r for r in d.of("task-table") if r["task"] is None]
        calls = [r for r in d.of("task-table") if r.get("blocking_call") == 1]
        self.assertEqual(len(header), 1)
        self.assertEqual(header[0]["blocking_calls"], 1)
        self.assertEqual(len(calls), 1)
        self.assertEqual(row["task"], "worker")
        self.assertEqual(row["state"], "running")
        self.assertGreater(row["running_ms"], 0)
        self.assertGreaterEqual(row["age_ms"], row["running_ms"])
        self.assertEqual(row["stop_requested"], 0)
        self.assertEqual(row["awaited"], 1)
        d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(), 0)
        self.assert_clean_log(d)

    def test_bad_config(self):
        Config.check_bad(self, "[daemon]\nthreads = 2000\n", 2, "'threads'")
        Config.check_bad(self, "[daemon]\nabandon_grace = 0\n", 2, "'abandon_grace'")
        Config.check_bad(self, "[task.a]\nkind = sleep\nduration = 1s\ncheck_every = 1s\n", 4, "check_every",
                         "not valid for kind sleep")
        Config.check_bad(self, "[task.a]\nkind = blocking\ncheck_every = 1s\n", 1, None,
                         "missing key 'duration'")

    def test_help_names_exit_status_4(self):
        p = subprocess.run([EVTASKD, "--help"], capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 0)
        self.assertRegex(p.stdout, r"(?m)^  4  .*abandoned")


class Reload(DaemonTest):
    """SIGHUP re-reads the config file and applies what changed."""

    def rewrite(self, d, text):
        with open(d.conf.name, "w") as f:
            f.write(text)

    def reload_outcome(self, d):
        """The `reloaded` or `reload-failed` record of the one reload."""
        return d.wait_for(lambda r: r["event"] in ("reloaded", "reload-failed"), what="the reload's outcome")

    def test_reload_applies_changes(self):
        before = ("[task.a]\nkind = ticker\nspeed = 10\n"
                  "[task.b]\nkind = sleep\nduration = 30s\n"
                  "[task.c]\nkind = sleep\nduration = 30s\n")
        after = ("[task.a]\nkind = ticker\nspeed = 20\n"
                 "[task.b]\nkind = sleep\nduration = 30s\n"
                 "[task.d]\nkind = sleep\nduration = 30s\n")
        d = self.run_daemon(before)
        d.event("spawned", "c")
        d.wait_for(lambda r: r["event"] == "step" and r["task"] == "a", what="a step of a")
        self.rewrite(d, after)
        d.kill(signal.SIGHUP)
        done = self.reload_outcome(d)
        self.assertEqual(done["event"], "reloaded")
        self.assertEqual((done["added"], done["removed"], done["changed"], done["unchanged"]), (1, 1, 1, 1))
        self.assertEqual(len(d.of("removed", "c")), 1)
        self.assertEqual(len(d.of("changed", "a")), 1)
        self.assertEqual(len(d.of("added", "d")), 1)
        self.assertEqual(d.of("removed", "b") + d.of("changed", "b"), [])
        d.event("cancelled", "c")
        # The old a is cancelled; the new one starts over, at its new speed.
        d.wait_for(lambda r: r["event"] == "cancelled" and r["task"] == "a", what="the old a's end")
        restarted = d.wait_for(lambda r: r["event"] == "step" and r["task"] == "a"
                               and r["mono_us"] > done["mono_us"] and r["distance"] == 5,
                               what="the new a's fifth step")
        self.assertGreater(restarted["mono_us"], done["mono_us"])
        self.assertEqual(len(d.of("spawned", "d")), 1)
        self.assertEqual(len(d.of("spawned", "b")), 1, "an unchanged task is left alone")
        d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(), 0)
        self.assert_clean_log(d)
        self.assertEqual(sorted(r["task"] for r in d.of("cancelled")), ["a", "a", "b", "c", "d"])

    def test_a_new_description_applies_without_a_restart(self):
        before = "[task.a]\nkind = ticker\nspeed = 20\ndescription = first words\n"
        d = self.run_daemon(before)
        d.wait_for(lambda r: r["event"] == "step" and r["task"] == "a", what="a step of a")
        self.rewrite(d, before.replace("first words", "second words"))
        d.kill(signal.SIGHUP)
        done = self.reload_outcome(d)
        self.assertEqual((done["added"], done["removed"], done["changed"], done["unchanged"]), (0, 0, 0, 1))
        self.assertIn("without a restart", d.event("changed", "a")["msg"])
        d.kill(signal.SIGUSR1)
        row = d.wait_for(lambda r: r["event"] == "task-table" and r["task"] == "a", what="the row of a")
        self.assertEqual(row["description"], "second words")
        # The same task ran on: no second start, no end, and its steps go on
        # counting.
        d.wait_for(lambda r: r["event"] == "step" and r["task"] == "a" and r["mono_us"] > row["mono_us"],
                   what="a step after the reload")
        self.assertEqual(len(d.of("spawned", "a")), 1)
        self.assertEqual(d.of("cancelled", "a") + d.of("finished", "a"), [])
        distances = [r["distance"] for r in d.of("step", "a")]
        self.assertEqual(distances, list(range(1, len(distances) + 1)))
        d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(), 0)

    def test_changed_shielded_task_restarts_after_its_run(self):
        d = self.run_daemon("[task.s]\nkind = sleep\nduration = 1s\nshield = yes\n")
        d.event("spawned", "s")
        self.rewrite(d, "[task.s]\nkind = sleep\nduration = 2s\nshield = yes\n")
        d.kill(signal.SIGHUP)
        self.assertEqual(self.reload_outcome(d)["changed"], 1)
        first = d.event("finished", "s", timeout=5)
        second = d.wait_for(lambda r: r["event"] == "finished" and r["task"] == "s" and r is not first,
                            timeout=10, what="the new run's end")
        self.assertEqual(d.of("cancelled", "s"), [], "a shielded run is not cut short")
        self.assertGreaterEqual(second["mono_us"] - first["mono_us"], 2_000_000,
                                "the new run starts once the old one has ended")
        d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(), 0)
        self.assert_clean_log(d)

    def test_broken_config_changes_nothing(self):
        d = self.run_daemon("[task.a]\nkind = ticker\nspeed = 20\n")
        d.event("spawned", "a")
        self.rewrite(d, "[task.a]\nkind = ticker\nspeed = fast\n[task.b]\nkind = sleep\nduration = 1s\n")
        d.kill(signal.SIGHUP)
        failed = self.reload_outcome(d)
        self.assertEqual(failed["event"], "reload-failed")
        self.assertIn(f"{d.conf.name}:3:", failed["msg"])
        self.assertIn("key 'speed'", failed["msg"])
        steps = len(d.of("step", "a"))
        d.wait_for(lambda r: r["event"] == "step" and r["task"] == "a" and r["distance"] > steps + 3,
                   what="more steps of a")
        self.assertEqual(d.of("spawned", "b") + d.of("cancelled", "a"), [])
        d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(), 0)
        self.assert_clean_log(d)


class Config(unittest.TestCase):
    def check_bad(self, text, line, key, *words):
        with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
            f.write(text)
        try:
            for extra in ([], ["--check-config"]):
                p = subprocess.run([EVTASKD, "--config", f.name, "--log", "json", *extra],
                                   capture_output=True, text=True, timeout=10)
                self.assertEqual(p.returncode, 78, p.stderr)
                self.assertEqual(p.stdout, "", "nothing starts on a bad config")
                self.assertIn(f"{f.name}:{line}:", p.stderr)
                if key:
                    self.assertIn(key, p.stderr)
                for w in words:
                    self.assertIn(w, p.stderr)
        finally:
            os.unlink(f.name)

    def test_unknown_key(self):
        self.check_bad("[daemon]\nexit_when_done = yes\n\n[task.a]\nkind = sleep\nduraton = 1s\n", 6, "duraton")

    def test_bad_duration(self):
        self.check_bad("[task.a]\nkind = sleep\nduration = 10 parsecs\n", 3, "duration")

    def test_unknown_kind(self):
        self.check_bad("[task.a]\nkind = teleport\n", 2, "kind", "teleport")

    def test_bad_boolean(self):
        self.check_bad("[task.a]\nkind = sleep\nduration = 1s\nshield = maybe\n", 4, "shield", "maybe")

    def test_duplicate_task(self):
        self.check_bad("[task.a]\nkind = sleep\nduration = 1s\n\n[task.a]\nkind = sleep\nduration = 2s\n",
                       5, None, "task.a")

    def test_missing_file(self):
        p = subprocess.run([EVTASKD, "--config", "/nonexistent/evtaskd.conf"],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 78)
        self.assertIn("/nonexistent/evtaskd.conf", p.stderr)

    def test_demo_config_is_valid(self):
        p = subprocess.run([EVTASKD, "--demo", "--check-config"], capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("9 tasks", p.stdout)


class CommandLine(unittest.TestCase):
    def test_help_and_version(self):
        p = subprocess.run([EVTASKD, "--help"], capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 0)
        for word in ("--config", "--check-config", "--log", "SIGINT", "SIGTERM"):
            self.assertIn(word, p.stdout)
        p = subprocess.run([EVTASKD, "--version"], capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 0)
        self.assertRegex(p.stdout, r"^evtaskd \d+\.\d+")

    def test_help_and_man_page_agree(self):
        import re
        help_text = subprocess.run([EVTASKD, "--help"], capture_output=True, text=True, timeout=10).stdout
        with open(MANPAGE) as f:
            man = f.read().replace("\\-", "-").replace("\\fB", "").replace("\\fR", "")
        for option in re.findall(r"--[a-z-]+", help_text):
            self.assertIn(option, man, f"{option} is in --help but not in evtaskd(8)")
        for signame in ("SIGINT", "SIGTERM", "SIGQUIT", "SIGUSR1"):
            self.assertIn(signame, man)
        for code in re.findall(r"^  (\d+)  ", help_text, re.M):
            self.assertRegex(man, rf"\.B {code}\n", f"exit status {code} is not in evtaskd(8)")

    def test_help_lists_exactly_the_options(self):
        """--help is made from the option table: each option it lists is
        taken (with its argument, in its long and short form), and evtaskd(8)
        lists the same options."""
        help_text = subprocess.run([EVTASKD, "--help"], capture_output=True, text=True, timeout=10).stdout
        rows = re.findall(r"^  (?:-([a-zA-Z]), |    )--([a-z-]+)(?: ([A-Z=]+))?  ", help_text, re.M)
        self.assertGreaterEqual(len(rows), 5, help_text)
        values = {"FILE": os.devnull, "SINK": "json", "KEY=VALUE": "threads=1"}
        for short, name, arg in rows:
            for spelling in [f"--{name}"] + ([f"-{short}"] if short else []):
                args = [spelling] + ([values[arg]] if arg else [])
                # --version last: an option that is taken lets it print.
                p = subprocess.run([EVTASKD, *args, "--version"], capture_output=True, text=True, timeout=10)
                self.assertNotEqual(p.returncode, 64, f"{args}: {p.stderr}")
        with open(MANPAGE) as f:
            man = f.read()
        options = man[man.index(".SH OPTIONS"):man.index(".SH SIGNALS")].replace("\\-", "-")
        in_man = set(re.findall(r"--([a-z-]+)", options))
        self.assertEqual(in_man, {name for _, name, _ in rows}, "evtaskd(8) and --help list other options")

    def test_usage_errors_exit_64(self):
        for args in (["--bogus"], ["--log", "carrier-pigeon"], ["stray"], ["--config"]):
            p = subprocess.run([EVTASKD, *args], capture_output=True, text=True, timeout=10)
            self.assertEqual(p.returncode, 64, args)
            self.assertNotEqual(p.stderr, "")


PYTHON = shlex.quote(sys.executable)


def exec_task(name, command, **keys):
    """An exec task's section: its command, then the keys given."""
    text = f"[task.{name}]\nkind = exec\ncommand = {command}\n"
    for key, value in keys.items():
        text += f"{key} = {value}\n"
    return text + "\n"


def proc_stat(pid):
    """(state, ppid) from /proc/PID/stat, or None once the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[1])


def wait_gone(pid, timeout):
    """True once /proc/PID is gone, False if it is still there after timeout seconds."""
    deadline = time.monotonic() + timeout
    while proc_stat(pid) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def children_of(ppid):
    """(pid, state) of every process whose parent is ppid."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = proc_stat(int(entry))
            if st and st[1] == ppid:
                found.append((int(entry), st[0]))
    return found


def file_size(path):
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def read_lines(path):
    try:
        with open(path) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


class Exec(DaemonTest):
    """kind = exec: commands run as child processes, their output logged."""
    HEAD = "[daemon]\nexit_when_done = yes\n\n"

    def tmpdir(self):
        d = tempfile.TemporaryDirectory(prefix="evtaskd-exec-")
        self.addCleanup(d.cleanup)
        return d.name

    def kill_if_left(self, pid, word):
        """At the test's end, SIGKILL pid if it is still a process with word in its command line."""
        def kill():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if word.encode() in f.read():
                        os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        self.addCleanup(kill)

    def index(self, d, rec):
        return next(i for i, r in enumerate(d.records) if r is rec)

    def wait_lines(self, path, n, timeout=10.0):
        deadline = time.monotonic() + timeout
        while len(read_lines(path)) < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"{path}: fewer than {n} lines within {timeout}s: {read_lines(path)}")
            time.sleep(0.02)

    # ---- output and exit status ----

    def test_output_lines_and_exit_codes(self):
        three = ("for i in 1 2 3 4 5; do echo \"line $i\"; done; echo 'to stderr' >&2; "
                 "printf 'bin:\\001\\033[1m\\177\\t\\r:end\\n'; exit 3")
        d = self.run_daemon(self.HEAD + exec_task("three", three, shell="yes")
                            + exec_task("zero", "sh -c 'echo zero; exit 0'"))
        self.assertEqual(d.finish(), 0)
        self.assert_clean_log(d)

        runs = d.of("run", "three")
        self.assertEqual(len(runs), 1)
        run = runs[0]
        self.assertEqual(run["run"], 1)
        self.assertIn(three, run["msg"])
        out = d.of("output", "three")
        for r in out:
            self.assertEqual(r["pid"], run["pid"])
        self.assertEqual([r["msg"] for r in out if r["stream"] == "stdout"],
                         [f"line {i}" for i in range(1, 6)] + ["bin:\\x01\\x1b[1m\\x7f\t\\x0d:end"])
        self.assertEqual([r["msg"] for r in out if r["stream"] == "stderr"], ["to stderr"])
        self.assertEqual(len(out), 7)
        failed = d.of("failed", "three")
        self.assertEqual(len(failed), 1)
        end = failed[0]
        self.assertEqual((end["run"], end["pid"], end["exit_code"]), (1, run["pid"], 3))
        self.assertNotIn("signal_number", end)
        self.assertGreaterEqual(end["duration_ms"], 0)
        self.assertEqual(d.of("finished", "three"), [])
        last_output = max(self.index(d, r) for r in out)
        self.assertGreater(self.index(d, end), last_output, "the run's end before its output")
        self.assertGreater(self.index(d, out[0]), self.index(d, run))

        zero_run = d.of("run", "zero")
        self.assertEqual(len(zero_run), 1)
        self.assertEqual([r["msg"] for r in d.of("output", "zero")], ["zero"])
        finished = d.of("finished", "zero")
        self.assertEqual(len(finished), 1)
        self.assertEqual((finished[0]["exit_code"], finished[0]["pid"]), (0, zero_run[0]["pid"]))
        self.assertEqual(d.of("failed", "zero"), [])
        self.assertGreater(self.index(d, finished[0]), self.index(d, d.of("output", "zero")[0]))

    def test_long_lines_are_split(self):
        cmd = f"{PYTHON} -c \"import sys; sys.stdout.write('b' * 3000 + '\\n' + 'last, with no newline')\""
        d = self.run_daemon(self.HEAD + exec_task("long", cmd))
        self.assertEqual(d.finish(), 0)
        self.assert_clean_log(d)
        self.assertEqual([r["msg"] for r in d.of("output", "long")],
                         ["b" * 1024, "b" * 1024, "b" * 952, "last, with no newline"])
        self.assertEqual(len(d.of("finished", "long")), 1)

    def test_a_line_of_exactly_1024_bytes_is_one_record(self):
        cmd = f"{PYTHON} -c \"import sys; sys.stdout.write('a' * 1024 + '\\n' + 'b' * 2048 + '\\n' + 'next\\n')\""
        d = self.run_daemon(self.HEAD + exec_task("edge", cmd))
        self.assertEqual(d.finish(), 0)
        self.assert_clean_log(d)
        lines = [r["msg"] for r in d.of("output", "edge")]
        self.assertEqual([len(line) for line in lines], [1024, 1024, 1024, 4],
                         "a line that fills the buffer exactly is followed by an empty record")
        self.assertEqual(lines, ["a" * 1024, "b" * 1024, "b" * 1024, "next"])

    def test_bytes_that_are_not_utf8_are_escaped(self):
        cmd = "printf 'raw:\\200\\377:end\\n'; printf 'caf\\303\\251\\n'"
        d = self.run_daemon(self.HEAD + exec_task("raw", cmd, shell="yes"))
        self.assertEqual(d.finish(), 0)
        self.assert_clean_log(d)
        self.assertEqual([r["msg"] for r in d.of("output", "raw")], ["raw:\\x80\\xff:end", "caf\u00e9"])

    # ---- schedules, timeouts ----

    def test_interval_runs_never_overlap(self):
        marks = os.path.join(self.tmpdir(), "marks")
        cmd = (f"echo start $(date +%s.%N) >> {marks}; sleep 0.7; "
               f"echo end $(date +%s.%N) >> {marks}")
        d = self.run_daemon(exec_task("tick", cmd, shell="yes", schedule="interval", interval="300ms"))
        d.wait_for(lambda r: r["event"] == "finished" and r["task"] == "tick" and r["run"] == 3,
                   timeout=20, what="the end of the third run")
        d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(), 0)
        self.assert_clean_log(d)
        self.assertEqual(len(d.of("cancelled", "tick")), 1)

        # From the file: start, end, start, end, ...; each start after the previous end.
        lines = [line.split() for line in read_lines(marks)]
        kinds = [w[0] for w in lines]
        self.assertGreaterEqual(len(lines), 6)
        self.assertEqual(kinds, ["start", "end"] * (len(kinds) // 2) + ["start"] * (len(kinds) % 2), kinds)
        stamps = [float(w[1]) for w in lines]
        self.assertEqual(stamps, sorted(stamps), "runs overlapped")
        for i in range(0, len(stamps) - 1, 2):
            self.assertGreaterEqual(stamps[i + 1] - stamps[i], 0.7)

        # From the log: a run starts after the one before has ended, and
        # each run that outlasted the interval skipped the starts it covered.
        runs = d.of("run", "tick")
        ends = {r["run"]: r for r in d.of("finished", "tick")}
        self.assertEqual([r["run"] for r in runs], list(range(1, len(runs) + 1)))
        for prev, nxt in zip(runs, runs[1:]):
            self.assertIn(prev["run"], ends)
            self.assertGreater(self.index(d, nxt), self.index(d, ends[prev["run"]]))
            self.assertGreaterEqual(nxt["mono_us"] - prev["mono_us"], 700_000)
            skipped = [r for r in d.of("skipped", "tick") if r["run"] == prev["run"]]
            self.assertEqual(len(skipped), 1, f"run {prev['run']}: one record for the starts it covered")
            self.assertGreaterEqual(skipped[0]["skipped"], 2, f"run {prev['run']}: 0.7 s covers two starts")
            self.assertLess(self.index(d, skipped[0]), self.index(d, nxt))
        for r in ends.values():
            self.assertGreaterEqual(r["duration_ms"], 700)

    def test_a_short_interval_counts_its_skips(self):
        # Finding 15 of issue 18: each skipped start was walked and logged
        # one by one, so a run far longer than its interval flooded the
        # log (and an interval near the limit of int64 never got out of
        # the loop) while SIGTERM waited.
        d = self.run_daemon(exec_task("tick", "sleep 0.5", schedule="interval", interval="10ms"))
        d.wait_for(lambda r: r["event"] == "run" and r["task"] == "tick" and r["run"] == 3,
                   timeout=20, what="the third run")
        d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(), 0)
        self.assert_clean_log(d)
        skipped = d.of("skipped", "tick")
        self.assertEqual([r["run"] for r in skipped], [1, 2], "one record per run that outlasted the interval")
        for r in skipped:
            self.assertGreaterEqual(r["skipped"], 40, r)
            self.assertLessEqual(r["skipped"], 1000, r)
        self.assertLess(len(d.records), 40, "the log holds a handful of records, not one per skipped start")

    def test_timeout_kills_the_run(self):
        d = self.run_daemon(self.HEAD + exec_task("sleeper", "sleep 100", timeout="1s")
                            + exec_task("stubborn", "trap '' TERM; while :; do sleep 0.1; done", shell="yes",
                                        timeout="500ms", kill_timeout="500ms"))
        pids = {name: d.event("run", name)["pid"] for name in ("sleeper", "stubborn")}
        self.kill_if_left(pids["sleeper"], "sleep")
        self.kill_if_left(pids["stubborn"], "trap")
        self.assertEqual(d.finish(), 0)
        self.assert_clean_log(d)
        self.assertEqual(d.of("cancelled"), [])
        for name, signo in (("sleeper", signal.SIGTERM), ("stubborn", signal.SIGKILL)):
            failed = d.of("failed", name)
            self.assertEqual(len(failed), 1, name)
            end = failed[0]
            self.assertEqual(end["signal_number"], signo, name)
            self.assertNotIn("exit_code", end)
            self.assertIn("(timeout)", end["msg"])
            self.assertEqual(end["pid"], pids[name])
            self.assertGreaterEqual(end["duration_ms"], 1000, name)
            self.assertLess(end["duration_ms"], 1000 + 5000, name)
            self.assertTrue(wait_gone(pids[name], 5), f"{name}'s process is still there")

    def test_time_paused_does_not_count_toward_the_timeout(self):
        d = self.run_daemon(self.HEAD + exec_task("sleeper", "sleep 100", timeout="1s"))
        run = d.event("run", "sleeper")
        self.kill_if_left(run["pid"], "sleep")
        time.sleep(0.3)
        d.kill(signal.SIGINT)
        paused = d.event("paused")
        time.sleep(1.5)
        self.assertEqual(d.of("failed"), [], "the timeout counted time paused")
        d.kill(signal.SIGINT)
        resumed = d.event("resumed")
        failed = d.event("failed", "sleeper")
        self.assertEqual(d.finish(), 0)
        self.assert_clean_log(d)
        self.assertEqual(failed["signal_number"], signal.SIGTERM)
        self.assertIn("(timeout)", failed["msg"])
        unpaused = (failed["mono_us"] - run["mono_us"]) - (resumed["mono_us"] - paused["mono_us"])
        self.assertGreaterEqual(unpaused, 1_000_000 - 20_000)
        self.assertLess(unpaused, 1_000_000 + 3_000_000)
        self.assertGreaterEqual(failed["duration_ms"], 2500)

    # ---- pause and shutdown ----

    def test_pause_stops_the_process_group(self):
        out = os.path.join(self.tmpdir(), "ticks")
        d = self.run_daemon(exec_task("writer", f"while :; do echo tick >> {out}; sleep 0.05; done", shell="yes"))
        pid = d.event("run", "writer")["pid"]
        self.kill_if_left(pid, "tick")
        self.wait_lines(out, 3)
        d.kill(signal.SIGINT)
        d.event("paused")
        # Once the shell and its children have stopped (or exited), no write
        # is under way.
        deadline = time.monotonic() + 5
        while not all(s in ("T", "Z") for s in [proc_stat(pid)[0], *(s for _, s in children_of(pid))]):
            self.assertLess(time.monotonic(), deadline, "the run's processes did not stop")
            time.sleep(0.01)
        held = file_size(out)
        time.sleep(0.5)
        self.assertEqual(file_size(out), held, "the file grew while paused")
        self.assertEqual(proc_stat(pid)[0], "T", "the run's process is not stopped")
        d.kill(signal.SIGINT)
        d.event("resumed")
        deadline = time.monotonic() + 5
        while file_size(out) <= held and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertGreater(file_size(out), held, "the file did not grow after the resume")
        self.assertNotEqual(proc_stat(pid)[0], "T")
        d.kill(signal.SIGUSR1)
        row = d.wait_for(lambda r: r["event"] == "task-table" and r["task"] == "writer")
        self.assertEqual(row["pid"], pid, "the task table names the run's process")
        self.assertIn(f"child {pid}", row["msg"])
        d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(), 0)
        self.assert_clean_log(d)
        self.assertEqual(len(d.of("cancelled", "writer")), 1)
        self.assertTrue(wait_gone(pid, 5))

    def test_term_drains_shielded_runs_and_stops_the_others(self):
        out = os.path.join(self.tmpdir(), "lines")
        writer = f"i=0; while [ $i -lt 20 ]; do i=$((i+1)); echo \"line $i of 20\" >> {out}; sleep 0.05; done"
        d = self.run_daemon(exec_task("keeper", writer, shell="yes", shield="yes")
                            + exec_task("sleeper", "sleep 100", kill_timeout="2s")
                            + exec_task("stubborn", "trap '' TERM; while :; do sleep 0.1; done", shell="yes",
                                        kill_timeout="1s"))
        pids = {name: d.event("run", name)["pid"] for name in ("keeper", "sleeper", "stubborn")}
        self.kill_if_left(pids["sleeper"], "sleep")
        self.kill_if_left(pids["stubborn"], "trap")
        self.wait_lines(out, 3)
        sent = d.kill(signal.SIGTERM)
        self.assertTrue(wait_gone(pids["sleeper"], 2 + 3), "the unshielded run outlived its kill_timeout")
        self.assertTrue(wait_gone(pids["stubborn"], 1 + 3), "the unshielded run outlived its kill_timeout")
        self.assertEqual(d.finish(), 0)
        self.assert_clean_log(d)
        self.assertEqual(read_lines(out), [f"line {i} of 20" for i in range(1, 21)])
        finished = d.of("finished", "keeper")
        self.assertEqual(len(finished), 1)
        self.assertEqual(finished[0]["exit_code"], 0)
        self.assertGreater(finished[0]["mono_us"], sent)
        self.assertEqual(d.of("cancelled", "keeper"), [])
        sleeper = d.of("cancelled", "sleeper")
        self.assertEqual(len(sleeper), 1)
        self.assertLess(sleeper[0]["mono_us"] - sent, 2_000_000 + 3_000_000)
        stubborn = d.of("cancelled", "stubborn")
        self.assertEqual(len(stubborn), 1)
        self.assertGreaterEqual(stubborn[0]["mono_us"] - sent, 1_000_000, "SIGKILL before kill_timeout")
        self.assertLess(stubborn[0]["mono_us"] - sent, 1_000_000 + 3_000_000)
        self.assertEqual(d.of("forced"), [])
        self.assertEqual(d.of("exit")[-1]["exit_code"], 0)
        for pid in pids.values():
            self.assertTrue(wait_gone(pid, 5))

    def test_shielded_repeating_job_starts_no_run_during_the_drain(self):
        d = self.run_daemon("[daemon]\ndrain_timeout = 3s\n\n" + exec_task(
            "keeper", "sleep 0.5", shield="yes", schedule="interval", interval="700ms"))
        d.wait_for(lambda r: r["event"] == "run" and r["task"] == "keeper" and r["run"] == 2,
                   what="the second run")
        sent = d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(), 0, "the drain was forced")
        self.assert_clean_log(d)
        self.assertEqual(d.of("forced"), [])
        late = [r for r in d.of("run", "keeper") if r["mono_us"] > sent]
        self.assertEqual(late, [], "a shielded job started a new run during the drain")
        ended = d.of("finished", "keeper")
        self.assertEqual([r["run"] for r in ended], [1, 2], "the run under way at the SIGTERM runs to its end")

    def test_changed_shielded_repeating_job_restarts_after_its_run(self):
        def keeper(command):
            return exec_task("keeper", command, shield="yes", schedule="interval", interval="700ms")

        d = self.run_daemon(keeper("sleep 0.3"))
        d.event("run", "keeper")
        with open(d.conf.name, "w") as f:
            f.write(keeper("sleep 0.4"))
        d.kill(signal.SIGHUP)
        done = d.event("reloaded")
        self.assertEqual(done["changed"], 1)
        new = d.wait_for(lambda r: r["event"] == "run" and r["task"] == "keeper" and "sleep 0.4" in r["msg"],
                         timeout=5, what="a run of the new settings")
        old = [r for r in d.of("run", "keeper") if "sleep 0.3" in r["msg"]]
        self.assertLess(old[-1]["mono_us"], done["mono_us"], "the old job started a run after the reload")
        self.assertEqual(new["run"], 1)
        d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(), 0)
        self.assert_clean_log(d)

    def test_torture_term_at_random_moments(self):
        runs = int(os.environ.get("EVTASK_TORTURE_RUNS", "200"))
        seed = int(os.environ.get("EVTASK_TORTURE_SEED", str(time.time_ns() % 1_000_000_007)))
        print(f"\ntorture: {runs} runs, seed {seed} (EVTASK_TORTURE_SEED={seed} repeats it)",
              file=sys.stderr, flush=True)
        rng = random.Random(seed)
        n = 30
        record = re.compile(r"record (\d{3}) of 030 ([a-z]{48}) (\d{3})")
        payload = "abcdefghijklmnopqrstuvwxyz" + "abcdefghijklmnopqrstuv"
        checked = processes = 0
        # Runs go in batches of four daemons at once, each sent its SIGTERM
        # at its own delay after its own start: the delays, and so the
        # seed, mean the same as one at a time.
        for first in range(0, runs, 4):
            batch = []
            for i in range(first, min(first + 4, runs)):
                out = os.path.join(self.tmpdir(), "records")
                writer = (f"i=0; while [ $i -lt {n} ]; do i=$((i+1)); "
                          f"printf 'record %03d of 030 {payload} %03d\\n' $i $i >> {out}; sleep 0.01; done")
                d = self.run_daemon(exec_task("writer", writer, shell="yes", shield="yes")
                                    + exec_task("sleeper", "sleep 100 & echo $!; wait", shell="yes"))
                batch.append((i, rng.uniform(0, 0.6), out, d))
            due = []
            for i, delay, out, d in batch:
                d.started()
                due.append((time.monotonic() + delay, d))
            for when, d in sorted(due, key=lambda x: x[0]):
                time.sleep(max(0.0, when - time.monotonic()))
                d.kill(signal.SIGTERM)
            for i, delay, out, d in batch:
                with self.subTest(run=i, seed=seed, delay=round(delay, 3)):
                    self.assertEqual(d.finish(), 0)
                    self.assert_clean_log(d)
                    pids = [r["pid"] for r in d.of("run")]
                    pids += [int(r["msg"]) for r in d.of("output", "sleeper") if r["msg"].isdigit()]
                    for pid in pids:
                        self.kill_if_left(pid, "sleep")
                    with open(out) as f:
                        text = f.read()
                    self.assertTrue(text.endswith("\n"), "the last record is cut short")
                    numbers = []
                    for line in text.splitlines():
                        m = record.fullmatch(line)
                        self.assertIsNotNone(m, f"a torn record: {line!r}")
                        self.assertEqual(m.group(1), m.group(3), f"a torn record: {line!r}")
                        self.assertEqual(m.group(2), payload, f"a torn record: {line!r}")
                        numbers.append(int(m.group(1)))
                    self.assertEqual(numbers, list(range(1, n + 1)), "records missing or out of order")
                    self.assertEqual(len(d.of("finished", "writer")), 1)
                    for pid in pids:
                        self.assertTrue(wait_gone(pid, 5), f"process {pid} outlived the daemon")
                    checked += len(numbers)
                    processes += len(pids)
        print(f"torture: {runs} runs, {checked} records checked, {processes} processes checked gone",
              file=sys.stderr, flush=True)

    # ---- processes left behind ----

    def test_orphans_are_reaped(self):
        """What a run leaves behind ends with it (kill_signal; see
        test_proctree.py) and, as evtaskd's orphan, is reaped and logged.
        The leftovers outlive any delay a loaded machine puts between the
        run's end and their signal."""
        childenv.skip_if_emulated(self, "no PR_SET_CHILD_SUBREAPER, orphans go to init")
        d = self.run_daemon(
            exec_task("orphan", "(sleep 30; exit 7) >/dev/null 2>&1 & echo $!", shell="yes")
            + exec_task("double", "sh -c 'sleep 30 >/dev/null 2>&1 & echo $!'", shell="yes"))
        daemon_pid = d.started()["pid"]
        orphan = int(d.event("output", "orphan")["msg"])
        double = int(d.event("output", "double")["msg"])
        for pid in (orphan, double):
            self.kill_if_left(pid, "sleep")
        reaped = {pid: d.wait_for(lambda r, pid=pid: r["event"] == "reaped" and r["pid"] == pid,
                                  what=f"the reaped record of {pid}") for pid in (orphan, double)}
        for name, pid in (("orphan", orphan), ("double", double)):
            self.assertEqual(reaped[pid]["signal_number"], signal.SIGTERM)
            ended = d.event("finished", name)
            self.assertEqual(ended["exit_code"], 0)
            self.assertLess(self.index(d, reaped[pid]), self.index(d, ended), "the run ended before its leftover")
        time.sleep(0.3)
        self.assertEqual([c for c in children_of(daemon_pid) if c[1] == "Z"], [], "a zombie child of the daemon")
        self.assertEqual(children_of(daemon_pid), [])
        d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(), 0)
        self.assert_clean_log(d)
        for pid in (orphan, double):
            self.assertEqual(len([r for r in d.of("reaped") if r["pid"] == pid]), 1)

    def test_a_grandchild_holding_the_output_does_not_hold_the_run(self):
        """It ends with the run (kill_signal), and so does the output."""
        childenv.skip_if_emulated(self, "no PR_SET_CHILD_SUBREAPER, orphans go to init")
        d = self.run_daemon(exec_task("holder", "sleep 3 & echo $!", shell="yes"))
        grandchild = int(d.event("output", "holder")["msg"])
        self.kill_if_left(grandchild, "sleep")
        ended = d.event("finished", "holder")
        self.assertLess(ended["duration_ms"], 2500, "the run's end waited for the grandchild")
        reaped = d.wait_for(lambda r: r["event"] == "reaped" and r["pid"] == grandchild, timeout=10,
                            what="the grandchild's reaped record")
        self.assertEqual(reaped["signal_number"], signal.SIGTERM)
        d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(), 0)
        self.assert_clean_log(d)

    # ---- bad settings ----

    def test_bad_config(self):
        head = "[task.a]\nkind = exec\n"
        cases = [
            (head + "command = /nonexistent/prog\n", 3, "'command'", "/nonexistent/prog"),
            (head + "command = no-such-program-xyz --flag\n", 3, "'command'", "no-such-program-xyz"),
            (head + "command = echo 'unterminated\n", 3, "'command'", "unterminated"),
            (head + "command = sleep 1\nschedule = interval\n", 4, "'schedule'", "interval"),
            (head + "command = sleep 1\ninterval = 1s\n", 4, "'interval'"),
            (head + "command = sleep 1\nschedule = once\ninterval = 1s\n", 5, "'interval'"),
            (head + "command = sleep 1\nkill_signal = NOPE\n", 4, "'kill_signal'", "NOPE"),
            (head + "command = sleep 1\nenvironment = FOO=1 NOEQUALS\n", 4, "'environment'", "NOEQUALS"),
            (head + "command = sleep 1\nworking_directory = relative/dir\n", 4, "'working_directory'",
             "relative/dir"),
            (head + "shell = yes\n", 1, None, "'command'"),
            ("[task.a]\nkind = sleep\nduration = 1s\ncommand = sleep 1\n", 4, "'command'",
             "not valid for kind sleep"),
            (head + "command = sleep 1\nuser = no-such-user-xyz\n", 4, "'user'", "unknown user 'no-such-user-xyz'"),
            (head + "command = sleep 1\ngroup = no-such-group-xyz\n", 4, "'group'",
             "unknown group 'no-such-group-xyz'"),
            (head + "command = sleep 1\nuser = 4242424\n", 4, "'user'", "unknown user '4242424'"),
        ]
        for text, line, key, *words in cases:
            with self.subTest(config=text):
                Config.check_bad(self, text, line, key, *words)

    def test_missing_working_directory_fails_the_run_only(self):
        childenv.skip_if_emulated(self, "posix_spawn's child shares no memory, its error is exit 127")
        here = self.tmpdir()
        d = self.run_daemon(self.HEAD + exec_task("lost", "pwd", working_directory="/nonexistent-dir")
                            + exec_task("fine", "pwd", working_directory=here))
        self.assertEqual(d.finish(), 0)
        self.assert_clean_log(d)
        failed = d.of("failed", "lost")
        self.assertEqual(len(failed), 1)
        self.assertIn("cannot start", failed[0]["msg"])
        self.assertEqual(failed[0]["run"], 1)
        self.assertEqual(d.of("run", "lost") + d.of("output", "lost"), [])
        self.assertEqual([r["msg"] for r in d.of("output", "fine")], [here])
        self.assertEqual(len(d.of("finished", "fine")), 1)

    # ---- who a child runs as ----

    def test_runs_leave_the_daemons_own_descriptors(self):
        # An exec job's end must close its own descriptors only: closing
        # fd 0 (a field left at zero) handed the next run's pipe the
        # number 0, closed that too, and the run died of SIGPIPE.
        r, w = os.pipe()
        self.addCleanup(os.close, w)
        d = self.run_daemon("[task.nap]\nkind = sleep\nduration = 60s\n\n"
                            + exec_task("a", "true") + exec_task("b", "true", user="nobody", working_directory="/"),
                            stdin=r)
        os.close(r)
        pid = d.started()["pid"]
        before = {fd: os.readlink(f"/proc/{pid}/fd/{fd}") for fd in (0, 1, 2)}
        d.event("finished", "a")
        d.event("finished", "b")
        after = {fd: os.readlink(f"/proc/{pid}/fd/{fd}") for fd in (0, 1, 2) if os.path.exists(f"/proc/{pid}/fd/{fd}")}
        self.assertEqual(after, before)
        d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(), 0)

    def test_a_closed_stdin_becomes_dev_null(self):
        # Started with fd 0 closed, the daemon holds /dev/null there, so a
        # job's pipe never takes the number 0.
        d = self.run_daemon("[task.nap]\nkind = sleep\nduration = 60s\n\n"
                            + exec_task("a", "echo one") + exec_task("b", "echo two"),
                            stdin=subprocess.DEVNULL, preexec=lambda: os.close(0))
        pid = d.started()["pid"]
        d.event("finished", "a")
        d.event("finished", "b")
        self.assertEqual(os.path.realpath(f"/proc/{pid}/fd/0"), "/dev/null")
        d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(), 0)
        self.assertEqual(sorted(r["msg"] for r in d.of("output")), ["one", "two"])

    def test_user_and_group(self):
        if os.geteuid() != 0:
            self.skipTest("switching users needs root")
        here = self.tmpdir()
        os.chmod(here, 0o700)  # root's only: the user cannot enter it
        probe = "id -u; id -g; id -G; echo \"$USER $LOGNAME $HOME\"; pwd"
        d = self.run_daemon(self.HEAD
                            + exec_task("as-nobody", probe, shell="yes", user="nobody", working_directory="/")
                            + exec_task("as-group", "sh -c 'id -u; id -g; id -G'", group="daemon")
                            + exec_task("by-number", "id -u", user="65534", group="0")
                            + exec_task("mine", "env", user="nobody", environment="HOME=/srv/x")
                            + exec_task("locked-out", "pwd", user="nobody", working_directory=here)
                            + exec_task("root-again", "id -u"))
        self.assertEqual(d.finish(), 0)
        self.assert_clean_log(d)
        out = lambda name: [r["msg"] for r in d.of("output", name)]
        self.assertEqual(out("as-nobody"), ["65534", "65534", "65534", "nobody nobody /nonexistent", "/"])
        self.assertEqual(out("as-group"), ["0", "1", "1"])
        self.assertEqual(out("by-number"), ["65534"])
        env = out("mine")
        self.assertIn("HOME=/srv/x", env, "the job's environment wins over the user's")
        self.assertIn("USER=nobody", env)
        self.assertEqual([e for e in env if e.startswith("HOME=")], ["HOME=/srv/x"])
        self.assertEqual(out("root-again"), ["0"], "one job's user is not another's")
        failed = d.of("failed", "locked-out")
        self.assertEqual(len(failed), 1)
        self.assertIn("cannot enter the working directory: Permission denied", failed[0]["msg"])
        self.assertEqual(d.of("run", "locked-out"), [])
        self.assertEqual(d.of("reaped"), [], "a run that failed to start is not an orphan")

    def test_only_root_switches_users(self):
        if os.geteuid() != 0:
            self.skipTest("runs the daemon as nobody, from root")
        runs_as_nobody = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                         EVTASKD, "--version"], capture_output=True)
        if runs_as_nobody.returncode != 0:
            self.skipTest("nobody cannot run the build's evtaskd here")
        here = self.tmpdir()
        os.chmod(here, 0o755)
        conf = os.path.join(here, "c.conf")
        with open(conf, "w") as f:
            f.write("[daemon]\nexit_when_done = yes\n\n" + exec_task("own", "id -u", user="nobody", group="nogroup")
                    + exec_task("root", "id -u", user="root"))
        os.chmod(conf, 0o644)
        p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                            EVTASKD, "--config", conf, "--log", "json"], capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 78, p.stderr)
        self.assertEqual(p.stdout, "")
        self.assertIn(f"{conf}:13: key 'user' in [task.root]: 'root' is uid 0: only a daemon running as root",
                      p.stderr)
        with open(conf, "w") as f:
            f.write("[daemon]\nexit_when_done = yes\n\n" + exec_task("own", "id -u", user="nobody", group="nogroup"))
        p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                            EVTASKD, "--config", conf, "--log", "json"], capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn('"msg":"65534"', p.stdout.replace(" ", ""), "its own user needs no switch")

    # ---- what a child inherits ----

    def test_child_gets_no_daemon_fd_and_a_clean_environment(self):
        tmp = self.tmpdir()
        env = dict(os.environ, NOTIFY_SOCKET=os.path.join(tmp, "notify"), JOURNAL_STREAM="8:12345",
                   LISTEN_FDS="1", LISTEN_PID="1", LISTEN_FDNAMES="x", WATCHDOG_PID="1", WATCHDOG_USEC="60000000",
                   FOO="from-the-daemon", EVTASK_KEPT="kept")
        with open(os.path.join(tmp, "held"), "w") as held:
            d = self.run_daemon(self.HEAD + exec_task("fds", "ls -l /proc/self/fd", shell="yes")
                                + exec_task("env", "env", environment="FOO=bar \"SPACED=a b\""),
                                env=env, pass_fds=(held.fileno(),))
            self.assertEqual(d.finish(), 0)
        self.assert_clean_log(d)

        fds = {}
        for r in d.of("output", "fds"):
            m = re.search(r" (\d+) -> (.*)$", r["msg"])
            if m:
                fds[int(m.group(1))] = m.group(2)
        self.assertEqual(fds.get(0), "/dev/null")
        self.assertRegex(fds.get(1, ""), r"^pipe:")
        self.assertRegex(fds.get(2, ""), r"^pipe:")
        extra = {fd: target for fd, target in fds.items() if fd > 2}
        self.assertLessEqual(len(extra), 1, f"daemon fds open in the child: {fds}")
        for fd, target in extra.items():
            self.assertRegex(target, r"^/proc/\d+/fd$", f"fd {fd} is the daemon's: {fds}")

        lines = [r["msg"] for r in d.of("output", "env")]
        names = [line.split("=", 1)[0] for line in lines if "=" in line]
        for name in ("NOTIFY_SOCKET", "JOURNAL_STREAM", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES",
                     "WATCHDOG_PID", "WATCHDOG_USEC"):
            self.assertNotIn(name, names)
        self.assertIn("FOO=bar", lines)
        self.assertEqual(names.count("FOO"), 1, "the job's FOO replaces the daemon's")
        self.assertIn("SPACED=a b", lines)
        self.assertIn("EVTASK_KEPT=kept", lines)



def module_task(name, path=None, **keys):
    """A module task's section: the hello example unless path is given."""
    text = f"[task.{name}]\nkind = module\npath = {path or os.environ.get('MODULE_HELLO')}\n"
    for key, value in keys.items():
        text += f"{key.replace('arg_', 'arg.')} = {value}\n"
    return text + "\n"


class Module(DaemonTest):
    """kind = module: a shared object's entry function as the task's body."""

    def setUp(self):
        if not os.environ.get("MODULE_HELLO"):
            self.skipTest("MODULE_HELLO is not set: run through meson test")

    def logs(self, d, task):
        return [r["msg"] for r in d.of("log", task)]

    def test_runs_with_its_args_and_logs_under_its_name(self):
        d = self.run_daemon("[daemon]\nexit_when_done = yes\n\n"
                            + module_task("greeter", entry="hello_task", arg_greeting="hi", arg_every=20,
                                          arg_times=5)
                            + module_task("bad-args", entry="hello_task", arg_every="soon"))
        self.assertEqual(d.finish(), 0)
        self.assert_clean_log(d)
        self.assertEqual(self.logs(d, "greeter"), [f"hi {i} from greeter" for i in range(1, 6)]
                         + ["goodbye from greeter"])
        self.assertEqual(len(d.of("finished", "greeter")), 1)
        self.assertEqual(self.logs(d, "bad-args"), ["arg.every must be a positive number of ms, arg.times a count"])
        failed = d.of("failed", "bad-args")
        self.assertEqual(len(failed), 1)
        self.assertEqual(failed[0]["result"], -errno.EINVAL)

    def test_pauses_and_is_cancelled_like_a_builtin_task(self):
        d = self.run_daemon(module_task("greeter", entry="hello_task", arg_every=20))
        d.wait_for(lambda r: r["event"] == "log" and r["msg"] == "hello 3 from greeter")
        d.kill(signal.SIGINT)
        d.event("paused")
        time.sleep(0.5)  # 25 greetings' worth
        d.kill(signal.SIGINT)
        d.event("resumed")
        d.wait_for(lambda r: r["event"] == "log" and r["task"] == "greeter" and r["msg"].startswith("hello")
                   and self.index(d, r) > self.index(d, d.of("resumed")[0]))
        d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(), 0)
        self.assert_clean_log(d)
        records = d.records
        paused = self.index(d, d.of("paused")[0])
        resumed = self.index(d, d.of("resumed")[0])
        between = [r for r in records[paused:resumed] if r["event"] == "log"]
        self.assertEqual(between, [], "a greeting while paused")
        self.assertEqual(self.logs(d, "greeter")[-1], "goodbye from greeter (cancelled)",
                         "the module's cleanup runs after the cancel")
        self.assertEqual(len(d.of("cancelled", "greeter")), 1)

    def test_a_shielded_module_drains(self):
        d = self.run_daemon(module_task("keeper", entry="hello_task", shield="yes", arg_every=100, arg_times=6)
                            + module_task("leaver", entry="hello_task", arg_every=100))
        d.wait_for(lambda r: r["event"] == "log" and r["msg"] == "hello 1 from keeper")
        d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(), 0)
        self.assert_clean_log(d)
        self.assertEqual(self.logs(d, "keeper"), [f"hello {i} from keeper" for i in range(1, 7)]
                         + ["goodbye from keeper"])
        self.assertEqual(len(d.of("finished", "keeper")), 1)
        self.assertEqual(self.logs(d, "leaver")[-1], "goodbye from leaver (cancelled)")
        self.assertEqual(len(d.of("cancelled", "leaver")), 1)

    def test_a_module_built_for_abi_1_still_runs(self):
        # Built before the context gained ready(): it loads, runs, and the
        # task is ready when it returns 0.
        d = self.run_daemon("[daemon]\nexit_when_done = yes\n\n"
                            + module_task("old", path=os.environ["MODULE_ABI_1"])
                            + "[task.next]\nkind = sleep\nduration = 10ms\nafter = old\n")
        self.assertEqual(d.finish(), 0)
        self.assertEqual(self.logs(d, "old"), ["built for ABI 1"])
        self.assertEqual([r["task"] for r in d.of("finished")], ["old", "next"])

    def test_bad_modules_are_config_errors(self):
        wrong, notmod = os.environ["MODULE_WRONG_ABI"], os.environ["MODULE_NOT_A_MODULE"]
        cases = [
            (module_task("a", path=wrong), 3, "'path'", "built for module ABI 3", "this evtaskd loads ABI 1 to 2"),
            (module_task("a", path=notmod), 3, "'path'", "not an evtask module", "EVTASK_MODULE()"),
            (module_task("a", entry="no_such_function"), 4, "'entry'", "no entry function 'no_such_function'"),
            (module_task("a", entry="bad name"), 4, "'entry'", "not a C identifier"),
            (module_task("a", path="/nonexistent/m.so"), 3, "'path'", "cannot load"),
            (module_task("a", path="relative.so"), 3, "'path'", "not an absolute path"),
            ("[task.a]\nkind = module\n", 1, None, "missing key 'path'"),
            ("[task.a]\nkind = sleep\nduration = 1s\narg.x = 1\n", 4, "'arg.*'", "only for kind module"),
            (module_task("a", entry="hello_task", arg_x=1, **{"arg.x": 2}), 6, "'arg.x'", "set twice"),
        ]
        for text, line, key, *words in cases:
            with self.subTest(config=text):
                Config.check_bad(self, text, line, key, *words)

    def index(self, d, rec):
        return next(i for i, r in enumerate(d.records) if r is rec)


class SlowSteps(DaemonTest):
    """slow_step_warn: a task that holds the loop is named, with how long."""

    def setUp(self):
        if not os.environ.get("MODULE_HOG"):
            self.skipTest("MODULE_HOG is not set: run through meson test")

    def hog(self, name, hold, times=1):
        return module_task(name, path=os.environ["MODULE_HOG"], arg_hold=hold, arg_times=times)

    def test_default_names_a_step_over_100ms(self):
        d = self.run_daemon("[daemon]\nexit_when_done = yes\n\n" + self.hog("hog", 250, times=2)
                            + self.hog("nibbler", 5, times=20))
        self.assertEqual(d.finish(), 0)
        self.assert_clean_log(d)
        slow = d.of("slow-step")
        self.assertEqual([r["task"] for r in slow], ["hog", "hog"], slow)
        for r in slow:
            self.assertEqual(r["level"], "warning")
            self.assertGreaterEqual(r["held_ms"], 240)
            self.assertIn(f"held the loop for {r['held_ms']} ms without an await point", r["msg"])
            self.assertIn("slow_step_warn is 100 ms", r["msg"])

    def test_threshold_is_configurable_and_zero_turns_it_off(self):
        d = self.run_daemon("[daemon]\nexit_when_done = yes\nslow_step_warn = 400ms\n\n"
                            + self.hog("medium", 200) + self.hog("long", 600))
        self.assertEqual(d.finish(), 0)
        self.assertEqual([r["task"] for r in d.of("slow-step")], ["long"])
        d = self.run_daemon("[daemon]\nexit_when_done = yes\nslow_step_warn = 0\n\n" + self.hog("long", 300))
        self.assertEqual(d.finish(), 0)
        self.assertEqual(d.of("slow-step"), [])

    def test_reload_applies_a_new_threshold_at_once(self):
        d = self.run_daemon("[daemon]\nslow_step_warn = 0\n\n" + self.hog("first", 300)
                            + "[task.idle]\nkind = sleep\nduration = 60s\n")
        d.event("finished", "first")
        with open(d.conf.name, "w") as f:
            f.write("[daemon]\nslow_step_warn = 50ms\n\n" + self.hog("second", 300)
                    + "[task.idle]\nkind = sleep\nduration = 60s\n")
        d.kill(signal.SIGHUP)
        d.event("finished", "second")
        d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(), 0)
        self.assertEqual([r["task"] for r in d.of("slow-step")], ["second"])
        self.assertNotIn("slow_step_warn", " ".join(r["msg"] for r in d.of("changed")),
                         "it applies now, not at the next start")

    def test_bad_value_is_a_config_error(self):
        Config.check_bad(self, "[daemon]\nslow_step_warn = soon\n", 2, "slow_step_warn", "not a duration")


def fd_flags(pid):
    """The daemon's descriptors above 2, each with its open flags."""
    flags = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        if int(fd) > 2:
            try:
                with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                    flags[int(fd)] = int(re.search(r"^flags:\s+(\d+)", f.read(), re.M).group(1), 8)
            except FileNotFoundError:
                pass
    return flags


def proc_ids(pid):
    with open(f"/proc/{pid}/status") as f:
        status = f.read()
    get = lambda key: re.search(rf"^{key}:\s+(.*)$", status, re.M).group(1).split()
    return get("Uid"), get("Gid"), get("Groups")


class Privileges(DaemonTest):
    """[daemon] user and group: root is given up once the daemon is set up."""

    HEAD = "[daemon]\nexit_when_done = yes\n"

    def test_every_descriptor_is_close_on_exec(self):
        d = self.run_daemon("[task.idle]\nkind = sleep\nduration = 60s\n\n"
                            + "[task.work]\nkind = blocking\nduration = 60s\ncheck_every = 20ms\n")
        d.event("spawned", "work")
        time.sleep(0.2)
        flags = fd_flags(d.proc.pid)
        self.assertGreaterEqual(len(flags), 3, "the loop, the self-pipe, signalfd at least")
        for fd, f in flags.items():
            self.assertTrue(f & os.O_CLOEXEC, f"fd {fd} ({os.readlink(f'/proc/{d.proc.pid}/fd/{fd}')}) "
                                              "would be inherited by a job")
        d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(), 0)

    def test_drops_root_after_setup(self):
        if os.geteuid() != 0:
            self.skipTest("giving up root needs root")
        childenv.skip_if_emulated(self, "no subreaper (a warning comes first), /proc/PID/status is qemu's")
        d = self.run_daemon("[daemon]\nuser = nobody\ndrain_timeout = 5s\n\n"
                            + "[task.idle]\nkind = sleep\nduration = 60s\n\n"
                            + exec_task("ids", "id -u; id -g; id -G", shell="yes"))
        started = d.started()
        self.assertEqual(started["uid"], 65534)
        self.assertIn("running as nobody", started["msg"])
        d.event("finished", "ids")
        uid, gid, groups = proc_ids(d.proc.pid)
        self.assertEqual(uid, ["65534"] * 4, "real, effective, saved and filesystem uid")
        self.assertEqual(gid, ["65534"] * 4)
        self.assertEqual(groups, ["65534"], "root's supplementary groups are gone")
        self.assertEqual([r["msg"] for r in d.of("output", "ids")], ["65534", "65534", "65534"])
        # Signals still work: pause, resume and a drain, as nobody.
        d.kill(signal.SIGINT)
        d.event("paused")
        d.kill(signal.SIGINT)
        d.event("resumed")
        d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(), 0)
        self.assert_clean_log(d)

    def test_group_only_and_reload_as_the_user(self):
        if os.geteuid() != 0:
            self.skipTest("giving up root needs root")
        childenv.skip_if_emulated(self, "no subreaper (a warning comes first), /proc/PID/status is qemu's")
        d = self.run_daemon("[daemon]\nuser = nobody\ngroup = daemon\n\n[task.idle]\nkind = sleep\nduration = 60s\n")
        d.started()
        uid, gid, groups = proc_ids(d.proc.pid)
        self.assertEqual((uid[1], gid[1], groups), ("65534", "1", ["1"]))
        # The config file is root's (0600): the reload fails, and says so,
        # and the daemon runs on with what it has.
        os.chmod(d.conf.name, 0o600)
        d.kill(signal.SIGHUP)
        failed = d.event("reload-failed")
        self.assertIn("Permission denied", failed["msg"])
        os.chmod(d.conf.name, 0o644)
        with open(d.conf.name, "a") as f:
            f.write("\n[task.more]\nkind = sleep\nduration = 60s\n")
        d.kill(signal.SIGHUP)
        d.event("added", "more")
        d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(), 0)

    def test_bad_settings_are_config_errors(self):
        Config.check_bad(self, "[daemon]\nuser = no-such-user-here\n", 2, "user", "unknown user")
        Config.check_bad(self, "[daemon]\ngroup = no-such-group-here\n", 2, "group", "unknown group")
        for text, what in [
            ("[daemon]\nuser = nobody\n\n" + exec_task("a", "true", user="daemon"), "'user' in [task.a]"),
            (exec_task("a", "true", group="daemon") + "[daemon]\nuser = nobody\n", "[task.a] switches users"),
        ]:
            with self.subTest(config=text):
                Config.check_bad(self, text, 7, "user", what,
                                 "jobs cannot switch users in a daemon that gives up root")

if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1] + sys.argv[1:], verbosity=2)
