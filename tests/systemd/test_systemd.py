#!/usr/bin/env python3
"""evtaskd.service under a booted systemd: the installed unit, driven with
systemctl, checked through systemd's own view of it and the journal.

Run by meson (`meson test --suite systemd`) as root, with MESON_BUILD_ROOT
and EVTASKD_UNIT (the configured unit) set. Skipped (exit status 77)
without root, systemd-nspawn or debootstrap.

A Debian root with systemd is built once with debootstrap into
<build>/systemd-root and reused (tests/debroot.py: the containers suite
imports the same root as its image's base). Each run installs the current build into it (meson
install --destdir), boots it once with systemd-nspawn, and runs systemctl
and journalctl inside it through nsenter. Each test writes its config under
/etc/evtaskd-test, a drop-in for the unit, and reads only the journal
records of its own invocation of the unit.
"""
import atexit
import ctypes
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import debroot  # noqa: E402  (tests/, on the path above)
from debroot import host, tail  # noqa: E402

BUILD = debroot.BUILD
UNIT_FILE = os.environ.get("EVTASKD_UNIT", os.path.join(BUILD, "evtaskd.service"))
ROOT = debroot.ROOT
NSPAWN_LOG = os.path.join(BUILD, "systemd-nspawn.log")
MACHINE = "evtaskd-test"

UNIT = "evtaskd.service"
CONF_DIR = "/etc/evtaskd-test"
DROPIN_DIR = "/etc/systemd/system/evtaskd.service.d"
DROPIN = DROPIN_DIR + "/test.conf"
# Active, and ordered after evtaskd.service: a reference that keeps the unit
# loaded once it has stopped, so that systemctl show reports how the last run
# ended (Result, ExecMainStatus) instead of the defaults of a unit loaded
# afresh.
PIN = "evtaskd-test-pin.service"
PIN_TEXT = f"""[Unit]
Description=Keeps {UNIT} loaded between its runs, for the tests
After={UNIT}

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/true
"""

# What the commands run inside the container see.
CT_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "TERM": "dumb",
    "SYSTEMD_PAGER": "",
    "SYSTEMD_COLORS": "0",
}


def skip_reason():
    if os.geteuid() != 0:
        return "needs root (debootstrap, systemd-nspawn)"
    for tool, package in (("systemd-nspawn", "systemd-container"), ("debootstrap", "debootstrap"),
                          ("nsenter", "util-linux"), ("meson", "meson")):
        if not shutil.which(tool):
            return f"{tool} is missing (package {package})"
    return None


def installed_paths():
    """Where `meson install` puts the daemon, evtaskctl and the unit."""
    with open(os.path.join(BUILD, "meson-info", "intro-installed.json")) as f:
        installed = json.load(f)
    found = {os.path.basename(dest): dest for dest in installed.values()}
    if not all(name in found for name in ("evtaskd", "evtaskctl", UNIT)):
        raise RuntimeError(f"evtaskd, evtaskctl or {UNIT} is not in the install plan: {installed}")
    return found["evtaskd"], found["evtaskctl"], found[UNIT]


