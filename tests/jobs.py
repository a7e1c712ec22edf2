"""Task functions used by the tests; importable by worker processes as "tests.jobs:NAME"."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path


def boom(x: int = 0) -> None:
    """Always raise, with a recognisable message."""
    raise ValueError(f"boom {x}")


def crash(x: int = 0) -> None:
    """Kill the worker process running this task, as a segfault would."""
    os.kill(os.getpid(), signal.SIGKILL)


def unpicklable(x: int = 0) -> object:
    """Return something pickle refuses."""
    return threading.Lock()


class _Unpicklable(Exception):
    def __reduce__(self):  # type: ignore[override]
        raise TypeError("this exception refuses to be pickled")


def raise_unpicklable(x: int = 0) -> None:
    """Raise an exception that cannot be pickled."""
    raise _Unpicklable("cannot cross a process boundary")


def touch_and_sleep(path: str, seconds: float = 30.0) -> str:
    """Create path (so a test knows the task started), then sleep: a task to kill mid-run."""
    Path(path).touch()
    time.sleep(seconds)
    return "slept"


def slow_square(n: int, seconds: float = 0.01) -> int:
    """square with a delay, so several workers share a batch."""
    time.sleep(seconds)
    return n * n


def big_result(n_bytes: int) -> bytes:
    """Return n_bytes of data: a result that may be over the size limit."""
    return b"x" * int(n_bytes)


def sleep_first_time(path: str, seconds: float = 30.0) -> str:
    """The first run creates path and sleeps (a task to kill or stall mid-run); every later run
    finds path and returns at once, so a requeued copy finishes quickly elsewhere."""
    p = Path(path)
    if p.exists():
        return "again"
    p.touch()
    time.sleep(seconds)
    return "first"


def mark(directory: str, n: int) -> int:
    """Leave a file named n in directory (a side effect a test can see), return n."""
    Path(directory, str(n)).touch()
    return n


def hang(seconds: float = 3600.0) -> str:
    """Sleep far longer than any test: a task that hangs."""
    time.sleep(seconds)
    return "woke"


def spin(seconds: float = 3600.0) -> str:
    """Busy-loop in Python for seconds: a hung task that holds the CPU."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return "spun"


def stuck_in_c(iterations: int = 150_000_000) -> bytes:
    """Hash for tens of seconds inside OpenSSL: C code that no Python signal handler can
    interrupt (the handler only runs once the call returns)."""
    import hashlib

    return hashlib.pbkdf2_hmac("sha256", b"x", b"y", int(iterations))


class Noted:
    """A result that appends the pid of each process unpickling it to a file."""

    def __init__(self, path: str, n: int) -> None:
        self.path, self.n = path, n

    def __reduce__(self) -> tuple:
        return _noted, (self.path, self.n)


def _noted(path: str, n: int) -> Noted:
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\n")
    return Noted(path, n)


def noted_value(path: str, n: int) -> Noted:
    """A Noted result: tells which processes unpickled it, and how many times."""
    return Noted(path, n)
