#!/usr/bin/env python3
"""evtaskd as a service manager or an orchestrator runs it (issue 21): the
[daemon] keys set from the command line and the environment, the default
config path, the stop grace, SIGINT mapped to a shutdown, the log sink
`auto` picks, and a reload on a changed config file. The real binary, real
signals, its records.
"""
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))
import childenv  # noqa: E402
from test_evtaskd import EVTASKD, DaemonTest  # noqa: E402

SHIELDED = """[daemon]
drain_timeout = 20s
[task.keeper]
kind = sleep
duration = 60s
shield = yes
"""


def env_with(**kw):
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVTASKD_")}
    env.update(kw)
    return env


def check_config(text, *args, env=None):
    """evtaskd --check-config on text: (exit status, stdout, stderr)."""
    with tempfile.NamedTemporaryFile("w", suffix=".conf") as f:
        f.write(text)
        f.flush()
        p = subprocess.run([EVTASKD, "--config", f.name, "--check-config", *args],
                           capture_output=True, text=True, env=env or env_with(), timeout=30)
    return p.returncode, p.stdout, p.stderr


class Overrides(DaemonTest):
    """--set KEY=VALUE and EVTASKD_KEY=VALUE over the file's [daemon]."""

    def test_environment_and_command_line_set_the_drain(self):
        # The file's 20 s drain, cut to 300 ms by the environment; the
        # command line's abandon_grace wins over the environment's.
        d = self.run_daemon(SHIELDED, args=("--set", "abandon_grace=2s"),
                            env=env_with(EVTASKD_DRAIN_TIMEOUT="300ms", EVTASKD_ABANDON_GRACE="5s",
                                         EVTASKD_NO_SUCH_KEY="1"))
        over = d.wait_for(lambda r: r["event"] == "started" and "overrides" in r, what="the overrides record")
        self.assertEqual(over["overrides"], "drain_timeout (environment EVTASKD_DRAIN_TIMEOUT), "
                                            "abandon_grace (--set abandon_grace)")
        ignored = d.wait_for(lambda r: r["event"] == "started" and "ignored" in r, what="the ignored names")
        self.assertEqual(ignored["ignored"], "EVTASKD_NO_SUCH_KEY")
        self.assertEqual(ignored["level"], "warning")
        d.event("spawned", "keeper")
        d.kill(signal.SIGTERM)
        draining = d.event("draining")
        self.assertIn("waiting up to 300 ms", draining["msg"])
        forcing = d.event("forcing")
        self.assertIn("get 2000 ms", forcing["msg"])
        self.assertEqual(d.finish(), 3)
        self.assert_clean_log(d)

    def test_a_reload_keeps_them(self):
        d = self.run_daemon(SHIELDED, env=env_with(EVTASKD_DRAIN_TIMEOUT="300ms"))
        d.event("spawned", "keeper")
        d.kill(signal.SIGHUP)
        done = d.wait_for(lambda r: r["event"] in ("reloaded", "reload-failed"), what="the reload's outcome")
        self.assertEqual(done["event"], "reloaded")
        self.assertEqual([r for r in d.of("changed") if r["task"] is None], [],
                         "the reload saw the file's drain_timeout as a change")
        d.kill(signal.SIGTERM)
        self.assertIn("waiting up to 300 ms", d.event("draining")["msg"])
        self.assertEqual(d.finish(), 3)

    def test_bad_values_name_their_origin(self):
        code, _, err = check_config(SHIELDED, "--set", "drain_timeout=5x")
        self.assertEqual(code, 78)
        self.assertIn("--set drain_timeout: key 'drain_timeout' in [daemon]: '5x' is not a duration", err)
        code, _, err = check_config(SHIELDED, env=env_with(EVTASKD_DRAIN_TIMEOUT="0"))
        self.assertEqual(code, 78)
        self.assertIn("environment EVTASKD_DRAIN_TIMEOUT: key 'drain_timeout' in [daemon]: must be more than 0", err)
        # The command line wins, even over a bad environment value.
        code, _, _ = check_config(SHIELDED, "--set", "drain_timeout=1s", env=env_with(EVTASKD_DRAIN_TIMEOUT="0"))
        self.assertEqual(code, 78, "every value given is read: a bad one is refused even where another wins")

    def test_usage_errors(self):
        for arg, needle in (("nope=1", "unknown [daemon] key 'nope'"), ("duration=1s", "unknown [daemon] key"),
                            ("drain_timeout", "is not KEY=VALUE")):
            code, _, err = check_config(SHIELDED, "--set", arg)
            self.assertEqual(code, 64, arg)
            self.assertIn(needle, err)

    def test_check_config_honours_them(self):
        code, out, err = check_config(SHIELDED, "--set", "threads=2", env=env_with(EVTASKD_EXIT_WHEN_DONE="yes",
                                                                                   EVTASKD_BOGUS="x"))
        self.assertEqual(code, 0, err)
        self.assertIn("set outside it: exit_when_done (environment EVTASKD_EXIT_WHEN_DONE), threads (--set threads)",
                      out)
        self.assertIn("ignored, no [daemon] key: EVTASKD_BOGUS", err)


