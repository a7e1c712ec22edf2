"""The one object the window, the CLI and the workers use to talk to a server."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, overload

from . import transport
from .connection import Connection, ManagerConnection
from .errors import RemoteError
from .payload import MAX_PAYLOAD, mib, pack_batches
from .protocol import Job, Snapshot, Task, TaskPage, TaskState, WorkerInfo
from .security import parse_address
from .urls import is_redis_url

log = logging.getLogger(__name__)

#: Tasks per submit round trip: big enough to amortise the call, small enough to show progress.
SUBMIT_CHUNK = 20_000


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


class Client:
    """The one object the window, the CLI, workers and scripts use to talk to a broker.

    It speaks through a Connection: a manager socket to a guidist server or a tutorial master
    (``Client((host, port), key)``), or Redis directly (``Client.redis(url)``). Either way the
    calls are the same, so callers never ask which backend they hold.
    """

    def __init__(self, target: tuple[str, int] | Connection, authkey: str | bytes = b"",
                 connect_timeout: float = transport.CONNECT_TIMEOUT,
                 max_payload: int = MAX_PAYLOAD) -> None:
        if isinstance(target, (tuple, list)):
            self.connection: Connection = ManagerConnection(
                (target[0], int(target[1])), authkey, connect_timeout, max_payload)
        else:
            self.connection = target
        self._job_ids: dict[str, int] = {}  # job names this client opened -> their ids

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
        """Forget the connection; the next call connects again."""
        self.connection.close()

    def shutdown(self) -> None:
        """Release the connection for good (a Redis connection also ends its listener)."""
        self.connection.shutdown()

    def __enter__(self) -> Client:
        return self.connect()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def call(self, method: str, *args: Any) -> Any:
        """Call a broker method; transport failures become GuidistErrors."""
        return self.connection.call(method, *args)

    # ------------------------------------------------------------------ submitting

    def submit(self, function: str, *args: Any, **kwargs: Any) -> int:
        """Queue one task; returns its id (classic masters: returns 0, ids are unknown there)."""
        ids = self.submit_many(function, [args], kwargs or None)
        return ids[0] if len(ids) else 0

    def submit_many(self, function: str, args_list: Iterable[Any], kwargs: dict | None = None,
                    chunk: int = SUBMIT_CHUNK,
                    progress: Callable[[int], bool | None] | None = None,
                    job: str | int | None = None) -> TaskIds:
        """Queue one task per argument tuple (a bare value is one argument), chunk by chunk.

        ``job`` names the job they join (made when new; an id joins an existing one); without
        it they make a job named after the function and the time. ``progress(n_so_far)`` is
        called after each chunk; returning False stops early (what was already sent stays
        queued).
        """
        self.connect()
        opened = self.open_job(job, function) if self.kind == "guidist" else None
        jid = opened.id if opened is not None else None
        ranges: list[range] = []
        sent = 0
        batch: list[tuple] = []
        for a in args_list:
            batch.append(a if type(a) is tuple else (a,))
            if len(batch) >= chunk:
                ranges.extend(self._send_batch(function, batch, kwargs, sent, jid))
                sent += len(batch)
                batch = []
                if progress is not None and progress(sent) is False:
                    return TaskIds(ranges, opened)
        if batch:
            ranges.extend(self._send_batch(function, batch, kwargs, sent, jid))
            sent += len(batch)
            if progress is not None:
                progress(sent)
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

    def _send_batch(self, function: str, batch: list[tuple], kwargs: dict | None,
                    offset: int, job: int | None = None) -> list[range]:
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
        for blob in pack_batches(batch, self.max_payload, too_big):
            first, n = self.call("submit", function, blob, kwargs, False, job)
            out.append(range(first, first + n))
        return out

    # ------------------------------------------------------------------ monitoring

    def snapshot(self, series_since: int = 0, events_since: int = 0) -> Snapshot:
        """Counts, workers, series points and events after the given cursors, in one call."""
        self.connect()
        if self.kind == "classic":
            conn = self.connection
            queued = conn.guard(conn.task_queue().qsize)
            waiting = conn.guard(conn.result_queue().qsize)
            return Snapshot(time=time.time(), counts={"queued": queued}, submitted=0,
                            requeued=0, paused=False, throughput=0.0, kind="classic",
                            extra={"results_waiting": waiting})
        return self.call("snapshot", series_since, events_since)

    def list_tasks(self, state: TaskState | str | None = None, offset: int = 0,
                   limit: int = 100, search: str | None = None,
                   job: int | str | None = None) -> TaskPage:
        """A page of the task ledger (of one job's tasks, with job)."""
        args: tuple = (TaskState(state).value if state else None, offset, limit, search)
        return self.call("list_tasks", *args, *(() if job is None else (job,)))

    def get_task(self, task_id: int) -> Task | None:
        """One task by id."""
        return self.call("get_task", int(task_id))

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
        """Block until nothing is queued or running (for scripts and tests)."""
        deadline = time.monotonic() + timeout
        while True:
            snap = self.snapshot()
            if snap.count("queued") == 0 and snap.count("running") == 0:
                return snap
            if time.monotonic() > deadline:
                raise TimeoutError(f"still {snap.count('queued')} queued and "
                                   f"{snap.count('running')} running after {timeout:.0f} s")
            time.sleep(poll)

    # ------------------------------------------------------------------ control

    def cancel(self, ids: Iterable[int]) -> int:
        """Cancel queued tasks; returns how many were."""
        return self.call("cancel", list(ids))

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
        """Queue failed or dead tasks again."""
        return self.call("retry", list(ids))

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
