"""A real redis-server for tests: random loopback port, temp dir, stopped by its own PID."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def redis_available() -> bool:
    """True when both redis-server and the redis package are installed."""
    try:
        import redis  # noqa: F401
    except ImportError:
        return False
    return os.path.exists(REDIS_SERVER)


needs_redis = pytest.mark.skipif(not redis_available(),
                                 reason="needs redis-server and the redis package "
                                        "(pip install '.[redis]')")


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """One redis-server process; restartable on the same port and directory (for AOF tests)."""

    def __init__(self, directory: Path, *, aof: bool = False, password: str | None = None,
                 port: int | None = None) -> None:
        self.dir = directory
        self.port = port or free_port()
        self.aof = aof
        self.password = password
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """redis://[:password@]127.0.0.1:PORT/0."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start and wait until it answers PING."""
        cmd = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
               "--dir", str(self.dir), "--save", "", "--daemonize", "no",
               "--logfile", str(self.dir / "redis.log")]
        if self.aof:
            cmd += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            cmd += ["--appendonly", "no"]
        if self.password:
            cmd += ["--requirepass", self.password]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            if self._answers():
                return self
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = (self.dir / "redis.log")
                text = log.read_text()[-2000:] if log.exists() else ""
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}: {text}")
            time.sleep(0.02)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                if self.password:
                    s.sendall(f"AUTH {self.password}\r\n".encode())
                    s.recv(64)
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL, as a crash or power cut would (AOF with fsync always keeps what was acked)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        """Stop this server by its PID (SIGTERM, then SIGKILL)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture(scope="module")
def shared_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer | None]:
    """One redis-server (no persistence) per test module, or None where Redis is missing.

    Module-scoped fixtures start before the leftover-process check records the children, so
    this server is not mistaken for one a test forgot; tests use their own namespaces. Module
    scope (not session) stops it when its module is done, so later modules that check that
    nothing at all is left running (the window's close test) see no stray redis-server.
    """
    if not redis_available():
        yield None
        return
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_server(shared_redis: RedisServer | None) -> RedisServer:
    """The session's redis-server; skips the test where Redis is not installed."""
    if shared_redis is None:
        pytest.skip("needs redis-server and the redis package")
    return shared_redis


@pytest.fixture
def redis_namespace() -> str:
    """A namespace no other test uses, so tests share one Redis without seeing each other."""
    return f"test-{uuid.uuid4().hex[:12]}"


def stall_once(marker: str, n: int, seconds: float = 30.0) -> int:
    """A task for kill tests (as "tests.redis_fixtures:stall_once"): the first run creates
    marker and stalls so the test can kill its worker; any later run returns n * n at once."""
    path = Path(marker)
    if not path.exists():
        path.touch()
        time.sleep(seconds)
    return n * n


def slow_square(n: int, seconds: float = 0.001) -> int:
    """n * n after a short sleep, so a run lasts long enough to disturb it."""
    time.sleep(seconds)
    return n * n
