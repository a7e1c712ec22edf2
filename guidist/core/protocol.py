"""Plain data shared by the server, the workers, the client and the window.

Everything here is a frozen dataclass or a ``str`` Enum, so it pickles across the manager
connection and can be handed from a worker thread to the GUI thread without copying.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, overload

#: Fields of one per-second point of the broker's time series, in tuple order.
SERIES_FIELDS: tuple[str, ...] = (
    "t",  # whole second (wall clock) the point covers
    "submitted",  # tasks submitted during that second
    "done",  # tasks finished successfully during that second
    "failed",  # tasks that raised (or went dead) during that second
    "requeued",  # leases that expired and went back to the queue
    # Gauges: the most seen during the second in memory (so bursts show), at its end in Redis.
    "queued",  # queue depth
    "running",  # tasks a worker has started
    "workers",  # connected workers at the end of the second
    "claimed",  # tasks claimed by a worker and not started yet
)

#: Name of the task a bare payload runs with (the tutorial's worker squares integers).
DEFAULT_TASK = "square"

# Commands a broker returns to workers from heartbeat() and exchange(). Workers treat a
# command they do not know as "ok", so an older worker simply never gives anything back.
CMD_OK, CMD_STOP, CMD_UNKNOWN = "ok", "stop", "unknown"
#: Another worker waits for work: hand back (release) the tasks you have not started.
CMD_GIVE_BACK = "give-back"

#: A claimed group: (function, kwargs, ids, args_list) — one per run of same-function tasks,
#: with a 5th element, the tasks' time limit in seconds, when they have one (claim_group).
ClaimGroup = tuple[str, "dict | None", Sequence[int], list[tuple]]
#: A reported result: (task_id, ok, value, started, runtime) where value is the result or the
#: error text, started the wall-clock time the worker began executing the task and runtime the
#: seconds it ran on the worker's monotonic clock. Tutorial workers cannot measure, so
#: (task_id, ok, value) is accepted too, and None for either time means "not measured".
ResultItem = tuple

#: Seconds of the per-second series that the snapshot's throughput averages over.
THROUGHPUT_WINDOW = 10


def check_timeout(timeout: Any) -> float | None:
    """A task time limit as given by a caller: None, or a positive number of seconds."""
    if timeout is None:
        return None
    try:
        value = float(timeout)
    except (TypeError, ValueError):
        raise ValueError(f"timeout must be a number of seconds, not {timeout!r}") from None
    if not value > 0:
        raise ValueError(f"timeout must be more than 0 seconds, not {timeout!r}")
    return value


#: Below this many tasks a submit's or a claim's arguments and ids travel as plain lists: the
#: bare and range forms (BareArgs, ClaimIds) pickle a class reference, ~2 µs a message, which
#: a batch of one pays in full (an idle submit().result() pays it four times) and a batch of
#: about 32 earns back.
PLAIN_BELOW = 32


class BareArgs(list):
    """A claimed group's argument list when every task has one argument: it holds the values
    themselves, so the claim's reply pickles bare values instead of a 1-tuple each (the
    broker's queued batches keep them bare already), and it reads as the list of 1-tuples a
    ClaimGroup has: iterating, indexing, slicing, comparing and repr all see tuples."""

    __slots__ = ()

    def __iter__(self) -> Any:
        return zip(list.__iter__(self))  # 1-tuples made at C speed as they are read

    def __reversed__(self) -> Any:
        return zip(list.__reversed__(self))

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return BareArgs(list.__getitem__(self, i))
        return (list.__getitem__(self, i),)

    def __contains__(self, item: object) -> bool:
        return isinstance(item, tuple) and len(item) == 1 and list.__contains__(self, item[0])

    def __eq__(self, other: object) -> bool:
        return list(self) == other if isinstance(other, list) else NotImplemented

    def __ne__(self, other: object) -> bool:
        return list(self) != other if isinstance(other, list) else NotImplemented

    __hash__ = None

    def __repr__(self) -> str:
        return repr(list(self))

    def __reduce__(self) -> tuple:
        return BareArgs, (list.copy(self),)  # the values go as a plain list

    def copy(self) -> list:
        """A plain list of the argument tuples."""
        return list(self)

    def values(self) -> list:
        """The bare values, one per task."""
        return list.copy(self)


class ClaimIds(Sequence):
    """A claimed group's ids when they follow each other without a hole: read like the list
    of them (iterating, indexing, slicing, len, comparing), held and sent as a ``range`` (a
    few bytes on the wire, and no int a task in the server). Workers read a group's ids by
    iterating, indexing, slicing and len, which the range they unpickle does too."""

    __slots__ = ("span",)

    def __init__(self, span: range) -> None:
        self.span = span

    def __len__(self) -> int:
        return len(self.span)

    @overload
    def __getitem__(self, i: int) -> int: ...
    @overload
    def __getitem__(self, i: slice) -> ClaimIds: ...

    def __getitem__(self, i: int | slice) -> int | ClaimIds:
        if isinstance(i, slice):
            return ClaimIds(self.span[i])
        return self.span[i]

    def __iter__(self) -> Iterator[int]:
        return iter(self.span)

    def __reversed__(self) -> Iterator[int]:
        return reversed(self.span)

    def __contains__(self, tid: object) -> bool:
        return tid in self.span

    def index(self, tid: Any, start: int = 0, stop: int | None = None) -> int:
        """Position of tid (ValueError when absent), as list.index."""
        i = self.span.index(tid)
        if i < start or (stop is not None and i >= stop):
            raise ValueError(f"{tid!r} is not in the ids")
        return i

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ClaimIds):
            return self.span == other.span
        if isinstance(other, (list, tuple)):
            return list(self.span) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(list(self.span))

    def __reduce__(self) -> tuple:
        return range, (self.span.start, self.span.stop)


def claim_group(function: str, kwargs: dict | None, ids: Sequence[int], args_list: list,
                timeout: float | None) -> ClaimGroup:
    """A claimed group; a 5th element carries the tasks' time limit when they have one, so a
    group without one is the 4-tuple every worker understands."""
    if timeout is None:
        return (function, kwargs, ids, args_list)
    return (function, kwargs, ids, args_list, timeout)  # type: ignore[return-value]


def classic_prefix(function: str, args: tuple) -> str | None:
    """The tutorial's ``'n * n = '`` prefix for a square task on an int; None for other tasks."""
    if function == DEFAULT_TASK and len(args) == 1 and type(args[0]) is int:
        n = args[0]
        return "%d * %d = " % (n, n)
    return None


