"""Colours and small formatting helpers shared by the models, the plots and the panels."""

from __future__ import annotations

import time

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

from ..core.protocol import TaskState, WorkerState
from .text import fmt_int, plural, shorten  # noqa: F401  (re-exported: the panels use them)

#: One colour per task state, used by the tasks table, the status bar and the plots.
STATE_COLORS: dict[str, str] = {
    TaskState.QUEUED.value: "#1f77b4",
    TaskState.CLAIMED.value: "#b8a038",
    TaskState.RUNNING.value: "#e8850c",
    TaskState.DONE.value: "#2e8b3e",
    TaskState.FAILED.value: "#d62728",
    TaskState.DEAD.value: "#8c1c13",
    TaskState.CANCELLED.value: "#7f7f7f",
}

WORKER_COLORS: dict[str, str] = {
    WorkerState.IDLE.value: "#5b7083",
    WorkerState.BUSY.value: "#2e8b3e",
    WorkerState.STOPPING.value: "#e8850c",
    WorkerState.OFFLINE.value: "#d62728",
}

#: Event kinds (see protocol.Event) that deserve a colour in the log.
EVENT_COLORS: dict[str, str] = {
    "worker-joined": "#2e8b3e",
    "worker-left": "#5b7083",
    "worker-offline": "#e8850c",
    "requeued": "#e8850c",
    "dead": "#8c1c13",
    "failed": "#d62728",
    "error": "#d62728",
    "control": "#1f77b4",
}

WORKERS_COLOR = "#7b3fa0"

LIGHT_COLORS = {"off": "#9e9e9e", "busy": "#f0a30a", "ok": "#2ea043", "bad": "#d62728"}


def qcolor(name: str) -> QColor:
    """A QColor from a "#rrggbb" string."""
    return QColor(name)


# ---------------------------------------------------------------------- the palette
# Colours of text and backgrounds are derived from the palette, so a dark desktop theme gives
# dark plots, tiles and hints; the state colours stay (they are lightened on a dark base).


def palette() -> QPalette:
    """The application's palette (a default one before a QApplication exists)."""
    app = QApplication.instance()
    return app.palette() if isinstance(app, QApplication) else QPalette()


def is_dark(pal: QPalette | None = None) -> bool:
    """True when the window background is darker than its text."""
    pal = pal or palette()
    return pal.color(QPalette.ColorRole.Window).lightness() < \
        pal.color(QPalette.ColorRole.WindowText).lightness()


def mix(a: QColor, b: QColor, t: float) -> QColor:
    """The colour a fraction t of the way from a to b."""
    return QColor(round(a.red() + (b.red() - a.red()) * t),
                  round(a.green() + (b.green() - a.green()) * t),
                  round(a.blue() + (b.blue() - a.blue()) * t))


def muted(pal: QPalette | None = None) -> str:
    """Secondary text (hints, captions): between the text and the background."""
    pal = pal or palette()
    return mix(pal.color(QPalette.ColorRole.WindowText), pal.color(QPalette.ColorRole.Window),
               0.42).name()


def text_color(pal: QPalette | None = None) -> str:
    """The window's text colour."""
    return (pal or palette()).color(QPalette.ColorRole.WindowText).name()


def base_color(pal: QPalette | None = None) -> str:
    """The background of views (tables, plots)."""
    return (pal or palette()).color(QPalette.ColorRole.Base).name()


def tile_background(pal: QPalette | None = None) -> str:
    """A panel just off the window background (the totals tiles)."""
    pal = pal or palette()
    window = pal.color(QPalette.ColorRole.Window)
    return (window.lighter(118) if is_dark(pal) else window.lighter(104)).name()


def state_color(name: str, pal: QPalette | None = None) -> str:
    """A state's colour, lightened on a dark background so it stays readable."""
    color = QColor(STATE_COLORS.get(name) or EVENT_COLORS.get(name) or name)
    if is_dark(pal) and color.lightness() < 140:
        color = color.lighter(165)
    return color.name()


#: Banner colours per level: (light background, border, light text) for a light palette.
BANNER_LEVELS = {
    "error": ("#fdecea", "#d62728", "#611a15"),
    "warning": ("#fff4e5", "#e8850c", "#663c00"),
    "info": ("#e8f1fb", "#1f77b4", "#0d3c61"),
}


def banner_colors(level: str, pal: QPalette | None = None) -> tuple[str, str, str]:
    """(background, border, text) of a banner level; a dark palette gets a dark tint."""
    bg, border, fg = BANNER_LEVELS.get(level, BANNER_LEVELS["info"])
    pal = pal or palette()
    if not is_dark(pal):
        return bg, border, fg
    window = pal.color(QPalette.ColorRole.Window)
    return (mix(window, QColor(border), 0.22).name(), border,
            mix(QColor(border), QColor("#ffffff"), 0.6).name())


def fmt_si(value: float) -> str:
    """A number with an SI prefix for axes: 950, 1.5k, 100k, 2.5M."""
    v = abs(value)
    for factor, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if v >= factor:
            text = f"{value / factor:.1f}".rstrip("0").rstrip(".")
            return text + prefix
    if v >= 10 or v == int(v):
        return f"{value:.0f}"
    return f"{value:.1f}"


def fmt_clock(t: float | None) -> str:
    """Wall-clock time of day, or an empty string."""
    if not t:
        return ""
    return time.strftime("%H:%M:%S", time.localtime(t))


def fmt_duration(seconds: float | None) -> str:
    """A short human duration: 850 ms, 12.3 s, 4 min 05 s."""
    if seconds is None or seconds < 0:
        return ""
    if seconds < 0.001:
        return f"{seconds * 1e6:.0f} µs"  # trivial tasks: "0 ms" would say nothing
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def fmt_ago(seconds: float) -> str:
    """How long ago, for heartbeats: "0.4 s ago", "3 min ago"."""
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f} s ago"
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.0f} h ago"