def install_build():
    """The current build, into the root; and nothing left from earlier runs."""
    p = subprocess.run(["meson", "install", "-C", BUILD, "--destdir", ROOT, "--no-rebuild", "--quiet"],
                       capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise RuntimeError(f"meson install failed:\n{p.stdout}{p.stderr}")
    for d in (CONF_DIR, DROPIN_DIR):
        shutil.rmtree(host(d), ignore_errors=True)
        os.makedirs(host(d), mode=0o755)
        os.chmod(host(d), 0o755)
    with open(host(f"/etc/systemd/system/{PIN}"), "w") as f:
        f.write(PIN_TEXT)
    os.chmod(host(f"/etc/systemd/system/{PIN}"), 0o644)


def die_with_parent():
    """In the nspawn child: a SIGTERM (an orderly poweroff of the container)
    when this process dies, however it dies."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def proc_stat(pid):
    """(comm, ppid) of a process, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    comm = stat[stat.index("(") + 1:stat.rindex(")")]
    return comm, int(stat[stat.rindex(")") + 2:].split()[1])


class Container:
    """The root, booted with systemd-nspawn; commands run inside it through
    nsenter into the namespaces of its init."""

    def __init__(self, root):
        self.root = root
        self.proc = None
        self.init_pid = None
        self.log = None

    def boot(self, timeout=120):
        deadline = time.monotonic() + timeout
        self.log = open(NSPAWN_LOG, "w")
        # The journal on a tmpfs: nothing of a run stays in the cached root.
        self.proc = subprocess.Popen(
            ["systemd-nspawn", "--quiet", "--directory", self.root, "--machine", MACHINE, "--boot",
             "--register=no", "--keep-unit", "--console=pipe", "--tmpfs=/var/log/journal"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=die_with_parent)
        self.init_pid = self._find_init(deadline)
        state = ""
        while time.monotonic() < deadline:
            p = self.run("systemctl", "is-system-running", check=False, timeout=30)
            state = p.stdout.strip()
            if state in ("running", "degraded"):
                break
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"the container's systemd is '{state}' after {timeout}s; "
                               f"{NSPAWN_LOG} ends:\n{tail(NSPAWN_LOG)}")
        if self.proc.poll() is not None:
            raise RuntimeError(f"systemd-nspawn exited with status {self.proc.returncode}:\n{tail(NSPAWN_LOG)}")
        if state == "degraded":
            failed = self.run("systemctl", "--failed", "--no-legend", check=False).stdout
            print(f"the container booted degraded; failed units:\n{failed}", flush=True)

    def _find_init(self, deadline):
        """The container's /usr/lib/systemd/systemd: the child of nspawn."""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"systemd-nspawn exited with status {self.proc.returncode}:\n"
                                   f"{tail(NSPAWN_LOG)}")
            for entry in os.listdir("/proc"):
                if entry.isdigit():
                    st = proc_stat(int(entry))
                    if st and st[1] == self.proc.pid and st[0] == "systemd":
                        return int(entry)
            time.sleep(0.05)
        raise RuntimeError(f"no systemd under systemd-nspawn (pid {self.proc.pid}):\n{tail(NSPAWN_LOG)}")

    def run(self, *cmd, check=True, timeout=60):
        p = subprocess.run(["nsenter", "-t", str(self.init_pid), "-a", "--", *cmd], env=CT_ENV,
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited with status {p.returncode}:\n{p.stdout}{p.stderr}")
        return p

    def systemctl(self, *args, check=True, timeout=60):
        return self.run("systemctl", "--no-pager", *args, check=check, timeout=timeout)

    def poweroff(self):
        """An orderly poweroff (nspawn's SIGTERM), else SIGKILL; idempotent."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                print("the container did not power off within 60s: killing it", flush=True)
                st = proc_stat(self.init_pid) if self.init_pid else None
                if st and st[1] == proc.pid:
                    os.kill(self.init_pid, signal.SIGKILL)  # ends its whole PID namespace
                proc.kill()
                proc.wait()
        if self.log:
            self.log.close()
            self.log = None


CT = None
LOCK = None
DAEMON_PATH = UNIT_PATH = None


def setUpModule():
    global CT, LOCK, DAEMON_PATH, CTL_PATH, UNIT_PATH
    LOCK = debroot.lock()
    DAEMON_PATH, CTL_PATH, UNIT_PATH = installed_paths()
    debroot.prepare()
    install_build()
    CT = Container(ROOT)
    unittest.addModuleCleanup(CT.poweroff)
    atexit.register(CT.poweroff)
    started = time.monotonic()
    CT.boot()
    print(f"container booted in {time.monotonic() - started:.1f} s", flush=True)
    CT.systemctl("start", PIN)


def tearDownModule():
    if CT:
        CT.poweroff()


def ticker(name, speed, extra=""):
    return f"[task.{name}]\nkind = ticker\nspeed = {speed}\n{extra}\n"


def sleeper(name, duration, shield=False):
    return f"[task.{name}]\nkind = sleep\nduration = {duration}\n" + ("shield = yes\n\n" if shield else "\n")


class ServiceTest(unittest.TestCase):
    """One invocation of evtaskd.service per test, on a config of its own."""

    def setUp(self):
        self.invocation = None
        self.main_pid = None
        self.addCleanup(self.reset_unit)

    def reset_unit(self):
        """Stops the unit and removes the test's config and drop-in."""
        try:
            CT.systemctl("stop", UNIT, check=False, timeout=90)
        except subprocess.TimeoutExpired:
            CT.systemctl("kill", "-s", "SIGKILL", UNIT, check=False)
            CT.systemctl("stop", UNIT, check=False, timeout=60)
        for d in (CONF_DIR, DROPIN_DIR):
            for path in glob.glob(host(d) + "/*"):
                os.unlink(path)
        CT.systemctl("daemon-reload")
        CT.systemctl("reset-failed", UNIT, check=False)  # fails for a unit not loaded

    # ---- setting up ----

    def write(self, path, text):
        with open(host(path), "w") as f:
            f.write(text)
        os.chmod(host(path), 0o644)

    def configure(self, name, text, extra="", **service):
        """/etc/evtaskd-test/NAME.conf, and a drop-in that runs evtaskd on it
        with the [Service] settings given (TimeoutStopSec="2s", ...) and the
        lines of extra."""
        self.conf = f"{CONF_DIR}/{name}.conf"
        self.write(self.conf, text)
        dropin = f"[Service]\nExecStart=\nExecStart={DAEMON_PATH} --config {self.conf}\n"
        dropin += "".join(f"{key}={value}\n" for key, value in service.items()) + extra
        self.write(DROPIN, dropin)
        CT.systemctl("daemon-reload")
        CT.systemctl("reset-failed", UNIT, check=False)

    def start(self, check=True):
        p = CT.systemctl("start", UNIT, check=False, timeout=120)
        props = self.show("InvocationID", "ExecMainPID")
        self.invocation = props["InvocationID"]
        self.main_pid = props["ExecMainPID"]
        self.assertRegex(self.invocation, r"^[0-9a-f]{32}$", "the unit has no invocation id")
        if check:
            self.assertEqual(p.returncode, 0, f"systemctl start failed: {p.stderr}\n{self.unit_log()}")
        return p

    # ---- what systemd says ----

    def show(self, *props):
        out = CT.systemctl("show", UNIT, "-p", ",".join(props)).stdout
        values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        for prop in props:
            self.assertIn(prop, values, f"systemctl show has no {prop}")
        return values

    def wait_unit(self, pred, props, timeout=10.0, what="a unit state"):
        deadline = time.monotonic() + timeout
        while True:
            values = self.show(*props)
            if pred(values):
                return values
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {timeout}s: {values}\n{self.unit_log()}")
            time.sleep(0.1)

    # ---- the journal ----

    def journal(self, *matches, sync=False):
        """The records of this invocation, in journal order. Those of the
        main process are matched by _PID too (unique within the boot): of a
        record whose sender exited before journald read it (the last ones),
        journald knows the PID, but not the unit."""
        if sync:
            CT.run("journalctl", "--sync")
        args = ["journalctl", "--no-pager", "-o", "json", *matches, f"_SYSTEMD_INVOCATION_ID={self.invocation}"]
        if self.main_pid and self.main_pid != "0":
            args += ["+", *matches, f"_PID={self.main_pid}", "SYSLOG_IDENTIFIER=evtaskd"]
        records = []
        for line in CT.run(*args).stdout.splitlines():
            records.append(json.loads(line))
        return records

    def records(self, event=None, task=None, sync=False):
        """evtaskd's own records (those with an EVENT)."""
        matches = [f"EVENT={event}"] if event else []
        if task:
            matches.append(f"TASK={task}")
        return [r for r in self.journal(*matches, sync=sync) if "EVENT" in r]

    def wait_for(self, pred, timeout=10.0, what="a record"):
        """The first record (in journal order) that pred accepts."""
        deadline = time.monotonic() + timeout
        while True:
            records = self.records()
            for r in records:
                if pred(r):
                    return r
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {timeout}s; last records:\n"
                                     + "\n".join(fmt(r) for r in records[-20:]) + self.journald_said())
            time.sleep(0.1)

    def journald_said(self):
        """journald's own last messages (what its rate limit suppressed),
        for failure messages."""
        p = CT.run("journalctl", "--no-pager", "-o", "cat", "_TRANSPORT=driver", "-n", "5", check=False)
        return "\njournald's last messages:\n" + p.stdout

    def event(self, name, task=None, timeout=10.0):
        return self.wait_for(lambda r: r["EVENT"] == name and (task is None or r.get("TASK") == task),
                             timeout, f"'{name}' record" + (f" of {task}" if task else ""))

    def unit_log(self, n=25):
        """The last lines of this invocation, systemd's own included, for
        failure messages."""
        if not self.invocation:
            return ""
        p = CT.run("journalctl", "--no-pager", "-o", "json", f"_SYSTEMD_INVOCATION_ID={self.invocation}",
                   "+", f"INVOCATION_ID={self.invocation}", check=False)
        lines = [fmt(json.loads(line)) for line in p.stdout.splitlines()]
        lines = [line for line in lines if " step: " not in line]
        return "journal of the invocation:\n" + "\n".join(lines[-n:])


