"""The tasks panel: the virtual task table, filter and search, a detail pane, queue actions."""

from __future__ import annotations

import html
import time

from PySide6.QtCore import QItemSelectionModel, QModelIndex, QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QTableView,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ...core.protocol import Snapshot, Task, TaskState
from ..columns import fit_columns, widen_to_rows
from ..models import TasksModel
from ..style import fmt_clock, fmt_duration, fmt_int, muted, plural, state_color

_STATES = [("All states", None)] + [(s.value, s.value) for s in TaskState]
#: The table refreshes at most this often while live.
REFRESH_SECONDS = 1.0


class TasksPanel(QWidget):
    """The server's task ledger, page by page, with the actions that apply to tasks."""

    #: Where older finished tasks are, when nothing more is known of the server.
    HISTORY_HINT = ("They are in the server's journal, if it keeps one (guidist export "
                    "--journal FILE).")

    #: list[int]: cancel these queued tasks.
    cancel_requested = Signal(object)
    #: list[int]: retry these failed or dead tasks.
    retry_requested = Signal(object)
    retry_all_requested = Signal()
    purge_requested = Signal()
    #: bool: pause (True) or resume (False) dispatching.
    pause_requested = Signal(bool)
    #: int: fetch this task's details.
    detail_requested = Signal(int)
    #: The person cleared the job filter (the jobs panel drops its selection).
    job_cleared = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("tasksPanel")
        self.model = TasksModel(self)
        self._enabled: bool | None = None  # neither yet: the first set_enabled applies
        self._last_refresh = 0.0
        self._last_key: tuple = ()
        self._shown_id: int | None = None
        self._shown_task: Task | None = None
        self._tracking = False
        #: Where tasks beyond what the server holds in memory can be read (said in the count).
        self.history_hint = self.HISTORY_HINT

        self.state_combo = QComboBox()
        self.state_combo.setObjectName("taskStateCombo")
        for label, value in _STATES:
            self.state_combo.addItem(label, value)
        self.state_combo.currentIndexChanged.connect(self._on_filter_changed)
        self.search_edit = QLineEdit()
        self.search_edit.setObjectName("taskSearchEdit")
        self.search_edit.setPlaceholderText("Search id, function, arguments, result, error… "
                                            "(Ctrl+F)")
        self.search_edit.setClearButtonEnabled(True)
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(300)
        self._search_timer.timeout.connect(self._on_filter_changed)
        self.search_edit.textChanged.connect(self._search_timer.start)
        self.live_check = QCheckBox("Live")
        self.live_check.setObjectName("tasksLiveCheck")
        self.live_check.setChecked(True)
        self.live_check.setToolTip("Refresh the table every second while tasks move")
        self.refresh_button = QToolButton()
        self.refresh_button.setObjectName("tasksRefreshButton")
        self.refresh_button.setText("Refresh")
        self.refresh_button.setToolTip("Load the rows again now (F5)")
        self.refresh_button.clicked.connect(self.refresh)
        self.job_label = QLabel()
        self.job_label.setObjectName("tasksJobLabel")
        self.job_label.setStyleSheet("background:#e3edf7; border-radius:3px; padding:1px 4px;")
        self.job_clear_button = QToolButton()
        self.job_clear_button.setObjectName("tasksJobClearButton")
        self.job_clear_button.setText("✕")
        self.job_clear_button.setToolTip("Show the tasks of every job")
        self.job_clear_button.clicked.connect(self._on_job_clear_clicked)
        self._job_name = ""
        self.count_label = QLabel("0 tasks")
        self.count_label.setObjectName("tasksCountLabel")
        # One line (the tooltip has the whole sentence): a wrapped label here asked the dock
        # for a height it did not have, and the action buttons scrolled out of sight.
        self.count_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.model.total_changed.connect(self._on_total_changed)
        self.model.page_arrived.connect(self._keep_selection)

        self.table = QTableView()
        self.table.setObjectName("tasksTable")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        vh = self.table.verticalHeader()
        vh.hide()
        vh.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)  # a million rows stay cheap
        vh.setDefaultSectionSize(22)
        header = self.table.horizontalHeader()
        header.setStretchLastSection(True)
        header.setHighlightSections(False)
        fit_columns(self.table, {
            TasksModel.COL_ID: "1,000,000", TasksModel.COL_STATE: "cancelled",
            TasksModel.COL_FUNCTION: "io_wait", TasksModel.COL_ARGS: "20000, x=1",
            TasksModel.COL_ATTEMPTS: "3", TasksModel.COL_WORKER: "local-1#1",
            TasksModel.COL_SUBMITTED: "23:59:59", TasksModel.COL_DURATION: "850 ms"})
        # Sorting by the columns the server can order by: a click sorts, a second click
        # reverses, a third goes back to newest activity first.
        header.setSectionsClickable(True)
        header.setSortIndicatorShown(False)
        header.sectionClicked.connect(self._on_header_clicked)
        self.table.selectionModel().currentRowChanged.connect(self._on_current_changed)
        self.table.selectionModel().selectionChanged.connect(self._update_buttons)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._on_context_menu)
        self.table.doubleClicked.connect(lambda _index: self.show_details())
        self.model.page_arrived.connect(self._fit_loaded_rows)
        self.model.page_arrived.connect(self._update_count)

        self.detail = QTextBrowser()
        self.detail.setObjectName("taskDetailView")
        self.detail.setOpenLinks(False)
        self.detail.setPlaceholderText("Select a task for its details.")
        self.detail.setToolTip("Arguments, result or traceback, times, attempts and worker of "
                               "the selected task")
        self.detail.setMinimumWidth(220)

        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancelTasksButton")
        self.cancel_button.setToolTip("Cancel the selected queued tasks")
        self.cancel_button.clicked.connect(
            lambda: self._emit_ids(self.cancel_requested, {TaskState.QUEUED}))
        self.retry_button = QPushButton("Retry")
        self.retry_button.setObjectName("retryTasksButton")
        self.retry_button.setToolTip("Queue the selected failed or dead tasks again")
        self.retry_button.clicked.connect(
            lambda: self._emit_ids(self.retry_requested, {TaskState.FAILED, TaskState.DEAD}))
        self.retry_all_button = QPushButton("Retry all failed")
        self.retry_all_button.setObjectName("retryAllButton")
        self.retry_all_button.clicked.connect(self.retry_all_requested)
        self.purge_button = QPushButton("Purge queue")
        self.purge_button.setObjectName("purgeQueueButton")
        self.purge_button.setToolTip("Cancel every queued task")
        self.purge_button.clicked.connect(self.purge_requested)
        self.pause_button = QPushButton("Pause dispatch")
        self.pause_button.setObjectName("pauseDispatchButton")
        self.pause_button.setCheckable(True)
        self.pause_button.setToolTip("Stop handing tasks to workers (they stay queued) "
                                     "(Ctrl+Shift+P)")
        self.pause_button.clicked.connect(self._on_pause_clicked)

        top = QHBoxLayout()
        top.addWidget(self.job_label)
        top.addWidget(self.job_clear_button)
        top.addWidget(self.state_combo)
        top.addWidget(self.search_edit, 1)
        top.addWidget(self.live_check)
        top.addWidget(self.refresh_button)
        actions = QHBoxLayout()
        actions.addWidget(self.count_label, 1)
        for b in (self.cancel_button, self.retry_button, self.retry_all_button,
                  self.purge_button, self.pause_button):
            actions.addWidget(b)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setObjectName("tasksSplitter")
        self.splitter.addWidget(self.table)
        self.splitter.addWidget(self.detail)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setSizes([680, 320])  # the pane is wide enough for a traceback line
        self.splitter.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.splitter, 1)
        layout.addLayout(actions)
        self._show_job()
        self.set_enabled(False)

    # -- API

    def set_enabled(self, enabled: bool) -> None:
        """Fetch and act only while a guidist server answers (a classic master has no ledger)."""
        if enabled == self._enabled:
            return
        self._enabled = enabled
        if enabled:
            self.model.set_enabled(True)
            self._last_refresh = time.monotonic()
        else:
            self.model.clear()
            self.show_task(None)
        for w in (self.state_combo, self.search_edit, self.refresh_button, self.live_check):
            w.setEnabled(enabled)
        self._update_buttons()

    def on_snapshot(self, snap: Snapshot) -> None:
        """Refresh the visible pages about once a second while something changed."""
        self.pause_button.setChecked(snap.paused)
        self.pause_button.setText("Resume dispatch" if snap.paused else "Pause dispatch")
        self.retry_all_button.setEnabled(
            self._enabled and (snap.count("failed") + snap.count("dead")) > 0)
        self.purge_button.setEnabled(self._enabled and snap.count("queued") > 0)
        key = (tuple(sorted(snap.counts.items())), snap.submitted, snap.requeued)
        now = time.monotonic()
        if not self._enabled or not self.live_check.isChecked() or key == self._last_key \
                or now - self._last_refresh < REFRESH_SECONDS:
            return
        self._last_key = key
        self.refresh()

    def set_job(self, job_id: int | None, name: str = "") -> None:
        """List only this job's tasks (None: every task); the chip above the table says so."""
        self._job_name = name if job_id is not None else ""
        self.model.set_job(job_id)
        self._show_job()
        self.show_task(None)
        self._update_buttons()

    def _show_job(self) -> None:
        shown = self.model.job is not None
        self.job_label.setText(f"Job: {self._job_name}" if shown else "")
        self.job_label.setVisible(shown)
        self.job_clear_button.setVisible(shown)

    def _on_job_clear_clicked(self) -> None:
        self.set_job(None)
        self.job_cleared.emit()

    def current_filter(self) -> tuple[str | None, str]:
        """(state or None for all, search text): what the table lists now."""
        return self.state_combo.currentData(), self.search_edit.text().strip()

    def refresh(self) -> None:
        """Load the rows on screen again."""
        self._last_refresh = time.monotonic()
        self.model.refresh()
        if self._shown_id is not None:
            self.detail_requested.emit(self._shown_id)

    def selected_tasks(self) -> list[Task]:
        """Loaded tasks on the selected rows."""
        out = []
        for index in self.table.selectionModel().selectedRows():
            task = self.model.task_at(index.row())
            if task is not None:
                out.append(task)
        return out

    def select_row(self, row: int) -> None:
        """Make a row current and selected."""
        index = self.model.index(row, 0)
        self.table.selectionModel().setCurrentIndex(
            index, QItemSelectionModel.SelectionFlag.ClearAndSelect
            | QItemSelectionModel.SelectionFlag.Rows)

    def show_task(self, task: Task | None) -> None:
        """Render a task in the detail pane."""
        self._shown_id = task.id if task is not None else None
        self._shown_task = task
        if task is None:
            self.detail.clear()
            return
        self.detail.setHtml(task_html(task))

    def on_task_loaded(self, task: Task | None) -> None:
        """Fresh details arrived; show them if that task is still the one selected."""
        if task is not None and task.id == self._shown_id:
            self.show_task(task)

    # -- slots

    def _on_filter_changed(self) -> None:
        self._search_timer.stop()
        self.model.set_filter(self.state_combo.currentData(), self.search_edit.text())
        self.show_task(None)
        self._update_buttons()

    def _on_total_changed(self, _total: int) -> None:
        self._update_count()

    def _update_count(self) -> None:
        """"N tasks", and when the server counts more than it still holds (it keeps only the
        newest finished tasks in memory), say so instead of dropping from 136,019 to
        20,028 without a word."""
        total = self.model.total
        state = self.state_combo.currentData()
        search = self.model.filter[1]
        text = plural(total, f"{state} task" if state else "task")
        if self.model.job is not None:
            text += f" of job {self._job_name}"
        if search:
            self.count_label.setText(f"{text} matching \u201c{html.escape(search)}\u201d")
            self.count_label.setToolTip("")
            return
        missing = self.model.not_held
        if missing and total:
            self.count_label.setText(f"{text} listed · {fmt_int(missing)} older finished not "
                                     "held in memory")
            self.count_label.setToolTip(
                f"The server counts {fmt_int(total + missing)} but keeps only the newest "
                f"finished tasks in memory. {self.history_hint}")
            return
        self.count_label.setText(text)
        self.count_label.setToolTip("")

    def _keep_selection(self) -> None:
        """Rows move as tasks change state: keep the selected task selected, by id."""
        if self._shown_id is None or len(self.table.selectionModel().selectedRows()) > 1:
            return
        current = self.table.currentIndex()
        if current.isValid():
            task = self.model.task_at(current.row())
            if task is not None and task.id == self._shown_id:
                return
        row = self.model.row_of(self._shown_id)
        self._tracking = True
        try:
            if row is None:
                self.table.selectionModel().clear()
            else:
                self.select_row(row)
        finally:
            self._tracking = False

    def _on_current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if self._tracking:
            return
        task = self.model.task_at(current.row()) if current.isValid() else None
        self.show_task(task)
        if task is not None:
            self.detail_requested.emit(task.id)

    def _on_pause_clicked(self, checked: bool) -> None:
        self.pause_requested.emit(checked)

    def _emit_ids(self, signal: Signal, states: set[TaskState]) -> None:
        ids = [t.id for t in self.selected_tasks() if t.state in states]
        if ids:
            signal.emit(ids)  # type: ignore[attr-defined]

    def set_orderable(self, keys: tuple[str, ...]) -> None:
        """The columns the server can sort by become clickable sorts."""
        self.model.set_orderable(keys)
        self._show_sort()

    def sort_by(self, column: int, descending: bool = False) -> bool:
        """Sort by a column if the server can; False if it cannot."""
        order = self.model.order_for(column, descending)
        if order is None:
            return False
        self.model.set_order(order)
        self._show_sort()
        return True

    def _on_header_clicked(self, column: int) -> None:
        current = self.model.order
        key = TasksModel.ORDER_OF_COLUMN.get(column)
        if current == key:
            self.sort_by(column, descending=True)
        elif current == f"-{key}":
            self.model.set_order(None)  # third click: newest activity first again
            self._show_sort()
        elif not self.sort_by(column):
            self._show_sort()  # not sortable here: the tooltip says why

    def _show_sort(self) -> None:
        header = self.table.horizontalHeader()
        order = self.model.order
        column = next((c for c, k in TasksModel.ORDER_OF_COLUMN.items()
                       if order and order.lstrip("-") == k), -1)
        header.setSortIndicatorShown(column >= 0)
        if column >= 0:
            header.setSortIndicator(column, Qt.SortOrder.DescendingOrder if order.startswith("-")
                                    else Qt.SortOrder.AscendingOrder)

    def context_menu(self, row: int) -> QMenu:
        """The right-click menu of a task row: copy, retry, cancel, details."""
        if row >= 0 and not self.table.selectionModel().isRowSelected(row, QModelIndex()):
            self.select_row(row)
        chosen = self.selected_tasks()
        menu = QMenu(self)
        menu.setObjectName("tasksContextMenu")
        one = chosen[0] if len(chosen) == 1 else None

        def copy(text: str) -> None:
            QGuiApplication.clipboard().setText(text)

        menu.addAction("Copy id", lambda: copy("\n".join(str(t.id) for t in chosen))) \
            .setEnabled(bool(chosen))
        menu.addAction("Copy arguments", lambda: copy("\n".join(_args_text(t) for t in chosen))
                       ).setEnabled(bool(chosen))
        menu.addAction("Copy result or error", lambda: copy("\n".join(
            t.error if t.error else repr(t.result) for t in chosen))) \
            .setEnabled(any(t.state.finished for t in chosen))
        menu.addSeparator()
        retry = menu.addAction("Retry", lambda: self._emit_ids(
            self.retry_requested, {TaskState.FAILED, TaskState.DEAD}))
        retry.setEnabled(bool(self._enabled) and any(
            t.state in (TaskState.FAILED, TaskState.DEAD) for t in chosen))
        cancel = menu.addAction("Cancel", lambda: self._emit_ids(
            self.cancel_requested, {TaskState.QUEUED}))
        cancel.setEnabled(bool(self._enabled) and any(t.state is TaskState.QUEUED
                                                      for t in chosen))
        menu.addSeparator()
        menu.addAction("Details…", self.show_details).setEnabled(one is not None)
        return menu

    def _on_context_menu(self, pos: QPoint) -> None:
        row = self.table.rowAt(pos.y())
        if row < 0:
            return
        self.context_menu(row).exec(self.table.viewport().mapToGlobal(pos))

    def show_details(self) -> QDialog | None:
        """The selected task's details in a window of their own (non-modal)."""
        task = self._shown_task
        if task is None:
            return None
        dialog = QDialog(self)
        dialog.setObjectName("taskDetailsDialog")
        dialog.setWindowTitle(f"Task {task.id}")
        view = QTextBrowser()
        view.setObjectName("taskDetailsView")
        view.setHtml(task_html(task))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(dialog.reject)
        layout = QVBoxLayout(dialog)
        layout.addWidget(view, 1)
        layout.addWidget(buttons)
        dialog.resize(720, 520)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog

    def _fit_loaded_rows(self) -> None:
        widen_to_rows(self.table, (TasksModel.COL_ID, TasksModel.COL_FUNCTION,
                                   TasksModel.COL_WORKER, TasksModel.COL_ARGS))

    def _update_buttons(self) -> None:
        chosen = self.selected_tasks() if self._enabled else []
        self.cancel_button.setEnabled(any(t.state is TaskState.QUEUED for t in chosen))
        self.retry_button.setEnabled(any(t.state in (TaskState.FAILED, TaskState.DEAD)
                                         for t in chosen))
        self.pause_button.setEnabled(self._enabled)
        if not self._enabled:
            self.retry_all_button.setEnabled(False)
            self.purge_button.setEnabled(False)


