"""The queue server: the classic queue facade, serve(), and ServerProcess (spawn context).

The registered callables are module-level functions returning module-level singletons that
``serve`` sets up, so the server behaves the same under ``spawn`` on Linux, macOS and Windows
(the tutorial's lambdas do not pickle there). The names themselves live in ``manager``.
"""

from __future__ import annotations

import errno
import gc
import itertools
import logging
import multiprocessing
import signal
import socket
import threading
import time
from dataclasses import asdict, dataclass, field
from multiprocessing import connection, managers
from typing import Any

from . import payload, transport
from .backends.base import DEFAULTS, BrokerOptions, ServedBackend
from .backends.factory import open_backend
from .errors import (
    AddressUnavailable,
    GuidistError,
    JournalInUse,
    JournalUnreadable,
    PortInUse,
    ServerUnavailable,
)
from .manager import REGISTERED, QueueManager
from .metrics import serve_metrics
from .security import check_key, to_bytes
from .urls import redact_url

log = logging.getLogger(__name__)

class ClassicTaskQueue:
    """What ``get_task_queue()`` returns: the tutorial's task queue, backed by the broker."""

    def __init__(self, broker: ServedBackend) -> None:
        self._broker = broker

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Take one default-task payload (a lease for this connection) or raise queue.Empty."""
        return self._broker.classic_get(connection_key(), block, timeout)

    def get_nowait(self) -> Any:
        """Take a payload without waiting."""
        return self.get(False)

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """Queue a bare payload; it runs with the server's default task."""
        self._broker.submit(self._broker.default_task, [(item,)], classic=True)

    def put_nowait(self, item: Any) -> None:
        """Same as put: the queue is unbounded."""
        self.put(item)

    def qsize(self) -> int:
        """Tasks queued, of every kind."""
        return self._broker.queued_count()

    def empty(self) -> bool:
        """True when nothing is queued."""
        return self.qsize() == 0

    def full(self) -> bool:
        """Never full."""
        return False


class ClassicResultQueue:
    """What ``get_result_queue()`` returns: results of classic tasks, as strings."""

    def __init__(self, broker: ServedBackend) -> None:
        self._broker = broker

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Next result of a task that came in through the classic task queue."""
        return self._broker.classic_results.get(block, timeout)

    def get_nowait(self) -> Any:
        """Next result, without waiting."""
        return self.get(False)

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """A tutorial-style worker reports the result of the task it holds."""
        self._broker.classic_put_result(connection_key(), item)

    def put_nowait(self, item: Any) -> None:
        """Same as put."""
        self.put(item)

    def qsize(self) -> int:
        """Results waiting to be read."""
        return self._broker.classic_results.qsize()

    def empty(self) -> bool:
        """True when no result waits."""
        return self.qsize() == 0

    def full(self) -> bool:
        """Never full."""
        return False


_CONNECTION = threading.local()


def connection_key() -> str:
    """"<n>@<peer host>": identifies the manager connection the current call arrived on."""
    return getattr(_CONNECTION, "key", "local")


_BROKER: ServedBackend | None = None
_TASK_QUEUE: ClassicTaskQueue | None = None
_RESULT_QUEUE: ClassicResultQueue | None = None


def get_broker() -> ServedBackend | None:
    """Registered as ``get_broker``: guidist's own, batched API."""
    return _BROKER


def get_task_queue() -> ClassicTaskQueue | None:
    """Registered as ``get_task_queue``: the tutorial's task queue."""
    return _TASK_QUEUE


def get_result_queue() -> ClassicResultQueue | None:
    """Registered as ``get_result_queue``: the tutorial's result queue."""
    return _RESULT_QUEUE


class ServingManager(QueueManager):
    """QueueManager's names bound to the callables that serve them (server side only)."""


for _name, _callable in {"get_task_queue": get_task_queue, "get_result_queue": get_result_queue,
                         "get_broker": get_broker}.items():
    ServingManager.register(_name, callable=_callable, exposed=REGISTERED[_name])


