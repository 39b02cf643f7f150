#!/usr/bin/env python3
"""Resource limits per exec job (issue 23), through the real daemon.

Class RLimits runs where the runs' cgroups have no memory, pids and cpu
controllers (a hybrid hierarchy, a cgroup not delegated): the limits are
rlimits set in the child before its exec. Class Cgroup makes evtaskd a
cgroup v2 of its own with those controllers, where each run's cgroup gets
memory.max and memory.oom.group; it exits 77 naming the controllers the
hierarchy lacks.

Run by meson (`meson test --suite daemon`), one class per meson test, with
EVTASKD set to the built daemon.
"""
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_evtaskd as T  # noqa: E402  (the Daemon helper and its conventions)
import test_proctree as P  # noqa: E402  (cgroup helpers)

exec_task = T.exec_task
CONTROLLERS = ("memory", "pids", "cpu")
# Allocates a mebibyte at a time, touched, without end.
HOG = "python3 -c 'a = [bytearray(1 << 20) for _ in iter(int, 1)]'"
HEAD = "[daemon]\nexit_when_done = yes\n\n"
# Steps that keep going while the hog runs and after it is stopped, until
# the test's SIGTERM.
TICKER = "[task.tick]\nkind = ticker\nspeed = 20\n\n"
OTHER = exec_task("other", "for i in 1 2 3 4 5 6 7 8; do echo $i; sleep 0.2; done", shell="yes")


def missing_controllers():
    """Why the Cgroup class cannot run here, or None."""
    mount = P.unified_mount()
    if os.geteuid() != 0 or not mount:
        return "needs root and a cgroup v2 hierarchy"
    try:
        with open(os.path.join(mount, "cgroup.controllers")) as f:
            have = f.read().split()
    except OSError as e:
        return f"cannot read the cgroup v2 root's controllers: {e}"
    missing = [c for c in CONTROLLERS if c not in have]
    if missing:
        return (f"the cgroup v2 hierarchy at {mount} lacks the {' '.join(missing)} controller"
                f"{'s' if len(missing) > 1 else ''} (a hybrid hierarchy keeps them on v1)")
    return None


class LimitTest(T.DaemonTest):
    def check_others_live_on(self, d, failed):
        """The ticker steps on after the hog's end, the other exec job's
        runs finish, and the daemon stops as usual at SIGTERM."""
        d.wait_for(lambda r: r["event"] == "step" and r["task"] == "tick" and r["mono_us"] > failed["mono_us"],
                   what="a step after the hog was stopped")
        d.event("finished", "other", timeout=30)
        d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(), 0)
        self.assertEqual([r["msg"] for r in d.of("output", "other")], [str(i) for i in range(1, 9)])
        self.assertEqual(len(d.of("cancelled", "tick")), 1)
        self.assertEqual(len(d.of("exit")), 1)


