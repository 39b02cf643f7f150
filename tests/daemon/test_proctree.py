#!/usr/bin/env python3
"""The whole process tree of every exec run under evtaskd's control (issue
18, findings 7 to 10): each run in a session of its own, with no
controlling terminal; every process a run leaves behind paused with it,
ended with it (kill_signal, then SIGKILL after kill_timeout) and named in a
`leftover` record; the daemon exits only when none is left.

Run by meson (`meson test --suite proctree`), one class per meson test,
with EVTASKD set to the built daemon. Started plainly, evtaskd is in the
root cgroup, not delegated to it, and walks /proc; class Cgroup runs the
same tests with evtaskd in a cgroup of its own (as systemd's Delegate=yes
gives it), where each run is a cgroup. The booted systemd suite
(tests/systemd) checks the unit's delegation.
"""
import fcntl
import os
import signal
import sys
import tempfile
import termios
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_evtaskd as T  # noqa: E402  (the Daemon helper and its conventions)
import childenv  # noqa: E402  (on the path through T)

# Under qemu-user, evtaskd cannot become the subreaper of its runs'
# processes: what these classes check does not exist there.
NO_SUBREAPER = "under qemu-user: no PR_SET_CHILD_SUBREAPER, a run's leftovers go to init"

exec_task = T.exec_task
HEAD = "[daemon]\nexit_when_done = yes\n\n"
# A shell that ignores SIGTERM, prints its pid and loops: only SIGKILL ends it.
STUBBORN = "sh -c 'trap \"\" TERM; echo $$; while :; do sleep 0.1; done'"


def proc_fields(pid):
    """The fields of /proc/PID/stat after the command: [state, ppid, pgrp,
    session, tty_nr, ...], or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


def state(pid):
    fields = proc_fields(pid)
    return fields[0] if fields else None


class ProcTest(T.DaemonTest):
    def kill_if_left(self, pid):
        """At the test's end, SIGKILL pid if it is still there (a failing
        test must not leave a process behind)."""
        def kill():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        self.addCleanup(kill)

    def pid_output(self, d, task):
        """The first output line of task, a pid."""
        rec = d.wait_for(lambda r: r["event"] == "output" and r["task"] == task and r["msg"].isdigit(),
                         what=f"a pid printed by {task}")
        pid = int(rec["msg"])
        self.kill_if_left(pid)
        return pid

    def tmpdir(self):
        t = tempfile.TemporaryDirectory(prefix="evtaskd-proctree-")
        self.addCleanup(t.cleanup)
        return t.name

    def is_paused(self, pid):
        """Stopped, or blocked in vfork() on a child that is stopped before
        its exec (dash runs commands so): it cannot run either."""
        s = state(pid)
        children = [st for _, st in T.children_of(pid)]
        return s == "T" or (s == "D" and bool(children) and all(st == "T" for st in children))

    def wait_paused(self, pid, paused, timeout=10.0):
        deadline = time.monotonic() + timeout
        while self.is_paused(pid) != paused:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def run_stray(self):
        """A daemon whose run leaves a process that ignores SIGTERM, left
        the session and lost its parent at once: it belongs to no run.
        (daemon, pid), once the process is evtaskd's child."""
        stray = f"(setsid {STUBBORN} &); sleep 100"
        d = self.run_daemon(exec_task("stray", stray, shell="yes", kill_timeout="300ms"))
        pid = self.pid_output(d, "stray")
        deadline = time.monotonic() + 5
        while int(proc_fields(pid)[1]) != d.started()["pid"]:
            self.assertLess(time.monotonic(), deadline, "the stray process was not re-parented to evtaskd")
            time.sleep(0.01)
        return d, pid

    def leftovers(self, d, pid):
        return [r["signal"] for r in d.of("leftover") if r["pid"] == pid]