def classic_result_text(function: str, args: tuple, value: Any) -> Any:
    """Format a result the way the tutorial's worker does (``'%d * %d = %d'``) for square."""
    prefix = classic_prefix(function, args)
    if prefix is not None and isinstance(value, int):
        return f"{prefix}{value}"
    return value


def throughput(points: list[tuple] | tuple[tuple, ...]) -> float:
    """Finished tasks per second over the newest THROUGHPUT_WINDOW series points (any order)."""
    recent = points[:THROUGHPUT_WINDOW]
    return sum(p[2] + p[3] for p in recent) / THROUGHPUT_WINDOW if recent else 0.0

#: Keys a task listing can be sorted by (``list_tasks(order=...)``; a leading "-" sorts
#: descending). A backend says which of them it supports with ``task_orders()``.
TASK_ORDERS: tuple[str, ...] = ("id", "state", "function", "runtime", "attempts", "submitted")


def parse_order(order: str | None) -> tuple[str | None, bool]:
    """(key, descending) of a listing order such as "-runtime"; (None, False) for none."""
    if not order:
        return None, False
    key = order.lstrip("-")
    if key not in TASK_ORDERS:
        raise ValueError(f"cannot sort tasks by {key!r}: use one of {', '.join(TASK_ORDERS)}")
    return key, order.startswith("-")


class TaskState(str, Enum):
    """Where a task is in its life: queued → claimed → running → done | failed; dead, cancelled.

    Claimed means a worker holds the task (its lease) but has not started it: it waits in
    that worker's batch. Claimed and running tasks both go back to the queue when their
    worker is lost.
    """

    QUEUED = "queued"
    CLAIMED = "claimed"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    DEAD = "dead"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        """True for states a task only leaves by an explicit retry."""
        return self in _FINISHED


