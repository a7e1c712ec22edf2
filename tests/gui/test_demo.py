"""The demo says it is a demo, labels its deliberate failures, and leaves the person's
settings as they were (it turned the journal off for every later window)."""

from __future__ import annotations

import argparse
from pathlib import Path

from PySide6.QtCore import QSettings

from guidist.gui.app import build_window, saved_preferences

from .conftest import WAIT_MS, window_args


def test_the_demo_says_so_and_stops_from_its_banner(qtbot, window_factory) -> None:
    win = window_factory(demo=True)
    qtbot.waitUntil(lambda: win.controller.demo_running and win.last_snapshot is not None,
                    timeout=WAIT_MS)
    assert win.demo_banner.isVisible() and "Demo running" in win.demo_banner.text
    assert "on purpose" in win.demo_banner.text
    assert win.windowTitle().startswith("guidist — demo — ")
    assert win.totals_panel.captions["failed"].text() == "Failed (demo: on purpose)"
    # Its failing tasks are labelled in the Event log, and never raise the error banner.
    qtbot.waitUntil(lambda: any(kind == "failed" and "deliberate" in message
                                for _, kind, message in win.event_dock.model.rows()),
                    timeout=WAIT_MS)
    assert win.banner.level != "error"
    win.demo_banner.action_button.click()  # Stop demo
    assert not win.controller.demo_running and not win.demo_banner.isVisible()
    assert win.totals_panel.captions["failed"].text() == "Failed"
    assert "demo" not in win.windowTitle()
    assert win.controller.status.online  # the server and workers stay; only the load stops


def test_after_a_demo_a_plain_window_keeps_a_journal(qtbot, tmp_path: Path) -> None:
    """Closing a --demo window saved server/use_journal=false, and every later window ran
    without a journal, silently."""
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    settings.setValue("server/journal_path", str(tmp_path / "window.sqlite"))
    demo = build_window(window_args(demo=True, no_journal=False), settings)
    demo.confirm = lambda title, text: True  # type: ignore[method-assign]
    qtbot.addWidget(demo)
    demo.show()
    qtbot.waitUntil(lambda: demo.controller.demo_running and demo.last_snapshot is not None,
                    timeout=WAIT_MS)
    assert demo.keeping.journal is None  # the demo's own load is not kept...
    assert not (tmp_path / "window.sqlite").exists()
    demo.close()  # the close button: settings saved, everything stopped
    assert demo.controller.is_shut_down
    settings.sync()
    assert str(settings.value("server/use_journal")).lower() == "true"  # ...nor its choice
    assert saved_preferences(settings).use_journal

    plain = build_window(argparse.Namespace(**{**vars(window_args()), "no_journal": False}),
                         settings)
    plain.confirm = lambda title, text: True  # type: ignore[method-assign]
    qtbot.addWidget(plain)
    plain.show()
    try:
        plain.start_server()
        qtbot.waitUntil(lambda: plain.controller.status.online, timeout=WAIT_MS)
        assert plain.keeping.journal == str(tmp_path / "window.sqlite")
        qtbot.waitUntil(lambda: (tmp_path / "window.sqlite").exists(), timeout=WAIT_MS)
    finally:
        plain.shutdown()


def test_command_line_choices_stay_out_of_the_saved_settings(qtbot, window_factory,
                                                             settings) -> None:
    settings.setValue("server/lease_timeout", 30.0)
    win = window_factory(no_journal=True, lease_timeout=2.0)
    assert win.session_prefs.lease_timeout == 2.0 and not win.session_prefs.use_journal
    win.shutdown()
    settings.sync()
    assert float(settings.value("server/lease_timeout")) == 30.0
    assert saved_preferences(settings).lease_timeout == 30.0
