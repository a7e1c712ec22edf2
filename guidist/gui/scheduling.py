"""A short scheduler time slice for the window's GUI thread (Linux 6.12+, unprivileged).

Linux's EEVDF scheduler gives each SCHED_OTHER thread a virtual deadline of its eligible time
plus its slice divided by its weight, and runs the eligible thread with the earliest deadline.
Since 6.12 a thread may ask for its own slice with ``sched_setattr(2)``'s ``sched_runtime``
(clamped to 0.1–100 ms), and a waking thread with a shorter slice than the running one may
preempt it (the ``PREEMPT_SHORT`` feature). It changes when a thread runs, not how much CPU it
gets: the GUI thread, which sleeps most of the time and runs briefly at each timer, gets a core
sooner after it wakes than its own session's busy processes (the server, a local load). It
cannot help against other sessions: with autogroup each is one entity at the top level (see
docs/decisions.md, issue 17 target 4, third step, for what it measured). No privilege is
needed (no policy, priority or nice change). Python has no wrapper, so this goes through
``ctypes`` and ``syscall``; anywhere the call or the kernel feature is missing it does nothing
and says so at debug level. Qt-free: it only touches the calling thread.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import platform
import sys

log = logging.getLogger(__name__)

#: The GUI thread's slice. Its work per timer or update is mostly well under a millisecond;
#: shorter than the kernel's default (0.7 ms × (1 + log2 CPUs, up to 8): 1.4 ms on 2 CPUs,
#: 2.8 ms on 8) so it wins a core on wakeup, not so short that a paint is cut into many
#: preemptions (the kernel's advice: the thread's runtime per wakeup at ~95 % confidence).
GUI_THREAD_SLICE_NS = 1_000_000

SCHED_OTHER = 0
#: Threads and processes this thread starts do not inherit the short slice: the network
#: process, the server and the workers (started from threads the GUI thread makes) keep the
#: default, so the GUI thread's shorter slice means something against them.
SCHED_FLAG_RESET_ON_FORK = 0x01

#: (sched_setattr, sched_getattr) syscall numbers per machine (the generic table is shared by
#: arm64 and riscv64).
_SYSCALLS = {"x86_64": (314, 315), "aarch64": (274, 275), "arm64": (274, 275),
             "riscv64": (274, 275)}


class SchedAttr(ctypes.Structure):
    """``struct sched_attr`` as of Linux 5.3 (SCHED_ATTR_SIZE_VER1, 56 bytes)."""

    _fields_ = [
        ("size", ctypes.c_uint32),
        ("sched_policy", ctypes.c_uint32),
        ("sched_flags", ctypes.c_uint64),
        ("sched_nice", ctypes.c_int32),
        ("sched_priority", ctypes.c_uint32),
        ("sched_runtime", ctypes.c_uint64),
        ("sched_deadline", ctypes.c_uint64),
        ("sched_period", ctypes.c_uint64),
        ("sched_util_min", ctypes.c_uint32),
        ("sched_util_max", ctypes.c_uint32),
    ]


@functools.cache
def _libc() -> ctypes.CDLL:
    """The C library the interpreter runs on, with errno kept for the calls (not
    ``ctypes.util.find_library``, which runs ldconfig in a subprocess)."""
    return ctypes.CDLL(None, use_errno=True)


def _numbers() -> tuple[int, int] | None:
    """This machine's sched_setattr and sched_getattr numbers, or None off Linux or unknown."""
    if not sys.platform.startswith("linux"):
        return None
    return _SYSCALLS.get(platform.machine())


def thread_attr(tid: int = 0) -> SchedAttr | None:
    """The scheduling attributes of a thread (0: the calling one), or None if unavailable."""
    numbers = _numbers()
    if numbers is None:
        return None
    attr = SchedAttr()
    try:
        libc = _libc()
        rc = libc.syscall(numbers[1], ctypes.c_int(tid), ctypes.byref(attr),
                          ctypes.c_uint(ctypes.sizeof(attr)), ctypes.c_uint(0))
    except (OSError, AttributeError) as exc:
        log.debug("sched_getattr unavailable: %s", exc)
        return None
    if rc != 0:
        log.debug("sched_getattr failed: %s", os.strerror(ctypes.get_errno()))
        return None
    return attr


def thread_slice_ns(tid: int = 0) -> int | None:
    """A SCHED_OTHER thread's time slice in ns as the kernel reports it, or None."""
    attr = thread_attr(tid)
    if attr is None or attr.sched_policy != SCHED_OTHER:
        return None
    return int(attr.sched_runtime) or None  # before 6.12 the kernel reports 0 here


def request_thread_slice(slice_ns: int = GUI_THREAD_SLICE_NS) -> int | None:
    """Ask for a time slice for the calling thread; the slice read back, or None.

    Only a SCHED_OTHER thread is changed (a thread someone made realtime or batch is left as it
    is); its policy and nice stay. Returns None, with a debug log line, off Linux, on an unknown
    machine, when the call fails, or when the kernel ignores ``sched_runtime`` (before 6.12).
    """
    numbers = _numbers()
    if numbers is None:
        log.debug("no time slice request: not Linux on a known machine")
        return None
    attr = thread_attr()
    if attr is None:
        return None
    if attr.sched_policy != SCHED_OTHER:
        log.debug("no time slice request: the thread's policy is %d", attr.sched_policy)
        return None
    want = SchedAttr(size=ctypes.sizeof(SchedAttr), sched_policy=SCHED_OTHER,
                     sched_flags=SCHED_FLAG_RESET_ON_FORK, sched_nice=attr.sched_nice,
                     sched_runtime=slice_ns)
    try:
        rc = _libc().syscall(numbers[0], ctypes.c_int(0), ctypes.byref(want), ctypes.c_uint(0))
    except (OSError, AttributeError) as exc:
        log.debug("sched_setattr unavailable: %s", exc)
        return None
    if rc != 0:
        log.debug("sched_setattr(sched_runtime=%d) failed: %s", slice_ns,
                  os.strerror(ctypes.get_errno()))
        return None
    got = thread_slice_ns()
    if got is None or got == attr.sched_runtime != slice_ns:
        log.debug("the kernel ignores sched_runtime (slice read back: %s)", got)
        return None
    log.debug("GUI thread time slice %.2f ms (was %.2f ms)", got / 1e6,
              attr.sched_runtime / 1e6)
    return got