@T.unittest.skipIf(childenv.EMULATED, NO_SUBREAPER)
class Session(ProcTest):
    def test_finding_10_a_job_cannot_open_the_daemons_terminal(self):
        """Finding 10: jobs shared the daemon's session, so one could open
        the terminal evtaskd was started from (and inject input with
        TIOCSTI). A run is a session of its own, with no terminal."""
        master, slave = os.openpty()
        self.addCleanup(os.close, master)

        def take_terminal():
            os.setsid()
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

        probe = "if sh -c ': <>/dev/tty' 2>/dev/null; then echo opened; else echo refused; fi"
        d = self.run_daemon(HEAD + exec_task("probe", probe, shell="yes"), stdin=slave, preexec=take_terminal)
        os.close(slave)
        daemon = d.started()["pid"]
        self.assertNotEqual(int(proc_fields(daemon)[4]), 0, "evtaskd has no controlling terminal to test with")
        run = d.event("run", "probe")
        answer = d.wait_for(lambda r: r["event"] == "output" and r["task"] == "probe"
                            and r["msg"] in ("opened", "refused"), what="the probe's answer")
        self.assertEqual(answer["msg"], "refused", "a job opened the daemon's terminal")
        self.assertEqual(d.finish(), 0)
        self.assert_clean_log(d)
        self.assertEqual(d.of("finished", "probe")[0]["pid"], run["pid"])


