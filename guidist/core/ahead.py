"""A worker's exchange in flight: sent before a batch runs, its reply read when the batch is done.

The request goes out on the worker's own socket and the reply waits there while the batch runs,
so the round trip overlaps the work with no thread in between. Another thread may read the
reply first only to give a claim back (the batch at hand overran); a lock decides who reads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .errors import GuidistError
from .pending import PendingResults


class AheadExchange:
    """One exchange sent and not yet read: its reply, the results it carried, when it left."""

    def __init__(self, reply: Callable[[], Any], sent: PendingResults, since: float) -> None:
        self.sent = sent  # the results it carries: pending again if it fails
        self.since = since
        self._reply = reply
        self._lock = threading.Lock()
        self._outcome: tuple[bool, Any] | None = None
        self._taken = False

    def _read(self) -> tuple[bool, Any]:
        if self._outcome is None:
            try:
                self._outcome = (True, self._reply())
            except BaseException as exc:  # the loop decides what it means
                self._outcome = (False, exc)
        return self._outcome

    def drain(self) -> None:
        """Read the reply off the socket (before another call on it), keeping it for take."""
        with self._lock:
            self._read()

    def take(self) -> Any:
        """The reply (command, groups), for the worker to run; raises the call's error."""
        with self._lock:
            self._taken = True
            ok, value = self._read()
        if not ok:
            raise value
        return value

    def give_back(self, release: Callable[[list[int]], Any]) -> bool:
        """From another thread: give back what the exchange claimed, unless the worker took it
        already; True when it did. A release that fails leaves the claim to the worker (better
        run than left leased)."""
        with self._lock:
            if self._taken:
                return False
            ok, value = self._read()
            if not ok or not value[1]:
                return False
            cmd, groups = value
            try:
                release([tid for g in groups for tid in g[2]])
            except GuidistError:
                return False
            self._outcome = (True, (cmd, []))
            return True
