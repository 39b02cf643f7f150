#!/usr/bin/env python3
"""evtaskd as a container's main process, under a real podman, driven as an
operator drives it: podman run, stop, kill, exec, logs and healthcheck.

Run by meson (`meson test --suite containers`) as root, with
MESON_BUILD_ROOT set. Skipped (exit status 77) without root, podman or runc, or where podman
cannot run a container of the base at all.

The image is the repository's Containerfile, built once per run on a base
imported (`podman import`) from the Debian root the booted-systemd suite
uses (tests/debroot.py: built once with debootstrap and cached in the build
directory; the base image is imported again only when the root is built
again), with this build `meson install`ed into a staging directory as the
build context. Nothing needs a registry, and RUN steps have no network.
podman keeps its images and containers in the build directory (--root),
apart from the host's own; containers have no network and explicit
--ulimit values (on a host whose root lacks CAP_SYS_RESOURCE, podman's
defaults are above the hard limits, and runc cannot set them).

Each test writes its config and mounts it at the default path,
sysconfdir/evtaskd.conf, and reads the records from `podman logs`.
"""
import hashlib
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import debroot  # noqa: E402  (tests/, on the path above)

BUILD = debroot.BUILD
SOURCE = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
CONTAINERFILE = os.path.join(SOURCE, "Containerfile")
STORE = os.path.join(BUILD, "containers-storage")
STAGE = os.path.join(BUILD, "containers-stage")
# Short and outside the build directory: conmon's sockets live below it,
# and a socket's path is at most 107 bytes.
RUNROOT = "/run/evtask-podman-" + hashlib.sha256(BUILD.encode()).hexdigest()[:12]
BASE = "localhost/evtask-test-base:latest"
IMAGE = "localhost/evtaskd-test:latest"
ROOT_LABEL = "org.evtask.root"
NAME_PREFIX = f"evtaskd-test-{os.getpid()}-"

CONF_PATH = DAEMON_PATH = None  # where the install plan puts them


def skip_reason():
    if os.geteuid() != 0:
        return "needs root (debootstrap, and podman's containers as root)"
    for tool, package in (("podman", "podman"), ("runc", "runc"), ("debootstrap", "debootstrap"),
                          ("meson", "meson")):
        if not shutil.which(tool):
            return f"{tool} is missing (package {package})"
    return None


def cannot_run():
    """Why podman cannot run a container of the base at all, or None."""
    p = podman("run", "--rm", "--network", "none", *ulimits(), BASE, "true", check=False)
    if p.returncode != 0:
        return f"podman cannot run containers here: podman run exited {p.returncode}: {p.stderr.strip()}"
    return None


def podman_cmd(*args):
    return ["podman", "--root", STORE, "--runroot", RUNROOT, "--tmpdir", os.path.join(RUNROOT, "tmp"),
            "--runtime", "runc", *args]


def podman(*args, check=True, timeout=120, **kw):
    p = subprocess.run(podman_cmd(*args), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} exited with status {p.returncode}:\n{p.stdout}{p.stderr}")
    return p


