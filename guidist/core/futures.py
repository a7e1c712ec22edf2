"""Results back in Python: ``concurrent.futures`` futures for tasks, fed by one long poll.

A Client hands out ``TaskFuture`` objects (``client.submit``) and result streams
(``client.map``). Neither polls per task: one watcher thread per client holds a blocking
``wait_results`` call on the server, for the jobs its tasks belong to, and one reply
delivers every result that finished meanwhile. The server scans only the results that
finished after the watcher's cursor, so waiting costs the same for one task or a million.

A caller blocked in ``result()`` (or a map's iterator) holds that wait itself when no other
thread does: the reply then wakes the thread that wants it, with no hand-off through the
watcher thread (on an idle system that hand-off cost more than a no-op round trip). The
watcher thread runs only once someone waits without holding the wait: a done-callback,
``concurrent.futures.wait``/``as_completed``, ``done()`` asked of a pending future, or a
caller that found the wait held by another thread. Waking it at every submit, only for it
to find the caller holding the wait, cost the round trip about a tenth (on two cores that
wake took a core from the server or the worker just as the task was on its way). One wait
is in flight at a time, whichever thread holds it.

Cursors: the watcher remembers the newest result it has seen. A submission registers with
the cursor read *before* it was sent, and the next wait starts from there, so a task that
finishes before its future is registered is still seen. When results left the server's
recent-results log before the watcher read them (a slow reader, a restart), the server says
so (``gap``) and the watcher asks for its unfinished tasks by id: on the in-memory backend
that read falls back to the journal, so a result evicted from memory is still delivered.
"""

from __future__ import annotations

import bisect
import concurrent.futures as cf
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Any, Protocol

from .errors import GuidistError, NotAGuidistServer
from .protocol import Task, outcome_of
from .remote import load_exception

log = logging.getLogger(__name__)

WAIT_SECONDS = 20.0  # one wait_results call; a poke or a result ends it sooner
IDLE_EXIT = 5.0  # the watcher thread ends after this long with nothing to wait for
GIVE_UP_AFTER = 60.0  # seconds without a server before pending futures fail
CLOSE_WAIT = 2.0  # seconds close() waits for the thread to end (a poke ends its wait at once)
_LOOKUP_CHUNK = 5000


class Caller(Protocol):
    """What futures need of a Client: broker calls, and cancelling by id."""

    def call(self, method: str, *args: Any) -> Any: ...
    def cancel(self, ids: Iterable[int]) -> int: ...


class TaskFailed(GuidistError):
    """A task raised (and its exception could not be re-raised here), died, or is gone.

    ``traceback`` is the remote traceback text (or the reason), ``state`` the task's state.
    """

    def __init__(self, task_id: int, state: str, traceback: str | None) -> None:
        self.task_id = task_id
        self.state = state
        self.traceback = traceback or ""
        lines = self.traceback.strip().splitlines()
        super().__init__(f"task {task_id} {state}: {lines[-1] if lines else 'no details'}")


class RemoteTraceback(Exception):
    """Carries the worker's traceback text as the ``__cause__`` of a re-raised exception."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return self.text


def outcome_error(outcome: tuple) -> BaseException | None:
    """The exception a finished task's outcome stands for, or None for a success."""
    tid, state, _result, error, exc_blob = outcome
    if state == "done":
        return None
    if state == "failed":
        exc = load_exception(exc_blob)
        if exc is not None:
            exc.__cause__ = RemoteTraceback(error or "")
            return exc
    if state == "cancelled":
        return cf.CancelledError(f"task {tid} was cancelled")
    return TaskFailed(tid, state, error)


