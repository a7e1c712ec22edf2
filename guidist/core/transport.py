"""Socket details the stdlib leaves out: TCP_NODELAY, dead-peer detection, a handshake timeout.

multiprocessing never sets TCP_NODELAY, so Nagle's algorithm holds back the first request after
the authkey handshake and any reply that spans several segments by a delayed ACK (about 40 ms).
Registering a serializer name in ``multiprocessing.managers.listener_client`` is the hook the
stdlib itself uses to pick a Client function, so managers created with ``serializer=SERIALIZER``
and every proxy they make connect through ``nodelay_client``.

A peer behind a cut cable or a crashed host never closes its end: without help a blocked read
waits forever (keepalive is off by default) and unacknowledged data is retransmitted for about
15 minutes. Both ends therefore turn on TCP keepalive and, on Linux, TCP_USER_TIMEOUT, so a
connection whose peer stays silent for ``dead_peer_seconds()`` fails with an OSError. The
probes are answered by the peer's kernel, so a healthy connection that is merely idle (a
worker waiting for tasks, a blocked ``get``) is never cut.
"""

from __future__ import annotations

import os
import socket
import struct
import sys
from multiprocessing import connection, current_process, managers
from multiprocessing.reduction import ForkingPickler as _ForkingPickler
from typing import Any

SERIALIZER = "guidist"
#: Seconds to wait for a TCP connection to be accepted before calling the server unreachable.
CONNECT_TIMEOUT = 5.0
#: Seconds of silence from a peer (no data, no keepalive answer) before its connection is cut.
DEAD_PEER_SECONDS = 20.0
DEAD_PEER_ENV = "GUIDIST_DEAD_PEER_SECONDS"


def _socket_of(conn: Any) -> socket.socket | None:
    """A non-owning socket object for a Connection's descriptor (None for pipes)."""
    try:
        s = socket.socket(fileno=conn.fileno())
    except OSError:
        return None
    return s


def set_nodelay(conn: Any) -> None:
    """Disable Nagle's algorithm on a connection's socket."""
    s = _socket_of(conn)
    if s is None:
        return
    try:
        if s.family in (socket.AF_INET, socket.AF_INET6):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass
    finally:
        s.detach()


def dead_peer_seconds() -> float:
    """$GUIDIST_DEAD_PEER_SECONDS if it is a number (1 s at least), else DEAD_PEER_SECONDS."""
    try:
        return max(1.0, float(os.environ.get(DEAD_PEER_ENV, DEAD_PEER_SECONDS)))
    except ValueError:
        return DEAD_PEER_SECONDS


def enable_keepalive(s: socket.socket, seconds: float | None = None) -> None:
    """Make s fail once its peer has been silent for about seconds (keepalive probes included).

    Three probes a quarter of the time apart after a quarter of idleness; TCP_USER_TIMEOUT
    bounds the same time when data is waiting for an acknowledgement. Options a platform
    lacks are skipped: keepalive with the system's timings is still better than none.
    """
    if s.family not in (socket.AF_INET, socket.AF_INET6):
        return
    total = dead_peer_seconds() if seconds is None else seconds
    step = max(1, int(total / 4))
    options = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    for name, value in (("TCP_KEEPIDLE", step), ("TCP_KEEPALIVE", step),  # macOS spells it so
                        ("TCP_KEEPINTVL", step), ("TCP_KEEPCNT", 3),
                        ("TCP_USER_TIMEOUT", int(total * 1000))):
        if hasattr(socket, name):
            options.append((socket.IPPROTO_TCP, getattr(socket, name), value))
    for level, option, value in options:
        try:
            s.setsockopt(level, option, value)
        except OSError:
            pass


def set_keepalive(conn: Any, seconds: float | None = None) -> None:
    """enable_keepalive on a Connection's socket (pipes are left alone)."""
    s = _socket_of(conn)
    if s is None:
        return
    try:
        enable_keepalive(s, seconds)
    finally:
        s.detach()


def set_recv_timeout(conn: Any, seconds: float) -> None:
    """Make blocking reads on conn fail after seconds (0 restores blocking forever)."""
    s = _socket_of(conn)
    if s is None:
        return
    try:
        if sys.platform == "win32":
            value = struct.pack("I", int(seconds * 1000))
        else:
            whole = int(seconds)
            value = struct.pack("ll", whole, int((seconds - whole) * 1e6))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
    except OSError:
        pass
    finally:
        s.detach()


def shutdown_socket(conn: Any) -> None:
    """Shut a connection's socket down from another thread (a blocked read sees EOF)."""
    s = _socket_of(conn)
    if s is None:
        return
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        s.detach()


def limit_message_size(conn: connection.Connection, max_bytes: int) -> None:
    """Make conn.recv() refuse (and drop the connection on) messages over max_bytes.

    The stdlib reads whatever length a peer announces; Server.serve_client binds conn.recv
    when it starts, so replacing it on the instance before then caps every request.
    """
    def recv() -> Any:
        buf = conn.recv_bytes(max_bytes)
        return _ForkingPickler.loads(buf)

    conn.recv = recv  # type: ignore[method-assign]


def nodelay_client(address: Any, family: str | None = None,
                   authkey: bytes | None = None) -> connection.Connection:
    """Like multiprocessing.connection.Client for TCP addresses, with TCP_NODELAY set first."""
    if not isinstance(address, tuple):
        return connection.Client(address, family, authkey)
    if authkey is None:
        authkey = current_process().authkey
    s = socket.create_connection(address, timeout=CONNECT_TIMEOUT)
    try:
        s.settimeout(None)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        enable_keepalive(s)  # a reply lost with the link must not block this caller forever
        conn = connection.Connection(s.detach())
    finally:
        s.close()
    try:
        connection.answer_challenge(conn, authkey)
        connection.deliver_challenge(conn, authkey)
    except BaseException:
        conn.close()
        raise
    return conn


# listener_client is the stdlib's untyped registry of serializers.
managers.listener_client.setdefault(  # type: ignore[attr-defined]
    SERIALIZER, (connection.Listener, nodelay_client))