@T.unittest.skipIf(childenv.EMULATED, NO_SUBREAPER)
class Leftovers(ProcTest):
    def test_finding_7_a_group_member_that_ignores_sigterm_is_killed(self):
        """Finding 7: SIGKILL went only to a group whose leader was still
        alive, so a member that ignores SIGTERM outlived the run's timeout."""
        d = self.run_daemon(HEAD + exec_task("stubborn", f"{STUBBORN} & exec sleep 100", shell="yes",
                                             timeout="500ms", kill_timeout="500ms"))
        pid = self.pid_output(d, "stubborn")
        failed = d.event("failed", "stubborn")
        self.assertIn("(timeout)", failed["msg"])
        self.assertEqual(failed["signal_number"], signal.SIGTERM, "the leader ends on SIGTERM")
        self.assertTrue(T.wait_gone(pid, 0.5 + 3), "the member that ignores SIGTERM outlived kill_timeout")
        self.assertEqual(d.finish(), 0)
        self.assert_clean_log(d)
        self.assertEqual(self.leftovers(d, pid), ["SIGTERM", "SIGKILL"])
        named = d.of("leftover")[0]
        self.assertEqual((named["task"], named["comm"], named["run"]), ("stubborn", "sh", 1))
        # SIGKILL waits kill_timeout after the SIGTERM (a timer: it cannot
        # come early, however loaded the machine).
        sent = {r["signal"]: r["mono_us"] for r in d.of("leftover") if r["pid"] == pid}
        self.assertGreaterEqual(sent["SIGKILL"] - sent["SIGTERM"], 500_000 - 20_000,
                                "SIGKILL before kill_timeout")

    def test_finding_7_no_pile_up_with_schedule_always(self):
        """Finding 7, repeated: with schedule = always, one process that
        ignores SIGTERM piled up per run. Each run's ends with it."""
        # The run lasts long enough for the process to set its trap and
        # say its pid (a SIGTERM before that would end it at once).
        d = self.run_daemon(exec_task("piler", f"{STUBBORN} & sleep 0.2", shell="yes", schedule="always",
                                      restart_sec="100ms", kill_timeout="200ms"))
        third = d.wait_for(lambda r: r["event"] == "finished" and r["task"] == "piler" and r["run"] == 3,
                           what="the end of the third run")
        pids = [int(r["msg"]) for r in d.records[:d.records.index(third)]
                if r["event"] == "output" and r["msg"].isdigit()]
        for pid in pids:
            self.kill_if_left(pid)
        self.assertGreater(len(pids), 0)
        self.assertEqual([pid for pid in pids if state(pid) is not None], [], "processes piled up")
        self.assertGreaterEqual(len([r for r in d.of("leftover") if r["signal"] == "SIGKILL"]), len(pids))
        d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(), 0)
        self.assert_clean_log(d)

    def test_finding_7_at_shutdown(self):
        """Finding 7, at a shutdown: every process of the cancelled run gets
        kill_signal, then SIGKILL, before evtaskd exits."""
        d = self.run_daemon(exec_task("stubborn", f"{STUBBORN} & exec sleep 100", shell="yes",
                                      kill_timeout="500ms"))
        pid = self.pid_output(d, "stubborn")
        d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(), 0)
        self.assertIsNone(state(pid), "a process of the run outlived evtaskd")
        self.assert_clean_log(d)
        self.assertEqual(self.leftovers(d, pid), ["SIGTERM", "SIGKILL"])
        self.assertEqual(len(d.of("cancelled", "stubborn")), 1)

    def test_finding_8_background_processes_end_with_their_run(self):
        """Finding 8: a run's `cmd &` outlived it, unnamed, and was SIGKILLed
        by the kernel only when PID 1 exited. It ends with its run."""
        d = self.run_daemon(HEAD + exec_task("background", "sleep 100 & echo $!", shell="yes"))
        pid = self.pid_output(d, "background")
        finished = d.event("finished", "background")
        self.assertIsNone(state(pid), "the run ended with its background process still there")
        self.assertEqual(d.finish(), 0)
        self.assert_clean_log(d)
        named = [r for r in d.of("leftover") if r["pid"] == pid]
        self.assertEqual([r["signal"] for r in named], ["SIGTERM"])
        self.assertIn(named[0]["comm"], ("sleep", "sh"), "sleep, or the shell about to exec it")
        self.assertLess(d.records.index(named[0]), d.records.index(finished), "named after the run's end")

    def test_finding_8_a_descendant_in_a_new_session_is_paused_and_stopped(self):
        """Finding 8: a descendant that called setsid was not paused with its
        run nor stopped at the shutdown."""
        ticks = os.path.join(self.tmpdir(), "ticks")
        writer = f"while :; do echo tick >> {ticks}; sleep 0.05; done"
        d = self.run_daemon(exec_task("escaper", f"setsid sh -c 'echo $$; {writer}' & sleep 100", shell="yes"))
        pid = self.pid_output(d, "escaper")
        self.assertEqual(int(proc_fields(pid)[3]), pid, "the test's process did not make a session")
        d.kill(signal.SIGINT)
        d.event("paused")
        self.assertTrue(self.wait_paused(pid, True), "the descendant in its own session was not paused")
        d.kill(signal.SIGINT)
        d.event("resumed")
        self.assertTrue(self.wait_paused(pid, False), "the descendant was not resumed")
        d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(), 0)
        self.assertIsNone(state(pid), "the descendant outlived evtaskd")
        self.assert_clean_log(d)
        self.assertEqual(self.leftovers(d, pid), ["SIGTERM"])

    def test_finding_8_the_daemon_exits_only_when_none_is_left(self):
        """Finding 8: a process that left its run's session and lost its
        parent at once belongs to no run the daemon can tell; the daemon's
        last sweep ends it (SIGTERM, SIGKILL after the longest kill_timeout)
        and names it before the exit."""
        d, pid = self.run_stray()
        d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(), 0)
        self.assertIsNone(state(pid), "a process outlived evtaskd")
        self.assert_clean_log(d)
        self.assertEqual(self.leftovers(d, pid), ["SIGTERM", "SIGKILL"])
        exit_rec = d.of("exit")[-1]
        last = [r for r in d.of("leftover") if r["pid"] == pid][-1]
        self.assertLess(d.records.index(last), d.records.index(exit_rec))

    def test_a_process_of_no_run_is_paused_too(self):
        """A process that left its run's session and lost its parent at once
        belongs to no run, and stepped on through a pause (in a container
        without a cgroup of its own, evtaskd as PID 1 walks /proc): a pause
        stops it with the runs, the resume continues it."""
        d, pid = self.run_stray()
        d.kill(signal.SIGINT)
        d.event("paused")
        self.assertTrue(self.wait_paused(pid, True), "the process of no run was not paused")
        d.kill(signal.SIGINT)
        d.event("resumed")
        self.assertTrue(self.wait_paused(pid, False), "the process of no run was not resumed")
        d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(), 0)
        self.assertIsNone(state(pid), "a process outlived evtaskd")
        self.assert_clean_log(d)


def unified_mount():
    """Where the cgroup v2 hierarchy is mounted, or None."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.split()[:1] == ["cgroup2"]:
                return left.split()[4]
    return None


def cgroup_dir(pid):
    """The directory of pid's cgroup v2, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            path = next(line[3:].strip() for line in f if line.startswith("0::"))
    except (OSError, StopIteration):
        return None
    return unified_mount() + path


def entering(cgroup):
    """A child's preexec that moves it into cgroup."""
    procs = os.path.join(cgroup, "cgroup.procs")

    def enter():
        with open(procs, "w") as f:
            f.write("0")
    return enter


