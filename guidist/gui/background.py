"""The controller's thread workers: each owns its connections and runs in its own QThread.

* ``Session`` owns the monitoring Client: snapshots, pages, details and control actions.
* ``Ops`` owns the embedded ServerProcess and the local WorkerPool (calls that block).
* ``Submitter`` owns a second Client that queues tasks in chunks, with progress.

The controller (``controller.Controller``) is the only object that creates them.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, QThread, QTimer, Signal, Slot

from ..core.client import Client, iter_tasks
from ..core.errors import GuidistError
from ..core.pool import WorkerPool
from ..core.protocol import Snapshot
from ..core.server import ServerProcess
from ..core.urls import scrub_secrets as scrub
from .failures import SAMPLE, NewFailures
from .state import (
    DEMO_PHASE_S,
    GUI_SUBMIT_CHUNK,
    LOCAL_WORKER_NICE,
    RETRY_INTERVAL_MS,
    Notice,
    PageReply,
    PageRequest,
    ServerOptions,
    SubmitOutcome,
    SubmitProgress,
    Target,
    connect_host,
    demo_phase,
)
from .submission import InputError, SubmitJob

log = logging.getLogger(__name__)


def make_client(target: Target, key: str = "") -> Client:
    """A Client for a server address, or straight to Redis for a Redis URL (same calls)."""
    if isinstance(target, str):
        try:
            return Client.redis(target)  # needs the optional redis package
        except ValueError as exc:
            raise GuidistError(str(exc)) from None
    return Client(target, key)


def close_client(client: Client) -> None:
    """Release a client for good (a Redis connection also ends its listener thread)."""
    client.shutdown()




class ThreadWorker(QObject):
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


class Session(ThreadWorker):
    """Owns the monitoring Client: polls, fetches pages and details, runs control actions."""

    polled = Signal(object)  # (generation, Snapshot)
    poll_failed = Signal(object)  # (generation, message, first_contact)
    failures_seen = Signal(object)  # (generation, new failed Tasks oldest first, at_least)
    orders_known = Signal(object)  # (generation, the keys list_tasks sorts by)
    page_loaded = Signal(object)  # PageReply
    task_loaded = Signal(object)  # Task | None
    action_done = Signal(object)  # (action, value)

    def __init__(self, poll_ms: int) -> None:
        super().__init__()
        self._poll_ms = poll_ms
        self._client: Client | None = None
        self._generation = 0
        self._series_cursor = 0
        self._spans_cursor: object = 0  # the task stream's: a backend's own kind of cursor
        self._events_cursor = 0
        self._server_started = 0.0
        self._ever_answered = False
        self._failing = False
        self._classic_second = 0
        self._poll_timer: QTimer | None = None
        self._demo_timer: QTimer | None = None
        self._demo_rng = random.Random()
        self._demo_start = 0.0
        self._failures = NewFailures()
        self._failed_count = -1  # the failed count at the last look at the failures

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
        self._spans_cursor = 0
        self._server_started = 0.0
        self._ever_answered = False
        self._failing = False
        self._failures.reset()
        self._failed_count = -1
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
            snap = client.snapshot(self._series_cursor, self._events_cursor,
                                   self._spans_cursor if self._spans_cursor is not None else None)
        except GuidistError as exc:
            if self._spans_cursor is not None and "argument" in str(exc) and self._ever_answered:
                self._spans_cursor = None  # a server older than the task stream: ask no more
                return
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
        first_contact = not self._ever_answered
        self._ever_answered = True
        if first_contact and snap.kind == "guidist":
            try:
                self.orders_known.emit((self._generation, client.task_orders()))
            except GuidistError:
                pass
        if snap.started and snap.started != self._server_started:
            if self._server_started:
                # The server restarted: its event numbers start again, so do our cursors.
                self._series_cursor = self._events_cursor = 0
                self._spans_cursor = 0
            self._server_started = snap.started
        if snap.kind == "guidist" and self._spans_cursor is not None:
            self._spans_cursor = snap.spans_cursor
        if snap.series:
            self._series_cursor = max(self._series_cursor, int(snap.series[-1][0]))
        if snap.events:
            self._events_cursor = max(self._events_cursor, snap.events[-1].seq)
        if snap.kind == "classic":
            snap = self._classic_series(snap)
        self.polled.emit((self._generation, snap))
        if snap.kind == "guidist":
            self._look_at_failures(client, snap, first_contact)

    def _look_at_failures(self, client: Client, snap: Snapshot, first_contact: bool) -> None:
        """When the failed count moved, read the newest failed tasks and report the new ones
        (one extra call, only then: a quiet server costs nothing)."""
        failed = snap.count("failed")
        if failed == self._failed_count:
            return
        self._failed_count = failed
        try:
            page = client.list_tasks("failed", 0, SAMPLE)
        except GuidistError:
            self._failed_count = -1  # look again at the next poll
            return
        new, at_least = self._failures.pick(page.tasks)
        if new and not first_contact:  # failures from before we looked are not news
            self.failures_seen.emit((self._generation, new, at_least))

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
                                           request.search, request.order, request.job)
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
        from ..core.export import write_export

        fmt = "csv" if path.lower().endswith(".csv") else "jsonl"
        try:
            with open(path, "w", encoding="utf-8", newline="") as out:
                n = write_export(iter_tasks(self._client, state, search or None), out, fmt)
        except OSError as exc:
            raise GuidistError(f"Could not write {path}: {exc.strerror}.") from None
        self.notice.emit(Notice("control", f"exported {n} task(s) to {path}"))

    def export_job_results(self, path: str, job_id: int) -> None:
        """Write a job's results in submission order to path, as CSV or JSON lines."""
        if self._client is None:
            raise GuidistError("Not connected to a server.")
        from ..core.job_results import job_tasks, result_row, write_results

        job = self._client.job(job_id)
        if job is None:
            raise GuidistError(f"The server no longer has job {job_id}.")
        fmt = "csv" if path.lower().endswith(".csv") else "jsonl"
        try:
            with open(path, "w", encoding="utf-8", newline="") as out:
                n = write_results((result_row(tid, t) for tid, t in job_tasks(self._client,
                                                                               job)), out, fmt)
        except OSError as exc:
            raise GuidistError(f"Could not write {path}: {exc.strerror}.") from None
        self.notice.emit(Notice("control", f"exported {n} result(s) of job {job.name} to "
                                f"{path}"))

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
        # Named jobs: one per phase (each starts, drains and finishes in the jobs panel),
        # and two that run throughout.
        phase = f"demo-{'cpu' if cpu else 'io'}-{int(elapsed // DEMO_PHASE_S) + 1}"
        try:
            client.submit_many("square", [(rng.randint(1, 100_000),)
                                          for _ in range(10 + int(10 * swell))],
                               job="demo-squares")
            if cpu:
                client.submit_many("primes", [(rng.randint(10_000, 25_000),)
                                              for _ in range(6 + int(10 * swell))], job=phase)
            else:
                client.submit_many("io_wait", [(round(rng.uniform(0.02, 0.1), 3),)
                                               for _ in range(20 + int(40 * swell))], job=phase)
            client.submit_many("fail", [(0.25,) for _ in range(3)], job="demo-failures")
        except GuidistError:
            pass  # the poll reports the lost server; the load resumes when it is back


