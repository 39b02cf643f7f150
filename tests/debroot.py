"""The Debian root the heavy suites share: built once with debootstrap into
the build directory, then reused by the booted-systemd suite (which
installs the build into it and boots it) and the containers suite (which
imports it as the base of the image).

A root is only ever renamed into place complete: an interrupted build
leaves a partial directory, which the next run removes. Whoever uses the
root holds its lock (lock()); meson runs the two suites one after the
other (is_parallel: false), so the lock only guards against a second run
in the same build directory.
"""
import fcntl
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time

BUILD = os.path.abspath(os.environ.get("MESON_BUILD_ROOT", "build"))
ROOT = os.path.join(BUILD, "systemd-root")
PARTIAL_PREFIX = "systemd-root.partial-"
LOCK_FILE = os.path.join(BUILD, "systemd-root.lock")
DEBOOTSTRAP_LOG = os.path.join(BUILD, "systemd-root.debootstrap.log")
MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
RELEASE = "bookworm"
# systemd for the booted suite; the daemon's libraries for both.
PACKAGES = "systemd,systemd-sysv,dbus,libev4,libinih1,libsystemd0,libjansson4,libmicrohttpd12,libdw1"
MARKER = ".evtask-packages"


def host(path):
    """A path inside the root, as the host sees it."""
    return os.path.join(ROOT, path.lstrip("/"))


def tail(path, lines=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError as e:
        return f"({path}: {e})"


def run_in_session(cmd, timeout, **kw):
    """Runs cmd in its own session; on timeout, kills the whole session."""
    p = subprocess.Popen(cmd, start_new_session=True, **kw)
    try:
        return p.wait(timeout)
    except BaseException:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()
        raise


def unmount_below(path):
    """Unmounts whatever an interrupted debootstrap left mounted under path."""
    prefix = os.path.realpath(path) + "/"
    mounts = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].encode().decode("unicode_escape")
            if point.startswith(prefix):
                mounts.append(point)
    for point in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False)


def lock():
    """The root's lock, held until the returned file is closed (or the
    process ends)."""
    f = open(LOCK_FILE, "w")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        raise RuntimeError(f"another run holds {LOCK_FILE}: it uses {ROOT}") from None
    return f


def identity():
    """What the root was built for and when: a root built again (new
    packages, or removed by hand) has another."""
    st = os.stat(host(MARKER))
    with open(host(MARKER)) as f:
        return f"{f.read()}@{st.st_mtime_ns}"


def prepare():
    """The cached root, built when missing or built for another package
    list. The caller holds lock()."""
    if os.path.isdir(ROOT):
        if not os.path.exists(host("/usr/lib/systemd/systemd")):
            raise RuntimeError(f"{ROOT} has no systemd in it; remove it to have it built again")
        try:
            with open(host(MARKER)) as f:
                if f.read() == PACKAGES:
                    return
        except FileNotFoundError:
            pass
        # Built for another package list (the daemon needs a new library):
        # built again.
        unmount_below(ROOT)
        shutil.rmtree(ROOT)
    for stale in glob.glob(os.path.join(BUILD, PARTIAL_PREFIX + "*")):
        unmount_below(stale)
        shutil.rmtree(stale)
    tmp = tempfile.mkdtemp(prefix=PARTIAL_PREFIX, dir=BUILD)
    os.chmod(tmp, 0o755)
    print(f"building a Debian {RELEASE} root with debootstrap into {ROOT} (once)", flush=True)
    started = time.monotonic()
    with open(DEBOOTSTRAP_LOG, "w") as log:
        code = run_in_session(["debootstrap", "--variant=minbase", f"--include={PACKAGES}", RELEASE, tmp, MIRROR],
                              timeout=900, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    if code != 0:
        unmount_below(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(f"debootstrap failed with status {code}; {DEBOOTSTRAP_LOG} ends:\n"
                           + tail(DEBOOTSTRAP_LOG))
    with open(os.path.join(tmp, MARKER), "w") as f:
        f.write(PACKAGES)
    os.rename(tmp, ROOT)
    print(f"root built in {time.monotonic() - started:.0f} s", flush=True)
