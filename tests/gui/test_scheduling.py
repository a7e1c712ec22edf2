"""The GUI thread's time slice: asked for, read back, not inherited, silent where absent."""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest

from guidist.gui import scheduling
from guidist.gui.scheduling import GUI_THREAD_SLICE_NS, request_thread_slice, thread_slice_ns

from .conftest import WAIT_MS

needs_custom_slices = pytest.mark.skipif(
    not sys.platform.startswith("linux") or thread_slice_ns() is None,
    reason="the kernel reports no SCHED_OTHER time slice (Linux before 6.12)")


def in_thread(fn: Callable[[], Any]) -> Any:
    """Run fn on a thread of its own (the test's thread keeps its own slice) and return its
    result, re-raising what it raised."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = fn()
        except BaseException as exc:  # handed back to the test
            out["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    t.join(30)
    assert not t.is_alive()
    if "error" in out:
        raise out["error"]
    return out["value"]


def proc_slice_ns(tid: int) -> int:
    """The slice /proc shows for a thread of this process (what the scheduler uses)."""
    with open(f"/proc/self/task/{tid}/sched") as f:
        for line in f:
            if line.startswith("se.slice"):
                return int(float(line.split(":")[1]))
    raise AssertionError("no se.slice in /proc")


@needs_custom_slices
def test_the_slice_is_set_read_back_and_not_inherited() -> None:
    default = in_thread(thread_slice_ns)

    def ask() -> tuple[int | None, int | None, int, int | None]:
        got = request_thread_slice(GUI_THREAD_SLICE_NS)
        return got, thread_slice_ns(), proc_slice_ns(threading.get_native_id()), \
            in_thread(thread_slice_ns)

    got, read_back, in_proc, child = in_thread(ask)
    assert default != GUI_THREAD_SLICE_NS  # else this test could not tell them apart
    assert got == read_back == in_proc == GUI_THREAD_SLICE_NS
    # Reset on fork: a thread (or process) the GUI thread starts has the kernel's default.
    assert child == default


@needs_custom_slices
def test_the_kernel_clamps_the_slice_and_policy_and_nice_stay() -> None:
    def ask() -> tuple[int | None, Any]:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 5)  # raising is allowed
        got = request_thread_slice(10_000)
        return got, scheduling.thread_attr()

    got, attr = in_thread(ask)
    assert got == 100_000  # the kernel's floor, 0.1 ms
    assert attr.sched_policy == scheduling.SCHED_OTHER and attr.sched_nice == 5


@needs_custom_slices
def test_a_batch_thread_is_left_as_it_is(caplog) -> None:
    def ask() -> tuple[int | None, int]:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
        return request_thread_slice(), os.sched_getscheduler(0)

    with caplog.at_level(logging.DEBUG, logger="guidist.gui.scheduling"):
        got, policy = in_thread(ask)
    assert got is None and policy == os.SCHED_BATCH
    assert "policy is 3" in caplog.text


def test_off_linux_it_does_nothing_and_says_so(monkeypatch, caplog) -> None:
    monkeypatch.setattr(scheduling.sys, "platform", "darwin")
    with caplog.at_level(logging.DEBUG, logger="guidist.gui.scheduling"):
        assert request_thread_slice() is None
        assert thread_slice_ns() is None
    assert "not Linux" in caplog.text


def test_an_unknown_machine_is_left_alone(monkeypatch) -> None:
    monkeypatch.setattr(scheduling.sys, "platform", "linux")
    monkeypatch.setattr(scheduling.platform, "machine", lambda: "s390x")
    assert request_thread_slice() is None


class _RefusingLibc:
    """A C library whose syscall fails with EPERM, as under a seccomp filter."""

    def syscall(self, *args: object) -> int:
        ctypes.set_errno(1)
        return -1


def test_a_refused_call_is_silent(monkeypatch, caplog) -> None:
    monkeypatch.setattr(scheduling.sys, "platform", "linux")
    monkeypatch.setattr(scheduling.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(scheduling, "_libc", _RefusingLibc)
    with caplog.at_level(logging.DEBUG, logger="guidist.gui.scheduling"):
        assert request_thread_slice() is None
    assert "sched_getattr failed" in caplog.text


@needs_custom_slices
def test_the_window_asks_for_it_on_its_gui_thread_only(qtbot, window_factory) -> None:
    request_thread_slice(3_000_000)  # whatever an earlier window left on this thread
    win = window_factory()
    assert thread_slice_ns() == GUI_THREAD_SLICE_NS
    win.start_server()
    qtbot.waitUntil(lambda: bool(win.controller.status.online and win.controller.network_pid),
                    timeout=WAIT_MS)
    # The network process, started after the request, runs at the kernel's default slice.
    default = in_thread(thread_slice_ns)
    assert thread_slice_ns(win.controller.network_pid) == default != GUI_THREAD_SLICE_NS
