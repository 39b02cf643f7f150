#!/usr/bin/env python3
"""The examples, run as a user runs them: the real programs, real signals.

Run by meson (`meson test --suite examples`) with EXAMPLES set to the
directory of the built examples, one test class at a time. The Install
class (`--suite install`) installs the build into a temporary DESTDIR and
builds every example against that tree with pkg-config, as a user of the
installed library would; it needs MESON_BUILD_ROOT, MESON_SOURCE_ROOT and
MESON. Every line a program prints is kept with the moment it arrived, so
what came after a signal can be told from what came before.
"""
import glob
import os
import re
import shlex
import shutil
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

EXAMPLES = os.environ.get("EXAMPLES", "build/examples")
SOURCE_ROOT = os.environ.get("MESON_SOURCE_ROOT", ".")
BUILD_ROOT = os.environ.get("MESON_BUILD_ROOT", "build")
MESON = os.environ.get("MESON", "meson")
SANITIZE = os.environ.get("B_SANITIZE", "none")  # the build's b_sanitize
NAMES = ("race", "stop", "shutdown", "threads", "together", "lineserver", "pipeline")


class Program:
    """An example, running, with its stdout lines collected as they come."""

    def __init__(self, name, *args, program=None, env=None):
        cmd = [*childenv.WRAPPER, program or os.path.join(EXAMPLES, name), *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=env, preexec_fn=childenv.default_signals)
        self.lines = []  # (arrival time, text)
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append((time.monotonic(), line.rstrip("\n")))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def texts(self):
        with self.cond:
            return [text for _, text in self.lines]

    def wait_for(self, pattern, count=1, timeout=10.0):
        """The index of the count-th line that matches pattern."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                found = [i for i, (_, text) in enumerate(self.lines) if re.search(pattern, text)]
                if len(found) >= count:
                    return found[count - 1]
                left = deadline - time.monotonic()
                if left <= 0 or not self.reader.is_alive():
                    raise AssertionError(f"no line {pattern!r} (x{count}) within {timeout}s; "
                                         f"output: {self.texts()}")
                self.cond.wait(min(left, 0.05))

    def report(self):
        """Everything it printed, for a failure's message."""
        return "\n".join(["stdout:", *self.texts(), "stderr:", getattr(self, "stderr", "")])

    def at(self, index):
        return self.lines[index][0]

    def kill(self, sig):
        self.proc.send_signal(sig)

    def finish(self, timeout=20.0):
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"still running after {timeout}s; output: {self.texts()}")
        self.reader.join(5)
        self.stderr = self.proc.stderr.read()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return code


class ExampleTest(unittest.TestCase):
    def start(self, name, *args, **kw):
        p = Program(name, *args, **kw)
        self.addCleanup(lambda: p.proc.poll() is None and (p.proc.kill(), p.proc.wait()))
        return p

    def matching(self, p, pattern, start=0, end=None):
        """The matches of pattern in the lines from start to end."""
        texts = p.texts()[start:end]
        return [m for m in (re.search(pattern, t) for t in texts) if m]


class Race(ExampleTest):
    STEP = r"(rabbit|turtle): distance=(\d+)"

    def test_no_step_between_paused_and_resumed(self):
        p = self.start("race", "4")
        p.wait_for(r"turtle: distance=1$")
        p.kill(signal.SIGINT)
        paused = p.wait_for(r"\] paused \(")
        time.sleep(1.5)  # the turtle would take a step, the rabbit more
        p.kill(signal.SIGINT)
        resumed = p.wait_for(r"\] resumed$")
        self.assertEqual(p.finish(), 0, p.report())
        self.assertEqual(self.matching(p, self.STEP, paused, resumed), [],
                         f"a step between 'paused' and 'resumed': {p.texts()}")
        self.assertGreaterEqual(p.at(resumed) - p.at(paused), 1.4)
        for name in ("rabbit", "turtle"):
            steps = [int(m[2]) for m in self.matching(p, self.STEP) if m[1] == name]
            self.assertEqual(steps, [1, 2, 3, 4], name)
            self.assertEqual(len(self.matching(p, f"{name}: finish!$")), 1, name)
        self.assertTrue(self.matching(p, r"turtle: distance=", resumed),
                        "the turtle's steps went on after the resume")

    def test_term_stops_the_race_while_paused(self):
        p = self.start("race")
        p.wait_for(r"turtle: distance=1$")
        p.kill(signal.SIGINT)
        paused = p.wait_for(r"\] paused \(")
        p.kill(signal.SIGTERM)
        self.assertEqual(p.finish(), 0, p.report())
        # Cancelled tasks pass the pause gate: their cleanup runs, no step does.
        self.assertEqual(self.matching(p, self.STEP, paused), [])
        stopped = self.matching(p, r"(rabbit|turtle): stopped at distance", paused)
        self.assertEqual(sorted(m[1] for m in stopped), ["rabbit", "turtle"])
        self.assertEqual(self.matching(p, r"finish!"), [])


