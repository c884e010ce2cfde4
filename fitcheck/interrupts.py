"""SIGTERM and SIGHUP unwind like SIGINT: every cleanup path (a child's process group killed, a temp file
removed, a namespace deleted) runs for them too, and the CLI exits 128 + the signal in one line."""

from __future__ import annotations

import contextlib
import signal

from fitcheck.errors import Interrupted


@contextlib.contextmanager
def signals_raise():
    """SIGTERM and SIGHUP raise Interrupted here (as SIGINT raises KeyboardInterrupt), so every
    cleanup path (killing the child's group, removing temp files) runs for them too."""
    def handler(signum, frame):
        raise Interrupted(signum)

    saved = {}
    try:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            saved[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread: signals stay as they are
        pass
    try:
        yield
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old)
