"""The one object the window, the CLI and the workers use to talk to a server."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from multiprocessing import AuthenticationError, managers
from typing import Any, overload

from . import transport
from .errors import AuthenticationFailed, NotAGuidistServer, RemoteError, ServerUnavailable
from .payload import MAX_PAYLOAD, mib, pack_batches
from .protocol import Job, Snapshot, Task, TaskPage, TaskState, WorkerInfo
from .security import to_bytes
from .server import QueueManager

log = logging.getLogger(__name__)

#: Tasks per submit round trip: big enough to amortise the call, small enough to show progress.
SUBMIT_CHUNK = 20_000
_CONNECTION_ERRORS = (ConnectionError, EOFError, OSError)


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


def _cached_connection(proxy: Any) -> Any:
    """The socket multiprocessing caches for proxy's server address in this thread, if any."""
    tls = getattr(proxy, "_tls", None)
    return getattr(tls, "connection", None) if tls is not None else None


def _connection_is_stale(proxy: Any) -> bool:
    """True when the cached socket was closed by the server (idle and readable means EOF)."""
    conn = _cached_connection(proxy)
    if conn is None:
        return False
    try:
        return bool(conn.poll(0))
    except (OSError, EOFError, ValueError):
        return True


def _drop_stale_connection(proxy: Any, only_if_stale: bool) -> None:
    """Close and forget this thread's cached socket so the next proxy call reconnects."""
    if proxy is None or (only_if_stale and not _connection_is_stale(proxy)):
        return
    conn = _cached_connection(proxy)
    if conn is None:
        return
    try:
        conn.close()
    except OSError:
        pass
    try:
        del proxy._tls.connection
    except AttributeError:
        pass


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


def describe_address(address: tuple[str, int]) -> str:
    """"host:port" for messages."""
    return f"{address[0]}:{address[1]}"


class Client:
    """A connection to a guidist server, or to a classic tutorial master (kind == "classic").

    Thread use: each thread gets its own socket (multiprocessing proxies are per thread), and
    a lost connection is re-opened on the next call, so a monitor survives a server restart.
    """

    def __init__(self, address: tuple[str, int], authkey: str | bytes,
                 connect_timeout: float = transport.CONNECT_TIMEOUT,
                 max_payload: int = MAX_PAYLOAD) -> None:
        self.address = (address[0], int(address[1]))
        self.max_payload = max_payload
        self._authkey = to_bytes(authkey)
        self._connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._manager: QueueManager | None = None
        self._broker: Any = None
        self._task_q: Any = None
        self._result_q: Any = None
        self.kind: str | None = None
        self._job_ids: dict[str, int] = {}  # job names this client opened -> their ids

    # ------------------------------------------------------------------ connection

    def connect(self) -> Client:
        """Connect now (calls connect lazily anyway); raises a GuidistError that says what to do."""
        with self._lock:
            if self._manager is not None:
                return self
            where = describe_address(self.address)
            manager = QueueManager(address=self.address, authkey=self._authkey,
                                   serializer=transport.SERIALIZER)
            try:
                manager.connect()
            except AuthenticationError:
                raise AuthenticationFailed(
                    f"The server at {where} rejected the key: use the key it was started with "
                    "(--authkey or the GUIDIST_AUTHKEY environment variable).") from None
            except ConnectionRefusedError:
                raise ServerUnavailable(
                    f"Nothing is listening at {where}: start it with 'guidist serve' (or the "
                    "window), or check the host and port.") from None
            except socket.gaierror as exc:
                raise ServerUnavailable(f"Cannot resolve {self.address[0]!r}: {exc.strerror}. "
                                        "Check the host name.") from None
            except (TimeoutError, socket.timeout):
                raise ServerUnavailable(
                    f"No answer from {where} within {self._connect_timeout:.0f} s: check the "
                    "address and that a firewall lets the port through.") from None
            except _CONNECTION_ERRORS as exc:
                raise ServerUnavailable(f"Cannot connect to {where}: {exc}.") from None
            try:
                self._broker = manager.get_broker()
                self.kind = "guidist"
            except managers.RemoteError:
                # An unmodified tutorial master: it only knows the two classic queues.
                self._task_q = manager.get_task_queue()
                self._result_q = manager.get_result_queue()
                self.kind = "classic"
            except _CONNECTION_ERRORS as exc:
                raise ServerUnavailable(f"The connection to {where} broke: {exc}.") from None
            self._manager = manager
            # Another Client in this thread may have left a socket to a server that has since
            # restarted in the cache our new proxies share; never send on that one.
            _drop_stale_connection(self._broker or self._task_q, only_if_stale=True)
            return self

    def close(self) -> None:
        """Forget the connection; the next call connects again."""
        with self._lock:
            self._manager = self._broker = self._task_q = self._result_q = None

    def _reset(self) -> None:
        """After a connection error: drop this thread's cached socket too, then forget."""
        _drop_stale_connection(self._broker or self._task_q, only_if_stale=False)
        self.close()

    def __enter__(self) -> Client:
        return self.connect()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def call(self, method: str, *args: Any) -> Any:
        """Call a broker method on the server; translates transport failures."""
        self.connect()
        if self.kind != "guidist":
            raise NotAGuidistServer(
                f"{describe_address(self.address)} is a classic tutorial master: it has only "
                f"a task queue and a result queue, so '{method}' is not available there.")
        if _connection_is_stale(self._broker):
            # The server closed our socket (it restarted, or dropped us): proxies to the old
            # process are useless, so connect afresh before sending anything.
            self._reset()
            self.connect()
        try:
            return getattr(self._broker, method)(*args)
        except managers.RemoteError as exc:
            raise RemoteError(f"The server failed on {method}: {exc}") from None
        except _CONNECTION_ERRORS as exc:
            self._reset()
            raise ServerUnavailable(
                f"Lost the connection to {describe_address(self.address)} ({type(exc).__name__}"
                "); it will be retried on the next call.") from None
        except Exception as exc:
            # The broker raised (bad arguments, unknown state...): the manager re-raises the
            # server's exception as is; give callers one type with the server's explanation.
            raise RemoteError(f"The server refused {method}: {type(exc).__name__}: {exc}") \
                from None

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
            for args in batch:
                self._classic(self._task_q.put, args[0] if len(args) == 1 else args)
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

    def _classic(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except _CONNECTION_ERRORS as exc:
            self._reset()
            raise ServerUnavailable(f"Lost the connection to {describe_address(self.address)}: "
                                    f"{exc}") from None

    # ------------------------------------------------------------------ monitoring

    def snapshot(self, series_since: int = 0, events_since: int = 0) -> Snapshot:
        """Counts, workers, series points and events after the given cursors, in one call."""
        self.connect()
        if self.kind == "classic":
            import time

            queued = self._classic(self._task_q.qsize)
            waiting = self._classic(self._result_q.qsize)
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
        import time

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
        self.connect()
        if self._result_q is None:
            assert self._manager is not None
            self._result_q = self._manager.get_result_queue()
        return self._classic(self._result_q.get, True, timeout)
