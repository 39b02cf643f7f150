#!/usr/bin/env python3
"""evtaskctl against the real evtaskd: every verb, who may use which, and
clients that misbehave on the control socket.

Run by meson (`meson test --suite daemon`), one class per meson test, with
EVTASKD and EVTASKCTL set to the built programs. Each daemon gets a socket
in a fresh directory of its own. Tests that switch users need root and
skip otherwise.
"""
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_evtaskd as T  # noqa: E402  (the Daemon helper and its conventions)
import childenv  # noqa: E402

EVTASKCTL = os.environ.get("EVTASKCTL", "build/src/ctl/evtaskctl")
NOBODY = 65534


def as_nobody():
    os.setgroups([])
    os.setgid(65534)
    os.setuid(NOBODY)


class ControlTest(T.DaemonTest):
    def start(self, config, head="", mode=0o755, **kw):
        """A daemon on config, its socket in a fresh directory."""
        self.dir = tempfile.mkdtemp(prefix="evtaskd-control-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        os.chmod(self.dir, mode)
        self.sock = os.path.join(self.dir, "control")
        d = self.run_daemon(f"[daemon]\ncontrol_socket = {self.sock}\n{head}\n" + config, **kw)
        # The start's own record, not a warning before it (no subreaper
        # under qemu-user): the socket is there by then.
        d.wait_for(lambda r: r["event"] == "started" and "pid" in r, what="the started record")
        return d

    def ctl(self, *args, preexec=None, timeout=30):
        """evtaskctl ARGS on this test's socket: (status, stdout, stderr)."""
        p = subprocess.run([EVTASKCTL, "--socket", self.sock, *args], capture_output=True, text=True,
                           timeout=timeout,
                           preexec_fn=lambda: (childenv.default_signals(), preexec and preexec()))
        return p.returncode, p.stdout, p.stderr

    def ctl_json(self, *args, **kw):
        code, out, err = self.ctl("--json", *args, **kw)
        return code, json.loads(out) if out else None, err

    def tasks(self):
        code, reply, err = self.ctl_json("status")
        self.assertEqual(code, 0, err)
        return {t["name"]: t for t in reply["tasks"]}

    def tasks_until(self, pred, timeout=10):
        """The status's tasks, asked again until pred accepts them."""
        deadline = time.monotonic() + timeout
        while True:
            tasks = self.tasks()
            if pred(tasks) or time.monotonic() > deadline:
                return tasks
            time.sleep(0.05)


def stopped(pid, timeout=5):
    """True once pid is stopped: kill(SIGSTOP) returns before the process
    has taken the signal, so the pause's answer can come first."""
    deadline = time.monotonic() + timeout
    while T.proc_stat(pid)[0] != "T":
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


RACE = ("[task.rabbit]\nkind = ticker\nspeed = 20\ndescription = the fast one\n\n"
        "[task.nap]\nkind = sleep\nduration = 60s\n\n"
        "[task.loop]\nkind = exec\ncommand = sleep 100\n\n")
GUARD = "[task.guard]\nkind = sleep\nduration = 60s\nshield = yes\n\n"


class Verbs(ControlTest):
    """Each verb, as a user would type it."""

    def test_status_shows_every_task_and_the_daemon(self):
        d = self.start(RACE)
        d.event("run", "loop")
        code, reply, err = self.ctl_json("status")
        self.assertEqual(code, 0, err)
        self.assertEqual(reply["version"], 1)
        self.assertEqual((reply["daemon"]["pid"], reply["daemon"]["phase"], reply["daemon"]["paused"]),
                         (d.proc.pid, "running", False))
        tasks = {t["name"]: t for t in reply["tasks"]}
        self.assertEqual(set(tasks), {"rabbit", "nap", "loop"})
        self.assertEqual((tasks["rabbit"]["kind"], tasks["rabbit"]["description"]), ("ticker", "the fast one"))
        self.assertFalse(tasks["nap"]["shielded"])
        self.assertEqual(tasks["loop"]["pid"], d.of("run", "loop")[0]["pid"])
        self.assertEqual((tasks["loop"]["runs"], tasks["loop"]["restarts"]), (1, 0))
        self.assertNotIn("last_exit_code", tasks["loop"], "no run has exited yet")
        # The table: a header, one aligned row per task.
        code, out, err = self.ctl("status")
        self.assertEqual(code, 0, err)
        lines = out.splitlines()
        self.assertIn(f"evtaskd pid {d.proc.pid}, running, 3 tasks", lines[0])
        self.assertTrue(lines[1].startswith("NAME"))
        self.assertIn(" RESTARTS ", lines[1])
        self.assertEqual({line.index(line.split()[1]) for line in lines[1:]}, {lines[1].index("STATE")},
                         "the states' column is aligned")
        code, reply, err = self.ctl_json("status", "nap")
        self.assertEqual([t["name"] for t in reply["tasks"]], ["nap"])
        code, out, err = self.ctl("status", "nosuch")
        self.assertEqual(code, 1)
        self.assertIn("no task 'nosuch'", err)
        d.kill(signal.SIGTERM)
        d.finish()

    def test_pause_and_resume_as_sigint(self):
        d = self.start(RACE)
        d.wait_for(lambda r: r["event"] == "step" and r["distance"] == 3)
        code, out, err = self.ctl("pause")
        self.assertEqual((code, out.strip()), (0, "paused every pausable task"), err)
        d.event("paused")
        paused_at = len(d.of("step", "rabbit"))
        self.assertEqual(self.tasks()["rabbit"]["state"], "paused")
        code, out, _ = self.ctl("pause")
        self.assertEqual(out.strip(), "every task was paused already")
        time.sleep(0.5)  # ten steps' worth at 20 a second
        self.assertLessEqual(len(d.of("step", "rabbit")), paused_at + 1, "steps went on while paused")
        # SIGINT and evtaskctl act on one gate: the signal resumes.
        d.kill(signal.SIGINT)
        d.event("resumed")
        d.wait_for(lambda r: r["event"] == "step" and r["distance"] >= paused_at + 3)
        code, out, _ = self.ctl("resume")
        self.assertEqual(out.strip(), "every task was running already")
        d.wait_for(lambda r: len(d.of("control")) == 3, what="three control records")
        control = d.of("control")
        self.assertEqual([r["verb"] for r in control], ["pause", "pause", "resume"])
        self.assertTrue(all(r["peer_uid"] == os.geteuid() and r["peer_pid"] > 0 for r in control))
        d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(), 0)

    def test_dump_says_what_each_task_waits_on(self):
        d = self.start(RACE + "[task.crunch]\nkind = blocking\nduration = 60s\ncheck_every = 1s\n\n")
        run = d.event("run", "loop")
        # Asked again until the call runs on its thread and the nap has
        # waited 200 ms (a lower bound the figures below check).
        deadline = time.monotonic() + 10
        while True:
            code, reply, err = self.ctl_json("dump")
            self.assertEqual(code, 0, err)
            tasks = {t["name"]: t for t in reply["tasks"]}
            if ([c["state"] for c in reply["calls"]] == ["running"] and tasks["nap"].get("waiting_ms", 0) >= 200
                    or time.monotonic() > deadline):
                break
            time.sleep(0.05)
        self.assertEqual(tasks["nap"]["waits_on"], "sleep")
        self.assertGreater(tasks["nap"]["deadline_in_ms"], 55_000)
        self.assertGreaterEqual(tasks["nap"]["waiting_ms"], 200)
        self.assertEqual((tasks["loop"]["waits_on"], tasks["loop"]["arg"]), ("child", run["pid"]))
        self.assertEqual(tasks["loop/stdout"]["waits_on"], "fd")
        self.assertEqual(tasks["crunch"]["waits_on"], "pool call")
        self.assertEqual([(c["task"], c["state"]) for c in reply["calls"]], [("crunch", "running")])
        code, out, err = self.ctl("dump")
        self.assertEqual(code, 0, err)
        self.assertTrue(out.startswith("TASK"))
        self.assertIn(f"child {run['pid']}", out)
        self.assertIn("BLOCKING CALL OF", out)
        d.kill(signal.SIGTERM)
        d.finish()

    def test_dump_stacks_shows_where_each_task_is(self):
        d = self.start(RACE)
        run = d.event("run", "loop")
        d.wait_for(lambda r: r["event"] == "step" and r["task"] == "rabbit" and r["distance"] == 2)
        code, reply, err = self.ctl_json("dump", "--stacks")
        self.assertEqual(code, 0, err)
        tasks = {t["name"]: t for t in reply["tasks"]}
        if platform.machine() not in ("x86_64", "aarch64", "riscv64"):
            self.skipTest(f"no backtraces on {platform.machine()} (evt_task_backtrace: -ENOTSUP)")
        # Each parked task's frames, innermost first: the library's wait,
        # the primitive it is parked in (named: the library's API is
        # exported), the daemon's job code; every frame in evtaskd, with
        # an address that addr2line takes.
        nap = tasks["nap"]["stack"]
        self.assertTrue(any(f.startswith("evt_sleep_until+0x") for f in nap), nap)
        self.assertTrue(any(f.startswith("evt_child_wait+0x") for f in tasks["loop"]["stack"]), tasks["loop"])
        self.assertTrue(all(re.search(r"evtaskd\+0x[0-9a-f]+\)?$", f) for f in nap), nap)
        self.assertLess(len(nap), 24, "the walk ended at the stack's first frame")
        addr2line = shutil.which("addr2line")
        if addr2line:
            binary = re.search(r"([^\s(]*evtaskd)\+0x[0-9a-f]+\)?$", nap[0]).group(1)
            addrs = [re.search(r"\+(0x[0-9a-f]+)\)?$", f).group(1) for f in nap]
            p = subprocess.run([addr2line, "-f", "-e", binary, *addrs], capture_output=True, text=True)
            names = p.stdout.splitlines()[0::2]
            for fn in ("evt__wait", "evt_sleep_until", "evd_job_run", "coro_entry"):
                self.assertIn(fn, names)
            self.assertLess(names.index("evt_sleep_until"), names.index("evd_job_run"), "innermost first")
        # Built with libdw, the daemon names its static functions itself,
        # innermost first, with the address addr2line takes still there.
        with self.subTest("static functions named"):
            if os.environ.get("EVTASKD_LIBDW") != "1":
                self.skipTest("evtaskd built without libdw: only dladdr's exported names")
            named = [f.split("+0x")[0] for f in nap]
            for fn in ("evt__wait", "evd_job_run", "coro_entry"):
                self.assertIn(fn, named, nap)
            self.assertLess(named.index("evt__wait"), named.index("evd_job_run"), "innermost first")
            self.assertRegex(nap[named.index("evd_job_run")], r"^evd_job_run\+0x[0-9a-f]+ .*\(\S*evtaskd\+0x")
        # The table: the frames under each task's row; none without --stacks.
        code, out, err = self.ctl("dump", "--stacks")
        self.assertEqual(code, 0, err)
        self.assertRegex(out, r"\nnap .*\n    #0  \S")
        code, reply, err = self.ctl_json("dump")
        self.assertEqual([t for t in reply["tasks"] if "stack" in t], [])
        code, out, err = self.ctl("status", "--stacks")
        self.assertEqual(code, 2)
        self.assertIn("--stacks for dump", err)
        self.assertEqual(run["task"], "loop")
        d.kill(signal.SIGTERM)
        d.finish()

    def test_pause_one_task(self):
        d = self.start(RACE + "[task.hare]\nkind = ticker\nspeed = 20\npausable = no\n\n")
        run = d.event("run", "loop")
        d.wait_for(lambda r: r["event"] == "step" and r["task"] == "rabbit" and r["distance"] == 3)
        code, out, err = self.ctl("pause", "rabbit", "loop", "hare")
        self.assertEqual((code, out.strip()), (0, "suspended 'rabbit', 'loop', 'hare'"), err)
        steps = len(d.of("step", "rabbit"))
        tasks = self.tasks()
        self.assertEqual([tasks[n]["state"] for n in ("rabbit", "loop", "hare", "nap")],
                         ["suspended", "suspended", "suspended", "waiting"])
        self.assertTrue(stopped(run["pid"]), "the run's process is stopped")
        # The loop-wide pause and resume leave them suspended.
        self.assertEqual(self.ctl("pause")[0], 0)
        self.assertEqual(self.ctl("resume")[0], 0)
        self.assertEqual(T.proc_stat(run["pid"])[0], "T")
        code, out, err = self.ctl("resume", "hare")
        self.assertEqual(code, 0, err)
        hare_at = len(d.of("step", "hare"))
        d.wait_for(lambda r: r["event"] == "step" and r["task"] == "hare" and r["distance"] >= hare_at + 5)
        self.assertLessEqual(len(d.of("step", "rabbit")), steps + 1, "a suspended task took steps")
        code, out, err = self.ctl("resume", "rabbit", "loop")
        self.assertEqual(code, 0, err)
        d.wait_for(lambda r: r["event"] == "step" and r["task"] == "rabbit" and r["distance"] >= steps + 3)
        self.assertNotEqual(T.proc_stat(run["pid"])[0], "T", "the run's process was continued")
        code, out, err = self.ctl("pause", "rabbit", "nosuch")
        self.assertEqual(code, 1)
        self.assertIn("no task 'nosuch'", err)
        self.assertEqual(self.tasks()["rabbit"]["state"], "waiting", "nothing was done when a name was wrong")
        # A suspended task is still cancelled by a shutdown.
        self.assertEqual(self.ctl("pause", "rabbit")[0], 0)
        d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(), 0)
        self.assertEqual(len(d.of("cancelled", "rabbit")), 1)

    def test_a_shutdown_lifts_suspensions(self):
        # A suspended shielded run drains at SIGTERM instead of waiting,
        # stopped, for the drain deadline; a suspended unshielded task is
        # cancelled; both with the loop paused as well. The run waits for
        # a file made once it is stopped, so it is alive whatever the load.
        flags = tempfile.mkdtemp(prefix="evtaskd-flag-")
        self.addCleanup(shutil.rmtree, flags, True)
        flag = os.path.join(flags, "go")
        writer = "while [ ! -e %s ]; do sleep 0.05; done; echo done" % flag
        d = self.start(RACE + T.exec_task("writer", writer, shell="yes", shield="yes"),
                       head="drain_timeout = 10s\n")
        run = d.event("run", "writer")
        self.assertEqual(self.ctl("pause", "writer", "rabbit")[0], 0)
        self.assertTrue(stopped(run["pid"]))
        open(flag, "w").close()
        self.assertEqual(self.ctl("pause")[0], 0)
        d.event("paused")
        d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(timeout=8), 0, "the suspended shielded run was forced")
        self.assertEqual([r["msg"] for r in d.of("output", "writer")], ["done"])
        self.assertEqual(len(d.of("finished", "writer")), 1)
        self.assertEqual(len(d.of("cancelled", "rabbit")), 1)
        self.assertEqual(d.of("forced"), [])

    def test_cancel_respects_shields_unless_forced(self):
        d = self.start(RACE + GUARD)
        code, out, err = self.ctl("cancel", "rabbit")
        self.assertEqual(code, 0, err)
        d.event("cancelled", "rabbit")
        code, out, err = self.ctl("cancel", "guard")
        self.assertIn("shielded", out)
        time.sleep(0.3)
        self.assertEqual(d.of("cancelled", "guard"), [])
        code, out, err = self.ctl("cancel", "--force", "guard")
        self.assertIn("through its shield", out)
        d.event("cancelled", "guard")
        code, out, err = self.ctl("cancel", "rabbit")
        self.assertEqual(code, 1)
        self.assertIn("not running", err)
        d.kill(signal.SIGTERM)
        d.finish()

    def test_stop_start_restart_and_run(self):
        d = self.start(RACE + T.exec_task("tick", "echo tock", schedule="interval", interval="1h"))
        d.event("finished", "tick")
        d.wait_for(lambda r: r["event"] == "step" and r["task"] == "rabbit" and r["distance"] == 2)
        tick = self.tasks()["tick"]
        self.assertEqual((tick["runs"], tick["last_exit_code"]), (1, 0))
        # stop, then start again: a new task, counting from 1.
        code, out, err = self.ctl("stop", "rabbit")
        self.assertEqual(code, 0, err)
        self.assertIn("evtaskctl start rabbit", out)
        d.event("cancelled", "rabbit")
        self.assertNotIn("rabbit", self.tasks())
        code, out, err = self.ctl("start", "rabbit")
        self.assertEqual((code, out.strip()), (0, "started task 'rabbit'"), err)
        spawned = d.wait_for(lambda r: r["event"] == "spawned" and r["task"] == "rabbit"
                             and len(d.of("spawned", "rabbit")) == 2, what="rabbit spawned again")
        first = d.wait_for(lambda r: r["event"] == "step" and r["task"] == "rabbit"
                           and d.records.index(r) > d.records.index(spawned), what="a step of the new rabbit")
        self.assertEqual(first["distance"], 1)
        code, out, err = self.ctl("start", "rabbit")
        self.assertEqual(code, 1)
        self.assertIn("running already", err)
        # restart: the old one ends, the new one starts.
        code, out, err = self.ctl("restart", "nap")
        self.assertEqual(code, 0, err)
        d.event("cancelled", "nap")
        d.wait_for(lambda r: r["event"] == "spawned" and r["task"] == "nap" and len(d.of("spawned", "nap")) == 2)
        # Parked in its sleep once it has taken its first step (before it,
        # the table says running).
        nap = self.tasks_until(lambda t: t["nap"]["state"] != "running")["nap"]
        self.assertEqual((nap["state"], nap["restarts"]), ("waiting", 1))
        self.assertEqual(self.tasks()["rabbit"]["restarts"], 1, "started again after a stop")
        # run: the interval job's next run now, not in an hour.
        code, out, err = self.ctl("run", "tick")
        self.assertEqual(code, 0, err)
        d.wait_for(lambda r: r["event"] == "run" and r["task"] == "tick" and r["run"] == 2, timeout=10)
        code, out, err = self.ctl("run", "rabbit")
        self.assertEqual(code, 1)
        self.assertIn("only exec jobs have runs", err)
        d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(), 0)

    def test_signal_reaches_an_exec_run(self):
        d = self.start(RACE + T.exec_task("family", "setsid sleep 200 & echo $!; sleep 200", shell="yes"))
        run = d.event("run", "loop")
        code, out, err = self.ctl("signal", "loop", "SIGFOO")
        self.assertEqual(code, 1)
        self.assertIn("not a signal", err)
        code, out, err = self.ctl("signal", "loop", "TERM")
        self.assertEqual(code, 0, err)
        self.assertIn(f"(pid {run['pid']})", out)
        end = d.event("failed", "loop")
        self.assertEqual(end["signal_number"], signal.SIGTERM)
        d.wait_for(lambda r: r["event"] == "run" and r["task"] == "family")
        code, reply, err = self.ctl_json("status", "family")
        self.assertEqual((reply["tasks"][0]["runs"], reply["tasks"][0]["failures"]), (1, 0))
        # Every process of the run, one that left for a session of its own too.
        fam = d.wait_for(lambda r: r["event"] == "output" and r["task"] == "family", what="the family's pid")
        code, out, err = self.ctl("signal", "family", "USR1")
        self.assertEqual(code, 0, err)
        self.assertIn("to 3 processes", out)
        self.assertTrue(T.wait_gone(int(fam["msg"]), 5), "the setsid descendant did not take the signal")
        code, out, err = self.ctl("signal", "rabbit", "TERM")
        self.assertEqual(code, 1)
        self.assertIn("kind ticker", err)
        d.kill(signal.SIGTERM)
        d.finish()

    def test_reload_answers_with_what_changed_or_the_error(self):
        d = self.start(RACE)
        with open(d.conf.name, "a") as f:
            f.write("[task.more]\nkind = sleep\nduration = 60s\n")
        code, out, err = self.ctl("reload")
        self.assertEqual((code, out.strip()), (0, "reloaded: 1 added, 0 removed, 0 changed, 3 unchanged"), err)
        d.event("added", "more")
        with open(d.conf.name, "a") as f:
            f.write("speed = fast\n")
        code, out, err = self.ctl("reload")
        self.assertEqual(code, 1)
        self.assertIn(f"{d.conf.name}:", err)
        self.assertIn("key 'speed' in [task.more]", err)
        self.assertIn("more", self.tasks(), "a failed reload leaves the tasks as they were")
        d.kill(signal.SIGTERM)
        d.finish()

    def test_health_and_shutdown(self):
        d = self.start(RACE + GUARD)
        code, out, err = self.ctl("health")
        self.assertEqual((code, out.strip()), (0, "ready (running)"), err)
        code, out, err = self.ctl("shutdown", "--drain-timeout", "300ms")
        self.assertEqual(code, 0, err)
        d.event("draining")
        code, reply, _ = self.ctl_json("health")
        if reply is not None:  # the drain may be over already
            self.assertEqual((code, reply["ready"]), (1, False))
        forced = d.event("forced", "guard", timeout=10)
        self.assertLess(forced["mono_us"] - d.of("draining")[0]["mono_us"], 5_000_000,
                        "the drain took --drain-timeout, not drain_timeout's 20s")
        self.assertEqual(d.finish(), 3)
        code, out, err = self.ctl("health")
        self.assertEqual(code, 3, "no daemon there now")
        self.assertIn("cannot reach evtaskd", err)

    def test_a_wedged_loop_fails_the_health_check(self):
        d = self.start("[task.w]\nkind = wedge\nduration = 200ms\n")
        time.sleep(0.5)
        code, out, err = self.ctl("health", "--timeout", "500ms")
        self.assertEqual(code, 4, (out, err))
        self.assertIn("did not answer in time", err)
        d.proc.kill()
        d.finish()

    def test_a_daemon_that_dies_mid_request(self):
        # The loop is wedged (for ever, after 100 ms), so the request waits
        # in the socket; once evtaskctl sleeps (in its poll for the answer:
        # its request was sent), the daemon is killed.
        d = self.start("[task.w]\nkind = wedge\nduration = 100ms\n")
        d.wait_for(lambda r: r["event"] == "step" and r["task"] == "w", what="the wedge")
        ctl = subprocess.Popen([EVTASKCTL, "--socket", self.sock, "health", "--timeout", "60s"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=childenv.default_signals)
        deadline = time.monotonic() + 10
        while (T.proc_stat(ctl.pid) or ("?",))[0] != "S":
            self.assertLess(time.monotonic(), deadline, "evtaskctl did not wait for its answer")
            time.sleep(0.01)
        d.proc.kill()
        d.proc.wait()
        out, err = ctl.communicate(timeout=10)
        self.assertEqual(ctl.returncode, 3, (out, err))
        self.assertEqual(out, "")
        self.assertEqual(len(err.splitlines()), 1, err)
        self.assertRegex(err, r"^evtaskctl: evtaskd at \S+ closed the connection without an answer")
        d.finish()

    def test_usage_errors(self):
        d = self.start(RACE)
        for args, words in ((["nosuch"], "unknown verb"), (["cancel"], "usage"), (["signal", "loop"], "usage"),
                            (["pause", "--force"], "--force is for cancel"), ([], "a verb is needed")):
            code, out, err = self.ctl(*args)
            self.assertEqual(code, 2, (args, err))
            self.assertIn(words, err)
        p = subprocess.run([EVTASKCTL, "--help"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0)
        for verb in ("status", "health", "dump", "pause", "resume", "cancel", "stop", "start", "restart", "run",
                     "signal", "reload", "shutdown"):
            self.assertIn(f"  {verb}", p.stdout)
        d.kill(signal.SIGTERM)
        d.finish()


class Socket(ControlTest):
    """Where the socket goes, and what holds it."""

    def test_a_stale_socket_is_replaced_and_a_live_one_refused(self):
        self.dir = tempfile.mkdtemp(prefix="evtaskd-control-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.sock = os.path.join(self.dir, "control")
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(self.sock)
        stale.close()  # the file stays, nobody listens: a daemon that died
        d = self.run_daemon(f"[daemon]\ncontrol_socket = {self.sock}\n\n" + RACE)
        d.started()
        self.assertEqual(self.ctl("health")[0], 0)
        second = T.Daemon(f"[daemon]\ncontrol_socket = {self.sock}\n\n" + RACE)
        self.assertEqual(second.finish(), 78)
        self.assertIn(f"evtaskd pid {d.proc.pid}, which is running", second.stderr)
        self.assertIn("key 'control_socket' in [daemon]", second.stderr)
        self.assertEqual(self.ctl("health")[0], 0, "the first daemon keeps its socket")
        d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(), 0)
        self.assertFalse(os.path.exists(self.sock), "the socket goes with the daemon")

    def test_none_and_the_default_place(self):
        d = self.run_daemon("[daemon]\ncontrol_socket = none\n\n" + RACE)
        d.started()
        self.assertEqual(d.of("control"), [])
        d.kill(signal.SIGTERM)
        d.finish()
        # Under systemd's RuntimeDirectory=: $RUNTIME_DIRECTORY/control,
        # which evtaskctl finds by the same rule.
        run_dir = tempfile.mkdtemp(prefix="evtaskd-runtime-")
        self.addCleanup(shutil.rmtree, run_dir, True)
        env = dict(os.environ, RUNTIME_DIRECTORY=run_dir)
        d = self.run_daemon(RACE, env=env)
        d.started()
        p = subprocess.run([EVTASKCTL, "health"], capture_output=True, text=True, env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(os.path.exists(os.path.join(run_dir, "control")))
        d.kill(signal.SIGTERM)
        d.finish()


class Access(ControlTest):
    """Who may ask what, from SO_PEERCRED (as root, with nobody as the
    other user)."""

    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("needs root, to be another user")

    def test_another_user_is_refused(self):
        d = self.start(RACE)
        self.assertEqual(os.stat(self.sock).st_mode & 0o777, 0o660)
        code, out, err = self.ctl("status", preexec=as_nobody)
        self.assertEqual(code, 3, err)
        self.assertIn("Permission denied", err)
        d.kill(signal.SIGTERM)
        d.finish()

    def test_readonly_lets_anyone_read_and_no_one_else_change(self):
        d = self.start(RACE, head="control_readonly = yes\n")
        self.assertEqual(os.stat(self.sock).st_mode & 0o777, 0o666)
        code, reply, err = self.ctl_json("status", preexec=as_nobody)
        self.assertEqual(code, 0, err)
        self.assertEqual(len(reply["tasks"]), 3)
        code, out, err = self.ctl("pause", preexec=as_nobody)
        self.assertEqual(code, 1)
        self.assertIn("for root, the daemon's user and control_group", err)
        self.assertEqual(self.ctl("pause")[0], 0, "root may")
        d.event("paused")
        d.kill(signal.SIGTERM)
        d.finish()
        self.assertEqual(len(d.of("paused")), 1, "nobody's pause paused nothing")
        self.assertEqual([r["peer_uid"] for r in d.of("control")], [0], "a refused request changes nothing")

    def test_control_group_may_change(self):
        d = self.start(RACE, head="control_group = nogroup\n")
        st = os.stat(self.sock)
        self.assertEqual((st.st_gid, st.st_mode & 0o777), (65534, 0o660))
        code, out, err = self.ctl("pause", preexec=as_nobody)
        self.assertEqual(code, 0, err)
        rec = d.event("control")
        self.assertEqual((rec["peer_uid"], rec["verb"]), (NOBODY, "pause"))
        d.kill(signal.SIGTERM)
        d.finish()


class Hostile(ControlTest):
    """Clients that misbehave: each gets an error or is closed, and the
    daemon's tasks keep their timing."""

    def connect(self):
        s = socket.socket(socket.AF_UNIX)
        s.connect(self.sock)
        return s

    def answer(self, s):
        s.settimeout(10)
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return json.loads(data) if data else None

    def step_gaps(self, d):
        steps = [r["mono_us"] for r in d.of("step", "rabbit")]
        return [b - a for a, b in zip(steps, steps[1:])]

    def test_garbage_and_a_huge_request_get_errors(self):
        d = self.start(RACE)
        for payload, code in ((b"hello\n", "bad-request"), (b"[1,2]\n", "bad-request"),
                              (b'{"verb":"status","version":2}\n', "version"), (b'{"verb":7}\n', "unknown-verb")):
            s = self.connect()
            s.sendall(payload)
            self.assertEqual(self.answer(s)["code"], code, payload)
            s.close()
        s = self.connect()
        try:
            s.sendall(b"x" * (100 << 20))
        except (BrokenPipeError, ConnectionResetError):
            pass
        reply = self.answer(s) if s.fileno() >= 0 else None
        if reply is not None:
            self.assertEqual(reply["code"], "too-large")
        s.close()
        self.assertEqual(self.ctl("health")[0], 0)
        d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(), 0)

    def test_slow_and_silent_clients_are_closed_and_timing_holds(self):
        d = self.start(RACE)
        d.wait_for(lambda r: r["event"] == "step" and r["distance"] == 2)
        slow = self.connect()
        idle = [self.connect() for _ in range(10)]
        started = time.monotonic()
        closed = threading.Event()

        def drip():
            try:
                for ch in b'{"verb":"status"}':
                    slow.send(bytes([ch]))
                    time.sleep(1)
            except OSError:
                closed.set()
        threading.Thread(target=drip, daemon=True).start()
        # 1,000 connections at once: those past the cap are told "busy".
        flood, busy = [], 0
        for _ in range(1000):
            try:
                flood.append(self.connect())
            except OSError:
                break
        for s in flood:
            s.settimeout(0.2)
            try:
                data = s.recv(4096)
                busy += b'"busy"' in data
            except (socket.timeout, OSError):
                pass
        self.assertGreater(busy, 0, "connections past the cap were refused with 'busy'")
        self.assertTrue(closed.wait(15), "a client sending a byte a second was not closed")
        self.assertLess(time.monotonic() - started, 15)
        for s in idle + flood:
            s.close()
        self.assertEqual(self.ctl("health")[0], 0, "the socket still serves")
        gaps = self.step_gaps(d)
        self.assertGreater(len(gaps), 20)
        self.assertLess(max(gaps), 250_000, f"a step came late: {max(gaps)} us between two (50 ms is the pace)")
        d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(), 0)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], *sys.argv[1:]], verbosity=2)
