"""The main window: lays the panels out, turns their requests into controller calls, and
shows what the controller reports. It holds no connection and starts no process itself."""

from __future__ import annotations

import dataclasses
import html
import time
from typing import Any

from PySide6.QtCore import QByteArray, QRect, QSettings, Qt, Slot
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence, QShowEvent, QTextCursor
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFileDialog,
    QFrame,
    QGroupBox,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from .. import __version__ as _version
from ..core.executors import default_concurrency
from ..core.protocol import Snapshot
from ..core.security import key_weakness
from ..core.urls import redact_url
from .controller import Controller
from .dialogs import (
    AttachDialog,
    ConnectRemoteDialog,
    DocumentationDialog,
    LogDialog,
    Preferences,
    PreferencesDialog,
    RedisWorkerDialog,
)
from .failures import Burst, FailureDigest
from .geometry import (
    available_geometry,
    default_rect,
    fit_rect,
    is_compact,
    minimum_for,
)
from .pacing import Pacer
from .panels import (
    EventLogDock,
    JobsPanel,
    ServerBar,
    SubmitPanel,
    TasksPanel,
    TotalsPanel,
    WorkersPanel,
)
from .panels.insight import FunctionsPanel, TaskStreamPanel
from .plots import WINDOWS, LivePlots
from .remote_script import is_loopback_literal
from .state import (
    DEMO_PHASE_S,
    Mode,
    Notice,
    Phase,
    ServerOptions,
    Status,
    SubmitOutcome,
)
from .stopping import Keeping, quit_question, stop_question
from .style import fmt_int, plural, state_color
from .submission import SubmitJob
from .widgets import Banner, scrollable

#: The demo's local workers: processes for its CPU phase, threads for its I/O phase.
DEMO_WORKER_MODES = ("process", "thread")
#: What each demo worker claims: CPU-bound work to the processes, the rest to the threads.
DEMO_WORKER_TASKS = {"process": ("primes",), "thread": ("square", "io_wait", "sleep", "fail")}
#: The demo's tasks that fail on purpose (labelled so, and never a banner).
DEMO_FAILING = ("fail",)

#: Pixels kept free above the window for the title bar the window manager adds.
_TITLE_BAR_RESERVE = 32

#: Actions whose server writes its own Event log line (one retry wrote two lines).
_SERVER_LOGS = frozenset({"cancel", "purge", "retry", "retry_all", "pause", "resume"})

_ACTION_WORDS = {
    "cancel": "cancelled {} queued task(s)",
    "purge": "purged the queue: {} task(s) cancelled",
    "retry": "queued {} task(s) again",
    "retry_all": "queued {} failed task(s) again",
    "request_stop": "asked {} worker(s) to stop",
    "forget_offline": "forgot {} offline worker(s)",
    "pause": "dispatch paused",
    "resume": "dispatch resumed",
    "cancel_job": "cancelled {} queued task(s) of the job",
    "retry_job": "queued {} failed task(s) of the job again",
}


