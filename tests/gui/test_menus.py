"""Desktop conventions: sortable headers, right-click menus on tasks, workers and plots."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QDialog

from guidist.core.client import Client
from guidist.gui.main_window import MainWindow
from guidist.gui.models import TasksModel

from .conftest import WAIT_MS, launch_workers, start_server


def _action(menu, text: str):  # noqa: ANN001, ANN202 - a QMenu and its QAction
    for action in menu.actions():
        if action.text().startswith(text):
            return action
    raise AssertionError(f"no {text!r} in {[a.text() for a in menu.actions()]}")


def _rows(win: MainWindow) -> list:
    model = win.tasks_panel.model
    return [model.task_at(r) for r in range(model.total)]


def _all_loaded(win: MainWindow, n: int) -> bool:
    rows = _rows(win)
    return len(rows) == n and all(t is not None for t in rows)


def test_sorting_by_the_columns_the_server_orders_by(qtbot, window: MainWindow) -> None:
    win = window
    start_server(qtbot, win)
    launch_workers(qtbot, win, 2)
    panel = win.submit_panel
    panel.set_preset("sleep")
    panel.set_mode("random")
    panel.count_spin.setValue(40)
    panel.low_edit.setText("0.001")
    panel.high_edit.setText("0.05")
    panel.enqueue_button.click()
    qtbot.waitUntil(lambda: win.last_snapshot is not None
                    and win.last_snapshot.count("done") == 40, timeout=WAIT_MS)
    tasks = win.tasks_panel
    qtbot.waitUntil(lambda: {"id", "state", "function", "runtime"} <= tasks.model.orderable,
                    timeout=WAIT_MS)
    header = tasks.table.horizontalHeader()
    tip = tasks.model.headerData(TasksModel.COL_DURATION, Qt.Orientation.Horizontal,
                                 Qt.ItemDataRole.ToolTipRole)
    assert "Click to sort" in tip

    header.sectionClicked.emit(TasksModel.COL_DURATION)  # a click: slowest last
    assert tasks.model.order == "runtime" and header.isSortIndicatorShown()
    qtbot.waitUntil(lambda: _all_loaded(win, 40), timeout=WAIT_MS)
    took = [t.runtime for t in _rows(win)]  # what the column shows: the worker's measure
    assert None not in took and took == sorted(took)
    header.sectionClicked.emit(TasksModel.COL_DURATION)  # again: slowest first
    assert tasks.model.order == "-runtime"
    assert header.sortIndicatorOrder() is Qt.SortOrder.DescendingOrder
    qtbot.waitUntil(lambda: _all_loaded(win, 40) and [t.runtime for t in _rows(win)]
                    == sorted(took, reverse=True), timeout=WAIT_MS)
    header.sectionClicked.emit(TasksModel.COL_ID)
    qtbot.waitUntil(lambda: _all_loaded(win, 40)
                    and [t.id for t in _rows(win)] == sorted(t.id for t in _rows(win)),
                    timeout=WAIT_MS)
    header.sectionClicked.emit(TasksModel.COL_ID)
    header.sectionClicked.emit(TasksModel.COL_ID)  # a third click: newest activity first
    assert tasks.model.order is None and not header.isSortIndicatorShown()
    # A column the server cannot order by does nothing (its tooltip says so).
    header.sectionClicked.emit(TasksModel.COL_WORKER)
    assert tasks.model.order is None


def test_task_context_menu_copies_retries_and_shows_details(qtbot, window: MainWindow) -> None:
    win = window
    start_server(qtbot, win)
    launch_workers(qtbot, win, 1)
    panel = win.submit_panel
    panel.set_preset("fail")
    panel.set_mode("fixed")
    panel.count_spin.setValue(1)
    panel.value_edit.setText("1.0")
    panel.enqueue_button.click()
    qtbot.waitUntil(lambda: win.last_snapshot is not None
                    and win.last_snapshot.count("failed") == 1, timeout=WAIT_MS)
    tasks = win.tasks_panel
    qtbot.waitUntil(lambda: tasks.model.task_at(0) is not None
                    and tasks.model.task_at(0).state.value == "failed", timeout=WAIT_MS)
    task = tasks.model.task_at(0)
    menu = tasks.context_menu(0)
    assert tasks.selected_tasks()[0].id == task.id  # right-click selects the row
    _action(menu, "Copy id").trigger()
    assert QGuiApplication.clipboard().text() == str(task.id)
    _action(menu, "Copy arguments").trigger()
    assert QGuiApplication.clipboard().text() == "1.0"
    _action(menu, "Copy result or error").trigger()
    assert "RuntimeError" in QGuiApplication.clipboard().text()
    assert not _action(menu, "Cancel").isEnabled()  # not queued
    qtbot.waitUntil(lambda: tasks._shown_task is not None, timeout=WAIT_MS)
    _action(menu, "Details").trigger()
    dialog = tasks.findChild(QDialog, "taskDetailsDialog")
    assert dialog is not None and "Traceback" in dialog.findChild(
        type(tasks.detail), "taskDetailsView").toPlainText()
    dialog.close()
    _action(menu, "Retry").trigger()
    qtbot.waitUntil(lambda: win.last_snapshot.requeued == 1, timeout=WAIT_MS)


def test_worker_context_menu_stops_kills_and_shows_the_log(qtbot, window: MainWindow) -> None:
    win = window
    start_server(qtbot, win)
    launch_workers(qtbot, win, 2)
    workers = win.workers_panel
    qtbot.waitUntil(lambda: workers.model.rowCount() == 2, timeout=WAIT_MS)
    menu = workers.context_menu(0)
    chosen = workers.selected_workers()
    assert len(chosen) == 1 and _action(menu, "Kill").isEnabled()
    _action(menu, "Show log").trigger()
    qtbot.waitUntil(lambda: getattr(win, "log_dialog", None) is not None, timeout=WAIT_MS)
    assert chosen[0].name in win.log_dialog.windowTitle()
    win.log_dialog.close()
    _action(menu, "Copy name").trigger()
    assert QGuiApplication.clipboard().text() == chosen[0].name
    _action(menu, "Kill").trigger()
    qtbot.waitUntil(lambda: len(win.controller.local_pids) == 1, timeout=WAIT_MS)
    menu = workers.context_menu(workers.model.workers().index(
        next(w for w in workers.model.workers() if w.pid in win.controller.local_pids)))
    _action(menu, "Stop").trigger()
    qtbot.waitUntil(lambda: not win.controller.local_pids, timeout=WAIT_MS)


def test_a_local_workers_log_is_live_while_shown(qtbot, window: MainWindow) -> None:
    win = window
    start_server(qtbot, win)
    launch_workers(qtbot, win, 1)
    workers = win.workers_panel
    qtbot.waitUntil(lambda: workers.model.rowCount() == 1, timeout=WAIT_MS)
    _action(workers.context_menu(0), "Show log").trigger()
    qtbot.waitUntil(lambda: getattr(win, "log_dialog", None) is not None, timeout=WAIT_MS)
    assert "boom" not in win.log_dialog.text_edit.toPlainText()
    # A task that fails after the log opened shows up in it, in one line.
    with Client(win.controller.status.address, win.controller.key) as c:
        c.submit_many("tests.jobs:boom", [5])
    qtbot.waitUntil(lambda: "(tests.jobs:boom) failed: ValueError: boom 5"
                    in win.log_dialog.text_edit.toPlainText(), timeout=WAIT_MS)
    win.log_dialog.close()
