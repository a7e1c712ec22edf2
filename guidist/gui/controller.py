"""The controller: every connection, process and blocking call of the window, off the GUI thread.

Two places do the work, and nothing else touches what they own:

* **the network process** (``network_process``, started and watched by ``network_link``): a
  helper process with the monitoring ``Client`` (one ``snapshot`` call at most 10 times a
  second, passing cursors so only new series points and events come back; task pages, details,
  control actions, exports, the demo load) and a second ``Client`` that queues tasks in chunks
  with progress. Its unpickling and pickling never compete with drawing for the GUI process's
  GIL. If it dies, the window says so, and a new one takes over where it stopped.
* **ops**, a ``QThread`` (``background.Ops``), owns the embedded ``ServerProcess`` and the local
  ``WorkerPool``: starting and stopping them blocks for up to seconds, but costs no CPU, and
  they stay children of the window's process, so a dead helper takes no server or worker
  with it.

The GUI thread posts to ops by emitting a ``Signal(object)`` carrying a callable, and to the
network process by sending a message; answers come back through the controller's own signals,
each carrying one immutable object. Widgets never see a proxy, a pipe or a process.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import logging
import time
from functools import partial
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, QThread, Signal, Slot

from ..core.protocol import Snapshot, WorkerInfo
from ..core.urls import redact_url as redact
from ..core.urls import scrub_secrets as scrub
from .background import Ops
from .network_link import NetworkLink
from .state import (
    POLL_INTERVAL_MS,
    Mode,
    Notice,
    PageReply,
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

#: A network process that dies this often within RESTART_WINDOW_S is not started again by
#: itself (something kills it; the person decides).
MAX_RESTARTS, RESTART_WINDOW_S = 3, 60.0


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

    _to_ops = Signal(object)

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
        self._submitting: SubmitJob | None = None
        self._submitted = 0  # tasks of the running submission the helper reported sent
        self._shut_down = False
        self._target: tuple[Target, str] | None = None  # what the network process monitors
        self._cursors: tuple[int, int, float, object] | None = None  # where the window's data ends
        self._restarts: collections.deque[float] = collections.deque(maxlen=MAX_RESTARTS)

        self.poll_ms = max(100, poll_ms)  # never faster than 10 Hz
        self._link = NetworkLink(self.poll_ms, self)
        self._link.received.connect(self._on_message)
        self._link.died.connect(self._on_network_died)
        self._ops = Ops()
        self._threads: list[QThread] = []
        thread = QThread()
        thread.setObjectName("guidist-ops")
        self._ops.moveToThread(thread)
        self._to_ops.connect(self._ops._on_call)
        self._ops.notice.connect(self._on_worker_notice)
        thread.started.connect(self._ops.start)
        self._threads.append(thread)

        self._ops.worker_log.connect(self.worker_log)
        self._ops.server_started.connect(self._on_server_started)
        self._ops.server_failed.connect(self._on_server_failed)
        self._ops.server_stopped.connect(self._on_server_stopped)
        self._ops.local_workers.connect(self._on_local_workers)
        self._ops.killed.connect(self.workers_killed)
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

    @property
    def network_pid(self) -> int | None:
        """The pid of the network process while it runs."""
        return self._link.pid

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
        self._link.start()  # its interpreter starts while the server does

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
        self._target = self._cursors = None
        self._link.send("detach")
        self._link.send("submit_target", None)
        if mode is Mode.EMBEDDED:
            self._set_status(dataclasses.replace(self.status, phase=Phase.STOPPING,
                                                 message="Stopping workers and server…"))
            self._to_ops.emit(self._ops.stop_server)
        else:
            self._to_ops.emit(partial(self._ops.set_target, None))
            self._set_status(Status(message="Detached."))

    def _connect_all(self, target: Target, key: str,
                     resume: tuple[int, int, float, object] | None = None) -> None:
        self._session_generation = next(self._generation)
        self._target = (target, key)
        self._cursors = resume
        self._to_network("attach", self._session_generation, target, key, resume)
        self._to_network("submit_target", target, key)

    def _to_network(self, *message: Any) -> None:
        """Send a message to the network process, starting it first if need be."""
        self._link.start()
        self._link.send(*message)

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
        self._submitting = job
        self._submitted = 0
        self._to_network("submit", job)
        return True

    def cancel_submit(self) -> None:
        """Stop the running submission after the chunk in flight (those tasks stay queued)."""
        if self._submitting is not None:
            self._link.send("cancel_submit")

    def request_page(self, request: PageRequest) -> None:
        """Fetch a page for the tasks model (answer: page_loaded)."""
        self._to_network("page", request)

    def request_task(self, task_id: int) -> None:
        """Fetch one task's details (answer: task_loaded)."""
        self._to_network("task", int(task_id))

    def export_tasks(self, path: str, state: str | None = None,
                     search: str | None = None) -> None:
        """Export the listed tasks (filtered like the tasks table) off the GUI thread; the
        outcome comes as a notice."""
        self._to_network("export_tasks", path, state, search)

    def export_job_results(self, path: str, job_id: int) -> None:
        """Write a job's results (submission order) off the GUI thread; the outcome comes as
        a notice."""
        self._to_network("export_results", path, int(job_id))

    def act(self, action: str, *args: Any) -> None:
        """A control call on the server: cancel, retry, retry_all, purge, pause, resume,
        request_stop, forget_offline, cancel_job, retry_job. The answer comes as
        action_done."""
        self._to_network("act", action, *args)

    def set_demo(self, on: bool) -> None:
        """Start or stop the demo's steady mixed load."""
        if on == self.demo_running:
            return
        self.demo_running = on
        self._to_network("demo", on)

    # -- shutting down

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop the network process, local workers and the embedded server; join the thread.

        Blocks (it is what closing the window does); afterwards no thread, timer or process
        started by the controller is left.
        """
        if self._shut_down:
            return
        self._shut_down = True
        self._to_ops.emit(self._ops.shutdown)  # in parallel with the helper's stop
        self._link.stop()
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
        self._cursors = _cursors_after(self._cursors, snap)
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
            self._target = None
            self._link.send("submit_target", None)
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
    def _on_message(self, message: tuple) -> None:
        """One reply of the network process, handed to the slot that deals with its kind."""
        kind, *args = message
        if kind == "polled":
            self._on_polled(tuple(args))
        elif kind == "poll_failed":
            self._on_poll_failed(tuple(args))
        elif kind == "failures":
            self._on_failures_seen(tuple(args))
        elif kind == "orders":
            self._on_orders_known(tuple(args))
        elif kind == "page":
            reply: PageReply = args[0]
            self.page_loaded.emit(reply)
        elif kind == "task":
            self.task_loaded.emit(args[0])
        elif kind == "action":
            self._on_action_done(args[0])
        elif kind == "notice":
            self._on_worker_notice(args[0])
        elif kind == "progress":
            self._submitted = args[0].sent
            self.submit_progress.emit(args[0])
        elif kind == "finished":
            self._on_submit_finished(args[0])
        else:
            log.error("unknown reply %r from the network process", kind)

    @Slot(object)
    def _on_network_died(self, code: int | None) -> None:
        """The network process ended unasked (killed, crashed): say so, start a new one
        where it stopped, unless it keeps dying."""
        if self._shut_down:
            return
        how = f"was killed by signal {-code}" if code is not None and code < 0 else \
            f"exited with code {code}"
        if self._submitting is not None:
            self._on_submit_finished(SubmitOutcome(
                self._submitting, self._submitted,
                error=f"The window's network process {how}; the submission stopped (the "
                      f"tasks sent stay queued)."))
        now = time.monotonic()
        if len(self._restarts) == MAX_RESTARTS and now - self._restarts[0] < RESTART_WINDOW_S:
            self.notice.emit(Notice("error", f"The window's network process {how}, "
                                    f"{MAX_RESTARTS + 1} times within a minute; not starting "
                                    f"it again. Disconnect and connect to retry."))
            if self.status.mode is not Mode.NONE:
                self._set_status(dataclasses.replace(
                    self.status, phase=Phase.LOST,
                    message="Not monitoring: the network process keeps stopping"))
            return
        self._restarts.append(now)
        self.notice.emit(Notice("error", f"The window's network process {how}; started a "
                                "new one."))
        self._link.start()
        if self._target is not None:
            self._connect_all(*self._target, resume=self._cursors)
        if self.demo_running:
            self._link.send("demo", True)

    @Slot(object)
    def _on_action_done(self, payload: tuple[str, Any]) -> None:
        self.action_done.emit(payload)

    @Slot(object)
    def _on_worker_notice(self, notice: Notice) -> None:
        if self._redis_url:
            notice = dataclasses.replace(notice, message=scrub(notice.message, self._redis_url))
        self.notice.emit(notice)


def _cursors_after(cursors: tuple[int, int, float, object] | None, snap: Snapshot
                   ) -> tuple[int, int, float, object]:
    """Where the window's series, events and task-stream spans end after snap (a new helper
    resumes there)."""
    series, events, started, spans = cursors or (0, 0, 0.0, 0)
    if snap.started and snap.started != started:
        series = events = 0  # a restarted server numbers its points and events afresh
        spans = 0
        started = snap.started
    if snap.kind == "guidist" and spans is not None:
        spans = snap.spans_cursor
    if snap.kind == "guidist" and snap.series:
        series = max(series, int(snap.series[-1][0]))
    if snap.events:
        events = max(events, snap.events[-1].seq)
    return series, events, started, spans
