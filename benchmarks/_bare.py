"""Reference for figure 1: a bare batched manager — the transport's ceiling, no bookkeeping.

The same shape as guidist (a manager server process, 2 worker processes, a master submitting in
chunks of 20,000 and workers trading a batch of results for the next batch of up to 1,000 tasks
in one call, TCP_NODELAY on both ends) but the server only keeps a deque of pending payloads, a
done counter and the last 20,000 results: no ids, leases, records, counters or journal. The gap
between this and guidist is what guidist's bookkeeping costs; the gap between this and
multiprocessing.Pool is what the manager transport costs.
"""

from __future__ import annotations

import multiprocessing
import socket
import threading
import time
from collections import deque
from multiprocessing import connection, managers
from typing import Any

from guidist.core.tasks import square

SERIALIZER = "bench-nodelay"
BATCH = 1000
CHUNK = 20_000


def _nodelay_client(address: Any, family: str | None = None,
                    authkey: bytes | None = None) -> connection.Connection:
    s = socket.create_connection(address)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn = connection.Connection(s.detach())
    connection.answer_challenge(conn, authkey)
    connection.deliver_challenge(conn, authkey)
    return conn


managers.listener_client.setdefault(SERIALIZER, (connection.Listener, _nodelay_client))


class _NodelayServer(managers.Server):
    def accepter(self) -> None:
        while True:
            try:
                c = self.listener.accept()
            except OSError:
                continue
            s = socket.socket(fileno=c.fileno())
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.detach()
            threading.Thread(target=self.handle_request, args=(c,), daemon=True).start()


class Bare:
    """The whole 'broker': pending payload lists, a done counter, the newest results."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._pending: deque[list] = deque()
        self._pos = 0
        self._results: deque = deque(maxlen=20_000)
        self._done = 0
        self._last = 0.0
        self._stop = False

    def submit(self, items: list) -> int:
        """Queue payloads."""
        with self._cv:
            self._pending.append(items)
            self._cv.notify_all()
            return len(items)

    def exchange(self, results: list, n: int) -> list | None:
        """Store results, hand out up to n payloads (waiting up to 1 s); None means stop."""
        with self._cv:
            if results:
                self._done += len(results)
                self._results.extend(results)
                self._last = time.time()
            deadline = time.monotonic() + 1.0
            while not self._pending and not self._stop:
                left = deadline - time.monotonic()
                if left <= 0:
                    return []
                self._cv.wait(left)
            if self._stop:
                return None
            head = self._pending[0]
            out = head[self._pos:self._pos + n]
            self._pos += len(out)
            if self._pos >= len(head):
                self._pending.popleft()
                self._pos = 0
            return out

    def progress(self) -> tuple[int, float]:
        """(results stored, time.time() of the latest store)."""
        with self._cv:
            return self._done, self._last

    def stop(self) -> None:
        """Tell waiting workers to leave."""
        with self._cv:
            self._stop = True
            self._cv.notify_all()


_BARE = Bare()


def get_bare() -> Bare:
    """Registered callable (module level, so it works under spawn)."""
    return _BARE


class BareManager(managers.BaseManager):
    """Manager with TCP_NODELAY on accepted sockets."""

    _Server = _NodelayServer


BareManager.register("get_bare", callable=get_bare,
                     exposed=("submit", "exchange", "progress", "stop"))


def worker_main(address: tuple[str, int], authkey: bytes, ready: Any) -> None:
    """Trade results for the next batch until told to stop."""
    m = BareManager(address=address, authkey=authkey, serializer=SERIALIZER)
    m.connect()
    bare = m.get_bare()
    ready.set()
    results: list = []
    while True:
        items = bare.exchange(results, BATCH)
        if items is None:
            return
        results = [square(x) for x in items]


def run(n_tasks: int, n_workers: int, authkey: bytes) -> dict[str, Any]:
    """One end-to-end run, timed like guidist's: first submit until the last result is stored."""
    ctx = multiprocessing.get_context("spawn")
    manager = BareManager(address=("127.0.0.1", 0), authkey=authkey, serializer=SERIALIZER,
                          ctx=ctx)
    manager.start()
    procs: list[multiprocessing.process.BaseProcess] = []
    try:
        events = [ctx.Event() for _ in range(n_workers)]
        for ev in events:
            p = ctx.Process(target=worker_main, args=(manager.address, authkey, ev), daemon=True)
            p.start()
            procs.append(p)
        for ev in events:
            if not ev.wait(60):
                raise TimeoutError("a bare worker did not connect within 60 s")
        bare = manager.get_bare()
        t0 = time.time()
        for i in range(0, n_tasks, CHUNK):
            bare.submit(list(range(i, min(i + CHUNK, n_tasks))))
        deadline = time.monotonic() + 60 + n_tasks / 5_000
        while True:
            done, last = bare.progress()
            if done >= n_tasks:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"bare manager: {done} of {n_tasks} results")
            time.sleep(0.02)
        elapsed = last - t0
        bare.stop()
        for p in procs:
            p.join(10)
        return {"tasks": n_tasks, "seconds": elapsed, "tasks_per_s": n_tasks / elapsed}
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join(5)
        manager.shutdown()
