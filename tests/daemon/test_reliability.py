#!/usr/bin/env python3
"""Reliability of evtaskd: the real binary under signal storms, squeezed
resource limits and hostile input.

Run by meson (`meson test --suite reliability`), one class per meson test,
with EVTASKD set to the built daemon. Each test prints the figures it
measured on lines starting with "FIGURE" (`meson test -v` shows them; so
does meson-logs/testlog.txt). Tests that switch users or lower another
user's limits need root and skip otherwise; those that squeeze RLIMIT_AS
skip under AddressSanitizer, which reserves terabytes of address space.
"""
import errno
import json
import os
import random
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import types
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_evtaskd as T  # noqa: E402  (the Daemon helper and its conventions)
import childenv  # noqa: E402  (the signal state of every child; on the path through T)

EVTASKD = T.EVTASKD
AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def figure(test, **values):
    print("FIGURE", test, " ".join(f"{k}={v}" for k, v in values.items()), file=sys.stderr, flush=True)


def sanitized():
    """True for a build under AddressSanitizer (RLIMIT_AS cannot be squeezed)."""
    with open(EVTASKD, "rb") as f:
        return b"__asan_init" in f.read()


def nobody_can_run_evtaskd():
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        return False
    p = subprocess.run([*AS_NOBODY, EVTASKD, "--version"], capture_output=True)
    return p.returncode == 0


def proc_status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return line.split(":", 1)[1].strip()
    raise KeyError(key)


def vm_kb(pid, key="VmRSS"):
    return int(proc_status(pid, key).split()[0])


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def blocked(pid, sig):
    """Whether pid's main thread has sig blocked (its SigBlk mask)."""
    try:
        return bool(int(proc_status(pid, "SigBlk"), 16) & (1 << (sig - 1)))
    except (OSError, KeyError):
        return False


def has_open(pid, path):
    """Whether pid has path open (evtaskd reading its config: main runs)."""
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            if os.readlink(f"/proc/{pid}/fd/{fd}") == path:
                return True
    except OSError:
        pass
    return False


def write(path, text, mode=0o644):
    with open(path, "wb") as f:
        f.write(text.encode() if isinstance(text, str) else text)
    os.chmod(path, mode)


def replace(path, text):
    """Writes path atomically: a reload sees the old file or the new one."""
    tmp = path + ".new"
    write(tmp, text)
    os.rename(tmp, path)


def tickers(n, speed, head="[daemon]\n"):
    return head + "".join(f"[task.t{i}]\nkind = ticker\nspeed = {speed}\n\n" for i in range(n))


def sleepers(n, duration, head="[daemon]\nexit_when_done = yes\n"):
    return head + "".join(f"[task.s{i}]\nkind = sleep\nduration = {duration}\n\n" for i in range(n))


# Another process that sends signals as fast as it can (or with a gap
# between rounds) and prints how long that took.
SENDER = r"""
import os, signal, sys, time
pid, rounds, gap = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
sigs = [getattr(signal, s) for s in sys.argv[4].split(",")]
t0 = time.monotonic()
for _ in range(rounds):
    for s in sigs:
        os.kill(pid, s)
    if gap:
        time.sleep(gap)
print(f"{time.monotonic() - t0:.6f}")
"""


