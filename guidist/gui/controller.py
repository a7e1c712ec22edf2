"""The controller: every connection, process and blocking call of the window, off the GUI thread.

Three ``QThread``s each own one worker object, and nothing else touches what a worker owns:

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
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from functools import partial
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, QThread, QTimer, Signal, Slot

from ..core.client import Client, iter_tasks
from ..core.errors import GuidistError
from ..core.pool import WorkerPool
from ..core.protocol import Snapshot, WorkerInfo
from ..core.server import ServerProcess
from .models import PageReply, PageRequest
from .submission import InputError, SubmitJob

log = logging.getLogger(__name__)

#: The fastest the monitor polls (10 Hz is the ceiling; 5 Hz keeps plots and tables live).
POLL_INTERVAL_MS = 200
#: How often to retry while the server does not answer.
RETRY_INTERVAL_MS = 1000
#: Tasks per submit call from the window (smaller than the CLI's: see _Submitter).
GUI_SUBMIT_CHUNK = 5_000
#: Scheduling niceness of the workers the window launches (0: same priority as the window).
LOCAL_WORKER_NICE = 10
#: The demo alternates a CPU-bound and an I/O-bound phase of this many seconds.
DEMO_PHASE_S = 20.0


def demo_phase(elapsed: float) -> str:
    """"cpu" or "io": which load the demo queues elapsed seconds after it started."""
    return "cpu" if int(elapsed // DEMO_PHASE_S) % 2 == 0 else "io"


def connect_host(host: str) -> str:
    """The address this machine uses to reach a server bound to host."""
    return "127.0.0.1" if host in ("", "0.0.0.0") else "::1" if host == "::" else host


# ---------------------------------------------------------------------- plain data


@dataclass(frozen=True)
class ServerOptions:
    """How to start the embedded server."""

    host: str = "127.0.0.1"
    port: int = 0
    authkey: str = ""
    insist_weak_key: bool = False
    lease_timeout: float = 30.0
    max_attempts: int = 3
    journal: str | None = None
    backend: str | None = None  # a Redis URL keeps the state in Redis (then no journal)


#: Where a client connects: (host, port) of a guidist server, or a Redis URL.
Target = tuple[str, int] | str


def make_client(target: Target, key: str = "") -> Client:
    """A Client for a server address, or a RedisClient for a Redis URL (same calls)."""
    if isinstance(target, str):
        from ..core.redis_backend import RedisClient  # needs the optional redis package

        try:
            return RedisClient(target)
        except ValueError as exc:
            raise GuidistError(str(exc)) from None
    return Client(target, key)


def close_client(client: Client) -> None:
    """Drop a client's connection; a RedisClient also ends its connections and listener."""
    shutdown = getattr(client, "shutdown", None)
    if isinstance(client, Client) and type(client).__name__ == "RedisClient" and shutdown:
        shutdown()
    else:
        client.close()


def scrub(text: str, url: str | None) -> str:
    """text without the password (and user name) of url, for anything shown or logged."""
    if not url:
        return text
    from urllib.parse import unquote, urlsplit

    try:
        parts = urlsplit(url)
        secrets_ = [x for x in (parts.password, parts.username) if x]
    except ValueError:
        return text.replace(url, "<redis URL>")
    text = text.replace(url, redact(url))
    for secret in secrets_:
        for form in {secret, unquote(secret)}:
            if len(form) >= 3:
                text = text.replace(form, "***")
    return text


def redact(url: str) -> str:
    """A Redis URL without its credentials."""
    from ..core.redis_backend import redact_url

    return redact_url(url)


class Mode(str, Enum):
    """Whose server the window shows."""

    NONE = "none"  # no server
    EMBEDDED = "embedded"  # started by this window
    ATTACHED = "attached"  # someone else's guidist server or tutorial master


class Phase(str, Enum):
    """Where the connection is."""

    STOPPED = "stopped"
    STARTING = "starting"
    CONNECTING = "connecting"
    ONLINE = "online"
    LOST = "lost"
    STOPPING = "stopping"