_FINISHED = frozenset({TaskState.DONE, TaskState.FAILED, TaskState.DEAD, TaskState.CANCELLED})


class WorkerState(str, Enum):
    """What a worker is doing, as far as the server can tell."""

    IDLE = "idle"
    BUSY = "busy"
    STOPPING = "stopping"
    OFFLINE = "offline"


@dataclass(frozen=True)
class Task:
    """One task as the ledger knows it.

    ``started`` is when the worker began executing it (wall clock, as the worker measured it,
    once its result arrived; before, when the worker said it started) and ``runtime`` the
    seconds it ran, timed by the worker on a monotonic clock: neither includes time spent in
    a worker's buffer or on the wire.
    """

    id: int
    function: str
    args: tuple = ()
    kwargs: dict | None = None
    state: TaskState = TaskState.QUEUED
    attempts: int = 0
    submitted: float = 0.0
    started: float | None = None
    finished: float | None = None
    worker: str | None = None
    result: Any = None
    error: str | None = None
    runtime: float | None = None
    job: int | None = None  # the id of the job it was submitted in
    exception: bytes | None = None  # what it raised, pickled by the worker (see remote)

    @property
    def waited(self) -> float | None:
        """Seconds between submission and the start of execution (None before it started)."""
        if self.started is None or not self.submitted:
            return None
        return max(0.0, self.started - self.submitted)


def check_job_name(name: str) -> str:
    """A job name as given, stripped; raises ValueError for one no lookup could tell apart."""
    name = str(name).strip()
    if not name or len(name) > 200 or name.startswith("#"):
        raise ValueError("a job name is 1 to 200 characters and does not start with '#'")
    return name


def auto_job_name(function: str, when: float) -> str:
    """The name of a job nobody named: its function and when it was made (local time)."""
    short = function.rsplit(":", 1)[-1].split("#", 1)[0].rsplit(".", 1)[-1]
    short = short.replace("<", "").replace(">", "") or "job"  # <lambda> reads as lambda
    return f"{short}-{time.strftime('%Y%m%d-%H%M%S', time.localtime(when))}"



#: A finished task as a result waiter gets it: (id, state value, result, error, exception).
Outcome = tuple[int, str, Any, "str | None", "bytes | None"]


def outcome_of(task: Task) -> tuple:
    """The Outcome of a task (its state may be unfinished: the waiter keeps waiting)."""
    return (task.id, task.state.value, task.result, task.error, task.exception)


#: Jobs a snapshot carries: the window's jobs panel polls nothing else.
SNAPSHOT_JOBS = 50

#: The per-state counts a job keeps, in the order they are shown.
JOB_STATES: tuple[str, ...] = ("queued", "claimed", "running", "done", "failed", "dead",
                                "cancelled")


