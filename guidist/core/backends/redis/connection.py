"""A Connection straight to Redis: the Client API with no manager server in the path.

A worker started with ``--redis`` uses it, and the window or a script uses it to attach to a
Redis deployment: submit_many, snapshot, list_tasks and the controls work as against a server.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from ...errors import ServerUnavailable
from ...urls import redact_url, resolve_url
from .broker import RedisBroker


class RedisConnection:
    """Calls a RedisBroker in this process; implements ``core.connection.Connection``."""

    in_process = True  # the broker pickles each result for Redis itself

    def __init__(self, url: str | None = None, **broker_options: Any) -> None:
        self._url = resolve_url(url)
        parts = urlsplit(self._url)
        # Only shown in messages and the remote-worker dialog: there is no manager address.
        self.address = (parts.hostname or parts.path or "localhost", parts.port or 6379)
        self.where = redact_url(self._url)
        self.url = self._url
        self.kind: str | None = None
        # A window or a worker surfaces a Redis outage after 5 s (the worker then reconnects
        # with back-off and replays its claim); the server's facade rides out 30 s instead.
        broker_options.setdefault("retry_for", 5.0)
        self._options = broker_options
        self._broker: RedisBroker | None = None
        self._connected = False
        self._lock = threading.Lock()
        self.max_payload = int(broker_options.get("max_payload") or 0)

    @property
    def broker(self) -> RedisBroker:
        """The RedisBroker behind this connection (connecting first)."""
        self.open()
        assert self._broker is not None
        return self._broker

    def open(self) -> None:
        """Reach Redis (the broker, and its retry tokens, survive reconnects)."""
        with self._lock:
            if self._connected:
                return
            if self._broker is None:
                self._broker = RedisBroker(self._url, **self._options)
            else:
                self._broker.ping()
            self.max_payload = self._broker.max_payload
            self._connected = True
            self.kind = "guidist"

    def close(self) -> None:
        """Mark the connection lost; the next call reaches Redis again."""
        with self._lock:
            self._connected = False

    def shutdown(self) -> None:
        """Close the broker's connections and its listener thread for good."""
        with self._lock:
            self._connected = False
            broker, self._broker = self._broker, None
        if broker is not None:
            broker.close()

    def call(self, method: str, *args: Any) -> Any:
        """Call a broker method directly; lost connections raise ServerUnavailable."""
        broker = self.broker
        try:
            return getattr(broker, method)(*args)
        except ServerUnavailable:
            self.close()
            raise

    def task_queue(self) -> Any:
        """Redis deployments have no classic task queue proxy: submit goes through call()."""
        return None

    def result_queue(self) -> Any:
        """The classic result queue kept in Redis."""
        return self.broker.classic_results

    def guard(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Call fn; Redis failures already arrive as ServerUnavailable."""
        try:
            return fn(*args)
        except ServerUnavailable:
            self.close()
            raise
