"""The controller: every connection, process and blocking call of the window, off the GUI thread.

Three ``QThread``s each own one worker object (``background``), and nothing else touches what
a worker owns:

* **session** owns the ``Client`` the window monitors with. A ``QTimer`` polls at most 10 times a
  second with ONE ``snapshot`` call, passing cursors so only new series points and events come
  back. Task pages, task details, control actions (cancel, retry, pause…) and the demo load run
  here too: each is one short call.
* **ops** owns the embedded ``ServerProcess`` and the local ``WorkerPool``: starting and stopping
  them blocks for up to seconds.
* **submit** owns a second ``Client`` for queueing tasks: a million tasks go out in chunks with
  progress, and a ``threading.Event`` cancels between chunks.

The GUI thread talks to a worker by emitting a ``Signal(object)`` carrying a callable, which
runs in the worker's thread (a queued connection); results come back through the controller's
own signals, each carrying one immutable object. Widgets never see a proxy or a process.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import threading
import time
from functools import partial
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, QThread, Signal, Slot

from ..core.protocol import Snapshot, WorkerInfo
from ..core.urls import redact_url as redact
from ..core.urls import scrub_secrets as scrub
from .background import Ops, Session, Submitter
from .state import (
    POLL_INTERVAL_MS,
    Mode,
    Notice,
    PageRequest,
    Phase,
    ServerOptions,
    Status,
    SubmitOutcome,
    Target,
    connect_host,
)
from .submission import SubmitJob

log = logging.getLogger(__name__)


class Controller(QObject):
    """The window's only way to the server, the local workers and the task ledger.

    Lives on the GUI thread; every method returns at once and answers through a signal.
    """

    #: Snapshot: the latest state of the server (classic masters: only the queue size).
    snapshot = Signal(object)
    #: Status: connection and server state changed.
    status_changed = Signal(object)
    #: frozenset[int]: pids of the workers this window launched.
    local_workers_changed = Signal(object)
    #: frozenset[int]: local workers this window just killed (their rows show them dead).
    workers_killed = Signal(object)
    #: SubmitProgress and SubmitOutcome of the running submission.
    submit_progress = Signal(object)
    submit_finished = Signal(object)
    #: PageReply for a TasksModel page; Task | None for a detail request.
    page_loaded = Signal(object)
    task_loaded = Signal(object)
    #: (action, value) after a control call succeeded.
    action_done = Signal(object)
    #: Notice: something for the event log (kind "error" also for the banner).
    notice = Signal(object)
    #: (list[Task], at_least): tasks that failed since the last look, oldest first.
    failures = Signal(object)
    #: tuple[str, ...]: the keys the server's task listing sorts by.
    task_orders = Signal(object)
    #: (pid, name, lines): what a local worker printed, as asked with request_worker_log.
    worker_log = Signal(object)

    _to_session = Signal(object)
    _to_ops = Signal(object)
    _to_submitter = Signal(object)

    def __init__(self, parent: QObject | None = None, poll_ms: int = POLL_INTERVAL_MS) -> None:
        super().__init__(parent)
        self.status = Status()
        self.local_pids: frozenset[int] = frozenset()
        self.last_snapshot: Snapshot | None = None
        self.demo_running = False
        self._key = ""
        self._redis_url: str | None = None  # never logged or shown; see redis_url
        self._generation = itertools.count(1)
        self._session_generation = 0
        self._submitting: threading.Event | None = None
        self._shut_down = False

        self._session = Session(max(100, poll_ms))  # never faster than 10 Hz
        self._ops = Ops()
        self._submitter = Submitter()
        self._threads: list[QThread] = []
        for name, worker, channel in (("guidist-session", self._session, self._to_session),
                                      ("guidist-ops", self._ops, self._to_ops),
                                      ("guidist-submit", self._submitter, self._to_submitter)):
            thread = QThread()
            thread.setObjectName(name)
            worker.moveToThread(thread)
            channel.connect(worker._on_call)
            worker.notice.connect(self._on_worker_notice)
            start = getattr(worker, "start", None)
            if start is not None:
                thread.started.connect(start)
            self._threads.append(thread)

        self._session.polled.connect(self._on_polled)
        self._session.poll_failed.connect(self._on_poll_failed)
        self._session.failures_seen.connect(self._on_failures_seen)
        self._session.orders_known.connect(self._on_orders_known)
        self._ops.worker_log.connect(self.worker_log)
        self._session.page_loaded.connect(self.page_loaded)
        self._session.task_loaded.connect(self.task_loaded)
        self._session.action_done.connect(self._on_action_done)
        self._ops.server_started.connect(self._on_server_started)
        self._ops.server_failed.connect(self._on_server_failed)
        self._ops.server_stopped.connect(self._on_server_stopped)
        self._ops.local_workers.connect(self._on_local_workers)
        self._ops.killed.connect(self.workers_killed)
        self._submitter.progress.connect(self.submit_progress)
        self._submitter.finished.connect(self._on_submit_finished)
        for thread in self._threads:
            thread.start()
        app = QCoreApplication.instance()
        if app is not None:
            # Never let Qt destroy a running QThread (that aborts the process).
            app.aboutToQuit.connect(self.shutdown)

    # -- properties

    @property
    def key(self) -> str:
        """The key of the server shown (never logged)."""
        return self._key

    @property
    def redis_url(self) -> str | None:
        """The Redis URL of the deployment shown, with its password (never logged)."""
        return self._redis_url

    @property
    def submitting(self) -> bool:
        """True while a submission runs."""
        return self._submitting is not None

    # -- server

    def start_server(self, options: ServerOptions) -> None:
        """Start the embedded server; status_changed says when it runs (or why not)."""
        if self.status.mode is not Mode.NONE or self._shut_down:
            return
        self._key = options.authkey
        self._redis_url = options.backend
        redis = redact(options.backend) if options.backend else None
        where = f" with Redis at {redis}" if redis else ""
        self._set_status(Status(Mode.EMBEDDED, Phase.STARTING, bind_host=options.host,
                                message=f"Starting on {options.host}:{options.port or 'any'}"
                                        f"{where}…", redis=redis))
        self._to_ops.emit(partial(self._ops.start_server, options))

    def attach(self, address: tuple[str, int], key: str) -> None:
        """Monitor a server someone else runs (guidist or a classic tutorial master)."""
        if self.status.mode is not Mode.NONE or self._shut_down:
            return
        self._key = key
        self._redis_url = None
        self._set_status(Status(Mode.ATTACHED, Phase.CONNECTING, address=address,
                                message=f"Connecting to {address[0]}:{address[1]}…"))
        self._connect_all(address, key)
        self._to_ops.emit(partial(self._ops.set_target, address, key))

    def attach_redis(self, url: str) -> None:
        """Monitor and control a Redis deployment directly (no guidist server in the path)."""
        if self.status.mode is not Mode.NONE or self._shut_down:
            return
        from urllib.parse import urlsplit

        self._key = ""
        self._redis_url = url
        redis = redact(url)
        try:
            parts = urlsplit(url)
            address = (parts.hostname or "localhost", parts.port or 6379)
        except ValueError:
            address = ("localhost", 6379)
        self._set_status(Status(Mode.ATTACHED, Phase.CONNECTING, address=address,
                                message=f"Connecting to Redis at {redis}…", redis=redis))
        self._connect_all(url, "")
        self._to_ops.emit(partial(self._ops.set_target, None, "", url))

    def disconnect_server(self) -> None:
        """Stop the embedded server (and its local workers), or detach from an attached one."""
        mode = self.status.mode
        if mode is Mode.NONE:
            return
        self.set_demo(False)
        self.cancel_submit()
        self._session_generation = next(self._generation)  # drop late snapshots
        self._to_session.emit(self._session.detach)
        self._to_submitter.emit(partial(self._submitter.set_target, None))
        if mode is Mode.EMBEDDED:
            self._set_status(dataclasses.replace(self.status, phase=Phase.STOPPING,
                                                 message="Stopping workers and server…"))
            self._to_ops.emit(self._ops.stop_server)
        else:
            self._to_ops.emit(partial(self._ops.set_target, None))
            self._set_status(Status(message="Detached."))

    def _connect_all(self, target: Target, key: str) -> None:
        self._session_generation = next(self._generation)
        self._to_session.emit(partial(self._session.attach, self._session_generation, target,
                                      key))
        self._to_submitter.emit(partial(self._submitter.set_target, target, key))

    # -- workers

    def launch_workers(self, n: int, mode: str = "inline", concurrency: int | None = None,
                       functions: tuple[str, ...] = ()) -> None:
        """Start n local worker processes for the current server, running tasks in mode
        (inline, process, thread, async) with that many at once, claiming only functions'
        tasks when given."""
        self._to_ops.emit(partial(self._ops.launch, int(n), mode, concurrency, functions))

    def stop_workers(self, workers: list[WorkerInfo]) -> None:
        """Stop workers gracefully: local ones by signal, remote ones through the server."""
        local = [w.pid for w in workers if w.pid in self.local_pids and w.kind != "classic"]
        remote = [w.id for w in workers if w.pid not in self.local_pids and w.kind != "classic"]
        if local:
            self._to_ops.emit(partial(self._ops.stop_workers, local))
        if remote:
            self.act("request_stop", remote)

    def kill_workers(self, pids: list[int]) -> None:
        """SIGKILL local workers (the server requeues their tasks as their connections close);
        workers_killed says which died."""
        self._to_ops.emit(partial(self._ops.kill, [p for p in pids if p in self.local_pids]))

    def request_worker_log(self, pid: int) -> None:
        """Ask for what a local worker printed (answer: worker_log)."""
        self._to_ops.emit(partial(self._ops.send_log, int(pid)))

    def stop_all_workers(self) -> None:
        """Stop every local worker, and ask every remote guidist worker to leave."""
        self._to_ops.emit(partial(self._ops.stop_workers, None))
        snap = self.last_snapshot
        if snap is not None and self.status.online and snap.kind == "guidist":
            remote = [w.id for w in snap.workers if w.pid not in self.local_pids
                      and w.kind != "classic" and w.state.value != "offline"]
            if remote:
                self.act("request_stop", remote)

    # -- tasks

    def submit(self, job: SubmitJob) -> bool:
        """Queue a job's tasks on the submit thread; False if one is already running."""
        if self._submitting is not None or self._shut_down:
            return False
        cancel = threading.Event()
        self._submitting = cancel
        self._to_submitter.emit(partial(self._submitter.submit, job, cancel))
        return True

    def cancel_submit(self) -> None:
        """Stop the running submission after the chunk in flight (those tasks stay queued)."""
        if self._submitting is not None:
            self._submitting.set()

    def request_page(self, request: PageRequest) -> None:
        """Fetch a page for the tasks model (answer: page_loaded)."""
        self._to_session.emit(partial(self._session.load_page, request))

    def request_task(self, task_id: int) -> None:
        """Fetch one task's details (answer: task_loaded)."""
        self._to_session.emit(partial(self._session.load_task, int(task_id)))

    def export_tasks(self, path: str, state: str | None = None,
                     search: str | None = None) -> None:
        """Export the listed tasks (filtered like the tasks table) off the GUI thread; the
        outcome comes as a notice."""
        self._to_session.emit(partial(self._session.export_tasks, path, state, search))

    def export_job_results(self, path: str, job_id: int) -> None:
        """Write a job's results (submission order) off the GUI thread; the outcome comes as
        a notice."""
        self._to_session.emit(partial(self._session.export_job_results, path, int(job_id)))

    def act(self, action: str, *args: Any) -> None:
        """A control call on the server: cancel, retry, retry_all, purge, pause, resume,
        request_stop, forget_offline, cancel_job, retry_job. The answer comes as
        action_done."""
        self._to_session.emit(partial(self._session.act, action, *args))

    def set_demo(self, on: bool) -> None:
        """Start or stop the demo's steady mixed load."""
        if on == self.demo_running:
            return
        self.demo_running = on
        self._to_session.emit(partial(self._session.set_demo, on))

    # -- shutting down

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop the submission, the polling, local workers and the embedded server; join threads.

        Blocks (it is what closing the window does); afterwards no thread, timer or process
        started by the controller is left.
        """
        if self._shut_down:
            return
        self._shut_down = True
        self.cancel_submit()
        self._to_submitter.emit(self._submitter.finish)
        self._to_session.emit(self._session.finish)
        self._to_ops.emit(self._ops.shutdown)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            left_ms = max(1, int((deadline - time.monotonic()) * 1000))
            if not thread.wait(left_ms):
                log.error("thread %s did not finish within %.0f s", thread.objectName(), timeout)
        self.status = Status(message="Stopped.")

    @property
    def is_shut_down(self) -> bool:
        """True once shutdown() ran."""
        return self._shut_down

    # -- slots (GUI thread)

    def _set_status(self, status: Status) -> None:
        self.status = status
        self.status_changed.emit(status)

    @Slot(object)
    def _on_server_started(self, payload: tuple[str, tuple[str, int]]) -> None:
        bind_host, (host, port) = payload
        address = (connect_host(host), port)
        self._set_status(Status(Mode.EMBEDDED, Phase.CONNECTING, address=address,
                                bind_host=bind_host, message=f"Listening on {host}:{port}",
                                redis=self.status.redis))
        self.notice.emit(Notice("control", f"server started on {host}:{port}"))
        self._connect_all(address, self._key)

    @Slot(str)
    def _on_server_failed(self, message: str) -> None:
        self._redis_url = None
        self._set_status(Status(message=message))
        self.notice.emit(Notice("error", message))

    @Slot()
    def _on_server_stopped(self) -> None:
        if self.status.mode is Mode.EMBEDDED:
            self._set_status(Status(message="Server stopped."))
            self.notice.emit(Notice("control", "server stopped"))

    @Slot(object)
    def _on_polled(self, payload: tuple[int, Snapshot]) -> None:
        generation, snap = payload
        if generation != self._session_generation or self._shut_down:
            return
        self.last_snapshot = snap
        st = self.status
        if st.phase is not Phase.ONLINE or st.kind != snap.kind:
            where = f"{st.address[0]}:{st.address[1]}" if st.address else ""
            if st.mode is Mode.EMBEDDED:
                message = f"Running · {st.bind_host or where.rsplit(':', 1)[0]}:" \
                          f"{st.address[1] if st.address else ''}"
                if st.redis:
                    message += f" · Redis {st.redis}"
            elif st.redis:
                message = f"Attached · Redis {st.redis}"
            elif snap.kind == "classic":
                message = f"Attached · classic master {where}"
            else:
                message = f"Attached · {where}"
            if st.phase is Phase.LOST:
                self.notice.emit(Notice("control", f"the server at {where} answers again"))
            self._set_status(dataclasses.replace(st, phase=Phase.ONLINE, kind=snap.kind,
                                                 message=message))
        self.snapshot.emit(snap)

    @Slot(object)
    def _on_poll_failed(self, payload: tuple[int, str, bool]) -> None:
        generation, message, first_contact = payload
        if generation != self._session_generation or self._shut_down:
            return
        message = scrub(message, self._redis_url)
        if first_contact and self.status.mode is Mode.ATTACHED:
            # Wrong address or key: give up at once rather than retry forever.
            self._to_submitter.emit(partial(self._submitter.set_target, None))
            self._to_ops.emit(partial(self._ops.set_target, None))
            self._set_status(Status(message=message))
            self.notice.emit(Notice("error", message))
            return
        self._set_status(dataclasses.replace(
            self.status, phase=Phase.LOST,
            message=f"Not answering: {message}"))
        self.notice.emit(Notice("error", f"The server is not answering: {message}"))

    @Slot(object)
    def _on_failures_seen(self, payload: tuple[int, list, bool]) -> None:
        generation, tasks, at_least = payload
        if generation == self._session_generation and not self._shut_down:
            self.failures.emit((tasks, at_least))

    @Slot(object)
    def _on_orders_known(self, payload: tuple[int, tuple[str, ...]]) -> None:
        generation, orders = payload
        if generation == self._session_generation and not self._shut_down:
            self.task_orders.emit(tuple(orders))

    @Slot(object)
    def _on_local_workers(self, pids: frozenset[int]) -> None:
        self.local_pids = pids
        self.local_workers_changed.emit(pids)

    @Slot(object)
    def _on_submit_finished(self, outcome: SubmitOutcome) -> None:
        self._submitting = None
        self.submit_finished.emit(outcome)

    @Slot(object)
    def _on_action_done(self, payload: tuple[str, Any]) -> None:
        self.action_done.emit(payload)

    @Slot(object)
    def _on_worker_notice(self, notice: Notice) -> None:
        if self._redis_url:
            notice = dataclasses.replace(notice, message=scrub(notice.message, self._redis_url))
        self.notice.emit(notice)
