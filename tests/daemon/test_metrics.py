#!/usr/bin/env python3
"""evtaskd's HTTP endpoint ([daemon] http_listen): /metrics scraped by a
real Prometheus and checked by promtool, /livez and /readyz as probes use
them, and clients that misbehave.

Run by meson (`meson test --suite metrics`), one class per meson test, with
EVTASKD set to the built daemon. Each daemon listens on a free loopback
port; Prometheus gets one of its own and a temporary storage directory.
The Prometheus class exits 77 only where the prometheus package is not
installed (.ci/install-deps installs it).
"""
import http.client
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_evtaskd as T  # noqa: E402  (the Daemon helper and its conventions)

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
MAN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "man", "evtaskd.8")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class MetricsTest(T.DaemonTest):
    def start(self, config, head=""):
        self.port = free_port()
        d = self.run_daemon(f"[daemon]\nhttp_listen = 127.0.0.1:{self.port}\n{head}\n" + config)
        d.started()
        return d

    def get(self, path, method="GET", timeout=5, headers=None):
        """(status, body) of one request."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, headers=headers or {})
            r = c.getresponse()
            return r.status, r.read().decode()
        finally:
            c.close()

    def get_while_flooded(self):
        """/metrics, waiting for a connection slot: the flood's idle ones
        are closed by the connection timeout, or by their end."""
        return self.get("/metrics", timeout=30)[1]

    def step_gaps(self, d, task="rabbit"):
        steps = [r["mono_us"] for r in d.of("step", task)]
        return [b - a for a, b in zip(steps, steps[1:])]


def samples(text):
    """{(name, frozenset(labels)): value} of an exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, value = line.rsplit(" ", 1)
        name, _, labels = head.partition("{")
        pairs = frozenset(tuple(p.split("=", 1)) for p in labels.rstrip("}").split(",") if p) if labels else frozenset()
        out[(name, frozenset((k, v.strip('"')) for k, v in pairs))] = float(value)
    return out


def sample(text, name, **labels):
    want = frozenset(labels.items())
    found = [v for (n, ls), v in samples(text).items() if n == name and want <= ls]
    return found[0] if found else None


TICK = "[task.tick]\nkind = exec\ncommand = true\nschedule = interval\ninterval = 200ms\n\n"
RABBIT = "[task.rabbit]\nkind = ticker\nspeed = 20\n\n"
AGAIN = "[task.again]\nkind = exec\ncommand = true\nrestart = always\nrestart_delay = 50ms\n\n"
GUARD = "[task.guard]\nkind = sleep\nduration = 60s\nshield = yes\n\n"