@dataclass(frozen=True)
class Job:
    """A batch of tasks followed as one unit: one or more submissions under one name.

    The counts are kept incrementally by the broker, so reading a job costs the same whatever
    its size. ``time`` is the server's clock when it was read; the rate and the ETA are
    computed from it.
    """

    id: int
    name: str
    functions: tuple[str, ...] = ()
    queued: int = 0
    claimed: int = 0  # leased by a worker, not started yet
    running: int = 0
    done: int = 0
    failed: int = 0
    dead: int = 0
    cancelled: int = 0
    submitted: float = 0.0  # its first submission
    started: float | None = None  # when a worker first took one of its tasks
    last_finished: float | None = None  # when one of its tasks last finished
    time: float = 0.0
    ranges: tuple[tuple[int, int], ...] = ()  # (first id, count) per run of its task ids

    @property
    def total(self) -> int:
        """Every task submitted in the job."""
        return (self.queued + self.claimed + self.running + self.done + self.failed + self.dead
                + self.cancelled)

    @property
    def remaining(self) -> int:
        """Tasks still to run (queued, claimed or running)."""
        return self.queued + self.claimed + self.running

    @property
    def finished(self) -> float | None:
        """When its last task finished, once none is left to run; else None."""
        return self.last_finished if self.remaining == 0 else None

    @property
    def rate(self) -> float:
        """Tasks finished per second since it started (0 before the first one finished)."""
        ran = self.done + self.failed + self.dead
        if not ran or self.started is None:
            return 0.0
        end = self.finished if self.finished is not None else self.time
        return ran / max(end - self.started, 1e-3)

    @property
    def eta_s(self) -> float | None:
        """Seconds until the remaining tasks are done at the current rate (0 when finished;
        None while there is no rate to go by)."""
        if self.remaining == 0:
            return 0.0
        rate = self.rate
        return self.remaining / rate if rate > 0 else None

    @property
    def state(self) -> str:
        """queued (nothing started), running, or once finished: done, failed or cancelled."""
        if self.remaining:
            started = self.running or self.claimed or self.done or self.failed or self.dead
            return "running" if started else "queued"
        if self.failed or self.dead:
            return "failed"
        if self.cancelled:
            return "cancelled"
        return "done"

    @property
    def ok(self) -> bool:
        """True when every task is done (none failed, died or was cancelled)."""
        return self.remaining == 0 and self.done == self.total

    @property
    def function(self) -> str:
        """Its function, or the functions joined with commas."""
        return ",".join(self.functions)

    def count(self, state: TaskState | str) -> int:
        """Tasks of the job in one state."""
        return int(getattr(self, TaskState(state).value))

    def to_dict(self) -> dict[str, Any]:
        """The flat dict ``guidist jobs --json`` prints."""
        return {"id": self.id, "name": self.name, "function": self.function,
                "functions": list(self.functions), "state": self.state, "total": self.total,
                **{s: getattr(self, s) for s in JOB_STATES},
                "submitted": self.submitted, "started": self.started,
                "finished": self.finished, "rate": round(self.rate, 3),
                "eta_s": None if self.eta_s is None else round(self.eta_s, 1)}


@dataclass(frozen=True)
class TaskPage:
    """One page of a task listing, with the total the listing would have unpaged."""

    total: int
    offset: int
    tasks: tuple[Task, ...]
    #: Finished tasks of the listed states that the server counts but no longer holds (it
    #: keeps the newest N per state; the rest are in its journal, if it keeps one).
    not_held: int = 0


@dataclass(frozen=True)
class WorkerInfo:
    """A worker as the broker sees it; ``kind`` is "guidist" or "classic"."""

    id: str
    name: str
    host: str
    pid: int
    kind: str = "guidist"
    mode: str = "inline"
    concurrency: int = 1
    state: WorkerState = WorkerState.IDLE
    joined: float = 0.0
    last_seen: float = 0.0
    current_task: int | None = None
    running: int = 0  # tasks it has started and not finished
    done: int = 0
    failed: int = 0
    functions: tuple[str, ...] = ()  # the only task functions it claims; () means all
    address: str = ""  # the IP address it connects from ("" if it did not say)
    claimed: int = 0  # tasks it holds and has not started yet
    cpu_percent: float | None = None  # of its process and children, 100 = one core (None: not
    rss_bytes: int | None = None  # reported yet, or a tutorial worker); resident memory likewise

    @property
    def held(self) -> int:
        """Every task it holds a lease on: claimed or running."""
        return self.running + self.claimed

    @property
    def host_label(self) -> str:
        """"host (address)" for people; just the host when the address adds nothing."""
        return host_label(self.host, self.address)


def host_label(host: str, address: str) -> str:
    """"host (address)", or host alone when address is empty or the same."""
    return host if not address or address == host else f"{host} ({address})"


