"""The remote-worker texts, and the stdlib worker script run against a real server."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from guidist.core.client import Client
from guidist.gui.remote_script import loopback_warning, worker_command, worker_script

from ..conftest import TEST_KEY, wait_for


def test_worker_command_quotes_the_key() -> None:
    assert worker_command("10.0.0.5", 5000, "abc def") == \
        "GUIDIST_AUTHKEY='abc def' guidist worker --connect 10.0.0.5:5000"


def test_script_is_stdlib_only_and_tutorial_shaped() -> None:
    text = worker_script("10.0.0.5", 5000, "k3y-secret")
    tree = ast.parse(text)
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree)
                 if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= set(sys.stdlib_module_names)
    for piece in ("QueueManager.register(\"get_task_queue\")", "task.get(timeout=1)",
                  "except queue.Empty", "'k3y-secret'", "\"10.0.0.5\""):
        assert piece.replace("\"", "'") in text.replace("\"", "'"), piece
    assert "k3y-secret" not in worker_script("h", 1, "k3y-secret", embed_key=False)


def test_loopback_warning() -> None:
    assert "127.0.0.1" in loopback_warning("127.0.0.1")
    assert loopback_warning("0.0.0.0") is None
    assert loopback_warning("192.168.1.7") is None


def test_the_script_works_for_a_real_server(server, tmp_path: Path) -> None:
    host, port = server.address
    script = tmp_path / "guidist_worker.py"
    script.write_text(worker_script(host, port, TEST_KEY))
    with Client(server.address, TEST_KEY) as client:
        client.submit_many("square", [(n,) for n in range(1, 21)])
        proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        try:
            wait_for(lambda: client.snapshot().count("done") == 20, timeout=60,
                     message="the stdlib worker to finish 20 tasks")
            results = {t.args[0]: t.result for t in client.list_tasks("done", 0, 100).tasks}
            assert results == {n: f"{n} * {n} = {n * n}" for n in range(1, 21)}
        finally:
            proc.terminate()
            proc.wait(10)
            proc.stdout.close()