def fmt(r):
    event = f" {r['EVENT']}:" if "EVENT" in r else ""
    return f"{r.get('SYSLOG_IDENTIFIER', '?')}[{r.get('_PID', '?')}]:{event} {r.get('MESSAGE')}"


def sent_us(r):
    """When a record was sent (the socket's timestamp, which journald keeps as
    _SOURCE_REALTIME_TIMESTAMP), not when journald got round to reading it."""
    return int(r.get("_SOURCE_REALTIME_TIMESTAMP") or r["__REALTIME_TIMESTAMP"])


def index_of(records, pred):
    return next((i for i, r in enumerate(records) if pred(r)), None)


class Start(ServiceTest):
    def test_start_returns_after_ready(self):
        self.configure("start", "[daemon]\nthreads = 1\n" + ticker("alpha", 1, "description = the first task\n")
                       + sleeper("beta", "60s")
                       + "[task.gamma]\nkind = blocking\nduration = 60s\ncheck_every = 1s\n")
        self.start()
        # Right after start returned: READY=1 came, so everything it follows
        # is there already.
        state = self.show("ActiveState", "SubState", "Type", "StatusText")
        self.assertEqual((state["ActiveState"], state["SubState"]), ("active", "running"), state)
        self.assertEqual(state["Type"], "notify")
        self.assertRegex(state["StatusText"], r"^running 3 tasks")
        spawned = self.records("spawned", sync=True)
        self.assertEqual(sorted(r["TASK"] for r in spawned), ["alpha", "beta", "gamma"],
                         "start returned before every task was spawned")
        self.assertEqual({r["KIND"] for r in spawned}, {"ticker", "sleep", "blocking"})
        # A description is a field of the task's records.
        self.assertEqual([r.get("DESCRIPTION") for r in spawned if r["TASK"] == "alpha"], ["the first task"])
        self.assertNotIn("DESCRIPTION", next(r for r in spawned if r["TASK"] == "beta"))
        started = self.records("started")
        self.assertEqual(len(started), 1)
        self.assertEqual(started[0]["PID"], self.main_pid)
        self.assertEqual(started[0]["CONFIG"], self.conf)
        # The unit tells evtaskd its stop timeout through the environment,
        # and log = auto found the journal on stdout.
        self.assertEqual(started[0]["OVERRIDES"], "stop_grace (environment EVTASKD_STOP_GRACE)")
        status = CT.systemctl("status", UNIT).stdout
        self.assertRegex(status, r'Status: "running 3 tasks', status)
        # In journal order: every task spawned, then systemd saw READY=1.
        CT.run("journalctl", "--sync")
        records = self.journal_with_manager()
        ready = index_of(records, lambda r: r.get("JOB_TYPE") == "start" and r.get("JOB_RESULT") == "done")
        self.assertIsNotNone(ready, "no 'Started' message of systemd for this invocation")
        last_spawn = max(i for i, r in enumerate(records) if r.get("EVENT") == "spawned")
        self.assertLess(last_spawn, ready, "systemd took the unit as started before every task was spawned")

    def journal_with_manager(self):
        """This invocation's records and systemd's about it, in journal order."""
        p = CT.run("journalctl", "--no-pager", "-o", "json", f"_SYSTEMD_INVOCATION_ID={self.invocation}",
                   "+", f"INVOCATION_ID={self.invocation}")
        return [json.loads(line) for line in p.stdout.splitlines()]


