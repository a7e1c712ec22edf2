"""Small widgets the panels share: a status light, an inline error label, a banner, a scroll
area for panels, and a URL field that hides the password it holds."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QFocusEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QToolButton,
    QWidget,
)

from .style import LIGHT_COLORS, banner_colors, muted, state_color

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


class SteadyLabel(QLabel):
    """A word-wrapped label whose height, at a given width, only grows.

    A live count that gets a digit longer can wrap onto a second line and back at every poll;
    each change of height re-laid and resized everything below it (the three plots: 80 ms of
    relayout and repaint under full load). Keeping the tallest height seen per width costs at
    most one line of blank space and makes a new text a repaint of the label alone.
    """

    #: Widths remembered (a resize brings new ones; the old ones are forgotten).
    _KEEP = 32

    def __init__(self, sample: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._tallest: dict[int, int] = {}
        # A text as long as the longest one it will show: its height is the floor from the
        # start, so even the first long count does not re-lay what is below.
        self._sample = QLabel(sample)
        self._sample.setWordWrap(True)

    def setTextFormat(self, fmt: Qt.TextFormat) -> None:  # noqa: N802 (Qt name)
        """The format of the texts (and of the sample)."""
        super().setTextFormat(fmt)
        self._sample.setTextFormat(fmt)

    def heightForWidth(self, width: int) -> int:  # noqa: N802 (Qt name)
        """Qt's height for this text, or the tallest one this width has had."""
        h = super().heightForWidth(width)
        if width not in self._tallest:
            if len(self._tallest) > self._KEEP:
                self._tallest.clear()
            if self._sample.text():
                self._sample.setFont(self.font())
                h = max(h, self._sample.heightForWidth(width))
        h = max(h, self._tallest.get(width, 0))
        self._tallest[width] = h
        return h


class HintLabel(QLabel):
    """Secondary text (hints, captions, notes) in a colour derived from the palette, so it
    reads on a dark theme too."""

    def __init__(self, text: str = "", parent: QWidget | None = None,
                 extra_style: str = "") -> None:
        super().__init__(text, parent)
        self._extra = extra_style
        self._restyle()

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 (Qt name)
        """Follow the palette."""
        if event.type() == QEvent.Type.PaletteChange:
            self._restyle()
        super().changeEvent(event)

    def _restyle(self) -> None:
        style = f"color: {muted()}; {self._extra}"
        if style != self.styleSheet():
            self.setStyleSheet(style)


class NoticeLabel(QLabel):
    """A boxed sentence in a dialog (a warning), coloured like the banner of its level."""

    def __init__(self, text: str = "", level: str = "warning",
                 parent: QWidget | None = None) -> None:
        super().__init__(text, parent)
        self._level = level
        self.setWordWrap(True)
        self._restyle()

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 (Qt name)
        """Follow the palette."""
        if event.type() == QEvent.Type.PaletteChange:
            self._restyle()
        super().changeEvent(event)

    def _restyle(self) -> None:
        bg, border, fg = banner_colors(self._level)
        style = (f"background:{bg}; color:{fg}; border:1px solid {border}; border-radius:3px; "
                 "padding:6px;")
        if style != self.styleSheet():
            self.setStyleSheet(style)


class ErrorLabel(QLabel):
    """A red sentence under a form, hidden while empty; it marks the offending field."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.setStyleSheet(f"color: {state_color('failed')};")
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
    """A coloured strip across the top of the window for what needs attention now, with an
    optional button that does something about it."""

    dismissed = Signal()
    #: The action button was pressed.
    action_triggered = Signal()

    def __init__(self, parent: QWidget | None = None, name: str = "banner") -> None:
        super().__init__(parent)
        self.setObjectName(name)
        self.label = QLabel()
        self.label.setObjectName(f"{name}Label")
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.action_button = QPushButton()
        self.action_button.setObjectName(f"{name}ActionButton")
        self.action_button.hide()
        self.action_button.clicked.connect(self.action_triggered)
        self.close_button = QToolButton()
        self.close_button.setText("✕")
        self.close_button.setToolTip("Dismiss")
        self.close_button.setAutoRaise(True)
        self.close_button.clicked.connect(self.dismiss)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 4, 4, 4)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.action_button, 0, Qt.AlignmentFlag.AlignVCenter)
        layout.addWidget(self.close_button, 0, Qt.AlignmentFlag.AlignTop)
        self.level = ""
        self.hide()

    def show_message(self, message: str, level: str = "error", action: str = "",
                     closable: bool = True) -> None:
        """Show a sentence; level is error, warning or info; action names the button."""
        self.level = level
        self._restyle()
        self.label.setText(message)
        self.action_button.setText(action)
        self.action_button.setVisible(bool(action))
        self.close_button.setVisible(closable)
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

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 (Qt name)
        """Follow the palette (a dark theme gets dark banners)."""
        if event.type() == QEvent.Type.PaletteChange and self.level:
            self._restyle()
        super().changeEvent(event)

    def _restyle(self) -> None:
        bg, border, fg = banner_colors(self.level)
        name = self.objectName()
        style = (f"#{name} {{ background: {bg}; border: 1px solid {border}; "
                 f"border-radius: 3px; }} #{name}Label {{ color: {fg}; }}")
        if style != self.styleSheet():
            self.setStyleSheet(style)


MASK = "••••"


def mask_password(url: str) -> str:
    """url with its password replaced by dots (host, port and database stay readable)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if not password or "@" not in parts.netloc:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit((parts.scheme, f"{user}:{MASK}@{hostport}", parts.path, parts.query,
                       parts.fragment))


class SecretUrlEdit(QLineEdit):
    """A line edit for a URL that may hold a password: shown in full only while it is being
    edited; otherwise the password is dots. ``url()`` is always the full text."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._full = ""
        self.textChanged.connect(self._on_changed)
        self.set_url(text)

    def url(self) -> str:
        """The whole URL, password included."""
        return self._full.strip()

    def set_url(self, url: str) -> None:
        """Hold url; show it masked unless the field is being edited."""
        self._full = url
        shown = url if self.hasFocus() else mask_password(url)
        if shown == self.text():
            return
        self.setText(shown)
        self.setCursorPosition(0)

    def _on_changed(self, text: str) -> None:
        # Typed or set with setText: that is the URL now. The masked form is only a view.
        if text != mask_password(self._full) or MASK not in text:
            self._full = text
            if not self.hasFocus() and mask_password(text) != text:
                self.setText(mask_password(text))  # set from code: hide it at once
                self.setCursorPosition(0)

    def focusInEvent(self, event: QFocusEvent) -> None:  # noqa: N802 (Qt name)
        """Editing: show the real text."""
        if self.text() != self._full:
            self.setText(self._full)
        super().focusInEvent(event)

    def focusOutEvent(self, event: QFocusEvent) -> None:  # noqa: N802 (Qt name)
        """Done editing: hide the password again."""
        super().focusOutEvent(event)
        masked = mask_password(self._full)
        if masked != self.text():
            self.setText(masked)
            self.setCursorPosition(0)


def scrollable(widget: QWidget, name: str = "") -> QScrollArea:
    """widget in a frameless scroll area: when its space is smaller than the widget needs,
    it scrolls instead of squeezing its rows onto each other (and the window never has to
    grow to fit it)."""
    area = QScrollArea()
    if name:
        area.setObjectName(name)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setWidget(widget)
    return area
