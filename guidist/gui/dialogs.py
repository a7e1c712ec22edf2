"""Dialogs: connect a remote worker, attach to a running server, preferences."""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QFont, QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..core.backends.base import DEFAULTS
from ..core.netinfo import reachable_addresses
from ..core.security import parse_address
from .remote_script import (
    is_loopback_literal,
    loopback_warning,
    redis_worker_command,
    worker_command,
    worker_script,
)
from .style import state_color
from .widgets import ErrorLabel, HintLabel, NoticeLabel, SecretUrlEdit


def _note_and_close(dialog: QDialog, text: str) -> tuple[QLabel, QDialogButtonBox]:
    """The grey security note and the Close button the two join dialogs end with."""
    note = HintLabel(text)
    note.setWordWrap(True)
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
    buttons.rejected.connect(dialog.reject)
    buttons.accepted.connect(dialog.accept)
    return note, buttons


def _copy_button(text_source: Callable[[], str], name: str,
                 tooltip: str = "Copy to the clipboard") -> QToolButton:
    b = QToolButton()
    b.setText("Copy")
    b.setObjectName(name)
    b.setToolTip(tooltip)
    b.clicked.connect(lambda: QGuiApplication.clipboard().setText(text_source()))
    return b


#: What the dialogs show instead of a key until Show is pressed.
MASKED_KEY = "\u2022" * 10


def _mono() -> QFont:
    return QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)


