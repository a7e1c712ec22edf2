"""The dramatiq app of the peers benchmark: RedisBroker (db 0), Results middleware (db 1).

The Results middleware is the one addition to dramatiq's defaults: without it dramatiq keeps
no results. Prefetch stays at its default (2 × threads) unless the ``dramatiq_queue_prefetch``
environment variable of the worker processes says otherwise.
"""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend

from guidist.core.tasks import square as _square

from ._peer_env import BROKER_DB, RESULTS_DB, worker_base

QUEUE = "bench"


def make(base: str) -> tuple[RedisBroker, Any]:
    """A broker and its square actor, on the redis-server at base (redis://HOST:PORT)."""
    broker = RedisBroker(url=f"{base}/{BROKER_DB}")
    broker.add_middleware(Results(backend=RedisBackend(url=f"{base}/{RESULTS_DB}")))

    def square(n: int) -> int:
        """The same n * n as guidist's built-in task."""
        return _square(n)

    return broker, dramatiq.actor(square, broker=broker, queue_name=QUEUE, store_results=True)


# What `dramatiq benchmarks._peer_dramatiq` loads in the launched worker processes: the CLI
# runs the global broker's actors.
_base = worker_base()
if _base:
    broker, square = make(_base)
    dramatiq.set_broker(broker)