QUICK = """[daemon]
exit_when_done = yes
[task.quick]
kind = sleep
duration = 10ms
"""


def run_plain(*args, env=None, **kw):
    """evtaskd with args, its output captured, to its exit."""
    return subprocess.run([EVTASKD, *args], capture_output=True, text=True,
                          env=env or env_with(), timeout=30, preexec_fn=childenv.default_signals, **kw)


class DefaultConfig(unittest.TestCase):
    """No silent demo: a bare evtaskd reads the build's default config
    path, --demo runs the demo, and no long option is abbreviated."""

    def default_path(self):
        m = re.search(r"read FILE \(default: (\S+)\)", run_plain("--help").stdout)
        self.assertIsNotNone(m, "--help names the default config")
        return m.group(1)

    def test_bare_evtaskd_reads_the_default_path(self):
        path = self.default_path()
        self.assertTrue(path.endswith("/evtaskd.conf"), path)
        if os.path.exists(path):
            self.skipTest(f"{path} exists on this machine")
        for args in ((), ("--check-config",), ("--log", "json")):
            p = run_plain(*args)
            self.assertEqual(p.returncode, 78, p.stderr)
            self.assertEqual(p.stdout, "", "nothing ran")
            self.assertIn(f"{path}: no such file: the default config", p.stderr)
            self.assertIn("--demo", p.stderr)

    def test_demo_is_one_flag_away(self):
        p = run_plain("--demo", "--check-config")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("<built-in demo.conf>: ok, 9 tasks", p.stdout)
        with tempfile.NamedTemporaryFile("w", suffix=".conf") as f:
            f.write(QUICK)
            f.flush()
            p = run_plain("--demo", "--config", f.name, "--check-config")
            self.assertEqual(p.returncode, 64)
            self.assertIn("--demo and --config exclude each other", p.stderr)

    def test_no_abbreviations(self):
        with tempfile.NamedTemporaryFile("w", suffix=".conf") as f:
            f.write(QUICK)
            f.flush()
            for args in (["--check"], ["--check-conf"], ["--conf", f.name], ["--config", f.name, "--lo", "json"],
                         ["--dem"], ["--he"], ["--vers"]):
                p = run_plain(*args)
                self.assertEqual(p.returncode, 64, args)
                self.assertIn("(options are not abbreviated)", p.stderr, args)
                self.assertEqual(p.stdout, "", args)
            # Spelled out, in each form getopt takes, they work; an option's
            # argument that looks like an option is an argument.
            for args in (["--config", f.name], [f"--config={f.name}"], ["-c", f.name], [f"-c{f.name}"],
                         ["--config", f.name, "--log=json"], ["--config", f.name, "-ljson"],
                         ["--config", f.name, "--set", "drain_timeout=1s"]):
                p = run_plain(*args, "--check-config")
                self.assertEqual(p.returncode, 0, f"{args}: {p.stderr}")
            p = run_plain("--set", "--check", "--config", f.name, "--check-config")
            self.assertEqual(p.returncode, 64)
            self.assertIn("'--check' is not KEY=VALUE", p.stderr)


