"""How a worker runs the tasks it claimed: in processes, threads, or an asyncio event loop.

All three expose ``submit(function_name, args, kwargs) -> Future[Outcome]`` so the worker's
claim → run → report loop is the same in every mode. An outcome is ``(ok, value, started,
runtime)``: the task is timed where it runs (in the child process, the thread or the
coroutine), so time spent waiting for a free slot is not counted as running. The futures
never raise: a task's exception becomes ``(False, traceback_text, ...)``, computed where the
task ran.

A task given a time limit that runs longer is failed with ``TaskTimeout``, counted from when it
really started (not from when it was claimed): the process mode kills that task's child and
starts a fresh one (the other children go on); the thread mode cannot stop a thread, so it fails
the task on time, leaves the thread to finish on its own and gives new tasks a fresh pool; the
async mode cancels a coroutine (a plain function's thread is left to finish, as in the thread
mode). The inline mode is handled by the worker itself (worker.py).
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import heapq
import inspect
import itertools
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from multiprocessing import connection
from typing import Any

from . import remote
from .tasks import resolve

log = logging.getLogger(__name__)

MODES = ("inline", "process", "thread", "async")
#: (ok, value or traceback text, wall-clock start, seconds run on the monotonic clock, and
#: for a task that raised its exception pickled to send back, or None)
Outcome = tuple[bool, Any, float | None, float | None, bytes | None]


def default_concurrency(mode: str) -> int:
    """Cores for CPU-bound processes, 32 threads or 64 coroutines for I/O, 1 inline."""
    if mode == "process":
        return os.cpu_count() or 1
    if mode == "thread":
        return 32
    if mode == "async":
        return 64
    return 1


_FUNCTIONS: dict[str, Callable[..., Any]] = {}


def run_task(function: str, args: tuple, kwargs: dict | None,
             blob: bytes | None = None) -> Outcome:
    """Resolve and run one task; never raises (module-level, so process pools can pickle it).

    blob carries a by-value function's bytes into a child process, which cannot fetch them.
    """
    try:
        fn = _FUNCTIONS.get(function)
        if fn is None:
            if blob is not None:
                remote.define(function, blob)
            fn = _FUNCTIONS[function] = resolve(function)
    except Exception as exc:
        return False, traceback.format_exc(), None, None, remote.dump_exception(exc)
    started, t0 = time.time(), time.perf_counter()
    try:
        value = fn(*args, **kwargs) if kwargs else fn(*args)
        if inspect.iscoroutine(value):  # an async def run outside the async mode
            value = asyncio.run(value)
        return True, value, started, time.perf_counter() - t0, None
    except Exception as exc:
        return (False, traceback.format_exc(), started, time.perf_counter() - t0,
                remote.dump_exception(exc))


def failure(text: str, started: float | None = None, runtime: float | None = None) -> Outcome:
    """The outcome of a task that did not run to its end (no exception to send back)."""
    return False, text, started, runtime, None


def timeout_text(seconds: float, what: str) -> str:
    """The error a task that ran past its time limit is failed with."""
    return (f"TaskTimeout: the task ran longer than its {seconds:g} s limit; {what}. Raise "
            "the limit (submit --timeout, serve --task-timeout) if it needs more time.")


def _child_init(parent: int) -> None:
    """Task children exit when the worker that owns them dies, even by SIGKILL."""
    # Ctrl-C reaches the whole process group: the worker decides what stops, not the child.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
        except Exception:
            pass
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _watch_parent(parent: int) -> None:
    # Portable fallback for systems without PR_SET_PDEATHSIG (macOS, Windows).
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(1)


class Executor:
    """Base: runs tasks concurrently and hands back futures of (ok, value)."""

    mode = "inline"

    def __init__(self, concurrency: int) -> None:
        self.concurrency = max(1, int(concurrency))

    def submit(self, function: str, args: tuple, kwargs: dict | None,
               timeout: float | None = None) -> cf.Future:
        """Start one task; with timeout, fail it once it has run that many seconds."""
        raise NotImplementedError

    def cancel(self, fut: cf.Future) -> bool:
        """Withdraw a task that has not started; False when it may have (or cannot tell)."""
        return False

    def shutdown(self, wait: bool = True) -> None:
        """Stop accepting tasks; with wait, let the running ones finish."""


class _Deadlines:
    """One watchdog thread for many deadlines: calls on_late(item) once each passes."""

    def __init__(self, on_late: Callable[[Any], None]) -> None:
        self._on_late = on_late
        self._heap: list[tuple[float, int, Any]] = []
        self._seq = itertools.count()
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def add(self, deadline: float, item: Any) -> None:
        """Watch item until deadline (monotonic seconds)."""
        with self._cv:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="task-deadlines",
                                                daemon=True)
                self._thread.start()
            heapq.heappush(self._heap, (deadline, next(self._seq), item))
            self._cv.notify()

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._closed and (
                        not self._heap or self._heap[0][0] > time.monotonic()):
                    self._cv.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                if self._closed:
                    return
                _deadline, _seq, item = heapq.heappop(self._heap)
            try:
                self._on_late(item)
            except Exception:
                log.exception("handling a late task failed")

    def close(self) -> None:
        """Stop the watchdog."""
        with self._cv:
            self._closed = True
            self._cv.notify()


class ThreadExecutor(Executor):
    """N threads: for blocking I/O (the GIL is released while a thread waits)."""

    mode = "thread"

    def __init__(self, concurrency: int) -> None:
        super().__init__(concurrency)
        self._lock = threading.Lock()
        self._pool = self._new_pool()
        self._deadlines = _Deadlines(self._late)

    def _new_pool(self) -> cf.ThreadPoolExecutor:
        return cf.ThreadPoolExecutor(self.concurrency, thread_name_prefix="task")

    def submit(self, function: str, args: tuple, kwargs: dict | None,
               timeout: float | None = None) -> cf.Future:
        """Run in a pool thread."""
        if timeout is None:
            with self._lock:
                return self._pool.submit(run_task, function, args, kwargs)
        out: cf.Future = cf.Future()

        def run() -> None:
            if not out.set_running_or_notify_cancel():
                return
            self._deadlines.add(time.monotonic() + timeout, (out, timeout, time.time()))
            outcome = run_task(function, args, kwargs)
            try:
                out.set_result(outcome)
            except cf.InvalidStateError:
                pass  # it timed out first: this late outcome is dropped

        with self._lock:
            inner = self._pool.submit(run)
        inner.add_done_callback(lambda f: out.cancel() if f.cancelled() else None)
        return out

    def _late(self, item: tuple[cf.Future, float, float]) -> None:
        out, timeout, started = item
        try:
            out.set_result(failure(timeout_text(timeout, "its thread cannot be stopped and was "
                                                "left to finish on its own"), started, timeout))
        except cf.InvalidStateError:
            return  # it finished in time
        # The stuck thread still holds a slot of the pool: new tasks get a fresh pool.
        with self._lock:
            old, self._pool = self._pool, self._new_pool()
        old.shutdown(wait=False)

    def cancel(self, fut: cf.Future) -> bool:
        """A pool future can only be cancelled before a thread picks it up."""
        return fut.cancel()

    def shutdown(self, wait: bool = True) -> None:
        """Cancel what has not started; optionally wait for the rest."""
        self._deadlines.close()
        with self._lock:
            pool = self._pool
        pool.shutdown(wait=wait, cancel_futures=True)


class _Job:
    """A task for the process pool, and its future."""

    __slots__ = ("future", "call", "timeout", "deadline", "started")

    def __init__(self, call: tuple, timeout: float | None) -> None:
        self.future: cf.Future = cf.Future()
        self.call = call  # run_task's arguments
        self.timeout = timeout
        self.deadline: float | None = None
        self.started: float | None = None  # wall clock, once a child took it


class _Child:
    """One task process and the parent's end of its pipe."""

    __slots__ = ("process", "conn")

    def __init__(self, process: Any, conn: Any) -> None:
        self.process = process
        self.conn = conn


