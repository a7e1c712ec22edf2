"""Where the peers' apps find their Redis: one environment variable, two databases.

The benchmark starts a fresh redis-server for each run. Its own process builds each peer's
client with ``make(base)``; the worker processes it launches import the same module, which
builds the same app at import time from the URL in ``GUIDIST_BENCH_REDIS``. Messages go to
database 0 and results to database 1, so the number of results stored is that database's
DBSIZE, read in O(1) without knowing any key name.
"""

from __future__ import annotations

import os

ENV = "GUIDIST_BENCH_REDIS"
BROKER_DB = 0
RESULTS_DB = 1


def worker_base() -> str | None:
    """redis://127.0.0.1:PORT in a launched worker process; None in the benchmark itself."""
    url = os.environ.get(ENV)
    return url.rstrip("/") if url else None
