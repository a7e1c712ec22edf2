"""Process and desktop behaviour: SIGTERM closes like the close button, the desktop files, the
title, Help → Documentation, the small dialogs."""

from __future__ import annotations

import configparser
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import psutil
import pytest
from PySide6.QtCore import QSettings

from guidist.gui.app import DESKTOP_FILE_NAME
from guidist.gui.dialogs import AttachDialog
from guidist.gui.main_window import MainWindow
from guidist.gui.stopping import Keeping, quit_question, stop_question

from ..conftest import REPO, wait_for
from .conftest import WAIT_MS, start_server

RESOURCES = REPO / "resources"


def _listening(proc: psutil.Process) -> bool:
    for child in proc.children(recursive=True):
        try:
            if any(c.status == psutil.CONN_LISTEN for c in child.net_connections("tcp")):
                return True
        except psutil.NoSuchProcess:
            continue
    return False


def _spawned(proc: psutil.Process) -> list[psutil.Process]:
    out = []
    for child in proc.children():
        try:
            if "spawn_main" in " ".join(child.cmdline()):
                out.append(child)
        except psutil.NoSuchProcess:
            continue
    return out


def test_sigterm_closes_like_the_close_button(tmp_path: Path) -> None:
    """It exited at once with 143; now settings are saved and the server is stopped."""
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "config"),
               XDG_DATA_HOME=str(tmp_path / "data"), QT_QPA_PLATFORM="offscreen")
    env.pop("GUIDIST_AUTHKEY", None)
    proc = subprocess.Popen([sys.executable, "-m", "guidist", "gui", "--authkey",
                             "sigterm-test-key-0123"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        ps = psutil.Process(proc.pid)
        wait_for(lambda: _listening(ps), timeout=60, message="the window's server to listen")
        # The server and the window's network process: SIGTERM must stop both.
        wait_for(lambda: len(_spawned(ps)) >= 2, timeout=60,
                 message="the server and the network process")
        children = ps.children(recursive=True)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err[-2000:]
    wait_for(lambda: not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE
                             for c in children), timeout=15, message="the server to stop")
    conf = tmp_path / "config" / "guidist" / "guidist.conf"
    assert conf.exists(), list(tmp_path.rglob("*"))
    saved = QSettings(str(conf), QSettings.Format.IniFormat)
    assert saved.value("window/geometry") is not None  # saved as by the close button
    assert str(saved.value("server/use_journal")).lower() == "true"
    assert (tmp_path / "data" / "guidist" / "window.sqlite").exists()  # the journal it kept


def test_desktop_files_are_in_resources() -> None:
    desktop = configparser.ConfigParser(interpolation=None)
    desktop.optionxform = str  # keys are case-sensitive
    desktop.read(RESOURCES / f"{DESKTOP_FILE_NAME}.desktop", encoding="utf-8")
    entry = desktop["Desktop Entry"]
    assert entry["Type"] == "Application" and entry["Exec"].split()[0] == "guidist"
    assert entry["Icon"] == "guidist" and entry["StartupWMClass"] == "guidist"
    assert entry["Categories"].endswith(";")
    meta = ET.parse(RESOURCES / "guidist.metainfo.xml").getroot()
    assert meta.tag == "component" and meta.get("type") == "desktop-application"
    assert meta.findtext("launchable") == f"{DESKTOP_FILE_NAME}.desktop"
    assert meta.findtext("summary") and meta.find("description") is not None
    theme = RESOURCES / "icons" / "hicolor"
    for size in (16, 22, 24, 32, 48, 64, 128, 256, 512):
        png = theme / f"{size}x{size}" / "apps" / "guidist.png"
        assert png.stat().st_size > 200, png
    # The scalable source is the package's icon (the one the window loads at run time).
    assert (theme / "scalable" / "apps" / "guidist.svg").read_bytes() == \
        (REPO / "guidist" / "resources" / "guidist.svg").read_bytes()


@pytest.mark.skipif(not Path("/usr/bin/appstreamcli").exists(), reason="no appstreamcli")
def test_metainfo_validates() -> None:
    out = subprocess.run(["appstreamcli", "validate", "--no-net", "--explain",
                          str(RESOURCES / "guidist.metainfo.xml")], capture_output=True,
                         text=True, timeout=60)
    # The only remark allowed: the id is not reverse-DNS (the project owns no domain).
    issues = [line for line in out.stdout.splitlines() if line[:2] in ("E:", "W:")]
    assert all("cid-desktopapp-is-not-rdns" in line for line in issues), out.stdout


def test_title_help_and_small_things(qtbot, window: MainWindow) -> None:
    win = window
    assert win.windowTitle() == "guidist"  # not "guidist — host — guidist"
    start_server(qtbot, win)
    host, port = win.controller.status.address
    assert win.windowTitle() == f"guidist — {host}:{port}"
    doc = win.show_documentation()
    assert "guidist" in doc.view.toPlainText() and "Quick start" in doc.view.toPlainText()
    doc.close()
    action = win.findChild(type(win.start_action), "documentationAction")
    assert action is not None and action.shortcut().toString() == "F1"
    # "1 task matching", not "1 tasks matching".
    win.tasks_panel.search_edit.setText("no such task")
    win.tasks_panel._on_filter_changed()
    assert win.tasks_panel.count_label.text().startswith("0 tasks matching")
    from guidist.gui.style import plural

    assert plural(1, "task") == "1 task" and plural(1_000, "task") == "1,000 tasks"
    # The status bar has separators between its fields.
    assert all(line.isVisible() for line in win._status_separators)
    # Event log lines that are cut show in full on hover, on every column.
    win.event_dock.add_note(time.time(), "control", "a long line " * 30)
    model = win.event_dock.model
    last = model.rowCount() - 1
    for col in range(model.columnCount()):
        tip = model.data(model.index(last, col), 3)  # Qt.ToolTipRole
        assert tip and tip.endswith("a long line " * 29 + "a long line ")


def test_the_preview_shows_only_calls_that_validate(qtbot, window: MainWindow) -> None:
    panel = window.submit_panel
    panel.set_preset("square")
    panel.set_mode("fixed")
    panel.value_edit.setText("7")
    assert "square(7)" in panel.summary_label.text()
    panel.value_edit.setText("not a literal (")
    assert "Nothing to queue yet" in panel.summary_label.text()
    assert "square(not" not in panel.summary_label.text()


def test_the_attach_dialog_text_is_not_cut(qtbot) -> None:
    dialog = AttachDialog(None)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    label = dialog.intro_label
    assert label.height() >= label.heightForWidth(label.width())
    assert dialog.width() >= dialog.address_edit.fontMetrics().horizontalAdvance(
        dialog.address_edit.placeholderText())


def test_stop_and_quit_say_what_really_happens() -> None:
    journal = Keeping(journal="/home/me/.local/share/guidist/window.sqlite")
    text = stop_question(10, 2, journal)
    assert "10 tasks queued and 2 running" in text
    assert "kept in the journal (/home/me/.local/share/guidist/window.sqlite)" in text
    assert "lost" not in text
    redis = quit_question(1, 0, Keeping(redis="redis://db.example:6379/0"))
    assert "1 task queued" in redis and "stay in Redis at redis://db.example:6379/0" in redis
    assert "Quit anyway?" in redis and "lost" not in redis
    nothing = stop_question(5, 0, Keeping())
    assert "keeps no journal, so they are lost" in nothing


def test_attach_while_the_own_server_runs_offers_to_stop_it(qtbot, window: MainWindow,
                                                            monkeypatch) -> None:
    win = window
    start_server(qtbot, win)
    assert win.server_bar.attach_button.isEnabled() and win.attach_action.isEnabled()
    asked: list[str] = []
    win.confirm = lambda title, text: asked.append(text) or False  # type: ignore[method-assign]
    win.attach()
    assert asked and "Stop the server it runs" in asked[0]
    assert win.controller.status.online  # No: nothing changes
    opened: list[bool] = []
    monkeypatch.setattr(AttachDialog, "exec", lambda self: opened.append(True) or 0)
    win.confirm = lambda title, text: True  # type: ignore[method-assign]
    win.attach()
    qtbot.waitUntil(lambda: opened == [True], timeout=WAIT_MS)  # stopped, then the dialog
    assert win.controller.status.mode.value == "none"