class LogAuto(unittest.TestCase):
    """log = auto: the journal when stdout is its stream, the console on a
    terminal, JSON lines on stdout otherwise."""

    def conf(self):
        f = tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False)
        f.write(QUICK)
        f.close()
        self.addCleanup(os.unlink, f.name)
        return f.name

    def test_a_pipe_gets_json_lines(self):
        p = run_plain("--config", self.conf())
        self.assertEqual(p.returncode, 0, p.stderr)
        records = [json.loads(line) for line in p.stdout.splitlines()]
        # (Without a warning at start-up, as under qemu-user: no subreaper.)
        self.assertEqual([r["event"] for r in records if r["event"] in ("started", "finished", "exit")
                          and r["level"] != "warning"], ["started", "finished", "exit"])
        for r in records:
            self.assertRegex(r["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
            self.assertIn(r["level"], ("debug", "info", "notice", "warning", "err", "crit"))
        self.assertEqual(p.stderr, "")

    def test_a_terminal_gets_the_console(self):
        master, slave = os.openpty()
        try:
            p = subprocess.run([EVTASKD, "--config", self.conf()], stdout=slave, stderr=slave,
                               env=env_with(), timeout=30, preexec_fn=childenv.default_signals)
        finally:
            os.close(slave)
        out = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the terminal's other side is closed
                break
            if not chunk:
                break
            out += chunk
        os.close(master)
        self.assertEqual(p.returncode, 0, out)
        text = out.decode(errors="replace")
        self.assertRegex(text, r"\d\d:\d\d:\d\d\.\d{3} started: evtaskd")
        self.assertRegex(text, r"\[quick\] finished: ")
        self.assertNotIn('{"ts"', text)
        self.assertNotIn("<6>", text)

    def test_the_journal_stream_is_not_json(self):
        """JOURNAL_STREAM naming stdout: the journal where journald listens
        (the booted-systemd suite reads it there), else the console with
        its priority prefixes; never JSON."""
        r, w = os.pipe()
        st = os.fstat(w)
        env = env_with(JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}")
        proc = subprocess.Popen([EVTASKD, "--config", self.conf()], stdout=w,
                                stderr=subprocess.PIPE, env=env, preexec_fn=childenv.default_signals)
        os.close(w)
        with os.fdopen(r, "rb") as f:
            stdout = f.read()
        stderr = proc.stderr.read().decode()
        proc.stderr.close()
        self.assertEqual(proc.wait(30), 0, stderr)
        self.assertEqual(stdout, b"", "nothing on stdout: the journal's stream")
        if os.access("/run/systemd/journal/socket", os.W_OK):
            self.assertNotIn("started:", stderr)
        else:
            self.assertIn("<6>started: evtaskd", stderr)
        # The same JOURNAL_STREAM with stdout elsewhere (a pipe of its own)
        # is not the journal: JSON.
        p = run_plain("--config", self.conf(), env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(p.stdout.startswith('{"ts"'), p.stdout[:200])


class StopGrace(DaemonTest):
    """[daemon] stop_grace: a shutdown longer than the service manager
    waits is said at the start, and the drain names the work it cuts."""

    def test_short_grace_is_said_and_names_the_cut_work(self):
        conf = SHIELDED + "[task.other]\nkind = sleep\nduration = 60s\nshield = yes\n[task.plain]\nkind = sleep\nduration = 60s\n"
        d = self.run_daemon(conf, env=env_with(EVTASKD_STOP_GRACE="2s"))
        warned = d.wait_for(lambda r: r["event"] == "started" and "stop_grace_ms" in r, what="the warning")
        self.assertEqual(warned["level"], "warning")
        self.assertEqual((warned["stop_grace_ms"], warned["drain_timeout_ms"], warned["abandon_grace_ms"]),
                         (2000, 20000, 1000))
        d.event("spawned", "plain")
        d.kill(signal.SIGTERM)
        cut = d.wait_for(lambda r: r["event"] == "draining" and "cut" in r, what="the cut record")
        self.assertEqual(sorted(cut["cut"].split()), ["keeper", "other"])
        self.assertEqual(cut["level"], "warning")
        d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(), 3)
        self.assert_clean_log(d)

    def test_check_config_says_it_too(self):
        code, out, err = check_config(SHIELDED, env=env_with(EVTASKD_STOP_GRACE="2s"))
        self.assertEqual(code, 0, err)
        self.assertIn("drain_timeout plus abandon_grace (21000 ms) is more than stop_grace (2000 ms)", err)
        code, out, err = check_config(SHIELDED, env=env_with(EVTASKD_STOP_GRACE="21s"))
        self.assertEqual((code, err), (0, ""))

    def test_a_long_enough_grace_says_nothing(self):
        for env in (env_with(EVTASKD_STOP_GRACE="21s"), env_with()):
            d = self.run_daemon(SHIELDED, env=env)
            d.event("spawned", "keeper")
            d.kill(signal.SIGTERM)
            d.event("draining")
            d.kill(signal.SIGTERM)
            self.assertEqual(d.finish(), 3)
            self.assertEqual([r for r in d.records if "stop_grace_ms" in r or "cut" in r], [])


class Sigint(DaemonTest):
    """[daemon] sigint = shutdown: SIGINT counts as SIGTERM does."""

    CONF = """[daemon]
sigint = shutdown
drain_timeout = 60s
abandon_grace = 60s
[task.cruncher]
kind = blocking
duration = 30s
check_every = 0
shield = yes
"""

    def test_first_drains_second_forces_third_exits(self):
        d = self.run_daemon(self.CONF)
        # Running, or the force would cancel the task before its call.
        d.call_running("cruncher")
        d.kill(signal.SIGINT)
        d.event("draining")
        d.kill(signal.SIGINT)
        d.event("forcing")
        self.assertEqual([(r["signal"], r["action"]) for r in d.of("signal")
                          if r["signal"] == "SIGINT"],
                         [("SIGINT", "shutdown"), ("SIGINT", "force")])
        self.assertEqual(d.of("paused"), [])
        # The blocking call ignores its stop flag: abandon_grace holds the
        # daemon, and the third SIGINT exits from the handler.
        d.kill(signal.SIGINT)
        self.assertEqual(d.finish(10), 128 + signal.SIGINT)
        self.assertIn("third shutdown signal", json.dumps(d.records))

    def test_from_the_environment_and_the_default(self):
        d = self.run_daemon(SHIELDED, env=env_with(EVTASKD_SIGINT="shutdown"))
        d.event("spawned", "keeper")
        d.kill(signal.SIGINT)
        d.event("draining")
        d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(), 3)
        self.assertEqual([r["action"] for r in d.of("signal")], ["shutdown", "force"])
        # The default stays the pause.
        d = self.run_daemon(SHIELDED, env=env_with(EVTASKD_SIGINT="pause"))
        d.event("spawned", "keeper")
        d.kill(signal.SIGINT)
        d.event("paused")
        d.kill(signal.SIGTERM)
        d.event("draining")
        d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(), 3)

    def test_bad_value(self):
        code, _, err = check_config(SHIELDED, "--set", "sigint=stop")
        self.assertEqual(code, 78)
        self.assertIn("unknown SIGINT action 'stop' (pause or shutdown)", err)