class Endpoint(MetricsTest):
    """The three paths, the others, the methods, and the exposition."""

    def test_paths_and_methods(self):
        d = self.start(TICK + RABBIT)
        self.assertEqual(self.get("/livez"), (200, "ok\n"))
        self.assertEqual(self.get("/readyz"), (200, "ready\n"))
        status, body = self.get("/metrics")
        self.assertEqual(status, 200)
        self.assertIn("# TYPE evtask_task_runs_total counter", body)
        self.assertEqual(self.get("/metrics", "HEAD")[0], 200)
        for path in ("/", "/metrics/", "/nosuch", "/../metrics", "/metrics/../livez", "/%2e%2e/metrics"):
            self.assertEqual(self.get(path)[0], 404, path)
        for method in ("POST", "PUT", "DELETE", "OPTIONS", "PATCH"):
            self.assertEqual(self.get("/metrics", method)[0], 405, method)
        d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(), 0)

    def test_the_exposition(self):
        d = self.start(TICK + RABBIT + AGAIN + "[task.odd.name-1]\nkind = sleep\nduration = 60s\n\n"
                       + "[task.bad]\nkind = exec\ncommand = sh -c 'echo out; exit 3'\n\n"
                       + "[task.late]\nkind = exec\ncommand = sleep 60\ntimeout = 100ms\n\n"
                       + "[task.nodir]\nkind = exec\ncommand = true\nworking_directory = /nonexistent\n\n"
                       + "[task.giveup]\nkind = exec\ncommand = false\nrestart = always\nrestart_delay = 10ms\n"
                       + "start_limit = 2 / 1min\n\n")
        d.event("failed", "bad")
        d.event("failed", "late")
        d.event("failed", "nodir")
        d.wait_for(lambda r: r["event"] == "failed" and r["task"] == "giveup" and "start_limit" in r,
                   what="giveup's start limit")
        d.wait_for(lambda r: r["event"] == "run" and r["task"] == "again" and r["run"] >= 3, what="3 runs")
        d.wait_for(lambda r: r["event"] == "finished" and r["task"] == "tick" and r["run"] >= 3, what="3 runs")
        status, text = self.get("/metrics")
        self.assertEqual(status, 200)
        self.assertGreaterEqual(sample(text, "evtask_task_runs_total", task="tick", kind="exec"), 3)
        self.assertEqual(sample(text, "evtask_task_runs_total", task="rabbit", kind="ticker"), 1)
        self.assertEqual(sample(text, "evtask_task_state", task="odd.name-1", state="waiting"), 1)
        self.assertEqual(sample(text, "evtask_task_state", task="odd.name-1", state="running"), 0)
        self.assertEqual(sample(text, "evtask_task_failures_total", task="bad", reason="exit"), 1)
        self.assertEqual(sample(text, "evtask_task_failures_total", task="bad", reason="timeout"), 0)
        self.assertEqual(sample(text, "evtask_task_failures_total", task="late", reason="timeout"), 1)
        self.assertEqual(sample(text, "evtask_task_failures_total", task="late", reason="signal"), 0)
        self.assertEqual(sample(text, "evtask_task_failures_total", task="nodir", reason="cannot_start"), 1)
        self.assertEqual(sample(text, "evtask_task_failures_total", task="giveup", reason="start_limit"), 1)
        self.assertEqual(sample(text, "evtask_task_failures_total", task="giveup", reason="exit"), 2)
        # Restarts are the policy's (`restarting` records), not a schedule's runs.
        self.assertGreaterEqual(sample(text, "evtask_task_restarts_total", task="again"), 2)
        self.assertEqual(sample(text, "evtask_task_restarts_total", task="giveup"), 1)
        self.assertEqual(sample(text, "evtask_task_restarts_total", task="tick"), 0)
        self.assertEqual(sample(text, "evtask_task_restarts_total", task="rabbit"), 0)
        # The histograms: cumulative buckets up to +Inf, which is the count.
        ended = sample(text, "evtask_task_run_duration_seconds_count", task="tick")
        self.assertGreaterEqual(ended, 3)
        self.assertEqual(sample(text, "evtask_task_run_duration_seconds_bucket", task="tick", le="+Inf"), ended)
        self.assertEqual(sample(text, "evtask_task_run_duration_seconds_bucket", task="late", le="0.1"), 0)
        self.assertEqual(sample(text, "evtask_task_run_duration_seconds_bucket", task="late", le="1"), 1)
        steps = sample(text, "evtask_step_duration_seconds_count")
        self.assertGreater(steps, 10)
        self.assertEqual(sample(text, "evtask_step_duration_seconds_bucket", le="+Inf"), steps)
        self.assertLessEqual(sample(text, "evtask_step_duration_seconds_bucket", le="0.001"), steps)
        self.assertEqual(sample(text, "evtask_held_tasks"), 0)
        self.assertEqual(sample(text, "evtask_calls_abandoned"), 0)
        self.assertEqual(sample(text, "evtask_log_records_dropped_total"), 0)
        self.assertEqual(sample(text, "evtask_task_last_exit_code", task="bad"), 3)
        self.assertEqual(sample(text, "evtask_task_output_records_total", task="bad"), 1)
        self.assertEqual(sample(text, "evtask_task_output_bytes_total", task="bad"), 3)
        self.assertEqual(sample(text, "evtask_tasks", state="done"), 4)
        self.assertEqual(sample(text, "evtask_paused"), 0)
        self.assertEqual(sample(text, "evtask_phase", phase="running"), 1)
        self.assertEqual(sample(text, "evtask_build_info"), 1)
        self.assertGreater(sample(text, "evtask_context_switches_total"), 0)
        self.assertGreater(sample(text, "process_resident_memory_bytes"), 1 << 20)
        self.assertGreater(sample(text, "process_open_fds"), 3)
        self.assertAlmostEqual(sample(text, "process_start_time_seconds"), time.time(), delta=60)
        self.assertIsNotNone(sample(text, "process_cpu_seconds_total"))
        # Every family has its HELP and TYPE once, and evtaskd(8) lists it.
        families = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")]
        self.assertEqual(len(families), len(set(families)))
        with open(MAN) as f:
            man = f.read()
        self.assertEqual([f for f in families if f"\\fB{f}\\fR (" not in man], [], "not in evtaskd(8) METRICS")
        if PROMTOOL:
            p = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True)
            self.assertEqual((p.returncode, p.stdout + p.stderr), (0, ""))
        d.kill(signal.SIGINT)
        d.event("paused")
        text = self.get("/metrics")[1]
        self.assertEqual(sample(text, "evtask_paused"), 1)
        self.assertEqual(sample(text, "evtask_signals_total", signal="SIGINT"), 1)
        d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(), 0)

    def test_a_unix_socket(self):
        tmp = tempfile.mkdtemp(prefix="evtaskd-http-")
        self.addCleanup(shutil.rmtree, tmp, True)
        path = os.path.join(tmp, "http.sock")
        d = self.run_daemon(f"[daemon]\nhttp_listen = {path}\n\n" + RABBIT)
        d.started()
        p = subprocess.run(["curl", "-s", "--unix-socket", path, "http://localhost/livez"], capture_output=True,
                           text=True, timeout=10)
        self.assertEqual(p.stdout, "ok\n")
        d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(), 0)
        self.assertFalse(os.path.exists(path), "the socket is removed at the end")

    def test_a_port_in_use_is_a_config_error(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            d = self.run_daemon(f"[daemon]\nhttp_listen = 127.0.0.1:{s.getsockname()[1]}\n\n" + RABBIT)
            self.assertEqual(d.finish(), 78)
            self.assertIn("Address already in use", d.stderr)


class Probes(MetricsTest):
    """/readyz through a shutdown and a pause, /livez through a wedge."""

    def test_readyz_is_503_from_the_stopping_record(self):
        d = self.start(RABBIT + GUARD, head="drain_timeout = 30s\n")
        self.assertEqual(self.get("/readyz")[0], 200)
        d.kill(signal.SIGTERM)
        d.event("stopping")
        self.assertEqual(self.get("/readyz"), (503, "shutting down\n"))
        self.assertEqual(self.get("/livez")[0], 200, "alive while draining")
        d.event("draining")
        self.assertEqual(self.get("/readyz")[0], 503)
        d.proc.kill()
        d.proc.wait()

    def test_paused_is_ready_unless_told_otherwise(self):
        for head, want in (("", 200), ("ready_when_paused = no\n", 503)):
            with self.subTest(head=head):
                d = self.start(RABBIT, head=head)
                d.kill(signal.SIGINT)
                d.event("paused")
                self.assertEqual(self.get("/readyz")[0], want)
                d.kill(signal.SIGINT)
                d.event("resumed")
                self.assertEqual(self.get("/readyz")[0], 200)
                d.kill(signal.SIGTERM)
                self.assertEqual(d.finish(), 0)

    def test_livez_fails_while_the_loop_is_wedged(self):
        d = self.start("[task.w]\nkind = wedge\nduration = 300ms\n")
        self.assertEqual(self.get("/livez")[0], 200)
        d.wait_for(lambda r: r["event"] == "step" and r["task"] == "w", what="the wedge")
        with self.assertRaises((socket.timeout, TimeoutError)):
            self.get("/livez", timeout=1)
        # As Kubernetes' httpGet probe would see it: no answer in its time.
        p = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "1",
                            f"http://127.0.0.1:{self.port}/livez"], capture_output=True, text=True)
        self.assertEqual((p.returncode, p.stdout), (28, "000"), "curl timed out (28) without a status")
        d.proc.kill()
        d.proc.wait()