class Pause(ServiceTest):
    def test_sigint_pauses_and_resumes(self):
        # WatchdogSec=2 and a pause longer than it: the loop pings while
        # every task is held.
        self.configure("pause", ticker("hare", 10), WatchdogSec="2")
        self.start()
        self.wait_for(lambda r: r["EVENT"] == "step" and r.get("DISTANCE") == "3", what="a third step")
        CT.systemctl("kill", "-s", "SIGINT", "--kill-who=main", UNIT)
        paused = self.event("paused")
        self.assertEqual(paused.get("SIGNAL"), "SIGINT")
        self.assertEqual(paused.get("SENDER_PID"), "1", "systemd (pid 1) sent the signal")
        self.assertEqual(paused.get("SENDER_UID"), "0")
        sig = self.event("signal")
        self.assertEqual((sig.get("SIGNAL"), sig.get("ACTION")), ("SIGINT", "pause"))
        self.wait_unit(lambda s: s["StatusText"].startswith("paused: "), ["StatusText"],
                       what="STATUS paused")
        time.sleep(2.5)  # 25 steps' time, and more than WatchdogSec
        state = self.show("ActiveState", "SubState", "StatusText")
        self.assertEqual((state["ActiveState"], state["SubState"]), ("active", "running"),
                         f"paused, the unit was not kept alive\n{self.unit_log()}")
        self.assertRegex(state["StatusText"], r"^paused: 1 tasks held; SIGINT resumes$")
        CT.systemctl("kill", "-s", "SIGINT", "--kill-who=main", UNIT)
        self.event("resumed")
        self.wait_unit(lambda s: s["StatusText"].startswith("running "), ["StatusText"],
                       what="STATUS running again")
        # Steps go on after the resume.
        deadline = time.monotonic() + 10
        while True:
            records = self.records()
            p = index_of(records, lambda r: r["EVENT"] == "paused")
            q = index_of(records, lambda r: r["EVENT"] == "resumed")
            after = [r for r in records[q:] if r["EVENT"] == "step"]
            if len(after) >= 3 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertGreaterEqual(len(after), 3, "no steps after the resume")
        between = [fmt(r) for r in records[p:q] if r["EVENT"] == "step"]
        self.assertEqual(between, [], "a step between 'paused' and 'resumed'")
        distances = [int(r["DISTANCE"]) for r in records if r["EVENT"] == "step"]
        self.assertEqual(distances, list(range(1, len(distances) + 1)), "steps out of order or lost")
        self.assertGreaterEqual(sent_us(records[q]) - sent_us(records[p]), 2_500_000)


class Control(ServiceTest):
    def test_evtaskctl_through_the_runtime_directory(self):
        # The unit's RuntimeDirectory= is where the socket goes and where
        # evtaskctl, as root, looks for it: no --socket needed.
        self.configure("control", ticker("hare", 10) + sleeper("nap", "60s") + "description = a long nap\n")
        self.start()
        p = CT.run(CTL_PATH, "--json", "status")
        reply = json.loads(p.stdout)
        self.assertEqual(reply["daemon"]["pid"], int(self.main_pid))
        self.assertEqual(sorted(t["name"] for t in reply["tasks"]), ["hare", "nap"])
        self.assertEqual([t.get("description") for t in reply["tasks"] if t["name"] == "nap"], ["a long nap"])
        st = CT.run("stat", "-c", "%a %U", "/run/evtaskd/control").stdout.split()
        self.assertEqual(st[0], "660")
        CT.run(CTL_PATH, "pause")
        control = self.event("control")
        self.assertEqual((control.get("VERB"), control.get("PEER_UID")), ("pause", "0"))
        self.event("paused")
        self.assertEqual(CT.run(CTL_PATH, "health").stdout.strip(), "ready (running, paused)")
        CT.run(CTL_PATH, "resume")
        self.event("resumed")
        CT.systemctl("stop", UNIT, timeout=60)
        self.assertEqual(CT.run("test", "-e", "/run/evtaskd/control", check=False).returncode, 1,
                         "the socket outlived the service")


