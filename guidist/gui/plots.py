"""Live plots of the server's per-second series, in pyqtgraph's own idiom.

As in pyqtgraph's ``scrollingPlots`` example: the data live in preallocated numpy ring buffers,
each new batch of points ends in exactly one ``setData`` per curve, curves clip to the view and
downsample by peak. The buffer holds an hour, so the 10-minute window and the CSV export never
need the server again.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QMenu,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..core.protocol import SERIES_FIELDS
from .style import STATE_COLORS, WORKERS_COLOR

#: Seconds of history kept (the broker keeps an hour too).
CAPACITY = 3600
#: The windows offered, in seconds.
WINDOWS: dict[str, int] = {"1 min": 60, "10 min": 600}

_COL = {name: i for i, name in enumerate(SERIES_FIELDS)}
#: Curves that are counts per second (smoothed on request); the others are gauges.
_RATES = ("done", "failed")
SMOOTH_SECONDS = 5


def _trailing_mean(y: np.ndarray, width: int) -> np.ndarray:
    """Mean of each point and the width-1 before it (fewer at the start)."""
    if len(y) == 0:
        return y
    c = np.cumsum(np.insert(y, 0, 0.0))
    idx = np.arange(1, len(y) + 1)
    lo = np.maximum(idx - width, 0)
    return (c[idx] - c[lo]) / (idx - lo)


class SeriesBuffer:
    """A fixed-size ring of per-second points, one column per SERIES_FIELDS entry.

    Every point is written twice, at i and i + capacity, so the newest ``n`` points are always
    one contiguous slice: reading never copies or rolls.
    """

    def __init__(self, capacity: int = CAPACITY, fields: Sequence[str] = SERIES_FIELDS) -> None:
        self.capacity = int(capacity)
        self.fields = tuple(fields)
        self._data = np.zeros((2 * self.capacity, len(self.fields)), dtype=np.float64)
        self._next = 0  # where the next point goes, in [0, capacity)
        self._size = 0
        self.last_t = -math.inf

    def __len__(self) -> int:
        return self._size

    def extend(self, points: Iterable[Sequence[float]]) -> int:
        """Append points newer than the last one (older or repeated seconds are ignored)."""
        added = 0
        width = len(self.fields)
        for p in points:
            t = p[0]
            if t <= self.last_t:
                continue
            row = np.zeros(width, dtype=np.float64)
            values = p[:width]
            row[:len(values)] = values  # a server without the newer fields: zeros there
            self._data[self._next] = row
            self._data[self._next + self.capacity] = row
            self._next = (self._next + 1) % self.capacity
            self._size = min(self._size + 1, self.capacity)
            self.last_t = t
            added += 1
        return added

    def view(self, last: int | None = None) -> np.ndarray:
        """The newest ``last`` points (all by default), oldest first: a view, not a copy."""
        n = self._size if last is None else max(0, min(int(last), self._size))
        end = self._next if self._size < self.capacity else self._next + self.capacity
        return self._data[end - n:end]

    def column(self, name: str, last: int | None = None) -> np.ndarray:
        """One field of the newest points."""
        return self.view(last)[:, self.fields.index(name)]

    def clear(self) -> None:
        """Forget every point."""
        self._next = self._size = 0
        self.last_t = -math.inf


def _nice_ceiling(value: float) -> float:
    """The next of 1, 2, 2.5, 5 × 10^k at or above value (at least 2): steady axis ranges."""
    value = max(value, 2.0)
    exp = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * exp >= value:
            return float(step * exp)
    return float(10 * exp)


class _AgoAxis(pg.AxisItem):
    """Seconds before now ("-1:30", "-20 s", "now"): the x range stays fixed, so the ticks are
    computed and drawn once, not every second as a clock axis scrolling with the data was
    (measured: most of a 30-45 ms redraw burst once a second)."""

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:
        out = []
        for v in values:
            s = int(round(-v))
            out.append("now" if s == 0 else f"-{s // 60}:{s % 60:02d}" if s >= 60 else f"-{s} s")
        return out


def _plot_widget(name: str, left: str, time_axis: bool = True) -> pg.PlotWidget:
    w = pg.PlotWidget(background="w", axisItems={"bottom": _AgoAxis("bottom")})
    w.setObjectName(name)
    item = w.getPlotItem()
    item.setClipToView(True)
    item.setDownsampling(auto=True, mode="peak")
    item.showGrid(x=True, y=True, alpha=0.15)
    item.setMenuEnabled(False)
    item.hideButtons()
    for axis in ("left", "bottom"):
        ax = item.getAxis(axis)
        ax.setPen(pg.mkPen("#8a8a8a"))
        ax.setTextPen(pg.mkPen("#333333"))
    item.getAxis("left").setWidth(48)
    item.setLabel("left", left, color="#333333")
    if not time_axis:
        item.hideAxis("bottom")  # the plots share the time axis of the bottom one
    legend = item.addLegend(offset=(6, 2), labelTextColor="#333333",
                            brush=pg.mkBrush(255, 255, 255, 210), colCount=2)
    legend.setZValue(10)
    item.setMouseEnabled(x=False, y=False)
    # Y ranges are set by redraw() from the data, rounded up so they rarely change: pyqtgraph's
    # auto-range recomputed bounds and re-laid the axes on every tick (part of a measured
    # 30-45 ms redraw once a second).
    item.enableAutoRange(axis="y", enable=False)
    item.getViewBox().setLimits(yMin=0)
    w.setMinimumHeight(70)
    w.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
    return w


class LivePlots(QWidget):
    """Throughput, queue depth and workers over the last 1 or 10 minutes."""

    #: bool: plots paused (True) or following the data again (False).
    paused_changed = Signal(bool)
    #: The person chose Export → PNG or CSV (the window asks where to save).
    export_png_requested = Signal()
    export_csv_requested = Signal()

    def __init__(self, parent: QWidget | None = None, capacity: int = CAPACITY) -> None:
        super().__init__(parent)
        self.buffer = SeriesBuffer(capacity)
        self.window_seconds = WINDOWS["1 min"]
        self._paused = False

        self.window_combo = QComboBox()
        self.window_combo.setObjectName("plotWindowCombo")
        self.window_combo.addItems(list(WINDOWS))
        self.window_combo.setToolTip("How much history the plots show")
        self.window_combo.currentTextChanged.connect(self._on_window_changed)
        self.pause_button = QToolButton()
        self.pause_button.setObjectName("plotPauseButton")
        self.pause_button.setText("Pause")
        self.pause_button.setCheckable(True)
        self.pause_button.setToolTip("Freeze the plots to look closely (data keep coming in); "
                                     "while paused you can zoom with the mouse")
        self.pause_button.toggled.connect(self.set_paused)
        self.smooth_button = QToolButton()
        self.smooth_button.setObjectName("plotSmoothButton")
        self.smooth_button.setText("Smooth")
        self.smooth_button.setCheckable(True)
        self.smooth_button.setChecked(True)
        self.smooth_button.setToolTip(f"Show throughput as a {SMOOTH_SECONDS}-second moving "
                                      "average (workers report in batches, so raw per-second "
                                      "counts are spiky); queue depth is never smoothed")
        self.smooth_button.toggled.connect(lambda _on: self.redraw())
        self.export_button = QToolButton()
        self.export_button.setObjectName("plotExportButton")
        self.export_button.setText("Export")
        self.export_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.export_button.setToolTip("Save the plots as an image, or the data as CSV")
        export_menu = QMenu(self.export_button)
        export_menu.addAction("Plots as PNG image…", self.export_png_requested.emit)
        export_menu.addAction("Series as CSV (last hour)…", self.export_csv_requested.emit)
        self.export_button.setMenu(export_menu)
        self.rate_label = QLabel()
        self.rate_label.setObjectName("plotRateLabel")
        self.rate_label.setTextFormat(Qt.TextFormat.RichText)

        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        bar.addWidget(self.rate_label, 1)
        bar.addWidget(QLabel("Window"))
        bar.addWidget(self.window_combo)
        bar.addWidget(self.smooth_button)
        bar.addWidget(self.pause_button)
        bar.addWidget(self.export_button)

        self.throughput_plot = _plot_widget("throughputPlot", "throughput /s", False)
        self.queue_plot = _plot_widget("queueDepthPlot", "queue depth", False)
        self.workers_plot = _plot_widget("workersPlot", "workers")
        self.queue_plot.setXLink(self.throughput_plot)
        self.workers_plot.setXLink(self.throughput_plot)
        self._y_tops: dict[str, float] = {}
        self._x_window = 0  # the x range last set (seconds); set again only when it changes
        self.curves: dict[str, Any] = {
            "done": self._curve(self.throughput_plot, "done per second", STATE_COLORS["done"]),
            "failed": self._curve(self.throughput_plot, "failed per second",
                                  STATE_COLORS["failed"]),
            "queued": self._curve(self.queue_plot, "queued", STATE_COLORS["queued"], fill=True),
            "claimed": self._curve(self.queue_plot, "claimed (not started)",
                                   STATE_COLORS["claimed"]),
            "running": self._curve(self.queue_plot, "running", STATE_COLORS["running"]),
            "workers": self._curve(self.workers_plot, "workers", WORKERS_COLOR),
        }

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(bar)
        self.plots_area = QWidget()
        plots_layout = QVBoxLayout(self.plots_area)
        plots_layout.setContentsMargins(0, 0, 0, 0)
        plots_layout.setSpacing(2)
        plots_layout.addWidget(self.throughput_plot, 5)
        plots_layout.addWidget(self.queue_plot, 5)
        plots_layout.addWidget(self.workers_plot, 3)
        layout.addWidget(self.plots_area, 1)
        self.redraw()

    @staticmethod
    def _curve(widget: pg.PlotWidget, name: str, color: str, fill: bool = False) -> Any:
        pen = pg.mkPen(color, width=2)
        kwargs: dict[str, Any] = {"pen": pen, "name": name}
        if fill:
            c = pg.mkColor(color)
            c.setAlpha(40)
            kwargs.update(fillLevel=0, brush=pg.mkBrush(c))
        curve = widget.getPlotItem().plot([], [], **kwargs)
        curve.setClipToView(True)
        curve.setDownsampling(auto=True, method="peak")
        return curve

    # -- API

    @property
    def paused(self) -> bool:
        """True while the plots are frozen."""
        return self._paused

    def add_points(self, points: Sequence[Sequence[float]]) -> int:
        """Append the new per-second points of a snapshot and redraw (unless paused)."""
        added = self.buffer.extend(points)
        if added and not self._paused:
            self.redraw()
        return added

    def redraw(self) -> None:
        """One setData per curve over the visible window."""
        n = self.window_seconds
        smooth = self.smooth_button.isChecked()
        # Smoothing needs the seconds just before the window too.
        data = self.buffer.view(n + (SMOOTH_SECONDS - 1 if smooth else 0))
        shown = data[-n:]
        # x is seconds before the end of the newest second (the pyqtgraph scrolling-plot
        # idiom): the curves move, the axes stay put.
        t = shown[:, _COL["t"]] + 0.5  # a point stands for the middle of its second
        if len(t):
            t = t - (t[-1] + 0.5)
        tops: dict[str, float] = {}
        for name, curve in self.curves.items():
            y = data[:, _COL[name]]
            if smooth and name in _RATES:
                y = _trailing_mean(y, SMOOTH_SECONDS)
            y = y[-n:]
            curve.setData(t, y)
            tops[name] = float(np.nanmax(y)) if len(y) else 0.0
        if self._x_window != n:
            self._x_window = n
            self.throughput_plot.getPlotItem().setXRange(-n, 0, padding=0)
        self._set_y_top(self.throughput_plot,
                        _nice_ceiling(1.1 * max(tops["done"], tops["failed"])))
        self._set_y_top(self.queue_plot, _nice_ceiling(1.1 * max(tops["queued"],
                                                                 tops["claimed"],
                                                                 tops["running"])))
        self._set_y_top(self.workers_plot, _nice_ceiling(tops["workers"] + 1.0))
        self._update_rate_label()

    def _set_y_top(self, plot: pg.PlotWidget, top: float) -> None:
        """Set a plot's Y range only when it changes (each change re-lays its axes)."""
        name = plot.objectName()
        if self._y_tops.get(name) != top:
            self._y_tops[name] = top
            plot.getPlotItem().setYRange(0, top, padding=0)

    def set_window(self, seconds: int) -> None:
        """Show the last `seconds` of history (60 or 600)."""
        self.window_seconds = int(seconds)
        for label, value in WINDOWS.items():
            if value == self.window_seconds and self.window_combo.currentText() != label:
                self.window_combo.setCurrentText(label)
        self.redraw()

    def set_paused(self, paused: bool) -> None:
        """Freeze (True) or follow the data again (False)."""
        if paused == self._paused:
            return
        self._paused = paused
        self.pause_button.setChecked(paused)
        self.pause_button.setText("Resume" if paused else "Pause")
        for w in (self.throughput_plot, self.queue_plot, self.workers_plot):
            w.getPlotItem().setMouseEnabled(x=paused, y=paused)
        if not paused:
            self._y_tops.clear()  # the user may have zoomed: set the ranges again
            self._x_window = 0
            self.redraw()
        self.paused_changed.emit(paused)

    def clear(self) -> None:
        """Forget the history (a different server is shown)."""
        self.buffer.clear()
        self.redraw()

    def export_png(self, path: str | Path) -> bool:
        """Save the three plots as they are on screen."""
        return self.plots_area.grab().save(str(path), "PNG")

    def export_csv(self, path: str | Path) -> int:
        """Write every point held (up to an hour) with a header row; returns the rows written."""
        data = self.buffer.view()
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(self.buffer.fields)
            for row in data:
                writer.writerow([int(v) for v in row])
        return len(data)

    # -- internals

    def _on_window_changed(self, label: str) -> None:
        if label in WINDOWS:
            self.set_window(WINDOWS[label])

    def _update_rate_label(self) -> None:
        data = self.buffer.view(10)
        if len(data) == 0:
            self.rate_label.setText("<span style='color:#777'>No data yet: start or attach to "
                                    "a server.</span>")
            return
        last = data[-1]
        done = data[:, _COL["done"]].mean()
        failed = data[:, _COL["failed"]].mean()
        paused = " <b style='color:#e8850c'>(paused)</b>" if self._paused else ""
        self.rate_label.setText(
            f"<b style='color:{STATE_COLORS['done']}'>{done:,.0f}</b> done/s · "
            f"<b style='color:{STATE_COLORS['failed']}'>{failed:,.1f}</b> failed/s "
            f"<span style='color:#777'>(10 s avg)</span> · "
            f"<b style='color:{STATE_COLORS['queued']}'>{int(last[_COL['queued']]):,}</b> queued"
            f" · <b style='color:{STATE_COLORS['claimed']}'>{int(last[_COL['claimed']]):,}</b>"
            f" claimed"
            f" · <b style='color:{STATE_COLORS['running']}'>{int(last[_COL['running']]):,}</b>"
            f" running · <b style='color:{WORKERS_COLOR}'>{int(last[_COL['workers']])}</b> "
            f"workers{paused}")