class ConnectRemoteDialog(QDialog):
    """Everything another machine needs to work for this server, ready to copy."""

    def __init__(self, bind_host: str, port: int, key: str, parent: QWidget | None = None,
                 addresses: list[str] | None = None, attached: bool = False) -> None:
        super().__init__(parent)
        self.setObjectName("connectRemoteDialog")
        self.setWindowTitle("Connect a remote worker")
        self._key = key
        self._port = int(port)

        warning = loopback_warning(bind_host)
        if attached and warning is not None:
            # We reach someone else's server through loopback; how it listens is unknown.
            warning = (f"This window reaches the server through {bind_host}. Other machines "
                       "can connect only if that server listens on a network address "
                       "(guidist serve --host 0.0.0.0); use this machine's address below.")
            bind_host = "0.0.0.0"
        self.warning_label = NoticeLabel(warning or "")
        self.warning_label.setObjectName("remoteLoopbackWarning")
        self.warning_label.setVisible(warning is not None)

        if warning is not None:
            choices = [bind_host]
        elif bind_host in ("", "0.0.0.0", "::"):
            choices = (addresses if addresses is not None else reachable_addresses()) or []
            host_name = socket.gethostname()
            if host_name and host_name not in choices:
                choices.append(host_name)
        else:
            choices = [bind_host]
        self.address_combo = QComboBox()
        self.address_combo.setObjectName("remoteAddressCombo")
        self.address_combo.setEditable(True)
        self.address_combo.addItems(choices or ["THIS-MACHINE"])
        self.address_combo.setToolTip("This machine's addresses: pick the one the other "
                                      "machine can reach (usually the LAN address)")
        self.address_combo.currentTextChanged.connect(self._update_texts)
        self.port_edit = QLineEdit(str(port))
        self.port_edit.setObjectName("remotePortEdit")
        self.port_edit.setReadOnly(True)
        self.port_edit.setMaximumWidth(80)

        self.key_edit = QLineEdit(key)
        self.key_edit.setObjectName("remoteKeyEdit")
        self.key_edit.setReadOnly(True)
        self.key_edit.setEchoMode(QLineEdit.EchoMode.Password)
        # One Show switch for every place the key appears: the field, the command and the
        # script were shown in clear next to a masked key field.
        self.show_button = QToolButton()
        self.show_button.setObjectName("remoteShowKeyButton")
        self.show_button.setText("Show")
        self.show_button.setCheckable(True)
        self.show_button.setToolTip("Show the key in the field, the command and the script")
        self.show_button.toggled.connect(self._on_show_toggled)

        self.command_edit = QLineEdit()
        self.command_edit.setObjectName("remoteCommandEdit")
        self.command_edit.setReadOnly(True)
        self.command_edit.setFont(_mono())
        self.command_edit.setMinimumWidth(420)
        self.command_edit.setToolTip("The key is hidden until you press Show; Copy copies the "
                                     "whole command, key included")

        self.embed_check = QCheckBox("Put the key in the script (otherwise it reads "
                                     "GUIDIST_AUTHKEY)")
        self.embed_check.setObjectName("remoteEmbedKeyCheck")
        self.embed_check.setChecked(True)
        self.embed_check.toggled.connect(self._update_texts)
        self.script_edit = QPlainTextEdit()
        self.script_edit.setObjectName("remoteScriptEdit")
        self.script_edit.setReadOnly(True)
        self.script_edit.setFont(_mono())
        self.script_edit.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.script_edit.setMinimumHeight(260)
        save = QPushButton("Save…")
        save.setObjectName("remoteSaveScriptButton")
        save.clicked.connect(self._on_save)
        self.save_label = QLabel()
        self.save_label.setObjectName("remoteSaveLabel")
        self.save_label.setWordWrap(True)
        self.save_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.save_label.hide()
        self._script_name = "guidist_worker.py"

        where = QFormLayout()
        addr_row = QHBoxLayout()
        addr_row.addWidget(self.address_combo, 1)
        addr_row.addWidget(QLabel("Port"))
        addr_row.addWidget(self.port_edit)
        where.addRow("Address", addr_row)
        key_row = QHBoxLayout()
        key_row.addWidget(self.key_edit, 1)
        key_row.addWidget(self.show_button)
        key_row.addWidget(_copy_button(lambda: self._key, "remoteCopyKeyButton",
                                       "Copy the key"))
        where.addRow("Key", key_row)

        cmd_box = QGroupBox("With guidist installed there (pip install guidist)")
        cmd_layout = QHBoxLayout(cmd_box)
        cmd_layout.addWidget(self.command_edit, 1)
        cmd_layout.addWidget(_copy_button(self.full_command, "remoteCopyCommandButton",
                                          "Copy the whole command, key included"))

        script_box = QGroupBox("With only Python there: a standard-library worker for "
                               "\u201csquare (classic)\u201d tasks")
        script_layout = QVBoxLayout(script_box)
        script_layout.addWidget(self.embed_check)
        script_layout.addWidget(self.script_edit, 1)
        script_buttons = QHBoxLayout()
        script_buttons.addStretch(1)
        script_buttons.addWidget(_copy_button(self.full_script, "remoteCopyScriptButton",
                                              "Copy the whole script"))
        script_buttons.addWidget(save)
        script_layout.addLayout(script_buttons)
        script_layout.addWidget(self.save_label)

        note, buttons = _note_and_close(
            self, "The key proves who may connect; it does not encrypt anything. Anyone "
                  "with the key can run code on this machine and on its workers.")
        layout = QVBoxLayout(self)
        layout.addWidget(self.warning_label)
        layout.addLayout(where)
        layout.addWidget(cmd_box)
        layout.addWidget(script_box, 1)
        layout.addWidget(note)
        layout.addWidget(buttons)
        self.resize(720, 640)
        self._update_texts()

    @property
    def host(self) -> str:
        """The address the texts use."""
        return self.address_combo.currentText().strip() or "THIS-MACHINE"

    @property
    def key_shown(self) -> bool:
        """True while the key is shown in clear."""
        return self.show_button.isChecked()

    def full_command(self) -> str:
        """The command with the key (what Copy puts on the clipboard)."""
        return worker_command(self.host, self._port, self._key)

    def full_script(self, filename: str | None = None) -> str:
        """The script as saved or copied: the key in it when embedding is chosen."""
        return worker_script(self.host, self._port, self._key, self.embed_check.isChecked(),
                             filename=filename or self._script_name)

    def _on_show_toggled(self, on: bool) -> None:
        self.key_edit.setEchoMode(QLineEdit.EchoMode.Normal if on
                                  else QLineEdit.EchoMode.Password)
        self.show_button.setText("Hide" if on else "Show")
        self._update_texts()

    def _update_texts(self) -> None:
        key = self._key if self.key_shown else MASKED_KEY
        self.command_edit.setText(worker_command(self.host, self._port, key))
        self.command_edit.setCursorPosition(0)
        self.script_edit.setPlainText(worker_script(self.host, self._port, key,
                                                    self.embed_check.isChecked(),
                                                    filename=self._script_name))

    def _on_save(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the worker script",
                                              self._script_name, "Python (*.py)")
        if path:
            self.save_script(path)

    def save_script(self, path: str) -> bool:
        """Write the script (owner-only permissions when it holds the key); the dialog says
        where it went, or why it could not."""
        p = Path(path)
        self._script_name = p.name
        try:
            p.write_text(self.full_script(p.name), encoding="utf-8")
        except OSError as exc:
            self.save_label.setText(f"Could not save {p}: {exc.strerror or exc}.")
            self.save_label.setStyleSheet(f"color: {state_color('failed')};")
            self.save_label.show()
            return False
        private = ""
        if self.embed_check.isChecked():
            try:
                p.chmod(0o600)
                private = " (readable only by you: it holds the key)"
            except OSError:
                private = " (it holds the key: keep it private)"
        self._update_texts()  # its instructions name the file as saved
        self.save_label.setText(f"Saved {p}{private}. On the other machine run: "
                                f"python3 {p.name}")
        self.save_label.setStyleSheet(f"color: {state_color('done')};")
        self.save_label.show()
        return True


