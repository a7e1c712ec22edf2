"""A worker's call in flight: the next exchange travels while the worker runs the batch at hand.

One daemon thread, one connection of its own (a manager proxy belongs to one thread), one call
at a time. The worker submits the exchange that reports the previous batch and claims the next
one just before it runs a batch, and reads the reply when that batch is done: the round trip
overlaps the work instead of following it.
"""

from __future__ import annotations

import concurrent.futures as cf
import queue
import threading
from collections.abc import Callable
from typing import Any

from .client import Client
from .errors import GuidistError


class AheadCaller:
    """Runs fn(client) in a thread of its own on a connection of its own; returns futures."""

    def __init__(self, new_client: Callable[[], Client]) -> None:
        self._new_client = new_client
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def submit(self, fn: Callable[[Client], Any]) -> cf.Future:
        """Queue fn to run with this caller's client; the future holds its reply or error."""
        if self._thread is None:
            # A daemon thread: a call stuck on a cut link must not keep the process alive.
            self._thread = threading.Thread(target=self._serve, name="exchange-ahead",
                                            daemon=True)
            self._thread.start()
        fut: cf.Future = cf.Future()
        self._jobs.put((fn, fut))
        return fut

    def close(self) -> None:
        """Let the thread finish the call at hand, close its connection and end."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread = None

    def _serve(self) -> None:
        client = self._new_client()
        try:
            while True:
                job = self._jobs.get()
                if job is None:
                    return
                fn, fut = job
                if not fut.set_running_or_notify_cancel():
                    continue
                try:
                    fut.set_result(fn(client))
                except GuidistError as exc:
                    client.close()  # the next call connects again
                    fut.set_exception(exc)
                except BaseException as exc:  # the worker's loop decides what it means
                    fut.set_exception(exc)
        finally:
            client.close()