#: What a task process sends once it has started, before any task: a task's time limit runs
#: from when a ready child takes it, never through a child's start-up (seconds under load).
_READY = "ready"


def _child_main(conn: Any, parent: int) -> None:
    """A task process: run what the pipe brings, one task at a time, until it closes."""
    _child_init(parent)
    conn.send(_READY)
    while True:
        try:
            call = conn.recv()
        except (EOFError, OSError):
            return
        if call is None:
            return
        outcome = run_task(*call)
        try:
            conn.send(outcome)
        except Exception as exc:  # an unpicklable result
            conn.send(failure(f"the result could not be sent back: {type(exc).__name__}: {exc}",
                              outcome[2], outcome[3]))


class ProcessExecutor(Executor):
    """N child processes (spawn): for CPU-bound work, one task per child at a time.

    A small pool of its own rather than ProcessPoolExecutor: that one cannot say when a task
    really started (it marks futures running when they are queued for a child), cannot kill
    one child, and breaks as a whole when one dies, failing every task in flight. Here a child
    that dies or runs past its task's time limit fails only that task and is replaced.
    """

    mode = "process"

    def __init__(self, concurrency: int) -> None:
        super().__init__(concurrency)
        self._ctx = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._idle: list[_Child] = []
        self._starting: list[_Child] = []  # spawned, not ready yet: given no task
        self._busy: dict[_Child, _Job] = {}
        self._queue: deque[_Job] = deque()
        self._closed = False
        self._wake_r, self._wake_w = self._ctx.Pipe(duplex=False)  # wakes the dispatcher
        self._starting.extend(self._spawn() for _ in range(self.concurrency))
        self._thread = threading.Thread(target=self._run, name="task-processes", daemon=True)
        self._thread.start()

    def _spawn(self) -> _Child:
        ours, theirs = self._ctx.Pipe()
        proc = self._ctx.Process(target=_child_main, args=(theirs, os.getpid()),
                                 name="guidist-task", daemon=True)
        proc.start()
        theirs.close()
        return _Child(proc, ours)

    def submit(self, function: str, args: tuple, kwargs: dict | None,
               timeout: float | None = None) -> cf.Future:
        """Run in a child process; a child that dies fails its task instead of the worker."""
        # A by-value function's bytes go along: a child cannot fetch them itself.
        blob = remote.blob_of(function) if remote.is_by_value(function) else None
        job = _Job((function, args, kwargs, blob), timeout)
        with self._lock:
            if self._closed:
                job.future.set_result(failure("the worker is stopping"))
                return job.future
            self._queue.append(job)
            done = self._dispatch_locked()
        self._settle(done)
        self._wake()
        return job.future

    def _wake(self) -> None:
        try:
            self._wake_w.send_bytes(b"w")
        except OSError:
            pass

    def _dispatch_locked(self) -> list[tuple[cf.Future, Any]]:
        """Start queued jobs on idle children; returns outcomes to set (outside the lock)."""
        done: list[tuple[cf.Future, Any]] = []
        while self._queue and self._idle:
            job = self._queue.popleft()
            if job.future.cancelled():
                continue
            child = self._idle.pop()
            try:
                child.conn.send(job.call)
            except OSError:  # the child died while idle: replace it, and try that job again
                self._queue.appendleft(job)
                self._replace_locked(child, done, "")
                continue
            except Exception as exc:  # unpicklable arguments (pickled first: the pipe is clean)
                self._idle.append(child)
                done.append((job.future, failure(f"the task could not be sent to its "
                                                 f"process: {type(exc).__name__}: {exc}")))
                continue
            job.future.set_running_or_notify_cancel()
            job.started = time.time()
            if job.timeout is not None:
                job.deadline = time.monotonic() + job.timeout
            self._busy[child] = job
        return done

    @staticmethod
    def _settle(done: list[tuple[cf.Future, Any]]) -> None:
        for fut, outcome in done:
            try:
                fut.set_result(outcome)
            except cf.InvalidStateError:
                pass

    def _run(self) -> None:
        """The dispatcher: collect outcomes, replace dead or late children, start queued jobs."""
        while True:
            with self._lock:
                if self._closed and not self._busy:
                    return
                conns = {c.conn: c for c in self._busy}
                starting = {c.conn: c for c in self._starting}
                sentinels = {c.process.sentinel: c
                             for c in (*self._busy, *self._idle, *self._starting)}
                deadlines = [j.deadline for j in self._busy.values() if j.deadline is not None]
            wait = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
            ready = connection.wait([self._wake_r, *conns, *starting, *sentinels], wait)
            done: list[tuple[cf.Future, Any]] = []
            with self._lock:
                if self._wake_r in ready:
                    while self._wake_r.poll():
                        self._wake_r.recv_bytes()
                for r in ready:
                    child = starting.get(r)
                    if child is not None and child in self._starting:
                        try:
                            if child.conn.recv() == _READY:
                                self._starting.remove(child)
                                self._idle.append(child)
                        except (EOFError, OSError):
                            pass  # it died starting: its sentinel says so below
                        continue
                    child = conns.get(r)
                    if child is None or child not in self._busy:
                        continue
                    try:
                        outcome = child.conn.recv()
                    except (EOFError, OSError):
                        continue  # it died: its sentinel says so below
                    done.append((self._busy.pop(child).future, outcome))
                    self._idle.append(child)
                for r in ready:
                    child = sentinels.get(r)
                    if child is not None and not child.process.is_alive():
                        self._replace_locked(child, done, self._died_text(child))
                now = time.monotonic()
                for child, job in list(self._busy.items()):
                    if job.deadline is not None and now >= job.deadline:
                        self._replace_locked(child, done, timeout_text(
                            job.timeout or 0, "its process was killed and replaced"))
                if not self._closed:
                    done += self._dispatch_locked()
            self._settle(done)

    @staticmethod
    def _died_text(child: _Child) -> str:
        code = child.process.exitcode
        how = (f"was killed by signal {-code}" if code is not None and code < 0
               else f"exited with code {code}")
        return f"the task's process {how} while running it (a crash, or out of memory)"

    def _replace_locked(self, child: _Child, done: list, why: str) -> None:
        """Kill child if alive, fail its job with why, and start a fresh child in its place."""
        job = self._busy.pop(child, None)
        if child in self._idle:
            self._idle.remove(child)
        if child in self._starting:
            self._starting.remove(child)
        if child.process.is_alive():
            child.process.kill()
        child.process.join(5)
        child.conn.close()
        if job is not None:
            ran = None if job.started is None else time.time() - job.started
            done.append((job.future, failure(why, job.started, ran)))
            log.warning("task process %s replaced: %s", child.process.pid, why.split(";")[0])
        if not self._closed:
            self._starting.append(self._spawn())

    def cancel(self, fut: cf.Future) -> bool:
        """A task still waiting for a child is withdrawn; one a child took is not (dispatch
        sends and marks running under the same lock, so the answer is exact)."""
        with self._lock:
            return fut.cancel()

    def shutdown(self, wait: bool = True) -> None:
        """Stop the children (they are also tied to this process's life)."""
        with self._lock:
            self._closed = True
            for job in self._queue:
                job.future.cancel()
            self._queue.clear()
        self._wake()
        if wait:
            self._thread.join()
        with self._lock:
            children = [*self._idle, *self._busy, *self._starting]
            self._idle.clear()
            self._starting.clear()
        for c in children:
            try:
                c.conn.send(None)
            except OSError:
                pass
        for c in children:
            c.process.join(2 if wait else 0.5)
            if c.process.is_alive():
                c.process.kill()
                c.process.join(2)
            c.conn.close()

    @property
    def broken(self) -> bool:
        """Never: a child that dies is replaced by the pool itself."""
        return False


