"""The window's network process: there while connected, gone with the window (however it
goes), and a killed one is reported and replaced without losing the window's data."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil

from guidist.core.server import ServerProcess
from guidist.gui.state import Notice, SubmitOutcome
from guidist.gui.submission import MODE_RANGE, SubmitJob

from ..conftest import TEST_KEY, wait_for
from .conftest import WAIT_MS, launch_workers, start_server


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_the_network_process_runs_while_connected_and_stops_with_the_window(
        qtbot, window_factory) -> None:
    win = window_factory()
    assert win.controller.network_pid is None  # a window with no server starts none
    start_server(qtbot, win)
    pid = win.controller.network_pid
    assert pid is not None
    helper = psutil.Process(pid)
    assert helper.ppid() == os.getpid() and helper.is_running()
    # It has polled by now (the window is online), so it is fully started: without Qt.
    assert not any("libQt6" in m.path for m in helper.memory_maps()), "Qt in the helper"
    # The window's snapshots come from it: the GUI process holds no client of its own.
    assert not any(c.raddr and c.raddr[1] == win.controller.status.address[1]
                   for c in psutil.Process().net_connections("tcp"))
    win.shutdown()
    assert _gone(pid)
    assert win.controller.network_pid is None


def test_a_killed_network_process_is_reported_and_replaced(qtbot, window_factory) -> None:
    win = window_factory()
    notices: list[Notice] = []
    win.controller.notice.connect(notices.append)
    start_server(qtbot, win)
    launch_workers(qtbot, win, 1)
    old = win.controller.network_pid
    assert old is not None
    os.kill(old, signal.SIGKILL)
    qtbot.waitUntil(lambda: win.controller.network_pid not in (None, old), timeout=WAIT_MS)
    said = [n for n in notices if n.kind == "error" and "network process" in n.message]
    assert said and "killed by signal 9" in said[0].message, [n.message for n in notices]
    assert "started a new one" in said[0].message
    assert _gone(old)
    # The new one monitors and submits where the old one stopped.
    outcomes: list[SubmitOutcome] = []
    win.controller.submit_finished.connect(outcomes.append)
    assert win.controller.submit(SubmitJob("square", MODE_RANGE, count=20))
    qtbot.waitUntil(lambda: bool(outcomes), timeout=WAIT_MS)
    assert outcomes[0].error is None and outcomes[0].sent == 20
    qtbot.waitUntil(lambda: win.last_snapshot is not None
                    and win.last_snapshot.count("done") >= 20, timeout=WAIT_MS)
    assert win.controller.status.online


def test_a_network_process_that_keeps_dying_is_not_restarted_forever(qtbot, window_factory
                                                                     ) -> None:
    win = window_factory()
    notices: list[Notice] = []
    win.controller.notice.connect(notices.append)
    start_server(qtbot, win)
    seen: list[int] = []
    for _ in range(4):
        pid = win.controller.network_pid
        assert pid is not None and pid not in seen
        seen.append(pid)
        os.kill(pid, signal.SIGKILL)
        qtbot.waitUntil(lambda dead=pid: win.controller.network_pid != dead, timeout=WAIT_MS)
    assert win.controller.network_pid is None
    assert "not starting it again" in notices[-1].message
    assert "keeps stopping" in win.controller.status.message
    assert all(_gone(p) for p in seen)


_WINDOW_PROCESS = """
import sys
from PySide6.QtCore import QCoreApplication
from guidist.gui.controller import Controller
app = QCoreApplication([])
c = Controller()
def first(snap):
    print(c.network_pid, flush=True)
    c.snapshot.disconnect(first)
c.snapshot.connect(first)
c.attach((sys.argv[1], int(sys.argv[2])), sys.argv[3])
app.exec()
"""


def test_the_network_process_dies_with_a_killed_window(server: ServerProcess,
                                                       tmp_path: Path) -> None:
    """A window killed with SIGKILL runs no cleanup: its helper still must not stay behind."""
    assert server.address is not None
    host, port = server.address
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.Popen([sys.executable, "-c", _WINDOW_PROCESS, host, str(port), TEST_KEY],
                            env=env, stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        helper = int(line)
        assert psutil.Process(helper).ppid() == proc.pid
        proc.kill()
        proc.wait(timeout=30)
        wait_for(lambda: _gone(helper), timeout=30, message="the helper to exit")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]


def test_a_submission_cut_by_a_killed_network_process_ends_with_an_error(qtbot, window_factory
                                                                         ) -> None:
    win = window_factory()
    start_server(qtbot, win)
    outcomes: list[SubmitOutcome] = []
    win.controller.submit_finished.connect(outcomes.append)
    sent: list[int] = []
    win.controller.submit_progress.connect(lambda p: sent.append(p.sent))
    assert win.controller.submit(SubmitJob("square", MODE_RANGE, count=3_000_000))
    qtbot.waitUntil(lambda: any(sent), timeout=WAIT_MS)  # some tasks are out, most are not
    os.kill(win.controller.network_pid, signal.SIGKILL)
    qtbot.waitUntil(lambda: bool(outcomes), timeout=WAIT_MS)
    outcome = outcomes[0]
    assert outcome.error and "network process" in outcome.error, outcome
    assert 0 < outcome.sent < 3_000_000
    assert not win.controller.submitting
    # The window can submit again at once, through the new process.
    outcomes.clear()
    assert win.controller.submit(SubmitJob("square", MODE_RANGE, count=10))
    qtbot.waitUntil(lambda: bool(outcomes), timeout=WAIT_MS)
    assert outcomes[0].error is None and outcomes[0].sent == 10