class Stop(ServiceTest):
    def test_drain_outlasts_timeout_stop_sec(self):
        self.configure("drain", "[daemon]\ndrain_timeout = 20s\n" + sleeper("keeper", "5s", shield=True)
                       + ticker("tick", 10), TimeoutStopSec="2s")
        before_start = time.monotonic()
        self.start()
        self.assertEqual(self.show("TimeoutStopUSec")["TimeoutStopUSec"], "2s")
        self.event("step", "tick")
        sent = time.monotonic()
        stop = subprocess.Popen(["nsenter", "-t", str(CT.init_pid), "-a", "--", "systemctl", "stop", UNIT],
                                env=CT_ENV, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        try:
            draining = self.wait_unit(lambda s: s["StatusText"].startswith("draining: "),
                                      ["StatusText", "SubState"], timeout=4, what="STATUS draining")
            self.assertRegex(draining["StatusText"], r"^draining: \d+ of \d+ tasks left, forcing in \d+ s$")
            self.assertEqual(draining["SubState"], "stop-sigterm")
            out = stop.communicate(timeout=60)[0]
        finally:
            if stop.poll() is None:
                stop.kill()
                stop.wait()
        took = time.monotonic() - sent
        self.assertEqual(stop.returncode, 0, out)
        # keeper was spawned after before_start and sleeps 5 s: the stop
        # waited for it, past TimeoutStopSec=2s.
        self.assertGreaterEqual(took, before_start + 5.0 - sent - 0.05, "the stop did not wait for the drain")
        self.assertGreater(took, 2.0)
        self.assertLess(took, 5.0 + 10.0)
        state = self.show("ActiveState", "Result", "ExecMainCode", "ExecMainStatus")
        self.assertEqual(state["ActiveState"], "inactive", self.unit_log())
        self.assertEqual(state["Result"], "success", f"the stop timed out or failed\n{self.unit_log()}")
        self.assertEqual((state["ExecMainCode"], state["ExecMainStatus"]), ("1", "0"), state)  # CLD_EXITED, 0
        finished = self.records("finished", "keeper", sync=True)
        self.assertEqual(len(finished), 1, self.unit_log())
        self.assertGreaterEqual(int(finished[0]["DURATION_MS"]), 5000)
        self.assertEqual(len(self.records("cancelled", "tick")), 1)
        self.assertEqual(len(self.records("drained")), 1, self.unit_log())
        self.assertEqual(self.records("forced"), [])
        self.assertEqual([r["EXIT_CODE"] for r in self.records("exit")], ["0"])
        sig = self.records("signal")
        self.assertEqual([(r["SIGNAL"], r["SENDER_PID"]) for r in sig], [("SIGTERM", "1")],
                         "KillMode=mixed: one SIGTERM, from systemd, to the main process")


class Watchdog(ServiceTest):
    def test_wedged_loop_is_killed(self):
        self.configure("wedge", "[task.stuck]\nkind = wedge\nduration = 1s\n\n" + ticker("tick", 10),
                       WatchdogSec="2", Restart="no")
        self.start()
        self.assertEqual(self.show("WatchdogUSec")["WatchdogUSec"], "2s")
        wedged = self.event("step", "stuck", timeout=10)
        state = self.wait_unit(lambda s: s["ActiveState"] == "failed",
                               ["ActiveState", "Result", "ExecMainCode", "ExecMainStatus", "NRestarts"],
                               timeout=20, what="a failed unit")
        self.assertEqual(state["Result"], "watchdog", self.unit_log())
        self.assertEqual((state["ExecMainCode"], state["ExecMainStatus"]),
                         ("2", str(int(signal.SIGABRT))), "killed (CLD_KILLED) by WatchdogSignal=SIGABRT")
        # The loop pinged every second until it wedged: the watchdog fired at
        # least one ping interval after the wedge, at most WatchdogSec after.
        manager = CT.run("journalctl", "--no-pager", "-o", "json", f"INVOCATION_ID={self.invocation}", "_PID=1")
        timeout = [r for r in map(json.loads, manager.stdout.splitlines())
                   if "Watchdog timeout" in str(r.get("MESSAGE"))]
        self.assertEqual(len(timeout), 1, self.unit_log())
        late = (sent_us(timeout[0]) - sent_us(wedged)) / 1e6
        self.assertGreaterEqual(late, 1.0 - 0.05)
        self.assertLess(late, 2.0 + 5.0)
        time.sleep(1.0)
        state = self.show("ActiveState", "NRestarts")
        self.assertEqual((state["ActiveState"], state["NRestarts"]), ("failed", "0"), "Restart=no: it stays down")


class Reload(ServiceTest):
    V1 = "[daemon]\nthreads = 1\n" + ticker("steady", 10) + ticker("old", 1) + ticker("tuned", 2)
    V2 = "[daemon]\nthreads = 1\n" + ticker("steady", 10) + ticker("tuned", 20) + ticker("fresh", 5)

    def reload(self):
        """systemctl reload, which must succeed (ExecReload= runs)."""
        p = CT.systemctl("reload", UNIT, check=False, timeout=30)
        self.assertEqual(p.returncode, 0, f"systemctl reload failed: {p.stderr}\n{self.unit_log()}")

    def test_reload_applies_changes_and_survives_a_bad_config(self):
        self.configure("reload", self.V1)
        self.start()
        self.event("step", "old")
        self.write(self.conf, self.V2)
        self.reload()
        reloaded = self.event("reloaded")
        self.assertEqual([(r["EVENT"], r.get("TASK")) for r in self.records()
                          if r["EVENT"] in ("removed", "added", "changed")],
                         [("removed", "old"), ("changed", "tuned"), ("added", "fresh")])
        self.assertEqual([reloaded.get(k) for k in ("ADDED", "REMOVED", "CHANGED", "UNCHANGED")],
                         ["1", "1", "1", "1"])
        self.event("cancelled", "old")
        self.event("step", "fresh")
        state = self.wait_unit(lambda s: s["SubState"] == "running" and s["StatusText"] == "running 3 tasks",
                               ["ActiveState", "SubState", "StatusText"], timeout=5,
                               what="the unit running the 3 tasks of the new config")
        self.assertEqual(state["ActiveState"], "active")
        self.assertEqual(self.records("spawned", "old")[1:], [], "a removed task came back")

        # A bad value on a known line: nothing changes, the tasks run on.
        bad = self.V2.replace("speed = 20", "speed = fast")
        line = bad.splitlines().index("speed = fast") + 1
        self.write(self.conf, bad)
        self.reload()
        failed = self.event("reload-failed")
        self.assertIn(f"{self.conf}:{line}:", failed["MESSAGE"])
        self.assertIn("speed", failed["MESSAGE"])
        self.assertEqual(failed.get("PRIORITY"), "3")
        records = self.records()
        at = index_of(records, lambda r: r["EVENT"] == "reload-failed")
        changes = [fmt(r) for r in records[at:] if r["EVENT"] in ("removed", "added", "changed", "reloaded")]
        self.assertEqual(changes, [], "a failed reload changed something")
        self.wait_for(lambda r: r["EVENT"] == "step" and r.get("TASK") == "steady"
                      and sent_us(r) > sent_us(failed) + 300_000,
                      what="steps of steady after the failed reload")
        state = self.wait_unit(lambda s: s["SubState"] == "running", ["ActiveState", "SubState"],
                               what="the unit running after the failed reload")
        self.assertEqual(state["ActiveState"], "active")
        self.assertEqual(self.records("exit"), [])


class BadConfig(ServiceTest):
    def test_bad_config_fails_the_start_without_restarts(self):
        text = "[daemon]\nthreads = 1\n[task.a]\nkind = ticker\nspeed = fast\n"
        self.configure("bad", text)
        p = self.start(check=False)
        self.assertNotEqual(p.returncode, 0, "systemctl start succeeded on a bad config")
        state = self.show("ActiveState", "Result", "ExecMainCode", "ExecMainStatus", "NRestarts")
        self.assertEqual(state["ExecMainStatus"], "78", self.unit_log())
        self.assertEqual(state["ExecMainCode"], "1")  # CLD_EXITED
        self.assertEqual(state["Result"], "exit-code")
        time.sleep(3)  # Restart=on-failure would have restarted it by now
        state = self.show("ActiveState", "SubState", "NRestarts", "InvocationID")
        self.assertEqual((state["ActiveState"], state["SubState"]), ("failed", "failed"), self.unit_log())
        self.assertEqual(state["NRestarts"], "0", "RestartPreventExitStatus=78: no restart")
        self.assertEqual(state["InvocationID"], self.invocation, "a new invocation started")
        lines = [str(r.get("MESSAGE")) for r in self.journal(sync=True)]
        self.assertTrue(any(f"{self.conf}:5:" in m and "speed" in m for m in lines),
                        f"the error names file and line; journal: {lines}")
        self.assertEqual([r for r in self.records() if r["EVENT"] in ("started", "spawned")], [],
                         "something started on a bad config")


class Cancelled(ServiceTest):
    def test_journal_lists_what_a_stop_cancelled(self):
        self.configure("cancel", "[daemon]\nthreads = 1\n" + sleeper("slow-a", "60s") + sleeper("slow-b", "60s")
                       + sleeper("brief", "1s", shield=True))
        self.start()
        self.event("spawned", "brief")
        time.sleep(0.3)
        CT.systemctl("stop", UNIT, timeout=60)
        out = CT.run("journalctl", "--no-pager", "-u", "evtaskd", "EVENT=cancelled",
                     f"_SYSTEMD_INVOCATION_ID={self.invocation}", "-o", "json").stdout
        records = []
        for line in out.splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                self.fail(f"journalctl -o json printed a line that is not JSON: {line!r}")
        self.assertEqual(sorted(r["TASK"] for r in records), ["slow-a", "slow-b"],
                         f"the cancelled tasks, exactly; journal:\n{self.unit_log()}")
        ids = set()
        for r in records:
            self.assertEqual(r["EVENT"], "cancelled")
            self.assertRegex(r.get("MESSAGE_ID", ""), r"^[0-9a-f]{32}$")
            ids.add(r["MESSAGE_ID"])
            self.assertEqual(r.get("PRIORITY"), "5", "notice")
            self.assertTrue(r.get("MESSAGE", "").startswith(r["TASK"] + ": cancelled"), r.get("MESSAGE"))
            self.assertEqual(r.get("SYSLOG_IDENTIFIER"), "evtaskd")
            self.assertEqual(r.get("_SYSTEMD_UNIT"), UNIT)
        self.assertEqual(len(ids), 1, "one MESSAGE_ID per event kind")
        finished = self.records("finished", sync=True)
        self.assertEqual([r["TASK"] for r in finished], ["brief"])
        self.assertNotEqual(finished[0].get("MESSAGE_ID"), ids.pop())
        by_id = CT.run("journalctl", "--no-pager", "-o", "json", f"MESSAGE_ID={records[0]['MESSAGE_ID']}",
                       f"_SYSTEMD_INVOCATION_ID={self.invocation}").stdout.splitlines()
        self.assertEqual(len(by_id), 2, "journalctl MESSAGE_ID=... finds the cancelled records")
        self.assertEqual(self.show("Result")["Result"], "success")


class Users(ServiceTest):
    def test_exec_jobs_as_other_users(self):
        """With the shipped drop-in, exec jobs run as the users they name, and
        a stop still reaches their processes."""
        text = ("[task.who]\nkind = exec\ncommand = id -u\nuser = nobody\n\n"
                "[task.long]\nkind = exec\ncommand = sleep 600\nuser = nobody\nkill_timeout = 30s\n")
        self.configure("users", text)
        p = self.start(check=False)
        self.assertNotEqual(p.returncode, 0, "the unit's dynamic user cannot switch users")
        self.wait_unit(lambda v: v["ExecMainStatus"] == "78", ["ExecMainStatus"], what="exit status 78")
        self.assertIn("only a daemon running as root can switch to it", self.unit_log())

        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "systemd",
                               "run-jobs-as-users.conf")) as f:
            users = "".join(line for line in f if line.strip() != "[Service]")
        self.configure("users", text, extra=users)
        self.start()
        out = self.event("output", "who")
        self.assertEqual(out["MESSAGE"], "who: 65534")
        self.event("run", "long")
        started = time.monotonic()
        CT.systemctl("stop", UNIT, timeout=60)
        self.assertLess(time.monotonic() - started, 10, "SIGTERM reached the job's process (CAP_KILL)")
        self.assertEqual([r["TASK"] for r in self.records("cancelled", sync=True)], ["long"])
        self.assertEqual(self.show("Result")["Result"], "success")


