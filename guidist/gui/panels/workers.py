"""The workers panel: the table of workers, launching local ones, stopping and killing."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from ...core.executors import default_concurrency
from ...core.protocol import WorkerInfo, WorkerState
from ..columns import fit_columns, widen_to_rows
from ..models import WorkersModel
from ..style import state_color
from ..submission import PRESETS, worker_hint
from ..widgets import ErrorLabel, HintLabel

#: Worker execution modes (``guidist worker --mode``), with what each is for.
WORKER_MODES: dict[str, str] = {
    "inline": "one task at a time in the worker: fastest for tiny tasks",
    "process": "a pool of processes: CPU-bound tasks, one per core",
    "thread": "a pool of threads: blocking I/O (network, disk)",
    "async": "one event loop: async def tasks and I/O-bound work",
}


class WorkersPanel(QWidget):
    """Workers the server knows, local and remote, with the actions that apply to them."""

    #: (count, mode, concurrency): start local workers.
    launch_requested = Signal(int, str, int)
    #: list[WorkerInfo]: stop these gracefully.
    stop_requested = Signal(object)
    #: list[int]: SIGKILL these local pids.
    kill_requested = Signal(object)
    stop_all_requested = Signal()
    forget_offline_requested = Signal()
    remote_requested = Signal()
    #: WorkerInfo: show what this local worker printed.
    log_requested = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("workersPanel")
        self.model = WorkersModel(self)
        self._enabled = False

        self.count_spin = QSpinBox()
        self.count_spin.setObjectName("workerCountSpin")
        self.count_spin.setRange(1, 64)
        self.count_spin.setValue(2)
        self.count_spin.setToolTip("How many worker processes to start on this machine")
        self.mode_combo = QComboBox()
        self.mode_combo.setObjectName("workerModeCombo")
        for i, (mode, what) in enumerate(WORKER_MODES.items()):
            self.mode_combo.addItem(mode, mode)
            self.mode_combo.setItemData(i, what, Qt.ItemDataRole.ToolTipRole)
        self.mode_combo.setToolTip("How each worker runs its tasks: inline (one at a time), "
                                   "process (CPU-bound), thread (blocking I/O), async (async "
                                   "def, I/O)")
        self.concurrency_spin = QSpinBox()
        self.concurrency_spin.setObjectName("workerConcurrencySpin")
        self.concurrency_spin.setRange(1, 1024)
        self.concurrency_spin.setPrefix("×")
        self.concurrency_spin.setToolTip("Tasks each worker runs at once (default: cores for "
                                         "process, 32 threads, 64 coroutines)")
        self.mode_combo.currentIndexChanged.connect(self._on_mode_changed)
        self.launch_button = QPushButton("Launch")
        self.launch_button.setObjectName("launchWorkersButton")
        self.launch_button.setToolTip("Start that many local worker processes (Ctrl+L)")
        self.launch_button.clicked.connect(
            lambda: self.launch_requested.emit(self.count_spin.value(), self.mode,
                                               self.concurrency_spin.value()))
        self._preset = "square"
        self.mode_hint = HintLabel()
        self.mode_hint.setObjectName("workerModeHintLabel")
        self.mode_hint.setWordWrap(True)
        self.mode_hint.setTextFormat(Qt.TextFormat.RichText)
        self.mode_hint.setToolTip("Which worker mode fits the task chosen under Submit tasks")
        self.remote_button = QPushButton("Connect a remote worker…")
        self.remote_button.setObjectName("remoteWorkerButton")
        self.remote_button.setToolTip("What another machine needs to join this server "
                                      "(Ctrl+K)")
        self.remote_button.clicked.connect(self.remote_requested)

        self.stop_button = QPushButton("Stop")
        self.stop_button.setObjectName("stopWorkersButton")
        self.stop_button.setToolTip("Stop the selected workers gracefully: each finishes its "
                                    "task and hands back the rest (remote ones too)")
        self.stop_button.clicked.connect(self._on_stop_clicked)
        self.kill_button = QPushButton("Kill")
        self.kill_button.setObjectName("killWorkersButton")
        self.kill_button.setToolTip("SIGKILL the selected local workers, as a crash would: "
                                    "watch their tasks come back to the queue once the lease "
                                    "expires")
        self.kill_button.clicked.connect(self._on_kill_clicked)
        self.stop_all_button = QPushButton("Stop all")
        self.stop_all_button.setObjectName("stopAllWorkersButton")
        self.stop_all_button.setToolTip("Stop every local worker and ask remote ones to leave")
        self.stop_all_button.clicked.connect(self.stop_all_requested)
        self.forget_button = QPushButton("Forget offline")
        self.forget_button.setObjectName("forgetOfflineButton")
        self.forget_button.setToolTip("Remove offline workers from the list")
        self.forget_button.clicked.connect(self.forget_offline_requested)

        self.table = QTableView()
        self.table.setObjectName("workersTable")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        header = self.table.horizontalHeader()
        header.setStretchLastSection(True)
        header.setHighlightSections(False)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        fit_columns(self.table, {
            WorkersModel.COL_NAME: "local-10", WorkersModel.COL_WHERE: "remote",
            WorkersModel.COL_MODE: "process ×16 *", WorkersModel.COL_STATE: "stopping",
            WorkersModel.COL_TASK: "1,000,000", WorkersModel.COL_DONE: "1,000,000",
            WorkersModel.COL_FAILED: "10,000", WorkersModel.COL_HEARTBEAT: "10.0 s ago",
            WorkersModel.COL_HOST: "hostname"})
        self.table.selectionModel().selectionChanged.connect(self._update_buttons)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._on_context_menu)

        self.summary = HintLabel()
        self.summary.setObjectName("workersSummaryLabel")
        self.summary.setMinimumWidth(0)
        self.summary.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.hint = ErrorLabel()
        self.hint.setObjectName("workersHintLabel")

        top = QHBoxLayout()
        top.addWidget(QLabel("Local workers"))
        top.addWidget(self.count_spin)
        top.addWidget(self.mode_combo)
        top.addWidget(self.concurrency_spin)
        top.addWidget(self.launch_button)
        top.addStretch(1)
        top.addWidget(self.remote_button)
        actions = QHBoxLayout()
        actions.addWidget(self.summary, 1)
        for b in (self.stop_button, self.kill_button, self.stop_all_button, self.forget_button):
            actions.addWidget(b)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.mode_hint)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.hint)
        layout.addLayout(actions)
        self._on_mode_changed()
        self.set_workers((), (), 0.0)
        self.set_enabled(False)

    # -- API

    @property
    def mode(self) -> str:
        """The execution mode new local workers get."""
        return str(self.mode_combo.currentData())

    @property
    def concurrency(self) -> int:
        """Tasks each new local worker runs at once."""
        return self.concurrency_spin.value()

    def set_mode(self, mode: str, concurrency: int | None = None) -> None:
        """Choose the mode (its default concurrency unless one is given)."""
        i = self.mode_combo.findData(mode)
        if i >= 0:
            self.mode_combo.setCurrentIndex(i)
        if concurrency:
            self.concurrency_spin.setValue(int(concurrency))

    def set_task_preset(self, preset: str) -> None:
        """The task chosen in the submit panel: the hint says which mode fits it."""
        self._preset = preset if preset in PRESETS else "custom"
        self._update_hint()

    def set_enabled(self, enabled: bool) -> None:
        """Actions are available while a server answers."""
        self._enabled = enabled
        self._update_buttons()

    def set_workers(self, workers: Sequence[WorkerInfo], local_pids: Collection[int],
                    now: float) -> None:
        """Refresh the table from a snapshot (selection is kept)."""
        self.model.set_workers(workers, local_pids, now)
        online = sum(1 for w in workers
                     if w.state is not WorkerState.OFFLINE and not self.model.killed(w))
        local = sum(1 for w in workers if self.model.is_local(w)
                    and w.state is not WorkerState.OFFLINE)
        offline = len(workers) - online
        text = f"{online} connected · {local} local"
        if online - local:
            text += f" · {online - local} remote"
        if offline:
            text += f", <span style='color:{state_color('failed')}'>{offline} offline</span>"
        self.summary.setText(text)
        widen_to_rows(self.table, (WorkersModel.COL_NAME, WorkersModel.COL_MODE,
                                   WorkersModel.COL_HOST))
        self._update_buttons()

    def set_local_pids(self, pids: Collection[int]) -> None:
        """Which pids this window launched."""
        self.model.set_local_pids(pids)
        self._update_buttons()

    def mark_killed(self, pids: Collection[int]) -> None:
        """Show workers this window killed as dead right away."""
        self.model.mark_killed(pids)
        self._update_buttons()

    def selected_workers(self) -> list[WorkerInfo]:
        """The workers on the selected rows."""
        rows = sorted({i.row() for i in self.table.selectionModel().selectedRows()})
        return [self.model.worker(r) for r in rows if r < self.model.rowCount()]

    def select_worker(self, worker_id: str) -> bool:
        """Select the row of a worker by id (for keyboard use and tests)."""
        for row, w in enumerate(self.model.workers()):
            if w.id == worker_id:
                self.table.selectRow(row)
                return True
        return False

    # -- slots

    def _on_mode_changed(self) -> None:
        mode = self.mode
        self.concurrency_spin.setValue(default_concurrency(mode))
        self.concurrency_spin.setEnabled(mode != "inline")  # inline runs one at a time
        self._update_hint()

    def _update_hint(self) -> None:
        self.mode_hint.setText(worker_hint(self._preset, self.mode))

    def _on_stop_clicked(self) -> None:
        chosen = [w for w in self.selected_workers() if w.state is not WorkerState.OFFLINE]
        if not chosen:
            self.hint.show_error("Select the workers to stop first.")
            return
        self.hint.clear_error()
        self.stop_requested.emit(chosen)

    def _on_kill_clicked(self) -> None:
        chosen = self.selected_workers()
        local = [w.pid for w in chosen if self.model.is_local(w)
                 and w.state is not WorkerState.OFFLINE]
        if not local:
            self.hint.show_error("Only workers this window launched can be killed; stop "
                                 "remote workers with Stop." if chosen else
                                 "Select the local workers to kill first.")
            return
        self.hint.clear_error()
        self.kill_requested.emit(local)

    def context_menu(self, row: int) -> QMenu:
        """The right-click menu of a worker row: stop, kill, show log, copy."""
        if row >= 0 and not self.table.selectionModel().isRowSelected(row):
            self.table.selectRow(row)
        chosen = self.selected_workers()
        menu = QMenu(self)
        menu.setObjectName("workersContextMenu")
        on = self._enabled and bool(chosen)
        live = [w for w in chosen if w.state is not WorkerState.OFFLINE]
        stop = menu.addAction("Stop (finish the task at hand)", self._on_stop_clicked)
        stop.setEnabled(on and bool(live))
        kill = menu.addAction("Kill (SIGKILL, as a crash would)", self._on_kill_clicked)
        kill.setEnabled(on and any(self.model.is_local(w) for w in live))
        log = menu.addAction("Show log…", lambda: self.log_requested.emit(chosen[0]))
        log.setEnabled(len(chosen) == 1 and self.model.is_local(chosen[0]))
        if log.isEnabled() is False and len(chosen) == 1:
            log.setToolTip("Only workers this window launched have a log here")
        menu.addSeparator()
        copy = menu.addAction("Copy name", lambda: QGuiApplication.clipboard().setText(
            "\n".join(w.name for w in chosen)))
        copy.setEnabled(bool(chosen))
        return menu

    def _on_context_menu(self, pos: QPoint) -> None:
        row = self.table.rowAt(pos.y())
        if row < 0:
            return
        self.context_menu(row).exec(self.table.viewport().mapToGlobal(pos))

    def _update_buttons(self) -> None:
        chosen = self.selected_workers()
        on = self._enabled
        self.launch_button.setEnabled(on)
        self.remote_button.setEnabled(on)
        self.stop_button.setEnabled(on and bool(chosen))
        self.kill_button.setEnabled(on and any(self.model.is_local(w) for w in chosen))
        self.stop_all_button.setEnabled(on and self.model.rowCount() > 0)
        self.forget_button.setEnabled(on and any(w.state is WorkerState.OFFLINE
                                                 for w in self.model.workers()))