class Hostile(MetricsTest):
    """Clients that misbehave are answered or closed, and a ticker keeps its
    pace meanwhile."""

    def test_bad_clients_do_not_disturb_tasks(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 4096), hard), hard))
        d = self.start(RABBIT)
        d.wait_for(lambda r: r["event"] == "step" and r["distance"] == 3)
        # Oversize headers: refused (431) or closed.
        s = socket.create_connection(("127.0.0.1", self.port))
        s.settimeout(10)
        try:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n")
        except OSError:
            pass
        try:
            answer = s.recv(4096)
        except OSError:
            answer = b""
        self.assertTrue(answer == b"" or answer.split()[1] in (b"431", b"413", b"400"), answer[:80])
        s.close()
        # Slowloris: a byte a second is closed by the connection timeout.
        closed, connected = threading.Event(), threading.Event()

        def drip():
            started = time.monotonic()
            s = socket.create_connection(("127.0.0.1", self.port))
            connected.set()
            try:
                for b in b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 60:
                    s.sendall(bytes([b]))
                    time.sleep(1)
            except OSError:
                drip.took = time.monotonic() - started
                closed.set()
            s.close()
        threading.Thread(target=drip, daemon=True).start()
        # Accepted before the flood: the backlog is served in order, and a
        # request after it was answered.
        connected.wait(10)
        self.assertEqual(self.get("/livez")[0], 200)
        # 1,000 connections at once: the daemon takes CONNECTIONS_MAX of
        # them, the kernel's backlog holds some more, the rest wait for a
        # SYN answer; the daemon's descriptors stay bounded.
        flood = []
        for _ in range(1000):
            f = socket.socket()
            f.setblocking(False)
            f.connect_ex(("127.0.0.1", self.port))
            flood.append(f)
        # What the loop takes of them, counted by the kernel: a scrape
        # during the flood would wait for a slot, and its SYN, dropped
        # while the backlog is full, for a retransmission that finds room.
        def open_fds():
            return len(os.listdir(f"/proc/{d.proc.pid}/fd"))
        wait_until(lambda: open_fds() >= 64, 10, "the loop taking its share")
        time.sleep(0.5)  # anything past the limit would be taken by now
        self.assertLess(open_fds(), 64 + 32, "connections past the limit are not taken")
        for f in flood:
            f.close()
        fds = sample(self.get_while_flooded(), "process_open_fds")
        self.assertLess(fds, 64 + 32)
        # Each misbehaviour answered, the endpoint still serving.
        self.assertTrue(closed.wait(30), "a client sending a byte a second was not closed")
        self.assertLess(drip.took, 15, "the slow client outlived the connection deadline (10 s)")
        self.assertEqual(self.get("/livez")[0], 200)
        self.assertEqual(self.get("/metrics", "POST")[0], 405)
        self.assertEqual(self.get("/%2e%2e/%2e%2e/etc/passwd")[0], 404)
        gaps = self.step_gaps(d)
        self.assertGreater(len(gaps), 20)
        self.assertLess(max(gaps), 250_000, f"a step came late: {max(gaps)} us between two (50 ms is the pace)")
        d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(), 0)


    def test_serving_resumes_after_the_connection_limit(self):
        d = self.start(RABBIT)
        base = len(os.listdir(f"/proc/{d.proc.pid}/fd"))
        idle = [socket.create_connection(("127.0.0.1", self.port)) for _ in range(64)]
        wait_until(lambda: len(os.listdir(f"/proc/{d.proc.pid}/fd")) >= base + 64, 10, "64 connections taken")
        for s in idle:
            s.close()
        # Well before the 5 s timeout: the freed slots are used at once.
        self.assertEqual(self.get("/livez", timeout=3)[0], 200)
        d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(), 0)


