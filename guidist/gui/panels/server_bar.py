"""The server bar: start and stop the embedded server, its address and key, attach elsewhere."""

from __future__ import annotations

import os

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QGuiApplication, QResizeEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QStyle,
    QToolButton,
    QWidget,
)

from ...core.security import generate_key
from ...core.urls import REDIS_URL_ENV, is_redis_url
from ..state import Mode, Phase, Status
from ..widgets import ErrorLabel, SecretUrlEdit, StatusLight

LOOPBACK = "127.0.0.1"
ALL_INTERFACES = "0.0.0.0"
REDIS_PLACEHOLDER = "redis://:password@host:6379/0"
BACKEND_EMBEDDED, BACKEND_REDIS = "embedded", "redis"

REMOTE_WARNING = (
    "Workers on other machines can now connect to this server once it starts. The key only "
    "proves who may connect: traffic is not encrypted, and anyone who has the key can run code "
    "on this machine and on every worker. Share it only with machines you trust, on a network "
    "you trust.")


class ServerBar(QFrame):
    """One row: status light, Start/Stop, Attach, backend, host, "other machines" switch,
    port, key."""

    #: (host, port, key, backend): the person asked to start the embedded server; backend is
    #: None for the embedded state, or the Redis URL (password included).
    start_requested = Signal(object)
    #: Stop the embedded server (or detach from an attached one).
    stop_requested = Signal()
    #: Open the "Attach to a running server" dialog.
    attach_requested = Signal()
    #: str: something the person should read (the warning about other machines).
    warning = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("serverBar")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        style = self.style()

        self.light = StatusLight()
        self.light.setObjectName("serverStatusLight")
        self.status_label = QLabel("Stopped")
        self.status_label.setObjectName("serverStatusLabel")
        self.status_label.setMinimumWidth(180)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.start_button = QPushButton("Start")
        self.start_button.setObjectName("serverStartButton")
        self.start_button.setIcon(style.standardIcon(QStyle.StandardPixmap.SP_MediaPlay))
        self.start_button.setToolTip("Start the queue server in the background (Ctrl+R)")
        self.start_button.clicked.connect(self._on_start_clicked)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setObjectName("serverStopButton")
        self.stop_button.setIcon(style.standardIcon(QStyle.StandardPixmap.SP_MediaStop))
        self.stop_button.setToolTip("Stop local workers and the server (Ctrl+Shift+R)")
        self.stop_button.clicked.connect(self.stop_requested)

        self.host_combo = QComboBox()
        self.host_combo.setObjectName("serverHostCombo")
        self.host_combo.setEditable(True)
        self.host_combo.addItems([LOOPBACK, ALL_INTERFACES])
        self.host_combo.setMinimumContentsLength(9)
        self.host_combo.setToolTip("Address to listen on: 127.0.0.1 accepts this machine only; "
                                   "0.0.0.0 accepts every network interface")
        self.host_combo.currentTextChanged.connect(self._on_host_changed)
        self.remote_check = QCheckBox("Allow remote workers")
        self.remote_check.setObjectName("serverRemoteCheck")
        self.remote_check.setToolTip("Listen on every network interface (0.0.0.0) so workers "
                                     "on other machines can connect.\n\n" + REMOTE_WARNING)
        self.remote_check.toggled.connect(self._on_remote_toggled)

        self.port_spin = QSpinBox()
        self.port_spin.setObjectName("serverPortSpin")
        self.port_spin.setRange(0, 65535)
        self.port_spin.setSpecialValueText("any")
        self.port_spin.setToolTip("TCP port; \u201cany\u201d lets the system pick a free one")
        self.port_spin.setMinimumWidth(64)

        self.key_edit = QLineEdit()
        self.key_edit.setObjectName("serverKeyEdit")
        self.key_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.key_edit.setMinimumWidth(110)
        self.key_edit.setToolTip("The key workers and clients must present (random by default)")
        self.show_key_button = QToolButton()
        self.show_key_button.setObjectName("serverShowKeyButton")
        self.show_key_button.setText("Show")
        self.show_key_button.setCheckable(True)
        self.show_key_button.setToolTip("Show or hide the key")
        self.show_key_button.toggled.connect(self._on_show_key)
        self.copy_key_button = QToolButton()
        self.copy_key_button.setObjectName("serverCopyKeyButton")
        self.copy_key_button.setText("Copy")
        self.copy_key_button.setToolTip("Copy the key to the clipboard")
        self.copy_key_button.clicked.connect(self._on_copy_key)
        self.regen_key_button = QToolButton()
        self.regen_key_button.setObjectName("serverRegenerateKeyButton")
        self.regen_key_button.setText("New")
        self.regen_key_button.setToolTip("Generate a new random key (takes effect at the next "
                                         "start)")
        self.regen_key_button.clicked.connect(self._on_regenerate)

        self.backend_combo = QComboBox()
        self.backend_combo.setObjectName("serverBackendCombo")
        self.backend_combo.addItem("Embedded", BACKEND_EMBEDDED)
        self.backend_combo.addItem("Redis", BACKEND_REDIS)
        self.backend_combo.setToolTip(
            "Where the queue's state lives. Embedded: in the server process (with the "
            "journal), right for one machine. Redis: in a Redis server, for deployments that "
            "outgrow one process; workers may then talk to Redis directly.")
        self.redis_edit = SecretUrlEdit(os.environ.get(REDIS_URL_ENV, ""))
        self.redis_edit.setObjectName("serverRedisUrlEdit")
        self.redis_edit.setPlaceholderText(REDIS_PLACEHOLDER)
        self.redis_edit.setMinimumWidth(200)
        self.redis_edit.setToolTip("The Redis server holding the queue: redis://HOST:PORT/DB, "
                                   "with :PASSWORD@ before the host if it needs one (shown "
                                   f"only while you edit; also read from ${REDIS_URL_ENV})")
        self.backend_combo.currentIndexChanged.connect(self._on_backend_changed)

        self.attach_button = QPushButton("Attach…")
        self.attach_button.setObjectName("serverAttachButton")
        self.attach_button.setToolTip("Monitor a server that is already running elsewhere "
                                      "(guidist, or a classic tutorial master) (Ctrl+O)")
        self.attach_button.clicked.connect(self.attach_requested)

        self.error_label = ErrorLabel()
        self.error_label.setObjectName("serverErrorLabel")

        # Two halves: state and buttons, then the address and key fields. They sit on one
        # row when the window is wide enough and wrap onto two when it is not.
        self._state_half = QWidget()
        row = QHBoxLayout(self._state_half)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(6)
        row.addWidget(self.light)
        row.addWidget(self.status_label, 1)
        row.addWidget(self.start_button)
        row.addWidget(self.stop_button)
        row.addWidget(self.attach_button)
        self._fields_half = QWidget()
        row = QHBoxLayout(self._fields_half)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(6)
        row.addWidget(self.backend_combo)
        row.addWidget(self.redis_edit, 2)
        row.addSpacing(4)
        row.addWidget(QLabel("Host"))
        row.addWidget(self.host_combo)
        row.addWidget(self.remote_check)
        row.addSpacing(4)
        row.addWidget(QLabel("Port"))
        row.addWidget(self.port_spin)
        row.addSpacing(4)
        row.addWidget(QLabel("Key"))
        row.addWidget(self.key_edit, 1)
        for b in (self.show_key_button, self.copy_key_button, self.regen_key_button):
            row.addWidget(b)
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(8, 5, 8, 5)
        self._grid.setHorizontalSpacing(12)
        self._grid.setVerticalSpacing(4)
        self._wrapped = True
        self._arrange(wrapped=False)
        self._on_backend_changed()
        self.set_status(Status())

    # -- layout

    def _arrange(self, wrapped: bool) -> None:
        if wrapped == self._wrapped:
            return
        self._wrapped = wrapped
        for w in (self._state_half, self._fields_half, self.error_label):
            self._grid.removeWidget(w)
        self._grid.addWidget(self._state_half, 0, 0)
        if wrapped:
            self._grid.addWidget(self._fields_half, 1, 0)
            self._grid.addWidget(self.error_label, 2, 0)
        else:
            self._grid.addWidget(self._fields_half, 0, 1)
            self._grid.addWidget(self.error_label, 1, 0, 1, 2)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt name)
        """Narrow enough for two rows; resizeEvent picks one or two."""
        hint = super().minimumSizeHint()
        width = max(self._state_half.minimumSizeHint().width(),
                    self._fields_half.minimumSizeHint().width()) + 16
        return QSize(width, hint.height())

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt name)
        """One row when both halves fit, two otherwise."""
        need = (self._state_half.minimumSizeHint().width()
                + self._fields_half.minimumSizeHint().width() + 16 + 12)
        self._arrange(wrapped=event.size().width() < need)
        super().resizeEvent(event)

    # -- API

    def options(self) -> tuple[str, int, str]:
        """(host, port, key) as typed."""
        return self.host_combo.currentText().strip(), self.port_spin.value(), \
            self.key_edit.text()

    @property
    def backend(self) -> str:
        """"embedded" or "redis"."""
        return str(self.backend_combo.currentData())

    def set_backend(self, backend: str, url: str | None = None) -> None:
        """Choose the backend (and the Redis URL)."""
        i = self.backend_combo.findData(backend)
        if i >= 0:
            self.backend_combo.setCurrentIndex(i)
        if url is not None:
            self.redis_edit.set_url(url)

    def redis_url(self) -> str:
        """The Redis URL as typed, password included (never show or log it)."""
        return self.redis_edit.url()

    def set_options(self, host: str, port: int, key: str) -> None:
        """Fill the fields (from the command line, settings, or a generated key)."""
        self.host_combo.setCurrentText(host)
        self.port_spin.setValue(int(port))
        self.key_edit.setText(key)
        self.key_edit.setCursorPosition(0)

    def set_status(self, status: Status) -> None:
        """Reflect the controller's status: light, sentence, which fields may change."""
        phase = status.phase
        light = {Phase.ONLINE: "ok", Phase.LOST: "bad", Phase.STARTING: "busy",
                 Phase.CONNECTING: "busy", Phase.STOPPING: "busy"}.get(phase, "off")
        self.light.set_state(light)
        text = status.message or phase.value.capitalize()
        if phase is Phase.STOPPED and not status.message:
            text = "Stopped"
        self.status_label.setText(text)
        self.status_label.setToolTip(text)
        idle = status.mode is Mode.NONE
        self.start_button.setEnabled(idle)
        self.attach_button.setEnabled(idle)
        self.stop_button.setEnabled(not idle and phase is not Phase.STOPPING)
        self.stop_button.setText("Detach" if status.mode is Mode.ATTACHED else "Stop")
        for w in (self.host_combo, self.remote_check, self.port_spin, self.key_edit,
                  self.regen_key_button, self.backend_combo, self.redis_edit):
            w.setEnabled(idle)
        if not idle:
            self.error_label.clear_error()

    def show_error(self, message: str, field: str = "") -> None:
        """A message next to the fields (field: host, port or key)."""
        widget = {"host": self.host_combo, "port": self.port_spin,
                  "key": self.key_edit, "redis": self.redis_edit}.get(field)
        self.error_label.show_error(message, widget)

    def clear_error(self) -> None:
        """Hide the message."""
        self.error_label.clear_error()

    # -- slots

    def _on_start_clicked(self) -> None:
        self.error_label.clear_error()
        host, port, key = self.options()
        if not host:
            self.show_error("Type the address to listen on: 127.0.0.1 for this machine only, "
                            "0.0.0.0 for every interface.", "host")
            return
        backend = None
        if self.backend == BACKEND_REDIS:
            backend = self.redis_url()
            if not is_redis_url(backend):
                self.show_error(f"Type the Redis URL: redis://HOST:PORT/DB, e.g. "
                                f"{REDIS_PLACEHOLDER}.", "redis")
                return
        if not key:
            self.key_edit.setText(generate_key())
            key = self.key_edit.text()
        self.start_requested.emit((host, port, key, backend))

    def _on_backend_changed(self) -> None:
        self.redis_edit.setVisible(self.backend == BACKEND_REDIS)
        self.error_label.clear_error()

    def _on_remote_toggled(self, on: bool) -> None:
        want = ALL_INTERFACES if on else LOOPBACK
        if self.host_combo.currentText() != want:
            self.host_combo.setCurrentText(want)
        if on:
            self.warning.emit(REMOTE_WARNING)

    def _on_host_changed(self, host: str) -> None:
        remote = host.strip() not in (LOOPBACK, "localhost", "::1", "")
        if self.remote_check.isChecked() != remote:
            self.remote_check.blockSignals(True)
            self.remote_check.setChecked(remote)
            self.remote_check.blockSignals(False)

    def _on_regenerate(self) -> None:
        self.key_edit.setText(generate_key())
        self.key_edit.setCursorPosition(0)

    def _on_show_key(self, shown: bool) -> None:
        self.key_edit.setEchoMode(QLineEdit.EchoMode.Normal if shown
                                  else QLineEdit.EchoMode.Password)
        self.show_key_button.setText("Hide" if shown else "Show")

    def _on_copy_key(self) -> None:
        QGuiApplication.clipboard().setText(self.key_edit.text())
