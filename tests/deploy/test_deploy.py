#!/usr/bin/env python3
"""The orchestrator manifests of deploy/, checked offline against what
evtaskd reads: there is no cluster here, and kubectl's dry run needs an
API server.

Run by meson (`meson test --suite deploy`) with EVTASKD (the built daemon),
EVTASKD_CONF_MAN (evtaskd.conf(5), whose [daemon] section lists the keys)
and DEPLOY (the deploy/ directory) set. Checks yamllint's verdict; each
Kubernetes workload and the Nomad job against its config: the config is
valid with the environment the manifest gives (evtaskd --check-config),
every EVTASKD_ name is a [daemon] key, the probes reach http_listen's
port on /readyz and /livez (or run evtaskctl), the grace period is above
drain_timeout plus abandon_grace and is what EVTASKD_STOP_GRACE says,
the stop signal is SIGTERM, and the pod runs as the image's user.
"""
import configparser
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

try:
    import yaml
except ImportError:
    yaml = None

EVTASKD = os.environ.get("EVTASKD", "build/src/daemon/evtaskd")
SOURCE = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DEPLOY = os.environ.get("DEPLOY", os.path.join(SOURCE, "deploy"))
CONF_MAN = os.environ.get("EVTASKD_CONF_MAN", os.path.join(SOURCE, "man", "evtaskd.conf.5"))
CONTAINERFILE = os.path.join(SOURCE, "Containerfile")
CONFIG_MAP = "evtaskd-config"
# Nomad clients cap kill_timeout at max_kill_timeout, 30 s unless set.
NOMAD_MAX_KILL_TIMEOUT = 30.0
DURATION_UNITS = {"ms": 0.001, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600}


def daemon_keys():
    """The [daemon] keys, as evtaskd.conf(5) lists them."""
    with open(CONF_MAN) as f:
        text = f.read()
    section = text.split(".SH [daemon]", 1)[1].split("\n.SH ", 1)[0]
    return set(re.findall(r"^\.BI? ([a-z_]+)=", section, re.M))


def seconds(value):
    """A duration as evtaskd writes them (20s, 1.5s, 250ms, 5min), in
    seconds."""
    m = re.fullmatch(r"\s*([0-9.]+)\s*([a-z]*)\s*", str(value))
    if not m or m.group(2) not in DURATION_UNITS:
        raise ValueError(f"'{value}' is not a duration")
    return float(m.group(1)) * DURATION_UNITS[m.group(2)]


def parse_conf(text):
    conf = configparser.ConfigParser(interpolation=None, strict=True)
    conf.read_string(text)
    return conf


def image_user():
    with open(CONTAINERFILE) as f:
        text = f.read()
    return re.search(r"^USER (\d+):(\d+)$", text, re.M).groups(), \
        re.search(r"^STOPSIGNAL (\S+)$", text, re.M).group(1)


class Settings:
    """What one workload gives evtaskd: its config, its environment, the
    [daemon] values that result."""

    def __init__(self, test, conf_text, env):
        self.test = test
        self.text = conf_text
        self.env = env
        self.conf = parse_conf(conf_text)
        daemon = dict(self.conf["daemon"]) if self.conf.has_section("daemon") else {}
        for name, value in env.items():
            if name.startswith("EVTASKD_"):
                daemon[name[len("EVTASKD_"):].lower()] = value
        self.daemon = daemon

    def get(self, key, default):
        return self.daemon.get(key, default)

    def longest_stop(self):
        """drain_timeout plus abandon_grace: the longest a shutdown takes."""
        return seconds(self.get("drain_timeout", "20s")) + seconds(self.get("abandon_grace", "1s"))

    def http_port(self):
        listen = self.get("http_listen", None)
        self.test.assertIsNotNone(listen, "http probes without http_listen")
        host, _, port = listen.rpartition(":")
        self.test.assertIn(host, ("0.0.0.0", "[::]"),
                           f"http_listen = {listen}: the prober comes from outside the container's loopback")
        return int(port)

    def check_with_daemon(self):
        """evtaskd --check-config on the config, with the workload's
        environment: valid, and no EVTASKD_ name it ignores."""
        with tempfile.TemporaryDirectory(prefix="evtaskd-deploy-") as tmp:
            path = os.path.join(tmp, "evtaskd.conf")
            with open(path, "w") as f:
                f.write(self.text)
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **self.env}
            p = subprocess.run([EVTASKD, "--check-config", "--config", path], env=env,
                               capture_output=True, text=True, timeout=60)
        self.test.assertEqual(p.returncode, 0, f"evtaskd --check-config with {self.env}:\n{p.stdout}{p.stderr}")
        self.test.assertNotRegex(p.stderr, r"EVTASKD_\w+", f"evtaskd ignores some of {sorted(self.env)}")
        for name in self.env:
            if name.startswith("EVTASKD_"):
                self.test.assertIn(f"(environment {name})", p.stdout, f"evtaskd did not take {name}")
        return p


