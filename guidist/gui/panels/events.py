"""The event log dock: workers joining and leaving, requeues, failures, the window's own notes."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDockWidget,
    QHBoxLayout,
    QHeaderView,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ...core.protocol import Event
from ..models import EventLogModel


class EventLogDock(QDockWidget):
    """A dock with the event log; it follows new lines unless scrolled up."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Event log", parent)
        self.setObjectName("eventLogDock")
        self.model = EventLogModel(self)
        self.table = QTableView()
        self.table.setObjectName("eventLogTable")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setWordWrap(False)
        self.table.setShowGrid(False)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.table.verticalHeader().setDefaultSectionSize(20)
        header = self.table.horizontalHeader()
        header.setStretchLastSection(True)
        header.resizeSection(EventLogModel.COL_TIME, 70)
        header.resizeSection(EventLogModel.COL_KIND, 110)
        clear = QToolButton()
        clear.setText("Clear")
        clear.setObjectName("eventLogClearButton")
        clear.clicked.connect(self.model.clear)
        self.follow = QToolButton()
        self.follow.setText("Follow")
        self.follow.setCheckable(True)
        self.follow.setChecked(True)
        self.follow.setToolTip("Scroll to new events as they arrive")
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(4, 0, 4, 4)
        layout.setSpacing(2)
        layout.addWidget(self.table, 1)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.follow)
        buttons.addWidget(clear)
        layout.addLayout(buttons)
        self.setWidget(body)
        self.setAllowedAreas(Qt.DockWidgetArea.AllDockWidgetAreas)

    def add_events(self, events: Sequence[Event]) -> None:
        """Append the server's new events."""
        if events:
            self.model.add_events(events)
            self._follow()

    def add_note(self, when: float, kind: str, message: str, key: object = None) -> None:
        """Append a line from the window; with a key, update that key's recent line."""
        self.model.add_note(when, kind, message, key)
        self._follow()

    def _follow(self) -> None:
        if self.follow.isChecked():
            self.table.scrollToBottom()