class Stop(ExampleTest):
    @staticmethod
    def stamp(text):
        return float(re.match(r"\[\s*([\d.]+)\]", text)[1])

    def test_cancel_is_delivered_and_the_cleanup_awaited(self):
        p = self.start("stop")
        self.assertEqual(p.finish(), 0, p.report())
        texts = p.texts()
        order = [p.wait_for(pattern, timeout=0) for pattern in (
            r"main: stopping the background task$",
            r"background: stopping \(Operation canceled\)",
            r"background: cleanup done$",
            r"main: background task ended \(Operation canceled\) after its cleanup$")]
        self.assertEqual(order, sorted(order), texts)
        self.assertGreaterEqual(len(self.matching(p, r"doing something", 0, order[0])), 2, texts)
        self.assertEqual(self.matching(p, r"doing something", order[0]), [], texts)
        # The cleanup's sleep ran its 300 ms inside the shield; outside, the
        # cancel would have failed it at once.
        self.assertGreaterEqual(self.stamp(texts[order[2]]) - self.stamp(texts[order[1]]), 0.28, texts)


class Shutdown(ExampleTest):
    def outcome(self, p):
        cancelled = sorted(int(m[1]) for m in self.matching(p, r"^\[(\d)\] cancelled!"))
        done = sorted(int(m[1]) for m in self.matching(p, r"^\[(\d)\] task done!$"))
        return cancelled, done

    def started(self, seconds):
        p = self.start("shutdown", str(seconds))
        first = p.wait_for(r"^\[\d\] task start!")
        p.wait_for(r"^\[\d\] task start!", count=6)
        return p, p.at(first)

    def test_term_cancels_three_and_drains_three(self):
        p, t0 = self.started(3)
        p.kill(signal.SIGTERM)
        self.assertEqual(p.finish(), 0, p.report())
        self.assertEqual(self.outcome(p), ([3, 4, 5], [0, 1, 2]), p.texts())
        last_cancel = p.wait_for(r"cancelled!", count=3, timeout=0)
        first_done = p.wait_for(r"task done!", timeout=0)
        self.assertLess(last_cancel, first_done, "the unshielded ones are cancelled at once")
        self.assertGreaterEqual(p.at(first_done) - t0, 2.9, "the shielded ones work their 3 s")
        self.assertEqual(p.texts()[-1], "exit status 0")

    def test_term_while_paused(self):
        p, _ = self.started(2)
        p.kill(signal.SIGINT)
        p.wait_for(r"SIGINT: paused")
        time.sleep(2.5)  # every sleep is due now, and held
        self.assertEqual(self.outcome(p), ([], []), p.texts())
        p.kill(signal.SIGTERM)
        self.assertEqual(p.finish(), 0, p.report())
        self.assertEqual(self.outcome(p), ([3, 4, 5], [0, 1, 2]), p.texts())

    def test_second_term_forces(self):
        p, _ = self.started(30)
        p.kill(signal.SIGTERM)
        p.wait_for(r"cancelled!", count=3)
        p.kill(signal.SIGTERM)
        self.assertEqual(p.finish(), 3, p.report())
        self.assertEqual(self.outcome(p), ([0, 1, 2, 3, 4, 5], []), p.texts())
        self.assertEqual(p.texts()[-1], "exit status 3")


