"""Local worker processes: launch, stop, kill, reap and (optionally) respawn.

Each worker is ``python -m guidist worker`` in its own process, exactly what a person would run
by hand, so the window's workers and a terminal's behave the same. The key travels in the
environment (GUIDIST_AUTHKEY), never on the command line where ``ps`` would show it.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import IO

import psutil

from .security import to_bytes

log = logging.getLogger(__name__)

LOG_LINES = 500


@dataclass
class LocalWorker:
    """One worker process started by the pool."""

    name: str
    process: subprocess.Popen
    started: float
    log: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_LINES))
    stopping: bool = False
    mode: str = "inline"
    concurrency: int | None = None
    functions: tuple[str, ...] = ()

    @property
    def pid(self) -> int:
        """The process id."""
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        """None while running, else the exit code (negative: killed by that signal)."""
        return self.process.poll()

    @property
    def alive(self) -> bool:
        """True while the process runs."""
        return self.process.poll() is None


class WorkerPool:
    """Starts and supervises worker processes on this machine for one server."""

    def __init__(self, address: tuple[str, int], authkey: str | bytes, *, respawn: bool = False,
                 prefetch: int | None = None, extra_args: tuple[str, ...] = (),
                 give_up_after: float = 15.0, redis_url: str | None = None,
                 nice: int = 0) -> None:
        self.address = address
        # Above 0: workers run at a lower priority (POSIX niceness), so on a busy laptop the
        # window and the server keep a core; the workers still get every idle cycle.
        self._nice = nice
        # Set: workers go straight to Redis (``worker --redis``); the URL, which may hold a
        # password, travels in the environment like the key.
        self._redis_url = redis_url
        self._authkey = to_bytes(authkey)
        self.respawn = respawn
        self._prefetch = prefetch
        self._extra_args = extra_args
        self._give_up_after = give_up_after
        self._workers: dict[int, LocalWorker] = {}
        self._seq = 0
        self._lock = threading.Lock()

    @property
    def workers(self) -> list[LocalWorker]:
        """Every worker started and not yet reaped."""
        with self._lock:
            return list(self._workers.values())

    @property
    def pids(self) -> set[int]:
        """Pids of living workers."""
        return {w.pid for w in self.workers if w.alive}

    def launch(self, n: int = 1, prefix: str = "local", mode: str = "inline",
               concurrency: int | None = None,
               functions: tuple[str, ...] = ()) -> list[LocalWorker]:
        """Start n workers; returns them (they register with the server within a second).

        functions limits what they claim (empty: every task function).
        """
        return [self._spawn(prefix, mode, concurrency, functions)
                for _ in range(max(0, int(n)))]

    def _spawn(self, prefix: str, mode: str = "inline", concurrency: int | None = None,
               functions: tuple[str, ...] = ()) -> LocalWorker:
        with self._lock:
            self._seq += 1
            name = f"{prefix}-{self._seq}"
        if self._redis_url:
            target = ["--redis"]
        else:
            host, port = self.address
            target = ["--connect", f"{host}:{port}"]
        cmd = [sys.executable, "-m", "guidist", "worker", *target, "--name", name,
               "--exit-with-parent",
               "--give-up-after", str(self._give_up_after)]
        if self._prefetch:
            cmd += ["--prefetch", str(self._prefetch)]
        if mode != "inline":
            cmd += ["--mode", mode]
        if concurrency:
            cmd += ["--concurrency", str(concurrency)]
        if functions:
            cmd += ["--tasks", ",".join(functions)]
        cmd += list(self._extra_args)
        env = dict(os.environ, GUIDIST_AUTHKEY=self._authkey.decode("utf-8", "surrogateescape"),
                   PYTHONUNBUFFERED="1", GUIDIST_PARENT_PID=str(os.getpid()))
        if self._redis_url:
            env["GUIDIST_REDIS_URL"] = self._redis_url
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, env=env, text=True, errors="replace",
                                start_new_session=False)
        if self._nice > 0:
            _lower_priority(proc.pid, self._nice)
        worker = LocalWorker(name, proc, time.time(), mode=mode, concurrency=concurrency,
                             functions=tuple(functions))
        threading.Thread(target=_pump, args=(proc.stdout, worker.log), name=f"log-{name}",
                         daemon=True).start()
        with self._lock:
            self._workers[proc.pid] = worker
        log.info("launched worker %s (pid %d)", name, proc.pid)
        return worker

    def stop(self, pids: list[int] | None = None, timeout: float = 5.0) -> None:
        """Ask workers to stop (SIGTERM: they finish or hand back their tasks), then kill."""
        targets = [w for w in self.workers if pids is None or w.pid in pids]
        for w in targets:
            w.stopping = True
            if w.alive:
                try:
                    w.process.terminate()
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout
        for w in targets:
            try:
                w.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker %s ignored SIGTERM for %.0f s; killing it", w.name, timeout)
                w.process.kill()
                w.process.wait(5)
        self.reap()

    def kill(self, pid: int) -> bool:
        """SIGKILL one worker, as a crash would (its leases expire and its tasks are requeued)."""
        w = self._workers.get(pid)
        if w is None or not w.alive:
            return False
        w.stopping = True  # a deliberate kill is not respawned
        if hasattr(signal, "SIGKILL"):
            os.kill(pid, signal.SIGKILL)
        else:  # pragma: no cover - Windows has no SIGKILL
            w.process.kill()
        w.process.wait(5)
        return True

    def reap(self) -> list[LocalWorker]:
        """Forget exited workers (respawning crashed ones if asked); returns the exited."""
        exited = []
        with self._lock:
            for pid, w in list(self._workers.items()):
                if w.process.poll() is not None:
                    exited.append(self._workers.pop(pid))
        for w in exited:
            log.info("worker %s (pid %d) exited with %s", w.name, w.pid, w.returncode)
            if self.respawn and not w.stopping and w.returncode != 0:
                self._spawn(w.name.rsplit("-", 1)[0], w.mode, w.concurrency, w.functions)
        return exited

    def stop_all(self, timeout: float = 5.0) -> None:
        """Stop every worker; nothing is left running afterwards."""
        self.stop(None, timeout)


def _lower_priority(pid: int, nice: int) -> None:
    """Lower a process's scheduling priority (best effort: it may already have exited)."""
    try:
        p = psutil.Process(pid)
        if sys.platform == "win32":  # pragma: no cover - Windows only
            p.nice(psutil.BELOW_NORMAL_PRIORITY_CLASS)
        else:
            p.nice(nice)
    except (psutil.Error, OSError) as exc:
        log.debug("could not lower the priority of %d: %s", pid, exc)


def _pump(stream: IO[str] | None, sink: deque[str]) -> None:
    """Copy a worker's output into its bounded log (the pipe must be drained or it blocks)."""
    if stream is None:
        return
    with stream:
        for line in stream:
            sink.append(line.rstrip("\n"))