class Kubernetes(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.docs = []
        for path in sorted(glob.glob(os.path.join(DEPLOY, "kubernetes", "*.yaml"))):
            with open(path) as f:
                cls.docs += [(os.path.basename(path), d) for d in yaml.safe_load_all(f) if d]
        cls.keys = daemon_keys()

    def workloads(self):
        found = [(name, d) for name, d in self.docs if d["kind"] in ("Deployment", "DaemonSet")]
        self.assertEqual(sorted(d["kind"] for _, d in found), ["DaemonSet", "Deployment"])
        return found

    def config_map(self):
        maps = [d for _, d in self.docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == CONFIG_MAP]
        self.assertEqual(len(maps), 1, f"no ConfigMap {CONFIG_MAP}")
        return maps[0]

    def container(self, workload):
        spec = workload["spec"]["template"]["spec"]
        containers = [c for c in spec["containers"] if c["name"] == "evtaskd"]
        self.assertEqual(len(containers), 1)
        return spec, containers[0]

    def settings(self, workload):
        spec, c = self.container(workload)
        cmd = c.get("command", [])
        self.assertEqual(cmd[:2], ["evtaskd", "--config"], "the daemon is not told where the ConfigMap is")
        conf_path = cmd[2]
        mounts = [m for m in c.get("volumeMounts", []) if conf_path.startswith(m["mountPath"].rstrip("/") + "/")]
        self.assertEqual(len(mounts), 1, f"{conf_path} is in no volume")
        self.assertNotIn("subPath", mounts[0], "a subPath mount never sees the ConfigMap's updates")
        volume = [v for v in spec["volumes"] if v["name"] == mounts[0]["name"]][0]
        self.assertEqual(volume.get("configMap", {}).get("name"), CONFIG_MAP)
        key = os.path.relpath(conf_path, mounts[0]["mountPath"])
        data = self.config_map()["data"]
        self.assertIn(key, data, f"the ConfigMap has no {key}")
        env = {e["name"]: str(e["value"]) for e in c.get("env", [])}
        return Settings(self, data[key], env), spec, c

    def test_yamllint(self):
        if not shutil.which("yamllint"):
            self.skipTest("yamllint is missing (package yamllint)")
        p = subprocess.run(["yamllint", "--strict", os.path.join(DEPLOY, "kubernetes")],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual((p.returncode, p.stdout + p.stderr), (0, ""))

    def test_config_map(self):
        conf = parse_conf(self.config_map()["data"]["evtaskd.conf"])
        self.assertEqual(conf["daemon"].get("reload_on_change"), "yes",
                         "a ConfigMap's update sends no signal: evtaskd must watch it")
        self.assertIn(conf["daemon"].get("log", "auto"), ("json", "auto"), "the log collector wants JSON lines")

    def test_environment_names_are_daemon_keys(self):
        self.assertIn("drain_timeout", self.keys)
        for name, w in self.workloads():
            _, c = self.container(w)
            for e in c.get("env", []):
                if e["name"].startswith("EVTASKD_"):
                    self.assertIn(e["name"][len("EVTASKD_"):].lower(), self.keys, f"{name}: {e['name']}")
            self.assertIn("EVTASKD_DRAIN_TIMEOUT", [e["name"] for e in c["env"]], name)

    def test_config_valid_with_each_environment(self):
        for name, w in self.workloads():
            with self.subTest(name):
                self.settings(w)[0].check_with_daemon()

    def test_grace_period_covers_the_drain(self):
        for name, w in self.workloads():
            with self.subTest(name):
                s, spec, c = self.settings(w)
                grace = spec["terminationGracePeriodSeconds"]
                hook = c.get("lifecycle", {}).get("preStop", {})
                pre_stop = hook.get("sleep", {}).get("seconds", 0)
                if "exec" in hook:
                    m = re.fullmatch(r"sleep (\d+)", " ".join(hook["exec"]["command"][-1:]))
                    pre_stop = int(m.group(1)) if m else 0
                self.assertGreater(grace, pre_stop + s.longest_stop(),
                                   f"{name}: the kubelet kills before drain_timeout plus abandon_grace")
                self.assertEqual(seconds(s.get("stop_grace", "0s")), grace,
                                 f"{name}: EVTASKD_STOP_GRACE is not terminationGracePeriodSeconds")

    def test_probes(self):
        for name, w in self.workloads():
            with self.subTest(name):
                s, _, c = self.settings(w)
                ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
                for probe, path, verbs in (("readinessProbe", "/readyz", ("health",)),
                                           ("livenessProbe", "/livez", ("status",))):
                    self.assertIn(probe, c, f"{name} has no {probe}")
                    p = c[probe]
                    if "httpGet" in p:
                        self.assertEqual(p["httpGet"]["path"], path, f"{name} {probe}")
                        port = p["httpGet"]["port"]
                        self.assertEqual(ports.get(port, port), s.http_port(), f"{name} {probe}: not http_listen")
                    else:
                        cmd = p["exec"]["command"]
                        self.assertEqual(cmd[0], "evtaskctl", f"{name} {probe}")
                        # health fails all through a drain: as a liveness
                        # probe it would have the drain killed.
                        self.assertIn(cmd[-1], verbs, f"{name} {probe}: evtaskctl {cmd[-1]}")
                        self.assertIn("--timeout", cmd, f"{name} {probe}: no --timeout below the probe's")

    def test_stop_signal_and_user(self):
        (uid, gid), stop_signal = image_user()
        self.assertEqual(stop_signal, "SIGTERM", "the runtime takes the image's STOPSIGNAL")
        for name, w in self.workloads():
            spec, c = self.container(w)
            self.assertEqual(c.get("lifecycle", {}).get("stopSignal", "SIGTERM"), "SIGTERM", name)
            ctx = spec.get("securityContext", {})
            self.assertTrue(ctx.get("runAsNonRoot"), name)
            self.assertEqual((str(ctx.get("runAsUser")), str(ctx.get("runAsGroup"))), (uid, gid), name)
            # The control socket's directory must be writable by that user.
            self.assertIn("/run/evtaskd", [m["mountPath"] for m in c["volumeMounts"]], name)


class Nomad(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(os.path.join(DEPLOY, "nomad", "evtaskd.nomad.json")) as f:
            cls.job = json.load(f)["Job"]
        cls.group = cls.job["TaskGroups"][0]
        cls.task = [t for t in cls.group["Tasks"] if t["Name"] == "evtaskd"][0]
        template = [t for t in cls.task["Templates"] if t["DestPath"].endswith("evtaskd.conf")][0]
        cls.conf_text = template["EmbeddedTmpl"]
        cls.template = template

    def settings(self):
        return Settings(self, self.conf_text, self.task.get("Env") or {})

    def test_kill_signal_and_timeout(self):
        self.assertEqual(self.task["KillSignal"], "SIGTERM", "Nomad's default, SIGINT, pauses evtaskd")
        timeout = self.task["KillTimeout"] / 1e9
        s = self.settings()
        self.assertGreater(timeout, s.longest_stop(), "Nomad kills before drain_timeout plus abandon_grace")
        self.assertLessEqual(timeout, NOMAD_MAX_KILL_TIMEOUT, "above the clients' default max_kill_timeout")
        self.assertEqual(seconds(s.get("stop_grace", "0s")), timeout, "EVTASKD_STOP_GRACE is not KillTimeout")

    def test_config_follows_the_template(self):
        cmd = [self.task["Config"]["command"], *self.task["Config"]["args"]]
        self.assertEqual(cmd[:2], ["evtaskd", "--config"])
        self.assertEqual(os.path.relpath(cmd[2], "/"), self.template["DestPath"])
        reloads = (self.template.get("ChangeMode") == "signal" and self.template.get("ChangeSignal") == "SIGHUP") \
            or self.settings().get("reload_on_change", "no") == "yes"
        self.assertTrue(reloads, "a new template reaches evtaskd neither by SIGHUP nor by reload_on_change")

    def test_environment_and_config(self):
        keys = daemon_keys()
        for name in self.task.get("Env") or {}:
            if name.startswith("EVTASKD_"):
                self.assertIn(name[len("EVTASKD_"):].lower(), keys, name)
        self.settings().check_with_daemon()

    def test_checks(self):
        port = self.settings().http_port()
        labels = {p["Label"]: p.get("To") or p.get("Value")
                  for n in self.group.get("Networks", []) for p in n.get("DynamicPorts", []) + n.get("ReservedPorts", [])}
        paths = set()
        for service in self.group.get("Services", []) + (self.task.get("Services") or []):
            for check in service.get("Checks", []):
                if check["Type"] == "http":
                    self.assertEqual(labels.get(check.get("PortLabel") or service["PortLabel"]), port,
                                     f"check {check['Name']} is not on http_listen's port")
                    paths.add(check["Path"])
        self.assertEqual(paths, {"/readyz", "/livez"})


if __name__ == "__main__":
    if yaml is None:
        print("SKIP: python3-yaml is missing (package python3-yaml)")
        sys.exit(77)
    unittest.main(verbosity=2)