@dataclass(frozen=True)
class Status:
    """What the server bar shows; emitted whenever it changes."""

    mode: Mode = Mode.NONE
    phase: Phase = Phase.STOPPED
    address: tuple[str, int] | None = None  # where clients connect
    bind_host: str | None = None  # what the embedded server listens on
    kind: str | None = None  # "guidist" or "classic" once known
    message: str = ""
    redis: str | None = None  # the Redis URL without credentials, on a Redis deployment

    @property
    def online(self) -> bool:
        """True while snapshots arrive."""
        return self.phase is Phase.ONLINE

    @property
    def active(self) -> bool:
        """True while there is a server to talk to (even if it stopped answering)."""
        return self.phase in (Phase.ONLINE, Phase.LOST, Phase.CONNECTING)


@dataclass(frozen=True)
class SubmitProgress:
    """Tasks sent so far; total is None while rows are being read."""

    sent: int
    total: int | None


@dataclass(frozen=True)
class SubmitOutcome:
    """How a submission ended; error and field are set when nothing (or not all) was queued."""

    job: SubmitJob
    sent: int
    cancelled: bool = False
    error: str | None = None
    field: str | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class Notice:
    """A sentence for the event log and the status bar; kind "error" goes to the banner too."""

    kind: str
    message: str
    time: float = dataclasses.field(default_factory=time.time)


# ---------------------------------------------------------------------- thread workers