class MainWindow(QMainWindow):
    """The guidist window. Closing it stops local workers and the embedded server."""

    def __init__(self, controller: Controller, settings: QSettings,
                 prefs: Preferences | None = None, journal_available: bool = False,
                 parent: QWidget | None = None,
                 session_prefs: Preferences | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("mainWindow")
        self.controller = controller
        self.settings = settings
        #: The person's choices: what is saved. Never changed by the command line or the demo.
        self.prefs = prefs or Preferences()
        #: What this run uses: prefs with --no-journal, --demo, --lease-timeout… applied.
        self.session_prefs = session_prefs or dataclasses.replace(self.prefs)
        self.journal_available = journal_available
        #: The newest snapshot every view shows (set once all its slices were drawn).
        self.last_snapshot: Snapshot | None = None
        self.pacer = Pacer(self)
        self._demo_pending = False
        self._shut_down = False
        self._lost_banner = False
        self._attach_address = str(settings.value("attach/address", "") or "")
        #: Where the running embedded server keeps its state (for Stop's and Quit's question).
        self.keeping = Keeping()
        self.failures = FailureDigest()
        self._attach_after_stop = False
        self._fitted_on_show = False
        self._log_dialogs: dict[int, LogDialog] = {}  # open live logs, by worker pid

        self.server_bar = ServerBar()
        self.banner = Banner()
        #: Says a demo runs (and stops it); separate, so an error banner never hides it.
        self.demo_banner = Banner(name="demoBanner")
        self.submit_panel = SubmitPanel()
        self.totals_panel = TotalsPanel()
        self.plots = LivePlots()
        self.workers_panel = WorkersPanel()
        self.tasks_panel = TasksPanel()
        self.event_dock = EventLogDock(self)
        self.jobs_panel = JobsPanel()
        self.functions_panel = FunctionsPanel()
        self.stream_panel = TaskStreamPanel()
        self._build_layout()
        self._build_status_bar()
        self._build_menus()
        self._wire()
        self._restore_settings()
        self._on_status_changed(controller.status)

    # ------------------------------------------------------------------ layout

    def _build_layout(self) -> None:
        plots_box = QGroupBox("Live")
        plots_box.setObjectName("plotsBox")
        box_layout = QVBoxLayout(plots_box)
        box_layout.setContentsMargins(6, 4, 6, 6)
        box_layout.addWidget(self.plots)

        left = QWidget()
        left.setObjectName("leftColumn")
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.submit_panel)
        left_layout.addWidget(self.totals_panel)
        left_layout.addStretch(1)
        # On a short screen the column scrolls rather than piling its form rows onto each
        # other (or making the window taller than the screen).
        self.left_scroll = scrollable(left, "leftScroll")
        self.left_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.left_scroll.setMinimumWidth(left.minimumSizeHint().width()
                                         + self.left_scroll.verticalScrollBar()
                                         .sizeHint().width())
        self.top_splitter = QSplitter(Qt.Orientation.Horizontal)
        self.top_splitter.setObjectName("topSplitter")
        self.top_splitter.addWidget(self.left_scroll)
        self.top_splitter.addWidget(plots_box)
        self.top_splitter.setStretchFactor(0, 0)
        self.top_splitter.setStretchFactor(1, 1)
        self.top_splitter.setSizes([340, 940])
        self.top_splitter.setChildrenCollapsible(False)

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(6, 6, 6, 0)
        layout.setSpacing(6)
        layout.addWidget(self.server_bar)
        layout.addWidget(self.demo_banner)
        layout.addWidget(self.banner)
        # When banners and a short screen leave the plots less than their minimum, the area
        # scrolls: the plots drew over each other instead.
        self.top_scroll = scrollable(self.top_splitter, "topScroll")
        layout.addWidget(self.top_scroll, 1)
        self.setCentralWidget(central)

        # Workers, tasks and the event log are docks: a person can rearrange, float or hide
        # them, and the arrangement is remembered.
        self.workers_dock = self._dock("Workers", "workersDock", self.workers_panel)
        self.tasks_dock = self._dock("Tasks", "tasksDock", self.tasks_panel)
        self.setDockNestingEnabled(True)
        available = available_geometry(self)
        self._arrange_docks(is_compact(available))
        self.jobs_dock = self._add_jobs_dock()
        self.functions_dock, self.stream_dock = self._add_insight_docks()
        # Never larger than the screen, and never growing by itself: the panels scroll
        # instead (an explicit minimum stops Qt raising it to the content's minimum).
        self.setMinimumSize(minimum_for(available))
        self.setGeometry(default_rect(_below_title_bar(available)))

    def _dock(self, title: str, name: str, widget: QWidget) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        # A dock narrower or shorter than its panel scrolls: rows never overlap.
        dock.setWidget(scrollable(widget, f"{name}Scroll"))
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                         | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        return dock

    def _arrange_docks(self, compact: bool) -> None:
        """The default arrangement: workers beside tasks (event log behind workers) on a
        large screen; on a small one all three are tabs of one full-width row."""
        bottom = Qt.DockWidgetArea.BottomDockWidgetArea
        self.compact = compact
        self.addDockWidget(bottom, self.workers_dock)
        if compact:
            self.addDockWidget(bottom, self.tasks_dock)
            self.tabifyDockWidget(self.workers_dock, self.tasks_dock)
        else:
            self.splitDockWidget(self.workers_dock, self.tasks_dock, Qt.Orientation.Horizontal)
        self.addDockWidget(bottom, self.event_dock)
        self.tabifyDockWidget(self.workers_dock, self.event_dock)
        (self.tasks_dock if compact else self.workers_dock).raise_()

    def _default_dock_sizes(self) -> None:
        height = 240 if self.compact else 290
        if not self.compact:
            self.resizeDocks([self.workers_dock, self.tasks_dock], [520, 760],
                             Qt.Orientation.Horizontal)
        self.resizeDocks([self.workers_dock], [height], Qt.Orientation.Vertical)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.counts_label = QLabel()
        self.counts_label.setObjectName("statusCountsLabel")
        self.workers_label = QLabel()
        self.workers_label.setObjectName("statusWorkersLabel")
        self.rate_label = QLabel()
        self.rate_label.setObjectName("statusRateLabel")
        self.paused_label = QLabel("DISPATCH PAUSED")
        self.paused_label.setObjectName("statusPausedLabel")
        self.paused_label.setStyleSheet(f"color:{state_color('running')}; font-weight:bold;")
        self.paused_label.hide()
        # A journal that cannot be written (a full disk) refuses submits: say so, and where.
        self.journal_label = QLabel("JOURNAL CANNOT BE WRITTEN")
        self.journal_label.setObjectName("statusJournalLabel")
        self.journal_label.setStyleSheet("color:#d62728; font-weight:bold;")
        self.journal_label.hide()
        bar.addPermanentWidget(self.journal_label)
        self._status_separators: list[QFrame] = []
        for i, w in enumerate((self.paused_label, self.counts_label, self.workers_label,
                               self.rate_label)):
            if i > 1:  # a line between the permanent fields, as desktop status bars have
                line = QFrame()
                line.setFrameShape(QFrame.Shape.VLine)
                line.setFrameShadow(QFrame.Shadow.Sunken)
                line.setObjectName(f"statusSeparator{i}")
                self._status_separators.append(line)
                bar.addPermanentWidget(line)
            bar.addPermanentWidget(w)
        self._show_counts(None)

    def _action(self, menu: Any, text: str, slot: Any, shortcut: Any = None,
                name: str = "", tip: str = "", checkable: bool = False) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if name:
            action.setObjectName(name)
        if tip:
            action.setStatusTip(tip)
        action.setCheckable(checkable)
        (action.toggled if checkable else action.triggered).connect(slot)
        menu.addAction(action)
        return action

    def _build_menus(self) -> None:
        mb = self.menuBar()
        m = mb.addMenu("&File")
        self.start_action = self._action(m, "&Start server", self.start_server, "Ctrl+R",
                                         "startServerAction")
        self.stop_action = self._action(m, "S&top server", self.stop_server, "Ctrl+Shift+R",
                                        "stopServerAction")
        self.attach_action = self._action(m, "&Attach to a running server…", self.attach,
                                          "Ctrl+O", "attachAction")
        m.addSeparator()
        self.demo_action = self._action(
            m, "Run the &demo", self.set_demo, "Ctrl+D", "demoAction",
            "Start the server, a process and a thread worker, and a load that alternates "
            "CPU-bound and I/O-bound phases", checkable=True)
        m.addSeparator()
        self._action(m, "Export plots as &PNG…", self.export_png, "Ctrl+Shift+E",
                     "exportPngAction")
        self._action(m, "Export series as &CSV…", self.export_csv, None, "exportCsvAction")
        self._action(m, "Export &tasks (CSV or JSON lines)…", self.export_tasks, None,
                     "exportTasksAction")
        m.addSeparator()
        self._action(m, "P&references…", self.edit_preferences,
                     QKeySequence.StandardKey.Preferences, "preferencesAction")
        m.addSeparator()
        self._action(m, "&Quit", self.close, QKeySequence.StandardKey.Quit, "quitAction")

        m = mb.addMenu("&Tasks")
        self._action(m, "&Enqueue", self.submit_panel.request_submit, "Ctrl+Return",
                     "enqueueAction")
        self._action(m, "Cancel the &submission", self._on_cancel_submit, None,
                     "cancelSubmitAction")
        m.addSeparator()
        self._action(m, "&Pause or resume dispatch",
                     lambda: self._on_pause_requested(not self._paused()), "Ctrl+Shift+P",
                     "pauseDispatchAction")
        self._action(m, "&Retry all failed", self._on_retry_all, None, "retryAllAction")
        self._action(m, "P&urge queue…", self._on_purge, None, "purgeAction")
        m.addSeparator()
        self._action(m, "Re&fresh tasks", self.tasks_panel.refresh, "F5", "refreshTasksAction")
        self._action(m, "&Find a task", self._focus_search, QKeySequence.StandardKey.Find,
                     "findTaskAction")

        m = mb.addMenu("&Workers")
        self._action(m, "&Launch local workers",
                     lambda: self.workers_panel.launch_button.click(), "Ctrl+L",
                     "launchWorkersAction")
        self._action(m, "&Stop all workers", self._on_stop_all_workers, None,
                     "stopAllWorkersAction")
        self._action(m, "&Forget offline workers", self._on_forget_offline, None,
                     "forgetOfflineAction")
        m.addSeparator()
        self._action(m, "&Connect a remote worker…", self.connect_remote_worker, "Ctrl+K",
                     "connectRemoteAction")

        m = mb.addMenu("&View")
        for dock in (self.workers_dock, self.tasks_dock, self.event_dock, self.jobs_dock,
                     self.functions_dock, self.stream_dock):
            m.addAction(dock.toggleViewAction())
        self._action(m, "Show the &event log", self._show_event_log, "Ctrl+E",
                     "showEventLogAction")
        m.addSeparator()
        self.pause_plots_action = self._action(m, "&Pause plots", self.plots.set_paused,
                                               "Ctrl+P", "pausePlotsAction", checkable=True)
        self.plots.paused_changed.connect(self.pause_plots_action.setChecked)
        m.addSeparator()
        for i, (label, seconds) in enumerate(WINDOWS.items(), 1):
            self._action(m, f"Last {label}", lambda _=False, s=seconds: self.plots.set_window(s),
                         f"Ctrl+{i}", f"window{seconds}Action")

        m = mb.addMenu("&Help")
        self._action(m, "&Documentation", self.show_documentation,
                     QKeySequence.StandardKey.HelpContents, "documentationAction")
        m.addSeparator()
        self._action(m, "&About guidist", self.about, None, "aboutAction")
        self._action(m, "About &Qt", QApplication.aboutQt, None, "aboutQtAction")

    def _wire(self) -> None:
        c = self.controller
        c.status_changed.connect(self._on_status_changed)
        c.snapshot.connect(self._on_snapshot)
        c.local_workers_changed.connect(self._on_local_workers)
        c.workers_killed.connect(self.workers_panel.mark_killed)
        c.submit_progress.connect(self.submit_panel.on_progress)
        c.submit_finished.connect(self._on_submit_finished)
        c.page_loaded.connect(self.tasks_panel.model.on_page)
        c.task_loaded.connect(self.tasks_panel.on_task_loaded)
        c.action_done.connect(self._on_action_done)
        c.notice.connect(self._on_notice)
        c.failures.connect(self._on_failures)
        c.task_orders.connect(self.tasks_panel.set_orderable)
        c.worker_log.connect(self._on_worker_log)
        self.demo_banner.action_triggered.connect(lambda: self.set_demo(False))
        self._banner_action: Any = None
        self.banner.action_triggered.connect(self._on_banner_action)
        self.banner.dismissed.connect(lambda: setattr(self, "_banner_action", None))

        self.plots.export_png_requested.connect(self.export_png)
        self.plots.export_csv_requested.connect(self.export_csv)

        sb = self.server_bar
        sb.start_requested.connect(self._on_start_requested)
        sb.stop_requested.connect(self.stop_server)
        sb.attach_requested.connect(self.attach)
        sb.warning.connect(lambda text: self.banner.show_message(text, "warning"))

        sp = self.submit_panel
        sp.submit_requested.connect(self._on_submit_requested)
        sp.cancel_requested.connect(self._on_cancel_submit)
        sp.preset_changed.connect(self.workers_panel.set_task_preset)

        wp = self.workers_panel
        wp.launch_requested.connect(c.launch_workers)
        wp.stop_requested.connect(c.stop_workers)
        wp.kill_requested.connect(c.kill_workers)
        wp.stop_all_requested.connect(self._on_stop_all_workers)
        wp.forget_offline_requested.connect(self._on_forget_offline)
        wp.remote_requested.connect(self.connect_remote_worker)
        wp.log_requested.connect(lambda w: c.request_worker_log(w.pid))

        tp = self.tasks_panel
        tp.model.page_needed.connect(c.request_page)
        tp.detail_requested.connect(c.request_task)
        tp.cancel_requested.connect(self._on_cancel_tasks)
        tp.retry_requested.connect(lambda ids: c.act("retry", ids))
        tp.retry_all_requested.connect(self._on_retry_all)
        tp.purge_requested.connect(self._on_purge)
        tp.pause_requested.connect(self._on_pause_requested)
        self._wire_jobs()

    # ------------------------------------------------------------------ jobs

    def _add_jobs_dock(self) -> QDockWidget:
        """The jobs panel, a tab beside the workers and the event log (beside the tasks)."""
        dock = self._dock("Jobs", "jobsDock", self.jobs_panel)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
        self.tabifyDockWidget(self.workers_dock, dock)
        (self.tasks_dock if self.compact else self.workers_dock).raise_()  # as arranged
        return dock

    def _add_insight_docks(self) -> tuple[QDockWidget, QDockWidget]:
        """The Functions view and the Task stream: tabs beside the workers."""
        docks = (self._dock("Functions", "functionsDock", self.functions_panel),
                 self._dock("Task stream", "taskStreamDock", self.stream_panel))
        for dock, panel in zip(docks, (self.functions_panel, self.stream_panel)):
            self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
            self.tabifyDockWidget(self.workers_dock, dock)
            # Covered by another tab, they do not draw (their data keep coming in).
            dock.visibilityChanged.connect(panel.set_on_screen)
        (self.tasks_dock if self.compact else self.workers_dock).raise_()  # as arranged
        return docks

    def _wire_jobs(self) -> None:
        jp = self.jobs_panel
        jp.job_selected.connect(
            lambda job: self.tasks_panel.set_job(None if job is None else job.id,
                                                 "" if job is None else job.name))
        self.tasks_panel.job_cleared.connect(lambda: jp.select_job(None))
        jp.cancel_requested.connect(self._on_cancel_job)
        jp.retry_requested.connect(lambda job: self.controller.act("retry_job", job.id))
        jp.export_requested.connect(self._on_export_job)

    def _on_cancel_job(self, job: Any) -> None:
        if self.confirm("Cancel the job?", f"Cancel the {fmt_int(job.queued)} queued task(s) "
                        f"of job {job.name}? Running tasks finish; the queued ones will not "
                        "run."):
            self.controller.act("cancel_job", job.id)

    def _on_export_job(self, job: Any) -> None:
        path, chosen = QFileDialog.getSaveFileName(
            self, "Export the job's results", f"{job.name}.csv",
            "CSV (*.csv);;JSON lines (*.jsonl)")
        if not path:
            return
        if "jsonl" in chosen and not path.lower().endswith(".jsonl"):
            path += ".jsonl"
        self.controller.export_job_results(path, job.id)

    # ------------------------------------------------------------------ actions

    def confirm(self, title: str, text: str) -> bool:
        """Ask a yes/no question (tests replace this method)."""
        answer = QMessageBox.question(self, title, text,
                                      QMessageBox.StandardButton.Yes
                                      | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def start_server(self) -> None:
        """Start the embedded server with what the server bar says."""
        self.server_bar.start_button.click()

    def stop_server(self) -> None:
        """Stop the embedded server (asking first if tasks would be lost), or detach."""
        st = self.controller.status
        snap = self.last_snapshot
        if st.mode is Mode.EMBEDDED and snap is not None and self._unfinished() and \
                not self.confirm("Stop the server?", stop_question(
                    snap.count("queued"), snap.count("running"), self.keeping)):
            return
        self._demo_pending = False
        self.demo_action.setChecked(False)
        self.controller.disconnect_server()

    def attach(self) -> None:
        """Ask for a server to monitor and attach to it; while this window's own server runs,
        offer to stop it first."""
        st = self.controller.status
        if st.mode is Mode.ATTACHED:
            return
        if st.mode is Mode.EMBEDDED:
            if st.phase is Phase.STOPPING:
                return
            snap = self.last_snapshot
            fate = ""
            if snap is not None and self._unfinished():
                fate = " " + stop_question(snap.count("queued"), snap.count("running"),
                                           self.keeping).rsplit(" Stop the server", 1)[0]
            if not self.confirm("Stop this window's server?",
                                "A window monitors one server at a time. Stop the server it "
                                f"runs (and its local workers) and attach to another?{fate}"):
                return
            self._attach_after_stop = True
            self._demo_pending = False
            self.demo_action.setChecked(False)
            self.controller.disconnect_server()
            return
        dialog = AttachDialog(self, self._attach_address)
        if not dialog.exec():
            return
        if dialog.redis_url is not None:
            # Remember where, never the password.
            self._attach_address = redact_url(dialog.redis_url)
            self.settings.setValue("attach/address", self._attach_address)
            self.attach_redis(dialog.redis_url)
        elif dialog.address is not None:
            self._attach_address = dialog.address_edit.text().strip()
            self.settings.setValue("attach/address", self._attach_address)
            self.attach_to(dialog.address, dialog.key_edit.text())

    def attach_to(self, address: tuple[str, int], key: str) -> None:
        """Monitor a server elsewhere (no dialog)."""
        self.tasks_panel.history_hint = TasksPanel.HISTORY_HINT
        self.plots.clear()
        self.controller.attach(address, key)

    def attach_redis(self, url: str) -> None:
        """Monitor a Redis deployment (no dialog)."""
        self.tasks_panel.history_hint = "Redis keeps only the newest finished tasks."
        self.plots.clear()
        self.controller.attach_redis(url)

    def connect_remote_worker(self) -> ConnectRemoteDialog | RedisWorkerDialog | None:
        """Show what another machine needs to join (non-modal)."""
        st = self.controller.status
        url = self.controller.redis_url
        if url and st.mode is not Mode.NONE:
            redis_dialog = RedisWorkerDialog(url, self, mode=self.workers_panel.mode,
                                             concurrency=self.workers_panel.concurrency)
            redis_dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            redis_dialog.show()
            return redis_dialog
        if st.address is None:
            self.banner.show_message("Start the server first: a remote worker needs its "
                                     "address and key.", "info")
            return None
        attached = st.mode is Mode.ATTACHED
        bind = st.address[0] if attached or st.bind_host is None else st.bind_host
        dialog = ConnectRemoteDialog(bind, st.address[1], self.controller.key, self,
                                     attached=attached)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog

    def set_demo(self, on: bool) -> None:
        """Run (or stop) the demo: server, a process and a thread worker, alternating load."""
        if self.demo_action.isChecked() != on:
            self.demo_action.setChecked(on)  # re-enters through toggled
            return
        if not on:
            self._demo_pending = False
            self.controller.set_demo(False)
            self._show_demo(False)
            return
        st = self.controller.status
        if st.mode is Mode.NONE:
            self._demo_pending = True
            self.start_server()
        elif st.online:
            self._begin_demo()
        else:
            self._demo_pending = True

    def start_demo(self) -> None:
        """Same as the File → Run the demo menu action."""
        self.set_demo(True)

    def _begin_demo(self) -> None:
        self._demo_pending = False
        if not self.controller.local_pids:
            # One worker of each kind the two phases need: the plots show which carries what.
            # Each claims only what its mode suits: without this the thread worker, with 32
            # free slots, grabbed the CPU-bound primes and the process worker sat idle.
            for mode in DEMO_WORKER_MODES:
                self.controller.launch_workers(1, mode, default_concurrency(mode),
                                               DEMO_WORKER_TASKS[mode])
        self.controller.set_demo(True)
        self._show_demo(True)
        self.event_dock.add_note(time.time(), "control", f"demo load started: "
                                 f"{DEMO_PHASE_S:.0f} s of CPU-bound primes, then "
                                 f"{DEMO_PHASE_S:.0f} s of blocking I/O (io_wait), in turn, "
                                 "with squares and some failures throughout")

    def export_png(self) -> None:
        """Save the plots as a PNG image."""
        path, _ = QFileDialog.getSaveFileName(self, "Export plots", "guidist-plots.png",
                                              "PNG image (*.png)")
        if path:
            ok = self.plots.export_png(path)
            self.statusBar().showMessage(f"Saved {path}" if ok else f"Could not save {path}",
                                         5000)

    def export_csv(self) -> None:
        """Save the per-second series (up to an hour) as CSV."""
        path, _ = QFileDialog.getSaveFileName(self, "Export series", "guidist-series.csv",
                                              "CSV (*.csv)")
        if path:
            try:
                n = self.plots.export_csv(path)
            except OSError as exc:
                self.banner.show_message(f"Could not save {path}: {exc.strerror}.")
                return
            self.statusBar().showMessage(f"Saved {n} seconds of data to {path}", 5000)

    def export_tasks(self) -> None:
        """Save the tasks the server lists, filtered like the tasks table, as CSV or JSONL."""
        path, chosen = QFileDialog.getSaveFileName(
            self, "Export tasks", "guidist-tasks.csv",
            "CSV (*.csv);;JSON lines (*.jsonl)")
        if not path:
            return
        if "jsonl" in chosen and not path.lower().endswith(".jsonl"):
            path += ".jsonl"
        state, search = self.tasks_panel.current_filter()
        self.controller.export_tasks(path, state, search)

    def edit_preferences(self) -> None:
        """Edit lease timeout, attempts, journal, autostart."""
        dialog = PreferencesDialog(self.prefs, self.journal_available, self)
        if dialog.exec():
            # What the person chose is saved and, from the next start, used as it is.
            self.prefs = dialog.preferences()
            self.session_prefs = dataclasses.replace(self.prefs)
            self._save_prefs()

    def about(self) -> None:
        """Help → About."""
        import pyqtgraph
        from PySide6 import __version__ as pyside_version

        QMessageBox.about(
            self, "About guidist",
            f"<h3>guidist {_version}</h3>"
            "<p>A desktop monitor and controller for a Python master/worker task queue built "
            "on <code>multiprocessing.managers</code>: start a server, launch or invite "
            "workers, queue tasks and watch them flow.</p>"
            "<p>Workers written like the classic <code>task_worker.py</code> tutorial work "
            "unchanged.</p>"
            f"<p style='color:#666'>PySide6 {pyside_version} · pyqtgraph "
            f"{pyqtgraph.__version__}</p>")

    def show_welcome(self) -> None:
        """A first hint for a window that opens without a server."""
        self.banner.show_message(
            "No server yet. Press <b>Start</b> (Ctrl+R) to run a queue server here, "
            "<b>File → Run the demo</b> (Ctrl+D) to watch one at work, or <b>Attach…</b> "
            "(Ctrl+O) to monitor a server that already runs elsewhere.", "info")

    def shutdown(self) -> None:
        """Save settings, then stop the submission, polling, local workers and the server."""
        if self._shut_down:
            return
        self._shut_down = True
        self.pacer.clear()
        self._save_settings()
        self.controller.shutdown()

    def fit_to_screen(self) -> None:
        """Shrink and move the window so that it, frame included, fits the available area of
        its screen."""
        if self.isMaximized() or self.isFullScreen():
            return
        inner, frame = self.geometry(), self.frameGeometry()
        if frame == inner:  # not framed yet: keep room for a title bar
            frame = inner.adjusted(0, -_TITLE_BAR_RESERVE, 0, 0)
        area = available_geometry(self).adjusted(
            inner.left() - frame.left(), inner.top() - frame.top(),
            inner.right() - frame.right(), inner.bottom() - frame.bottom())
        fitted = fit_rect(inner, area)
        if fitted != inner:
            self.setGeometry(fitted)

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 (Qt name)
        """The first time: fit the screen now that the frame is known."""
        super().showEvent(event)
        if not self._fitted_on_show:
            self._fitted_on_show = True
            self.fit_to_screen()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt name)
        """Ask when tasks are still queued or running, then stop everything."""
        snap = self.last_snapshot
        if not self._shut_down and self.controller.status.mode is Mode.EMBEDDED \
                and snap is not None and self._unfinished() and not self.confirm(
                    "Quit guidist?", quit_question(snap.count("queued"), snap.count("running"),
                                                   self.keeping)):
            event.ignore()
            return
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            self.shutdown()
        finally:
            QApplication.restoreOverrideCursor()
        event.accept()

    # ------------------------------------------------------------------ helpers

    def _unfinished(self) -> int:
        snap = self.last_snapshot
        return 0 if snap is None else snap.count("queued") + snap.leased

    def _update_title(self, status: Status | None = None) -> None:
        """"guidist — host:port", with "demo" while the demo runs (the application's display
        name is not set, so Qt does not add a second "guidist")."""
        status = status or self.controller.status
        parts = ["guidist"]
        if self.controller.demo_running or self._demo_pending:
            parts.append("demo")
        if status.address is not None and status.mode is not Mode.NONE:
            parts.append(f"{status.address[0]}:{status.address[1]}")
        self.setWindowTitle(" — ".join(parts))

    def _show_demo(self, on: bool) -> None:
        """The demo banner, the title, and the label on its deliberate failures."""
        self.failures.deliberate = frozenset(DEMO_FAILING) if on else frozenset()
        self.totals_panel.set_demo(on, ", ".join(DEMO_FAILING))
        if on:
            self.demo_banner.show_message(
                "<b>Demo running</b>: a server, two local workers and a load that alternates "
                "CPU and I/O phases. Its <code>fail</code> tasks fail on purpose.",
                "info", action="Stop demo", closable=False)
            self.demo_banner.setToolTip("Red in the plots, tiles and Event log from the "
                                        "demo's fail tasks is part of the demo, not a fault. "
                                        "Stop demo stops the load; the server and workers "
                                        "stay.")
        else:
            self.demo_banner.dismiss()
        self._update_title()

    def _on_failures(self, payload: tuple[list, bool]) -> None:
        """New failures: one Event log line per kind of error (updated as more arrive), and
        a banner with the fix when a burst of them has a cause we recognise."""
        tasks, at_least = payload
        lines, burst = self.failures.add(tasks, at_least)
        for line in lines:
            self.event_dock.add_note(line.last, "failed", line.text(),
                                     key=("failed", line.key, line.first))
        if burst is not None:
            self._show_burst(burst)

    def _show_burst(self, burst: Burst) -> None:
        if self._lost_banner:
            return  # the server not answering matters more
        self.banner.show_message(html.escape(burst.text()), "error",
                                 action="Show failed tasks")
        self._banner_action = self._show_failed_tasks
        self.statusBar().showMessage(burst.text(), 10000)

    def _show_failed_tasks(self) -> None:
        self.tasks_dock.show()
        self.tasks_dock.raise_()
        i = self.tasks_panel.state_combo.findData("failed")
        self.tasks_panel.state_combo.setCurrentIndex(i)
        self.banner.dismiss()

    def _on_banner_action(self) -> None:
        action = self._banner_action
        if action is not None:
            action()

    def _on_worker_log(self, payload: tuple[int, str, list[str]]) -> None:
        pid, name, lines = payload
        title = f"Log of {name} (pid {pid})" if name else f"Log of pid {pid}"
        text = "\n".join(lines) if lines else (
            "Nothing yet." if name else "This worker is gone: its log went with it.")
        open_dialog = self._log_dialogs.get(pid)
        if open_dialog is not None:
            if name:  # a gone worker's last lines stay shown
                open_dialog.set_text(text)
            return
        dialog = LogDialog(title, text, self,
                           refresh=lambda: self.controller.request_worker_log(pid))
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.finished.connect(lambda _r, p=pid: self._log_dialogs.pop(p, None))
        dialog.text_edit.moveCursor(QTextCursor.MoveOperation.End)
        dialog.show()
        self._log_dialogs[pid] = dialog
        self.log_dialog = dialog

    def show_documentation(self) -> DocumentationDialog:
        """Help → Documentation: the README, rendered (non-modal)."""
        dialog = DocumentationDialog(self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog
    def _unfinished_text(self) -> str:
        snap = self.last_snapshot
        assert snap is not None
        return (f"{fmt_int(snap.count('queued'))} task(s) are queued, "
                f"{fmt_int(snap.count('claimed'))} claimed and "
                f"{fmt_int(snap.count('running'))} running.")

    def _paused(self) -> bool:
        return bool(self.last_snapshot and self.last_snapshot.paused)

    def _show_event_log(self) -> None:
        self.event_dock.show()
        self.event_dock.raise_()

    def _focus_search(self) -> None:
        self.tasks_panel.search_edit.setFocus()
        self.tasks_panel.search_edit.selectAll()

    def _show_counts(self, snap: Snapshot | None) -> None:
        problem = snap.journal_problem() if snap is not None else None
        self.journal_label.setVisible(problem is not None)
        if snap is not None and problem is not None:
            info = snap.extra["journal"]
            self.journal_label.setText(f"JOURNAL CANNOT BE WRITTEN ({info['error']}): "
                                       f"{info['path']}")
        self.journal_label.setToolTip(problem or "")
        if snap is None or snap.kind == "classic":
            self.counts_label.setText("no server" if snap is None else (
                f"classic master: {fmt_int(snap.count('queued'))} queued · "
                f"{fmt_int(snap.extra.get('results_waiting', 0))} results waiting"))
            self.workers_label.setText("")
            self.rate_label.setText("")
            self.paused_label.hide()
            for line in self._status_separators:
                line.hide()
            return
        for line in self._status_separators:
            line.show()
        c = snap.count
        self.counts_label.setText(
            f"{fmt_int(c('queued'))} queued · {fmt_int(c('claimed'))} claimed · "
            f"{fmt_int(c('running'))} running · "
            f"{fmt_int(c('done'))} done · {fmt_int(c('failed'))} failed · "
            f"{fmt_int(c('dead'))} dead · {fmt_int(c('cancelled'))} cancelled")
        self.workers_label.setText(plural(snap.connected_workers, "worker"))
        self.rate_label.setText(f"{snap.throughput:,.0f} tasks/s")
        self.paused_label.setVisible(snap.paused)

    # ------------------------------------------------------------------ slots

    @Slot(object)
    def _on_start_requested(self, fields: tuple[str, int, str, str | None]) -> None:
        host, port, key, backend = fields
        insist = False
        weakness = key_weakness(key.encode("utf-8"))
        if weakness and not is_loopback_literal(host):
            if not self.confirm("Use a weak key?", f"The key is {weakness}, and other "
                                "machines can reach this server: anyone who guesses the key "
                                "can run code on this machine. Press No and then New for a "
                                "random key. Use this key anyway?"):
                self.server_bar.show_error(f"The key is {weakness}: press New for a random "
                                           "one.", "key")
                self._demo_pending = False
                self.demo_action.setChecked(False)
                return
            insist = True
        prefs = self.session_prefs
        journal = None
        if backend:
            pass  # Redis keeps the state (and its AOF the durability): no journal
        elif self._demo_pending:
            pass  # a server started for the demo: its load is not worth keeping
        elif self.journal_available and prefs.use_journal and prefs.journal_path:
            journal = prefs.journal_path
        self.keeping = Keeping(journal=journal,
                               redis=redact_url(backend) if backend else None)
        self.tasks_panel.history_hint = (
            f"The older ones are in its journal: guidist export --journal {journal}"
            if journal else "Redis keeps only the newest finished tasks too." if backend else
            "This server keeps no journal, so the older ones are gone.")
        if journal is None and not backend and not self._demo_pending:
            # A window without a journal used to say nothing (a demo had turned it off).
            self.event_dock.add_note(time.time(), "control", "this server keeps no journal: "
                                     "its tasks are lost when it stops (File → Preferences → "
                                     "Keep a journal)")
        self.plots.clear()
        self.controller.start_server(ServerOptions(
            host=host, port=port, authkey=key, insist_weak_key=insist,
            lease_timeout=prefs.lease_timeout, max_attempts=prefs.max_attempts,
            journal=journal, backend=backend, metrics_port=prefs.metrics_port))

    @Slot(object)
    def _on_status_changed(self, status: Status) -> None:
        self.server_bar.set_status(status)
        online = status.online
        guidist = online and status.kind == "guidist"
        self.submit_panel.set_connected(online)
        self.workers_panel.set_enabled(online)
        self.tasks_panel.set_enabled(guidist)
        self.jobs_panel.set_enabled(guidist)
        idle = status.mode is Mode.NONE
        self.start_action.setEnabled(idle)
        # Attach is offered while this window's own server runs too: it offers to stop it.
        self.attach_action.setEnabled(status.phase is not Phase.STOPPING
                                      and status.mode is not Mode.ATTACHED)
        self.server_bar.attach_button.setEnabled(self.attach_action.isEnabled())
        self.stop_action.setEnabled(not idle and status.phase is not Phase.STOPPING)
        self.stop_action.setText("De&tach" if status.mode is Mode.ATTACHED else "S&top server")
        self._update_title(status)
        if status.phase is Phase.LOST:
            self._lost_banner = True
            self.banner.show_message(
                f"{status.message.removeprefix('Not answering: ')} The window keeps trying; "
                "everything else stays usable.", "error")
        elif self._lost_banner and status.phase is not Phase.LOST:
            self._lost_banner = False
            if self.banner.level == "error":
                self.banner.dismiss()
        if idle:
            self.pacer.clear()  # a snapshot half drawn must not come back after Stop
            self.last_snapshot = None
            self._show_counts(None)
            self.totals_panel.set_snapshot(None)
            self.plots.show_live(None)  # the header said "10 queued" after Detach
            self.workers_panel.set_workers((), (), 0.0)
            self.stream_panel.clear()
            self.failures.reset()
            self.keeping = Keeping()
            self._show_demo(False)
            if status.message and status.message not in ("Server stopped.", "Detached."):
                self.server_bar.show_error(status.message, _field_of(status.message))
            if self._demo_pending:
                self._demo_pending = False
                self.demo_action.setChecked(False)
            if self.demo_action.isChecked():
                self.demo_action.setChecked(False)
        if online and self.banner.level == "info":
            self.banner.dismiss()  # the getting-started hint has done its job
        if online and self._demo_pending:
            self._begin_demo()
        if idle and self._attach_after_stop:
            self._attach_after_stop = False
            self.attach()

    @Slot(object)
    def _on_snapshot(self, snap: Snapshot) -> None:
        # Drawn in slices, a short timer apart (gui/pacing.py): one slot that changed every
        # panel and plot made one uninterrupted paint of 15-45 ms under full load. The
        # snapshot counts as shown (last_snapshot) once its last slice ran, so every view
        # agrees with it then. New points are taken at once: a slice never misses one.
        added = self.plots.add_points(snap.series, draw=False)

        def counts() -> None:
            # Last, with last_snapshot: whoever reads a count (a tile, the header, the status
            # bar) finds every other view showing the same snapshot.
            self.plots.show_live(snap)
            self.totals_panel.set_snapshot(snap)
            self._show_counts(snap)
            self.last_snapshot = snap

        self.pacer.add([
            lambda: self.workers_panel.set_workers(snap.workers, self.controller.local_pids,
                                                   snap.time),
            lambda: self.event_dock.add_events(snap.events),
            lambda: self.tasks_panel.on_snapshot(snap),
            lambda: self.jobs_panel.set_jobs(snap.jobs),
            lambda: self.functions_panel.set_snapshot(snap),
            lambda: self.stream_panel.set_snapshot(snap),
            *(self.plots.draw_steps() if added else ()),
            counts,
        ])
        if self.last_snapshot is None:
            self.pacer.flush()  # the first picture of a server comes whole, at once

    @Slot(object)
    def _on_local_workers(self, pids: frozenset[int]) -> None:
        self.workers_panel.set_local_pids(pids)

    @Slot(object)
    def _on_submit_requested(self, job: SubmitJob) -> None:
        if self.controller.submit(job):
            self.submit_panel.on_submit_started(job)
            self.submit_panel.save_settings(self.settings)

    def _on_cancel_submit(self) -> None:
        if self.controller.submitting:
            self.submit_panel.on_cancel_pressed()
            self.controller.cancel_submit()

    @Slot(object)
    def _on_submit_finished(self, outcome: SubmitOutcome) -> None:
        self.submit_panel.on_finished(outcome)
        what = outcome.job.describe()
        if outcome.error and outcome.field:
            return  # bad input: shown next to the field, nothing was queued
        if outcome.error:
            self.event_dock.add_note(time.time(), "error", f"queued {fmt_int(outcome.sent)} "
                                     f"task(s), then failed: {outcome.error}")
            return
        rate = outcome.sent / outcome.seconds if outcome.seconds > 0 else 0
        verb = "cancelled after queueing" if outcome.cancelled else "queued"
        text = f"{verb} {fmt_int(outcome.sent)} task(s): {what}"
        if outcome.sent > 10_000 and rate:
            text += f" ({rate:,.0f} tasks/s)"
        self.event_dock.add_note(time.time(), "submit", text)
        self.statusBar().showMessage(text[:1].upper() + text[1:], 5000)
        self.tasks_panel.refresh()

    @Slot(object)
    def _on_action_done(self, payload: tuple[str, Any]) -> None:
        action, value = payload
        template = _ACTION_WORDS.get(action, action + " done")
        text = template.format(value) if "{}" in template else template
        if action not in _SERVER_LOGS:  # the server's own event says it once already
            self.event_dock.add_note(time.time(), "control", text)
        self.statusBar().showMessage(text[:1].upper() + text[1:], 5000)
        self.tasks_panel.refresh()

    @Slot(object)
    def _on_notice(self, notice: Notice) -> None:
        self.event_dock.add_note(notice.time, notice.kind, notice.message)
        if notice.kind == "error":
            self.statusBar().showMessage(notice.message, 8000)
            if not self._lost_banner:
                self.banner.show_message(notice.message, "error")

    def _on_cancel_tasks(self, ids: list[int]) -> None:
        if self.confirm("Cancel tasks?", f"Cancel {len(ids)} queued task(s)? They will not "
                        "run."):
            self.controller.act("cancel", ids)

    def _on_retry_all(self) -> None:
        self.controller.act("retry_all")

    def _on_purge(self) -> None:
        snap = self.last_snapshot
        n = snap.count("queued") if snap else 0
        if self.confirm("Purge the queue?", f"Cancel all {fmt_int(n)} queued task(s)? "
                        "Running tasks finish; nothing queued will run."):
            self.controller.act("purge")

    def _on_pause_requested(self, pause: bool) -> None:
        self.controller.act("pause" if pause else "resume")

    def _on_stop_all_workers(self) -> None:
        self.controller.stop_all_workers()

    def _on_forget_offline(self) -> None:
        self.controller.act("forget_offline")

    # ------------------------------------------------------------------ settings

    def _restore_settings(self) -> None:
        s = self.settings
        geometry = s.value("window/geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        # Saved on a larger screen it may not fit this one: Start, Attach and the status bar
        # went off-screen. Shrink and move it into the available area (again when shown,
        # once the window manager's frame is known).
        self.fit_to_screen()
        state = s.value("window/state")
        if isinstance(state, QByteArray) and not state.isEmpty():
            self.restoreState(state)
        else:
            self._default_dock_sizes()
        value = s.value("window/splitter_top")
        if isinstance(value, QByteArray) and not value.isEmpty():
            self.top_splitter.restoreState(value)
        self.submit_panel.restore_settings(s)
        try:
            self.plots.set_window(int(s.value("plots/window", 60)))
            self.workers_panel.count_spin.setValue(int(s.value("workers/count", 2)))
            mode = str(s.value("workers/mode", "inline") or "inline")
            self.workers_panel.set_mode(mode, int(s.value("workers/concurrency", 0) or 0))
        except (TypeError, ValueError):
            pass
        self.workers_panel.set_task_preset(self.submit_panel.preset)
        if str(s.value("server/backend", "")) == "redis":
            self.server_bar.set_backend("redis")

    def _save_settings(self) -> None:
        s = self.settings
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/state", self.saveState())
        s.setValue("window/splitter_top", self.top_splitter.saveState())
        s.setValue("server/port", self.server_bar.port_spin.value())
        s.setValue("plots/window", self.plots.window_seconds)
        s.setValue("workers/count", self.workers_panel.count_spin.value())
        s.setValue("workers/mode", self.workers_panel.mode)
        s.setValue("workers/concurrency", self.workers_panel.concurrency)
        s.setValue("server/backend", self.server_bar.backend)  # the URL is not stored: it
        # may hold a password
        self.submit_panel.save_settings(s)
        self._save_prefs()
        s.sync()

    def _save_prefs(self) -> None:
        s = self.settings
        p = self.prefs
        s.setValue("server/lease_timeout", p.lease_timeout)
        s.setValue("server/max_attempts", p.max_attempts)
        s.setValue("server/use_journal", p.use_journal)
        s.setValue("server/journal_path", p.journal_path)
        s.setValue("server/autostart", p.autostart)
        s.setValue("server/metrics_port", p.metrics_port)


def _below_title_bar(available: QRect) -> QRect:
    """The area a window's client rect may use: the window manager adds a title bar above
    it, which the geometry before the first show does not include."""
    return available.adjusted(0, _TITLE_BAR_RESERVE, 0, 0)


def _field_of(message: str) -> str:
    """Which server-bar field a start error is about."""
    low = message.lower()
    if "redis" in low:
        return "redis"
    if "port" in low:
        return "port"
    if "key" in low:
        return "key"
    if "listen on" in low or "address" in low or "resolve" in low:
        return "host"
    return ""
