"""Where the time goes: the Functions view (table and run-time histogram) and the Task stream
(what each worker slot ran in the last minute, like Dask's task stream).

Both draw from the Qt-free ``gui.stream`` models; each plot holds one pyqtgraph item for all
its bars, so the cost stays bounded whatever the task rate.
"""

from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, QPointF, Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from ...core.protocol import Snapshot
from ..columns import fill_first_column
from ..stream import FunctionRows, TaskStream
from ..style import base_color, muted, text_color


def _plot(name: str) -> pg.PlotWidget:
    w = pg.PlotWidget()
    w.setObjectName(name)
    w.setBackground(base_color())
    item = w.getPlotItem()
    for axis in ("left", "bottom"):
        ax = item.getAxis(axis)
        ax.setPen(pg.mkPen(muted()))
        ax.setTextPen(pg.mkPen(text_color()))
    item.setMenuEnabled(False)
    w.setMinimumHeight(140)
    return w


class FunctionsPanel(QWidget):
    """One row per task function (done, failed, p50, p95, max) and the selected one's run-time
    histogram on a log scale."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("functionsPanel")
        self.model = FunctionRows()
        self.table = QTableWidget(0, len(FunctionRows.HEADERS))
        self.table.setObjectName("functionsTable")
        self.table.setHorizontalHeaderLabels(FunctionRows.HEADERS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        # The numbers fit their cells (a handful of rows: cheap to measure); the names take
        # the rest, never less than they need (columns.fill_first_column).
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        header.sectionResized.connect(self._fit_names)
        self.table.viewport().installEventFilter(self)
        self.table.itemSelectionChanged.connect(self._draw_histogram)
        self.plot = _plot("functionsHistogram")
        item = self.plot.getPlotItem()
        item.setLabel("bottom", "run time (log10 s: -6 is 1 µs, 0 is 1 s)")
        item.setLabel("left", "runs")
        self._bars = pg.BarGraphItem(x0=[], x1=[], height=[], brush="#1f77b4", pen=None)
        self.plot.addItem(self._bars)
        self.title = QLabel("Select a function to see its run times")
        self.title.setObjectName("functionsHistogramTitle")
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.title)
        rl.addWidget(self.plot, 1)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.table)
        split.addWidget(right)
        split.setSizes([600, 400])
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(split)
        self._shown: tuple = ()
        self._latest: tuple = ()
        #: False while another dock tab covers it (the window says so).
        self.on_screen = True

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
        """The table was resized: the names column takes the new room (or gives it back)."""
        if event.type() == QEvent.Type.Resize and watched is self.table.viewport():
            self._fit_names()
        return super().eventFilter(watched, event)

    def _fit_names(self, column: int = -1, *_sizes: int) -> None:
        if column != 0:  # a number column changed (or the table's size); not our own resize
            fill_first_column(self.table)

    def set_snapshot(self, snap: Snapshot) -> None:
        """Refresh from a snapshot (only when the statistics changed, and only while shown:
        a tab behind another is filled when it is raised)."""
        self._latest = snap.functions
        if self.on_screen:
            self._fill()

    def set_on_screen(self, on: bool) -> None:
        """Its tab was raised (True: catch up now) or another tab covers it (False)."""
        self.on_screen = on
        if on:
            self._fill()

    def _fill(self) -> None:
        if self._latest == self._shown:
            return
        self._shown = functions = self._latest
        selected = self.selected_function()
        self.model.update(functions)
        rows = self.model.rows()
        self.table.blockSignals(True)
        self.table.setRowCount(len(rows))
        for r, cells in enumerate(rows):
            for c, text in enumerate(cells):
                cell = self.table.item(r, c)
                if cell is None:
                    cell = QTableWidgetItem()
                    if c:
                        cell.setTextAlignment(Qt.AlignmentFlag.AlignRight
                                              | Qt.AlignmentFlag.AlignVCenter)
                    self.table.setItem(r, c, cell)
                cell.setText(text)
        names = [cells[0] for cells in rows]
        if selected in names:
            self.table.selectRow(names.index(selected))
        elif names:
            self.table.selectRow(0)
        self.table.blockSignals(False)
        fill_first_column(self.table)  # a longer name may have come
        self._draw_histogram()

    def selected_function(self) -> str | None:
        """The function whose histogram is shown."""
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        cell = self.table.item(rows[0].row(), 0)
        return cell.text() if cell is not None else None

    def _draw_histogram(self) -> None:
        function = self.selected_function()
        lows, highs, counts = self.model.histogram(function or "")
        self._bars.setOpts(x0=lows, x1=highs, height=counts)
        f = self.model.find(function or "")
        if f is None:
            self.title.setText("Select a function to see its run times")
        else:
            self.title.setText(f"{f.function}: {f.measured} run(s) timed — "
                               f"p50 {self.model.rows()[self.model.stats.index(f)][3]}, "
                               f"p95 {self.model.rows()[self.model.stats.index(f)][4]}")


class TaskStreamPanel(QWidget):
    """One lane per worker slot, one bar per span (coloured by function, failures red), over
    the last minute; hovering a bar says what ran."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("taskStreamPanel")
        self.model = TaskStream()
        self.plot = _plot("taskStreamPlot")
        item = self.plot.getPlotItem()
        item.setLabel("bottom", "seconds ago")
        item.showGrid(x=True, y=False, alpha=0.2)
        item.setMouseEnabled(x=False, y=False)
        self._bars = pg.BarGraphItem(x0=[], x1=[], y0=[], y1=[], pen=None, brush=None)
        self.plot.addItem(self._bars)
        self.legend = QLabel("")
        self.legend.setObjectName("taskStreamLegend")
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.legend)
        layout.addWidget(self.plot, 1)
        self._now = time.time()
        self._stale = False  # spans came in while covered: draw when raised
        #: False while another dock tab covers it (the window says so).
        self.on_screen = True
        self.plot.scene().sigMouseMoved.connect(self._on_mouse_moved)

    def clear(self) -> None:
        """Another server: start afresh."""
        self.model.clear()
        self._draw()

    def set_snapshot(self, snap: Snapshot) -> None:
        """Add a snapshot's spans and redraw (one setOpts for every bar)."""
        names = {w.id: w.name or w.id for w in snap.workers}
        self.model.add(snap.spans, names)
        self._now = time.time()
        self.model.prune(self._now)
        # Drawn only while shown (it is a tab behind the workers by default): thousands of
        # bars five times a second for nobody. Raised, it draws at once.
        self._stale = not self.on_screen
        if not self._stale:
            self._draw()

    def set_on_screen(self, on: bool) -> None:
        """Its tab was raised (True: draw what came in meanwhile) or is covered (False)."""
        self.on_screen = on
        if on and self._stale:
            self._stale = False
            self._now = time.time()
            self.model.prune(self._now)
            self._draw()

    def _draw(self) -> None:
        bars = self.model.bars()
        now = self._now
        x0 = np.array([b.start - now for b in bars], dtype=float)
        # A span of trivial tasks may last microseconds: draw it at least visible.
        x1 = np.maximum(np.array([b.end - now for b in bars], dtype=float), x0 + 0.05)
        y = np.array([b.lane for b in bars], dtype=float)
        # (pyqtgraph 0.13 fails on an empty list of brushes: none then.)
        brushes = [pg.mkBrush(self.model.color_of(b)) for b in bars] or None
        self._bars.setOpts(x0=x0, x1=x1, y0=y - 0.4, y1=y + 0.4, brushes=brushes)
        item = self.plot.getPlotItem()
        # One label per lane while they fit (about 14 px each), else one per worker.
        labels = self.model.lane_labels(room=max(1, int(item.vb.height() // 14)))
        item.getAxis("left").setTicks([[(i, text) for i, text in enumerate(labels)]])
        item.setXRange(-self.model.horizon, 0, padding=0.01)
        item.setYRange(-0.6, max(len(labels), 1) - 0.4, padding=0)
        self.legend.setText("  ".join(f'<span style="color:{c}">■</span> {f}'
                                      for f, c in self.model.legend()) or
                            "Nothing ran in the last minute.")

    def _on_mouse_moved(self, pos: QPointF) -> None:
        vb = self.plot.getPlotItem().vb
        if not vb.sceneBoundingRect().contains(pos):
            return
        point = vb.mapSceneToView(pos)
        span = vb.viewRange()[0]
        tolerance = (span[1] - span[0]) / 400  # a few pixels, so a thin bar can be hovered
        bar = self.model.bar_at(point.x() + self._now, point.y(), tolerance)
        if bar is None:
            QToolTip.hideText()
            return
        QToolTip.showText(self.plot.mapToGlobal(self.plot.mapFromScene(pos)), bar.describe(),
                          self.plot)
