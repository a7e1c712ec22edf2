"""How a worker runs the tasks it claimed: in processes, threads, or an asyncio event loop.

All three expose ``submit(function_name, args, kwargs) -> Future[Outcome]`` so the worker's
claim → run → report loop is the same in every mode. An outcome is ``(ok, value, started,
runtime)``: the task is timed where it runs (in the child process, the thread or the
coroutine), so time spent waiting for a free slot is not counted as running. The futures
never raise: a task's exception becomes ``(False, traceback_text, ...)``, computed where the
task ran.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import inspect
import logging
import multiprocessing
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
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


def _child_init(parent: int) -> None:
    """Process-pool children exit when the worker that owns them dies, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
        except Exception:
            pass
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _watch_parent(parent: int) -> None:
    # Portable fallback for systems without PR_SET_PDEATHSIG (macOS, Windows).
    import time

    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(1)


class Executor:
    """Base: runs tasks concurrently and hands back futures of (ok, value)."""

    mode = "inline"

    def __init__(self, concurrency: int) -> None:
        self.concurrency = max(1, int(concurrency))

    def submit(self, function: str, args: tuple, kwargs: dict | None) -> cf.Future:
        """Start one task."""
        raise NotImplementedError

    def cancel(self, fut: cf.Future) -> bool:
        """Withdraw a task that has not started; False when it may have (or cannot tell)."""
        return False

    def shutdown(self, wait: bool = True) -> None:
        """Stop accepting tasks; with wait, let the running ones finish."""


class ThreadExecutor(Executor):
    """N threads: for blocking I/O (the GIL is released while a thread waits)."""

    mode = "thread"

    def __init__(self, concurrency: int) -> None:
        super().__init__(concurrency)
        self._pool = cf.ThreadPoolExecutor(self.concurrency, thread_name_prefix="task")

    def submit(self, function: str, args: tuple, kwargs: dict | None) -> cf.Future:
        """Run in a pool thread."""
        return self._pool.submit(run_task, function, args, kwargs)

    def cancel(self, fut: cf.Future) -> bool:
        """A pool future can only be cancelled before a thread picks it up."""
        return fut.cancel()

    def shutdown(self, wait: bool = True) -> None:
        """Cancel what has not started; optionally wait for the rest."""
        self._pool.shutdown(wait=wait, cancel_futures=True)


class ProcessExecutor(Executor):
    """N child processes (spawn): for CPU-bound work, one task per core at a time."""

    mode = "process"

    def __init__(self, concurrency: int) -> None:
        super().__init__(concurrency)
        ctx = multiprocessing.get_context("spawn")
        self._pool = cf.ProcessPoolExecutor(self.concurrency, mp_context=ctx,
                                            initializer=_child_init, initargs=(os.getpid(),))

    def submit(self, function: str, args: tuple, kwargs: dict | None) -> cf.Future:
        """Run in a child process; a child that dies fails its task instead of the worker."""
        blob = remote.blob_of(function) if remote.is_by_value(function) else None
        fut = self._pool.submit(run_task, function, args, kwargs, blob)
        out: cf.Future = cf.Future()
        out.inner = fut  # type: ignore[attr-defined]  # cancel() must reach the pool's future

        def relay(f: cf.Future) -> None:
            try:
                out.set_result(f.result())
            except cf.CancelledError:
                out.cancel()
            except Exception as exc:  # BrokenProcessPool, unpicklable arguments or results
                out.set_result((False, f"{type(exc).__name__}: {exc}", None, None, None))

        fut.add_done_callback(relay)
        return out

    def cancel(self, fut: cf.Future) -> bool:
        """Only the pool's own future knows whether a child took the task; relay() then
        cancels the one handed out."""
        inner = getattr(fut, "inner", None)
        return inner is not None and inner.cancel()

    def shutdown(self, wait: bool = True) -> None:
        """Stop the children (they are also tied to this process's life)."""
        self._pool.shutdown(wait=wait, cancel_futures=True)

    @property
    def broken(self) -> bool:
        """True after a child died; the pool must be replaced."""
        return bool(getattr(self._pool, "_broken", False))


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

    async def _one(self, function: str, args: tuple, kwargs: dict | None) -> Outcome:
        async with self._sem:
            try:
                fn = _FUNCTIONS.get(function)
                if fn is None:
                    fn = _FUNCTIONS[function] = resolve(function)
            except Exception as exc:
                return False, traceback.format_exc(), None, None, remote.dump_exception(exc)
            if not inspect.iscoroutinefunction(fn):
                return await self._loop.run_in_executor(self._threads, run_task, function,
                                                        args, kwargs)
            # Timed from inside the semaphore: a coroutine waiting for a slot is not running.
            started, t0 = time.time(), time.perf_counter()
            try:
                value = await (fn(*args, **kwargs) if kwargs else fn(*args))
                return True, value, started, time.perf_counter() - t0, None
            except Exception as exc:
                return (False, traceback.format_exc(), started, time.perf_counter() - t0,
                        remote.dump_exception(exc))

    def submit(self, function: str, args: tuple, kwargs: dict | None) -> cf.Future:
        """Schedule one coroutine on the loop."""
        return asyncio.run_coroutine_threadsafe(self._one(function, args, kwargs), self._loop)

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