def start_sender(pid, rounds, sigs, gap=0.0):
    return subprocess.Popen([sys.executable, "-c", SENDER, str(pid), str(rounds), str(gap), ",".join(sigs)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_sender(sender, timeout=120):
    out, err = sender.communicate(timeout=timeout)
    assert sender.returncode == 0, err
    return float(out)


class Evtaskd(T.Daemon):
    """test_evtaskd's Daemon, with its config in a directory of its own (so
    that the file can be deleted, replaced or made unreadable, and read by
    nobody), a command prefix (setpriv), a preexec_fn (rlimits), and the
    bytes of its log counted."""

    def __init__(self, config_text, prefix=(), args=(), env=None, preexec_fn=None):
        self.dir = tempfile.mkdtemp(prefix="evtaskd-rel-")
        os.chmod(self.dir, 0o755)
        self.conf = types.SimpleNamespace(name=os.path.join(self.dir, "evtaskd.conf"))
        write(self.conf.name, config_text)
        self.records = []
        self.bad_lines = []
        self.bytes = 0
        self.cond = threading.Condition()

        def child_setup():
            childenv.default_signals()
            if preexec_fn:
                preexec_fn()

        self.proc = subprocess.Popen([*prefix, EVTASKD, "--config", self.conf.name, "--log", "json", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                     preexec_fn=child_setup)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def after(self, mark, pred, timeout=10.0, what="a record"):
        """The first record from index mark on that pred accepts."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for rec in self.records[mark:]:
                    if pred(rec):
                        return rec
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self.reader.is_alive()):
                    raise AssertionError(f"no {what} within {timeout}s; last records: {self.records[-10:]}")
                self.cond.wait(min(left, 0.05))

    def since(self, mark, event, task=None):
        return [r for r in self.records[mark:] if r["event"] == event and (task is None or r["task"] == task)]

    def settle(self, events=("signal",), quiet=1.0, timeout=60.0):
        """Waits until no record of these events has come for `quiet` seconds."""
        deadline = time.monotonic() + timeout
        count, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            with self.cond:
                now = sum(1 for r in self.records if r["event"] in events)
            if now != count:
                count, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return
            time.sleep(0.05)
        raise AssertionError(f"still logging {events} after {timeout}s")

    def table(self, timeout=30.0):
        """Asks for the task table (SIGUSR1): its header and rows."""
        mark = len(self.records)
        self.kill(signal.SIGUSR1)
        header = self.after(mark, lambda r: r["event"] == "task-table" and r["task"] is None, timeout,
                            "a task table")
        first = self.records.index(header) + 1
        if header["tasks"] > 0:
            self.after(first + header["tasks"] - 1, lambda r: True, timeout, "the table's rows")
        return header, self.records[first:first + header["tasks"]]

    def remove_config(self):
        pass  # with its directory, in cleanup

    def cleanup(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(5)
        for f in (self.proc.stdout, self.proc.stderr):
            if not f.closed:
                f.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class ReliabilityTest(T.DaemonTest):
    def start(self, text, **kw):
        d = Evtaskd(text, **kw)
        self.addCleanup(d.cleanup)
        return d

    def stop(self, d, bound=20.0, code=0):
        """SIGTERM: the daemon drains and exits with `code` within `bound` seconds."""
        sent = time.monotonic()
        d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(bound + 10), code, d.stderr[-2000:])
        took = time.monotonic() - sent
        self.assertLess(took, bound)
        self.assertNotRegex(d.stderr, r"Sanitizer|runtime error:")
        self.assert_clean_log(d)
        self.assertEqual(d.of("exit")[-1]["exit_code"], code)
        return took

    def check_tables(self, d):
        """Every SIGUSR1 acted on wrote one whole table: a header and one row
        per task right after it, nothing else in between."""
        recs = d.records
        headers = [i for i, r in enumerate(recs) if r["event"] == "task-table" and r["task"] is None]
        usr1 = [r for r in d.of("signal") if r["signal"] == "SIGUSR1"]
        self.assertEqual(len(headers), len(usr1), "one table per SIGUSR1 acted on")
        rows = 0
        for i in headers:
            n = recs[i]["tasks"] + recs[i]["blocking_calls"]
            body = recs[i + 1:i + 1 + n]
            self.assertEqual(len(body), n)
            self.assertTrue(all(r["event"] == "task-table" and r["task"] is not None for r in body),
                            "a table cut or interleaved")
            rows += n
        self.assertEqual(len(d.of("task-table")), len(headers) + rows, "a table row outside its table")
        return len(headers), rows

    def check_no_step_while_paused(self, d):
        paused = False
        for r in d.records:
            if r["event"] == "paused":
                paused = True
            elif r["event"] == "resumed":
                paused = False
            elif r["event"] == "step":
                self.assertFalse(paused, f"a step while paused: {r}")


# ---------------------------------------------------------------------------


class Storm(ReliabilityTest):
    """Signals as fast as another process can send them."""

    TASKS = 1000
    ROUNDS = 10_000

    def test_sigint_and_usr1_storm(self):
        d = self.start(tickers(self.TASKS, 2))
        d.wait_for(lambda r: r["event"] == "spawned" and r["task"] == f"t{self.TASKS - 1}", timeout=60)
        d.event("step", f"t{self.TASKS - 1}", timeout=10)  # every task has run: its stack is in
        pid = d.proc.pid
        rss_before = vm_kb(pid)
        records_before = len(d.records)

        sender = start_sender(pid, self.ROUNDS, ["SIGINT", "SIGUSR1"])
        send_s = finish_sender(sender)
        t0 = time.monotonic()
        d.settle(("signal", "task-table", "paused", "resumed"))
        settle_s = time.monotonic() - t0 - 1.0
        self.assertIsNone(d.proc.poll(), "the daemon died in the storm")
        rss_after = vm_kb(pid)

        ints = [r for r in d.of("signal") if r["signal"] == "SIGINT"]
        usr1 = [r for r in d.of("signal") if r["signal"] == "SIGUSR1"]
        actions = [r["action"] for r in ints]
        # Standard signals coalesce while pending: fewer arrive than were
        # sent, but each one that arrives is acted on exactly once, in turn.
        self.assertGreater(len(ints), 0)
        self.assertLessEqual(len(ints), self.ROUNDS)
        self.assertGreater(len(usr1), 0)
        self.assertLessEqual(len(usr1), self.ROUNDS)
        self.assertEqual(actions, ["pause", "resume"] * (len(actions) // 2) + ["pause"] * (len(actions) % 2))
        self.assertEqual(len(d.of("paused")), actions.count("pause"))
        self.assertEqual(len(d.of("resumed")), actions.count("resume"))
        for r in ints + usr1:
            # 0: the handler's record did not fit in the self-pipe (the
            # signal is still acted on, from the handler's count).
            self.assertIn(r["sender_pid"], (sender.pid, 0))

        # The final state is the parity of the SIGINTs acted on, and the
        # tasks behave accordingly.
        paused = len(ints) % 2 == 1
        header, rows = d.table()
        self.assertEqual(header["paused"], int(paused))
        self.assertEqual(header["tasks"], self.TASKS)
        self.assertEqual(len(rows), self.TASKS)
        mark = len(d.records)
        if paused:
            time.sleep(1.2)  # two steps of every ticker, were it running
            self.assertEqual(d.since(mark, "step"), [], "a step while paused")
        else:
            d.after(mark, lambda r: r["event"] == "step", 5, "a step")
        self.check_no_step_while_paused(d)
        tables, table_rows = self.check_tables(d)
        self.assertLess(rss_after - rss_before, 64 * 1024, "memory grew in the storm")

        took = self.stop(d, bound=15)
        figure("storm", tasks=self.TASKS, sent_sigint=self.ROUNDS, sent_sigusr1=self.ROUNDS,
               send_s=f"{send_s:.3f}", acted_sigint=len(ints), acted_sigusr1=len(usr1),
               final="paused" if paused else "running", settle_s=f"{max(settle_s, 0):.2f}",
               tables=tables, table_rows=table_rows, records=len(d.records) - records_before,
               log_mb=f"{d.bytes / 1e6:.1f}", rss_kb_before=rss_before, rss_kb_after=rss_after,
               sigterm_to_exit_s=f"{took:.2f}")

    def test_paced_usr1_floods_the_log_but_stays_responsive(self):
        """SIGUSR1 paced so that most arrive: each writes a whole table (one
        record per task), and the loop keeps stepping and answering."""
        tasks, rounds = 200, 1000
        d = self.start(tickers(tasks, 5))
        d.wait_for(lambda r: r["event"] == "spawned" and r["task"] == f"t{tasks - 1}", timeout=30)
        d.event("step", timeout=10)
        bytes_before, t0 = d.bytes, time.monotonic()
        send_s = finish_sender(start_sender(d.proc.pid, rounds, ["SIGUSR1"], gap=0.001))
        d.settle(("signal", "task-table"))
        flood_s = time.monotonic() - t0 - 1.0
        tables, rows = self.check_tables(d)
        self.assertGreater(tables, 0)
        self.assertLessEqual(tables, rounds)
        self.assertEqual(rows, tables * tasks)
        # The loop kept going through the flood: steps between the tables.
        first = d.records.index(next(r for r in d.records if r["event"] == "task-table"))
        steps = [r["mono_us"] for r in d.records[first:] if r["event"] == "step"]
        self.assertGreater(len(steps), 0)
        gaps = [b - a for a, b in zip(steps, steps[1:])]
        self.assertLess(max(gaps, default=0), 5_000_000, "the loop stalled for seconds")
        mark = len(d.records)
        d.kill(signal.SIGINT)
        d.after(mark, lambda r: r["event"] == "paused", 30, "the pause")
        took = self.stop(d, bound=15)
        figure("usr1-flood", tasks=tasks, sent_sigusr1=rounds, send_s=f"{send_s:.2f}", tables=tables,
               table_records=tables * (tasks + 1), flood_log_mb=f"{(d.bytes - bytes_before) / 1e6:.1f}",
               flood_s=f"{flood_s:.2f}", max_step_gap_ms=max(gaps, default=0) // 1000,
               sigterm_to_exit_s=f"{took:.2f}")


# ---------------------------------------------------------------------------


EXEC_JOBS = """[daemon]
threads = 2

[task.quick]
kind = exec
command = echo quick
schedule = always
restart_sec = 50ms

[task.both]
kind = exec
command = sh -c 'echo out; echo err >&2'
schedule = interval
interval = 100ms

[task.tick]
kind = ticker
speed = 20
"""


class Limits(ReliabilityTest):
    """Resource exhaustion on the daemon's side: a run or a task that cannot
    get what it needs fails, logged with the cause; the rest runs on."""

    def min_fds(self, pid, samples=30):
        """The daemon's open fds when no run holds pipes: the least of a few looks."""
        seen = []
        for _ in range(samples):
            seen.append(open_fds(pid))
            time.sleep(0.05)
        return min(seen)

    def runs_succeed_again(self, d, mark, jobs=("quick", "both"), n=2, timeout=20):
        for job in jobs:
            d.after(mark, lambda r, job=job: r["event"] == "finished" and r["task"] == job
                    and len(d.since(mark, "finished", job)) >= n, timeout, f"{n} runs of {job}")

    def test_nofile(self):
        d = self.start(EXEC_JOBS)
        pid = d.proc.pid
        d.wait_for(lambda r: r["event"] == "finished" and r["task"] == "quick" and r["run"] >= 3)
        soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        base = self.min_fds(pid)
        mark = len(d.records)
        # No fd to spare, then one, two, three: the first pipe, the second,
        # or the child's /dev/null is what fails.
        for spare in range(4):
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (base + spare, hard))
            time.sleep(0.6)
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
        squeezed = d.records[mark:]
        raised = len(d.records)
        failed = [r for r in squeezed if r["event"] == "failed" and r["task"] in ("quick", "both")]
        self.assertGreater(len(failed), 0, "no run failed with no fd to spare")
        for r in failed:
            self.assertIn("cannot start", r["msg"])
            self.assertIn(os.strerror(errno.EMFILE), r["msg"])
        self.assertGreaterEqual(len([r for r in squeezed if r["event"] == "step"]), 20,
                                "the ticker stopped while fds ran out")
        self.runs_succeed_again(d, raised)
        self.assertEqual(self.min_fds(pid), base, "fds leaked by the failed runs")
        self.stop(d)
        figure("nofile", base_fds=base, limits=f"{base}..{base + 3}", failed_runs=len(failed),
               other_failures=len([r for r in squeezed if r["event"] == "failed"]) - len(failed))

    def test_address_space_at_run_time(self):
        childenv.skip_if_emulated(self, "RLIMIT_AS would bound qemu itself, and VmSize in /proc is qemu's")
        if sanitized():
            self.skipTest("AddressSanitizer reserves the address space RLIMIT_AS would squeeze")
        d = self.start(EXEC_JOBS)
        pid = d.proc.pid
        d.wait_for(lambda r: r["event"] == "finished" and r["task"] == "quick" and r["run"] >= 3)
        vmsize = vm_kb(pid, "VmSize") * 1024
        mark = len(d.records)
        resource.prlimit(pid, resource.RLIMIT_AS, (vmsize, resource.RLIM_INFINITY))
        time.sleep(1)
        added = [f"new{i}" for i in range(20)]
        replace(d.conf.name, EXEC_JOBS + "".join(f"[task.{n}]\nkind = sleep\nduration = 1h\n\n" for n in added)
                + "[task.crunch]\nkind = blocking\nduration = 300ms\ncheck_every = 100ms\n")
        d.kill(signal.SIGHUP)
        outcome = d.after(mark, lambda r: r["event"] in ("reloaded", "reload-failed"), 10, "the reload's end")
        time.sleep(2.5)  # unstarted tasks are reported within a second
        header, rows = d.table()
        alive = {r["task"] for r in rows}
        squeezed = d.records[mark:]
        resource.prlimit(pid, resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        raised = len(d.records)

        self.assertIsNone(d.proc.poll(), "the daemon died with its address space full")
        failed_runs = [r for r in squeezed if r["event"] == "failed" and r["task"] == "quick"]
        self.assertGreater(len(failed_runs), 0)
        for r in failed_runs:
            self.assertIn(os.strerror(errno.ENOMEM), r["msg"])
        self.assertIn("tick", alive)
        if outcome["event"] == "reload-failed":
            self.assertIn("out of memory", outcome["msg"])
        else:
            # No task vanishes: each added one runs, or its failure is logged.
            for name in added + ["crunch"]:
                ends = [r for r in squeezed if r["task"] == name and r["event"] in ("failed", "finished")]
                self.assertTrue(name in alive or ends, f"task {name} vanished without a record")
                for r in ends:
                    if r["event"] == "failed":
                        self.assertIn(r["result"], (-errno.ENOMEM, -errno.EAGAIN), r)
        self.runs_succeed_again(d, raised, jobs=("quick",))
        self.stop(d)
        figure("as-runtime", as_kb=vmsize // 1024, failed_runs=len(failed_runs), reload=outcome["event"],
               added_alive=len([n for n in added if n in alive]),
               added_failed=len([r for r in squeezed if r["event"] == "failed" and r["task"] in added]),
               crunch=[r["msg"] for r in squeezed if r["task"] == "crunch" and r["event"] == "failed"])

    def test_address_space_at_start(self):
        """Started under ever smaller RLIMIT_AS: it runs, or exits 71 saying
        why (or the loader refuses, 127); never a crash, never a task that
        vanishes without a record."""
        childenv.skip_if_emulated(self, "RLIMIT_AS would bound qemu itself, which then cannot map the program")
        if sanitized():
            self.skipTest("AddressSanitizer reserves the address space RLIMIT_AS would squeeze")
        probe = self.start(sleepers(1, "1h"))
        probe.event("spawned")
        base_kb = vm_kb(probe.proc.pid, "VmSize")
        self.stop(probe)
        cases = [(300, extra) for extra in (512, 2048, 4096, 8192, 12288)] + \
                [(5000, extra) for extra in (0, 512, 1024)]
        results = []
        for n, extra in cases:
            limit = (base_kb + extra) * 1024
            d = self.start(sleepers(n, "200ms"),
                           preexec_fn=lambda limit=limit: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)))
            code = d.finish(60)
            with self.subTest(tasks=n, limit_kb=base_kb + extra):
                self.assertEqual(d.bad_lines, [])
                self.assertIn(code, (0, 71, 127), d.stderr[-2000:])
                if code == 127:
                    self.assertIn("error while loading shared libraries", d.stderr)
                    self.assertEqual(d.records, [])
                if code == 71:
                    self.assertTrue(d.stderr.strip() or d.of("failed"), "exit 71 without a word why")
                if code in (0, 71) and d.records:
                    ended = {r["task"] for r in d.records if r["event"] in ("finished", "failed", "forced", "cancelled")}
                    lost = [r["task"] for r in d.of("spawned") if r["task"] not in ended]
                    self.assertEqual(lost, [], "tasks that vanished without a record")
            results.append(f"{n}@{base_kb + extra}K:{code}/{len(d.of('finished'))}ok/{len(d.of('failed'))}failed"
                           + (f"/'{d.stderr.strip()[:60]}'" if d.stderr.strip() else ""))
        figure("as-start", base_kb=base_kb, results=",".join(results))

    def test_threads_and_processes(self):
        """RLIMIT_NPROC as nobody: runs fail with EAGAIN, a blocking job whose
        thread cannot start fails with EAGAIN, logged; all recover."""
        if not nobody_can_run_evtaskd() or not shutil.which("prlimit"):
            self.skipTest("needs root, setpriv, prlimit, and a build nobody can run")
        d = self.start(EXEC_JOBS, prefix=AS_NOBODY)
        pid = d.proc.pid
        d.wait_for(lambda r: r["event"] == "finished" and r["task"] == "quick" and r["run"] >= 3)
        self.assertEqual(proc_status(pid, "Uid").split()[0], "65534")
        nproc = lambda soft: subprocess.run([*AS_NOBODY, "prlimit", f"--pid={pid}", f"--nproc={soft}:"],
                                            check=True, capture_output=True)
        _, hard = resource.getrlimit(resource.RLIMIT_NPROC)
        mark = len(d.records)
        nproc(1)
        time.sleep(0.5)
        blocking = "[task.crunch]\nkind = blocking\nduration = 300ms\ncheck_every = 100ms\n"
        replace(d.conf.name, EXEC_JOBS + blocking)
        d.kill(signal.SIGHUP)
        crunch = d.after(mark, lambda r: r["task"] == "crunch" and r["event"] in ("failed", "finished"), 10,
                         "the blocking job's end")
        time.sleep(0.5)
        squeezed = d.records[mark:]
        nproc("unlimited" if hard == resource.RLIM_INFINITY else hard)
        raised = len(d.records)
        self.assertEqual(crunch["event"], "failed")
        self.assertEqual(crunch["result"], -errno.EAGAIN)
        self.assertIn(os.strerror(errno.EAGAIN), crunch["msg"])
        failed_runs = [r for r in squeezed if r["event"] == "failed" and r["task"] in ("quick", "both")]
        self.assertGreater(len(failed_runs), 0)
        for r in failed_runs:
            self.assertIn(os.strerror(errno.EAGAIN), r["msg"])
        self.assertGreater(len([r for r in squeezed if r["event"] == "step"]), 5)
        self.runs_succeed_again(d, raised)
        # The same config again: the blocking job, ended, starts anew, and
        # now gets its thread.
        d.kill(signal.SIGHUP)
        d.after(raised, lambda r: r["event"] == "finished" and r["task"] == "crunch", 10, "crunch's run")
        self.assertGreater(len(d.since(raised, "step", "crunch")), 0)
        self.stop(d)
        figure("nproc", failed_runs=len(failed_runs), crunch=crunch["msg"])


# ---------------------------------------------------------------------------


class Hostile(ReliabilityTest):
    """Broken and hostile input: a clear error (78, naming file, line and key
    where there is one) or a documented outcome, never a crash or a hang."""

    def tmp(self):
        d = tempfile.mkdtemp(prefix="evtaskd-hostile-")
        os.chmod(d, 0o755)
        self.addCleanup(shutil.rmtree, d, True)
        return d

    def check_rejected(self, path, line, *words, prefix=(), timeout=20):
        for extra in ([], ["--check-config"]):
            t0 = time.monotonic()
            p = subprocess.run([*prefix, EVTASKD, "--config", path, "--log", "json", *extra],
                               capture_output=True, timeout=timeout)
            took = time.monotonic() - t0
            err = p.stderr.decode(errors="replace")
            self.assertEqual(p.returncode, 78, err[-2000:])
            self.assertEqual(p.stdout, b"", "nothing starts on a bad config")
            self.assertIn(f"{path}:{line}:" if line else f"{path}:", err)
            for w in words:
                self.assertIn(w, err)
            self.assertEqual(err.count("\n"), 1, "one line of error")
        return took, err.strip()

    def test_bad_files(self):
        tmp = self.tmp()
        mib = 1 << 20
        task = "[task.a]\nkind = exec\n"
        cases = {
            "1mib-comment": (b"[daemon]\n# " + b"x" * mib + b"\n", 2, ["line longer than"]),
            "1mib-value": (b"[task.a]\nkind = ticker\nmessage = " + b"x" * mib + b"\n", 3, ["line longer than"]),
            "nul-in-key-line": (b"[task.a]\nkind = sle\0ep\nduration = 1s\n", 2, ["NUL byte"]),
            "nul-in-comment": (b"[daemon]\n#\0\n", 2, ["NUL byte"]),
            "unbalanced-quotes": ((task + "command = echo \"a 'b \"c' d\n").encode(), 3,
                                  ["key 'command'", "unterminated ' quote"]),
            "unterminated-double": ((task + "command = echo \"\\\n").encode(), 3,
                                    ["key 'command'", "unterminated \" quote"]),
            "trailing-backslash": ((task + "command = echo \\\n").encode(), 3, ["key 'command'", "backslash"]),
            "empty-program": ((task + "command = ''\n").encode(), 3, ["key 'command'", "not an executable"]),
            "directory-program": ((task + "command = /tmp\n").encode(), 3, ["key 'command'", "not an executable"]),
            "header-junk": (b"[task.[[[\"']]]\nkind = sleep\n", 1, []),
            "long-name": (("[task." + "n" * 100 + "]\nkind = sleep\nduration = 1s\n").encode(), 1, []),
            "random-bytes": (random.Random(7).randbytes(64 * 1024), None, []),
        }
        figures = {}
        for name, (content, line, words) in cases.items():
            path = os.path.join(tmp, name + ".conf")
            write(path, content)
            with self.subTest(case=name):
                took, err = self.check_rejected(path, line, *words)
                figures[name] = f"{took * 1000:.0f}ms"
        # 100 MiB on one line: rejected without reading it all.
        path = os.path.join(tmp, "100mib.conf")
        with open(path, "wb") as f:
            f.write(b"[daemon]\nlog = ")
            chunk = b"y" * mib
            for _ in range(100):
                f.write(chunk)
            f.write(b"\n")
        took, _ = self.check_rejected(path, 2, "line longer than")
        figures["100mib-line"] = f"{took * 1000:.0f}ms"
        os.unlink(path)
        # Paths that are not files of text.
        for name, path, words in (("directory", tmp, [os.strerror(errno.EISDIR)]),
                                  ("missing", os.path.join(tmp, "nope.conf"), [os.strerror(errno.ENOENT)]),
                                  ("dev-zero", "/dev/zero", ["not a regular file"])):
            with self.subTest(case=name):
                took, err = self.check_rejected(path, None, *words, timeout=20)
                figures[name] = f"{took * 1000:.0f}ms"
        figure("bad-files", **figures)

    def test_quotes_that_balance_reach_the_command(self):
        cmd = "printf '%s|' \"a 'b' c\" 'd \"e\" f' \"g\\\"h\" '' x\\ y"
        d = self.start("[daemon]\nexit_when_done = yes\n[task.q]\nkind = exec\ncommand = " + cmd + "\n")
        self.assertEqual(d.finish(), 0)
        self.assert_clean_log(d)
        self.assertEqual([r["msg"] for r in d.of("output", "q")], ["a 'b' c|d \"e\" f|g\"h||x y|"])

    def test_a_bom_and_crlf_are_fine(self):
        tmp = self.tmp()
        path = os.path.join(tmp, "crlf.conf")
        write(path, b"\xef\xbb\xbf[daemon]\r\nexit_when_done = yes\r\n[task.a]\r\nkind = sleep\r\nduration = 1s\r\n")
        p = subprocess.run([EVTASKD, "--config", path, "--check-config"], capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("1 tasks", p.stdout)

    def test_5000_tasks(self):
        tmp = self.tmp()
        path = os.path.join(tmp, "5k.conf")
        write(path, sleepers(5000, "1s"))
        t0 = time.monotonic()
        p = subprocess.run([EVTASKD, "--config", path, "--check-config"], capture_output=True, text=True, timeout=30)
        check_s = time.monotonic() - t0
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("5000 tasks", p.stdout)
        t0 = time.monotonic()
        d = self.start(sleepers(5000, "1s"))
        self.assertEqual(d.finish(60), 0, d.stderr[-2000:])
        run_s = time.monotonic() - t0
        self.assert_clean_log(d)
        self.assertEqual(len(d.of("spawned")), 5000)
        self.assertEqual(len(d.of("finished")), 5000)
        figure("5000-tasks", check_config_s=f"{check_s:.2f}", run_s=f"{run_s:.2f}", records=len(d.records))

    def test_unreadable_config_as_nobody(self):
        if not nobody_can_run_evtaskd():
            self.skipTest("needs root, setpriv, and a build nobody can run")
        tmp = self.tmp()
        path = os.path.join(tmp, "secret.conf")
        write(path, sleepers(1, "1s"), mode=0o000)
        self.check_rejected(path, None, os.strerror(errno.EACCES), prefix=AS_NOBODY)
        locked = os.path.join(tmp, "locked")
        os.mkdir(locked, 0o700)
        write(os.path.join(locked, "c.conf"), sleepers(1, "1s"))
        self.check_rejected(os.path.join(locked, "c.conf"), None, os.strerror(errno.EACCES), prefix=AS_NOBODY)

    # ---- reload (SIGHUP) of a file gone bad: the old config stays ----

    RUNNING = "[daemon]\n[task.a]\nkind = ticker\nspeed = 20\n[task.b]\nkind = sleep\nduration = 1h\n"

    def reload_fails(self, d, why, *words):
        mark = len(d.records)
        d.kill(signal.SIGHUP)
        failed = d.after(mark, lambda r: r["event"] in ("reloaded", "reload-failed"), 15, f"the reload ({why})")
        self.assertEqual(failed["event"], "reload-failed", why)
        for w in words:
            self.assertIn(w, failed["msg"], why)
        self.assertIn("still running the config loaded before", failed["msg"])
        d.after(mark, lambda r: r["event"] == "step" and r["task"] == "a"
                and d.records.index(r) > d.records.index(failed), 5, "a step after the failed reload")
        changes = [r for r in d.records[mark:] if r["event"] in ("added", "removed", "changed", "cancelled")]
        self.assertEqual(changes, [], why)
        return failed

    def test_reload_of_a_broken_file_keeps_the_old_config(self):
        d = self.start(self.RUNNING)
        path = d.conf.name
        d.event("spawned", "b")
        cases = [
            ("invalid value", lambda: replace(path, self.RUNNING.replace("speed = 20", "speed = fast")),
             [f"{path}:4:", "key 'speed'"]),
            ("NUL byte", lambda: replace(path, self.RUNNING.replace("speed", "sp\0eed")), [f"{path}:4:", "NUL"]),
            ("1 MiB line", lambda: replace(path, self.RUNNING + "# " + "z" * (1 << 20) + "\n"),
             [f"{path}:8:", "line longer than"]),
            ("deleted", lambda: os.unlink(path), [path, os.strerror(errno.ENOENT)]),
            ("a directory", lambda: os.mkdir(path), [path, os.strerror(errno.EISDIR)]),
            ("/dev/zero", lambda: (os.rmdir(path), os.symlink("/dev/zero", path)), [path, "not a regular file"]),
            ("a FIFO", lambda: (os.unlink(path), os.mkfifo(path)), [path, "not a regular file"]),
            ("a dangling symlink", lambda: (os.unlink(path), os.symlink(path + ".gone", path)),
             [path, os.strerror(errno.ENOENT)]),
        ]
        for why, mutate, words in cases:
            with self.subTest(case=why):
                mutate()
                self.reload_fails(d, why, *words)
        os.unlink(path)
        write(path, self.RUNNING.replace("speed = 20", "speed = 10"))
        mark = len(d.records)
        d.kill(signal.SIGHUP)
        done = d.after(mark, lambda r: r["event"] in ("reloaded", "reload-failed"), 15, "the good reload")
        self.assertEqual(done["event"], "reloaded", done)
        self.assertEqual((done["changed"], done["unchanged"]), (1, 1))
        self.stop(d)
        self.assertEqual(len(d.of("reload-failed")), len(cases))

    def test_reload_of_an_unreadable_file_as_nobody(self):
        if not nobody_can_run_evtaskd():
            self.skipTest("needs root, setpriv, and a build nobody can run")
        d = self.start(self.RUNNING, prefix=AS_NOBODY)
        d.event("spawned", "b")
        os.chmod(d.conf.name, 0o000)
        self.reload_fails(d, "unreadable", d.conf.name, os.strerror(errno.EACCES))
        os.chmod(d.dir, 0o700)
        os.chmod(d.conf.name, 0o644)
        self.reload_fails(d, "directory unreadable", d.conf.name, os.strerror(errno.EACCES))
        os.chmod(d.dir, 0o755)
        self.stop(d)

    # ---- signals at awkward moments ----

    STARTUP_TASKS = 3000  # a config that takes a while to read

    def start_and_signal(self, sig, wait_for_main):
        """Starts the daemon, sends sig after a random 0-20 ms (counted from
        main's start when wait_for_main, else from the exec), then SIGTERM
        once it runs. The outcome: 'handled', or 'default action' (killed by
        sig itself: sent before main could block it)."""
        d = self.start(sleepers(self.STARTUP_TASKS, "1h", head="[daemon]\n"))
        pid = d.proc.pid
        if wait_for_main:
            # main is reading the config; or, if that was too quick to see,
            # past it: SIGHUP is blocked (read from a signalfd), or, in a
            # build without one, the start is over (a record).
            deadline = time.monotonic() + 10
            while not has_open(pid, d.conf.name) and not blocked(pid, signal.SIGHUP) and not d.records:
                self.assertLess(time.monotonic(), deadline, "main never blocked the signals it handles")
                time.sleep(0.0002)
        time.sleep(random.uniform(0, 0.020))
        d.kill(sig)
        if sig == signal.SIGTERM:
            code = d.finish(30)
            if code == -sig:
                return "default action"
            self.assertEqual(code, 0, d.stderr[-2000:])
            self.assertEqual(d.of("signal")[0]["signal"], "SIGTERM")
            self.assert_clean_log(d)
            return "handled"
        try:
            d.wait_for(lambda r: r["event"] == "spawned" and r["task"] == f"s{self.STARTUP_TASKS - 1}", 20)
        except AssertionError:
            if d.proc.poll() == -sig:
                d.finish()
                return "default action"
            raise
        name = signal.Signals(sig).name
        d.wait_for(lambda r: r["event"] == "signal" and r["signal"] == name, 10, f"the {name} record")
        if sig == signal.SIGHUP:
            d.event("reloaded")
        if sig == signal.SIGINT:
            d.event("paused")
        self.stop(d)
        return "handled"

    def test_signals_during_start_up(self):
        childenv.skip_if_emulated(self, "the signal mask in /proc/PID/status is qemu's, not the daemon's")
        counts = {}
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            for wait_for_main, n in ((True, 12), (False, 12)):
                for _ in range(n):
                    outcome = self.start_and_signal(sig, wait_for_main)
                    key = f"{sig.name}-from-{'main' if wait_for_main else 'exec'}-{outcome.replace(' ', '-')}"
                    counts[key] = counts.get(key, 0) + 1
                    if wait_for_main:
                        # Once main has begun, every signal is acted on.
                        self.assertEqual(outcome, "handled", sig.name)
        figure("startup-signals", **counts)

    def test_hup_storm_with_a_changing_file_then_term(self):
        a = "[daemon]\n[task.x]\nkind = sleep\nduration = 1h\n[task.y]\nkind = ticker\nspeed = 1\n"
        b = "[daemon]\n[task.x]\nkind = sleep\nduration = 1h\n[task.z]\nkind = ticker\nspeed = 2\n"
        c = "[daemon]\n[task.x]\nkind = sleep\nduration = 1h\n[task.w]\nkind = sleep\nduration = 1h\n"
        d = self.start(a)
        d.event("spawned", "y")
        stop = threading.Event()

        def flip():
            while not stop.is_set():
                for text in (a, b):
                    replace(d.conf.name, text)
                    time.sleep(0.001)

        flipper = threading.Thread(target=flip)
        flipper.start()
        try:
            sender = start_sender(d.proc.pid, 2000, ["SIGHUP"], gap=0.0005)
            send_s = finish_sender(sender)
        finally:
            stop.set()
            flipper.join()
        replace(d.conf.name, c)
        mark = len(d.records)
        d.kill(signal.SIGHUP)
        d.after(mark, lambda r: r["event"] == "reloaded", 30, "the last reload")
        d.settle(("signal", "reloading", "reloaded", "reload-failed"))
        hups = [r for r in d.of("signal") if r["signal"] == "SIGHUP"]
        self.assertEqual(len(d.of("reloading")), len(hups))
        self.assertEqual(len(d.of("reloaded")) + len(d.of("reload-failed")), len(hups))
        self.assertEqual(d.of("reload-failed"), [], "an atomic rename never shows a half-written file")
        time.sleep(0.5)  # removed tasks end
        header, rows = d.table()
        self.assertEqual(sorted(r["task"] for r in rows), ["w", "x"], "the running tasks are the last config's")
        self.assertEqual(len(d.of("spawned", "x")), 1, "x, in every config, was left alone")
        # A burst of reloads, then SIGTERM right behind them.
        sender = start_sender(d.proc.pid, 300, ["SIGHUP"])
        finish_sender(sender)
        took = self.stop(d, bound=20)
        figure("hup-storm", sent=2000, send_s=f"{send_s:.3f}", acted=len(hups),
               added=len(d.of("added")), removed=len(d.of("removed")), sigterm_after_burst_s=f"{took:.2f}")


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1] + sys.argv[1:], verbosity=2)