class Threads(ExampleTest):
    STANDING = r"^endless: I'm still standing$"

    def test_cancel_stops_the_thread_at_its_checkpoint(self):
        p = self.start("threads")
        self.assertEqual(p.finish(10), 0, p.report())
        won = p.wait_for(r"^quick task: done", timeout=0)
        gave_up = p.wait_for(r"^endless task: gave up on its call \(Operation canceled\)$", timeout=0)
        returned = p.wait_for(r"^endless: stop requested, returning$", timeout=0)
        self.assertLess(won, gave_up)
        self.assertLess(won, returned)
        self.assertEqual(self.matching(p, self.STANDING, returned), [])
        # The exit came after the thread had returned, not before.
        self.assertEqual(p.texts()[-1], "exit status 0")

    def test_a_stubborn_thread_is_abandoned_at_shutdown(self):
        p = self.start("threads", "--stubborn")
        gave_up = p.wait_for(r"^endless task: gave up on its call")
        standing = len(self.matching(p, self.STANDING))
        p.wait_for(self.STANDING, count=standing + 2)  # it runs on without its task
        p.kill(signal.SIGTERM)
        start = time.monotonic()
        self.assertEqual(p.finish(15), 4, p.report())
        self.assertLess(time.monotonic() - start, 8.0, "drain_timeout 2 s and abandon_grace 1 s")
        self.assertEqual(len(self.matching(p, r"^abandoned the call of task endless", gave_up)), 1,
                         p.texts())
        self.assertEqual(self.matching(p, r"stop requested"), [])
        # The thread may still print while the process exits: it runs on.
        self.assertIn("exit status 4", p.texts())


class Together(ExampleTest):
    def test_two_sleeps_end_together_in_either_order(self):
        p = self.start("together")
        self.assertEqual(p.finish(), 0, p.report())
        rounds = self.matching(p, r"awaited task(\d), then task(\d): "
                                  r"task1 done after ([\d.]+) s, task2 after ([\d.]+) s$")
        self.assertEqual([(m[1], m[2]) for m in rounds], [("1", "2"), ("2", "1")], p.texts())
        for m in rounds:
            for seconds in (float(m[3]), float(m[4])):
                self.assertGreaterEqual(seconds, 0.99)
                self.assertLess(seconds, 1.9, "two 1 s sleeps took the sum of their times")
        self.assertEqual(len(self.matching(p, r"\.\.\.world[!?]$")), 4)


class Lineserver(ExampleTest):
    """Real connections on loopback: the cap, and a shutdown that lets a
    request under way answer."""

    def connect(self, port, n):
        socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(n)]
        for s in socks:
            self.addCleanup(s.close)
        return socks

    @staticmethod
    def ask(s, line):
        s.sendall(line.encode() + b"\n")
        return s.makefile("r").readline().rstrip("\n")

    def listening(self, *args):
        p = self.start("lineserver", "0", *args)
        at = p.wait_for(r"^listening on \d+$")
        port = int(re.search(r"listening on (\d+)", p.texts()[at])[1])
        return p, port

    def test_many_connections_answered(self):
        p, port = self.listening()
        socks = self.connect(port, 200)
        for i, s in enumerate(socks):
            s.sendall(f"line {i}\n".encode())
        for i, s in enumerate(socks):
            self.assertEqual(s.makefile("r").readline(), f"echo: line {i}\n")
        p.kill(signal.SIGTERM)
        self.assertEqual(p.finish(), 0, p.report())

    def test_cap_holds_new_connections(self):
        p, port = self.listening("2")
        a, b, c = self.connect(port, 3)
        self.assertEqual(self.ask(a, "a"), "echo: a")
        self.assertEqual(self.ask(b, "b"), "echo: b")
        c.sendall(b"c\n")
        c.settimeout(0.5)  # the third waits for room: no answer yet
        with self.assertRaises(socket.timeout):
            c.recv(100)
        a.close()          # room: the third is served
        c.settimeout(10)
        self.assertEqual(c.makefile("r").readline(), "echo: c\n")
        p.kill(signal.SIGTERM)
        self.assertEqual(p.finish(), 0, p.report())

    def test_term_lets_the_request_under_way_answer(self):
        p, port = self.listening()
        slow, idle = self.connect(port, 2)
        self.assertEqual(self.ask(idle, "hello"), "echo: hello")
        slow.sendall(b"slow\n")
        p.wait_for(r"^request started: slow$")
        p.kill(signal.SIGTERM)
        # The request finishes and answers, then its connection closes;
        # the idle one closes at once.
        self.assertEqual(slow.makefile("r").readline(), "echo: slow\n")
        self.assertEqual(slow.recv(100), b"")
        self.assertEqual(idle.recv(100), b"")
        self.assertEqual(p.finish(), 0, p.report())
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2)


