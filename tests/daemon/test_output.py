#!/usr/bin/env python3
"""Job output end to end (issue 18, findings 1-6 and 14): every byte a job
writes arrives, in order, however slowly the log is read; a sink that
fails says so and ends the daemon with EX_IOERR (74); the escape hatch
never blocks on a full stdout.

Run by meson (`meson test --suite daemon`), one class per meson test, with
EVTASKD set to the built daemon. Slow readers are throttled by sleeping
between reads: that sets the reader's speed, never the order of checks.
"""
import fcntl
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_evtaskd as T  # noqa: E402  (the Daemon helper and its conventions)
import childenv  # noqa: E402  (the signal state of every child; on the path through T)

EVTASKD = T.EVTASKD
EX_IOERR = 74


def config(command, extra="", daemon=""):
    return (f"[daemon]\nexit_when_done = yes\n{daemon}\n"
            f"[task.job]\nkind = exec\nshell = yes\ncommand = {command}\n{extra}\n")


class SlowReader:
    """evtaskd --log json with its stdout on a pipe read at `rate` bytes a
    second (None: as fast as possible); optionally the write end set
    O_NONBLOCK, as a parent that shares it may leave it."""

    def __init__(self, test, config_text, rate=None, nonblocking=False):
        self.conf = tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False)
        self.conf.write(config_text)
        self.conf.close()
        test.addCleanup(os.unlink, self.conf.name)
        r, w = os.pipe()
        if nonblocking:
            fcntl.fcntl(w, fcntl.F_SETFL, fcntl.fcntl(w, fcntl.F_GETFL) | os.O_NONBLOCK)
        self.proc = subprocess.Popen([EVTASKD, "--config", self.conf.name, "--log", "json"], stdout=w,
                                     stderr=subprocess.PIPE, preexec_fn=childenv.default_signals)
        os.close(w)
        test.addCleanup(lambda: self.proc.poll() is None and (self.proc.kill(), self.proc.wait()))
        self.fd = r
        self.rate = rate
        self.data = bytearray()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        chunk = 4096
        while True:
            b = os.read(self.fd, chunk)
            if not b:
                break
            self.data += b
            if self.rate:
                time.sleep(len(b) / self.rate)
        os.close(self.fd)

    def finish(self, timeout=120):
        code = self.proc.wait(timeout)
        self.thread.join(timeout)
        self.stderr = self.proc.stderr.read().decode(errors="replace")
        self.proc.stderr.close()
        self.records = [json.loads(line) for line in self.data.decode().splitlines()]
        return code

    def of(self, event, task=None):
        return [r for r in self.records if r["event"] == event and (task is None or r["task"] == task)]


def lines_of(records):
    """The text of each line, parts put together."""
    lines, cur = [], None
    for r in records:
        if "part" not in r:
            lines.append(r["msg"])
            continue
        cur = (cur or "") + r["msg"]
        if not r["continued"]:
            lines.append(cur)
            cur = None
    return lines


