"""The controller's thread worker: ``Ops`` owns the embedded ServerProcess and the local
WorkerPool (calls that block) and runs in its own QThread.

The monitoring and submitting clients live in the network process (``network_process``);
the controller (``controller.Controller``) is the only object that creates either.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

from PySide6.QtCore import QCoreApplication, QObject, QThread, QTimer, Signal, Slot

from ..core.errors import GuidistError
from ..core.pool import WorkerPool
from ..core.server import ServerProcess
from ..core.urls import scrub_secrets as scrub
from .network_process import make_client
from .state import LOCAL_WORKER_NICE, Notice, ServerOptions, connect_host

log = logging.getLogger(__name__)


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
