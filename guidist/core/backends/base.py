"""The seam every storage backend implements, and the one place for the broker's defaults."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

from ..payload import MAX_PAYLOAD
from ..protocol import (
    DEFAULT_TASK,
    ClaimGroup,
    Event,
    Job,
    Snapshot,
    Task,
    TaskPage,
    TaskState,
    WorkerInfo,
)


@dataclass(frozen=True)
class BrokerOptions:
    """Settings a broker is built with; every default the CLI, the window and servers use."""

    lease_timeout: float = 30.0  # seconds a worker may stay silent before its tasks requeue
    max_attempts: int = 3  # expired leases before a task is buried as dead
    default_task: str = DEFAULT_TASK  # what a bare classic payload runs with
    keep_done: int = 20_000  # finished successes kept in memory (the journal keeps all)
    keep_failed: int = 50_000  # failed and dead tasks kept in memory
    keep_cancelled: int = 10_000  # cancelled tasks kept in memory
    keep_jobs: int = 1000  # finished jobs kept (jobs with tasks left are always kept)
    max_payload: int = MAX_PAYLOAD  # largest task argument list or result, in bytes

    def as_kwargs(self) -> dict[str, Any]:
        """The options as keyword arguments for a broker constructor."""
        return asdict(self)


#: The defaults, for signatures that take the options one by one.
DEFAULTS = BrokerOptions()


@runtime_checkable
class BrokerBackend(Protocol):
    """Every call the server exposes to clients and workers, implemented by each backend.

    The manager registers exactly these methods (``manager.BROKER_EXPOSED``), so a method
    added here is reachable over the wire and must be implemented by every backend.
    """

    @property
    def max_payload(self) -> int:
        """Largest task argument list or result accepted, in bytes."""
        ...

    @property
    def default_task(self) -> str:
        """The task a bare classic payload runs with."""
        ...

    # submission
    def submit(self, function: str, args_list: Any, kwargs: dict | None = None,
               classic: bool = False, job: int | str | None = None) -> tuple[int, int]:
        """Queue one task per argument tuple in a job (by id or name); returns (first_id,
        count)."""
        ...

    # jobs
    def open_job(self, name: str | None = None, function: str = "") -> Job:
        """The job with this name, made when there is none (named for nobody: auto)."""
        ...

    def job(self, ref: int | str) -> Job | None:
        """One job by id or name."""
        ...

    def jobs(self) -> tuple[Job, ...]:
        """Every job kept, newest first."""
        ...

    def cancel_job(self, ref: int | str) -> int:
        """Cancel a job's queued tasks."""
        ...

    def retry_job(self, ref: int | str) -> int:
        """Queue a job's failed and dead tasks again."""
        ...

    # workers
    def register_worker(self, name: str, host: str, pid: int, mode: str = "inline",
                        concurrency: int = 1, kind: str = "guidist",
                        functions: list[str] | None = None,
                        address: str = "") -> dict[str, Any]:
        """Add a worker; returns its id and the settings it must follow (address: the IP it
        connects from, "" when it does not say)."""
        ...

    def heartbeat(self, worker_id: str, current_task: int | list[int] | None = None,
                  resources: tuple | None = None) -> str:
        """Renew the worker's leases and mark what it runs (an id or ids) as running, and
        keep its (cpu_percent, rss_bytes); returns a CMD_* command (CMD_GIVE_BACK: release
        what you have not started)."""
        ...

    def unregister_worker(self, worker_id: str) -> int:
        """A worker leaves; its unfinished tasks requeue. Returns how many."""
        ...

    def release(self, worker_id: str, ids: list[int] | None = None) -> int:
        """Hand leased tasks back unstarted; returns how many."""
        ...

    def request_stop(self, worker_ids: Iterable[str]) -> int:
        """Ask workers to finish their batch and leave."""
        ...

    def forget_offline(self) -> int:
        """Drop offline workers from the list."""
        ...

    def workers(self) -> tuple[WorkerInfo, ...]:
        """Every worker known."""
        ...

    def claim(self, worker_id: str, max_n: int, wait_s: float = 0.0) -> list[ClaimGroup]:
        """Lease up to max_n tasks, waiting up to wait_s for the first."""
        ...

    def complete(self, worker_id: str, results: Any, report: dict | None = None) -> int:
        """Store a batch of results (a list of ResultItem, or its packed bytes), and merge the
        worker's run statistics (``runstats.Report``) when given."""
        ...

    def exchange(self, worker_id: str, results: Any, max_n: int, wait_s: float = 0.0,
                 running: list[int] | None = None,
                 limits: dict[str, int] | None = None,
                 report: dict | None = None) -> tuple[str, list[ClaimGroup]]:
        """Report results and what runs now, and claim the next batch in one round trip;
        limits caps the tasks per function (1 for a function not in it), about one claim's
        worth of work in all; report as in complete()."""
        ...

    def reap(self) -> int:
        """Requeue or bury the tasks of workers whose lease expired."""
        ...

    # control
    def pause(self) -> None:
        """Stop dispatching."""
        ...

    def resume(self) -> None:
        """Dispatch again."""
        ...

    def cancel(self, ids: Iterable[int]) -> int:
        """Cancel queued tasks."""
        ...

    def purge(self) -> int:
        """Cancel every queued task."""
        ...

    def retry(self, ids: Iterable[int]) -> int:
        """Queue failed or dead tasks again."""
        ...

    def retry_all(self) -> int:
        """Queue every failed and dead task again."""
        ...

    # monitoring
    def snapshot(self, series_since: int = 0, events_since: int = 0,
                 spans_since: Any = None) -> Snapshot:
        """Counts, workers, series points and events after the cursors, in one call; with
        spans_since (0 at first, then the snapshot's spans_cursor), the task-stream spans."""
        ...

    def get_task(self, task_id: int) -> Task | None:
        """One task by id."""
        ...

    def list_tasks(self, state: TaskState | str | None = None, offset: int = 0,
                   limit: int = 100, search: str | None = None,
                   order: str | None = None, job: int | str | None = None) -> TaskPage:
        """A page of the ledger, newest activity first or sorted by order (task_orders());
        of one job's tasks, with job."""
        ...

    def task_orders(self) -> tuple[str, ...]:
        """The keys list_tasks can sort by (protocol.TASK_ORDERS, or some of them)."""
        ...

    def results_since(self, cursor: int, limit: int = 1000) -> tuple[int, list[Task]]:
        """Tasks finished after a cursor."""
        ...

    def get_tasks(self, ids: Iterable[int]) -> list[Task | None]:
        """Several tasks by id in one call (memory: from the journal when evicted)."""
        ...

    # results for callers (futures)
    def result_cursor(self) -> int:
        """The newest result's sequence number."""
        ...

    def wait_results(self, cursor: int, jobs: list[int], timeout: float = 30.0,
                     token: str = "", limit: int = 10_000) -> tuple[int, list[tuple], bool]:
        """Block until tasks of these jobs finish after cursor: (cursor, outcomes, gap)."""
        ...

    def poke(self, token: str) -> None:
        """Wake the wait_results call made with this token."""
        ...

    def define_function(self, name: str, blob: bytes) -> None:
        """Keep a task function sent by value."""
        ...

    def get_function(self, name: str) -> bytes | None:
        """The bytes of a task function sent by value."""
        ...

    def events(self, since: int = 0) -> list[Event]:
        """Events after a cursor."""
        ...


