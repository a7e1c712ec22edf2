"""The one object the window, the CLI, the workers and scripts use to talk to a server.

Scripts get results back as ``concurrent.futures`` futures (``submit``, ``map``; see
``futures``), with functions sent by reference or by value (see ``remote``).
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, overload

from . import transport
from .connection import Connection, ManagerConnection
from .errors import GuidistError, NotAGuidistServer, RemoteError
from .futures import MapResults, ResultWatcher, TaskFuture, classic_future, settle
from .payload import MAX_PAYLOAD, mib, pack_batches, pack_pieces, submission_args
from .protocol import PLAIN_BELOW, Job, Snapshot, Task, TaskPage, TaskState, WorkerInfo
from .remote import function_spec
from .security import parse_address
from .tasks import chunk_function
from .urls import is_redis_url

log = logging.getLogger(__name__)

#: Tasks per submit round trip: big enough to amortise the call, small enough to show progress.
#: With a journal each call waits for its commit, so the chunk sets how many commits a big
#: submit waits for: 1M tasks in chunks of 20,000 took 0.38-0.43 s to submit (and figure 1,
#: journal on, was bound by it), in chunks of 100,000 0.25-0.28 s.
SUBMIT_CHUNK = 100_000
#: Task ids per cancel or retry call.
ID_CHUNK = 100_000


class TaskIds(Sequence[int]):
    """The ids a submit_many call got, stored as ranges (a million ids cost a few bytes), and
    the job they join (None on a classic master)."""

    def __init__(self, ranges: Iterable[range] = (), job: Job | None = None) -> None:
        self.ranges: list[range] = [r for r in ranges if len(r)]
        self.job = job

    def __len__(self) -> int:
        return sum(len(r) for r in self.ranges)

    @overload
    def __getitem__(self, i: int) -> int: ...
    @overload
    def __getitem__(self, i: slice) -> list[int]: ...

    def __getitem__(self, i: int | slice) -> int | list[int]:
        if isinstance(i, slice):
            return list(self)[i]
        if i < 0:
            i += len(self)
        for r in self.ranges:
            if i < len(r):
                return r[i]
            i -= len(r)
        raise IndexError("task id index out of range")

    def __iter__(self) -> Iterator[int]:
        for r in self.ranges:
            yield from r

    def __contains__(self, x: object) -> bool:
        return any(x in r for r in self.ranges)

    def __repr__(self) -> str:
        return f"TaskIds({self.ranges!r})"


def iter_tasks(client: Any, state: TaskState | str | None = None, search: str | None = None,
               page: int = 5000) -> Iterator[Task]:
    """Every task a server lists (what it holds in memory), page by page, for exports.

    Works with any client that has list_tasks (the manager Client or the Redis one)."""
    offset = 0
    while True:
        got = client.list_tasks(state, offset, page, search)
        yield from got.tasks
        offset += len(got.tasks)
        if not got.tasks or offset >= got.total:
            return


def _id_chunks(ids: Iterable[int]) -> Iterator[list[int]]:
    """Task ids in lists of ID_CHUNK: a list of twenty million ids is ~180 MB pickled, over
    any server's message cap, while a chunk is at most ~1 MB (an id pickles to 9 bytes)."""
    chunk: list[int] = []
    for tid in ids:
        chunk.append(int(tid))
        if len(chunk) >= ID_CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class Client:
    """The one object the window, the CLI, workers and scripts use to talk to a broker.

    It speaks through a Connection: a manager socket to a guidist server or a tutorial master
    (``Client((host, port), key)``), or Redis directly (``Client.redis(url)``). Either way the
    calls are the same, so callers never ask which backend they hold.
    """

    def __init__(self, target: tuple[str, int] | Connection, authkey: str | bytes = b"",
                 connect_timeout: float = transport.CONNECT_TIMEOUT,
                 max_payload: int = MAX_PAYLOAD, job: str | None = None) -> None:
        if isinstance(target, (tuple, list)):
            self.connection: Connection = ManagerConnection(
                (target[0], int(target[1])), authkey, connect_timeout, max_payload)
        else:
            self.connection = target
        #: The job submit() puts tasks in; None: one per function, named on first use.
        self.job_name = job
        self._job_ids: dict[str, int] = {}  # submit()'s jobs: function (or job name) -> id
        self._defined: set[str] = set()  # by-value functions this client sent the server
        self._names: dict[Any, str] = {}  # callables already turned into task names
        self._watcher: ResultWatcher | None = None
        self._watcher_lock = threading.Lock()

    @classmethod
    def redis(cls, url: str | None = None, **broker_options: Any) -> Client:
        """A Client straight to a Redis deployment (URL, else $GUIDIST_REDIS_URL)."""
        from .backends.redis.connection import (
            RedisConnection,  # needs the redis package
        )

        return cls(RedisConnection(url, **broker_options))

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) of the server or Redis, for messages and instructions."""
        return self.connection.address

    @property
    def where(self) -> str:
        """The target as shown to people (a Redis URL without its password)."""
        return self.connection.where

    @property
    def kind(self) -> str | None:
        """"guidist", "classic" (a tutorial master), or None before connecting."""
        return self.connection.kind

    @property
    def max_payload(self) -> int:
        """Largest task argument list or result the broker accepts, in bytes."""
        return self.connection.max_payload

    # ------------------------------------------------------------------ connection

    def connect(self) -> Client:
        """Connect now (calls connect lazily anyway); raises a GuidistError that says what to do."""
        self.connection.open()
        return self

    def close(self) -> None:
        """Forget the connection; the next call connects again. Futures still waiting fail."""
        self._stop_watching()
        self.connection.close()

    def shutdown(self) -> None:
        """Release the connection for good (a Redis connection also ends its listener)."""
        self._stop_watching()
        self.connection.shutdown()

    def _stop_watching(self) -> None:
        with self._watcher_lock:
            watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.close()

    def __enter__(self) -> Client:
        return self.connect()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def call(self, method: str, *args: Any) -> Any:
        """Call a broker method; transport failures become GuidistErrors."""
        return self.connection.call(method, *args)

    # ------------------------------------------------------------------ submitting

    def submit(self, fn: Callable[..., Any] | str, /, *args: Any, **kwargs: Any) -> TaskFuture:
        """Queue fn(*args, **kwargs) as one task; returns a concurrent.futures.Future of its
        result (``.id`` is the task's id).

        fn is a callable (sent by reference when workers can import it, else by value) or a
        "package.module:function" name. Tasks go to the client's job (``job=`` of connect),
        or else to one job per function, named after it and the time of its first task.
        """
        name = self.function_name(fn)
        self.connect()
        if self.kind == "classic":
            self.submit_many(name, [args], kwargs or None)
            return classic_future(f"{self.where} is a tutorial master: its results come back "
                                  "on the classic result queue (classic_result()), not here")
        watcher = self._results()
        since = watcher.cursor()  # before sending: a result can never be missed
        for attempt in (0, 1):
            jid = self._session_job(name)
            try:
                first = self._send_batch(name, [args], kwargs or None, 0, jid)[0].start
                break
            except RemoteError as exc:
                if attempt or "no job with id" not in str(exc):
                    raise
                self._job_ids.clear()  # the server forgot that (finished, old) job: open anew
        fut = TaskFuture(first, self, watcher)
        watcher.add(first, 1, jid, since, lambda _tid, outcome: settle(fut, outcome))
        return fut

    def map(self, fn: Callable[..., Any] | str, *iterables: Iterable[Any],
            job: str | int | None = None, chunksize: int = 1,
            timeout: float | None = None) -> Iterator[Any]:
        """Like the builtin map, run as tasks: results in input order, streamed as they
        finish; a task's exception is raised where its result would be.

        Every task is queued at once (one round trip per 20,000); with chunksize N, each task
        runs fn over N items. job names the job (a new one per call by default). timeout
        counts from this call, as in concurrent.futures.Executor.map.
        """
        if chunksize < 1:
            raise ValueError("chunksize must be 1 or more")
        deadline = None if timeout is None else time.monotonic() + timeout
        items = list(zip(*iterables))
        chunked = chunksize > 1
        name = self.function_name(chunk_function(fn) if chunked else fn)
        self.connect()
        if self.kind == "classic":
            raise NotAGuidistServer(f"{self.where} is a tutorial master: it hands out no task "
                                    "ids, so results cannot come back to map()")
        args_list = ([(items[i:i + chunksize],) for i in range(0, len(items), chunksize)]
                     if chunked else items)
        watcher = self._results()
        since = watcher.cursor()
        results = MapResults(chunked, watcher)
        ids = self.submit_many(name, args_list, job=job)
        jid = ids.job.id if ids.job is not None else 0
        base = 0
        for r in ids.ranges:
            watcher.add(r.start, len(r), jid, since, results.watch(r.start, len(r), base))
            base += len(r)

        def cancel_rest(index: int) -> None:  # the caller stopped reading: drop what is queued
            rest = list(ids)[index:]
            for i in range(0, len(rest), 10_000):
                try:
                    self.cancel(rest[i:i + 10_000])
                except GuidistError:
                    return

        return results.results(len(args_list), deadline, cancel_rest)

    def future(self, task_id: int) -> TaskFuture:
        """A future for a task submitted earlier (by anyone): resolved at once when it has
        already finished, its result read back from the journal if memory no longer holds it."""
        task_id = int(task_id)
        watcher = self._results()
        since = watcher.cursor()
        task = self.get_task(task_id)
        fut = TaskFuture(task_id, self, watcher)
        if task is None:
            watcher.add(task_id, 1, 0, since, lambda _t, o: settle(fut, o))
            watcher.check([task_id])  # not known: fails with the reason
            return fut
        watcher.add(task_id, 1, task.job or 0, since, lambda _t, o: settle(fut, o))
        if task.state.finished:
            watcher.check([task_id])
        return fut

    def function_name(self, fn: Callable[..., Any] | str) -> str:
        """The task name fn goes by: its import path, or a by-value name whose bytes this
        client sends the server once. Raises remote.NotSendable for a callable that can go
        neither way."""
        if isinstance(fn, str):
            return fn
        try:
            cached = self._names.get(fn)
        except TypeError:  # an unhashable callable
            cached = None
        if cached is not None:
            return cached
        name, blob = function_spec(fn)
        if blob is not None and name not in self._defined:
            self.call("define_function", name, blob)
            self._defined.add(name)
        try:
            self._names[fn] = name
        except TypeError:
            pass
        return name

    def _session_job(self, function: str) -> int:
        key = self.job_name or function
        jid = self._job_ids.get(key)
        if jid is None:
            jid = self._job_ids[key] = self.open_job(self.job_name, function).id
        return jid

    def _results(self) -> ResultWatcher:
        with self._watcher_lock:
            if self._watcher is None:
                self._watcher = ResultWatcher(self)
            return self._watcher

    def submit_many(self, function: str | Callable[..., Any], args_list: Iterable[Any],
                    kwargs: dict | None = None, chunk: int = SUBMIT_CHUNK,
                    progress: Callable[[int], bool | None] | None = None,
                    job: str | int | None = None, timeout: float | None = None) -> TaskIds:
        """Queue one task per argument tuple (a bare value is one argument), chunk by chunk.

        ``job`` names the job they join (made when new; an id joins an existing one); without
        it they make a job named after the function and the time. ``progress(n_so_far)`` is
        called after each chunk; returning False stops early (what was already sent stays
        queued). ``timeout`` is how long each task may run before its worker fails it (None:
        the server's ``--task-timeout``, if any).
        """
        function = self.function_name(function)
        self.connect()
        opened = self.open_job(job, function) if self.kind == "guidist" else None
        jid = opened.id if opened is not None else None
        ranges: list[range] = []
        sent = 0
        given = iter(args_list)
        chunk = max(1, chunk)
        while True:
            # A chunk at C speed, as given: _send_batch makes the arguments travel.
            batch = list(itertools.islice(given, chunk))
            if not batch:
                return TaskIds(ranges, opened)
            ranges.extend(self._send_batch(function, batch, kwargs, sent, jid, timeout))
            sent += len(batch)
            if progress is not None and progress(sent) is False:
                return TaskIds(ranges, opened)

    def open_job(self, job: str | int | None = None, function: str = "") -> Job:
        """The job a submission joins: by id, or by name (made when new; a name made from
        function and the time when None)."""
        if isinstance(job, int):
            found = self.job(job)
            if found is None:
                raise RemoteError(f"There is no job with id {job} on the server.")
            return found
        return self.call("open_job", job, function)

    def _send_batch(self, function: str, items: list, kwargs: dict | None,
                    offset: int, job: int | None = None,
                    timeout: float | None = None) -> list[range]:
        # Bare values when every task has one argument; a list of argument tuples else.
        batch = submission_args(items)
        if self.kind == "classic":
            conn = self.connection
            put = conn.task_queue().put
            for args in batch:
                conn.guard(put, args[0] if len(args) == 1 else args)
            return []

        def too_big(i: int, size: int) -> str:
            return (f"Task #{offset + i + 1} has arguments of {mib(size)}, over the "
                    f"{mib(self.max_payload)} limit: pass a file path or URL instead of the "
                    f"data. Tasks #{offset + 1} onwards were not queued.")

        out = []
        # The time limit goes only when there is one, so older servers keep working.
        extra = () if timeout is None else (timeout,)
        # Pieces of a few thousand tasks each, kept as these bytes by the server and handed
        # to a worker whole; a batch too small to split goes as one blob (no class to pay).
        calls: list[Any] = (
            [c for _n, c in pack_pieces(batch, self.max_payload, too_big)]
            if len(batch) >= PLAIN_BELOW else pack_batches(batch, self.max_payload, too_big))
        for sent in calls:
            first, n = self.call("submit", function, sent, kwargs, False, job, *extra)
            out.append(range(first, first + n))
        return out

    # ------------------------------------------------------------------ monitoring

    def snapshot(self, series_since: int = 0, events_since: int = 0,
                 spans_since: Any = None) -> Snapshot:
        """Counts, workers, series points and events after the given cursors, in one call;
        the task-stream spans after spans_since too, when it is not None."""
        self.connect()
        if self.kind == "classic":
            conn = self.connection
            queued = conn.guard(conn.task_queue().qsize)
            waiting = conn.guard(conn.result_queue().qsize)
            return Snapshot(time=time.time(), counts={"queued": queued}, submitted=0,
                            requeued=0, paused=False, throughput=0.0, kind="classic",
                            extra={"results_waiting": waiting})
        if spans_since is None:  # what a server older than the task stream also answers
            return self.call("snapshot", series_since, events_since)
        return self.call("snapshot", series_since, events_since, spans_since)

    def list_tasks(self, state: TaskState | str | None = None, offset: int = 0,
                   limit: int = 100, search: str | None = None,
                   order: str | None = None, job: int | str | None = None) -> TaskPage:
        """A page of the task ledger, newest activity first, or sorted by order (one of
        task_orders(), "-" first for descending); of one job's tasks, with job."""
        state_value = TaskState(state).value if state else None
        if job is not None:
            return self.call("list_tasks", state_value, offset, limit, search, order or None,
                             job)
        if order:
            return self.call("list_tasks", state_value, offset, limit, search, order)
        return self.call("list_tasks", state_value, offset, limit, search)

    def task_orders(self) -> tuple[str, ...]:
        """The keys this server's list_tasks sorts by (none on an older server)."""
        try:
            return tuple(self.call("task_orders"))
        except RemoteError:
            return ()

    def get_task(self, task_id: int) -> Task | None:
        """One task by id (a finished one is read back from the journal once memory no
        longer holds it, on the in-memory backend)."""
        return self.call("get_task", int(task_id))

    def get_tasks(self, ids: Iterable[int]) -> list[Task | None]:
        """Several tasks by id, in one round trip per 10,000."""
        ids = [int(i) for i in ids]
        out: list[Task | None] = []
        for i in range(0, len(ids), 10_000):
            out.extend(self.call("get_tasks", ids[i:i + 10_000]))
        return out

    def results_since(self, cursor: int = 0, limit: int = 1000) -> tuple[int, list[Task]]:
        """Tasks finished after a cursor; returns the new cursor and the tasks."""
        return self.call("results_since", cursor, limit)

    def workers(self) -> tuple[WorkerInfo, ...]:
        """Every worker the server knows."""
        return self.call("workers")

    def jobs(self) -> tuple[Job, ...]:
        """Every job the server keeps (unfinished ones and the newest finished), newest first."""
        return self.call("jobs")

    def job(self, ref: int | str) -> Job | None:
        """One job by id or name; None when there is none."""
        return self.call("job", ref)

    def cancel_job(self, ref: int | str) -> int:
        """Cancel every queued task of a job; returns how many were."""
        return self.call("cancel_job", ref)

    def retry_job(self, ref: int | str) -> int:
        """Queue a job's failed and dead tasks again; returns how many."""
        return self.call("retry_job", ref)

    def wait_idle(self, timeout: float = 60.0, poll: float = 0.05) -> Snapshot:
        """Block until nothing is queued, claimed or running (for scripts and tests)."""
        deadline = time.monotonic() + timeout
        while True:
            snap = self.snapshot()
            if snap.count("queued") == 0 and snap.leased == 0:
                return snap
            if time.monotonic() > deadline:
                raise TimeoutError(f"still {snap.count('queued')} queued, "
                                   f"{snap.count('claimed')} claimed and "
                                   f"{snap.count('running')} running after {timeout:.0f} s")
            time.sleep(poll)

    # ------------------------------------------------------------------ control

    def cancel(self, ids: Iterable[int]) -> int:
        """Cancel queued tasks; returns how many were (sent in chunks of ids, however many)."""
        return sum(self.call("cancel", chunk) for chunk in _id_chunks(ids))

    def purge(self) -> int:
        """Cancel every queued task."""
        return self.call("purge")

    def pause(self) -> None:
        """Stop dispatching."""
        self.call("pause")

    def resume(self) -> None:
        """Dispatch again."""
        self.call("resume")

    def retry(self, ids: Iterable[int]) -> int:
        """Queue failed or dead tasks again (sent in chunks of ids, however many)."""
        return sum(self.call("retry", chunk) for chunk in _id_chunks(ids))

    def retry_all(self) -> int:
        """Queue every failed and dead task again."""
        return self.call("retry_all")

    def request_stop(self, worker_ids: Iterable[str]) -> int:
        """Ask workers (remote ones too) to finish their batch and leave."""
        return self.call("request_stop", list(worker_ids))

    def forget_offline(self) -> int:
        """Drop offline workers from the list."""
        return self.call("forget_offline")

    def classic_result(self, timeout: float | None = None) -> Any:
        """Read one string from the classic result queue (what a tutorial master would)."""
        conn = self.connection
        return conn.guard(conn.result_queue().get, True, timeout)


def open_client(target: str | tuple[str, int], authkey: str | bytes = b"") -> Client:
    """A Client for "host:port", a (host, port) pair, or a redis:// URL (not yet connected)."""
    if isinstance(target, str) and is_redis_url(target):
        return Client.redis(target)
    address = parse_address(target) if isinstance(target, str) else target
    return Client(address, authkey)


KEY_ENV = "GUIDIST_AUTHKEY"
CONNECT_ENV = "GUIDIST_CONNECT"


def connect(address: str | tuple[str, int] | None = None, authkey: str | bytes | None = None,
            *, job: str | None = None) -> Client:
    """A connected Client: ``guidist.connect("127.0.0.1:5000")`` or a ``redis://`` URL.

    address defaults to $GUIDIST_CONNECT (else $GUIDIST_REDIS_URL), the key to
    $GUIDIST_AUTHKEY; job names the job submit() puts tasks in. Raises a GuidistError that
    says what to do when the server cannot be reached.
    """
    target = address or os.environ.get(CONNECT_ENV) or os.environ.get("GUIDIST_REDIS_URL")
    if not target:
        raise GuidistError(f"no address: pass HOST:PORT (or a redis:// URL), or set "
                           f"{CONNECT_ENV}")
    if isinstance(target, str) and is_redis_url(target):
        client = Client.redis(target)
    else:
        key = authkey if authkey is not None else os.environ.get(KEY_ENV)
        if key is None:
            raise GuidistError(f"no key: pass authkey=... or set {KEY_ENV} (the server "
                               "printed it)")
        try:
            where = parse_address(target) if isinstance(target, str) else target
        except ValueError as exc:
            raise GuidistError(str(exc)) from None
        if not where[1]:
            raise GuidistError(f"{target!r} has no port: write HOST:PORT, e.g. 127.0.0.1:5000")
        client = Client(where, key)
    client.job_name = job
    return client.connect()