class GuidistServer(managers.Server):
    """The stdlib manager server with TCP_NODELAY, a handshake timeout and no remote shutdown."""

    handshake_timeout = 10.0
    max_message = payload.backstop()
    # Set by managers.Server.__init__ and serve(); declared because the stdlib is untyped here.
    listener: Any
    authkey: bytes
    stop_event: threading.Event

    def __init__(self, *args: Any, on_disconnect: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The stdlib listens with a backlog of 16: a burst of clients overflows it and the
        # kernel drops connections their owners believe open. listen() again to widen it.
        try:
            self.listener._listener._socket.listen(transport.LISTEN_BACKLOG)
        except (AttributeError, OSError):
            pass
        self._on_disconnect = on_disconnect
        self._closing = threading.Event()
        self._conn_seq = itertools.count(1)
        self._handshakes: dict[Any, float] = {}  # connection -> deadline, while authenticating
        self._handshakes_lock = threading.Lock()

    def shutdown(self, c: Any) -> None:
        """Refuse: only the process that owns the server may stop it."""
        raise PermissionError("remote clients cannot shut this server down")

    def accepter(self) -> None:
        """Accept connections; each gets a thread named after its peer (the classic lease key)."""
        while not self._closing.is_set():
            try:
                c = self.listener.accept()
            except OSError:
                if self._closing.is_set():
                    return
                continue
            transport.set_nodelay(c)
            # A worker or client whose host vanished never sends FIN: keepalive ends its
            # connection (and so requeues a classic worker's task) instead of keeping it forever.
            transport.set_keepalive(c)
            key = f"{next(self._conn_seq)}@{_peer_host(c)}"
            threading.Thread(target=self.handle_request, args=(c, key), name=f"conn-{key}",
                             daemon=True).start()

    def _handle_request(self, c: Any) -> None:
        # The stdlib authenticates in this thread with no time limit, so a silent peer would
        # pin a thread forever; bound the handshake, then read without a limit again.
        # SO_RCVTIMEO bounds each read; expire_handshakes() bounds the whole handshake, so a
        # peer trickling one byte at a time cannot hold the thread either.
        with self._handshakes_lock:
            self._handshakes[c] = time.monotonic() + self.handshake_timeout
        try:
            transport.set_recv_timeout(c, self.handshake_timeout)
            connection.deliver_challenge(c, self.authkey)
            connection.answer_challenge(c, self.authkey)
            transport.set_recv_timeout(c, 0)
            transport.limit_message_size(c, self.max_message)
        except Exception as exc:
            log.info("dropped a connection that failed the handshake: %s", type(exc).__name__)
            return
        finally:
            with self._handshakes_lock:
                self._handshakes.pop(c, None)
        request = None
        try:
            request = c.recv()
            _ignore, funcname, args, kwds = request
            if funcname not in self.public:
                raise ValueError(f"{funcname!r} unrecognized")
            func = getattr(self, funcname)
        except Exception:
            msg = ("#TRACEBACK", managers.format_exc())  # type: ignore[attr-defined]
        else:
            try:
                msg = ("#RETURN", func(c, *args, **kwds))
            except Exception:
                msg = ("#TRACEBACK", managers.format_exc())  # type: ignore[attr-defined]
        try:
            c.send(msg)
        except Exception:
            log.debug("failed to reply to %r", request)

    def accept_connection(self, c: Any, name: str) -> None:
        """As the stdlib's, but keep our connection key in the thread name for debugging."""
        threading.current_thread().name = f"conn-{connection_key()}|{name}"
        c.send(("#RETURN", None))
        self.serve_client(c)

    def handle_request(self, conn: Any, key: str = "local") -> None:
        """Serve one connection until it closes, then tell the broker it is gone."""
        _CONNECTION.key = key
        try:
            self._handle_request(conn)
        except SystemExit:
            pass  # serve_client() exits on EOF
        except Exception:
            log.exception("connection handler failed")
        finally:
            conn.close()
            if self._on_disconnect is not None:
                self._on_disconnect(key)

    def expire_handshakes(self) -> int:
        """Cut connections whose handshake outlived its deadline; returns how many."""
        now = time.monotonic()
        # Under the lock: a connection still registered has not been closed, so its
        # descriptor cannot have been reused by a newer connection.
        with self._handshakes_lock:
            late = [c for c, deadline in self._handshakes.items() if deadline < now]
            for c in late:
                transport.shutdown_socket(c)  # the blocked read returns EOF; the thread ends
        return len(late)

    def close(self) -> None:
        """Stop accepting; connected clients see their connections drop when the process ends."""
        self._closing.set()
        try:
            self.listener.close()
        except OSError:
            pass


def _peer_host(c: Any) -> str:
    try:
        s = socket.socket(fileno=c.fileno())
    except OSError:
        return "local"
    try:
        return str(s.getpeername()[0])
    except OSError:
        return "unknown"
    finally:
        s.detach()


@dataclass
class ServerConfig:
    """Everything the server process needs; plain data so it pickles under spawn."""

    host: str = "127.0.0.1"
    port: int = 0
    authkey: bytes = b""
    lease_timeout: float = DEFAULTS.lease_timeout
    max_attempts: int = DEFAULTS.max_attempts
    default_task: str = DEFAULTS.default_task
    keep_done: int = DEFAULTS.keep_done
    keep_failed: int = DEFAULTS.keep_failed
    handshake_timeout: float = 10.0
    reap_interval: float = 0.5
    journal: str | None = None  # path of the SQLite journal; None keeps state in memory only
    max_payload: int = DEFAULTS.max_payload  # largest task argument or result, in bytes
    task_timeout: float | None = None  # seconds a task may run (None: no limit)
    backend: str | None = None  # redis://HOST:PORT/DB keeps the state in Redis (no journal)
    log_level: int = logging.WARNING
    extra: dict[str, Any] = field(default_factory=dict)
    metrics_port: int | None = None  # serve Prometheus /metrics on host:metrics_port (0: any)

    @property
    def options(self) -> BrokerOptions:
        """The broker settings in this config."""
        return BrokerOptions(lease_timeout=self.lease_timeout, max_attempts=self.max_attempts,
                             default_task=self.default_task, keep_done=self.keep_done,
                             keep_failed=self.keep_failed, max_payload=self.max_payload,
                             task_timeout=self.task_timeout)


def serve(config: ServerConfig, ready: Any = None, control: Any = None) -> None:
    """Run the server in this process until control says stop (or its other end closes)."""
    global _BROKER, _TASK_QUEUE, _RESULT_QUEUE
    logging.basicConfig(level=config.log_level,
                        format="%(asctime)s guidist-server %(levelname)s %(message)s")
    try:
        broker = open_backend(config.options, journal=config.journal, url=config.backend)
        # The broker asks which connection a worker's call came on, so that the last of a
        # worker's connections closing requeues its tasks at once (not after the lease).
        broker.connection_key = connection_key
        _BROKER = broker
        _TASK_QUEUE, _RESULT_QUEUE = ClassicTaskQueue(broker), ClassicResultQueue(broker)
        server = GuidistServer(ServingManager._registry,  # type: ignore[attr-defined]
                               (config.host, config.port),
                               config.authkey, "pickle", on_disconnect=broker.connection_closed)
        server.handshake_timeout = config.handshake_timeout
        server.max_message = payload.backstop(config.max_payload)
        metrics_port = None
        if config.metrics_port is not None:
            # In the server process, on its host: a scrape is one snapshot, like a monitor's.
            metrics_port = _start_metrics(config, broker)
    except Exception as exc:
        if ready is not None:
            ready.send(("error", _describe_bind_error(exc, config)))
            ready.close()
            return
        raise
    # Every task allocates a few tracked objects, so the default thresholds run a young
    # collection hundreds of times a second and full ones of tens of ms (measured: 28-31% of
    # the server's time). Freeze what startup made and collect far less often.
    gc.freeze()
    gc.set_threshold(100_000, 50, 1000)
    stop = threading.Event()
    server.stop_event = stop
    multiprocessing.current_process()._manager_server = server  # type: ignore[attr-defined]
    threading.Thread(target=server.accepter, name="accepter", daemon=True).start()
    threading.Thread(target=_reap_loop, args=(broker, server, stop, config.reap_interval),
                     name="reaper", daemon=True).start()
    if ready is not None:
        host, port = server.address  # type: ignore[misc,str-unpack]  # TCP: (host, port)
        ready.send(("ready", (host, port, metrics_port)))
        ready.close()
    try:
        if control is not None:
            _wait_for_stop(control, stop)
        else:
            stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.close()
        close = getattr(broker, "close", None)
        if close is not None:
            close()


def _wait_for_stop(control: Any, stop: threading.Event) -> None:
    # recv() returns "stop" from the owner, or raises EOFError when the owner died: either way
    # the server must go, so it never outlives the window or CLI that started it.
    while not stop.is_set():
        try:
            if control.poll(0.5) and control.recv() == "stop":
                return
        except (EOFError, OSError):
            return


def _reap_loop(broker: ServedBackend, server: GuidistServer, stop: threading.Event,
               interval: float) -> None:
    while not stop.wait(interval):
        for step in (broker.reap, server.expire_handshakes):
            try:
                step()
            except Exception:  # one failing (Redis away) must not stop the other
                log.exception("%s failed", getattr(step, "__name__", "reaper step"))


def _start_metrics(config: ServerConfig, broker: ServedBackend) -> int:
    """Serve /metrics on the server's host; returns the port (a clear error when taken)."""
    assert config.metrics_port is not None
    try:
        _server, port = serve_metrics(config.host, config.metrics_port, broker.snapshot)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(f"The metrics port {config.metrics_port} on {config.host} is "
                            "already in use; choose another --metrics-port (0 picks a free "
                            "one).") from None
        raise AddressUnavailable(f"Cannot serve metrics on {config.host}:"
                                 f"{config.metrics_port}: {exc.strerror or exc}.") from None
    return port


def _describe_bind_error(exc: BaseException, config: ServerConfig) -> tuple[str, str]:
    """Turn a bind failure into (error class name, one sentence saying what to do)."""
    where = f"{config.host}:{config.port}"
    if isinstance(exc, GuidistError):  # already a sentence for people (e.g. JournalInUse)
        return (type(exc).__name__, str(exc))
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        return ("PortInUse", f"Port {config.port} on {config.host} is already in use; stop the "
                "program using it or choose another port (0 picks a free one).")
    if isinstance(exc, (OSError, socket.gaierror)) and (
            isinstance(exc, socket.gaierror) or exc.errno in (errno.EADDRNOTAVAIL, errno.EACCES)):
        return ("AddressUnavailable", f"Cannot listen on {where}: {exc.strerror or exc}. Use "
                "127.0.0.1, 0.0.0.0 or an address of this machine, and a port above 1023.")
    return ("GuidistError", f"The server could not start on {where}: {exc}")


def _server_main(config: ServerConfig, ready: Any, control: Any) -> None:
    """Entry point of the spawned server process."""
    # The owner handles Ctrl-C and tells us to stop; a SIGINT sent to the whole process group
    # must not kill the server before it can close its listener.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    serve(config, ready, control)


_ERRORS = {"PortInUse": PortInUse, "AddressUnavailable": AddressUnavailable,
           "GuidistError": GuidistError, "JournalInUse": JournalInUse,
           "JournalUnreadable": JournalUnreadable}


class ServerProcess:
    """The queue server in a background process started with the spawn context."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, authkey: str | bytes = b"", *,
                 insist_weak_key: bool = False, **options: Any) -> None:
        key = to_bytes(authkey)
        check_key(host, key, insist_weak_key)
        self.config = ServerConfig(host=host, port=int(port), authkey=key, **options)
        self.address: tuple[str, int] | None = None
        self.metrics_port: int | None = None  # where /metrics is served, once started
        self._process: multiprocessing.process.BaseProcess | None = None
        self._control: Any = None

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self._process is not None and self._process.is_alive()

    @property
    def pid(self) -> int | None:
        """The server process id, once started."""
        return self._process.pid if self._process is not None else None

    def death(self) -> str | None:
        """If the started server process has died on its own, a sentence saying how; else None."""
        proc = self._process
        if proc is None or proc.is_alive():
            return None
        code = proc.exitcode
        if code is not None and code < 0:
            try:
                how = f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"was killed by signal {-code}"
            if -code == signal.SIGKILL:
                how += " (by someone, or by the out-of-memory killer)"
        else:
            how = f"exited with code {code}"
        return (f"the server process (pid {proc.pid}) {how}; its clients lost their "
                "connection. Restart it (with the same journal nothing acknowledged is lost).")

    def start(self, timeout: float = 30.0) -> tuple[str, int]:
        """Start the process and return (host, port) once it listens; raises a GuidistError."""
        if self.running:
            raise GuidistError("The server is already running; stop it first.")
        ctx = multiprocessing.get_context("spawn")
        ready_r, ready_w = ctx.Pipe(duplex=False)
        control_r, control_w = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_server_main, args=(self.config, ready_w, control_r),
                           name="guidist-server", daemon=True)
        proc.start()
        ready_w.close()
        control_r.close()
        self._process, self._control = proc, control_w
        try:
            if not ready_r.poll(timeout):
                raise ServerUnavailable(f"The server did not start within {timeout:.0f} s.")
            status, payload = ready_r.recv()
        except (EOFError, OSError):
            status, payload = "error", ("GuidistError", "The server process exited while "
                                        "starting; run 'guidist serve' to see its error.")
        except ServerUnavailable:
            self.stop()
            raise
        finally:
            ready_r.close()
        if status != "ready":
            self.stop()
            name, message = payload
            raise _ERRORS.get(name, GuidistError)(message)
        host, port, metrics_port = payload
        self.address = (self.config.host if host in ("0.0.0.0", "::") else host, int(port))
        self.config.port = int(port)  # a restart reuses the same port (workers reconnect)
        self.metrics_port = metrics_port  # None unless asked for
        if metrics_port is not None:
            self.config.metrics_port = int(metrics_port)
        return self.address

    def stop(self, timeout: float = 10.0) -> None:
        """Close the listener, let the process exit, and make sure it did."""
        proc, control = self._process, self._control
        self._process = self._control = None
        if control is not None:
            try:
                control.send("stop")
            except OSError:
                pass
        if proc is None:
            return
        proc.join(timeout)
        if proc.is_alive():
            log.warning("server did not stop in %.0f s; terminating it", timeout)
            proc.terminate()
            proc.join(3)
        if proc.is_alive():
            proc.kill()
            proc.join(3)
        if control is not None:
            control.close()
        proc.close()

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def describe(self) -> dict[str, Any]:
        """The config without the key, for logs and the window."""
        d = asdict(self.config)
        d.pop("authkey", None)
        if d.get("backend"):
            d["backend"] = redact_url(d["backend"])  # the URL may carry the Redis password
        return d
