"""Open the backend a server's settings ask for: Redis, journaled memory, or plain memory."""

from __future__ import annotations

from .base import BrokerOptions, ServedBackend


def open_backend(options: BrokerOptions, *, journal: str | None = None,
                 url: str | None = None) -> ServedBackend:
    """A broker with these options: in Redis at url, else in memory (restored from journal)."""
    if url:
        from .redis.broker import RedisBroker  # needs the optional redis package

        return RedisBroker(url, **options.as_kwargs())
    if journal:
        from .memory.journal import open_journaled_broker

        return open_journaled_broker(journal, **options.as_kwargs())
    from .memory.broker import Broker

    return Broker(**options.as_kwargs())