def task_html(task: Task) -> str:
    """A task's details as rich text; long lines (tracebacks) wrap instead of being cut."""
    grey = muted()
    rows = [
        ("State", f"<b style='color:{state_color(task.state.value)}'>{task.state.value}</b>"),
        ("Function", f"<code>{html.escape(task.function)}</code>"),
        ("Arguments", f"<code>{html.escape(_args_text(task))}</code>"),
        ("Attempts", str(task.attempts)),
        ("Worker", html.escape(task.worker or "—")),
        ("Job", str(task.job) if task.job is not None else "—"),
        ("Submitted", fmt_clock(task.submitted) or "—"),
        ("Started", fmt_clock(task.started) or "—"),
        ("Finished", fmt_clock(task.finished) or "—"),
    ]
    if task.waited is not None:
        rows.append(("Waited", fmt_duration(task.waited)))  # queued: submission to start
    if task.runtime is not None:
        rows.append(("Ran", fmt_duration(task.runtime)))  # measured by the worker
    elif task.started and task.finished:
        rows.append(("Took", fmt_duration(task.finished - task.started)))  # a tutorial worker
    table = "".join(f"<tr><td style='color:{grey};padding-right:8px'>{k}</td><td>{v}</td>"
                    "</tr>" for k, v in rows)
    body = f"<h3 style='margin:0'>Task {task.id}</h3><table>{table}</table>"
    wrap = "white-space:pre-wrap"
    if task.error:
        body += (f"<p style='margin-bottom:2px'><b style='color:{state_color('failed')}'>"
                 f"Traceback</b></p><pre style='{wrap}'>{html.escape(task.error)}</pre>")
    elif task.state is TaskState.DONE:
        body += ("<p style='margin-bottom:2px'><b>Result</b></p>"
                 f"<pre style='{wrap}'>{html.escape(repr(task.result))}</pre>")
    return body


def _args_text(task: Task) -> str:
    parts = [repr(a) for a in task.args]
    parts += [f"{k}={v!r}" for k, v in (task.kwargs or {}).items()]
    return ", ".join(parts) or "(none)"