class AsyncExecutor(Executor):
    """One event loop running up to N coroutines; plain functions run in a thread beside it."""

    mode = "async"

    def __init__(self, concurrency: int) -> None:
        super().__init__(concurrency)
        self._loop = asyncio.new_event_loop()
        self._threads = cf.ThreadPoolExecutor(min(self.concurrency, 32),
                                              thread_name_prefix="async-sync")
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="event-loop", daemon=True)
        self._thread.start()
        self._ready.wait()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._sem = asyncio.Semaphore(self.concurrency)
        self._loop.call_soon(self._ready.set)
        self._loop.run_forever()

    async def _one(self, function: str, args: tuple, kwargs: dict | None,
                   timeout: float | None) -> Outcome:
        async with self._sem:  # the time limit starts here, when the task really starts
            try:
                fn = _FUNCTIONS.get(function)
                if fn is None:
                    fn = _FUNCTIONS[function] = resolve(function)
            except Exception as exc:
                return False, traceback.format_exc(), None, None, remote.dump_exception(exc)
            # Timed from inside the semaphore: a coroutine waiting for a slot is not running.
            started, t0 = time.time(), time.perf_counter()
            try:
                if not inspect.iscoroutinefunction(fn):
                    work = self._loop.run_in_executor(self._threads, run_task, function, args,
                                                      kwargs)
                    return await asyncio.wait_for(work, timeout)
                value = await asyncio.wait_for(fn(*args, **kwargs) if kwargs else fn(*args),
                                               timeout)
                return True, value, started, time.perf_counter() - t0, None
            except asyncio.TimeoutError as exc:
                ran = time.perf_counter() - t0
                if timeout is not None and ran >= timeout * 0.999:  # ours, not the task's own
                    return failure(timeout_text(timeout, "it was cancelled (a plain function "
                                                "in its thread was left to finish on its own)"),
                                   started, ran)
                return False, traceback.format_exc(), started, ran, remote.dump_exception(exc)
            except Exception as exc:
                return (False, traceback.format_exc(), started, time.perf_counter() - t0,
                        remote.dump_exception(exc))

    def submit(self, function: str, args: tuple, kwargs: dict | None,
               timeout: float | None = None) -> cf.Future:
        """Schedule one coroutine on the loop."""
        return asyncio.run_coroutine_threadsafe(self._one(function, args, kwargs, timeout),
                                                self._loop)

    def shutdown(self, wait: bool = True) -> None:
        """Stop the loop after the running coroutines (when wait) and its helper threads."""
        if wait:
            async def drain() -> None:
                pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
                if pending:
                    await asyncio.gather(*pending, return_exceptions=True)

            try:
                asyncio.run_coroutine_threadsafe(drain(), self._loop).result(timeout=30)
            except Exception:
                pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._threads.shutdown(wait=wait, cancel_futures=True)
        if not self._loop.is_running():
            self._loop.close()


def make_executor(mode: str, concurrency: int | None) -> Executor | None:
    """The executor for a mode, or None for inline (the worker's own batch loop)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
    n = concurrency or default_concurrency(mode)
    if mode == "process":
        return ProcessExecutor(n)
    if mode == "thread":
        return ThreadExecutor(n)
    if mode == "async":
        return AsyncExecutor(n)
    return None