class RLimits(LimitTest):
    def run_daemon(self, text, **kw):
        d = super().run_daemon(text, **kw)
        started = d.started()
        if started["processes"] == "cgroup":
            limits = d.wait_for(lambda r: r["event"] == "limits", what="a limits record")
            if limits["limits"] == "cgroup":
                self.skipTest("the runs' cgroups have the limits' controllers here: class Cgroup tests them")
        return d

    def test_unbounded_allocation_is_stopped_and_named(self):
        """memory_max as RLIMIT_AS: the hog's allocation fails and it ends;
        its failed record names memory_max; the limits record at the start
        says memory_max applies only approximately; the daemon and the
        other jobs go on."""
        T.childenv.skip_if_emulated(self, "qemu-user leaves out a program's RLIMIT_AS, which would bound "
                                    "qemu's own address space, so its children start without it")
        d = self.run_daemon(HEAD + exec_task("hog", HOG, memory_max="256M") + TICKER + OTHER)
        limits = d.event("limits", "hog")
        self.assertEqual(limits["limits"], "rlimit")
        self.assertIn("memory_max", limits["approximate"].split())
        self.assertIn("RLIMIT_AS", limits["msg"])
        failed = d.event("failed", "hog", timeout=60)
        self.assertEqual(failed["limits"], "memory_max")
        self.assertIn("memory_max = 268435456 applied as RLIMIT_AS", failed["msg"])
        self.check_others_live_on(d, failed)
        self.assertTrue(any("MemoryError" in r["msg"] for r in d.of("output", "hog")), d.of("output", "hog"))

    def test_cpu_limit_is_named(self):
        """limit_cpu: a busy loop gets SIGXCPU after a second of CPU time,
        and its failed record says limit_cpu."""
        d = self.run_daemon(HEAD + exec_task("spin", "while :; do :; done", shell="yes", limit_cpu="1s")
                            + TICKER + OTHER)
        failed = d.event("failed", "spin", timeout=60)
        self.assertEqual(failed["cause"], "limit_cpu")
        self.assertEqual(failed["signal_number"], signal.SIGXCPU)
        self.check_others_live_on(d, failed)

    def test_open_files_and_processes(self):
        """limit_nofile and limit_nproc reach the command (ulimit shows
        them); the start names limit_nproc as per user, not per job, and
        pids_max and cpu_weight, which need cgroup controllers, as
        approximate and not applied."""
        d = self.run_daemon(HEAD + exec_task("show", "ulimit -n; ulimit -p", shell="yes", limit_nofile="77",
                                             limit_nproc="4321", cpu_weight="50"))
        limits = d.event("limits", "show")
        self.assertEqual(limits["applied"], "limit_nofile")
        self.assertEqual(limits["approximate"], "limit_nproc")
        self.assertEqual(limits["not_applied"], "cpu_weight")
        self.assertIn("the user's processes, not the run's", limits["msg"])
        self.assertEqual(d.finish(), 0)
        self.assertEqual([r["msg"] for r in d.of("output", "show")], ["77", "4321"])

    def test_a_limit_that_cannot_be_set_fails_the_run(self):
        """A limit_nofile above what even root may set (fs.nr_open) fails
        the run, saying so."""
        d = self.run_daemon(HEAD + exec_task("wide", "true", limit_nofile=str(1 << 30)))
        failed = d.event("failed", "wide")
        self.assertIn("cannot set its limits", failed["msg"])
        d.finish()


class Cgroup(LimitTest):
    """evtaskd in a cgroup v2 of its own with the memory, pids and cpu
    controllers: each run's cgroup gets the limits."""

    def setUp(self):
        mount = P.unified_mount()
        self.cgroup = os.path.join(mount, f"evtaskd-limits.{os.getpid()}.{self._testMethodName}")
        with open(os.path.join(mount, "cgroup.subtree_control"), "w") as f:
            f.write(" ".join("+" + c for c in CONTROLLERS))
        os.mkdir(self.cgroup)
        self.addCleanup(P.remove_cgroup, self.cgroup)

    def run_daemon(self, text, **kw):
        d = super().run_daemon(text, preexec=P.entering(self.cgroup), **kw)
        self.assertEqual(d.started()["processes"], "cgroup")
        return d

    def test_oom_kill_is_named(self):
        """memory_max in the run's cgroup: the kernel's OOM killer ends the
        hog's run (memory.oom.group), its failed record says oom-killed, the
        daemon and the other jobs go on."""
        d = self.run_daemon(HEAD + exec_task("hog", HOG, memory_max="64M", pids_max="16", cpu_weight="50",
                                             cpu_quota="50%") + TICKER + OTHER)
        limits = d.event("limits", "hog")
        self.assertEqual(limits["limits"], "cgroup", limits["msg"])
        self.assertEqual(limits["applied"], "memory_max pids_max cpu_weight cpu_quota")
        failed = d.event("failed", "hog", timeout=60)
        self.assertEqual(failed["cause"], "oom-killed", failed["msg"])
        self.check_others_live_on(d, failed)


if __name__ == "__main__":
    if sys.argv[1:] == ["Cgroup"] and missing_controllers():
        print(f"SKIP: {missing_controllers()}")
        sys.exit(77)
    T.unittest.main(argv=sys.argv[:1] + sys.argv[1:], verbosity=2)
