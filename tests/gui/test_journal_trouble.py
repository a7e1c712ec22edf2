"""The window says when its journal cannot be written, and where (issue 11 item 3).

A real window, its real server, a journal on a small tmpfs filled up by the test.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from guidist.core.client import Client
from guidist.core.errors import JournalUnavailable
from guidist.gui.main_window import MainWindow

from ..conftest import TEST_KEY, mounted_tmpfs
from .conftest import WAIT_MS, start_server


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 6 MiB tmpfs mounted for this test (root only; skipped elsewhere)."""
    with mounted_tmpfs(tmp_path, "6m") as mnt:
        yield mnt


def test_the_window_shows_a_journal_that_cannot_be_written(
        qtbot, window_factory: Callable[..., MainWindow], small_disk: Path) -> None:
    journal = small_disk / "window.sqlite"
    win = window_factory(journal=str(journal), no_journal=False, authkey=TEST_KEY)
    start_server(qtbot, win)
    assert win.controller.status.address is not None
    assert not win.journal_label.isVisible()
    c = Client(win.controller.status.address, TEST_KEY).connect()
    c.submit_many("square", range(10))
    st = os.statvfs(small_disk)
    ballast = small_disk / "ballast"
    ballast.write_bytes(b"\0" * max(0, st.f_bavail * st.f_frsize - 256 * 1024))
    with pytest.raises(JournalUnavailable):
        for _ in range(200):
            c.submit_many("echo", [("x" * 200,)] * 5000)
    qtbot.waitUntil(win.journal_label.isVisible, timeout=WAIT_MS)
    assert str(journal) in win.journal_label.text() and "full" in win.journal_label.text()
    ballast.unlink()
    qtbot.waitUntil(lambda: not win.journal_label.isVisible(), timeout=WAIT_MS)
    c.close()
