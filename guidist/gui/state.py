"""The Qt-free data the window's panels and its controller exchange.

Everything here is a frozen dataclass or a ``str`` Enum: the controller's threads emit them, the
panels read them, and neither side needs the other's module to do so.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from enum import Enum

from ..core.backends.base import DEFAULTS
from ..core.protocol import TaskPage
from .submission import SubmitJob

#: The fastest the monitor polls (10 Hz is the ceiling; 5 Hz keeps plots and tables live).
POLL_INTERVAL_MS = 200
#: How often to retry while the server does not answer.
RETRY_INTERVAL_MS = 1000
#: Tasks per submit call from the window (smaller than the CLI's: see _Submitter).
GUI_SUBMIT_CHUNK = 5_000
#: Scheduling niceness of the workers the window launches (0: same priority as the window).
LOCAL_WORKER_NICE = 10
#: The demo alternates a CPU-bound and an I/O-bound phase of this many seconds.
DEMO_PHASE_S = 20.0


# ---------------------------------------------------------------------- plain data


def demo_phase(elapsed: float) -> str:
    """"cpu" or "io": which load the demo queues elapsed seconds after it started."""
    return "cpu" if int(elapsed // DEMO_PHASE_S) % 2 == 0 else "io"


def connect_host(host: str) -> str:
    """The address this machine uses to reach a server bound to host."""
    return "127.0.0.1" if host in ("", "0.0.0.0") else "::1" if host == "::" else host


@dataclass(frozen=True)
class ServerOptions:
    """How to start the embedded server."""

    host: str = "127.0.0.1"
    port: int = 0
    authkey: str = ""
    insist_weak_key: bool = False
    lease_timeout: float = DEFAULTS.lease_timeout
    max_attempts: int = DEFAULTS.max_attempts
    journal: str | None = None
    backend: str | None = None  # a Redis URL keeps the state in Redis (then no journal)
    metrics_port: int = 0  # serve Prometheus /metrics on this port of host (0: do not)


#: Where a client connects: (host, port) of a guidist server, or a Redis URL.
Target = tuple[str, int] | str


class Mode(str, Enum):
    """Whose server the window shows."""

    NONE = "none"  # no server
    EMBEDDED = "embedded"  # started by this window
    ATTACHED = "attached"  # someone else's guidist server or tutorial master


class Phase(str, Enum):
    """Where the connection is."""

    STOPPED = "stopped"
    STARTING = "starting"
    CONNECTING = "connecting"
    ONLINE = "online"
    LOST = "lost"
    STOPPING = "stopping"


@dataclass(frozen=True)
class Status:
    """What the server bar shows; emitted whenever it changes."""

    mode: Mode = Mode.NONE
    phase: Phase = Phase.STOPPED
    address: tuple[str, int] | None = None  # where clients connect
    bind_host: str | None = None  # what the embedded server listens on
    kind: str | None = None  # "guidist" or "classic" once known
    message: str = ""
    redis: str | None = None  # the Redis URL without credentials, on a Redis deployment

    @property
    def online(self) -> bool:
        """True while snapshots arrive."""
        return self.phase is Phase.ONLINE

    @property
    def active(self) -> bool:
        """True while there is a server to talk to (even if it stopped answering)."""
        return self.phase in (Phase.ONLINE, Phase.LOST, Phase.CONNECTING)


@dataclass(frozen=True)
class SubmitProgress:
    """Tasks sent so far; total is None while rows are being read."""

    sent: int
    total: int | None


@dataclass(frozen=True)
class SubmitOutcome:
    """How a submission ended; error and field are set when nothing (or not all) was queued."""

    job: SubmitJob
    sent: int
    cancelled: bool = False
    error: str | None = None
    field: str | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class Notice:
    """A sentence for the event log and the status bar; kind "error" goes to the banner too."""

    kind: str
    message: str
    time: float = dataclasses.field(default_factory=time.time)



@dataclass(frozen=True)
class PageRequest:
    """Which page of which listing the model wants; ``generation`` orders refreshes."""

    state: str | None
    search: str | None
    offset: int
    limit: int
    generation: int
    order: str | None = None  # a TASK_ORDERS key, "-" first for descending; None: newest
    job: int | None = None  # only this job's tasks (the jobs panel's selection)


@dataclass(frozen=True)
class PageReply:
    """What came back for a PageRequest: a page, or an error sentence."""

    request: PageRequest
    page: TaskPage | None = None
    error: str | None = None