def ulimits():
    """At most the host's hard limits, which runc cannot raise without
    CAP_SYS_RESOURCE."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nofile = min(65536, hard) if hard != resource.RLIM_INFINITY else 65536
    return ["--ulimit", f"nofile={min(1024, nofile)}:{nofile}", "--ulimit", "nproc=4096:4096"]


def installed_paths():
    """Where `meson install` puts the daemon and its config."""
    with open(os.path.join(BUILD, "meson-info", "intro-installed.json")) as f:
        installed = json.load(f)
    found = {os.path.basename(dest): dest for dest in installed.values()}
    if not all(name in found for name in ("evtaskd", "evtaskctl", "evtaskd.conf")):
        raise RuntimeError(f"evtaskd, evtaskctl or evtaskd.conf is not in the install plan: {installed}")
    return found["evtaskd"], found["evtaskd.conf"]


def base_image():
    """The shared Debian root as an image, imported again only when the
    root was built again. What the systemd suite installs into the root
    (this build, its configs and drop-ins) is left out."""
    with debroot.lock():
        debroot.prepare()
        identity = debroot.identity()
        p = podman("image", "inspect", "--format", "{{index .Labels \"%s\"}}" % ROOT_LABEL, BASE, check=False)
        if p.returncode == 0 and p.stdout.strip() == identity:
            return
        with open(os.path.join(BUILD, "meson-info", "intro-installed.json")) as f:
            installed = json.load(f).values()
        excludes = ["./" + debroot.MARKER, "./etc/evtaskd-test", "./etc/systemd/system/evtaskd*"]
        excludes += ["." + dest for dest in installed]
        started = time.monotonic()
        tar = subprocess.Popen(["tar", "-C", debroot.ROOT, *(f"--exclude={e}" for e in excludes), "-c", "."],
                               stdout=subprocess.PIPE)
        p = subprocess.run(podman_cmd("import", "--change", f"LABEL {ROOT_LABEL}={identity}",
                                      "--change", 'CMD ["/bin/sh"]', "-", BASE),
                           stdin=tar.stdout, capture_output=True, text=True, timeout=600)
        tar.stdout.close()
        if tar.wait() != 0 or p.returncode != 0:
            raise RuntimeError(f"podman import of {debroot.ROOT} failed (tar {tar.returncode}):\n{p.stderr}")
        print(f"FIGURE base image imported from {debroot.ROOT} in {time.monotonic() - started:.1f} s", flush=True)


def build_image():
    """This build, installed into a fresh staging directory, on the base."""
    shutil.rmtree(STAGE, ignore_errors=True)
    started = time.monotonic()
    p = subprocess.run(["meson", "install", "-C", BUILD, "--destdir", STAGE, "--no-rebuild", "--quiet"],
                       capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise RuntimeError(f"meson install failed:\n{p.stdout}{p.stderr}")
    podman("build", "--format", "docker", "--network", "none", "--build-arg", f"BASE={BASE}",
           "-f", CONTAINERFILE, "-t", IMAGE, STAGE, timeout=600)
    # The image of the last run, untagged now: its layers would pile up in
    # the build directory run after run.
    podman("image", "prune", "--force")
    print(f"FIGURE image built (meson install and podman build) in {time.monotonic() - started:.1f} s",
          flush=True)


class Logs:
    """`podman logs -f` of a container, read as it comes: its JSON records,
    and every other line."""

    def __init__(self, name):
        self.records = []
        self.other = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(podman_cmd("logs", "-f", name), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            with self.cond:
                if isinstance(record, dict):
                    self.records.append(record)
                else:
                    self.other.append(line)
                self.cond.notify_all()
        self.proc.wait()

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.thread.join(10)
        self.proc.stdout.close()

    def wait_for(self, pred, timeout=15.0, what="a record"):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for r in self.records:
                    if pred(r):
                        return r
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {what} within {timeout}s; last records:\n"
                                         + "\n".join(fmt(r) for r in self.records[-20:]))
                self.cond.wait(left)

    def event(self, name, task=None, timeout=15.0):
        return self.wait_for(lambda r: r.get("event") == name and (task is None or r.get("task") == task),
                             timeout, f"'{name}' record" + (f" of {task}" if task else ""))

    def lines(self, task, n, timeout=15.0):
        """The first n output lines of task."""
        self.wait_for(lambda r: len(self.of("output", task)) >= n, timeout, f"{n} output lines of {task}")
        return [r["msg"] for r in self.of("output", task)[:n]]

    def of(self, name, task=None):
        with self.cond:
            return [r for r in self.records if r.get("event") == name and (task is None or r.get("task") == task)]


def fmt(r):
    return f"{r.get('level')} {r.get('event')} {r.get('task')}: {r.get('msg')}"


def scratch(test):
    """A fresh directory, removed after the test; others may read it."""
    tmp = tempfile.mkdtemp(prefix="evtaskd-containers-")
    os.chmod(tmp, 0o755)
    test.addCleanup(shutil.rmtree, tmp, True)
    return tmp


class Container:
    """One detached container of the image, on a config of its own."""

    count = 0

    def __init__(self, test, config, user=None, env=None, cmd=(), volumes=()):
        """config: the text mounted at the default path (None: the
        image's own); cmd: instead of the image's CMD."""
        Container.count += 1
        self.name = f"{NAME_PREFIX}{Container.count}"
        self.test = test
        args = ["run", "--detach", "--name", self.name, "--network", "none", *ulimits()]
        if config is not None:
            conf = os.path.join(scratch(test), "evtaskd.conf")
            with open(conf, "w") as f:
                f.write(config)
            os.chmod(conf, 0o644)
            args += ["--volume", f"{conf}:{CONF_PATH}:ro"]
        for volume in volumes:
            args += ["--volume", volume]
        if user:
            args += ["--user", user]
        for key, value in (env or {}).items():
            args += ["--env", f"{key}={value}"]
        args.append(IMAGE)
        args += cmd
        test.addCleanup(self.remove)
        podman(*args)
        self.logs = Logs(self.name)
        test.addCleanup(self.logs.close)

    def remove(self):
        podman("rm", "--force", "--time", "0", self.name, check=False, timeout=60)

    def inspect(self, fmt):
        return podman("inspect", "--format", fmt, self.name).stdout.strip()

    def exec(self, *cmd, check=True):
        return podman("exec", self.name, *cmd, check=check)

    def kill(self, sig):
        podman("kill", "--signal", sig, self.name)

    def stop(self, seconds):
        """podman stop -t SECONDS; how long it took."""
        started = time.monotonic()
        podman("stop", "--time", str(seconds), self.name, timeout=seconds + 60)
        return time.monotonic() - started

    def wait(self, timeout=60):
        """The exit status, once the container has stopped."""
        return int(podman("wait", self.name, timeout=timeout).stdout.strip())

    def health(self):
        return podman("healthcheck", "run", self.name, check=False, timeout=60)

    def all_logs(self):
        """podman logs, once the container has stopped: (records, other
        lines of stdout, stderr)."""
        p = podman("logs", self.name)
        records, other = [], []
        for line in p.stdout.splitlines():
            try:
                r = json.loads(line)
                records.append(r)
            except ValueError:
                other.append(line)
        return records, other, p.stderr

    def proc_stat(self, pid):
        """The fields of /proc/PID/stat inside the container after the
        command ([state, ppid, ...]), or [None, None] once it is gone."""
        p = self.exec("cat", f"/proc/{pid}/stat", check=False)
        if p.returncode != 0:
            return [None, None]
        return p.stdout[p.stdout.rindex(")") + 2:].split()

    def wait_proc(self, pred, what, timeout=10.0):
        deadline = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > deadline:
                raise AssertionError(f"not {what} within {timeout}s")
            time.sleep(0.05)


def ticker(name, speed, extra=""):
    return f"[task.{name}]\nkind = ticker\nspeed = {speed}\n{extra}\n"


def exec_task(name, command, extra=""):
    return f"[task.{name}]\nkind = exec\nshell = yes\ncommand = {command}\n{extra}\n"


# Shielded work longer than any stop of the tests.
BACKUP = "[task.backup]\nkind = sleep\nduration = 600s\nshield = yes\n\n"

# A shell that ignores SIGTERM, prints its pid and loops: only SIGKILL ends it.
STUBBORN = "sh -c 'trap \"\" TERM; echo $$; while :; do sleep 0.1; done'"


class ContainerTest(unittest.TestCase):
    def run_container(self, config, **kw):
        return Container(self, config, **kw)

    def assert_exit_record_last(self, records, status):
        self.assertTrue(records, "podman logs has no records")
        self.assertEqual(records[-1].get("event"), "exit", "the last record is not the exit record:\n"
                         + "\n".join(fmt(r) for r in records[-10:]))
        self.assertEqual(records[-1].get("exit_code"), status)


class Image(ContainerTest):
    def test_image_metadata(self):
        config = json.loads(podman("image", "inspect", "--format", "{{json .Config}}", IMAGE).stdout)
        self.assertEqual(config.get("StopSignal"), "SIGTERM")
        self.assertEqual(config.get("User"), "10001:10001")
        self.assertEqual(config.get("Cmd"), ["evtaskd"])
        health = podman("image", "inspect", "--format", "{{json .HealthCheck}}", IMAGE).stdout
        self.assertIn('"evtaskctl"', health, "the image has no HEALTHCHECK (built without --format docker?)")
        self.assertIn('"health"', health)

    def test_runtime_packages_are_in_the_root(self):
        """The Containerfile's packages are all in the shared root: the build
        never needs a registry or a mirror here."""
        with open(CONTAINERFILE) as f:
            m = re.search(r'^ARG RUNTIME_PACKAGES="([^"]*)"', f.read(), re.M)
        self.assertIsNotNone(m, "no ARG RUNTIME_PACKAGES in the Containerfile")
        self.assertLessEqual(set(m.group(1).split()), set(debroot.PACKAGES.split(",")))

    def test_every_library_found(self):
        p = podman("run", "--rm", "--network", "none", *ulimits(), IMAGE, "ldd", DAEMON_PATH)
        self.assertNotIn("not found", p.stdout)
        self.assertIn("libev", p.stdout)

    def test_runs_as_its_user_as_pid_1(self):
        c = self.run_container(ticker("hare", 10))
        started = c.logs.event("started")
        self.assertEqual((started["pid"], started["uid"]), (1, 10001))
        self.assertEqual(started["config"], CONF_PATH)
        self.assertEqual(c.health().returncode, 0, "podman healthcheck run failed on a running daemon")
        status = c.exec("evtaskctl", "status").stdout
        self.assertRegex(status, r"evtaskd pid 1, running, 1 task")
        c.stop(30)
        self.assertEqual(c.wait(), 0)


    def test_logs_are_json_lines_by_default(self):
        """The image as shipped (its own config, log = auto): stdout is a
        pipe to conmon, neither a terminal nor the journal, so podman logs
        has JSON lines with ts and level, and nothing else."""
        c = self.run_container(None)
        c.logs.event("started")
        c.stop(30)
        records, other, _ = c.all_logs()
        self.assertEqual(other, [], "lines on stdout that are not JSON records")
        self.assertTrue(all(re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z", r["ts"]) and r["level"] for r in records))
        self.assertEqual(records[0]["event"], "started")

    def test_a_missing_config_is_named(self):
        """A bare evtaskd reads the default path; without a file there it
        exits 78 naming it, and runs no demo."""
        name = NAME_PREFIX + "missing"
        self.addCleanup(podman, "rm", "--force", "--time", "0", name, check=False)
        # notmpcopyup: an empty tmpfs, not one with the image's files.
        p = podman("run", "--rm", "--name", name, "--network", "none", *ulimits(),
                   "--tmpfs", os.path.dirname(CONF_PATH) + ":notmpcopyup", IMAGE, check=False, timeout=60)
        self.assertEqual(p.returncode, 78, p.stdout + p.stderr)
        self.assertIn(CONF_PATH, p.stdout + p.stderr)
        self.assertNotIn("rabbit", p.stdout + p.stderr)


class Stop(ContainerTest):
    def test_stop_drains_and_exits_0(self):
        """podman stop -t 30: SIGTERM, the drain, exit 0 long before the
        kill, and every record of it in podman logs, the exit record last."""
        c = self.run_container("[daemon]\ndrain_timeout = 20s\n\n" + ticker("hare", 10)
                               + "[task.backup]\nkind = sleep\nduration = 2s\nshield = yes\n\n"
                               + exec_task("consumer", "exec sleep 600"))
        c.logs.event("run", "consumer")
        took = c.stop(30)
        self.assertEqual(c.wait(), 0)
        self.assertLess(took, 20, "podman stop waited for its timeout")
        records, other, _ = c.all_logs()
        self.assertEqual(other, [], "lines on stdout that are not JSON records")
        events = [(r["event"], r.get("task")) for r in records]
        for expected in (("stopping", None), ("cancelled", "hare"), ("cancelled", "consumer"),
                         ("draining", None), ("finished", "backup"), ("drained", None)):
            self.assertIn(expected, events, "\n".join(fmt(r) for r in records[-15:]))
        self.assertEqual([r["signal"] for r in records if r["event"] == "signal"], ["SIGTERM"])
        self.assertLess(events.index(("draining", None)), events.index(("finished", "backup")))
        self.assert_exit_record_last(records, 0)


    def test_short_stop_with_the_drain_aligned(self):
        """podman stop -t 2 against a 20 s drain in the file: with
        EVTASKD_DRAIN_TIMEOUT=1s evtaskd forces the shielded work itself,
        names it and exits 3 before podman's SIGKILL (which would be 137,
        naming nothing)."""
        c = self.run_container("[daemon]\ndrain_timeout = 20s\n\n" + ticker("hare", 10) + BACKUP,
                               env={"EVTASKD_DRAIN_TIMEOUT": "1s", "EVTASKD_STOP_GRACE": "2s"})
        overrides = c.logs.wait_for(lambda r: r["event"] == "started" and "overrides" in r,
                                    what="the record of the keys set outside the file")
        self.assertIn("drain_timeout", overrides["overrides"])
        c.logs.event("spawned", "backup")
        took = c.stop(2)
        status = c.wait()
        self.assertEqual(status, 3, f"not ended by evtaskd itself (podman took {took:.1f} s)")
        records, _, _ = c.all_logs()
        self.assertEqual([r["task"] for r in records if r["event"] == "forced"], ["backup"],
                         "\n".join(fmt(r) for r in records[-10:]))
        self.assert_exit_record_last(records, 3)


    def test_short_stop_unaligned_is_named(self):
        """podman stop -t 2 against a 20 s drain, told only the grace
        period (EVTASKD_STOP_GRACE=2s): evtaskd warns at start-up, and names
        the shielded work the kill will cut as the drain begins; podman's
        SIGKILL then ends it (137)."""
        c = self.run_container("[daemon]\ndrain_timeout = 20s\n\n" + ticker("hare", 10) + BACKUP,
                               env={"EVTASKD_STOP_GRACE": "2s"})
        warned = c.logs.wait_for(lambda r: r["event"] == "started" and "stop_grace_ms" in r,
                                 what="the start-up warning")
        self.assertEqual(warned["stop_grace_ms"], 2000)
        c.logs.event("spawned", "backup")
        c.stop(2)
        self.assertEqual(c.wait(), 128 + signal.SIGKILL)
        records, _, _ = c.all_logs()
        cut = [r for r in records if r["event"] == "draining" and "cut" in r]
        self.assertEqual([r["cut"] for r in cut], ["backup"], "\n".join(fmt(r) for r in records[-10:]))
        self.assertEqual([r for r in records if r["event"] == "exit"], [])

    def test_sigint_shutdown(self):
        """EVTASKD_SIGINT=shutdown (podman run -it's Ctrl-C, Nomad's
        default kill_signal): SIGINT drains as SIGTERM does."""
        c = self.run_container(ticker("hare", 10) + "[task.backup]\nkind = sleep\nduration = 1s\nshield = yes\n\n",
                               env={"EVTASKD_SIGINT": "shutdown"})
        c.logs.event("spawned", "backup")
        c.kill("INT")
        self.assertEqual(c.wait(), 0)
        records, _, _ = c.all_logs()
        self.assertEqual([r["event"] for r in records if r["event"] in ("paused", "stopping", "drained")],
                         ["stopping", "drained"])
        self.assertEqual(len([r for r in records if r["event"] == "finished" and r["task"] == "backup"]), 1)
        self.assert_exit_record_last(records, 0)


class Pause(ContainerTest):
    def test_sigint_twice_pauses_and_resumes(self):
        """podman kill -s INT: not one step while paused; the second
        resumes."""
        c = self.run_container(ticker("hare", 20))
        c.logs.wait_for(lambda r: r["event"] == "step" and r["task"] == "hare", what="a step")
        c.kill("INT")
        paused = c.logs.event("paused")
        # The pause must hold while time passes: 20 steps are due in this
        # second.
        time.sleep(1.0)
        self.assertEqual(c.inspect("{{.State.Status}}"), "running")
        c.kill("INT")
        resumed = c.logs.event("resumed")
        c.logs.wait_for(lambda r: r["event"] == "step" and r["mono_us"] > resumed["mono_us"],
                        what="a step after the resume")
        between = [r for r in c.logs.records if r["event"] == "step"
                   and paused["mono_us"] < r["mono_us"] < resumed["mono_us"]]
        self.assertEqual(between, [], "steps between paused and resumed")
        self.assertGreaterEqual(resumed["mono_us"] - paused["mono_us"], 1000000)
        c.stop(30)
        self.assertEqual(c.wait(), 0)

    def test_pause_stops_every_process_of_a_run(self):
        """A paused container's job processes are stopped: the command's,
        what it started in its session or out of it, and one that left the
        session and lost its parent at once, which belongs to no run (PID 1
        walks /proc here: no cgroup v2 of its own); all go on at the
        resume."""
        c = self.run_container(exec_task(
            "tree", f"(setsid {STUBBORN} &); setsid {STUBBORN} & sleep 600 & echo $!; exec sleep 600",
            "kill_timeout = 1s\n"))
        run = c.logs.event("run", "tree")
        pids = [int(line) for line in c.logs.lines("tree", 3)] + [run["pid"]]
        self.assertEqual(len(set(pids)), 4, pids)
        # The stray is PID 1's child, as the command is, once its parent
        # has exited.
        c.wait_proc(lambda: sum(c.proc_stat(pid)[1] == "1" for pid in pids) == 2, "the stray re-parented")
        c.kill("INT")
        c.logs.event("paused")
        for pid in pids:
            c.wait_proc(lambda: c.proc_stat(pid)[0] == "T", f"process {pid} stopped while paused")
        c.kill("INT")
        c.logs.event("resumed")
        for pid in pids:
            c.wait_proc(lambda: c.proc_stat(pid)[0] not in ("T", None), f"process {pid} going on at the resume")
        c.stop(30)
        self.assertEqual(c.wait(), 0)


class Orphans(ContainerTest):
    def test_orphans_reaped_and_named_at_shutdown(self):
        """What a run leaves behind is ended with the run, reaped by PID 1
        and logged; a stubborn one left at shutdown gets SIGTERM, then
        SIGKILL, each named; no zombie stays."""
        c = self.run_container(
            exec_task("orphan", "sh -c 'sleep 600 >/dev/null 2>&1 & echo $!'")
            + exec_task("keeper", f"setsid {STUBBORN} & exec sleep 600", "kill_timeout = 1s\n"))
        orphan = int(c.logs.lines("orphan", 1)[0])
        reaped = c.logs.wait_for(lambda r: r["event"] == "reaped" and r["pid"] == orphan,
                                 what=f"the reaped record of {orphan}")
        self.assertEqual(reaped["signal_number"], signal.SIGTERM)
        stubborn = int(c.logs.lines("keeper", 1)[0])
        zombies = c.exec("sh", "-c", "grep -l '^[0-9]* ([^)]*) Z' /proc/[0-9]*/stat || true").stdout
        self.assertEqual(zombies.strip(), "", "a zombie in the container")
        c.stop(30)
        self.assertEqual(c.wait(), 0)
        records, _, _ = c.all_logs()
        named = [(r.get("signal"), r.get("comm")) for r in records if r["event"] == "leftover" and r["pid"] == stubborn]
        self.assertEqual(named, [("SIGTERM", "sh"), ("SIGKILL", "sh")], "\n".join(fmt(r) for r in records[-15:]))
        self.assert_exit_record_last(records, 0)


class User(ContainerTest):
    def test_user_1000(self):
        """--user 1000:1000: the daemon, its jobs, evtaskctl and the health
        check run as that user."""
        c = self.run_container(ticker("hare", 10) + exec_task("who", "id -u; id -g"), user="1000:1000")
        self.assertEqual(c.logs.event("started")["uid"], 1000)
        self.assertEqual(c.logs.lines("who", 2), ["1000", "1000"])
        health = c.health()
        self.assertEqual(health.returncode, 0, f"podman healthcheck run as 1000: {health.stdout}{health.stderr}")
        self.assertIn("hare", c.exec("evtaskctl", "status").stdout)
        c.stop(30)
        self.assertEqual(c.wait(), 0)


class Health(ContainerTest):
    def test_health_fails_while_the_loop_is_wedged(self):
        """The HEALTHCHECK (evtaskctl health) passes while the loop turns and
        fails once a task wedges it; the third SIGTERM still ends it."""
        c = self.run_container("[task.stuck]\nkind = wedge\nduration = 3s\n\n")
        c.logs.event("started")
        self.assertEqual(c.health().returncode, 0, "unhealthy before the wedge")
        c.logs.wait_for(lambda r: r["event"] == "step" and r["task"] == "stuck", what="the wedge")
        p = c.health()
        self.assertNotEqual(p.returncode, 0, f"healthy with a wedged loop: {p.stdout}")
        self.assertIn("unhealthy", p.stdout)
        for _ in range(3):
            c.kill("TERM")
        self.assertEqual(c.wait(), 128 + signal.SIGTERM)


class Reload(ContainerTest):
    def test_a_configmap_update_is_reloaded(self):
        """A directory laid out as the kubelet lays out a ConfigMap volume
        (the files behind ..data, a symlink swapped by rename on an
        update), mounted as Kubernetes mounts it: with reload_on_change the
        swap reloads the config, with no signal."""
        volume = scratch(self)
        head = "[daemon]\nreload_on_change = yes\n\n"

        def publish(n, text):
            data = os.path.join(volume, f"..2026_12_07_00_00_0{n}.000000000")
            os.mkdir(data)
            os.chmod(data, 0o755)
            with open(os.path.join(data, "evtaskd.conf"), "w") as f:
                f.write(text)
            os.chmod(os.path.join(data, "evtaskd.conf"), 0o644)
            os.symlink(os.path.basename(data), os.path.join(volume, "..data_tmp"))
            os.rename(os.path.join(volume, "..data_tmp"), os.path.join(volume, "..data"))
            return data

        old = publish(1, head + ticker("hare", 10))
        os.symlink("..data/evtaskd.conf", os.path.join(volume, "evtaskd.conf"))
        c = self.run_container(None, volumes=[f"{volume}:/etc/evtaskd:ro"],
                               cmd=["evtaskd", "--config", "/etc/evtaskd/evtaskd.conf"])
        c.logs.event("spawned", "hare")
        publish(2, head + ticker("hare", 10) + ticker("tortoise", 1))
        shutil.rmtree(old)
        c.logs.event("spawned", "tortoise")
        reloaded = c.logs.event("reloaded")
        self.assertIn("added", reloaded["msg"] + json.dumps(reloaded))
        c.stop(30)
        self.assertEqual(c.wait(), 0)


def on_sigterm(signo, frame):
    raise KeyboardInterrupt  # out of unittest, to the cleanups


def main():
    global DAEMON_PATH, CONF_PATH
    started = time.monotonic()
    reason = skip_reason()
    if not reason:
        DAEMON_PATH, CONF_PATH = installed_paths()
        base_image()
        reason = cannot_run()
    if reason:
        print(f"SKIP: {reason}")
        return 77
    build_image()
    result = unittest.main(argv=sys.argv[:1] + sys.argv[1:], verbosity=2, exit=False).result
    print(f"FIGURE containers suite: {time.monotonic() - started:.1f} s in all", flush=True)
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, on_sigterm)
    sys.exit(main())