class TaskFuture(cf.Future):
    """A ``concurrent.futures.Future`` for one task; ``id`` is the task's id.

    ``cancel()`` cancels the task on the server if it is still queued. ``int(future)`` is the
    id, so a future can be passed wherever a task id is taken.
    """

    def __init__(self, task_id: int, client: Caller | None = None,
                 watcher: ResultWatcher | None = None) -> None:
        super().__init__()
        self.id = int(task_id)
        self._client = client
        self._watcher = watcher
        self._waiters: list = _Watched(watcher)  # what concurrent.futures.wait appends to

    def done(self) -> bool:
        """True when resolved. Asked of a pending future, results flow to it from now on
        (someone watches it without waiting in result())."""
        if _resolved(self):
            return True
        self._wanted()
        return False

    def add_done_callback(self, fn: Callable[[cf.Future], object]) -> None:
        """Call fn(future) once resolved (at once if it is); results flow from now on."""
        super().add_done_callback(fn)
        if not _resolved(self):
            self._wanted()

    def _wanted(self) -> None:
        if self._watcher is not None:
            self._watcher.want()

    def result(self, timeout: float | None = None) -> Any:
        """The task's result (or its exception raised), waiting up to timeout seconds."""
        try:
            return super().result(self._serve(timeout))
        finally:
            # As the stdlib's: a raised exception's traceback holds this frame, which must
            # not hold the future, or the future (its Client, that Client's manager proxy)
            # is left to the cyclic collector (see _Watched for why that hurts).
            del self

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """The task's exception (None for a success), waiting up to timeout seconds."""
        try:
            return super().exception(self._serve(timeout))
        finally:
            del self  # as in result()

    def _serve(self, timeout: float | None) -> float | None:
        """Hold the result wait on this thread until resolved (when no other thread holds
        it); returns what is left of timeout for the standard wait."""
        if self._watcher is None or _resolved(self):
            return timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        self._watcher.serve(partial(_resolved, self), deadline)
        return None if deadline is None else max(0.0, deadline - time.monotonic())

    def cancel(self) -> bool:
        """Cancel the task if it is still queued; True when it is (now) cancelled."""
        if _resolved(self):
            return self.cancelled()
        if self._client is None or self._client.cancel([self.id]) == 0:
            return False  # running or finished: it can no longer be cancelled
        mark_cancelled(self)
        return True

    def __int__(self) -> int:
        return self.id

    __index__ = __int__

    def __repr__(self) -> str:
        return f"<TaskFuture task {self.id} {self._state.lower()}>"


class _Watched(list):
    """A TaskFuture's waiters: ``concurrent.futures.wait`` and ``as_completed`` append theirs
    here, and then wait for it without calling result(): results must flow to it.

    It holds the watcher, not the future: a cycle through the future would leave it, its
    Client and that Client's manager proxy to the cyclic collector, whose finalizer closes
    the thread's socket to the server (all proxies of one server share an id) wherever the
    collection happens to run, in the middle of another client's call included."""

    def __init__(self, watcher: ResultWatcher | None) -> None:
        super().__init__()
        self._watcher = watcher

    def append(self, waiter: Any) -> None:
        """Add a waiter (under the future's condition); the future is wanted from now on."""
        super().append(waiter)
        if self._watcher is not None:
            self._watcher.want()


def _resolved(fut: cf.Future) -> bool:
    """done() without the interest a TaskFuture's done() registers."""
    return cf.Future.done(fut)


def mark_cancelled(fut: cf.Future) -> None:
    """Cancel a future and tell concurrent.futures.wait/as_completed about it."""
    if super(TaskFuture, fut).cancel() if isinstance(fut, TaskFuture) else fut.cancel():
        fut.set_running_or_notify_cancel()


def settle(fut: cf.Future, outcome: tuple) -> None:
    """Resolve a future from a finished task's outcome (a no-op once it is resolved)."""
    if _resolved(fut):
        return
    if outcome[1] == "cancelled":
        mark_cancelled(fut)
        return
    err = outcome_error(outcome)
    try:
        if err is None:
            fut.set_result(outcome[2])
        else:
            fut.set_exception(err)
    except cf.InvalidStateError:
        pass  # cancelled by its owner meanwhile


class _Entry:
    """A run of consecutive task ids the watcher resolves, and where their outcomes go."""

    __slots__ = ("first", "n", "job", "deliver", "left", "done")

    def __init__(self, first: int, n: int, job: int,
                 deliver: Callable[[int, tuple], None]) -> None:
        self.first, self.n, self.job, self.deliver = first, n, job, deliver
        self.left = n
        self.done: set[int] | None = None if n == 1 else set()  # ids delivered so far


