"""The CLI with hostile input (issue 11 items 7, 8 and 9): one-line errors, bounded memory.

Huge ranges and counts are streamed (and Ctrl-C says exactly what was queued), odd files and
damaged or read-only journals give one line naming the file, and an empty key is refused on
an address other machines can reach.
"""

from __future__ import annotations

import os
import pty
import re
import resource
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from guidist.core.client import Client
from guidist.core.server import ServerProcess
from tests.conftest import REPO, TEST_KEY, mounted_tmpfs, wait_for
from tests.e2e.conftest import cli_env, connect_arg, run_cli

Procs = Callable[..., subprocess.Popen]
MEMORY_CAP = 1536 * 2**20  # address space for a CLI process: a list of 10**10 tasks never fits


def one_line(out: subprocess.CompletedProcess, command: str, pattern: str, code: int) -> None:
    assert out.returncode == code, (out.returncode, out.stderr)
    assert "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert re.search(rf"^guidist {command}: error: .*{pattern}", lines[0]), lines[0]


def _capped() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


@pytest.fixture
def where(server: ServerProcess) -> str:
    assert server.address is not None
    return connect_arg(server.address)


# ---------------------------------------------------------------------- huge submits


def _interrupted_submit(where: str, client: Client, *how: str) -> tuple[int, str, str]:
    """Start a never-ending submit under a memory cap, let it queue a few chunks, Ctrl-C it."""
    master, slave = pty.openpty()  # stderr on a terminal: progress is shown there
    p = subprocess.Popen([sys.executable, "-m", "guidist", "submit", "--connect", where, *how],
                         cwd=REPO, env=cli_env(), stdout=subprocess.PIPE, stderr=slave,
                         text=True, preexec_fn=_capped)
    os.close(slave)
    try:
        wait_for(lambda: client.snapshot().count("queued") >= 60_000, timeout=60,
                 message="a few chunks to be queued")
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=30)
        err = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            err += chunk
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)
        os.close(master)
    return p.returncode, out, err.decode("utf-8", "replace")


def test_a_huge_range_is_streamed_and_ctrl_c_says_what_was_queued(
        where: str, client: Client) -> None:
    code, out, err = _interrupted_submit(where, client, "--range", "1..10000000000")
    assert code == 130, err
    m = re.fullmatch(r"queued (\d+) square task\(s\), ids 1\.\.(\d+), job .*\n", out)
    assert m and m.group(1) == m.group(2), out
    n = int(m.group(1))
    assert client.snapshot().count("queued") == n  # exactly what it said, nothing in flight
    assert f"to queue the rest: --range {n + 1}..10000000000" in err
    assert "\rqueued " in err and " of 10,000,000,000 " in err  # progress on the terminal
    assert "Traceback" not in err and "MemoryError" not in err
    assert client.get_task(n).args == (n,) and client.get_task(n + 1) is None


def test_a_huge_count_is_streamed_and_can_be_resumed(where: str, client: Client) -> None:
    code, out, err = _interrupted_submit(where, client, "--count", "10000000000", "--arg", "7")
    assert code == 130, err
    n = int(re.match(r"queued (\d+) ", out).group(1))  # type: ignore[union-attr]
    assert f"to queue the rest: --count {10_000_000_000 - n}" in err
    assert client.snapshot().count("queued") == n


def test_skip_resumes_a_file_without_duplicates(where: str, client: Client,
                                                tmp_path: Path) -> None:
    f = tmp_path / "t.jsonl"
    f.write_text("".join(f"{i}\n" for i in range(10)))
    out = run_cli("submit", "--connect", where, "--file", str(f), "--skip", "4")
    assert out.returncode == 0, out.stderr
    assert sorted(t.args[0] for t in client.list_tasks("queued").tasks) == list(range(4, 10))


# ---------------------------------------------------------------------- odd files


@pytest.mark.parametrize("name, content, pattern", [
    ("latin1.csv", "café,1\nnaïve,2\n".encode("latin-1"), r"latin1.csv: .*not UTF-8 text.*UTF-8"),
    ("binary.csv", b"\x00\x01\x02" * 100 + os.urandom(64), r"binary.csv.*(not UTF-8|binary)"),
    ("binary.jsonl", b"\x89PNG\r\n\x1a\n\x00\x00" + bytes(range(256)),
     r"binary.jsonl.*(not UTF-8|binary)"),
    ("deep.jsonl", b"[" * 100_000 + b"]" * 100_000 + b"\n", r"deep.jsonl:1: nested too deeply"),
], ids=["latin-1 csv", "binary csv", "binary jsonl", "100k deep json"])
def test_unreadable_task_files_are_one_line_errors(where: str, client: Client, tmp_path: Path,
                                                   name: str, content: bytes,
                                                   pattern: str) -> None:
    f = tmp_path / name
    f.write_bytes(content)
    one_line(run_cli("submit", "--connect", where, "--file", str(f)), "submit", pattern, code=2)
    assert client.snapshot().submitted == 0


