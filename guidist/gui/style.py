"""Colours and small formatting helpers shared by the models, the plots and the panels."""

from __future__ import annotations

import time

from PySide6.QtGui import QColor

from ..core.protocol import TaskState, WorkerState

#: One colour per task state, used by the tasks table, the status bar and the plots.
STATE_COLORS: dict[str, str] = {
    TaskState.QUEUED.value: "#1f77b4",
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


def fmt_int(n: int | float) -> str:
    """Thousands separators, so a million reads as 1,000,000."""
    return f"{int(n):,}"


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


def shorten(text: str, limit: int = 120) -> str:
    """One line, at most limit characters, with an ellipsis when cut."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
