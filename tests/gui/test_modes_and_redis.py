"""Worker modes and the Redis backend in the window: real worker processes, a real redis-server.

Redis is not optional here: a missing redis-server is a setup error (.ci/run installs it), so
these tests fail rather than skip without it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QAbstractButton, QLabel, QLineEdit

from guidist.core.executors import default_concurrency
from guidist.gui.dialogs import AttachDialog, RedisWorkerDialog
from guidist.gui.main_window import MainWindow
from guidist.gui.models import WorkersModel
from guidist.gui.state import Mode
from guidist.gui.widgets import MASK, SecretUrlEdit

from ..redis_fixtures import RedisServer, free_port, redis_available
from .conftest import WAIT_MS, start_server

PASSWORD = "pw-Zq81-never-shown"


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A password-protected redis-server of this test's own, stopped by its PID."""
    assert redis_available(), "redis-server and the redis package are required (.ci/run)"
    server = RedisServer(tmp_path, password=PASSWORD).start()
    try:
        yield server
    finally:
        server.stop()


def _enqueue(win: MainWindow, preset: str, mode: str, count: int, **fields: str) -> None:
    panel = win.submit_panel
    panel.set_preset(preset)
    panel.set_mode(mode)
    panel.count_spin.setValue(count)
    for name, text in fields.items():
        getattr(panel, f"{name}_edit").setText(text)
    panel.enqueue_button.click()


def _launch(win: MainWindow, n: int, mode: str, concurrency: int | None = None) -> None:
    wp = win.workers_panel
    wp.count_spin.setValue(n)
    wp.set_mode(mode, concurrency)
    wp.launch_button.click()


def _shown_texts(win: MainWindow) -> list[str]:
    """Every text a person can read in the window right now."""
    texts = [win.windowTitle(), win.statusBar().currentMessage()]
    for label in win.findChildren(QLabel):
        texts += [label.text(), label.toolTip()]
    for edit in win.findChildren(QLineEdit):
        if edit.echoMode() == QLineEdit.EchoMode.Normal and not edit.hasFocus():
            texts.append(edit.text())
    for button in win.findChildren(QAbstractButton):
        texts.append(button.text())
    log = win.event_dock.model
    texts += [" ".join(map(str, log.row(i))) for i in range(log.rowCount())]
    return texts


def test_mode_and_concurrency_launch_workers_that_report_them(qtbot, window) -> None:
    win = window
    start_server(qtbot, win)
    _launch(win, 1, "thread", 4)
    _launch(win, 1, "async", 8)
    qtbot.waitUntil(lambda: win.last_snapshot is not None
                    and len(win.last_snapshot.workers) == 2, timeout=WAIT_MS)
    got = {(w.mode, w.concurrency) for w in win.last_snapshot.workers}
    assert got == {("thread", 4), ("async", 8)}
    model = win.workers_panel.model
    qtbot.waitUntil(lambda: {model.index(r, WorkersModel.COL_MODE).data()
                             for r in range(model.rowCount())} == {"thread ×4", "async ×8"},
                    timeout=WAIT_MS)
    assert model.headerData(WorkersModel.COL_MODE, _horizontal()) == "Mode"
    # They run the I/O presets to completion.
    _enqueue(win, "aio_wait", "fixed", 40, value="0.05")
    qtbot.waitUntil(lambda: win.submit_panel.enqueue_button.isEnabled(), timeout=WAIT_MS)
    _enqueue(win, "io_wait", "fixed", 40, value="0.05")
    qtbot.waitUntil(lambda: win.last_snapshot.count("done") == 80, timeout=WAIT_MS)
    assert win.last_snapshot.count("failed") == 0


def _horizontal():
    from PySide6.QtCore import Qt

    return Qt.Orientation.Horizontal


def test_mode_defaults_and_the_hint_follow_mode_and_preset(window) -> None:
    wp, sp = window.workers_panel, window.submit_panel
    for mode in ("process", "thread", "async", "inline"):
        wp.set_mode(mode)
        assert wp.concurrency_spin.value() == default_concurrency(mode), mode
    assert not wp.concurrency_spin.isEnabled()  # inline: one at a time
    assert {"io_wait", "aio_wait", "primes"} <= {sp.preset_combo.itemData(i)
                                                for i in range(sp.preset_combo.count())}
    hints = {}
    for preset, fits in (("primes", "process"), ("io_wait", "thread"), ("sleep", "thread"),
                         ("aio_wait", "async"), ("square", "inline")):
        sp.set_preset(preset)
        hints[preset] = wp.mode_hint.text()
        assert f"<b>{fits}</b>" in hints[preset], (preset, hints[preset])
    assert len(set(hints.values())) == 5
    sp.set_preset("primes")
    wp.set_mode("process")
    assert wp.mode_hint.text().endswith("✓")
    wp.set_mode("thread")
    assert not wp.mode_hint.text().endswith("✓")


