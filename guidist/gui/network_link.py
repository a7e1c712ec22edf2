"""The GUI process's end of the network process: start it, talk to it, notice when it dies.

Replies are read on the GUI thread when the pipe has data (a ``QSocketNotifier``, no thread of
our own): each is one small ready-to-draw object, so reading it costs the event loop a few
microseconds, and nothing else in the GUI process competes for the GIL.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from multiprocessing.connection import Connection
from typing import Any

from PySide6.QtCore import QObject, QSocketNotifier, Signal, Slot

from . import network_process

log = logging.getLogger(__name__)

#: Replies read per wake-up at most, so a burst never holds the event loop for long.
MAX_READS_PER_WAKE = 64
#: How long stop() waits for the helper to finish in order before killing it.
STOP_WAIT_S = 3.0


class NetworkLink(QObject):
    """One helper process and its pipe; ``received`` carries each reply, ``died`` its end."""

    #: tuple: (kind, *args), as network_process sends it.
    received = Signal(object)
    #: int | None: the exit code of a helper that ended without being asked to.
    died = Signal(object)

    def __init__(self, poll_ms: int, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._poll_ms = poll_ms
        self._process: Any = None
        self._conn: Connection | None = None
        self._notifier: QSocketNotifier | None = None

    @property
    def pid(self) -> int | None:
        """The helper's pid while it runs."""
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        """True while a helper process is started and not known dead."""
        return self._process is not None

    def start(self) -> None:
        """Start the helper process (spawn: a fresh interpreter without Qt or our threads)."""
        if self._process is not None:
            return
        ctx = multiprocessing.get_context("spawn")
        mine, theirs = ctx.Pipe(duplex=True)
        process = ctx.Process(target=network_process.run, name="guidist-window-network",
                              args=(theirs, os.getpid(), self._poll_ms,
                                    logging.getLogger("guidist").getEffectiveLevel()),
                              daemon=True)  # multiprocessing also ends it at interpreter exit
        process.start()
        theirs.close()  # only the helper holds that end now: its death reads as end-of-file
        self._process, self._conn = process, mine
        self._notifier = QSocketNotifier(mine.fileno(), QSocketNotifier.Type.Read, self)
        self._notifier.activated.connect(self._on_readable)
        log.info("network process started (pid %d)", process.pid)

    def send(self, *message: Any) -> bool:
        """Send one message; False when the helper is not running (its death is reported)."""
        if self._conn is None:
            return False
        try:
            self._conn.send(message)
        except (OSError, ValueError):
            self._lost()
            return False
        return True

    def stop(self) -> None:
        """Ask the helper to finish, wait a little, then make sure it is gone (no signal)."""
        process, conn = self._process, self._conn
        if process is None:
            return
        self._forget()
        try:
            conn.send(("stop",))  # type: ignore[union-attr]
        except (OSError, ValueError):
            pass
        process.join(STOP_WAIT_S)
        if process.is_alive():
            log.warning("network process %d did not stop; killing it", process.pid)
            process.kill()
            process.join(STOP_WAIT_S)
        conn.close()  # type: ignore[union-attr]
        process.close()

    @Slot()
    def _on_readable(self) -> None:
        conn = self._conn
        try:
            for _ in range(MAX_READS_PER_WAKE):
                if conn is None or not conn.poll():
                    return
                message = conn.recv()
                self.received.emit(message)
                conn = self._conn  # a slot may have stopped the link
        except (EOFError, OSError):
            self._lost()

    def _lost(self) -> None:
        """The helper died (killed, crashed): reap it and say so."""
        process, conn = self._process, self._conn
        if process is None:
            return
        self._forget()
        process.join(STOP_WAIT_S)
        if process.is_alive():
            process.kill()
            process.join(STOP_WAIT_S)
        code = process.exitcode
        log.warning("network process %d ended with code %s", process.pid, code)
        conn.close()  # type: ignore[union-attr]
        process.close()
        self.died.emit(code)

    def _forget(self) -> None:
        if self._notifier is not None:
            self._notifier.setEnabled(False)
            self._notifier.deleteLater()
        self._notifier = None
        self._process = self._conn = None