class Output(unittest.TestCase):
    def test_finding1_output_read_to_eof_with_a_slow_sink(self):
        """Finding 1: a command that exits with output still in its pipe
        (the log read at about 650 KB/s) loses none of it, and the run's
        end comes after its last line."""
        d = SlowReader(self, config("seq 1 20000"), rate=650_000)
        self.assertEqual(d.finish(), 0)
        out = d.of("output", "job")
        self.assertEqual([r["msg"] for r in out], [str(i) for i in range(1, 20001)], "every line, in order")
        end = d.of("finished", "job")
        self.assertEqual(len(end), 1)
        self.assertGreater(d.records.index(end[0]), d.records.index(out[-1]), "finished after the last line")

    def test_finding1_a_silent_leftover_does_not_hold_the_run(self):
        """Finding 1's limit: pipes held open after the exit by a process
        the run left behind, silent, do not hold the run's end forever;
        what was written before the exit is all there."""
        d = SlowReader(self, config("sleep 30 & echo $!; seq 1 3"))
        try:
            self.assertEqual(d.finish(timeout=30), 0)
        finally:
            for r in d.of("output", "job")[:1]:
                try:
                    os.kill(int(r["msg"]), signal.SIGKILL)
                except (OSError, ValueError):
                    pass
        out = [r["msg"] for r in d.of("output", "job")]
        self.assertEqual(out[1:], ["1", "2", "3"])
        self.assertEqual(len(d.of("finished", "job")), 1)

    def test_finding2_a_long_line_arrives_whole_in_parts(self):
        """Finding 2: a line of 1,000 bytes 0x01 keeps every byte, in
        records that say they are parts of one line."""
        d = SlowReader(self, config("head -c 1000 /dev/zero | tr '\\0' '\\1'; echo; echo after"))
        self.assertEqual(d.finish(), 0)
        out = d.of("output", "job")
        parts = [r for r in out if "part" in r]
        self.assertGreater(len(parts), 1, "a long line goes in several records")
        self.assertEqual([r["part"] for r in parts], list(range(1, len(parts) + 1)))
        self.assertEqual([r["continued"] for r in parts], [1] * (len(parts) - 1) + [0])
        self.assertEqual(lines_of(out), ["\\x01" * 1000, "after"])

    def test_finding3_nonblocking_stdout_read_slowly_loses_nothing(self):
        """Finding 3: stdout set O_NONBLOCK and read slowly: no record
        vanishes on EAGAIN; the daemon waits for the sink instead."""
        childenv.skip_if_emulated(self, "no PR_SET_CHILD_SUBREAPER, whose warning is a second started record")
        d = SlowReader(self, config("seq 1 5000"), rate=200_000, nonblocking=True)
        self.assertEqual(d.finish(), 0)
        self.assertEqual([r["msg"] for r in d.of("output", "job")], [str(i) for i in range(1, 5001)])
        for event in ("started", "finished", "done", "exit"):
            self.assertEqual(len(d.of(event)), 1, f"the {event} record")

    def test_finding3_drop_is_counted_and_reported(self):
        """Finding 3, log_overflow = drop: what is dropped is counted in
        dropped records, and the daemon's own records all arrive."""
        childenv.skip_if_emulated(self, "no PR_SET_CHILD_SUBREAPER, whose warning is a second started record")
        d = SlowReader(self, config("seq 1 30000", daemon="log_overflow = drop"), rate=100_000, nonblocking=True)
        self.assertEqual(d.finish(), 0)
        got = len(d.of("output", "job"))
        dropped = sum(r["records"] for r in d.of("dropped"))
        self.assertGreater(dropped, 0, "a reader this slow makes drop drop")
        self.assertEqual(got + dropped, 30000, "every line is logged or counted")
        for event in ("started", "finished", "done", "exit"):
            self.assertEqual(len(d.of(event)), 1, f"the {event} record")

    def test_finding4_journal_without_journald_exits_74(self):
        """Finding 4: --log journal with no journald is said on stderr and
        evtaskd exits 74 before running anything."""
        if os.path.exists("/run/systemd/journal/socket"):
            self.skipTest("journald runs here")
        with tempfile.NamedTemporaryFile("w", suffix=".conf") as f:
            f.write(config("echo hi"))
            f.flush()
            p = subprocess.run([EVTASKD, "--config", f.name, "--log", "journal"], capture_output=True, timeout=30,
                               preexec_fn=childenv.default_signals)
        if b"not supported by this build" in p.stderr:
            self.skipTest("built without libsystemd")
        self.assertEqual(p.returncode, EX_IOERR, p.stderr)
        self.assertIn(b"journald is not reachable", p.stderr)

    def test_finding4_a_sink_that_fails_exits_74(self):
        """Finding 4: the log's reader goes away (EPIPE): said on stderr,
        the jobs are stopped, and evtaskd exits 74."""
        with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
            f.write(config("while :; do echo x; sleep 0.01; done"))
        self.addCleanup(os.unlink, f.name)
        r, w = os.pipe()
        proc = subprocess.Popen([EVTASKD, "--config", f.name, "--log", "json"], stdout=w, stderr=subprocess.PIPE,
                                preexec_fn=childenv.default_signals)
        os.close(w)
        self.addCleanup(lambda: proc.poll() is None and (proc.kill(), proc.wait()))
        seen = b""
        while b'"event":"output"' not in seen:
            b = os.read(r, 4096)
            self.assertTrue(b, "no output record")
            seen += b
        os.close(r)
        code = proc.wait(30)
        stderr = proc.stderr.read().decode(errors="replace")
        proc.stderr.close()
        self.assertEqual(code, EX_IOERR, stderr)
        self.assertIn("cannot write the log to stdout", stderr)

    def test_finding5_stopped_past_the_drain_deadline_loses_no_line(self):
        """Finding 5: the daemon SIGSTOPped past drain_timeout while a
        shielded run finishes: after SIGCONT its last line and its end are
        logged, and nothing is forced."""
        tmp = tempfile.TemporaryDirectory(prefix="evtaskd-output-")
        self.addCleanup(tmp.cleanup)
        go = os.path.join(tmp.name, "go")
        cmd = f"echo ready; while [ ! -e {go} ]; do sleep 0.01; done; echo last"
        d = T.Daemon(config(cmd, "shield = yes", "drain_timeout = 200ms"))
        self.addCleanup(lambda: d.proc.poll() is None and (d.proc.kill(), d.proc.wait()))
        self.addCleanup(lambda: os.path.exists(d.conf.name) and os.unlink(d.conf.name))
        run = d.event("run", "job")
        d.wait_for(lambda r: r["event"] == "output" and r["msg"] == "ready", what="ready")
        d.kill(signal.SIGTERM)
        draining = d.event("draining")
        os.kill(d.proc.pid, signal.SIGSTOP)
        self.addCleanup(lambda: d.proc.poll() is None and os.kill(d.proc.pid, signal.SIGCONT))
        open(go, "w").close()
        # The run ends while the daemon is stopped (a zombie: not reaped),
        # and the deadline passes.
        deadline = time.monotonic() + 10
        while True:
            with open(f"/proc/{run['pid']}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    break
            self.assertLess(time.monotonic(), deadline, "the run did not end")
            time.sleep(0.01)
        while T.now_us() - draining["mono_us"] < 600_000:
            time.sleep(0.05)
        os.kill(d.proc.pid, signal.SIGCONT)
        self.assertEqual(d.finish(), 0, d.records[-10:])
        self.assertEqual([r["msg"] for r in d.of("output", "job")], ["ready", "last"])
        self.assertEqual(len(d.of("finished", "job")), 1)
        self.assertEqual(d.of("forced"), [])

    def test_finding6_backslash_and_c1_escaped(self):
        """Finding 6: the text \\x01 and the byte 0x01 give different
        records; a C1 control (U+009B) is escaped, in JSON and on the
        console."""
        cmd = "printf '%s|\\001|\\302\\233|\\n' '\\x01'"
        d = SlowReader(self, config(cmd))
        self.assertEqual(d.finish(), 0)
        self.assertEqual([r["msg"] for r in d.of("output", "job")], ["\\\\x01|\\x01|\\xc2\\x9b|"])
        with tempfile.NamedTemporaryFile("w", suffix=".conf") as f:
            f.write(config(cmd))
            f.flush()
            p = subprocess.run([EVTASKD, "--config", f.name, "--log", "console"], capture_output=True, timeout=30,
                               preexec_fn=childenv.default_signals)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"output: \\\\x01|\\x01|\\xc2\\x9b|\n", p.stderr)
        self.assertNotIn(b"\xc2\x9b", p.stderr)

    def test_finding14_escape_hatch_with_a_full_stdout(self):
        """Finding 14: stdout a full pipe nobody reads (`evtaskd --log json
        | less`, unscrolled): the third SIGTERM still ends the daemon at
        once (128 + 15)."""
        with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
            f.write(config("yes"))
        self.addCleanup(os.unlink, f.name)
        r, w = os.pipe()
        self.addCleanup(os.close, r)
        proc = subprocess.Popen([EVTASKD, "--config", f.name, "--log", "json"], stdout=w,
                                stderr=subprocess.DEVNULL, preexec_fn=childenv.default_signals)
        # A description of our own, to see the pipe fill: O_NONBLOCK on
        # it does not reach the daemon's.
        probe = os.open(f"/proc/self/fd/{w}", os.O_WRONLY | os.O_NONBLOCK)
        os.close(w)
        self.addCleanup(os.close, probe)
        self.addCleanup(lambda: proc.poll() is None and (proc.kill(), proc.wait()))
        poller = select.poll()
        poller.register(probe, select.POLLOUT)
        deadline = time.monotonic() + 10
        while poller.poll(0):
            self.assertLess(time.monotonic(), deadline, "stdout never filled")
            time.sleep(0.01)
        for _ in range(3):
            proc.send_signal(signal.SIGTERM)
            self.assertTrue(childenv.wait_delivered(proc.pid, signal.SIGTERM))
        try:
            code = proc.wait(10)
        except subprocess.TimeoutExpired:
            self.fail("the third SIGTERM did not end evtaskd: its handler blocked on the full stdout")
        self.assertEqual(code, 128 + signal.SIGTERM)


