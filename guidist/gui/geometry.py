"""Window geometry against the screen: the window must fit the screen it opens on.

A geometry saved on a 1280×800 desktop and restored on a 1024×700 one put Start, Attach and the
status bar off-screen; and a window whose minimum size exceeded the screen could not be made
to fit at all. These functions keep both inside the available area (the screen minus panels).
"""

from __future__ import annotations

from PySide6.QtCore import QPoint, QRect, QSize
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QWidget

#: The size the window opens at when nothing is remembered (and the screen is big enough).
DEFAULT_SIZE = QSize(1280, 800)
#: The smallest window the layout is designed for: every panel usable, nothing overlapping.
MINIMUM_SIZE = QSize(760, 520)
#: Below this available width or height the bottom panels share one row of tabs.
COMPACT_BELOW = QSize(1400, 860)


def available_geometry(widget: QWidget | None = None) -> QRect:
    """The usable area of the screen the widget is on (or the primary screen)."""
    screen = widget.screen() if widget is not None else None
    screen = screen or QGuiApplication.primaryScreen()
    if screen is None:  # pragma: no cover - no screen at all
        return QRect(0, 0, DEFAULT_SIZE.width(), DEFAULT_SIZE.height())
    return screen.availableGeometry()


def fit_rect(rect: QRect, available: QRect) -> QRect:
    """rect shrunk to fit available, then moved inside it (kept where it was if it fits)."""
    size = rect.size().boundedTo(available.size())
    x = min(max(rect.x(), available.left()), available.right() + 1 - size.width())
    y = min(max(rect.y(), available.top()), available.bottom() + 1 - size.height())
    return QRect(QPoint(x, y), size)


def minimum_for(available: QRect) -> QSize:
    """The window's minimum size on this screen: the design minimum, never above the screen."""
    return MINIMUM_SIZE.boundedTo(available.size())


def default_rect(available: QRect) -> QRect:
    """Where a window with no remembered geometry opens: the default size, centred."""
    size = DEFAULT_SIZE.boundedTo(available.size())
    rect = QRect(QPoint(0, 0), size)
    rect.moveCenter(available.center())
    return fit_rect(rect, available)


def is_compact(available: QRect) -> bool:
    """True on screens too small to show workers and tasks side by side."""
    return available.width() < COMPACT_BELOW.width() or \
        available.height() < COMPACT_BELOW.height()
