#!/usr/bin/env python3
"""The whole process tree of every exec run under evtaskd's control (issue
18, findings 7 to 10): each run in a session of its own, with no
controlling terminal; every process a run leaves behind paused with it,
ended with it (kill_signal, then SIGKILL after kill_timeout) and named in a
`leftover` record; the daemon exits only when none is left.

Run by meson (`meson test --suite proctree`), one class per meson test,
with EVTASKD set to the built daemon. This host gives the daemon no
delegated cgroup, so these tests exercise the walk of /proc; the booted
systemd suite (tests/systemd) exercises the cgroup of each run.
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


def wait_state(pid, states, timeout=5.0):
    deadline = time.monotonic() + timeout
    while state(pid) not in states:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


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

    def leftovers(self, d, pid):
        return [r["signal"] for r in d.of("leftover") if r["pid"] == pid]


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
        daemon = d.event("started")["pid"]
        self.assertNotEqual(int(proc_fields(daemon)[4]), 0, "evtaskd has no controlling terminal to test with")
        run = d.event("run", "probe")
        answer = d.wait_for(lambda r: r["event"] == "output" and r["task"] == "probe"
                            and r["msg"] in ("opened", "refused"), what="the probe's answer")
        self.assertEqual(answer["msg"], "refused", "a job opened the daemon's terminal")
        self.assertEqual(d.finish(), 0)
        self.assert_clean_log(d)
        self.assertEqual(d.of("finished", "probe")[0]["pid"], run["pid"])


if __name__ == "__main__":
    T.unittest.main(argv=sys.argv[:1] + sys.argv[1:], verbosity=2)
