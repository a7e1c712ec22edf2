"""``guidist.Executor``: a drop-in ``concurrent.futures.Executor`` whose workers are guidist's.

Code written for ``ProcessPoolExecutor`` runs unchanged on the machines a guidist server
feeds: ``submit`` returns a future, ``map`` yields results in order (``chunksize`` groups
items into one task each), ``shutdown`` waits, and ``with`` shuts down.
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .client import Client, connect


class Executor(cf.Executor):
    """Run callables as tasks on a guidist server's workers (``guidist.Executor(address)``).

    address and authkey are as for ``guidist.connect`` (a redis:// URL works too), or pass a
    connected ``client``. job names the job every task goes in (default: one per function
    for submit, one per map call).
    """

    def __init__(self, address: str | tuple[str, int] | None = None,
                 authkey: str | bytes | None = None, *, job: str | None = None,
                 client: Client | None = None) -> None:
        self._client = client if client is not None else connect(address, authkey, job=job)
        if client is not None and job is not None:
            self._client.job_name = job
        self._job = job
        self._futures: weakref.WeakSet[cf.Future] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._shutdown = False

    @property
    def client(self) -> Client:
        """The Client underneath, for what an Executor does not offer (jobs, status...)."""
        return self._client

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future:
        """Queue fn(*args, **kwargs); returns a future of its result."""
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            fut = self._client.submit(fn, *args, **kwargs)
            self._futures.add(fut)
            return fut

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any], timeout: float | None = None,
            chunksize: int = 1, **_ignored: Any) -> Iterator[Any]:
        """Results of fn over the iterables, in order; chunksize items per task."""
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
        return self._client.map(fn, *iterables, job=self._job, chunksize=chunksize,
                                timeout=timeout)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """No new tasks; cancel the queued ones (cancel_futures), wait for the rest (wait),
        then close the connection."""
        with self._lock:
            self._shutdown = True
            pending = [f for f in self._futures if not f.done()]
        if cancel_futures:
            for f in pending:
                f.cancel()
        if wait:
            cf.wait(pending)
        self._client.close()
