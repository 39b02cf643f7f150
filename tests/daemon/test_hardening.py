#!/usr/bin/env python3
"""evtaskd against what a job, a module or a file's owner should not be
able to do: what a job inherits, which files a daemon run as root trusts,
when a module's code first runs, and what happens when a module exits or
faults inside the daemon.

Run by meson (`meson test --suite daemon`), one class per meson test, with
EVTASKD and the test modules' paths set. Tests that need root (a user to
switch to, files of another owner) skip otherwise. Each test names the
finding of issue 18 it covers.
"""
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_evtaskd as T  # noqa: E402  (the Daemon helper and its conventions)
import childenv  # noqa: E402

EVTASKD = T.EVTASKD
NOBODY = pwd.getpwnam("nobody").pw_uid


def need_root(test):
    if os.geteuid() != 0:
        test.skipTest("needs root")


def fresh_dir(test, mode=0o755, sticky=False):
    """A new directory of root's (or the caller's) with the given mode."""
    d = tempfile.mkdtemp(prefix="evtaskd-hardening-")
    test.addCleanup(shutil.rmtree, d, True)
    os.chmod(d, mode | (stat.S_ISVTX if sticky else 0))
    return d


def outputs(d, task):
    return [r["msg"] for r in d.of("output", task)]


class Environment(T.DaemonTest):
    """Finding 13: what a job inherits from the daemon."""

    HEAD = "[daemon]\nexit_when_done = yes\n\n"
    SHOW = "umask; env | sort"

    def run_show(self, config, env=None, preexec=None):
        d = self.run_daemon(self.HEAD + config, env=env, preexec=preexec)
        self.assertEqual(d.finish(), 0, d.records[-5:])
        self.assert_clean_log(d)
        return d

    def test_a_job_gets_umask_0022_not_the_daemons(self):
        d = self.run_show(T.exec_task("show", self.SHOW, shell="yes"), preexec=lambda: os.umask(0))
        self.assertEqual(outputs(d, "show")[0], "0022", "a daemon started with umask 0000 gave it to its jobs")

    def test_a_jobs_own_umask(self):
        d = self.run_show(T.exec_task("tight", self.SHOW, shell="yes", umask="0077")
                          + T.exec_task("same", self.SHOW, shell="yes", umask="0000"),
                          preexec=lambda: os.umask(0))
        self.assertEqual(outputs(d, "tight")[0], "0077")
        self.assertEqual(outputs(d, "same")[0], "0000")

    def test_the_service_managers_variables_stay_with_the_daemon(self):
        env = dict(os.environ, CREDENTIALS_DIRECTORY="/run/credentials/evtaskd.service", MAINPID="1",
                   MONITOR_SERVICE_RESULT="exit-code", KEPT="yes")
        d = self.run_show(T.exec_task("show", self.SHOW, shell="yes"), env=env)
        lines = outputs(d, "show")
        self.assertIn("KEPT=yes", lines)
        for name in ("CREDENTIALS_DIRECTORY", "MAINPID", "MONITOR_SERVICE_RESULT"):
            self.assertFalse([x for x in lines if x.startswith(name + "=")], f"{name} reached the job")

    def test_a_run_as_another_user_gets_none_of_roots_session(self):
        need_root(self)
        env = dict(os.environ, XDG_RUNTIME_DIR="/run/user/0", DBUS_SESSION_BUS_ADDRESS="unix:path=/run/user/0/bus",
                   SUDO_USER="admin", HOME="/root", USER="root")
        d = self.run_show(T.exec_task("show", self.SHOW, shell="yes", user="nobody"), env=env)
        lines = outputs(d, "show")
        self.assertEqual(lines[0], "0022")
        self.assertIn("USER=nobody", lines)
        for name in ("XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS", "SUDO_USER"):
            self.assertFalse([x for x in lines if x.startswith(name + "=")], f"root's {name} reached the job")


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], *sys.argv[1:]], verbosity=2)
