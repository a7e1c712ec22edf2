"""Helpers for end-to-end tests: real subprocesses that are always stopped by their own pid."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, TEST_KEY

FIXTURES = REPO / "tests" / "fixtures"


def free_port() -> int:
    """A port nothing listens on (bound and released: good enough on a test machine)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli_env(key: str | None = TEST_KEY) -> dict[str, str]:
    """Environment for a guidist command: the key in GUIDIST_AUTHKEY, never on argv."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("GUIDIST_AUTHKEY", None)
    if key is not None:
        env["GUIDIST_AUTHKEY"] = key
    return env


def run_cli(*args: str, key: str | None = TEST_KEY, timeout: float = 30) -> \
        subprocess.CompletedProcess:
    """Run ``python -m guidist ARGS`` to completion."""
    return subprocess.run([sys.executable, "-m", "guidist", *args], cwd=REPO, env=cli_env(key),
                          capture_output=True, text=True, timeout=timeout)


def connect_arg(address: tuple[str, int]) -> str:
    return f"{address[0]}:{address[1]}"


@pytest.fixture
def procs() -> Iterator[Callable[..., subprocess.Popen]]:
    """Start subprocesses (cwd = repo root); any still running at the end are killed.

    Each runs in a session of its own, and the whole group is killed: a tutorial master's
    manager process (a fork of it) would outlive a kill of the master alone.
    """
    started: list[subprocess.Popen] = []

    def start(argv: list[str], key: str | None = TEST_KEY, **kwargs: object) -> subprocess.Popen:
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.STDOUT)
        kwargs.setdefault("start_new_session", True)
        p = subprocess.Popen(argv, cwd=REPO, env=cli_env(key), text=True,
                             **kwargs)  # type: ignore[call-overload]
        started.append(p)
        return p

    yield start
    for p in started:
        try:
            os.killpg(p.pid, signal.SIGKILL)  # the group outlives its leader's exit
        except (ProcessLookupError, PermissionError):
            pass
        p.wait(10)
        for stream in (p.stdout, p.stderr):
            if stream is not None:
                stream.close()


def worker_argv(address: tuple[str, int], *args: str) -> list[str]:
    """argv of ``guidist worker`` against address (key from the environment)."""
    return [sys.executable, "-m", "guidist", "worker", "--connect", connect_arg(address), *args]


def script_argv(name: str, *args: str) -> list[str]:
    return [sys.executable, str(FIXTURES / name), *args]


def output_of(p: subprocess.Popen, timeout: float = 30) -> str:
    """Wait for p and return its combined output."""
    out, _ = p.communicate(timeout=timeout)
    return out or ""


def marker(tmp_path: Path, name: str) -> str:
    return str(tmp_path / name)
