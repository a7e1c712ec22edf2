"""The jobs panel: one row per job with a progress bar, its rate, ETA and state; selecting a
job filters the tasks table to it; cancel, retry failed and export results act on it."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import (
    QItemSelectionModel,
    QModelIndex,
    QPersistentModelIndex,
    QRect,
    Qt,
    Signal,
)
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from ...core.protocol import Job
from ..jobs_model import JobProgress, JobsModel
from ..style import STATE_COLORS, qcolor

_REMAINING_COLOR = "#d7dde3"


class ProgressDelegate(QStyledItemDelegate):
    """Draws a job's progress as one bar: done (green), failed (red), remaining (grey)."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem,
              index: QModelIndex | QPersistentModelIndex) -> None:
        progress = index.data(JobsModel.ProgressRole)
        if not isinstance(progress, JobProgress):
            super().paint(painter, option, index)
            return
        rect = option.rect.adjusted(3, 4, -3, -4)  # type: ignore[attr-defined]
        painter.save()
        x = rect.x()
        for share, color in ((progress.done, STATE_COLORS["done"]),
                             (progress.failed, STATE_COLORS["failed"]),
                             (progress.remaining, _REMAINING_COLOR)):
            width = round(rect.width() * share)
            if width > 0:
                painter.fillRect(QRect(x, rect.y(), width, rect.height()), qcolor(color))
                x += width
        if x < rect.right():  # rounding: the rest is what is left to run
            painter.fillRect(QRect(x, rect.y(), rect.right() - x + 1, rect.height()),
                             qcolor(_REMAINING_COLOR))
        painter.setPen(qcolor("#1b1b1b"))
        painter.drawText(rect, int(Qt.AlignmentFlag.AlignCenter), progress.text)
        painter.restore()


class JobsPanel(QWidget):
    """Every job the server keeps, newest first, and what can be done with one."""

    #: Job | None: the selected job (None: none, so the tasks table shows every task).
    job_selected = Signal(object)
    #: Job: cancel its queued tasks.
    cancel_requested = Signal(object)
    #: Job: queue its failed and dead tasks again.
    retry_requested = Signal(object)
    #: Job: write its results to a file.
    export_requested = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("jobsPanel")
        self.model = JobsModel(self)
        self._enabled: bool | None = None
        self._selected: int | None = None

        self.table = QTableView()
        self.table.setObjectName("jobsTable")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.setItemDelegateForColumn(JobsModel.COL_PROGRESS, ProgressDelegate(self))
        header = self.table.horizontalHeader()
        header.setStretchLastSection(True)
        header.setHighlightSections(False)
        for col, width in {JobsModel.COL_NAME: 150, JobsModel.COL_STATE: 70,
                           JobsModel.COL_PROGRESS: 140, JobsModel.COL_DONE: 110,
                           JobsModel.COL_FAILED: 55, JobsModel.COL_RATE: 70,
                           JobsModel.COL_ETA: 70, JobsModel.COL_FUNCTION: 110}.items():
            header.resizeSection(col, width)
        self.table.selectionModel().selectionChanged.connect(self._on_selection_changed)
        self.model.modelReset.connect(self._keep_selection)

        self.hint_label = QLabel("Select a job to list only its tasks.")
        self.hint_label.setObjectName("jobsHintLabel")
        self.hint_label.setStyleSheet("color: #666;")
        self.cancel_button = QPushButton("Cancel job")
        self.cancel_button.setObjectName("cancelJobButton")
        self.cancel_button.setToolTip("Cancel every queued task of the selected job")
        self.cancel_button.clicked.connect(lambda: self._emit(self.cancel_requested))
        self.retry_button = QPushButton("Retry failed")
        self.retry_button.setObjectName("retryJobButton")
        self.retry_button.setToolTip("Queue the selected job's failed and dead tasks again")
        self.retry_button.clicked.connect(lambda: self._emit(self.retry_requested))
        self.export_button = QPushButton("Export results…")
        self.export_button.setObjectName("exportJobButton")
        self.export_button.setToolTip("Write the selected job's results, in submission order, "
                                      "as CSV or JSON lines")
        self.export_button.clicked.connect(lambda: self._emit(self.export_requested))

        buttons = QHBoxLayout()
        buttons.addWidget(self.hint_label, 1)
        for b in (self.cancel_button, self.retry_button, self.export_button):
            buttons.addWidget(b)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        self.set_enabled(False)

    # -- API

    def set_enabled(self, enabled: bool) -> None:
        """Jobs exist only on a guidist server (a classic master has none)."""
        if enabled == self._enabled:
            return
        self._enabled = enabled
        if not enabled:
            self.model.clear()
        self.table.setEnabled(enabled)
        self._update_buttons()

    def set_jobs(self, jobs: Sequence[Job]) -> None:
        """The jobs of a fresh snapshot."""
        if self._enabled:
            self.model.set_jobs(jobs)
            self._update_buttons()

    def selected_job(self) -> Job | None:
        """The selected job as last reported, or None."""
        if self._selected is None:
            return None
        row = self.model.row_of(self._selected)
        return self.model.job_at(row) if row is not None else None

    def select_job(self, job_id: int | None) -> None:
        """Select a job by id (None: clear the selection)."""
        sm = self.table.selectionModel()
        if job_id is None:
            sm.clearSelection()
            return
        index = self.model.index_of(job_id)
        if index.isValid():
            sm.setCurrentIndex(index, QItemSelectionModel.SelectionFlag.ClearAndSelect
                               | QItemSelectionModel.SelectionFlag.Rows)

    # -- slots

    def _on_selection_changed(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        job = self.model.job_at(rows[0].row()) if rows else None
        new = job.id if job is not None else None
        if new != self._selected:
            self._selected = new
            self.job_selected.emit(job)
        self._update_buttons()

    def _keep_selection(self) -> None:
        """The listed jobs changed: keep the selected job selected, by id."""
        if self._selected is None:
            return
        index = self.model.index_of(self._selected)
        if index.isValid():
            self.table.selectionModel().setCurrentIndex(
                index, QItemSelectionModel.SelectionFlag.ClearAndSelect
                | QItemSelectionModel.SelectionFlag.Rows)
        else:  # it left the server's list
            self._selected = None
            self.job_selected.emit(None)

    def _emit(self, signal: Signal) -> None:
        job = self.selected_job()
        if job is not None:
            signal.emit(job)  # type: ignore[attr-defined]

    def _update_buttons(self) -> None:
        job = self.selected_job() if self._enabled else None
        self.cancel_button.setEnabled(job is not None and job.queued > 0)
        self.retry_button.setEnabled(job is not None and job.failed + job.dead > 0)
        self.export_button.setEnabled(job is not None)
