"""The command line as a person uses it: real ``python -m guidist`` processes.

Bad input (issue 5 item 13) gives one line on stderr, a non-zero exit and no traceback.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from guidist.core.client import Client
from guidist.core.pool import WorkerPool
from guidist.core.protocol import TaskState
from guidist.core.server import ServerProcess
from tests.conftest import TEST_KEY, wait_for
from tests.e2e.conftest import connect_arg, free_port, run_cli

Procs = Callable[..., subprocess.Popen]


def assert_one_line_error(out: subprocess.CompletedProcess, command: str, pattern: str,
                          code: int | None = None) -> None:
    assert out.returncode != 0, out
    if code is not None:
        assert out.returncode == code, out
    assert "Traceback" not in out.stderr and "Traceback" not in out.stdout
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(f"guidist {command}: error: "), lines[0]
    assert re.search(pattern, lines[0]), lines[0]
    assert out.stdout == ""


@pytest.fixture
def where(server: ServerProcess) -> str:
    assert server.address is not None
    return connect_arg(server.address)


# ---------------------------------------------------------------------- bad input


def test_unknown_task_name(where: str, client: Client) -> None:
    out = run_cli("submit", "--connect", where, "--task", "nosuch", "--range", "1..3")
    assert_one_line_error(out, "submit", r"unknown task 'nosuch'.*square", code=2)
    out = run_cli("submit", "--connect", where, "--task", "pkg.mod:f(1)", "--count", "1")
    assert_one_line_error(out, "submit", r"unknown task", code=2)
    assert client.snapshot().submitted == 0


@pytest.mark.parametrize("text, pattern", [
    ("1-5", "malformed range '1-5'.*A..B"),
    ("a..b", "malformed range"),
    ("5..1", "empty range"),
    ("..", "malformed range"),
])
def test_malformed_range(where: str, client: Client, text: str, pattern: str) -> None:
    out = run_cli("submit", "--connect", where, "--range", text)
    assert_one_line_error(out, "submit", pattern, code=2)
    assert client.snapshot().submitted == 0


def test_unreadable_file(where: str, client: Client, tmp_path: Path) -> None:
    out = run_cli("submit", "--connect", where, "--file", str(tmp_path / "missing.jsonl"))
    assert_one_line_error(out, "submit", r"cannot read .*missing.jsonl: No such file", code=2)
    out = run_cli("submit", "--connect", where, "--file", str(tmp_path))  # a directory
    assert_one_line_error(out, "submit", r"cannot read", code=2)
    locked = tmp_path / "locked.jsonl"
    locked.write_text("1\n")
    locked.chmod(0)
    try:
        out = run_cli("submit", "--connect", where, "--file", str(locked))
        if out.returncode != 0 or psutil.Process().uids().effective != 0:  # root reads anyway
            assert_one_line_error(out, "submit", r"cannot read .*Permission denied", code=2)
    finally:
        locked.chmod(0o600)
    assert client.snapshot().submitted == 0 or psutil.Process().uids().effective == 0


def test_bad_lines_in_a_file_name_the_line(where: str, client: Client, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("1\n2\n{not json\n4\n")
    out = run_cli("submit", "--connect", where, "--file", str(bad))
    assert_one_line_error(out, "submit", r"bad.jsonl:3: not JSON", code=2)
    shape = tmp_path / "shape.jsonl"
    shape.write_text('{"args": 5}\n')
    out = run_cli("submit", "--connect", where, "--file", str(shape))
    assert_one_line_error(out, "submit", r"shape.jsonl:1: 'args' must be a list", code=2)
    csv_file = tmp_path / "bad.csv"
    csv_file.write_text("1,2\n3,__import__('os')\n")
    out = run_cli("submit", "--connect", where, "--file", str(csv_file))
    assert_one_line_error(out, "submit", r"bad.csv:2: not a Python literal", code=2)
    assert client.snapshot().submitted == 0  # nothing of a bad file is queued


def test_arg_is_never_evaluated(where: str, client: Client, tmp_path: Path) -> None:
    flag = tmp_path / "pwned"
    code = f"open({str(flag)!r}, 'w')"
    out = run_cli("submit", "--connect", where, "--task", "echo", "--count", "1", "--arg", code)
    assert_one_line_error(out, "submit", r"--arg: not a Python literal", code=2)
    assert not flag.exists()
    out = run_cli("submit", "--connect", where, "--count", "-1")
    assert_one_line_error(out, "submit", r"--count", code=2)


@pytest.mark.parametrize("command", [
    ["submit", "--range", "1..2"], ["status"], ["status", "--json"],
])
def test_unreachable_connect(command: list[str]) -> None:
    port = free_port()
    out = run_cli(command[0], "--connect", f"127.0.0.1:{port}", *command[1:])
    assert_one_line_error(out, command[0], rf"Nothing is listening at 127.0.0.1:{port}")


@pytest.mark.parametrize("address, pattern", [
    ("nohost", r"malformed address 'nohost'"),
    ("127.0.0.1:http", r"malformed address"),
    ("127.0.0.1:99999", r"malformed address"),
    ("127.0.0.1:0", r"has no port"),
    ("no-such-host.invalid:5000", r"Cannot resolve 'no-such-host.invalid'"),
])
def test_malformed_connect(address: str, pattern: str) -> None:
    for command in (["status"], ["submit", "--range", "1..2"]):
        out = run_cli(command[0], "--connect", address, *command[1:])
        assert_one_line_error(out, command[0], pattern)
    w = run_cli("worker", "--connect", address, "--give-up-after", "0.5")
    assert w.returncode != 0 and "Traceback" not in w.stderr


def test_wrong_or_missing_key(where: str) -> None:
    out = run_cli("status", "--connect", where, key="wrong-key-0123456789")
    assert_one_line_error(out, "status", r"rejected the key")
    assert "wrong-key-0123456789" not in out.stderr
    out = run_cli("status", "--connect", where, key=None)
    assert_one_line_error(out, "status", r"no key: pass --authkey KEY or set GUIDIST_AUTHKEY",
                          code=2)


def test_export_without_a_journal(tmp_path: Path) -> None:
    out = run_cli("export", "--journal", str(tmp_path / "none.sqlite"))
    assert_one_line_error(out, "export", r"no journal at", code=2)


# ---------------------------------------------------------------------- happy paths


def test_submit_range_count_and_files(where: str, client: Client, tmp_path: Path) -> None:
    out = run_cli("submit", "--connect", where, "--range", "3..5")
    assert out.returncode == 0
    assert re.fullmatch(r"queued 3 square task\(s\), ids 1\.\.3, job square-\d{8}-\d{6} \(id 1\)",
                        out.stdout.strip()), out.stdout
    out = run_cli("submit", "--connect", where, "--task", "tests.jobs:slow_square",
                  "--count", "2", "--arg", "[7, 0.0]")
    assert out.returncode == 0, out.stderr
    assert client.get_task(4).args == (7, 0.0) and client.get_task(5).args == (7, 0.0)
    jl = tmp_path / "tasks.jsonl"
    jl.write_text('8\n[9, 0.0]\n\n{"args": [10], "kwargs": {"seconds": 0.0}}\n')
    out = run_cli("submit", "--connect", where, "--task", "tests.jobs:slow_square",
                  "--file", str(jl))
    assert out.returncode == 0, out.stderr
    got = {t.args: t.kwargs for t in client.list_tasks("queued", limit=100).tasks}
    assert got[(8,)] is None and got[(9, 0.0)] is None and got[(10,)] == {"seconds": 0.0}
    csv_file = tmp_path / "tasks.csv"
    csv_file.write_text("hello,'x y'\n[1],None\n")
    out = run_cli("submit", "--connect", where, "--task", "tests.jobs:slow_square",
                  "--file", str(csv_file))
    assert out.returncode == 0, out.stderr
    args = [t.args for t in client.list_tasks("queued", limit=100).tasks]
    assert ("hello", "x y") in args and ([1], None) in args
    assert client.snapshot().submitted == 10


def test_status_json(server: ServerProcess, where: str, client: Client,
                     pool_factory: Callable[..., WorkerPool]) -> None:
    client.submit_many("square", range(50))
    client.submit_many("tests.jobs:boom", range(2))
    pool = pool_factory(server)
    pool.launch(1)
    client.wait_idle(30)
    client.pause()
    client.submit_many("square", range(3))
    # throughput counts whole seconds: wait until the second the work ran in has closed
    wait_for(lambda: client.snapshot().throughput > 0, timeout=5, message="throughput")
    out = run_cli("status", "--connect", where, "--json")
    assert out.returncode == 0, out.stderr
    status = json.loads(out.stdout)
    for field in ("queued", "claimed", "running", "done", "failed", "dead", "cancelled",
                  "workers", "throughput"):
        assert field in status, field
    assert (status["queued"], status["claimed"], status["running"], status["done"],
            status["failed"], status["dead"], status["cancelled"]) == (3, 0, 0, 50, 2, 0, 0)
    assert status["workers"] == 1
    assert status["throughput"] > 0 and status["paused"] is True
    text = run_cli("status", "--connect", where)
    assert text.returncode == 0
    assert text.stdout.startswith("3 queued, 0 claimed, 0 running, 50 done, 2 failed, 0 dead, "
                                  "0 cancelled | 1 workers")
    assert "(paused)" in text.stdout


def test_authkey_flag_works_too(where: str) -> None:
    out = run_cli("status", "--connect", where, "--authkey", TEST_KEY, key=None)
    assert out.returncode == 0, out.stderr


def _serve(procs: Procs, *args: str, key: str | None = TEST_KEY) -> tuple[subprocess.Popen,
                                                                           int, list[str]]:
    p = procs([sys.executable, "-m", "guidist", "serve", "--port", "0", "--interval", "0.2",
               *args], key=key, stderr=subprocess.PIPE)
    assert p.stdout is not None
    lines = [p.stdout.readline()]
    m = re.match(r"guidist server listening on 127.0.0.1:(\d+)", lines[0])
    assert m, lines
    while not lines[-1].startswith("only this machine"):
        lines.append(p.stdout.readline())
    return p, int(m.group(1)), lines


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_serve_prints_how_to_connect_and_stops_cleanly(procs: Procs, sig: int) -> None:
    p, port, lines = _serve(procs, "--no-journal")
    text = "".join(lines)
    assert f"guidist worker --connect 127.0.0.1:{port}" in text
    assert TEST_KEY not in text  # a key given by the user is never printed
    server_pids = [c.pid for c in psutil.Process(p.pid).children(recursive=True)]
    assert server_pids
    c = Client(("127.0.0.1", port), TEST_KEY).connect()
    c.submit_many("square", range(5))
    assert p.stdout is not None
    wait_for(lambda: "5 queued" in p.stdout.readline(), timeout=10, message="a status line")
    c.close()
    p.send_signal(sig)
    out, err = p.communicate(timeout=20)
    assert p.returncode == 0, err
    assert out.rstrip().endswith("server stopped") and "Traceback" not in err
    def orphans() -> list[str]:
        left = []
        for pid in server_pids:
            try:
                proc = psutil.Process(pid)
                if proc.status() != psutil.STATUS_ZOMBIE:
                    left.append(" ".join(proc.cmdline())[:120])
            except psutil.NoSuchProcess:
                pass
        return left

    # The spawned server (and multiprocessing's helper) are gone, not orphaned to init.
    wait_for(lambda: not orphans(), timeout=10, message="the server processes to exit")
    with pytest.raises(ConnectionRefusedError):
        import socket

        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_serve_generates_a_key_when_none_is_given(procs: Procs) -> None:
    p, port, lines = _serve(procs, "--no-journal", key=None)
    key = next(line.split(": ", 1)[1].strip() for line in lines if line.startswith("key"))
    assert len(key) >= 16
    Client(("127.0.0.1", port), key).connect().snapshot()
    p.send_signal(signal.SIGINT)
    p.communicate(timeout=20)
    assert p.returncode == 0


def test_serve_weak_key_on_loopback_is_allowed_with_a_warning(procs: Procs) -> None:
    p, port, _ = _serve(procs, "--no-journal", key="abc")
    c = Client(("127.0.0.1", port), "abc").connect()
    assert c.submit("square", 2).id == 1
    c.close()
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=20)
    assert p.returncode == 0
    assert "loopback" in err and "abc" not in err


def test_worker_cli_runs_tasks_and_reports_them(server: ServerProcess, where: str,
                                                client: Client, procs: Procs) -> None:
    ids = client.submit_many("square", range(25))
    w = procs([sys.executable, "-m", "guidist", "worker", "--connect", where, "--name", "cli-w",
               "--max-tasks", "25", "--heartbeat", "0.2"])
    out, _ = w.communicate(timeout=30)
    assert w.returncode == 0, out
    assert TEST_KEY not in out  # the key is never logged
    assert all(client.get_task(i).state is TaskState.DONE for i in ids)
    assert client.get_task(ids[0]).worker.startswith("cli-w")