class _ThreadWorker(QObject):
    """Base of the objects that live on a controller thread: runs posted callables safely."""

    notice = Signal(object)

    def __init__(self) -> None:
        super().__init__()
        self._timers: list[QTimer] = []

    @Slot(object)
    def _on_call(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except GuidistError as exc:
            self.notice.emit(Notice("error", str(exc)))
        except Exception as exc:  # a bug: log it fully, tell the person briefly
            log.exception("background operation failed")
            self.notice.emit(Notice("error", f"Internal error: {type(exc).__name__}: {exc}"))

    def _timer(self, interval_ms: int, slot: Callable[[], None]) -> QTimer:
        """A timer owned by this object, so it lives (and fires) on this thread."""
        timer = QTimer(self)
        timer.setInterval(interval_ms)
        timer.timeout.connect(partial(self._on_call, slot))  # a bug is reported, not raised
        self._timers.append(timer)
        return timer

    def finish(self) -> None:
        """Stop this thread's timers, hand the object back to the GUI thread, end the loop."""
        for timer in self._timers:
            timer.stop()
        self.close()
        app = QCoreApplication.instance()
        if app is not None:
            self.moveToThread(app.thread())
        thread = QThread.currentThread()
        thread.quit()

    def close(self) -> None:
        """Release what the worker owns (overridden)."""


class _Session(_ThreadWorker):
    """Owns the monitoring Client: polls, fetches pages and details, runs control actions."""

    polled = Signal(object)  # (generation, Snapshot)
    poll_failed = Signal(object)  # (generation, message, first_contact)
    page_loaded = Signal(object)  # PageReply
    task_loaded = Signal(object)  # Task | None
    action_done = Signal(object)  # (action, value)

    def __init__(self, poll_ms: int) -> None:
        super().__init__()
        self._poll_ms = poll_ms
        self._client: Client | None = None
        self._generation = 0
        self._series_cursor = 0
        self._events_cursor = 0
        self._server_started = 0.0
        self._ever_answered = False
        self._failing = False
        self._classic_second = 0
        self._poll_timer: QTimer | None = None
        self._demo_timer: QTimer | None = None
        self._demo_rng = random.Random()
        self._demo_start = 0.0

    @Slot()
    def start(self) -> None:
        """Runs first on the session thread: create the timers here so they belong to it."""
        self._poll_timer = self._timer(self._poll_ms, self._poll)
        self._demo_timer = self._timer(250, self._feed_demo)

    # -- connection

    def attach(self, generation: int, target: Target, key: str) -> None:
        """Monitor a server (or a Redis deployment) from now on; the first poll is at once."""
        self.close()
        self._client = make_client(target, key)
        self._generation = generation
        self._series_cursor = self._events_cursor = 0
        self._server_started = 0.0
        self._ever_answered = False
        self._failing = False
        assert self._poll_timer is not None
        self._poll_timer.setInterval(self._poll_ms)
        self._poll_timer.start()
        self._poll()

    def detach(self) -> None:
        """Stop monitoring."""
        if self._poll_timer is not None:
            self._poll_timer.stop()
        if self._demo_timer is not None:
            self._demo_timer.stop()
        self.close()

    def close(self) -> None:
        if self._client is not None:
            close_client(self._client)
        self._client = None

    def _poll(self) -> None:
        client = self._client
        if client is None:
            return
        try:
            snap = client.snapshot(self._series_cursor, self._events_cursor)
        except GuidistError as exc:
            if not self._failing:
                self._failing = True
                self.poll_failed.emit((self._generation, str(exc), not self._ever_answered))
            if not self._ever_answered and self._poll_timer is not None:
                self._poll_timer.stop()  # a first contact that fails is final: wrong key, port…
                self.close()
                return
            if self._poll_timer is not None:
                self._poll_timer.setInterval(RETRY_INTERVAL_MS)
            return
        if self._failing and self._poll_timer is not None:
            self._poll_timer.setInterval(self._poll_ms)
        self._failing = False
        self._ever_answered = True
        if snap.started and snap.started != self._server_started:
            if self._server_started:
                # The server restarted: its event numbers start again, so do our cursors.
                self._series_cursor = self._events_cursor = 0
            self._server_started = snap.started
        if snap.series:
            self._series_cursor = max(self._series_cursor, int(snap.series[-1][0]))
        if snap.events:
            self._events_cursor = max(self._events_cursor, snap.events[-1].seq)
        if snap.kind == "classic":
            snap = self._classic_series(snap)
        self.polled.emit((self._generation, snap))

    def _classic_series(self, snap: Snapshot) -> Snapshot:
        """A tutorial master keeps no series: make one point a second from its queue size."""
        second = int(snap.time)
        if second <= self._classic_second:
            return snap
        self._classic_second = second
        point = (second, 0, 0, 0, 0, snap.count("queued"), 0, 0)
        return dataclasses.replace(snap, series=(point,))

    # -- requests

    def load_page(self, request: PageRequest) -> None:
        """Fetch one page of the task listing."""
        if self._client is None:
            return
        try:
            page = self._client.list_tasks(request.state, request.offset, request.limit,
                                           request.search)
        except GuidistError as exc:
            self.page_loaded.emit(PageReply(request, error=str(exc)))
            return
        self.page_loaded.emit(PageReply(request, page))

    def load_task(self, task_id: int) -> None:
        """Fetch one task with its result or traceback."""
        if self._client is not None:
            self.task_loaded.emit(self._client.get_task(task_id))

    def export_tasks(self, path: str, state: str | None, search: str | None) -> None:
        """Write the server's tasks (those matching the filter) to path as CSV or JSON lines."""
        if self._client is None:
            raise GuidistError("Not connected to a server.")
        from ..core.store import write_export

        fmt = "csv" if path.lower().endswith(".csv") else "jsonl"
        try:
            with open(path, "w", encoding="utf-8", newline="") as out:
                n = write_export(iter_tasks(self._client, state, search or None), out, fmt)
        except OSError as exc:
            raise GuidistError(f"Could not write {path}: {exc.strerror}.") from None
        self.notice.emit(Notice("control", f"exported {n} task(s) to {path}"))

    def act(self, action: str, *args: Any) -> None:
        """Run a control call (cancel, retry, retry_all, purge, pause, resume, request_stop…)."""
        if self._client is None:
            raise GuidistError("Not connected to a server.")
        value = getattr(self._client, action)(*args)
        self.action_done.emit((action, value))

    # -- demo load

    def set_demo(self, on: bool) -> None:
        """Start or stop the steady mixed load of the demo."""
        assert self._demo_timer is not None
        if on:
            self._demo_start = time.monotonic()
            self._demo_timer.start()
        else:
            self._demo_timer.stop()

    def _feed_demo(self) -> None:
        """Alternating phases of DEMO_PHASE_S seconds: CPU-bound primes, then blocking I/O
        (io_wait), each swelling and ebbing, with a few squares and failures throughout."""
        client = self._client
        if client is None or client.kind == "classic":
            return
        rng = self._demo_rng
        elapsed = time.monotonic() - self._demo_start
        cpu = demo_phase(elapsed) == "cpu"
        swell = math.sin(math.pi * (elapsed % DEMO_PHASE_S) / DEMO_PHASE_S)  # 0 → 1 → 0
        try:
            client.submit_many("square", [(rng.randint(1, 100_000),)
                                          for _ in range(10 + int(10 * swell))])
            if cpu:
                client.submit_many("primes", [(rng.randint(10_000, 25_000),)
                                              for _ in range(6 + int(10 * swell))])
            else:
                client.submit_many("io_wait", [(round(rng.uniform(0.02, 0.1), 3),)
                                               for _ in range(20 + int(40 * swell))])
            client.submit_many("fail", [(0.25,) for _ in range(3)])
        except GuidistError:
            pass  # the poll reports the lost server; the load resumes when it is back


class _Ops(_ThreadWorker):
    """Owns the embedded server process and the pool of local worker processes."""

    server_started = Signal(object)  # (bind_host, (host, port))
    server_failed = Signal(str)
    server_stopped = Signal()
    local_workers = Signal(object)  # frozenset of pids
    killed = Signal(object)  # frozenset of the pids just killed

    def __init__(self) -> None:
        super().__init__()
        self._server: ServerProcess | None = None
        self._pool: WorkerPool | None = None
        self._pids: frozenset[int] = frozenset()

    @Slot()
    def start(self) -> None:
        """Runs first on the ops thread."""
        self._timer(1000, self._reap).start()

    def start_server(self, options: ServerOptions) -> None:
        """Start the embedded server (spawned process); reports the address or the reason."""
        if self._server is not None and self._server.running:
            self.server_failed.emit("The server is already running.")
            return
        try:
            if options.backend:
                make_client(options.backend).connect()  # a clear error if Redis is not there
            server = ServerProcess(options.host, options.port, options.authkey,
                                   insist_weak_key=options.insist_weak_key,
                                   lease_timeout=options.lease_timeout,
                                   max_attempts=options.max_attempts,
                                   journal=None if options.backend else options.journal,
                                   backend=options.backend)
            host, port = server.start()
        except GuidistError as exc:
            self.server_failed.emit(scrub(str(exc), options.backend))
            return
        except Exception as exc:
            log.error("server start failed: %s", scrub(repr(exc), options.backend))
            self.server_failed.emit(scrub(f"The server could not start: {exc}",
                                          options.backend))
            return
        self._server = server
        self.set_target((connect_host(host), port), options.authkey, options.backend)
        self.server_started.emit((options.host, (host, port)))

    def stop_server(self) -> None:
        """Stop local workers, then the embedded server."""
        self._stop_pool()
        if self._server is not None:
            self._server.stop()
            self._server = None
        self.server_stopped.emit()

    def set_target(self, address: tuple[str, int] | None, key: str = "",
                   redis_url: str | None = None) -> None:
        """Where local workers connect (a new server stops the old server's workers); with
        redis_url they work straight from Redis."""
        self._stop_pool()
        # nice: the window's own workers must never starve the window (or the server) of a
        # core; measured under full load, p99 event-loop gaps fell from 77 to 31 ms at no cost
        # in throughput.
        self._pool = WorkerPool(address or ("", 0), key, redis_url=redis_url,
                                nice=LOCAL_WORKER_NICE) \
            if address is not None or redis_url else None

    def launch(self, n: int, mode: str = "inline", concurrency: int | None = None,
               functions: tuple[str, ...] = ()) -> None:
        """Start n local worker processes running tasks in that mode (only functions' tasks,
        when given)."""
        if self._pool is None:
            raise GuidistError("Start or attach to a server before launching workers.")
        started = self._pool.launch(n, mode=mode,
                                    concurrency=None if mode == "inline" else concurrency,
                                    functions=functions)
        names = ", ".join(f"{w.name} (pid {w.pid})" for w in started)
        how = mode if mode == "inline" or not concurrency else f"{mode} ×{concurrency}"
        self.notice.emit(Notice("control", f"launched {len(started)} local {how} worker(s): "
                                f"{names}"))
        self._publish()

    def stop_workers(self, pids: list[int] | None) -> None:
        """SIGTERM local workers (they finish the task at hand and give back the rest)."""
        if self._pool is not None:
            self._pool.stop(pids)
        self._publish()

    def kill(self, pids: list[int]) -> None:
        """SIGKILL local workers, as a crash would: the server sees their connections close
        and requeues their tasks at once."""
        if self._pool is None:
            return
        killed = [pid for pid in pids if self._pool.kill(pid)]
        if killed:
            self.killed.emit(frozenset(killed))  # before the pids leave the local set
            self.notice.emit(Notice("worker-offline", "killed local worker(s) with SIGKILL: pid "
                                    + ", ".join(map(str, killed))))
        self._publish()

    def shutdown(self) -> None:
        """Stop everything this thread owns, then end the thread."""
        try:
            self.stop_server()
        finally:
            self.finish()

    def _stop_pool(self) -> None:
        if self._pool is not None:
            self._pool.stop_all()
            self._pool = None
        self._publish()

    def _reap(self) -> None:
        if self._pool is None:
            return
        for w in self._pool.reap():
            if not w.stopping:
                tail = f": {w.log[-1]}" if w.log else ""
                self.notice.emit(Notice("worker-left", f"local worker {w.name} (pid {w.pid}) "
                                        f"exited with code {w.returncode}{tail}"))
        self._publish()

    def _publish(self) -> None:
        pids = frozenset(self._pool.pids) if self._pool is not None else frozenset()
        if pids != self._pids:
            self._pids = pids
            self.local_workers.emit(pids)


class _Submitter(_ThreadWorker):
    """Owns the Client that queues tasks, chunk by chunk, with progress and cancel."""

    progress = Signal(object)  # SubmitProgress
    finished = Signal(object)  # SubmitOutcome

    def __init__(self) -> None:
        super().__init__()
        self._client: Client | None = None

    def set_target(self, target: Target | None, key: str = "") -> None:
        """Where tasks go."""
        self.close()
        self._client = make_client(target, key) if target is not None else None

    def close(self) -> None:
        if self._client is not None:
            close_client(self._client)
        self._client = None

    def submit(self, job: SubmitJob, cancel: threading.Event) -> None:
        """Queue every task of a job; rows are checked before the first one is sent."""
        started = time.monotonic()
        sent = 0  # tasks of finished groups
        in_group = 0  # tasks of the group being sent
        total = job.total
        last_emit = 0.0

        def on_chunk(n: int) -> bool:
            nonlocal last_emit, in_group
            in_group = n
            now = time.monotonic()
            if now - last_emit > 0.05 or (total is not None and sent + n >= total):
                last_emit = now
                self.progress.emit(SubmitProgress(sent + n, total))
            return not cancel.is_set()

        try:
            if self._client is None:
                raise GuidistError("Start or attach to a server before queueing tasks.")
            self._client.connect()
            groups = job.groups()
            if total is None:
                total = sum(len(a) for _, a in groups)  # type: ignore[arg-type]
            self.progress.emit(SubmitProgress(0, total))
            # Pickling a chunk holds the GIL the GUI thread needs: 5,000 tasks (~2 ms) keeps
            # the window smooth while a million go out (20,000 showed 40-55 ms gaps).
            chunk = 500 if self._client.kind == "classic" else \
                max(1_000, min(GUI_SUBMIT_CHUNK, (total or 0) // 50))
            for kwargs, args in groups:
                if cancel.is_set():
                    break
                in_group = 0
                self._client.submit_many(job.function, args, kwargs, chunk=chunk,
                                         progress=on_chunk)
                sent += in_group
                in_group = 0
        except InputError as exc:
            self.finished.emit(SubmitOutcome(job, 0, error=str(exc), field=exc.field))
            return
        except GuidistError as exc:
            self.finished.emit(SubmitOutcome(job, sent + in_group, error=str(exc),
                                             seconds=time.monotonic() - started))
            return
        except Exception as exc:  # e.g. an argument that cannot be pickled
            log.exception("submission failed")
            self.finished.emit(SubmitOutcome(job, sent + in_group,
                                             error=f"Submitting failed: {exc}",
                                             seconds=time.monotonic() - started))
            return
        self.finished.emit(SubmitOutcome(job, sent, cancelled=cancel.is_set(),
                                         seconds=time.monotonic() - started))


# ---------------------------------------------------------------------- the controller


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

        self._session = _Session(max(100, poll_ms))  # never faster than 10 Hz
        self._ops = _Ops()
        self._submitter = _Submitter()
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

    def act(self, action: str, *args: Any) -> None:
        """A control call on the server: cancel, retry, retry_all, purge, pause, resume,
        request_stop, forget_offline. The answer comes as action_done."""
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
