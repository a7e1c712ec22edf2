"""The window on small screens: nothing overlaps at 1024×700, it never grows by itself, and it
always fits the screen it opens on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from itertools import combinations
from pathlib import Path

import pyqtgraph as pg
import pytest
from PySide6.QtCore import QPoint, QRect
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QAbstractSpinBox,
    QComboBox,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QSizePolicy,
    QTextEdit,
    QWidget,
)

from guidist.gui.geometry import MINIMUM_SIZE, default_rect, fit_rect, is_compact, minimum_for
from guidist.gui.main_window import MainWindow

from ..conftest import REPO
from .conftest import WAIT_MS

#: What a person reads or clicks: the pieces that must neither overlap nor be squeezed.
_LEAVES = (QAbstractButton, QLabel, QLineEdit, QComboBox, QAbstractSpinBox, QAbstractItemView,
           QProgressBar, QPlainTextEdit, QTextEdit, pg.PlotWidget)


def _visible_rect(w: QWidget, top: QWidget) -> QRect:
    """The part of w that shows in top's coordinates (clipped by every ancestor)."""
    rect = QRect(w.mapTo(top, QPoint(0, 0)), w.size())
    parent = w.parentWidget()
    while parent is not None and parent is not top:
        rect = rect.intersected(QRect(parent.mapTo(top, QPoint(0, 0)), parent.size()))
        parent = parent.parentWidget()
    return rect.intersected(top.rect())


def _leaves(win: MainWindow) -> list[QWidget]:
    roots = [win.centralWidget()] + [d.widget() for d in (win.workers_dock, win.tasks_dock,
                                                          win.event_dock) if d.isVisible()]
    found: list[QWidget] = []
    for root in roots:
        for w in root.findChildren(QWidget):
            if not isinstance(w, _LEAVES) or not w.isVisibleTo(win):
                continue
            parent = w.parentWidget()
            inside_leaf = False
            while parent is not None and parent is not root:
                if isinstance(parent, _LEAVES):
                    inside_leaf = True  # a combo's line edit, a table's header...
                    break
                parent = parent.parentWidget()
            if not inside_leaf:
                found.append(w)
    return found


def _describe(w: QWidget) -> str:
    text = w.text() if hasattr(w, "text") and callable(w.text) else ""
    return f"{type(w).__name__}({w.objectName() or str(text)[:24]!r})"


def layout_problems(win: MainWindow) -> list[str]:
    """Visible widgets that overlap another, or are squeezed below their minimum size."""
    problems = []
    shown = [(w, _visible_rect(w, win)) for w in _leaves(win)]
    shown = [(w, r) for w, r in shown if not r.isEmpty()]
    for (a, ra), (b, rb) in combinations(shown, 2):
        if ra.intersects(rb):
            overlap = ra.intersected(rb)
            problems.append(f"{_describe(a)} {ra.getRect()} overlaps {_describe(b)} "
                            f"{rb.getRect()} by {overlap.width()}×{overlap.height()}")
    for w, _ in shown:
        if w.minimumSize() == w.maximumSize():
            continue  # a fixed size (the status light) is what it was made to be
        policy = w.sizePolicy()
        hint = w.minimumSizeHint()
        # An explicit minimum replaces the hint, as layouts do (qSmartMinSize).
        if w.minimumWidth() > 0:
            hint.setWidth(w.minimumWidth())
        if w.minimumHeight() > 0:
            hint.setHeight(w.minimumHeight())
        if isinstance(w, QLabel) and w.wordWrap():
            hint.setWidth(0)  # a wrapped label may be narrow; its height is what counts
        squeezed_w = policy.horizontalPolicy() is not QSizePolicy.Policy.Ignored \
            and w.width() + 1 < hint.width()
        squeezed_h = policy.verticalPolicy() is not QSizePolicy.Policy.Ignored \
            and w.height() + 1 < hint.height()
        if isinstance(w, QLabel) and w.wordWrap() and w.height() + 1 < w.heightForWidth(
                w.width()):
            squeezed_h = True
        if squeezed_w or squeezed_h:
            problems.append(f"{_describe(w)} squeezed to {w.width()}×{w.height()}, needs "
                            f"{hint.width()}×{hint.height()}")
    return problems


def test_fit_rect_keeps_a_window_on_the_screen() -> None:
    screen = QRect(0, 0, 1024, 700)
    assert fit_rect(QRect(100, 50, 1280, 800), screen) == QRect(0, 0, 1024, 700)
    assert fit_rect(QRect(900, 600, 800, 500), screen) == QRect(224, 200, 800, 500)
    assert fit_rect(QRect(-50, -20, 400, 300), screen) == QRect(0, 0, 400, 300)
    assert fit_rect(QRect(10, 10, 400, 300), screen) == QRect(10, 10, 400, 300)
    second = QRect(1920, 0, 1366, 768)  # a second monitor to the right
    assert fit_rect(QRect(2000, 100, 1600, 900), second) == second
    assert minimum_for(screen) == MINIMUM_SIZE
    assert minimum_for(QRect(0, 0, 640, 480)).width() == 640
    assert default_rect(screen).size().width() == 1024
    assert is_compact(screen) and is_compact(QRect(0, 0, 1366, 768))
    assert not is_compact(QRect(0, 0, 1920, 1080))