class ResultWatcher:
    """One per Client: the thread that holds the long poll and resolves futures."""

    def __init__(self, client: Caller) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._entries: dict[int, _Entry] = {}
        self._starts: list[int] = []  # sorted first ids of the entries
        self._jobs: dict[int, int] = {}  # job id -> entries pending in it
        self._cursor: int | None = None
        self._rewind: int | None = None  # the oldest cursor a new entry was registered with
        self._in_flight: frozenset[int] | None = None  # the jobs of the wait under way
        self._token = uuid.uuid4().hex
        self._thread: threading.Thread | None = None
        self._closed = False
        # A caller holding the wait on its own thread (serve): its thread id and what it
        # waits for; the watcher thread leaves the wait to it meanwhile.
        self._driver: int | None = None
        self._driver_ready: Callable[[], bool] | None = None
        # Someone waits for results without holding the wait (see want): the watcher thread
        # serves the entries then, until none is left.
        self._needed = False

    def cursor(self) -> int:
        """The cursor to register a submission with: read before the submit is sent."""
        with self._lock:
            if self._cursor is not None:
                return self._cursor
        cursor = int(self._client.call("result_cursor"))
        with self._lock:
            if self._cursor is None:
                self._cursor = cursor
            return min(self._cursor, cursor)

    def add(self, first: int, n: int, job: int, since: int,
            deliver: Callable[[int, tuple], None]) -> None:
        """Watch ids first..first+n-1 of a job; deliver(id, outcome) once each finishes."""
        with self._lock:
            if self._closed:
                raise GuidistError("this client was closed: connect again to wait for results")
            entry = _Entry(first, n, job, deliver)
            self._entries[first] = entry
            bisect.insort(self._starts, first)
            self._jobs[job] = self._jobs.get(job, 0) + 1
            self._rewind = since if self._rewind is None else min(self._rewind, since)
            poke = self._in_flight is not None and job not in self._in_flight
            if self._needed:
                self._start_thread()
                self._wake.notify_all()
        if poke:  # the wait under way does not cover this job: make it return and re-ask
            try:
                self._client.call("poke", self._token)
            except GuidistError:
                pass  # the wait ends by its timeout instead

    def want(self) -> None:
        """Someone waits for a result without holding the wait: serve the entries from the
        watcher thread (until none is left)."""
        if self._needed:
            return
        with self._lock:
            if not self._needed and not self._closed:
                self._needed = True
                self._start_thread()
                self._wake.notify_all()

    def serve(self, ready: Callable[[], bool], deadline: float | None) -> None:
        """Hold the result wait on the calling thread until ready() is true or the deadline
        (monotonic) passes, unless another thread holds it (then the caller waits for that
        one, or the watcher thread, to deliver). ready must not take this watcher's lock."""
        me = threading.get_ident()
        if ready():  # outside the lock: a future's own lock is taken before ours (want)
            return
        with self._lock:
            nested = self._driver == me and self._in_flight is None  # from a callback it ran
            if self._closed or not self._entries:
                return
            if not nested and (self._driver is not None or self._in_flight is not None):
                # Held elsewhere: whoever holds it delivers; when it stops, the watcher
                # thread serves what is left, ours included.
                self._needed = True
                self._start_thread()
                return
            outer = self._driver_ready
            self._driver, self._driver_ready = me, ready
        failed = True
        try:
            failed = self._serve(ready, deadline)
        finally:
            with self._lock:
                if nested:
                    self._driver_ready = outer
                else:
                    self._driver = self._driver_ready = None
                if failed and self._entries and not self._closed:
                    self._needed = True  # the caller waits on: the thread retries for it
                if self._needed and self._entries and not self._closed:
                    self._start_thread()
                self._wake.notify_all()

    def _serve(self, ready: Callable[[], bool], deadline: float | None) -> bool:
        """The caller's waits; True when one failed (the caller then needs the thread)."""
        while not ready():
            seconds = WAIT_SECONDS
            if deadline is not None:
                seconds = min(seconds, deadline - time.monotonic())
                if seconds <= 0:
                    return False
            with self._lock:
                if self._closed or not self._entries:
                    return False
                cursor, jobs = self._begin_wait()
            try:
                self._wait_once(cursor, jobs, seconds)
            except GuidistError:
                return True  # the watcher thread retries, backs off and gives up in time
            except Exception as exc:  # a bug or a broken reply: fail the futures (as _run)
                with self._lock:
                    closed = self._closed
                if not closed:
                    log.exception("waiting for results failed")
                    self.close(f"waiting for results failed: {type(exc).__name__}: {exc}")
                return False
        return False

    def check(self, ids: list[int]) -> None:
        """Look these (watched) tasks up by id now: for tasks that may have finished long ago."""
        self._lookup(ids)

    def close(self, reason: str = "the client was closed",
              timeout: float = CLOSE_WAIT) -> None:
        """Stop watching; pending futures fail with reason. Returns once the thread ended
        (or after timeout): the caller may then release the connection under it."""
        with self._lock:
            self._closed = True
            entries = list(self._entries.values())
            self._entries.clear()
            self._starts.clear()
            self._jobs.clear()
            waiting = self._in_flight is not None
            thread = self._thread
            self._wake.notify_all()
        own = threading.current_thread() is thread
        if waiting and not own:
            # End the wait under way now, or a server thread stays blocked in it (and its
            # connection open) for up to WAIT_SECONDS after the client is gone.
            try:
                self._client.call("poke", self._token)
            except GuidistError:
                pass
        self._fail(entries, reason)
        deadline = time.monotonic() + timeout
        if thread is not None and not own:
            # A Redis connection runs the wait in this process: shutting it down while the
            # thread still reads from its sockets makes redis-py fail in odd ways.
            thread.join(timeout)
        me = threading.get_ident()
        with self._lock:  # the same for a caller holding the wait (the poke ends it)
            while self._driver is not None and self._driver != me:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._wake.wait(left)

    # -------------------------------------------------------------- the thread

    def _start_thread(self) -> None:
        """Under the lock: start the watcher thread unless it runs."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="guidist-results",
                                            daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            self._watch()
        except Exception as exc:  # a bug or a broken reply: fail the futures, never hang them
            with self._lock:
                closed = self._closed
            if not closed:
                log.exception("the results thread failed")
                self.close(f"waiting for results failed: {type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                if self._thread is threading.current_thread():
                    self._thread = None

    def _watch(self) -> None:
        trouble_since: float | None = None
        while True:
            with self._lock:
                idle_until = time.monotonic() + IDLE_EXIT
                # Nothing to wait for, nobody waiting without holding the wait, or a caller
                # holds it (it wakes us when it stops).
                while (not self._entries or not self._needed or self._driver is not None) \
                        and not self._closed:
                    left = idle_until - time.monotonic()
                    if left <= 0:
                        self._thread = None
                        return
                    self._wake.wait(left)
                if self._closed:
                    self._thread = None
                    return
                cursor, jobs = self._begin_wait()
            try:
                self._wait_once(cursor, jobs, WAIT_SECONDS)
            except Exception as exc:
                with self._lock:
                    if self._closed:  # closed meanwhile: whatever the call met, it is over
                        return
                if not isinstance(exc, GuidistError):
                    raise
                now = time.monotonic()
                trouble_since = trouble_since or now
                if now - trouble_since > GIVE_UP_AFTER:
                    log.warning("giving up waiting for results: %s", exc)
                    self.close(f"no answer from the server for {GIVE_UP_AFTER:.0f} s: {exc}")
                    return
                with self._lock:  # close() cuts the back-off short
                    if not self._closed:
                        self._wake.wait(min(2.0, 0.1 + (now - trouble_since) / 4))
                continue
            trouble_since = None

    def _begin_wait(self) -> tuple[int, list[int]]:
        """Under the lock: the cursor and jobs of the next wait, which is now in flight."""
        jobs = sorted(self._jobs)
        cursor = self._cursor or 0
        if self._rewind is not None:
            cursor = min(cursor, self._rewind)
            self._rewind = None
        self._in_flight = frozenset(jobs)
        return cursor, jobs

    def _wait_once(self, cursor: int, jobs: list[int], seconds: float) -> None:
        """One wait_results call and what it delivers; if the call fails, the next wait
        starts from this one's cursor again, and the error is raised."""
        try:
            new, outcomes, gap = self._client.call("wait_results", cursor, jobs, seconds,
                                                   self._token)
        except BaseException:
            with self._lock:
                self._in_flight = None
                self._rewind = cursor if self._rewind is None else min(self._rewind, cursor)
            raise
        with self._lock:
            self._in_flight = None
            self._cursor = int(new)
        self._deliver(outcomes)
        if gap:
            self._lookup(self._pending_ids())

    def _find(self, tid: int) -> _Entry | None:
        i = bisect.bisect_right(self._starts, tid) - 1
        if i < 0:
            return None
        entry = self._entries.get(self._starts[i])
        if entry is None or tid >= entry.first + entry.n:
            return None
        return entry

    def _deliver(self, outcomes: list[tuple]) -> None:
        calls = []
        with self._lock:
            for outcome in outcomes:
                entry = self._find(int(outcome[0]))
                if entry is None:
                    continue  # not ours, or already delivered
                if entry.done is not None:
                    if outcome[0] in entry.done:
                        continue
                    entry.done.add(outcome[0])
                entry.left -= 1
                if entry.left <= 0:
                    self._drop(entry)
                calls.append((entry.deliver, outcome))
        for deliver, outcome in calls:  # outside the lock: callbacks run user code
            try:
                deliver(int(outcome[0]), outcome)
            except Exception:
                log.exception("delivering the result of task %s failed", outcome[0])
        driver, ready = self._driver, self._driver_ready
        if calls and driver is not None and driver != threading.get_ident() and ready and ready():
            # What a caller holds the wait for came another way (a lookup by id on another
            # thread): end its wait now rather than when the server next has a result.
            try:
                self._client.call("poke", self._token)
            except GuidistError:
                pass

    def _drop(self, entry: _Entry) -> None:
        self._entries.pop(entry.first, None)
        i = bisect.bisect_left(self._starts, entry.first)
        if i < len(self._starts) and self._starts[i] == entry.first:
            del self._starts[i]
        left = self._jobs.get(entry.job, 0) - 1
        if left > 0:
            self._jobs[entry.job] = left
        else:
            self._jobs.pop(entry.job, None)
        if not self._entries:
            self._needed = False  # all delivered: the next submit's caller may hold the wait

    def _pending_ids(self) -> list[int]:
        with self._lock:
            entries = list(self._entries.values())
        out: list[int] = []
        for e in entries:
            done = e.done or set()
            out.extend(i for i in range(e.first, e.first + e.n) if i not in done)
        return out

    def _lookup(self, ids: list[int]) -> None:
        """Resolve what finished among ids, asking the server by id (bounded chunks)."""
        for start in range(0, len(ids), _LOOKUP_CHUNK):
            chunk = ids[start:start + _LOOKUP_CHUNK]
            try:
                tasks: list[Task | None] = self._client.call("get_tasks", chunk)
            except GuidistError as exc:
                log.info("could not look tasks up: %s", exc)
                return
            outcomes = []
            for tid, task in zip(chunk, tasks):
                if task is None:
                    outcomes.append((tid, "lost", None, "the server no longer knows this "
                                     "task (its result was dropped, or the server restarted "
                                     "without a journal)", None))
                elif task.state.finished:
                    outcomes.append(outcome_of(task))
            self._deliver(outcomes)

    def _fail(self, entries: list[_Entry], reason: str) -> None:
        for e in entries:
            done = e.done or set()
            for tid in range(e.first, e.first + e.n):
                if tid not in done:
                    try:
                        e.deliver(tid, (tid, "lost", None, reason, None))
                    except Exception:
                        log.exception("failing task %s's future failed", tid)


