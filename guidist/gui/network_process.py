"""The window's network process: every client call of the window, in a process of its own.

Measured under full load, the window's own polling and submitting threads (unpickling snapshots,
pickling chunks of tasks, socket calls) held the GIL the GUI thread needed to draw: 10 ms timer
gaps of 20 ms at p99 and 100 ms at worst. Here they run in a helper process started with the
spawn context, so the GUI process's GIL serves drawing only. Qt-free: the helper never loads Qt.

The window talks to it over one duplex ``multiprocessing`` pipe (``network_link`` is the other
end). Messages are tuples ``(kind, *args)``:

* to the helper: ``attach``, ``detach``, ``page``, ``task``, ``act``, ``export_tasks``,
  ``export_results``, ``demo`` (the session), ``submit_target``, ``submit``, ``cancel_submit``
  (the submitter), ``stop``;
* from the helper: ``polled``, ``poll_failed``, ``failures``, ``orders``, ``page``, ``task``,
  ``action``, ``notice``, ``progress``, ``finished``: each carries what the window draws from
  (a snapshot holds only the series points and events that are new since the last one).

The helper never outlives the window: it stops when the pipe closes (the window's end closes
when its process exits, however it exits), when its parent changes, or on ``stop``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import queue
import random
import signal
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from ..core.client import Client, iter_tasks
from ..core.errors import GuidistError
from ..core.protocol import Snapshot
from .failures import SAMPLE, NewFailures
from .state import (
    DEMO_PHASE_S,
    GUI_SUBMIT_CHUNK,
    RETRY_INTERVAL_MS,
    Notice,
    PageReply,
    PageRequest,
    SubmitOutcome,
    SubmitProgress,
    Target,
    demo_phase,
)
from .submission import InputError, SubmitJob

log = logging.getLogger(__name__)

#: Message kinds the session thread handles; the others go to the submitter.
SESSION_KINDS = frozenset({"attach", "detach", "page", "task", "act", "export_tasks",
                           "export_results", "demo"})
SUBMIT_KINDS = frozenset({"submit_target", "submit"})
#: How often the helper checks that the window's process is still its parent.
PARENT_CHECK_S = 1.0
DEMO_INTERVAL_S = 0.25


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


class Outbox:
    """The helper's end of the pipe, shared by its threads (one message at a time)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self.broken = threading.Event()

    def send(self, kind: str, *args: Any) -> None:
        """Send one message; a closed pipe (the window is gone) marks the outbox broken."""
        if self.broken.is_set():
            return
        try:
            with self._lock:
                self._conn.send((kind, *args))
        except (OSError, EOFError, ValueError):
            self.broken.set()

    def notice(self, kind: str, message: str) -> None:
        """A line for the window's event log (kind "error" also shows the banner)."""
        self.send("notice", Notice(kind, message))


