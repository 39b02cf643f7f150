"""The signal state of the programs the Python tests start and signal.

A test that signals its child, or expects the child to act on a signal,
must not depend on what the test's own caller left behind: nohup ignores
SIGHUP, a shell's background job ignores SIGINT and SIGQUIT, and an
ignored or blocked signal stays so across fork and exec. Pass
preexec_fn=default_signals to subprocess.Popen, or call it first from a
preexec_fn of one's own.

A cross build's programs run under its exe wrapper (qemu-user), which the
build names in MESON_EXE_WRAPPER: start them as [*WRAPPER, program, ...]
(or through the scripts tests/meson.build makes for evtaskd and spin).
"""
import os
import shlex
import signal
import time

WRAPPER = shlex.split(os.environ.get("MESON_EXE_WRAPPER", ""))
# Under qemu-user: what the kernel does for the program is what qemu asks of
# it, and /proc/PID is qemu's process (its memory, its descriptors).
EMULATED = bool(WRAPPER)


def skip_if_emulated(test, what):
    """Skips test under qemu-user, which cannot do what it checks."""
    if EMULATED:
        test.skipTest(f"under qemu-user: {what}")

# What the tests send, and SIGPIPE (the children write to pipes).
SIGNALS = (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM,
           signal.SIGUSR1, signal.SIGUSR2, signal.SIGPIPE)


def default_signals():
    """In the child, between fork and exec: the default disposition of
    each of SIGNALS, and no signal blocked."""
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, ())


def pending(pid, sig):
    """Whether sig, sent to process pid, waits to be delivered (False once
    the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("ShdPnd", "SigPnd") and int(value, 16) >> (sig - 1) & 1:
                    return True
    except OSError:
        pass
    return False


def wait_delivered(pid, sig, timeout=10.0):
    """True once sig no longer waits for pid: the next one sent is a signal
    of its own, not merged with this one while pending. False after timeout
    seconds."""
    deadline = time.monotonic() + timeout
    while pending(pid, sig):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True