def remove_cgroup(path):
    """Whatever a failing test left in it is killed first."""
    for sub, _, _ in sorted(os.walk(path), key=lambda w: -len(w[0])):
        try:
            with open(os.path.join(sub, "cgroup.kill"), "w") as f:
                f.write("1")
        except OSError:
            pass
        deadline = time.monotonic() + 5
        while True:
            try:
                os.rmdir(sub)
                break
            except FileNotFoundError:
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)


class Cgroup(Leftovers):
    """Leftovers' tests with evtaskd in a cgroup v2 of its own: each run in
    a child cgroup, paused by cgroup.freeze and killed by cgroup.kill."""

    def setUp(self):
        mount = unified_mount()
        if os.geteuid() != 0 or not mount:
            self.skipTest("needs root and a cgroup v2 hierarchy to make evtaskd a cgroup")
        self.cgroup = os.path.join(mount, f"evtaskd-test.{os.getpid()}.{self._testMethodName}")
        try:
            os.mkdir(self.cgroup)
        except OSError as e:
            self.skipTest(f"cannot make a cgroup: {e}")
        self.addCleanup(remove_cgroup, self.cgroup)

    def run_daemon(self, text, **kw):
        d = super().run_daemon(text, preexec=entering(self.cgroup), **kw)
        started = d.started()
        self.assertEqual(started["processes"], "cgroup", started["msg"])
        return d

    def test_a_module_that_exits_takes_every_process_of_every_run(self):
        """A module's exit() ends the daemon at once (exit 70): SIGKILL
        reaches each run's whole cgroup, not only its process group."""
        module = os.environ.get("MODULE_MISBEHAVE", "build/tests/misbehave.so")
        d = self.run_daemon(exec_task("tree", f"setsid {STUBBORN} & sleep 100", shell="yes")
                            + f"[task.m]\nkind = module\npath = {module}\nentry = exit_task\narg.after_ms = 2000\n")
        pid = self.pid_output(d, "tree")
        self.assertEqual(d.finish(), 70)
        self.assertTrue(T.wait_gone(pid, 5), "a process of a run outlived the daemon")

    def test_no_cgroup_is_left_after_a_forced_shutdown(self):
        """A forced cancel gives no time to see a run's processes go: its
        cgroup is still busy at the run's end, and removed at the exit."""
        d = self.run_daemon("[daemon]\ndrain_timeout = 200ms\n\n"
                            + exec_task("keeper", f"{STUBBORN} & sleep 100", shell="yes", shield="yes"))
        pid = self.pid_output(d, "keeper")
        d.kill(signal.SIGTERM)
        self.assertNotEqual(d.finish(), 0, "the drain was not forced")
        self.assertEqual(len(d.of("forced", "keeper")), 1)
        self.assertIsNone(state(pid), "a process outlived evtaskd")
        self.assertEqual([e for e in os.listdir(self.cgroup) if e.startswith("run-")], [], "a run's cgroup is left")

    def is_paused(self, pid):
        path = cgroup_dir(pid)
        if not path or not path.startswith(self.cgroup + "/run-"):
            return False
        with open(os.path.join(path, "cgroup.events")) as f:
            return "frozen 1" in f.read().splitlines()


class Shutdown(ProcTest):
    def test_finding_9_a_shielded_run_someone_stopped_is_continued(self):
        """Finding 9: a shielded run that another process had stopped
        (SIGSTOP) was not continued at the shutdown, so the drain was forced
        at its deadline."""
        d = self.run_daemon("[daemon]\ndrain_timeout = 3s\n\n"
                            + exec_task("keeper", "echo $$; sleep 0.3; echo done", shell="yes", shield="yes"))
        pid = self.pid_output(d, "keeper")
        os.kill(pid, signal.SIGSTOP)
        self.assertTrue(self.wait_paused(pid, True))
        d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(), 0, "the drain was forced")
        self.assert_clean_log(d)
        self.assertEqual(d.of("forced"), [])
        self.assertEqual([r["msg"] for r in d.of("output", "keeper")][-1], "done")
        self.assertEqual(len(d.of("finished", "keeper")), 1)


if __name__ == "__main__":
    T.unittest.main(argv=sys.argv[:1] + sys.argv[1:], verbosity=2)
