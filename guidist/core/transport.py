"""Socket details the stdlib leaves out: TCP_NODELAY on both ends and a handshake timeout.

multiprocessing never sets TCP_NODELAY, so Nagle's algorithm holds back the first request after
the authkey handshake and any reply that spans several segments by a delayed ACK (about 40 ms).
Registering a serializer name in ``multiprocessing.managers.listener_client`` is the hook the
stdlib itself uses to pick a Client function, so managers created with ``serializer=SERIALIZER``
and every proxy they make connect through ``nodelay_client``.
"""

from __future__ import annotations

import socket
import struct
import sys
from multiprocessing import connection, current_process, managers
from multiprocessing.reduction import ForkingPickler as _ForkingPickler
from typing import Any

SERIALIZER = "guidist"
#: Seconds to wait for a TCP connection to be accepted before calling the server unreachable.
CONNECT_TIMEOUT = 5.0


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