class Pipeline(ExampleTest):
    def test_sum_through_bounded_channels(self):
        p = self.start("pipeline", "10000", "4")
        self.assertEqual(p.finish(), 0, p.report())
        n = 10000
        self.assertIn(f"sum of squares 1..{n} = {n * (n + 1) * (2 * n + 1) // 6}", p.texts())
        most = int(re.search(r"most values in a channel: (\d+) of 8", p.texts()[-1])[1])
        self.assertLessEqual(most, 8)


class Install(unittest.TestCase):
    """Each example builds against the installed headers, library and .pc."""

    def run_ok(self, cmd, **kw):
        r = subprocess.run(cmd, capture_output=True, text=True, **kw)
        self.assertEqual(r.returncode, 0, f"{shlex.join(cmd)}:\n{r.stdout}{r.stderr}")
        return r.stdout

    def test_examples_build_against_the_installed_tree(self):
        pkg_config = shutil.which(os.environ.get("PKG_CONFIG", "pkg-config"))
        cc = shlex.split(os.environ.get("CC", "cc"))
        if not pkg_config or not shutil.which(cc[0]):
            self.skipTest("needs pkg-config and a C compiler")
        tmp = tempfile.TemporaryDirectory(prefix="evtask-install-")
        self.addCleanup(tmp.cleanup)
        destdir = tmp.name
        self.run_ok([MESON, "install", "-C", BUILD_ROOT, "--destdir", destdir, "--no-rebuild", "--quiet"])

        pcs = glob.glob(os.path.join(destdir, "**", "pkgconfig", "evtask.pc"), recursive=True)
        self.assertEqual(len(pcs), 1, pcs)
        # The .pc names the final paths (/usr/local/...); the sysroot maps
        # them into the destdir. (--define-prefix would guess the prefix
        # from the .pc's place, wrongly under a multiarch libdir.) System
        # directories are kept, or /usr/local/include could be dropped and
        # an older installed evtask.h found instead.
        env = dict(os.environ, PKG_CONFIG_LIBDIR=os.path.dirname(pcs[0]), PKG_CONFIG_PATH="",
                   PKG_CONFIG_SYSROOT_DIR=destdir, PKG_CONFIG_ALLOW_SYSTEM_CFLAGS="1",
                   PKG_CONFIG_ALLOW_SYSTEM_LIBS="1")
        flags = shlex.split(self.run_ok([pkg_config, "--cflags", "--libs", "evtask"], env=env))
        self.assertTrue(any(f.startswith("-I" + destdir) for f in flags), flags)
        libdirs = [f[2:] for f in flags if f.startswith("-L")]
        self.assertTrue(libdirs and all(d.startswith(destdir) for d in libdirs), flags)

        # A sanitized library needs its runtime loaded first: in the program.
        sanitize = [f"-fsanitize={SANITIZE}"] if SANITIZE not in ("", "none") else []
        for name in NAMES:
            source = os.path.join(SOURCE_ROOT, "examples", name + ".c")
            self.run_ok([*cc, "-std=gnu11", "-Wall", "-Wextra", "-Werror", *sanitize, source, *flags,
                         "-o", os.path.join(destdir, name)])

        run_env = dict(os.environ, LD_LIBRARY_PATH=":".join(libdirs))
        if shutil.which("ldd") and not childenv.EMULATED:  # the host's ldd cannot read the target's
            linked = self.run_ok(["ldd", os.path.join(destdir, "together")], env=run_env)
            self.assertRegex(linked, rf"libevtask\.so\.\d+ => {re.escape(libdirs[0])}/")
        p = Program("together", program=os.path.join(destdir, "together"), env=run_env)
        self.assertEqual(p.finish(), 0, p.report())
        self.assertEqual(len([t for t in p.texts() if "awaited task" in t]), 2, p.texts())


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1] + sys.argv[1:], verbosity=2)
