"""How a Client reaches a broker: the Connection protocol and its manager-socket kind.

The Redis kind (``backends.redis.connection.RedisConnection``) talks to Redis directly; both
offer the same calls, so the Client, the worker and the window never ask which one they hold.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from multiprocessing import AuthenticationError, managers
from typing import Any, Protocol

from . import transport
from .errors import (
    AuthenticationFailed,
    JournalUnavailable,
    NotAGuidistServer,
    PayloadTooLarge,
    RemoteError,
    ServerUnavailable,
)
from .manager import QueueManager
from .payload import MAX_PAYLOAD
from .security import to_bytes

CONNECTION_ERRORS = (ConnectionError, EOFError, OSError)


class Connection(Protocol):
    """One way of reaching a broker; a lost connection is re-opened by the next call."""

    address: tuple[str, int]  # for messages and for the remote-worker instructions
    where: str  # the target as shown to people (never with a password)
    max_payload: int
    kind: str | None  # "guidist", or "classic" for an unmodified tutorial master
    #: True when calls run the broker in this process (no wire): arguments are not pickled
    #: on the way, so callers need not pre-pickle batches.
    in_process: bool

    def open(self) -> None:
        """Connect now; raises a GuidistError that says what to do."""
        ...

    def close(self) -> None:
        """Forget the connection; the next call opens it again."""
        ...

    def shutdown(self) -> None:
        """Release every resource for good."""
        ...

    def call(self, method: str, *args: Any) -> Any:
        """Call a broker method; failures become GuidistErrors."""
        ...

    def task_queue(self) -> Any:
        """The classic task queue (tutorial masters), or None where there is none."""
        ...

    def result_queue(self) -> Any:
        """The classic result queue."""
        ...

    def guard(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Call fn (a classic queue method); a broken connection raises ServerUnavailable."""
        ...


def describe_address(address: tuple[str, int]) -> str:
    """"host:port" for messages."""
    return f"{address[0]}:{address[1]}"


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


def _keep_shared_socket(proxy: Any) -> Any:
    """proxy, without the finalizer multiprocessing gives it: that finalizer connects to the
    server once more to drop its reference, and then closes this thread's socket to the
    server if no proxy id is left in the process's set for that address. Every broker proxy
    of one server has the same id, so one dropped client (freed by the cyclic collector,
    wherever that runs: inside another client's call on that very socket) closed the socket
    every other client in the thread was using. The objects it refers to are the server's
    singletons, so the server never needs the count to reach zero."""
    finalizer = getattr(proxy, "_close", None)
    if finalizer is not None:
        finalizer.cancel()
    return proxy