class RedisWorkerDialog(QDialog):
    """What another machine runs to work straight from a Redis deployment, ready to copy.

    The URL is shown without its password; Copy puts the complete line on the clipboard.
    """

    def __init__(self, url: str, parent: QWidget | None = None, mode: str = "inline",
                 concurrency: int | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("redisWorkerDialog")
        self.setWindowTitle("Connect a remote worker")
        self._url = url
        self._mode = mode
        self._concurrency = concurrency
        from urllib.parse import urlsplit

        try:
            host = urlsplit(url).hostname or ""
        except ValueError:
            host = ""
        self.warning_label = NoticeLabel(
            f"This Redis listens on {host}: other machines cannot reach it. Use a Redis they "
            "can reach (bind it to a network address, with a password)."
            if host and is_loopback_literal(host) else "")
        self.warning_label.setObjectName("redisLoopbackWarning")
        self.warning_label.setVisible(bool(self.warning_label.text()))
        intro = QLabel("This queue keeps its state in Redis, so a worker on another machine "
                       "talks to Redis directly, with no guidist server in between. With "
                       "guidist installed there (pip install 'guidist[redis]'), run:")
        intro.setWordWrap(True)
        self.command_edit = QLineEdit(redis_worker_command(url, True, mode, concurrency))
        self.command_edit.setObjectName("redisCommandEdit")
        self.command_edit.setReadOnly(True)
        self.command_edit.setFont(_mono())
        self.command_edit.setMinimumWidth(520)
        self.command_edit.setToolTip("The password is hidden here; Copy copies the whole line")
        row = QHBoxLayout()
        row.addWidget(self.command_edit, 1)
        row.addWidget(_copy_button(self.full_command, "redisCopyCommandButton",
                                   "Copy the command, password included"))
        note, buttons = _note_and_close(
            self, "Whoever can write to this Redis can run code on every worker: keep the "
                  "URL and its password private, and Redis off untrusted networks. "
                  "Add --mode process for CPU-bound tasks, --mode thread or async for I/O.")
        layout = QVBoxLayout(self)
        layout.addWidget(self.warning_label)
        layout.addWidget(intro)
        layout.addLayout(row)
        layout.addWidget(note)
        layout.addWidget(buttons)
        self.resize(720, 0)

    def full_command(self) -> str:
        """The command with the complete URL (what Copy puts on the clipboard)."""
        return redis_worker_command(self._url, False, self._mode, self._concurrency)


class AttachDialog(QDialog):
    """Ask for HOST:PORT and the key of a server to monitor, or a Redis URL."""

    def __init__(self, parent: QWidget | None = None, address: str = "",
                 key: str = "") -> None:
        super().__init__(parent)
        self.setObjectName("attachDialog")
        self.setWindowTitle("Attach to a running server")
        self.address_edit = SecretUrlEdit(address)
        self.address_edit.setObjectName("attachAddressEdit")
        self.address_edit.setPlaceholderText("HOST:PORT, e.g. 192.168.1.20:5000, or "
                                             "redis://:password@host:6379/0")
        self.key_edit = QLineEdit(key)
        self.key_edit.setObjectName("attachKeyEdit")
        self.key_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.key_edit.setPlaceholderText("the key the server was started with (not for Redis)")
        self.error_label = ErrorLabel()
        self.error_label.setObjectName("attachErrorLabel")
        intro = QLabel("Monitor a guidist server started elsewhere (<code>guidist serve</code>, "
                       "another window), an unmodified tutorial master, for which only the "
                       "queue sizes are known, or a Redis deployment (its <code>redis://</code> "
                       "URL; no key).")
        intro.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Address", self.address_edit)
        form.addRow("Key", self.key_edit)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Attach")
        buttons.accepted.connect(self._on_accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.error_label)
        layout.addWidget(buttons)
        self.address: tuple[str, int] | None = None
        self.redis_url: str | None = None
        # Wide enough for the field's placeholder, and as tall as the wrapped intro needs:
        # resize(460, 0) cut the text off.
        self.setMinimumWidth(max(520, self.address_edit.fontMetrics().horizontalAdvance(
            self.address_edit.placeholderText()) + 120))
        intro.setMinimumHeight(intro.heightForWidth(self.minimumWidth() - 24))
        self.intro_label = intro
        self.adjustSize()

    def validate(self) -> bool:
        """Check the fields; show what is wrong next to them."""
        self.error_label.clear_error()
        self.address = self.redis_url = None
        text = self.address_edit.url()
        if text.lower().startswith(("redis://", "rediss://", "unix://")):
            self.redis_url = text
            return True
        try:
            host, port = parse_address(text)
        except ValueError as exc:
            self.error_label.show_error(_sentence(str(exc)), self.address_edit)
            return False
        if port == 0:
            self.error_label.show_error("Add the port: HOST:PORT, e.g. 127.0.0.1:5000.",
                                        self.address_edit)
            return False
        if not self.key_edit.text():
            self.error_label.show_error("Type the server's key.", self.key_edit)
            return False
        self.address = (host, port)
        return True

    def _on_accept(self) -> None:
        if self.validate():
            self.accept()


@dataclass
class Preferences:
    """Settings applied at the next server start."""

    lease_timeout: float = DEFAULTS.lease_timeout
    max_attempts: int = DEFAULTS.max_attempts
    use_journal: bool = False
    journal_path: str = ""
    autostart: bool = False
    metrics_port: int = 0  # serve Prometheus metrics on this port (0: off)


class PreferencesDialog(QDialog):
    """Server options that are not on the bar."""

    def __init__(self, prefs: Preferences, journal_available: bool,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("preferencesDialog")
        self.setWindowTitle("Preferences")
        self.lease_spin = QDoubleSpinBox()
        self.lease_spin.setObjectName("prefLeaseSpin")
        self.lease_spin.setRange(1.0, 3600.0)
        self.lease_spin.setDecimals(1)
        self.lease_spin.setSuffix(" s")
        self.lease_spin.setValue(prefs.lease_timeout)
        self.lease_spin.setToolTip("Seconds without a heartbeat before a worker's tasks go "
                                   "back to the queue")
        self.attempts_spin = QSpinBox()
        self.attempts_spin.setObjectName("prefAttemptsSpin")
        self.attempts_spin.setRange(1, 100)
        self.attempts_spin.setValue(prefs.max_attempts)
        self.attempts_spin.setToolTip("Lease expiries before a task is declared dead")
        self.journal_check = QCheckBox("Keep a journal (SQLite) so tasks survive a restart")
        self.journal_check.setObjectName("prefJournalCheck")
        self.journal_check.setChecked(prefs.use_journal and journal_available)
        self.journal_edit = QLineEdit(prefs.journal_path)
        self.journal_edit.setObjectName("prefJournalEdit")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._on_browse)
        if not journal_available:
            for w in (self.journal_check, self.journal_edit, browse):
                w.setEnabled(False)
            self.journal_check.setToolTip("This build has no journal support yet")
        self.autostart_check = QCheckBox("Start the server when the window opens")
        self.autostart_check.setObjectName("prefAutostartCheck")
        self.autostart_check.setChecked(prefs.autostart)
        self.metrics_spin = QSpinBox()
        self.metrics_spin.setObjectName("prefMetricsSpin")
        self.metrics_spin.setRange(0, 65535)
        self.metrics_spin.setSpecialValueText("off")
        self.metrics_spin.setValue(prefs.metrics_port)
        self.metrics_spin.setToolTip("Serve Prometheus metrics at http://HOST:PORT/metrics, "
                                     "on the server's own address (off: not served)")
        form = QFormLayout()
        form.addRow("Lease timeout", self.lease_spin)
        form.addRow("Attempts before dead", self.attempts_spin)
        form.addRow(self.journal_check)
        row = QHBoxLayout()
        row.addWidget(self.journal_edit, 1)
        row.addWidget(browse)
        form.addRow("Journal file", row)
        form.addRow(self.autostart_check)
        form.addRow("Prometheus metrics port", self.metrics_spin)
        note = HintLabel("Changes apply the next time the server starts.")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(buttons)
        self.setMinimumWidth(520)

    def preferences(self) -> Preferences:
        """What the fields say."""
        return Preferences(self.lease_spin.value(), self.attempts_spin.value(),
                           self.journal_check.isChecked(), self.journal_edit.text().strip(),
                           self.autostart_check.isChecked(), self.metrics_spin.value())

    def _on_browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Journal file", self.journal_edit.text(),
                                              "SQLite (*.sqlite *.db);;All files (*)",
                                              options=QFileDialog.Option.DontConfirmOverwrite)
        if path:
            self.journal_edit.setText(path)


