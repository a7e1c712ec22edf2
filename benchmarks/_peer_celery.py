"""The celery app of the peers benchmark: Redis broker (db 0), Redis result backend (db 1).

Everything else is celery's default (prefork pool, prefetch multiplier 4, early acks, JSON).
A result backend is the one setting added: without it celery keeps no results at all.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from guidist.core.tasks import square as _square

from ._peer_env import BROKER_DB, RESULTS_DB, worker_base


def bench_square(n: int) -> int:
    """The same n * n as guidist's built-in task."""
    return _square(n)


def make(base: str) -> tuple[Celery, Any]:
    """The app and its square task, on the redis-server at base (redis://HOST:PORT)."""
    app = Celery("guidist_bench", broker=f"{base}/{BROKER_DB}", backend=f"{base}/{RESULTS_DB}",
                 set_as_current=False)
    # One module-level function for every app this process makes: celery warns when a task
    # name is registered again with a different callable.
    return app, app.task(name="bench.square")(bench_square)


# What `celery -A benchmarks._peer_celery worker` loads in the launched worker process.
_base = worker_base()
app, square = make(_base) if _base else (None, None)