def test_redis_backend_runs_50_tasks_and_never_shows_the_password(qtbot, redis,
                                                                   window_factory) -> None:
    win = window_factory()
    sb = win.server_bar
    sb.set_backend("redis", redis.url)
    assert sb.redis_edit.isVisible() and PASSWORD not in sb.redis_edit.text()
    assert MASK in sb.redis_edit.text() and sb.redis_url() == redis.url
    start_server(qtbot, win)
    assert win.controller.status.mode is Mode.EMBEDDED
    assert "Redis" in sb.status_label.text()
    qtbot.waitUntil(lambda: win.last_snapshot.extra.get("backend", "").startswith("redis://"),
                    timeout=WAIT_MS)

    _launch(win, 1, "inline")
    qtbot.waitUntil(lambda: len(win.controller.local_pids) == 1, timeout=WAIT_MS)
    for pid in win.controller.local_pids:  # the URL travels in the environment only
        cmdline = " ".join(psutil.Process(pid).cmdline())
        assert "--redis" in cmdline and PASSWORD not in cmdline
    _enqueue(win, "square", "range", 50, start="1")
    qtbot.waitUntil(lambda: win.last_snapshot.count("done") == 50, timeout=WAIT_MS)
    assert win.last_snapshot.count("failed") == 0
    qtbot.waitUntil(lambda: sum(w.done for w in win.last_snapshot.workers) == 50,
                    timeout=WAIT_MS)

    dialog = win.connect_remote_worker()
    assert isinstance(dialog, RedisWorkerDialog)
    shown = dialog.command_edit.text()
    assert shown.startswith("GUIDIST_REDIS_URL=") and "guidist worker --redis" in shown
    assert PASSWORD not in shown
    dialog.findChild(QAbstractButton, "redisCopyCommandButton").click()
    assert PASSWORD in QGuiApplication.clipboard().text()
    assert not any(PASSWORD in label.text() for label in dialog.findChildren(QLabel))
    dialog.close()

    leaks = [t for t in _shown_texts(win) if PASSWORD in t]
    assert not leaks, leaks
    win.settings.sync()
    assert PASSWORD not in Path(win.settings.fileName()).read_text() if \
        os.path.exists(win.settings.fileName()) else True


def test_attach_to_a_redis_deployment_and_work_from_it(qtbot, redis, window_factory) -> None:
    win = window_factory()
    dialog = AttachDialog(win)
    dialog.address_edit.setText(redis.url)
    assert dialog.validate() and dialog.redis_url == redis.url and dialog.address is None
    assert PASSWORD not in dialog.address_edit.text()
    dialog.deleteLater()
    win.attach_redis(dialog.redis_url)
    qtbot.waitUntil(lambda: win.controller.status.online, timeout=WAIT_MS)
    assert win.controller.status.mode is Mode.ATTACHED
    assert win.server_bar.status_label.text().startswith("Attached · Redis redis://127.0.0.1")
    _launch(win, 1, "thread", 8)
    _enqueue(win, "io_wait", "fixed", 30, value="0.02")
    qtbot.waitUntil(lambda: win.last_snapshot is not None
                    and win.last_snapshot.count("done") == 30, timeout=WAIT_MS)
    assert {(w.mode, w.concurrency) for w in win.last_snapshot.workers} == {("thread", 8)}
    assert not [t for t in _shown_texts(win) if PASSWORD in t]
    win.stop_server()  # detach: the local worker stops with it
    qtbot.waitUntil(lambda: not win.controller.local_pids, timeout=WAIT_MS)


def test_unreachable_redis_says_so_and_the_window_stays_usable(qtbot, window) -> None:
    win = window
    sb = win.server_bar
    url = f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0"
    sb.set_backend("redis", url)
    sb.start_button.click()
    qtbot.waitUntil(lambda: win.controller.status.mode is Mode.NONE
                    and sb.error_label.isVisible(), timeout=WAIT_MS)
    assert "redis" in sb.error_label.text().lower() or "connect" in sb.error_label.text().lower()
    assert sb.start_button.isEnabled() and sb.attach_button.isEnabled()

    win.attach_redis(url)
    qtbot.waitUntil(lambda: win.controller.status.mode is Mode.NONE, timeout=WAIT_MS)
    assert win.banner.isVisible()
    assert not [t for t in _shown_texts(win) if PASSWORD in t]

    # Still usable: the embedded backend starts and runs tasks.
    sb.set_backend("embedded")
    start_server(qtbot, win)
    _launch(win, 1, "inline")
    _enqueue(win, "square", "range", 10, start="1")
    qtbot.waitUntil(lambda: win.last_snapshot.count("done") == 10, timeout=WAIT_MS)


def test_bad_redis_url_is_refused_next_to_the_field(window) -> None:
    sb = window.server_bar
    sb.set_backend("redis", "localhost:6379")
    sb.start_button.click()
    assert window.controller.status.mode is Mode.NONE
    assert "redis://" in sb.error_label.text()


def test_url_field_masks_the_password_until_edited(qtbot) -> None:
    edit = SecretUrlEdit(f"redis://:{PASSWORD}@db.example:6379/2")
    qtbot.addWidget(edit)
    assert edit.text() == f"redis://:{MASK}@db.example:6379/2"
    assert edit.url() == f"redis://:{PASSWORD}@db.example:6379/2"
    edit.setText("redis://db.example:6380/0")
    assert edit.url() == edit.text() == "redis://db.example:6380/0"


def test_demo_alternates_a_cpu_and_an_io_phase() -> None:
    from guidist.gui.state import DEMO_PHASE_S, demo_phase

    assert [demo_phase(t * DEMO_PHASE_S + 1) for t in range(4)] == ["cpu", "io", "cpu", "io"]


def test_redis_worker_command_hides_the_password_on_screen_only() -> None:
    from guidist.gui.remote_script import redis_worker_command

    url = f"redis://:{PASSWORD}@10.0.0.5:6379/0"
    shown = redis_worker_command(url, shown=True, mode="thread", concurrency=32)
    assert shown == ("GUIDIST_REDIS_URL=redis://10.0.0.5:6379/0 guidist worker --redis "
                     "--mode thread --concurrency 32")
    assert PASSWORD in redis_worker_command(url)
