#!/usr/bin/env python3
"""How operators shape jobs (issue 23), through the real daemon: the
restart policy's back-off, its reset and the start limit; the order
between tasks (after, requires, ready), its reverse at shutdown, and
what a reload does to it.

Run by meson (`meson test --suite jobs`), one class per meson test, with
EVTASKD and EVTASKCTL set to the built programs. Every figure is measured
from the records' own monotonic times (mono_us), and every check waits for
a record, never for a span of time.
"""
import http.client
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_evtaskd as T  # noqa: E402  (the Daemon helper and its conventions)
import test_control as C  # noqa: E402  (evtaskctl against a daemon)
import test_metrics as M  # noqa: E402  (a free port for the HTTP endpoint)

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



def sleep_task(name, duration="60s", **keys):
    text = f"[task.{name}]\nkind = sleep\nduration = {duration}\n"
    for key, value in keys.items():
        text += f"{key} = {value}\n"
    return text + "\n"


# A small notifier: READY=1 and a STATUS= to $NOTIFY_SOCKET, as sd_notify
# sends them (an abstract name after '@'), then it runs on.
NOTIFIER = """import os, socket, time
name = os.environ["NOTIFY_SOCKET"]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.sendto(b"STATUS=warming up", "\\0" + name[1:])
s.sendto(b"READY=1\\nSTATUS=serving", "\\0" + name[1:])
time.sleep(60)
"""