class ProcessTree(ServiceTest):
    """Delegate=yes: the unit's cgroup is evtaskd's, and each exec run is a
    cgroup of it, frozen by a pause and emptied at the run's end (issue 18,
    findings 7 and 8, with the mechanism the plain suite cannot have)."""

    def cgroup_file(self, pid, name):
        """A file of pid's cgroup v2, read inside the container."""
        p = CT.run("sh", "-c", f"d=$(awk '$9 == \"cgroup2\" {{print $5; exit}}' /proc/self/mountinfo); "
                   f"c=$(sed -n 's/^0:://p' /proc/{pid}/cgroup); echo \"$c\"; cat \"$d$c/{name}\"")
        path, _, text = p.stdout.partition("\n")
        return path, text

    def test_each_run_in_a_cgroup_of_its_own(self):
        stubborn = "sh -c 'trap \"\" TERM; echo $$; while :; do sleep 0.1; done'"
        self.configure("tree", f"[task.tree]\nkind = exec\nshell = yes\ncommand = setsid {stubborn} & sleep 600\n"
                       "kill_timeout = 1s\n")
        self.start()
        started = self.event("started")
        self.assertEqual(started.get("PROCESSES"), "cgroup",
                         f"the unit's cgroup is not delegated: {started.get('MESSAGE')}")
        pid = int(self.wait_for(lambda r: r["EVENT"] == "output" and r.get("TASK") == "tree",
                                what="the stubborn process's pid")["MESSAGE"].split(": ", 1)[1])
        path, procs = self.cgroup_file(pid, "cgroup.procs")
        self.assertRegex(path, r"/evtaskd\.service/run-1\.tree$", "the run's process is not in the run's cgroup")
        self.assertIn(str(pid), procs.split())

        CT.systemctl("kill", "-s", "SIGINT", "--kill-who=main", UNIT)
        self.event("paused")
        self.assertIn("frozen 1", self.cgroup_file(pid, "cgroup.events")[1].splitlines(),
                      "the pause did not freeze the run's cgroup")
        CT.systemctl("kill", "-s", "SIGINT", "--kill-who=main", UNIT)
        self.event("resumed")
        self.assertIn("frozen 0", self.cgroup_file(pid, "cgroup.events")[1].splitlines())

        CT.systemctl("stop", UNIT, timeout=60)
        named = [r.get("SIGNAL") for r in self.records("leftover", sync=True) if r.get("PID") == str(pid)]
        self.assertEqual(named, ["SIGTERM", "SIGKILL"], self.unit_log())
        self.assertEqual(self.show("Result")["Result"], "success", "systemd had to kill what evtaskd left")
        self.assertNotEqual(CT.run("test", "-e", f"/proc/{pid}", check=False).returncode, 0,
                            "the stubborn process outlived evtaskd")


