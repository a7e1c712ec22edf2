"""The huey app of the peers benchmark: RedisHuey on db 0 at its defaults (results kept)."""

from __future__ import annotations

from typing import Any

from huey import RedisHuey

from guidist.core.tasks import square as _square

from ._peer_env import BROKER_DB, worker_base


def make(base: str) -> tuple[RedisHuey, Any]:
    """The huey instance and its square task, on the redis-server at base (redis://HOST:PORT)."""
    huey = RedisHuey("guidist-bench", url=f"{base}/{BROKER_DB}")

    @huey.task()
    def square(n: int) -> int:
        """The same n * n as guidist's built-in task."""
        return _square(n)

    return huey, square


# What `huey_consumer benchmarks._peer_huey.huey` loads in the launched consumer.
_base = worker_base()
huey, square = make(_base) if _base else (None, None)