class Budget(unittest.TestCase):
    """Output budgets (issue 23): output_rate and output_burst hold a chatty
    job's lines back, count them in suppressed records, and never hold back
    a record of the daemon's own; output = discard drains the pipes."""

    def test_budget_counts_what_it_holds_back(self):
        """100,000 lines under 100/s with a burst of 50: a few hundred are
        logged, the rest counted, none lost from the sum; every lifecycle
        record of every task is there."""
        text = config("seq 1 100000", "output_rate = 100/s\noutput_burst = 50")
        text += "[task.quiet]\nkind = exec\ncommand = echo one\n\n[task.tick]\nkind = ticker\nspeed = 100\nsteps = 5\n"
        d = SlowReader(self, text)
        self.assertEqual(d.finish(), 0, d.stderr)
        out = d.of("output", "job")
        suppressed = d.of("suppressed", "job")
        end = d.of("finished", "job")
        self.assertEqual(len(end), 1)
        # The burst, plus the rate over the run's life, plus one token of
        # rounding.
        allowed = 50 + 100 * end[0]["duration_ms"] / 1000 + 1
        self.assertGreaterEqual(len(out), 50, "the burst gets through")
        self.assertLessEqual(len(out), allowed, "no more than the budget")
        self.assertEqual([r["msg"] for r in out[:50]], [str(i) for i in range(1, 51)], "the first lines, in order")
        self.assertTrue(suppressed, "what was held back is reported")
        self.assertEqual(len(out) + sum(r["records"] for r in suppressed), 100000, "every line logged or counted")
        self.assertGreater(d.records.index(end[0]), d.records.index(suppressed[-1]), "reported before the end")
        self.assertEqual(d.of("dropped"), [])
        self.assertEqual([r["msg"] for r in d.of("output", "quiet")], ["one"])
        for event, task in (("run", "job"), ("run", "quiet"), ("finished", "quiet"), ("spawned", "tick"),
                            ("finished", "tick"), ("done", None), ("exit", None)):
            self.assertEqual(len(d.of(event, task)), 1, f"the {event} record of {task}")
        self.assertEqual(len(d.of("step", "tick")), 5)

    def test_one_report_per_interval(self):
        """Output over 2.5 s under a budget: the suppressed records come at
        least a second apart (but the last, at the run's end)."""
        cmd = "for i in $(seq 1 25); do seq 1 200; sleep 0.1; done"
        d = SlowReader(self, config(cmd, "output_rate = 10/s"))
        self.assertEqual(d.finish(), 0, d.stderr)
        suppressed = d.of("suppressed", "job")
        self.assertGreaterEqual(len(suppressed), 3, "a report a second over 2.5 s, and one at the end")
        gaps = [b["mono_us"] - a["mono_us"] for a, b in zip(suppressed, suppressed[1:-1])]
        self.assertTrue(all(g >= 950_000 for g in gaps), f"reports closer than a second: {gaps}")
        self.assertEqual(len(d.of("output", "job")) + sum(r["records"] for r in suppressed), 5000)

    def test_discard_drains_without_the_log(self):
        """output = discard: 20 MB written to a log read at 2 KB/s ends at
        once (its pipes are read, not the log waited for), and nothing of it
        is logged."""
        d = SlowReader(self, config("head -c 20000000 /dev/zero; echo; yes | head -n 100000", "output = discard"),
                       rate=2000)
        self.assertEqual(d.finish(), 0, d.stderr)
        self.assertEqual(d.of("output"), [])
        self.assertEqual(d.of("suppressed"), [])
        self.assertEqual(len(d.of("finished", "job")), 1)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1] + sys.argv[1:], verbosity=2)