@pytest.mark.parametrize("width,height", [(1024, 700), (1366, 768)])
def test_nothing_overlaps_on_small_screens_with_the_demo_running(
        qtbot, window_factory, width: int, height: int) -> None:
    win = window_factory(demo=True)
    win.resize(width, height)
    qtbot.waitUntil(lambda: win.controller.demo_running and win.last_snapshot is not None
                    and win.last_snapshot.connected_workers >= 2
                    and win.last_snapshot.count("done") > 0, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: win.tasks_panel.model.total > 0, timeout=WAIT_MS)
    assert win.demo_banner.isVisible()
    for dock in (win.workers_dock, win.tasks_dock, win.event_dock):  # each tab in turn
        dock.raise_()
        qtbot.waitUntil(dock.isVisible, timeout=WAIT_MS)
        qtbot.wait(50)  # one round of layout after the switch
        assert win.size().width() == width and win.size().height() == height
        problems = layout_problems(win)
        assert not problems, f"with {dock.windowTitle()} in front:\n" + "\n".join(problems)
    assert win.minimumSize().width() <= 1024 and win.minimumSize().height() <= 700
    assert win.compact  # this screen is small: workers, tasks and the log are tabs


def test_nothing_overlaps_on_a_large_screen(tmp_path: Path) -> None:
    """On a 1440×900 screen workers and tasks sit side by side; still nothing overlaps. Its
    own process: the screen size is fixed when Qt starts."""
    result = _probe(tmp_path, 1440, 900, _LARGE_PROBE)
    assert result["compact"] is False
    assert result["problems"] == []


def test_the_window_never_grows_by_itself(qtbot, window_factory) -> None:
    """It went from 800 to 847 px tall as content changed; now the panels scroll instead."""
    win = window_factory(demo=True)
    win.resize(1024, 700)
    qtbot.waitUntil(lambda: win.controller.demo_running and win.last_snapshot is not None
                    and win.last_snapshot.count("done") > 0, timeout=WAIT_MS)
    before = win.size()
    # Content that used to push the minimum up: banners, a long error, wrapped labels.
    win.banner.show_message("A long error that wraps " * 12, "error")
    win.submit_panel.show_error("A long explanation of a bad value " * 6)
    win.submit_panel.set_preset("custom")
    qtbot.wait(300)
    assert win.size() == before
    assert layout_problems(win) == []


def test_a_remembered_geometry_is_fitted_to_a_small_screen(tmp_path: Path) -> None:
    """A 1280×800 geometry saved on a big screen, opened on a 1024×700 one: the window fits,
    with Start, Attach and the status bar on the screen. Needs its own process: the screen
    size is fixed when Qt starts."""
    result = _probe(tmp_path, 1024, 700, _PROBE)
    screen = QRect(*result["screen"])
    assert screen.size().width() == 1024
    for name in ("window", "start", "attach", "status"):
        assert screen.contains(QRect(*result[name])), (name, result)
    assert result["minimum"][0] <= 1024 and result["minimum"][1] <= 700
    assert result["compact"] is True


def _probe(tmp_path: Path, width: int, height: int, code: str) -> dict:
    """Run code in a Python with a screen of that size; its last line of output is JSON."""
    config = tmp_path / "screen.json"
    config.write_text(json.dumps({"screens": [{"name": "probe", "x": 0, "y": 0,
                                               "width": width, "height": height,
                                               "logicalDpi": 96}]}))
    script = tmp_path / "probe.py"
    script.write_text(code)
    env = dict(os.environ, QT_QPA_PLATFORM=f"offscreen:configfile={config}",
               PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, str(script), str(tmp_path / "settings.ini")],
                         capture_output=True, text=True, env=env, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


_LARGE_PROBE = r'''
import argparse, json, sys, time
from PySide6.QtCore import QEventLoop, QSettings, QTimer
from PySide6.QtWidgets import QApplication
from tests.gui.test_layout import layout_problems
from guidist.gui.app import build_window

if __name__ == "__main__":
    app = QApplication(sys.argv[:1])
    settings = QSettings(sys.argv[1], QSettings.Format.IniFormat)
    args = argparse.Namespace(host="127.0.0.1", port=0, authkey=None, demo=True, journal=None,
                              no_journal=True, verbose=0)
    win = build_window(args, settings)
    win.show()
    problems = ["the demo produced nothing within 60 s"]
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            loop = QEventLoop()
            QTimer.singleShot(200, loop.quit)
            loop.exec()
            snap = win.last_snapshot
            if snap is not None and snap.count("done") > 0 and win.tasks_panel.model.total:
                problems = layout_problems(win)
                break
        print(json.dumps({"compact": win.compact, "problems": problems,
                          "size": list(win.size().toTuple())}))
    finally:
        win.shutdown()
'''


_PROBE = r'''
import argparse, json, sys
from PySide6.QtCore import QByteArray, QPoint, QRect, QSettings
from PySide6.QtWidgets import QApplication, QMainWindow
app = QApplication(sys.argv[:1])
settings = QSettings(sys.argv[1], QSettings.Format.IniFormat)
big = QMainWindow()
big.setGeometry(QRect(150, 120, 1280, 800))  # as saved on a 1920x1080 desktop
settings.setValue("window/geometry", big.saveGeometry())
settings.sync()
from guidist.gui.app import build_window
args = argparse.Namespace(host="127.0.0.1", port=0, authkey=None, demo=False, journal=None,
                          no_journal=True, verbose=0)
win = build_window(args, settings)
win.show()
app.processEvents()
def where(w):
    return [*w.mapToGlobal(QPoint(0, 0)).toTuple(), w.width(), w.height()]
print(json.dumps({
    "screen": list(win.screen().availableGeometry().getRect()),
    "window": list(win.frameGeometry().getRect()),
    "start": where(win.server_bar.start_button),
    "attach": where(win.server_bar.attach_button),
    "status": where(win.statusBar()),
    "minimum": list(win.minimumSize().toTuple()),
    "compact": win.compact,
}))
win.shutdown()
'''