def test_a_csv_with_a_byte_order_mark_is_read(where: str, client: Client,
                                              tmp_path: Path) -> None:
    f = tmp_path / "excel.csv"
    f.write_bytes("\ufeffhello,1\nworld,2\n".encode("utf-8"))
    out = run_cli("submit", "--connect", where, "--task", "echo", "--file", str(f))
    assert out.returncode == 0, out.stderr
    assert sorted(t.args for t in client.list_tasks("queued").tasks) == [("hello", 1),
                                                                         ("world", 2)]


# ---------------------------------------------------------------------- damaged journals


def test_export_and_serve_on_a_damaged_journal_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not a database" * 1000)
    one_line(run_cli("export", "--journal", str(bad)), "export", re.escape(str(bad)), code=1)
    one_line(run_cli("prune", "--journal", str(bad)), "prune", re.escape(str(bad)), code=1)
    out = run_cli("serve", "--port", "0", "--journal", str(bad), timeout=60)
    one_line(out, "serve", rf"journal {re.escape(str(bad))} cannot be opened", code=1)


def test_a_journal_with_a_damaged_row_names_the_file(
        server_factory: Callable[..., ServerProcess], tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    srv = server_factory(journal=str(path))
    assert srv.address is not None
    Client(srv.address, TEST_KEY).connect().submit_many("square", range(3))
    srv.stop()
    db = sqlite3.connect(path)
    db.execute("UPDATE log SET data = ?", (b"\x80\x05garbage",))
    db.commit()
    db.close()
    one_line(run_cli("export", "--journal", str(path)), "export", re.escape(str(path)), code=1)
    one_line(run_cli("serve", "--port", "0", "--journal", str(path), timeout=60), "serve",
             rf"journal {re.escape(str(path))} cannot be read", code=1)


@pytest.fixture
def read_only_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs that a test fills and then remounts read-only (root only; skipped elsewhere)."""
    with mounted_tmpfs(tmp_path, "8m") as mnt:
        yield mnt


def test_export_reads_a_journal_on_a_read_only_disk(
        server_factory: Callable[..., ServerProcess], read_only_disk: Path) -> None:
    path = read_only_disk / "j.sqlite"
    srv = server_factory(journal=str(path))
    assert srv.address is not None
    Client(srv.address, TEST_KEY).connect().submit_many("square", range(5))
    srv.stop()
    subprocess.run(["mount", "-o", "remount,ro", str(read_only_disk)], check=True)
    with pytest.raises(OSError):  # really read-only, even for root
        (read_only_disk / "probe").write_text("x")
    out = run_cli("export", "--journal", str(path), "--format", "jsonl")
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert len(out.stdout.splitlines()) == 5
    one_line(run_cli("prune", "--journal", str(path)), "prune", re.escape(str(path)), code=1)
    one_line(run_cli("serve", "--port", "0", "--journal", str(path), timeout=60), "serve",
             re.escape(str(path)), code=1)


# ---------------------------------------------------------------------- an empty key


def test_an_empty_key_is_refused_on_all_interfaces_and_replaced_visibly_on_loopback(
        procs: Procs) -> None:
    out = run_cli("serve", "--host", "0.0.0.0", "--port", "0", "--no-journal", key="")
    one_line(out, "serve", r"Refusing a empty key on 0\.0\.0\.0", code=2)
    p = procs([sys.executable, "-m", "guidist", "serve", "--port", "0", "--no-journal"], key="")
    assert p.stdout is not None
    lines = [p.stdout.readline() for _ in range(2)]
    assert lines[0].startswith("guidist server listening on 127.0.0.1:")
    m = re.match(r"key \(generated\): (\S+)", lines[1])
    assert m and len(m.group(1)) >= 16
    port = int(re.search(r":(\d+)", lines[0]).group(1))  # type: ignore[union-attr]
    assert Client(("127.0.0.1", port), m.group(1)).connect().snapshot().count("queued") == 0
    p.send_signal(signal.SIGTERM)
    p.communicate(timeout=20)