class Large(MetricsTest):
    """A scrape of 10,000 tasks is whole, and holds the loop less than
    slow_step_warn's default (100 ms): it is written a piece at a time."""

    def test_ten_thousand_tasks(self):
        n = 10000
        d = self.start("[task.rabbit]\nkind = ticker\nspeed = 100\n\n"
                       + "".join(f"[task.s{i}]\nkind = sleep\nduration = 1h\n\n" for i in range(n)),
                       head="slow_step_warn = 0\n")
        d.wait_for(lambda r: r["event"] == "step" and r["distance"] == 20, timeout=60)
        since = T.now_us()
        for _ in range(3):
            status, text = self.get("/metrics", timeout=30)
            self.assertEqual(status, 200)
        until = T.now_us()
        d.wait_for(lambda r: r["event"] == "step" and r["mono_us"] > until)
        states = [line for line in text.splitlines() if line.startswith("evtask_task_state{")]
        self.assertEqual(len(states), 6 * (n + 1))
        # The sleepers wait; the ticker may be between its steps or at one.
        by_state = {st: sample(text, "evtask_tasks", state=st) for st in ("waiting", "running")}
        self.assertGreaterEqual(by_state["waiting"], n)
        self.assertEqual(by_state["waiting"] + by_state["running"], n + 1, by_state)
        self.assertTrue(text.endswith("\n") and "process_start_time_seconds " in text)
        if PROMTOOL:
            p = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True)
            self.assertEqual((p.returncode, p.stdout + p.stderr), (0, ""))
        steps = [r["mono_us"] for r in d.of("step", "rabbit") if since <= r["mono_us"] <= until]
        hold = max(b - a for a, b in zip(steps, steps[1:])) - 10_000
        self.assertLess(hold, 100_000, f"a scrape held the loop {hold} us")
        d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(), 0)


