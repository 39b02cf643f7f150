#!/usr/bin/env python3
"""evtaskd as a service manager or an orchestrator runs it (issue 21): the
[daemon] keys set from the command line and the environment, the default
config path, the stop grace, SIGINT mapped to a shutdown, the log sink
`auto` picks, and a reload on a changed config file. The real binary, real
signals, its records.
"""
import os
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
        p = subprocess.run([*childenv.WRAPPER, EVTASKD, "--config", f.name, "--check-config", *args],
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


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], *sys.argv[1:]], verbosity=2)