class Metrics(ServiceTest):
    def test_loopback_http_through_the_dropin(self):
        # The unit forbids IP sockets: http_listen on 127.0.0.1 is a config
        # error (78) until the shipped drop-in allows loopback TCP.
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.configure("metrics", f"[daemon]\nhttp_listen = 127.0.0.1:{port}\n\n" + ticker("hare", 10))
        p = self.start(check=False)
        self.assertNotEqual(p.returncode, 0, "http_listen on 127.0.0.1 worked without the drop-in")
        self.wait_unit(lambda s: s["ExecMainStatus"] == "78", ["ExecMainStatus"], what="exit status 78")
        installed = glob.glob(host("/usr/**/doc/evtask/evtaskd.service.d/metrics.conf"), recursive=True)
        self.assertEqual(len(installed), 1, "the drop-in is installed with the documentation")
        shutil.copy(installed[0], host(DROPIN_DIR + "/metrics.conf"))
        self.addCleanup(lambda: os.unlink(host(DROPIN_DIR + "/metrics.conf")))
        CT.systemctl("daemon-reload")
        CT.systemctl("reset-failed", UNIT, check=False)
        self.start()
        props = self.show("PrivateNetwork", "RestrictAddressFamilies", "IPAddressAllow", "IPAddressDeny")
        self.assertEqual(props["PrivateNetwork"], "no")
        self.assertEqual(sorted(props["RestrictAddressFamilies"].split()), ["AF_INET", "AF_INET6", "AF_UNIX"])
        # Through bash's /dev/tcp, inside the container (no curl there).
        get = ("exec 3<>/dev/tcp/127.0.0.1/%d; printf 'GET %%s HTTP/1.0\\r\\n\\r\\n' \"$0\" >&3; cat <&3" % port)
        for path, status in (("/livez", "200"), ("/readyz", "200"), ("/nosuch", "404")):
            out = CT.run("bash", "-c", get, path).stdout
            self.assertRegex(out.splitlines()[0], rf"^HTTP/1\.[01] {status} ", out)
        out = CT.run("bash", "-c", get, "/metrics").stdout
        self.assertIn('evtask_task_state{task="hare",kind="ticker",state="waiting"}', out)
        CT.systemctl("stop", UNIT, timeout=60)


class Limits(ServiceTest):
    """The unit's system call filter lets a run's child set its rlimits
    (the C library's setrlimit is the prlimit64 call, which @default
    allows), and the limits record says how they apply."""

    def test_rlimits_under_the_filter(self):
        self.configure("limits", "[task.show]\nkind = exec\nshell = yes\ncommand = ulimit -n; ulimit -t\n"
                       "limit_nofile = 77\nlimit_cpu = 90s\nmemory_max = 512M\n\n" + ticker("tick", 10))
        self.start()
        limits = self.event("limits", "show")
        self.assertIn("limit_nofile", limits.get("APPLIED", "").split(), limits.get("MESSAGE"))
        self.assertEqual(self.event("finished", "show").get("EXIT_CODE"), "0", self.unit_log())
        self.assertEqual([r["MESSAGE"].split(": ", 1)[1] for r in self.records("output", "show")], ["77", "90"])


