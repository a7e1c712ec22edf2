"""The jobs table model: one row per job, updated in place from each snapshot.

Tested without a view (vorta's pattern). The progress column's data is a ``JobProgress``
(done, failed, remaining fractions) that the jobs panel's delegate draws as one bar.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QModelIndex, Qt

from ..core.protocol import Job
from .models import _NO_INDEX, _RIGHT, _Index, _RowsModel
from .style import STATE_COLORS, fmt_clock, fmt_duration, fmt_int, qcolor

#: A job's state -> the colour its name is drawn in (the task states' palette).
JOB_STATE_COLORS = {"queued": STATE_COLORS["queued"], "running": STATE_COLORS["running"],
                    "done": STATE_COLORS["done"], "failed": STATE_COLORS["failed"],
                    "cancelled": STATE_COLORS["cancelled"]}


@dataclass(frozen=True)
class JobProgress:
    """What the progress bar shows, as fractions of the job's tasks (they add up to 1)."""

    done: float
    failed: float  # failed, dead or cancelled: finished but not done
    remaining: float
    text: str

    @classmethod
    def of(cls, job: Job) -> JobProgress:
        """The bar for a job."""
        total = job.total or 1
        bad = job.failed + job.dead + job.cancelled
        pct = 100 * (job.total - job.remaining) / total
        return cls(job.done / total, bad / total, job.remaining / total, f"{pct:.0f} %")


def fmt_eta(job: Job) -> str:
    """The ETA column: "done" when nothing is left, "—" while there is no rate yet."""
    if job.remaining == 0:
        return ""
    eta = job.eta_s
    return "—" if eta is None else fmt_duration(eta)


class JobsModel(_RowsModel):
    """The jobs the server keeps, newest first, updated in place so the selection survives."""

    COL_NAME, COL_STATE, COL_PROGRESS, COL_DONE, COL_FAILED, COL_RATE, COL_ETA, \
        COL_FUNCTION, COL_SUBMITTED = range(9)
    HEADERS = ("Job", "State", "Progress", "Done / total", "Failed", "Rate", "ETA",
               "Function", "Submitted")
    JobRole = Qt.ItemDataRole.UserRole + 1
    ProgressRole = Qt.ItemDataRole.UserRole + 2

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._rows: list[Job] = []

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        job = self._rows[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(job, col)
        if role == self.JobRole:
            return job
        if role == self.ProgressRole and col == self.COL_PROGRESS:
            return JobProgress.of(job)
        if role == Qt.ItemDataRole.ForegroundRole and col == self.COL_STATE:
            return qcolor(JOB_STATE_COLORS.get(job.state, "#000000"))
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (
                self.COL_DONE, self.COL_FAILED, self.COL_RATE, self.COL_ETA):
            return _RIGHT
        if role == Qt.ItemDataRole.ToolTipRole and col in (self.COL_NAME, self.COL_PROGRESS):
            return (f"{job.name} (id {job.id}): {job.queued} queued, {job.running} running, "
                    f"{job.done} done, {job.failed} failed, {job.dead} dead, "
                    f"{job.cancelled} cancelled")
        return None

    def _display(self, job: Job, col: int) -> Any:
        if col == self.COL_NAME:
            return job.name
        if col == self.COL_STATE:
            return job.state
        if col == self.COL_PROGRESS:
            return JobProgress.of(job).text
        if col == self.COL_DONE:
            return f"{fmt_int(job.done)} / {fmt_int(job.total)}"
        if col == self.COL_FAILED:
            bad = job.failed + job.dead
            return fmt_int(bad) if bad else ""
        if col == self.COL_RATE:
            return f"{job.rate:,.1f}/s" if job.rate else ""
        if col == self.COL_ETA:
            return fmt_eta(job)
        if col == self.COL_FUNCTION:
            return job.function
        if col == self.COL_SUBMITTED:
            return fmt_clock(job.submitted)
        return None

    # -- API

    def set_jobs(self, jobs: Sequence[Job]) -> None:
        """Show these jobs (newest first): rows are updated in place when the same jobs are
        listed in the same order, else the table is reset."""
        jobs = list(jobs)
        if [j.id for j in jobs] == [j.id for j in self._rows]:
            changed = [i for i, (old, new) in enumerate(zip(self._rows, jobs)) if old != new]
            self._rows = jobs
            if changed:
                last = len(self.HEADERS) - 1
                self.dataChanged.emit(self.index(min(changed), 0),
                                      self.index(max(changed), last))
            return
        self.beginResetModel()
        self._rows = jobs
        self.endResetModel()

    def job_at(self, row: int) -> Job | None:
        """The job on a row, or None."""
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def row_of(self, job_id: int) -> int | None:
        """The row a job is on, or None."""
        for i, job in enumerate(self._rows):
            if job.id == job_id:
                return i
        return None

    def clear(self) -> None:
        """No server: no jobs."""
        self.set_jobs([])

    def index_of(self, job_id: int) -> QModelIndex:
        """The model index of a job's first column (invalid when it is not listed)."""
        row = self.row_of(job_id)
        return self.index(row, 0) if row is not None else _NO_INDEX