class Loop:
    """A thread that runs the messages posted to it, one at a time, and reports failures."""

    name = "loop"

    def __init__(self, out: Outbox) -> None:
        self.out = out
        self._inbox: queue.Queue[tuple | None] = queue.Queue()
        # A daemon thread: a call stuck on a dead server must not keep the helper alive.
        self._thread = threading.Thread(target=self._run, name=f"guidist-{self.name}",
                                        daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def post(self, message: tuple) -> None:
        """Queue a message for the thread."""
        self._inbox.put(message)

    def stop(self, timeout: float) -> None:
        """Let the thread close its connections and end (abandoned after timeout)."""
        self._inbox.put(None)
        self._thread.join(timeout)

    def wait_s(self) -> float | None:
        """How long the thread may wait for a message before its timed work is due."""
        return None

    def tick(self) -> None:
        """Timed work (overridden)."""

    def close(self) -> None:
        """Release what the thread owns (overridden)."""

    def _run(self) -> None:
        while True:
            try:
                message = self._inbox.get(timeout=self.wait_s())
            except queue.Empty:
                message = ()
            if message is None:
                break
            if message:
                self._guarded(getattr(self, "on_" + message[0]), *message[1:])
            self._guarded(self.tick)
        self._guarded(self.close)

    def _guarded(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except GuidistError as exc:
            self.out.notice("error", str(exc))
        except Exception as exc:  # a bug: log it fully, tell the person briefly
            log.exception("background operation failed")
            self.out.notice("error", f"Internal error: {type(exc).__name__}: {exc}")


class Session(Loop):
    """Owns the monitoring Client: polls, fetches pages and details, runs control actions."""

    name = "session"

    def __init__(self, out: Outbox, poll_ms: int) -> None:
        super().__init__(out)
        self._poll_s = poll_ms / 1000
        self._interval = self._poll_s
        self._client: Client | None = None
        self._generation = 0
        self._series_cursor = 0
        self._spans_cursor: object = 0  # the task stream's: a backend's own kind of cursor
        self._events_cursor = 0
        self._server_started = 0.0
        self._ever_answered = False
        self._failing = False
        self._classic_second = 0
        self._next_poll: float | None = None  # None: not polling
        self._next_demo: float | None = None  # None: no demo load
        self._demo_rng = random.Random()
        self._demo_start = 0.0
        self._failures = NewFailures()
        self._failed_count = -1  # the failed count at the last look at the failures
        self._failures_known = False

    def wait_s(self) -> float | None:
        due = [t for t in (self._next_poll, self._next_demo) if t is not None]
        return max(0.0, min(due) - time.monotonic()) if due else None

    def tick(self) -> None:
        now = time.monotonic()
        if self._next_demo is not None and now >= self._next_demo:
            self._next_demo = now + DEMO_INTERVAL_S
            self._feed_demo()
        if self._next_poll is not None and now >= self._next_poll:
            self._next_poll = now + self._interval
            self._poll()

    # -- connection

    def on_attach(self, generation: int, target: Target, key: str,
                  resume: tuple[int, int, float, object] | None = None) -> None:
        """Monitor a server (or a Redis deployment) from now on; the first poll is at once.

        resume: (series cursor, events cursor, server start, spans cursor) the window already
        has, when a new helper takes over from one that died: the window gets no point, event
        or task-stream span twice.
        """
        self.close()
        self._next_poll = None
        self._generation = generation
        self._series_cursor, self._events_cursor, self._server_started, self._spans_cursor = \
            resume or (0, 0, 0.0, 0)
        self._ever_answered = resume is not None  # a failure then is a lost server, not a typo
        self._failing = False
        self._failures.reset()
        self._failed_count = -1
        self._failures_known = False  # the first look only learns what failed before
        self._interval = self._poll_s
        self._client = make_client(target, key)
        self._next_poll = time.monotonic()  # tick() polls right after this message

    def on_detach(self) -> None:
        """Stop monitoring."""
        self._next_poll = self._next_demo = None
        self.close()

    def close(self) -> None:
        if self._client is not None:
            close_client(self._client)
        self._client = None

    def _poll(self) -> None:
        client = self._client
        if client is None:
            self._next_poll = None
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
                self.out.send("poll_failed", self._generation, str(exc),
                              not self._ever_answered)
            if not self._ever_answered:
                self._next_poll = None  # a first contact that fails is final: wrong key, port…
                self.close()
                return
            self._interval = RETRY_INTERVAL_MS / 1000
            return
        self._interval = self._poll_s
        self._failing = False
        first_contact = not self._ever_answered
        self._ever_answered = True
        if first_contact and snap.kind == "guidist":
            try:
                self.out.send("orders", self._generation, tuple(client.task_orders()))
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
        self.out.send("polled", self._generation, snap)
        if snap.kind == "guidist":
            self._look_at_failures(client, snap)

    def _look_at_failures(self, client: Client, snap: Snapshot) -> None:
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
        if new and self._failures_known:  # failures from before we looked are not news
            self.out.send("failures", self._generation, new, at_least)
        self._failures_known = True

    def _classic_series(self, snap: Snapshot) -> Snapshot:
        """A tutorial master keeps no series: make one point a second from its queue size."""
        second = int(snap.time)
        if second <= self._classic_second:
            return snap
        self._classic_second = second
        point = (second, 0, 0, 0, 0, snap.count("queued"), 0, 0)
        return dataclasses.replace(snap, series=(point,))

    # -- requests

    def on_page(self, request: PageRequest) -> None:
        """Fetch one page of the task listing."""
        if self._client is None:
            return
        try:
            page = self._client.list_tasks(request.state, request.offset, request.limit,
                                           request.search, request.order, request.job)
        except GuidistError as exc:
            self.out.send("page", PageReply(request, error=str(exc)))
            return
        self.out.send("page", PageReply(request, page))

    def on_task(self, task_id: int) -> None:
        """Fetch one task with its result or traceback."""
        if self._client is not None:
            self.out.send("task", self._client.get_task(task_id))

    def on_export_tasks(self, path: str, state: str | None, search: str | None) -> None:
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
        self.out.notice("control", f"exported {n} task(s) to {path}")

    def on_export_results(self, path: str, job_id: int) -> None:
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
        self.out.notice("control", f"exported {n} result(s) of job {job.name} to {path}")

    def on_act(self, action: str, *args: Any) -> None:
        """Run a control call (cancel, retry, retry_all, purge, pause, resume, request_stop…)."""
        if self._client is None:
            raise GuidistError("Not connected to a server.")
        value = getattr(self._client, action)(*args)
        self.out.send("action", (action, value))

    # -- demo load

    def on_demo(self, on: bool) -> None:
        """Start or stop the steady mixed load of the demo."""
        if on:
            self._demo_start = time.monotonic()
            self._next_demo = self._demo_start
        else:
            self._next_demo = None

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


class Submitter(Loop):
    """Owns the Client that queues tasks, chunk by chunk, with progress and cancel."""

    name = "submit"

    def __init__(self, out: Outbox) -> None:
        super().__init__(out)
        self._client: Client | None = None

    def on_submit_target(self, target: Target | None, key: str = "") -> None:
        """Where tasks go."""
        self.close()
        self._client = make_client(target, key) if target is not None else None

    def close(self) -> None:
        if self._client is not None:
            close_client(self._client)
        self._client = None

    def on_submit(self, job: SubmitJob, cancel: threading.Event) -> None:
        """Queue every task of a job; rows are checked before the first one is sent."""
        self.out.send("finished", self._submit(job, cancel))

    def _submit(self, job: SubmitJob, cancel: threading.Event) -> SubmitOutcome:
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
                self.out.send("progress", SubmitProgress(sent + n, total))
            return not cancel.is_set()

        try:
            if self._client is None:
                raise GuidistError("Start or attach to a server before queueing tasks.")
            self._client.connect()
            groups = job.groups()
            if total is None:
                total = sum(len(a) for _, a in groups)  # type: ignore[arg-type]
            self.out.send("progress", SubmitProgress(0, total))
            # Chunks of GUI_SUBMIT_CHUNK: progress and cancel stay prompt (the pickling no
            # longer competes with the window for a GIL; it runs in this process).
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
            return SubmitOutcome(job, 0, error=str(exc), field=exc.field)
        except GuidistError as exc:
            return SubmitOutcome(job, sent + in_group, error=str(exc),
                                 seconds=time.monotonic() - started)
        except Exception as exc:  # e.g. an argument that cannot be pickled
            log.exception("submission failed")
            return SubmitOutcome(job, sent + in_group, error=f"Submitting failed: {exc}",
                                 seconds=time.monotonic() - started)
        return SubmitOutcome(job, sent, cancelled=cancel.is_set(),
                             seconds=time.monotonic() - started)


def _die_with_parent() -> None:
    """On Linux, ask the kernel to end this process when its parent thread dies (the pipe's
    end-of-file and the parent check cover other systems, a second later)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def run(conn: Connection, parent_pid: int, poll_ms: int, log_level: int = logging.WARNING
        ) -> None:
    """The helper process's body (a module-level target, so spawn can start it)."""
    # Ctrl-C in a terminal reaches the whole process group: the window closes this process
    # itself, in order, after its own cleanup.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=log_level, format="%(levelname)s %(name)s: %(message)s")
    if os.getppid() != parent_pid:
        return  # the window died while this process started
    out = Outbox(conn)
    session, submitter = Session(out, poll_ms), Submitter(out)
    session.start()
    submitter.start()
    cancel = threading.Event()  # of the submission asked for last
    try:
        while not out.broken.is_set():
            if not conn.poll(PARENT_CHECK_S):
                if os.getppid() != parent_pid:
                    break
                continue
            message = conn.recv()
            kind = message[0]
            if kind == "stop":
                break
            if kind == "cancel_submit":
                cancel.set()  # here, not queued: the submitter is busy with the submission
            elif kind == "submit":
                cancel = threading.Event()
                submitter.post((*message, cancel))
            elif kind in SUBMIT_KINDS:
                submitter.post(message)
            elif kind in SESSION_KINDS:
                session.post(message)
            else:
                log.error("unknown message %r", kind)
    except (EOFError, OSError):
        pass  # the window's end closed: it is gone
    finally:
        cancel.set()
        session.stop(2.0)
        submitter.stop(2.0)
        conn.close()