class OutputBudget(ServiceTest):
    """A job printing 100,000 lines a second under output_rate = 100/s:
    journald's rate limit per unit (RateLimitBurst=10000 in 30 s) never
    reaches the daemon's own records, so every lifecycle record of every
    task is in the journal. Without the budget (the same jobs, for the
    contrast) it is printed as a FIGURE line only, after: journald reports
    what it dropped when its interval ends, up to 30 s later, and the
    budget's test must not count that."""
    SECONDS = 10
    # journald's RateLimitIntervalSec (its default), and a second of margin.
    JOURNALD_INTERVAL = 31.0
    INTERVAL_TASKS = ("probe-a", "probe-b", "probe-c")

    def config(self, budget):
        text = "[daemon]\n\n[task.chatty]\nkind = exec\nshell = yes\n"
        text += (f"command = i=0; while [ $i -lt {self.SECONDS} ]; do seq 1 100000; sleep 1; i=$((i+1)); done\n"
                 + ("output_rate = 100/s\n" if budget else "") + "\n")
        for name in self.INTERVAL_TASKS:
            text += f"[task.{name}]\nkind = exec\ncommand = true\nschedule = interval\ninterval = 200ms\n\n"
        return text + ticker("tick", 10)

    def lifecycle(self):
        """The run numbers of each task's run and finished records, the
        ticker's steps, and the stop's records, from the journal."""
        got = {}
        for name in self.INTERVAL_TASKS + ("chatty",):
            got[name] = ([int(r["RUN"]) for r in self.records("run", name)],
                         [int(r["RUN"]) for r in self.records("finished", name)],
                         len(self.records("cancelled", name)))
        got["tick"] = [int(r["DISTANCE"]) for r in self.records("step", "tick")]
        got["tick_cancelled"] = len(self.records("cancelled", "tick"))
        got["daemon"] = {e: len(self.records(e)) for e in ("started", "stopping", "drained", "exit")}
        return got

    def run_chatty(self, budget):
        since = CT.run("date", "+%Y-%m-%d %H:%M:%S").stdout.strip()
        self.configure("budget" if budget else "nobudget", self.config(budget))
        self.start()
        if budget:
            end = self.wait_for(lambda r: r["EVENT"] == "finished" and r.get("TASK") == "chatty",
                                timeout=120, what="the chatty job's end")
        else:
            # Without a budget the journal's back-pressure slows the job
            # down: the same wall time, measured by the ticker.
            end = self.wait_for(lambda r: r["EVENT"] == "step" and r.get("TASK") == "tick"
                                and int(r["DISTANCE"]) >= 10 * (self.SECONDS + 1), timeout=120, what="the ticker")
        CT.systemctl("stop", UNIT, timeout=90)
        self.stopped = time.monotonic()
        CT.run("journalctl", "--sync")
        suppressed = sum(int(r["RECORDS"]) for r in self.records("suppressed", "chatty"))
        output = len(self.records("output", "chatty"))
        journald = CT.run("journalctl", "--no-pager", "-o", "cat", "_TRANSPORT=driver", "--since", since,
                          check=False).stdout
        dropped = sum(int(n) for n in re.findall(r"Suppressed (\d+) messages from evtaskd\.service", journald))
        return int(end.get("DURATION_MS", 0)), output, suppressed, dropped, self.lifecycle()

    def check_complete(self, got):
        """Every run's record and its end, with no number missing."""
        for name in self.INTERVAL_TASKS + ("chatty",):
            runs, ends, cancelled = got[name]
            self.assertEqual(runs, list(range(1, len(runs) + 1)), f"{name}: run records missing")
            self.assertTrue(set(runs) - set(ends) <= {runs[-1]}, f"{name}: finished records missing")
            if name != "chatty":
                self.assertGreaterEqual(len(runs), self.SECONDS * 5 * 0.8, f"{name}: too few runs")
                self.assertEqual(cancelled, 1, f"{name}: its cancelled record")
        self.assertEqual(got["tick"], list(range(1, len(got["tick"]) + 1)), "ticker steps missing")
        self.assertEqual(got["tick_cancelled"], 1, "the ticker's cancelled record")
        self.assertEqual(got["daemon"], {"started": 1, "stopping": 1, "drained": 1, "exit": 1})

    def test_a_budget_keeps_every_lifecycle_record(self):
        ms, output, suppressed, dropped, got = self.run_chatty(budget=True)
        lines = output + suppressed
        print(f"FIGURE budget 100/s: {lines} lines in {ms} ms ({lines * 1000 // max(ms, 1)} a second), "
              f"{output} logged, {suppressed} suppressed and counted, {dropped} dropped by journald; "
              f"runs per interval task {[len(got[n][0]) for n in self.INTERVAL_TASKS]}, "
              f"ticker steps {len(got['tick'])}", flush=True)
        self.assertEqual(lines, 100000 * self.SECONDS, "every line logged or counted")
        self.assertEqual(dropped, 0, "journald dropped records of the unit")
        self.check_complete(got)

    def test_contrast_without_a_budget(self):
        """The same jobs without a budget: what journald's rate limit drops
        (a figure, not a requirement)."""
        ms, output, suppressed, dropped, got = self.run_chatty(budget=False)
        missing = {n: max(got[n][0] or [0]) - len(got[n][0]) for n in self.INTERVAL_TASKS}
        seconds = max(got["tick"] or [0]) / 10
        print(f"FIGURE no budget: {output} output records in the journal over {seconds:.0f} s, "
              f"{dropped} records dropped by journald; run numbers missing per interval task {missing}, "
              f"ticker steps {len(got['tick'])} of {max(got['tick'] or [0])}, daemon records {got['daemon']}",
              flush=True)
        # journald's rate limit is kept per unit, across invocations: until
        # the interval that holds the flood's last record has ended, it
        # would drop the next test's records of evtaskd.service too.
        time.sleep(max(0.0, self.JOURNALD_INTERVAL - (time.monotonic() - self.stopped)))


class Analyze(unittest.TestCase):
    EXPOSURE = re.compile(r"Overall exposure level for evtaskd\.service: (\d+(?:\.\d+)?)")

    def test_verify_installed_unit(self):
        # --man=no: the root has no man(1) to look the pages up with; that
        # they are installed where man would find them is checked instead.
        p = CT.run("systemd-analyze", "verify", "--man=no", UNIT_PATH, check=False)
        self.assertEqual((p.returncode, p.stdout + p.stderr), (0, ""),
                         f"systemd-analyze verify {UNIT_PATH} in the container")
        for page in ("man8/evtaskd.8", "man5/evtaskd.conf.5"):
            pages = glob.glob(host(f"/usr/*/share/man/{page}")) + glob.glob(host(f"/usr/share/man/{page}"))
            self.assertTrue(pages, f"{page} is not installed")
        unit = CT.run("systemctl", "cat", UNIT).stdout
        self.assertIn(f"ExecStart={DAEMON_PATH} --config ", unit)

    def exposure(self, p, where):
        self.assertEqual(p.returncode, 0, f"{where}: {p.stderr}")
        m = self.EXPOSURE.search(p.stdout)
        self.assertIsNotNone(m, f"{where}: no overall exposure level in:\n{p.stdout[-500:]}")
        return float(m.group(1))

    def test_security_exposure(self):
        if shutil.which("systemd-analyze"):
            p = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager", UNIT_FILE],
                               capture_output=True, text=True, timeout=60)
            level = self.exposure(p, f"systemd-analyze security --offline=yes {UNIT_FILE}")
            self.assertLessEqual(level, 1.5, UNIT_FILE)
        p = CT.run("systemd-analyze", "security", "--offline=yes", "--no-pager", UNIT_PATH, check=False)
        level = self.exposure(p, f"systemd-analyze security --offline=yes {UNIT_PATH} in the container")
        self.assertLessEqual(level, 1.5, UNIT_PATH)


def on_sigterm(signo, frame):
    raise KeyboardInterrupt  # out of unittest, to the atexit poweroff


if __name__ == "__main__":
    reason = skip_reason()
    if reason:
        print(f"SKIP: {reason}")
        sys.exit(77)
    signal.signal(signal.SIGTERM, on_sigterm)
    unittest.main(argv=sys.argv[:1] + sys.argv[1:], verbosity=2)