class LogDialog(QDialog):
    """What a local worker prints (its last lines), live while open, read-only and copyable.

    refresh, when given, is called every REFRESH_MS while the dialog is shown; the owner
    answers with set_text (the lines come from the worker's captured output)."""

    REFRESH_MS = 1000

    def __init__(self, title: str, text: str, parent: QWidget | None = None,
                 refresh: Callable[[], None] | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("workerLogDialog")
        self.setWindowTitle(title)
        self.text_edit = QPlainTextEdit(text)
        self.text_edit.setObjectName("workerLogText")
        self.text_edit.setReadOnly(True)
        self.text_edit.setFont(_mono())
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.text_edit, 1)
        layout.addWidget(buttons)
        self.resize(720, 420)
        self._timer = QTimer(self)
        self._timer.setInterval(self.REFRESH_MS)
        if refresh is not None:
            self._timer.timeout.connect(refresh)
            self._timer.start()
        self.finished.connect(self._timer.stop)

    def set_text(self, text: str) -> None:
        """Show new output; a reader at the bottom stays at the bottom, one who scrolled up
        keeps their place."""
        if text == self.text_edit.toPlainText():
            return
        bar = self.text_edit.verticalScrollBar()
        at_end = bar.value() >= bar.maximum() - 2
        keep = bar.value()
        self.text_edit.setPlainText(text)
        bar.setValue(bar.maximum() if at_end else keep)