class Ops(ThreadWorker):
    """Owns the embedded server process and the pool of local worker processes."""

    server_started = Signal(object)  # (bind_host, (host, port))
    server_failed = Signal(str)
    server_stopped = Signal()
    local_workers = Signal(object)  # frozenset of pids
    worker_log = Signal(object)  # (pid, name, lines)
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
                                   backend=options.backend,
                                   metrics_port=options.metrics_port or None)
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
        if server.metrics_port is not None:
            self.notice.emit(Notice("control", f"Prometheus metrics at http://{host}:"
                                    f"{server.metrics_port}/metrics"))

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

    def send_log(self, pid: int) -> None:
        """Report what a local worker printed (its last lines)."""
        workers = self._pool.workers if self._pool is not None else []
        for w in workers:
            if w.pid == pid:
                self.worker_log.emit((pid, w.name, list(w.log)))
                return
        self.worker_log.emit((pid, "", []))

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


class Submitter(ThreadWorker):
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
            job_ref: str | int | None = job.job_name or None
            for kwargs, args in groups:
                if cancel.is_set():
                    break
                in_group = 0
                try:
                    ids = self._client.submit_many(job.function, args, kwargs, chunk=chunk,
                                                   progress=on_chunk, job=job_ref)
                except ValueError as exc:  # a job name the server refuses
                    raise InputError("job", str(exc)) from None
                if ids.job is not None:
                    job_ref = ids.job.id  # every group of one submission in one job
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