class Order(C.ControlTest):
    def gate(self):
        """A file to create, and an exec task's command that waits for it
        and exits 0."""
        d = tempfile.mkdtemp(prefix="evtaskd-jobs-")
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "go")
        return path, f"sh -c 'while [ ! -e {path} ]; do sleep 0.02; done'"

    def index(self, d, pred, what):
        rec = d.wait_for(pred, what=what)
        return d.records.index(rec)

    def test_after_and_requires_start_in_order_and_status_says_why(self):
        path, wait = self.gate()
        d = self.start(exec_task("migrate", wait) +
                       exec_task("api", "sleep 60", requires="migrate", ready="started") +
                       sleep_task("web", after="api"))
        d.wait_for(lambda r: r["event"] == "dependency" and r["task"] == "web" and r.get("waiting_for") == "api",
                   what="web waiting for api")
        tasks = self.tasks()
        self.assertEqual(tasks["api"]["waiting_for"], "migrate")
        self.assertEqual(tasks["web"]["waiting_for"], "api")
        self.assertNotIn("waiting_for", tasks["migrate"])
        code, out, err = self.ctl("status")
        self.assertEqual(code, 0, err)
        self.assertIn("waiting for migrate to be ready", out)
        self.assertEqual(d.of("run", "api"), [])
        open(path, "w").close()
        ready = self.index(d, lambda r: r["event"] == "ready" and r["task"] == "migrate", "migrate ready")
        self.assertEqual(d.records[ready]["how"], "exited")
        api = self.index(d, lambda r: r["event"] == "run" and r["task"] == "api", "api's run")
        api_ready = self.index(d, lambda r: r["event"] == "ready" and r["task"] == "api", "api ready")
        web = self.index(d, lambda r: r["event"] == "ready" and r["task"] == "web", "web started")
        self.assertLess(ready, api)
        self.assertLess(api, api_ready)
        self.assertLess(api_ready, web)
        self.assertEqual(d.records[api_ready]["how"], "started")
        self.assertNotIn("waiting_for", self.tasks()["web"])

    def check_notify(self, command, **keys):
        d = self.start(exec_task("svc", command, ready="notify", **keys) + sleep_task("client", after="svc"))
        ready = d.wait_for(lambda r: r["event"] == "ready" and r["task"] == "svc", what="svc ready")
        self.assertEqual(ready["how"], "notify")
        run = d.event("run", "svc")
        client = d.wait_for(lambda r: r["event"] == "ready" and r["task"] == "client", what="client started")
        self.assertLess(d.records.index(run), d.records.index(ready))
        self.assertLess(d.records.index(ready), d.records.index(client))
        return d

    def test_ready_notify_with_systemd_notify(self):
        if not shutil.which("systemd-notify"):
            self.skipTest("systemd-notify is not installed (Debian: systemd)")
        d = self.check_notify("sh -c 'sleep 0.2; systemd-notify --ready --status=\"up and running\"; sleep 60'")
        d.wait_for(lambda r: r["event"] == "log" and r["task"] == "svc" and r.get("status") == "up and running",
                   what="svc's status")
        self.assertEqual(self.tasks()["svc"]["notify_status"], "up and running")

    def test_ready_notify_under_another_user(self):
        if os.geteuid() != 0:
            self.skipTest("only root runs a job as another user")
        if not shutil.which("systemd-notify"):
            self.skipTest("systemd-notify is not installed (Debian: systemd)")
        self.check_notify("sh -c 'systemd-notify --ready; sleep 60'", user="nobody")

    def test_ready_notify_from_a_small_notifier(self):
        path, _ = self.gate()
        script = os.path.join(os.path.dirname(path), "notifier.py")
        with open(script, "w") as f:
            f.write(NOTIFIER)
        d = self.check_notify(f"{T.PYTHON} {script}")
        d.wait_for(lambda r: r["event"] == "log" and r["task"] == "svc" and r.get("status") == "serving",
                   what="svc's last status")
        self.assertEqual(self.tasks()["svc"]["notify_status"], "serving")

    def test_a_run_that_never_notifies_holds_its_dependents(self):
        path, wait = self.gate()
        d = self.start(exec_task("svc", wait, ready="notify") + sleep_task("client", after="svc"))
        d.wait_for(lambda r: r["event"] == "dependency" and r["task"] == "client", what="client waiting")
        open(path, "w").close()
        d.event("finished", "svc")
        # Ended without READY=1: it ran, so `after` lets the client start.
        d.wait_for(lambda r: r["event"] == "ready" and r["task"] == "client", what="client started")
        self.assertEqual(d.of("ready", "svc"), [])

    def test_a_module_is_ready_when_it_says_so(self):
        if not os.environ.get("MODULE_HELLO"):
            self.skipTest("MODULE_HELLO is not set: run through meson test")
        d = self.start(f"[task.greeter]\nkind = module\npath = {os.environ['MODULE_HELLO']}\nentry = hello_task\n"
                       "arg.every = 100\n\n" + sleep_task("listener", after="greeter"))
        greeting = self.index(d, lambda r: r["event"] == "log" and r["task"] == "greeter", "the first greeting")
        ready = self.index(d, lambda r: r["event"] == "ready" and r["task"] == "greeter", "greeter ready")
        listener = self.index(d, lambda r: r["event"] == "ready" and r["task"] == "listener", "listener started")
        self.assertEqual(d.records[ready]["how"], "module")
        self.assertLess(greeting, ready)
        self.assertLess(ready, listener)

    def test_requires_propagates_failure_and_stop(self):
        d = self.start(exec_task("broken", "false") + sleep_task("needs-broken", requires="broken") +
                       sleep_task("needs-that", requires="needs-broken") + sleep_task("only-after", after="broken") +
                       exec_task("db", "sleep 60", ready="started") + sleep_task("app", requires="db"))
        # A required task that failed: never started, down the chain.
        for task, req in (("needs-broken", "broken"), ("needs-that", "needs-broken")):
            rec = d.wait_for(lambda r: r["event"] == "dependency" and r["task"] == task and "not starting" in r["msg"],
                             what=f"{task} not starting")
            self.assertEqual(rec["requires"], req)
            d.event("cancelled", task)
            self.assertEqual(d.of("ready", task), [])
        # `after` alone orders, it does not require.
        d.wait_for(lambda r: r["event"] == "ready" and r["task"] == "only-after", what="only-after started")
        # A required task stopped: its dependent stops too.
        d.wait_for(lambda r: r["event"] == "ready" and r["task"] == "app", what="app started")
        code, out, err = self.ctl("stop", "db")
        self.assertEqual(code, 0, err)
        rec = d.wait_for(lambda r: r["event"] == "dependency" and r["task"] == "app" and "stopping" in r["msg"],
                         what="app stopping with db")
        self.assertIn("requires db, which stopped", rec["msg"])
        d.event("cancelled", "app")

    def test_shutdown_stops_dependents_first(self):
        # The uploader needs the dump running; shielded, it finishes its
        # run before the dump is stopped. The viewer is cancelled first.
        d = self.start(exec_task("dump", "sleep 60", ready="started") +
                       exec_task("uploader", "sh -c 'sleep 0.5; echo uploaded'", shield="yes", after="dump") +
                       sleep_task("viewer", requires="dump"), head="drain_timeout = 10s\n")
        d.event("run", "uploader")
        d.wait_for(lambda r: r["event"] == "ready" and r["task"] == "viewer", what="viewer started")
        sent = d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(), 0)
        uploaded = self.index(d, lambda r: r["event"] == "finished" and r["task"] == "uploader", "upload done")
        viewer = self.index(d, lambda r: r["event"] == "cancelled" and r["task"] == "viewer", "viewer cancelled")
        dump = self.index(d, lambda r: r["event"] == "cancelled" and r["task"] == "dump", "dump cancelled")
        self.assertLess(uploaded, dump)
        self.assertLess(viewer, dump)
        self.assertEqual(d.of("output", "uploader")[0]["msg"], "uploaded")
        # The dump's run ended after the upload, within the drain.
        dump_end = d.records[dump]
        self.assertGreater(dump_end["mono_us"], d.records[uploaded]["mono_us"])
        self.assertLess(dump_end["mono_us"] - sent, 10_000_000)
        self.assertEqual(d.of("forced"), [])

    def test_readyz_does_not_wait_for_a_waiting_task(self):
        path, wait = self.gate()
        port = M.free_port()
        d = self.start(exec_task("slow", wait) + sleep_task("held", after="slow"),
                       head=f"http_listen = 127.0.0.1:{port}\n")
        d.wait_for(lambda r: r["event"] == "dependency" and r["task"] == "held", what="held waiting")
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        self.addCleanup(c.close)
        c.request("GET", "/readyz")
        self.assertEqual(c.getresponse().status, 200, "a task waiting for another is no reason to be unready")
        self.assertEqual(self.tasks()["held"]["waiting_for"], "slow")

    def test_reload_adds_and_removes_edges(self):
        path, wait = self.gate()
        d = self.start(exec_task("slow", wait) + sleep_task("held", after="slow"))
        d.wait_for(lambda r: r["event"] == "dependency" and r["task"] == "held", what="held waiting")
        with open(d.conf.name, "w") as f:
            f.write(f"[daemon]\ncontrol_socket = {self.sock}\n\n" + exec_task("slow", wait) +
                    sleep_task("held") + sleep_task("new", after="slow"))
        d.kill(signal.SIGHUP)
        d.event("reloaded")
        # The edge removed: held starts at once, in the same task.
        d.wait_for(lambda r: r["event"] == "ready" and r["task"] == "held", what="held started")
        self.assertEqual(len(d.of("spawned", "held")), 1)
        # The edge added: new waits until slow is ready.
        d.wait_for(lambda r: r["event"] == "dependency" and r["task"] == "new", what="new waiting")
        self.assertEqual(self.tasks()["new"]["waiting_for"], "slow")
        open(path, "w").close()
        slow = self.index(d, lambda r: r["event"] == "ready" and r["task"] == "slow", "slow ready")
        new = self.index(d, lambda r: r["event"] == "ready" and r["task"] == "new", "new started")
        self.assertLess(slow, new)
        # A reload that would make a cycle is refused, and changes nothing.
        with open(d.conf.name, "w") as f:
            f.write(f"[daemon]\ncontrol_socket = {self.sock}\n\n" + exec_task("slow", wait, after="new") +
                    sleep_task("held") + sleep_task("new", after="slow"))
        d.kill(signal.SIGHUP)
        failed = d.event("reload-failed")
        self.assertIn("a cycle: slow -> new -> slow", failed["msg"])


class OrderConfig(unittest.TestCase):
    def check(self, text, *words):
        with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
            f.write(text)
        self.addCleanup(os.unlink, f.name)
        p = subprocess.run([T.EVTASKD, "--check-config", "--config", f.name], capture_output=True, text=True,
                           preexec_fn=T.childenv.default_signals)
        self.assertEqual(p.returncode, 78, p.stderr)
        for w in words:
            self.assertIn(w.replace("FILE", f.name), p.stderr)

    def test_a_cycle_is_named(self):
        self.check(sleep_task("a", after="b") + sleep_task("b", requires="c") + sleep_task("c", after="a"),
                   "FILE:14: key 'after' in [task.c]: a cycle: a -> b -> c -> a")

    def test_an_unknown_name_is_named(self):
        self.check(sleep_task("a", after="nope"), "FILE:4: key 'after' in [task.a]: no task 'nope' in the config")


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0]] + sys.argv[1:], verbosity=2)