class ManagerConnection:
    """A manager socket to a guidist server, or to a classic tutorial master.

    Thread use: each thread gets its own socket (multiprocessing proxies are per thread), and
    a lost connection is re-opened on the next call, so a monitor survives a server restart.
    """

    in_process = False

    def __init__(self, address: tuple[str, int], authkey: str | bytes,
                 connect_timeout: float = transport.CONNECT_TIMEOUT,
                 max_payload: int = MAX_PAYLOAD) -> None:
        self.address = (address[0], int(address[1]))
        self.where = describe_address(self.address)
        self.max_payload = max_payload
        self.kind: str | None = None
        self._authkey = to_bytes(authkey)
        self._connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._manager: QueueManager | None = None
        self._broker: Any = None
        self._task_q: Any = None
        self._result_q: Any = None

    def open(self) -> None:
        """Connect (calls connect lazily anyway); raises a GuidistError that says what to do."""
        with self._lock:
            if self._manager is not None:
                return
            where = self.where
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
            except TimeoutError:
                raise ServerUnavailable(
                    f"No answer from {where} within {self._connect_timeout:.0f} s: check the "
                    "address and that a firewall lets the port through.") from None
            except CONNECTION_ERRORS as exc:
                raise ServerUnavailable(f"Cannot connect to {where}: {exc}.") from None
            try:
                self._broker = _keep_shared_socket(manager.get_broker())  # type: ignore[attr-defined]
                self.kind = "guidist"
            except managers.RemoteError:
                # An unmodified tutorial master: it only knows the two classic queues.
                self._task_q = _keep_shared_socket(
                    manager.get_task_queue())  # type: ignore[attr-defined]
                self._result_q = _keep_shared_socket(
                    manager.get_result_queue())  # type: ignore[attr-defined]
                self.kind = "classic"
            except CONNECTION_ERRORS as exc:
                raise ServerUnavailable(f"The connection to {where} broke: {exc}.") from None
            self._manager = manager
            # Another Client in this thread may have left a socket to a server that has since
            # restarted in the cache our new proxies share; never send on that one.
            _drop_stale_connection(self._broker or self._task_q, only_if_stale=True)

    def close(self) -> None:
        """Forget the connection; the next call connects again."""
        with self._lock:
            self._manager = self._broker = self._task_q = self._result_q = None

    shutdown = close

    def _reset(self) -> None:
        """After a connection error: drop this thread's cached socket too, then forget."""
        _drop_stale_connection(self._broker or self._task_q, only_if_stale=False)
        self.close()

    def _ready(self, method: str) -> None:
        """Connected to a guidist server on a socket that is not stale, before a call."""
        self.open()
        if self.kind != "guidist":
            raise NotAGuidistServer(
                f"{self.where} is a classic tutorial master: it has only a task queue and a "
                f"result queue, so '{method}' is not available there.")
        if _connection_is_stale(self._broker):
            # The server closed our socket (it restarted, or dropped us): proxies to the old
            # process are useless, so connect afresh before sending anything.
            self._reset()
            self.open()

    def call(self, method: str, *args: Any) -> Any:
        """Call a broker method on the server; translates transport failures."""
        self._ready(method)
        try:
            return getattr(self._broker, method)(*args)
        except Exception as exc:
            raise self._translated(method, exc) from None

    def send(self, method: str, *args: Any) -> Callable[[], Any]:
        """Send a broker call now and return the function that reads its reply (raising what
        call would). Until that function ran, this thread must make no other call on this
        connection: the reply waits in the socket. (A worker runs a batch meanwhile.)"""
        self._ready(method)
        proxy = self._broker
        try:
            conn = _cached_connection(proxy)
            if conn is None:
                proxy._connect()
                conn = _cached_connection(proxy)
            conn.send((proxy._id, method, args, {}))
        except Exception as exc:
            raise self._translated(method, exc) from None

        def reply() -> Any:
            try:
                kind, result = conn.recv()
                if kind == "#RETURN":
                    return result
                raise managers.convert_to_error(kind, result)  # type: ignore[attr-defined]
            except Exception as exc:
                raise self._translated(method, exc, conn) from None

        return reply

    def _translated(self, method: str, exc: Exception, conn: Any = None) -> Exception:
        """The GuidistError a failed call raises (a lost connection is forgotten first; conn:
        the socket a reply was read from, which may be another thread's)."""
        if isinstance(exc, managers.RemoteError):
            return RemoteError(f"The server failed on {method}: {exc}")
        if isinstance(exc, CONNECTION_ERRORS):
            if conn is not None:
                try:
                    conn.close()  # its thread sees it stale on its next call and reconnects
                except OSError:
                    pass
            self._reset()
            return ServerUnavailable(
                f"Lost the connection to {self.where} ({type(exc).__name__}); it will be "
                "retried on the next call.")
        if isinstance(exc, (JournalUnavailable, PayloadTooLarge)):
            return exc  # the server's own sentence for people: a full journal, a batch too large
        # The broker raised (bad arguments, unknown state...): the manager re-raises the
        # server's exception as is; give callers one type with the server's explanation.
        return RemoteError(f"The server refused {method}: {type(exc).__name__}: {exc}")

    def task_queue(self) -> Any:
        """The classic task queue proxy (tutorial masters only)."""
        self.open()
        if self._task_q is None and self._manager is not None:
            self._task_q = self._manager.get_task_queue()  # type: ignore[attr-defined]
        return self._task_q

    def result_queue(self) -> Any:
        """The classic result queue proxy (guidist servers have one too)."""
        self.open()
        if self._result_q is None and self._manager is not None:
            self._result_q = self._manager.get_result_queue()  # type: ignore[attr-defined]
        return self._result_q

    def guard(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Call a classic queue method; a broken connection raises ServerUnavailable."""
        try:
            return fn(*args)
        except CONNECTION_ERRORS as exc:
            self._reset()
            raise ServerUnavailable(f"Lost the connection to {self.where}: {exc}") from None