@dataclass(frozen=True)
class FunctionStats:
    """What the broker counts per task function: outcomes and a run-time histogram.

    ``counts`` are the fixed log-spaced buckets of ``core.histogram`` (constant size), so the
    quantiles are estimates within about 12 %; ``runtime_max`` is exact.
    """

    function: str
    done: int = 0
    failed: int = 0
    counts: tuple[int, ...] = ()
    runtime_sum: float = 0.0
    runtime_max: float = 0.0

    def quantile(self, q: float) -> float | None:
        """The q-quantile (0..1) of its run times; None before any was measured."""
        from .histogram import quantile

        return quantile(self.counts, q, self.runtime_max) if self.counts else None

    @property
    def runtime_p50(self) -> float | None:
        """The median run time (seconds)."""
        return self.quantile(0.5)

    @property
    def runtime_p95(self) -> float | None:
        """The 95th percentile of the run times (seconds)."""
        return self.quantile(0.95)

    @property
    def measured(self) -> int:
        """Runs whose time was measured (every run of a guidist worker)."""
        return sum(self.counts)

    def to_dict(self) -> dict[str, Any]:
        """The object ``guidist status --json`` lists under ``functions``."""
        def r(x: float | None) -> float | None:
            return None if x is None else round(x, 6)

        return {"function": self.function, "done": self.done, "failed": self.failed,
                "runtime_p50": r(self.runtime_p50), "runtime_p95": r(self.runtime_p95),
                "runtime_max": r(self.runtime_max) if self.counts else None}


@dataclass(frozen=True)
class Event:
    """Something a person watching would want in the event log."""

    seq: int
    time: float
    kind: str  # worker-joined, worker-left, worker-offline, requeued, dead, failed, control
    message: str


@dataclass(frozen=True)
class Snapshot:
    """Everything a monitor shows, answered by one cheap call whatever the number of tasks."""

    time: float
    counts: dict[str, int]  # current count per TaskState value (done/failed/... are totals)
    submitted: int
    requeued: int
    paused: bool
    throughput: float  # tasks finished per second over the last 10 whole seconds
    workers: tuple[WorkerInfo, ...] = ()
    series: tuple[tuple, ...] = ()  # SERIES_FIELDS tuples after the caller's cursor
    events: tuple[Event, ...] = ()  # events after the caller's cursor
    kind: str = "guidist"  # "classic" when attached to an unmodified tutorial master
    default_task: str = DEFAULT_TASK
    started: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    jobs: tuple[Job, ...] = ()  # the newest SNAPSHOT_JOBS jobs, newest first (no id ranges)
    functions: tuple[FunctionStats, ...] = ()  # per task function, by name
    #: Task-stream spans after the caller's span cursor, as (seq, worker id, slot, function,
    #: start, end, count, failed) tuples, oldest first; only when the caller asked for them.
    spans: tuple[tuple, ...] = ()
    spans_cursor: Any = 0  # pass it back as spans_since to get only newer spans

    def count(self, state: TaskState | str) -> int:
        """Current count for one state (0 when unknown, e.g. on a classic master)."""
        return self.counts.get(TaskState(state).value, 0)

    @property
    def leased(self) -> int:
        """Tasks that workers hold: claimed (not started yet) plus running."""
        return self.count(TaskState.CLAIMED) + self.count(TaskState.RUNNING)

    @property
    def connected_workers(self) -> int:
        """Workers that are not offline."""
        return sum(1 for w in self.workers if w.state is not WorkerState.OFFLINE)

    def journal_problem(self) -> str | None:
        """Why the server's journal cannot be written, and where; None while it can be."""
        info = self.extra.get("journal") if self.extra else None
        if not info or not info.get("error"):
            return None
        return (f"cannot write the journal {info['path']} ({info['error']}): submits are "
                f"refused; {info.get('unwritten', 0)} change(s) wait in memory and are retried "
                "every second")

    def to_status(self) -> dict[str, Any]:
        """The flat dict ``guidist status --json`` prints."""
        status: dict[str, Any] = {s.value: self.counts.get(s.value, 0) for s in TaskState}
        status.update(
            kind=self.kind,
            submitted=self.submitted,
            requeued=self.requeued,
            paused=self.paused,
            workers=self.connected_workers,
            throughput=round(self.throughput, 1),
        )
        status.update(self.extra)
        status["functions"] = [f.to_dict() for f in self.functions]
        return status


def running_ids(current: int | Iterable[int] | None) -> list[int]:
    """The tasks a worker says it runs: one id (what older workers send), a list, or none."""
    if current is None:
        return []
    if isinstance(current, int):
        return [current]
    return [int(i) for i in current]
