"""The composition root: options from the command line and settings, autostart, dialogs."""

from __future__ import annotations

import socket

from guidist.core.client import Client
from guidist.gui.app import app_icon, journal_available, load_preferences
from guidist.gui.dialogs import AttachDialog, Preferences, PreferencesDialog

from .conftest import WAIT_MS, window_args


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_this_install_has_the_journal() -> None:
    # The window journals by default only when this is true: a module move once made it
    # false and every window silently ran without a journal.
    assert journal_available()


def test_port_and_key_on_the_command_line_start_that_server(qtbot, window_factory) -> None:
    port = _free_port()
    win = window_factory(port=port, authkey="cli-given-key-0123")
    qtbot.waitUntil(lambda: win.controller.status.online, timeout=WAIT_MS)
    assert win.controller.status.address == ("127.0.0.1", port)
    # `guidist status --connect 127.0.0.1:P` can look at the same server from outside.
    with Client(("127.0.0.1", port), "cli-given-key-0123") as c:
        assert c.snapshot().kind == "guidist"


def test_preferences_come_from_settings_and_the_command_line(settings) -> None:
    settings.setValue("server/lease_timeout", 12.5)
    settings.setValue("server/max_attempts", 5)
    settings.setValue("server/use_journal", "true")
    settings.setValue("server/journal_path", "/tmp/j.sqlite")
    prefs = load_preferences(settings, window_args(lease_timeout=None, no_journal=False))
    assert prefs.lease_timeout == 12.5 and prefs.max_attempts == 5
    assert prefs.journal_path == "/tmp/j.sqlite"
    prefs = load_preferences(settings, window_args(lease_timeout=2.0, no_journal=True))
    assert prefs.lease_timeout == 2.0 and not prefs.use_journal
    prefs = load_preferences(settings, window_args(journal="/tmp/other.sqlite",
                                                   no_journal=False))
    assert prefs.use_journal and prefs.journal_path == "/tmp/other.sqlite"
    prefs = load_preferences(settings, window_args(demo=True, no_journal=False))
    assert not prefs.use_journal  # demo load is not worth keeping


def test_preferences_dialog_round_trip(qtbot) -> None:
    dialog = PreferencesDialog(Preferences(7.0, 4, False, "/x.sqlite", True), True)
    qtbot.addWidget(dialog)
    dialog.lease_spin.setValue(3.5)
    dialog.journal_check.setChecked(True)
    assert dialog.preferences() == Preferences(3.5, 4, True, "/x.sqlite", True)
    off = PreferencesDialog(Preferences(use_journal=True), journal_available=False)
    qtbot.addWidget(off)
    assert not off.journal_check.isEnabled() and not off.preferences().use_journal


def test_attach_dialog_validates_next_to_the_field(qtbot) -> None:
    dialog = AttachDialog(None, "nonsense")
    qtbot.addWidget(dialog)
    assert not dialog.validate() and "HOST:PORT" in dialog.error_label.text()
    dialog.address_edit.setText("10.1.2.3:0")
    assert not dialog.validate() and "port" in dialog.error_label.text()
    dialog.address_edit.setText("10.1.2.3:5000")
    assert not dialog.validate() and "key" in dialog.error_label.text()
    dialog.key_edit.setText("k")
    assert dialog.validate() and dialog.address == ("10.1.2.3", 5000)


def test_icon_loads(qtbot) -> None:
    icon = app_icon()
    assert not icon.isNull() and not icon.pixmap(64, 64).isNull()
