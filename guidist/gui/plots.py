"""Live plots of the server's per-second series, in pyqtgraph's own idiom.

As in pyqtgraph's ``scrollingPlots`` example: the data live in preallocated numpy ring buffers,
each new batch of points ends in exactly one ``setData`` per curve, curves clip to the view and
downsample by peak. The buffer holds an hour, so the 10-minute window and the CSV export never
need the server again.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QPoint, Qt, Signal
from PySide6.QtGui import QColor
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

from ..core.protocol import SERIES_FIELDS, Snapshot
from .style import (
    STATE_COLORS,
    WORKERS_COLOR,
    base_color,
    fmt_int,
    fmt_si,
    muted,
    state_color,
    text_color,
)
from .widgets import SteadyLabel

#: Seconds of history kept (the broker keeps an hour too).
CAPACITY = 3600
#: The windows offered, in seconds.
WINDOWS: dict[str, int] = {"1 min": 60, "10 min": 600}

_COL = {name: i for i, name in enumerate(SERIES_FIELDS)}
#: Curves that are counts per second (smoothed on request); the others are gauges.
_RATES = ("done", "failed")
#: As long as the header gets under full load (bold as there): its height is kept from the
#: start, so the first big counts do not re-lay the plots below it (a longer text still may,
#: once).
_RATE_SAMPLE = ("<b>123,456</b> done/s · <b>0.0</b> failed/s · <b>1,234,567</b> queued · "
                "<b>1,234</b> claimed · <b>12</b> running · <b>2</b> workers")
#: The curves of each plot, drawn together (one plot per step, see LivePlots.draw_steps).
_PLOT_CURVES: dict[str, tuple[str, ...]] = {
    "throughput": ("done", "failed"), "queue": ("queued", "claimed", "running"),
    "workers": ("workers",)}
#: Smoothing: a centred Gaussian of this width (seconds, one sigma), cut at 3 sigma.
SMOOTH_SIGMA = 1.0
#: Seconds of data beyond the window the smoothing kernel reaches.
SMOOTH_REACH = 3


def smooth(y: np.ndarray, sigma: float = SMOOTH_SIGMA) -> np.ndarray:
    """A centred Gaussian moving average, renormalised where the data end.

    Workers report in batches, so raw per-second counts are spiky. A 5-second trailing mean
    turned a burst shorter than a second into a 5-second plateau that began at the burst;
    this kernel keeps a burst where it happened, as a peak that falls off within a couple of
    seconds, and keeps the area (the number of tasks) the same.
    """
    if len(y) == 0 or sigma <= 0:
        return y
    reach = int(math.ceil(3 * sigma))
    offsets = np.arange(-reach, reach + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    total = np.convolve(y, kernel, mode="full")[reach:reach + len(y)]
    weight = np.convolve(np.ones(len(y)), kernel, mode="full")[reach:reach + len(y)]
    return total / weight


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


class _SiAxis(pg.AxisItem):
    """Counts with SI prefixes (100k, 1.5M): at high rates the plain numbers overlapped the
    axis title or were dropped."""

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:
        return [fmt_si(v * scale) for v in values]


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
    w = pg.PlotWidget(axisItems={"bottom": _AgoAxis("bottom"), "left": _SiAxis("left")})
    w.setObjectName(name)
    item = w.getPlotItem()
    item.setClipToView(True)
    item.setDownsampling(auto=True, mode="peak")
    item.showGrid(x=True, y=True, alpha=0.15)
    item.setMenuEnabled(False)
    item.hideButtons()
    item.getAxis("left").setWidth(48)
    if left:
        item.setLabel("left", left)
    if not time_axis:
        item.hideAxis("bottom")  # the plots share the time axis of the bottom one
    legend = item.addLegend(offset=(6, 2), colCount=2)
    legend.setZValue(10)
    _apply_palette(w)
    item.setMouseEnabled(x=False, y=False)
    # Y ranges are set by redraw() from the data, rounded up so they rarely change: pyqtgraph's
    # auto-range recomputed bounds and re-laid the axes on every tick (part of a measured
    # 30-45 ms redraw once a second).
    item.enableAutoRange(axis="y", enable=False)
    item.getViewBox().setLimits(yMin=0)
    w.setMinimumHeight(52)  # three fit beside the submit form on a 700 px screen
    w.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
    return w


def _apply_palette(w: pg.PlotWidget) -> None:
    """Background, axes, labels and legend from the application palette (light or dark)."""
    fg, grey, bg = text_color(), muted(), base_color()
    w.setBackground(bg)
    item = w.getPlotItem()
    for axis in ("left", "bottom"):
        ax = item.getAxis(axis)
        ax.setPen(pg.mkPen(grey))
        ax.setTextPen(pg.mkPen(fg))
    label = item.getAxis("left").labelText
    if label:
        item.setLabel("left", label, color=fg)
    legend = item.legend
    if legend is not None:
        fill = QColor(bg)
        fill.setAlpha(210)
        legend.setBrush(pg.mkBrush(fill))
        legend.setLabelTextColor(fg)
        for _, text in legend.items:
            text.setText(text.text, color=fg)


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
        self._live: Snapshot | None = None  # what the header's counts say (the tiles' too)
        self._detached = False  # show_live(None): there is no server any more

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
        self.smooth_button.setToolTip("Smooth throughput over about 2 seconds around each "
                                      "point (workers report in batches, so raw per-second "
                                      "counts are spiky); a short burst stays a short peak. "
                                      "Queue depth is never smoothed")
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
        self.rate_label = SteadyLabel(_RATE_SAMPLE)
        self.rate_label.setObjectName("plotRateLabel")
        self.rate_label.setTextFormat(Qt.TextFormat.RichText)
        # Wraps rather than setting the window's minimum width (it did: 1085 px).
        self.rate_label.setWordWrap(True)
        self.rate_label.setMinimumWidth(120)

        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        bar.addWidget(self.rate_label, 1)
        bar.addWidget(QLabel("Window"))
        bar.addWidget(self.window_combo)
        bar.addWidget(self.smooth_button)
        bar.addWidget(self.pause_button)
        bar.addWidget(self.export_button)

        # Short axis titles: on a short screen a plot is ~60 px tall and "throughput /s"
        # was cut; the legends say the rest.
        self.throughput_plot = _plot_widget("throughputPlot", "tasks/s", False)
        self.queue_plot = _plot_widget("queueDepthPlot", "tasks", False)
        self.workers_plot = _plot_widget("workersPlot", "")  # its legend says "workers"
        self.queue_plot.setXLink(self.throughput_plot)
        self.workers_plot.setXLink(self.throughput_plot)
        self._y_tops: dict[str, float] = {}
        self._x_window = 0  # the x range last set (seconds); set again only when it changes
        self._drawn: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # each curve's last data
        self.curves: dict[str, Any] = {
            "done": self._curve(self.throughput_plot, "done per second", STATE_COLORS["done"]),
            "failed": self._curve(self.throughput_plot, "failed per second",
                                  STATE_COLORS["failed"]),
            "queued": self._curve(self.queue_plot, "queued", STATE_COLORS["queued"],
                                  fill=True),
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
        self.plots_area.setObjectName("plotsArea")
        self.plots_area.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.plots_area.customContextMenuRequested.connect(self._on_context_menu)
        for w in (self.throughput_plot, self.queue_plot, self.workers_plot):
            w.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
            w.customContextMenuRequested.connect(
                lambda pos, w=w: self._on_context_menu(w.mapTo(self.plots_area, pos)))
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
        item = widget.getPlotItem()
        kwargs: dict[str, Any] = {"pen": pen}
        if fill:
            c = pg.mkColor(color)
            c.setAlpha(40)
            kwargs.update(fillLevel=0, brush=pg.mkBrush(c))
        curve = item.plot([], [], **kwargs)
        curve.setClipToView(True)
        curve.setDownsampling(auto=True, method="peak")
        # The legend gets a plain line: for a filled curve pyqtgraph draws its fill as an
        # odd triangle in the legend.
        item.legend.addItem(pg.PlotDataItem(pen=pen), name)
        return curve

    # -- API

    @property
    def paused(self) -> bool:
        """True while the plots are frozen."""
        return self._paused

    def add_points(self, points: Sequence[Sequence[float]], draw: bool = True) -> int:
        """Append the new per-second points of a snapshot and redraw (unless paused, or
        draw is False: the caller then runs ``draw_steps()`` when it suits it)."""
        added = self.buffer.extend(points)
        if added and draw and not self._paused:
            self.redraw()
        return added

    def redraw(self) -> None:
        """One setData per changed curve over the visible window."""
        for step in self._steps():
            step()

    def draw_steps(self) -> list[Callable[[], None]]:
        """The redraw as one step per plot (none while paused): each plot's view is painted
        in an update request of its own, so run apart they never add up to one long one."""
        return [] if self._paused else self._steps()

    def _steps(self) -> list[Callable[[], None]]:
        return [lambda: self._draw_plot("throughput"), lambda: self._draw_plot("queue"),
                lambda: self._draw_plot("workers"), self._update_rate_label]

    def _draw_plot(self, which: str) -> None:
        """setData for the curves of one plot whose data changed, and its y range."""
        n = self.window_seconds
        smoothing = self.smooth_button.isChecked()
        # Smoothing needs the seconds just before the window too.
        data = self.buffer.view(n + (SMOOTH_REACH if smoothing else 0))
        shown = data[-n:]
        # x is seconds before the end of the newest second (the pyqtgraph scrolling-plot
        # idiom): the curves move, the axes stay put.
        t = shown[:, _COL["t"]] + 0.5  # a point stands for the middle of its second
        if len(t):
            t = t - (t[-1] + 0.5)
        top = 0.0
        for name in _PLOT_CURVES[which]:
            y = data[:, _COL[name]]
            if smoothing and name in _RATES:
                y = smooth(y)
            y = y[-n:]
            last = self._drawn.get(name)
            # A full window of an unchanged gauge (workers, an empty queue) is the same
            # picture every second: no setData, no repaint.
            if last is None or not (np.array_equal(last[0], t) and np.array_equal(last[1], y)):
                self.curves[name].setData(t, y, skipFiniteCheck=True)
                self._drawn[name] = (t.copy(), y.copy())
            top = max(top, float(np.nanmax(y)) if len(y) else 0.0)
        if which == "throughput":
            if self._x_window != n:
                self._x_window = n
                self.throughput_plot.getPlotItem().setXRange(-n, 0, padding=0)
            self._set_y_top(self.throughput_plot, _nice_ceiling(1.1 * top))
        elif which == "queue":
            self._set_y_top(self.queue_plot, _nice_ceiling(1.1 * top))
        else:
            self._set_y_top(self.workers_plot, _nice_ceiling(top + 1.0))

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
            self._drawn.clear()
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

    def show_live(self, snap: Snapshot | None) -> None:
        """The snapshot the header's counts come from (the same numbers as the tiles), or
        None once there is no server."""
        self._live = snap
        self._detached = snap is None
        self._update_rate_label()

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 (Qt name)
        """Follow a palette change (light or dark theme)."""
        if event.type() == QEvent.Type.PaletteChange:
            for w in (self.throughput_plot, self.queue_plot, self.workers_plot):
                _apply_palette(w)
            self._update_rate_label()
        super().changeEvent(event)

    def context_menu(self) -> QMenu:
        """The plots' right-click menu: export, pause, smooth, window."""
        menu = QMenu(self)
        menu.setObjectName("plotsContextMenu")
        menu.addAction("Export plots as PNG…", self.export_png_requested.emit)
        menu.addAction("Export series as CSV (last hour)…", self.export_csv_requested.emit)
        menu.addSeparator()
        pause = menu.addAction("Resume" if self._paused else "Pause")
        pause.triggered.connect(lambda: self.set_paused(not self._paused))
        smooth_action = menu.addAction("Smooth")
        smooth_action.setCheckable(True)
        smooth_action.setChecked(self.smooth_button.isChecked())
        smooth_action.toggled.connect(self.smooth_button.setChecked)
        for label, seconds in WINDOWS.items():
            action = menu.addAction(f"Last {label}")
            action.setCheckable(True)
            action.setChecked(seconds == self.window_seconds)
            action.triggered.connect(lambda _=False, s=seconds: self.set_window(s))
        return menu

    def _on_context_menu(self, pos: QPoint) -> None:
        self.context_menu().exec(self.plots_area.mapToGlobal(pos))

    def _update_rate_label(self) -> None:
        grey = muted()
        snap = self._live
        if (snap is None and self._detached) or not len(self.buffer):
            what = "No server: start or attach to one." if not len(self.buffer) else \
                "No server. The plots keep the last one’s history."
            self.rate_label.setText(f"<span style='color:{grey}'>{what}</span>")
            return
        data = self.buffer.view(10)
        paused = f" <b style='color:{state_color('running')}'>(paused)</b>" \
            if self._paused else ""
        rates = ""
        if len(data):
            done = data[:, _COL["done"]].mean()
            failed = data[:, _COL["failed"]].mean()
            rates = (f"<b style='color:{state_color('done')}'>{done:,.0f}</b> done/s · "
                     f"<b style='color:{state_color('failed')}'>{failed:,.1f}</b> failed/s · ")
            self.rate_label.setToolTip("Rates: the mean of the last 10 seconds. Queued, "
                                       "running and workers: now, as in Totals.")
        if snap is None:
            self.rate_label.setText(rates.removesuffix(" · ") + paused)
            return
        # Counts from the snapshot, as the tiles show them: the last one-second point of the
        # series lagged them by up to a second (672,991 against 491,991 queued).
        c = snap.count
        self.rate_label.setText(
            f"{rates}<b style='color:{state_color('queued')}'>{fmt_int(c('queued'))}</b>"
            f" queued · <b style='color:{state_color('claimed')}'>{fmt_int(c('claimed'))}</b>"
            f" claimed · <b style='color:{state_color('running')}'>{fmt_int(c('running'))}</b>"
            f" running · <b style='color:{state_color(WORKERS_COLOR)}'>"
            f"{snap.connected_workers}</b> workers{paused}")
