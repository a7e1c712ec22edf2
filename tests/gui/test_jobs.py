"""The jobs panel: its table model tested without a view, the panel's actions, and the real
window following a named job from the submit panel to the filtered tasks table."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, Qt

from guidist.core.protocol import Job, TaskState
from guidist.gui.jobs_model import JobProgress, JobsModel
from guidist.gui.main_window import MainWindow
from guidist.gui.panels.jobs import JobsPanel

from .conftest import WAIT_MS, launch_workers, start_server


def job(jid: int, name: str, *, queued: int = 0, running: int = 0, done: int = 0,
        failed: int = 0, now: float = 110.0) -> Job:
    return Job(jid, name, ("square",), queued=queued, running=running, done=done,
               failed=failed, submitted=100.0, started=100.0, last_finished=now, time=now)


def test_jobs_model_shows_progress_rate_and_state_without_a_view() -> None:
    model = JobsModel()
    assert model.rowCount() == 0 and model.columnCount() == len(JobsModel.HEADERS)
    model.set_jobs([job(2, "nightly", queued=60, running=10, done=25, failed=5),
                    job(1, "old", done=8)])
    assert model.rowCount() == 2

    def cell(row: int, col: int, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        return model.index(row, col).data(role)

    assert [cell(0, c) for c in (JobsModel.COL_NAME, JobsModel.COL_STATE,
                                 JobsModel.COL_DONE, JobsModel.COL_FAILED,
                                 JobsModel.COL_RATE, JobsModel.COL_ETA,
                                 JobsModel.COL_PROGRESS)] == \
        ["nightly", "running", "25 / 100", "5", "3.0/s", "23.3 s", "30 %"]
    bar = cell(0, JobsModel.COL_PROGRESS, JobsModel.ProgressRole)
    assert bar == JobProgress(0.25, 0.05, 0.70, "30 %")
    assert cell(1, JobsModel.COL_STATE) == "done" and cell(1, JobsModel.COL_ETA) == ""
    assert cell(0, JobsModel.COL_STATE, Qt.ItemDataRole.ForegroundRole) is not None
    assert "25 done, 5 failed" in cell(0, JobsModel.COL_NAME, Qt.ItemDataRole.ToolTipRole)
    assert cell(0, JobsModel.COL_NAME, JobsModel.JobRole).id == 2
    assert model.job_at(5) is None and model.row_of(1) == 1 and model.row_of(9) is None
    assert model.data(QModelIndex()) is None

    # The same jobs again: updated in place (the selection survives); others: a reset.
    resets, changes = [], []
    model.modelReset.connect(lambda: resets.append(1))
    model.dataChanged.connect(lambda a, b: changes.append((a.row(), b.row())))
    model.set_jobs([job(2, "nightly", queued=50, running=10, done=35, failed=5),
                    job(1, "old", done=8)])
    assert resets == [] and changes == [(0, 0)] and cell(0, JobsModel.COL_DONE) == "35 / 100"
    model.set_jobs([job(3, "new", queued=1), job(2, "nightly", done=100)])
    assert resets == [1] and model.rowCount() == 2 and cell(0, JobsModel.COL_STATE) == "queued"
    model.clear()
    assert model.rowCount() == 0


def test_jobs_panel_selection_and_actions(qtbot) -> None:
    panel = JobsPanel()
    qtbot.addWidget(panel)
    panel.set_enabled(True)
    panel.set_jobs([job(2, "busy", queued=5, done=1), job(1, "broken", failed=3)])
    selected, cancelled, retried, exported = [], [], [], []
    panel.job_selected.connect(selected.append)
    panel.cancel_requested.connect(cancelled.append)
    panel.retry_requested.connect(retried.append)
    panel.export_requested.connect(exported.append)
    assert not panel.cancel_button.isEnabled() and not panel.export_button.isEnabled()
    panel.select_job(2)
    assert [j.id for j in selected] == [2]
    assert panel.cancel_button.isEnabled() and not panel.retry_button.isEnabled()
    panel.cancel_button.click()
    panel.export_button.click()
    assert [j.name for j in cancelled] == ["busy"] and [j.name for j in exported] == ["busy"]
    panel.select_job(1)
    assert panel.retry_button.isEnabled() and not panel.cancel_button.isEnabled()
    panel.retry_button.click()
    assert [j.name for j in retried] == ["broken"]
    # A new job arrives on top: the selection stays on the same job.
    panel.set_jobs([job(3, "fresh", queued=1), job(2, "busy", queued=5, done=1),
                    job(1, "broken", failed=3)])
    assert panel.selected_job().id == 1 and [j.id for j in selected] == [2, 1]
    panel.select_job(None)
    assert selected[-1] is None
    panel.set_enabled(False)
    assert panel.model.rowCount() == 0


def test_a_named_job_from_the_submit_panel_filters_the_tasks_table(qtbot,
                                                                    window: MainWindow) -> None:
    win = window
    start_server(qtbot, win)
    panel = win.submit_panel
    panel.set_preset("square")
    panel.set_mode("range")
    panel.count_spin.setValue(30)
    panel.start_edit.setText("1")
    panel.job_edit.setText("first batch")
    panel.enqueue_button.click()
    jobs = win.jobs_panel.model
    qtbot.waitUntil(lambda: jobs.row_of(1) is not None, timeout=WAIT_MS)
    panel.count_spin.setValue(20)
    panel.job_edit.setText("")  # no name: a job named after the task and the time
    panel.enqueue_button.click()
    qtbot.waitUntil(lambda: jobs.rowCount() == 2, timeout=WAIT_MS)
    assert jobs.job_at(1).name == "first batch" and jobs.job_at(0).name.startswith("square-")
    launch_workers(qtbot, win, 1)
    qtbot.waitUntil(lambda: jobs.job_at(1) is not None and jobs.job_at(1).done == 30,
                    timeout=WAIT_MS)
    assert jobs.index(1, jobs.COL_STATE).data() == "done"

    tasks = win.tasks_panel.model
    qtbot.waitUntil(lambda: tasks.rowCount() == 50, timeout=WAIT_MS)
    win.jobs_panel.select_job(1)  # "first batch"
    assert tasks.job == 1 and win.tasks_panel.job_label.isVisible()
    assert "first batch" in win.tasks_panel.job_label.text()
    qtbot.waitUntil(lambda: tasks.rowCount() == 30, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: all(tasks.task_at(r) is not None for r in range(30)),
                    timeout=WAIT_MS)
    assert {tasks.task_at(r).job for r in range(30)} == {1}
    assert all(tasks.task_at(r).state is TaskState.DONE for r in range(30))
    win.tasks_panel.job_clear_button.click()  # back to every task, and no job selected
    assert tasks.job is None and win.jobs_panel.selected_job() is None
    qtbot.waitUntil(lambda: tasks.rowCount() == 50, timeout=WAIT_MS)
