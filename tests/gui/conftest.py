"""Fixtures for the window tests: a real window, its own settings file, no leftovers."""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings

from guidist.gui.app import build_window
from guidist.gui.main_window import MainWindow

#: Generous: the machine running the tests may be busy with other suites.
WAIT_MS = 60_000


def window_args(**overrides: object) -> argparse.Namespace:
    """Arguments as ``guidist gui`` parses them, with a short lease so requeues are quick."""
    values: dict[str, object] = dict(host="127.0.0.1", port=0, authkey=None, demo=False,
                                     journal=None, no_journal=True, verbose=0,
                                     lease_timeout=2.0)
    values.update(overrides)
    return argparse.Namespace(**values)


@pytest.fixture
def settings(tmp_path: Path) -> QSettings:
    """A settings file of the test's own, so tests never see each other's (or a person's)."""
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def window_factory(qtbot, settings: QSettings) -> Iterator[Callable[..., MainWindow]]:
    """Build real windows; each is shut down afterwards and must leave no thread behind."""
    made: list[MainWindow] = []
    threads_before = {t.ident for t in threading.enumerate()}

    def make(**overrides: object) -> MainWindow:
        win = build_window(window_args(**overrides), settings)
        win.confirm = lambda title, text: True  # type: ignore[method-assign]
        qtbot.addWidget(win)
        win.show()
        made.append(win)
        return win

    yield make
    for win in made:
        win.shutdown()
        assert all(t.isFinished() for t in win.controller._threads), "a QThread is running"
    # Worker log pumps end when the worker processes do; give them a moment.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        # QThreads that ran Python code show up as _DummyThread forever; they are checked
        # above through QThread.isFinished().
        extra = [t for t in threading.enumerate() if t.ident not in threads_before
                 and t.is_alive() and not isinstance(t, threading._DummyThread)]
        if not extra:
            break
        time.sleep(0.05)
    assert not extra, f"threads left running: {[t.name for t in extra]}"


@pytest.fixture
def window(window_factory: Callable[..., MainWindow]) -> MainWindow:
    """One window, nothing started yet."""
    return window_factory()


def start_server(qtbot, win: MainWindow) -> None:
    """Press Start and wait until the window is connected to its server."""
    win.server_bar.start_button.click()
    qtbot.waitUntil(lambda: win.controller.status.online, timeout=WAIT_MS)


def launch_workers(qtbot, win: MainWindow, n: int) -> None:
    """Launch n local workers from the workers panel and wait until they are connected."""
    win.workers_panel.count_spin.setValue(n)
    win.workers_panel.launch_button.click()
    qtbot.waitUntil(lambda: win.last_snapshot is not None
                    and win.last_snapshot.connected_workers >= n
                    and len(win.controller.local_pids) >= n, timeout=WAIT_MS)