class Prometheus(MetricsTest):
    """A real Prometheus scrapes the daemon every second; its query API sees
    the series change as the daemon does."""

    def setUp(self):
        if not PROMETHEUS:
            print("prometheus is not installed (Debian package prometheus)", file=sys.stderr)
            sys.exit(77)

    def start_prometheus(self, target):
        tmp = tempfile.mkdtemp(prefix="evtaskd-prometheus-")
        self.addCleanup(shutil.rmtree, tmp, True)
        with open(os.path.join(tmp, "prometheus.yml"), "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                    f"scrape_configs:\n  - job_name: evtaskd\n    static_configs:\n"
                    f"      - targets: ['{target}']\n")
        self.prom_port = free_port()
        log = open(os.path.join(tmp, "prometheus.log"), "w")
        self.addCleanup(log.close)
        p = subprocess.Popen([PROMETHEUS, f"--config.file={tmp}/prometheus.yml", f"--storage.tsdb.path={tmp}/data",
                              f"--web.listen-address=127.0.0.1:{self.prom_port}"], stdout=log, stderr=log)
        self.addCleanup(lambda: p.poll() is None and (p.terminate(), p.wait()))

        def ready():
            try:
                return urllib.request.urlopen(f"http://127.0.0.1:{self.prom_port}/-/ready", timeout=1).status == 200
            except OSError:
                return p.poll() is not None and self.fail(f"prometheus exited {p.returncode}")
        wait_until(ready, 60, "prometheus to be ready")

    def query(self, expr):
        """The value of expr's first series now, or None."""
        url = f"http://127.0.0.1:{self.prom_port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=5) as r:
            reply = json.load(r)
        self.assertEqual(reply["status"], "success")
        result = reply["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    def test_prometheus_scrapes_the_daemon(self):
        d = self.start(TICK + RABBIT + GUARD + AGAIN, head="drain_timeout = 60s\n")
        self.start_prometheus(f"127.0.0.1:{self.port}")
        runs = wait_until(lambda: self.query('evtask_task_runs_total{task="tick"}'), 30, "a scrape of tick's runs")
        wait_until(lambda: (self.query('evtask_task_runs_total{task="tick"}') or 0) > runs, 30, "tick's runs to grow")
        self.assertEqual(self.query('up{job="evtaskd"}'), 1)
        self.assertEqual(self.query('evtask_task_state{task="guard",state="waiting"}'), 1)
        wait_until(lambda: (self.query('evtask_task_restarts_total{task="again"}') or 0) >= 2, 30, "again's restarts")
        self.assertGreater(self.query('sum(rate(evtask_step_duration_seconds_count[10s]))') or 0, 0)
        self.assertIsNotNone(self.query('histogram_quantile(0.99, evtask_task_run_duration_seconds_bucket{task="tick"})'))
        d.kill(signal.SIGINT)
        d.event("paused")
        wait_until(lambda: self.query("evtask_paused") == 1, 30, "evtask_paused to be 1")
        d.kill(signal.SIGINT)
        d.event("resumed")
        wait_until(lambda: self.query("evtask_paused") == 0, 30, "evtask_paused to be 0")
        d.kill(signal.SIGTERM)
        d.event("draining")
        wait_until(lambda: self.query('evtask_task_cancels_total{task="tick"}') == 1, 30, "tick's cancel")
        self.assertEqual(self.query('evtask_task_cancels_total{task="rabbit"}'), 1)
        self.assertEqual(self.query('evtask_phase{phase="draining"}'), 1)
        self.assertEqual(self.query("evtask_ready"), 0)
        d.proc.kill()
        d.proc.wait()


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1] + sys.argv[1:], verbosity=2)