def documentation_text() -> tuple[str, Path | None]:
    """The README (markdown) and the folder its pictures are relative to, if known: from a
    source checkout, else from the installed package's metadata (its long description)."""
    readme = Path(__file__).resolve().parents[2] / "README.md"
    if readme.is_file():
        text = readme.read_text(encoding="utf-8")
        if text.startswith("# guidist"):  # ours, not another package's in site-packages
            return text, readme.parent
    try:
        from importlib.metadata import PackageNotFoundError, metadata

        return str(metadata("guidist").get_payload() or ""), None
    except (PackageNotFoundError, OSError):
        return "", None


class DocumentationDialog(QDialog):
    """Help → Documentation: the README, rendered, with its links opening in a browser."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("documentationDialog")
        self.setWindowTitle("guidist documentation")
        text, folder = documentation_text()
        self.view = QTextBrowser()
        self.view.setObjectName("documentationView")
        self.view.setOpenExternalLinks(True)
        if folder is not None:
            self.view.setSearchPaths([str(folder)])
        self.view.setMarkdown(text or "The documentation is the README of the guidist "
                              "package; it could not be found in this installation.")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.view, 1)
        layout.addWidget(buttons)
        self.resize(860, 640)


def _sentence(text: str) -> str:
    """Capital first letter and a final full stop, leaving the rest as it is."""
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")
