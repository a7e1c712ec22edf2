"""``guidist status --watch``: redrawn in place on a terminal, a log line per refresh elsewhere."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from guidist.core.client import Client
from guidist.core.server import ServerProcess
from tests.conftest import REPO
from tests.e2e.conftest import cli_env, connect_arg


class Terminal:
    """A command on a pseudo-terminal, with everything it wrote so far."""

    def __init__(self, args: list[str]) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen([sys.executable, "-m", "guidist", *args], cwd=REPO,
                                     env=cli_env(), stdin=subprocess.DEVNULL, stdout=slave,
                                     stderr=slave)
        os.close(slave)
        self.screen = ""

    def read_until(self, predicate: Callable[[str], bool], timeout: float = 20) -> str:
        """Read output until predicate(all output) holds; fail the test after timeout."""
        deadline = time.monotonic() + timeout
        while not predicate(self.screen):
            if time.monotonic() > deadline:
                pytest.fail(f"the terminal never showed what was awaited: {self.screen!r}")
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                try:
                    self.screen += os.read(self.master, 65536).decode(errors="replace")
                except OSError:  # EIO once the command has exited
                    pytest.fail(f"the command exited early: {self.screen!r}")
        return self.screen

    def close(self) -> int:
        """Ctrl-C, then the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(15)
        finally:
            os.close(self.master)


def test_watch_redraws_in_place_on_a_terminal(server: ServerProcess, client: Client) -> None:
    assert server.address is not None
    term = Terminal(["status", "--watch", "--interval", "0.2", "--connect",
                     connect_arg(server.address)])
    try:
        term.read_until(lambda s: "0 queued" in s)
        client.pause()
        client.submit_many("square", range(5))
        screen = term.read_until(lambda s: "5 queued" in s)
        assert "\x1b[J" in screen  # each frame clears what the last one left below it
        assert "\x1b[2F" in screen  # and starts where the last (2-line) frame started
        assert "Ctrl-C to stop" in screen
    finally:
        code = term.close()
    assert code == 0  # Ctrl-C is how a watch ends
    assert "Traceback" not in term.screen


def test_watch_appends_stamped_lines_when_not_a_terminal(server: ServerProcess,
                                                         client: Client) -> None:
    assert server.address is not None
    p = subprocess.Popen([sys.executable, "-m", "guidist", "status", "--watch", "--json",
                          "--interval", "0.1", "--connect", connect_arg(server.address)],
                         cwd=REPO, env=cli_env(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None
        first, second = p.stdout.readline(), p.stdout.readline()
    finally:
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=15)
    assert p.returncode == 0, err
    for line in (first, second):
        stamp, _, body = line.partition(" ")
        assert len(stamp) == 8 and stamp.count(":") == 2, line
        assert body.startswith('{"cancelled": 0') and "\x1b" not in line