class ServedBackend(BrokerBackend, Protocol):
    """What the server process needs beyond the wire calls: the classic facade and shutdown."""

    classic_results: Any  # a queue-like object of classic result strings
    #: The key of the manager connection the current call came on (None outside a server);
    #: the server sets it, so a worker whose connections all closed is requeued at once.
    connection_key: Callable[[], str | None]

    def queued_count(self) -> int:
        """Tasks queued, of every kind."""
        ...

    def classic_get(self, conn_key: str, block: bool = True,
                    timeout: float | None = None) -> Any:
        """Lease one classic payload to a connection."""
        ...

    def classic_put_result(self, conn_key: str, value: Any) -> None:
        """A tutorial worker reports the result of the task its connection holds."""
        ...

    def connection_closed(self, conn_key: str) -> None:
        """A manager connection closed: requeue what its classic worker held, and what a
        guidist worker held if it was that worker's last connection."""
        ...

    def close(self) -> None:
        """Flush and release resources."""
        ...


def exposed_methods() -> tuple[str, ...]:
    """Names of BrokerBackend's wire calls, in declaration order (what the manager exposes)."""
    skip = set(dir(Protocol))
    return tuple(name for name, value in vars(BrokerBackend).items()
                 if callable(value) and not name.startswith("_") and name not in skip)
