"""The signal state every program a Python test starts begins with.

A test that signals its child, or expects the child to act on a signal,
must not depend on what the test's own caller left behind: nohup ignores
SIGHUP, a shell's background job ignores SIGINT and SIGQUIT, and an
ignored or blocked signal stays so across fork and exec. Pass
preexec_fn=default_signals to subprocess.Popen, or call it first from a
preexec_fn of one's own.
"""
import signal

# What the tests send, and SIGPIPE (the children write to pipes).
SIGNALS = (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM,
           signal.SIGUSR1, signal.SIGUSR2, signal.SIGPIPE)


def default_signals():
    """In the child, between fork and exec: the default disposition of
    each of SIGNALS, and no signal blocked."""
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, ())
