"""Small widgets the panels share: a status light, an inline error label, a banner."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton, QWidget

from .style import LIGHT_COLORS

_INVALID = "border: 1px solid #d62728; border-radius: 2px;"


class StatusLight(QLabel):
    """A round light: off (grey), busy (amber), ok (green), bad (red)."""

    def __init__(self, parent: QWidget | None = None, diameter: int = 12) -> None:
        super().__init__(parent)
        self._diameter = diameter
        self.setFixedSize(diameter, diameter)
        self.state = ""
        self.set_state("off")

    def set_state(self, state: str) -> None:
        """One of off, busy, ok, bad."""
        self.state = state
        color = LIGHT_COLORS.get(state, LIGHT_COLORS["off"])
        self.setStyleSheet(f"background: {color}; border-radius: {self._diameter // 2}px; "
                           "border: 1px solid rgba(0,0,0,60);")


class ErrorLabel(QLabel):
    """A red sentence under a form, hidden while empty; it marks the offending field."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.setStyleSheet("color: #d62728;")
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.hide()
        self._marked: list[QWidget] = []

    def show_error(self, message: str, field: QWidget | None = None) -> None:
        """Show message and outline field in red (and give it the focus)."""
        self.clear_error()
        self.setText(message)
        self.show()
        if field is not None:
            field.setProperty("_old_style", field.styleSheet())
            field.setStyleSheet(_INVALID)
            field.setToolTip(message)
            field.setFocus(Qt.FocusReason.OtherFocusReason)
            self._marked.append(field)

    def clear_error(self) -> None:
        """Hide the message and restore the field."""
        self.setText("")
        self.hide()
        for field in self._marked:
            field.setStyleSheet(field.property("_old_style") or "")
            field.setToolTip("")
        self._marked.clear()


class Banner(QFrame):
    """A coloured strip across the top of the window for what needs attention now."""

    dismissed = Signal()

    _STYLES = {
        "error": ("#fdecea", "#d62728", "#611a15"),
        "warning": ("#fff4e5", "#e8850c", "#663c00"),
        "info": ("#e8f1fb", "#1f77b4", "#0d3c61"),
    }

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        self.label = QLabel()
        self.label.setObjectName("bannerLabel")
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QToolButton()
        close.setText("✕")
        close.setToolTip("Dismiss")
        close.setAutoRaise(True)
        close.clicked.connect(self.dismiss)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 4, 4, 4)
        layout.addWidget(self.label, 1)
        layout.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        self.level = ""
        self.hide()

    def show_message(self, message: str, level: str = "error") -> None:
        """Show a sentence; level is error, warning or info."""
        bg, border, fg = self._STYLES.get(level, self._STYLES["info"])
        self.level = level
        self.setStyleSheet(f"#banner {{ background: {bg}; border: 1px solid {border}; "
                           f"border-radius: 3px; }} #bannerLabel {{ color: {fg}; }}")
        self.label.setText(message)
        self.show()

    def dismiss(self) -> None:
        """Hide the banner."""
        self.hide()
        self.level = ""
        self.dismissed.emit()

    @property
    def text(self) -> str:
        """The sentence shown (empty when hidden)."""
        return "" if self.isHidden() else self.label.text()