class ReloadOnChange(DaemonTest):
    """[daemon] reload_on_change: a ConfigMap update, done as the kubelet
    does it, reloads the daemon as SIGHUP would."""

    def config_map(self, root, version, text):
        """The kubelet's update: a new timestamped directory, `..data_tmp`
        pointing at it, renamed over `..data`, the old directory removed."""
        new = os.path.join(root, f"..2026_12_07_{version}")
        os.mkdir(new)
        with open(os.path.join(new, "evtaskd.conf"), "w") as f:
            f.write(text)
        old = os.readlink(os.path.join(root, "..data")) if os.path.islink(os.path.join(root, "..data")) else None
        os.symlink(os.path.basename(new), os.path.join(root, "..data_tmp"))
        os.rename(os.path.join(root, "..data_tmp"), os.path.join(root, "..data"))
        if old:
            shutil.rmtree(os.path.join(root, old))

    def test_configmap_swap_reloads_once(self):
        root = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, root, True)
        head = "[daemon]\nreload_on_change = yes\n"
        self.config_map(root, "v1", head + "[task.a]\nkind = sleep\nduration = 60s\n")
        os.symlink("..data/evtaskd.conf", os.path.join(root, "evtaskd.conf"))
        d = self.run_daemon("", args=("--config", os.path.join(root, "evtaskd.conf")))
        d.event("spawned", "a")
        self.config_map(root, "v2", head + "[task.b]\nkind = sleep\nduration = 60s\n")
        done = d.wait_for(lambda r: r["event"] in ("reloaded", "reload-failed"), what="the reload's outcome")
        self.assertEqual(done["event"], "reloaded", done)
        self.assertEqual((done["added"], done["removed"]), (1, 1))
        d.event("spawned", "b")
        # An unrelated file in the directory changes nothing.
        with open(os.path.join(root, "other"), "w") as f:
            f.write("x")
        self.config_map(root, "v3", head + "[task.c]\nkind = sleep\nduration = 60s\n")
        d.event("spawned", "c")
        d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(), 0)
        self.assertEqual(len(d.of("reloading")), 2, "one reload per swap")
        self.assertEqual(d.of("reload-failed"), [])

    def test_an_edit_in_place_and_a_bad_one(self):
        head = "[daemon]\nreload_on_change = yes\n"
        d = self.run_daemon(head + "[task.a]\nkind = sleep\nduration = 60s\n")
        d.event("spawned", "a")
        with open(d.conf.name, "w") as f:
            f.write(head + "[task.a]\nkind = sleep\nduration = 60s\n[task.b]\nkind = sleep\nduration = 60s\n")
        done = d.wait_for(lambda r: r["event"] in ("reloaded", "reload-failed"), what="the reload's outcome")
        self.assertEqual((done["event"], done["added"], done["unchanged"]), ("reloaded", 1, 1))
        # A bad edit is refused as SIGHUP's would be: the daemon runs on.
        with open(d.conf.name, "w") as f:
            f.write(head + "[task.a]\nkind = sleep\nduration = soon\n")
        failed = d.event("reload-failed")
        self.assertIn("'soon' is not a duration", failed["msg"])
        d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(), 0)
        self.assertEqual(len(d.of("cancelled")), 2)