class MapResults:
    """The results of a map in input order: filled by the watcher, read by the iterator."""

    def __init__(self, chunked: bool, watcher: ResultWatcher | None = None) -> None:
        self._chunked = chunked
        self._watcher = watcher  # whose wait the iterator holds itself when no thread does
        self._cv = threading.Condition()
        self._outcomes: dict[int, tuple] = {}  # task index -> outcome, until it is read
        self._index: list[tuple[int, int, int]] = []  # (first id, n, index of first)

    def watch(self, first: int, n: int, base: int) -> Callable[[int, tuple], None]:
        """The deliver function for ids first..first+n-1, which are tasks base.. of the map."""
        def deliver(tid: int, outcome: tuple) -> None:
            with self._cv:
                self._outcomes[base + tid - first] = outcome
                self._cv.notify_all()

        return deliver

    def results(self, count: int, deadline: float | None,
                on_close: Callable[[int], None]) -> Iterator[Any]:
        """Yield the task results in order (a chunk's items one by one), raising a task's
        exception where it comes; on_close(next index) runs if the caller stops early."""
        i = 0
        try:
            while i < count:
                if self._watcher is not None and i not in self._outcomes:
                    self._watcher.serve(partial(self._outcomes.__contains__, i), deadline)
                with self._cv:
                    while i not in self._outcomes:
                        left = None if deadline is None else deadline - time.monotonic()
                        if left is not None and left <= 0:
                            raise cf.TimeoutError(f"task {i + 1} of {count} did not finish "
                                                  "in time")
                        self._cv.wait(left)
                    outcome = self._outcomes.pop(i)
                i += 1
                err = outcome_error(outcome) if outcome[1] != "done" else None
                if err is not None:
                    raise err
                if self._chunked:
                    yield from outcome[2]
                else:
                    yield outcome[2]
        finally:
            if i < count:
                on_close(i)


def classic_future(message: str) -> TaskFuture:
    """A future for a task queued on a tutorial master, which hands out no ids."""
    fut = TaskFuture(0)
    fut.set_exception(NotAGuidistServer(message))
    return fut
