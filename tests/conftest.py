"""Shared fixtures: a real server on 127.0.0.1:0, worker pools, and a leftover-process check."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

# Qt must never try to open a display in tests; set before anything imports PySide6.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# A developer's own server settings must not leak into the tests' commands.
for _name in ("GUIDIST_AUTHKEY", "GUIDIST_CONNECT", "GUIDIST_REDIS_URL"):
    os.environ.pop(_name, None)


def _adopt_orphans() -> None:
    """Make pytest the subreaper of what it starts, so the leftover check sees orphans too.

    Without it a grandchild whose parent was killed (a tutorial master's manager process, a
    worker's child) is reparented to init and escapes ``no_leftover_processes``.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_CHILD_SUBREAPER = 36
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


_adopt_orphans()

from guidist.core.client import Client  # noqa: E402
from guidist.core.pool import WorkerPool  # noqa: E402
from guidist.core.server import ServerProcess  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TEST_KEY = "test-key-0123456789"


def wait_for(predicate: Callable[[], object], timeout: float = 30.0, interval: float = 0.02,
             message: str = "condition") -> object:
    """Poll predicate until it returns something truthy; fail the test after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {message}")
        time.sleep(interval)


@contextmanager
def mounted_tmpfs(parent: Path, size: str) -> Iterator[Path]:
    """A tmpfs of size ("6m") mounted under parent for a test: a disk that can fill up or go
    read-only. Root only; elsewhere the test is skipped with the reason."""
    mnt = parent / f"disk-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {out.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


class FakeClock:
    """A wall clock that only moves when a test says so (brokers take an injectable clock)."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds


def _children() -> list[psutil.Process]:
    out = []
    for p in psutil.Process().children(recursive=True):
        try:
            if "resource_tracker" in " ".join(p.cmdline()):
                continue  # multiprocessing's own helper; it exits with the interpreter
            out.append(p)
        except psutil.NoSuchProcess:
            continue
    return out


@pytest.fixture(autouse=True)
def no_leftover_processes() -> Iterator[None]:
    """Fail a test that leaves child processes running (after a short grace period)."""
    before = {p.pid for p in _children()}
    yield
    deadline = time.monotonic() + 10
    left = [p for p in _children() if p.pid not in before]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [p for p in left if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    if left:
        desc = ", ".join(f"{p.pid} {' '.join(p.cmdline())[:80]}" for p in left if p.is_running())
        for p in left:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        pytest.fail(f"test left child processes running: {desc}")


@pytest.fixture
def server_factory() -> Iterator[Callable[..., ServerProcess]]:
    """Start servers (port 0, loopback, no journal unless given); all are stopped afterwards."""
    started: list[ServerProcess] = []

    def start(**options: object) -> ServerProcess:
        options.setdefault("authkey", TEST_KEY)
        server = ServerProcess(**options)  # type: ignore[arg-type]
        server.start()
        started.append(server)
        return server

    yield start
    for s in started:
        s.stop()


@pytest.fixture
def server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    """One running server with a short lease, so requeue tests finish quickly."""
    return server_factory(lease_timeout=2.0)


def connected_client(server: ServerProcess) -> Iterator[Client]:
    """A client connected to server, closed when the fixture that yields from it ends."""
    assert server.address is not None
    c = Client(server.address, TEST_KEY).connect()
    yield c
    c.close()


@pytest.fixture
def client(server: ServerProcess) -> Iterator[Client]:
    """A client connected to the server fixture."""
    yield from connected_client(server)


@pytest.fixture
def pool_factory() -> Iterator[Callable[..., WorkerPool]]:
    """Worker pools for a server; every worker is stopped afterwards."""
    pools: list[WorkerPool] = []

    def make(server: ServerProcess, **options: object) -> WorkerPool:
        assert server.address is not None
        options.setdefault("give_up_after", 5.0)
        pool = WorkerPool(server.address, TEST_KEY, **options)  # type: ignore[arg-type]
        pools.append(pool)
        return pool

    yield make
    for p in pools:
        p.stop_all(timeout=5)


@pytest.fixture
def ghost() -> Iterator[type]:
    """A class only this process can import (its module is made here, not on disk): a
    worker, or the server once the test drops the module, cannot unpickle its instances."""
    import types

    mod = types.ModuleType("guidist_test_ghost")
    exec("class Ghost:\n    pass\n", mod.__dict__)
    sys.modules[mod.__name__] = mod
    yield mod.Ghost
    sys.modules.pop(mod.__name__, None)


def python_script(path: Path, *args: str) -> list[str]:
    """argv to run a fixture script with this interpreter."""
    return [sys.executable, str(path), *args]