class Pid1(DaemonTest):
    """evtaskd as PID 1 of a PID namespace (`unshare -pf`, as a container
    runs it): its signals, SIGINT mapped to a shutdown, and the orphans it
    reaps, with log = auto writing JSON to the pipe."""

    def start_as_pid1(self, text, env):
        conf = tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False)
        conf.write(text)
        conf.close()
        self.addCleanup(os.unlink, conf.name)
        probe = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True)
        if probe.returncode != 0:
            self.skipTest(f"cannot make a PID namespace here: {probe.stderr.decode().strip()}")
        script = tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False)
        script.write("#!/bin/sh\nexec unshare --pid --fork --mount-proc --kill-child "
                     f"{shlex.quote(EVTASKD)} --config {shlex.quote(conf.name)}\n")
        script.close()
        os.chmod(script.name, 0o755)
        self.addCleanup(os.unlink, script.name)
        return self.run_daemon("", program=script.name, env=env)

    def test_sigint_drains_and_orphans_are_reaped(self):
        text = ("[task.keeper]\nkind = sleep\nduration = 30s\nshield = yes\n"
                "[task.spawner]\nkind = exec\ncommand = (sleep 0.1 &); sleep 30\nshell = yes\n")
        d = self.start_as_pid1(text, env_with(EVTASKD_SIGINT="shutdown"))
        started = d.wait_for(lambda r: r["event"] == "started" and "pid" in r, what="the started record")
        self.assertEqual(started["pid"], 1)
        reaped = d.event("reaped")
        self.assertEqual(reaped["exit_code"], 0)
        with open(f"/proc/{d.proc.pid}/task/{d.proc.pid}/children") as f:
            inner = int(f.read().split()[0])
        os.kill(inner, signal.SIGINT)
        d.event("draining")
        d.event("cancelled", "spawner")
        os.kill(inner, signal.SIGINT)
        d.event("forced", "keeper")
        self.assertEqual(d.finish(), 3)
        self.assertEqual([(r["signal"], r["action"]) for r in d.of("signal")],
                         [("SIGINT", "shutdown"), ("SIGINT", "force")])
        self.assert_clean_log(d)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], *sys.argv[1:]], verbosity=2)
