"""A worker started with the ``guidist`` command imports task functions from its folder.

Under ``python -m guidist`` Python puts the working directory on sys.path; the installed
``guidist`` script put its bin folder there instead, so "mytasks:f" failed with TaskNotFound.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from guidist.core.client import Client
from guidist.core.protocol import TaskState
from guidist.core.server import ServerProcess
from tests.e2e.conftest import cli_env, connect_arg

SCRIPT = Path(sys.executable).with_name("guidist")
needs_script = pytest.mark.skipif(not SCRIPT.exists(),
                                  reason="the guidist console script is not installed")


def _write_modules(tmp_path: Path) -> tuple[Path, Path]:
    """A project folder with mytasks.py, and a separate src folder with libtasks.py."""
    project, src = tmp_path / "project", tmp_path / "src"
    project.mkdir()
    src.mkdir()
    (project / "mytasks.py").write_text("def triple(x):\n    return 3 * x\n")
    (src / "libtasks.py").write_text("def negate(x):\n    return -x\n")
    return project, src


def _run_worker(server: ServerProcess, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    assert server.address is not None
    return subprocess.run([str(SCRIPT), "worker", "--connect", connect_arg(server.address),
                           "--give-up-after", "10", *args], cwd=cwd, env=cli_env(),
                          capture_output=True, text=True, timeout=90)


@needs_script
@pytest.mark.parametrize("mode", ["inline", "process"])
def test_the_guidist_command_runs_functions_from_its_folder_and_path(
        server: ServerProcess, client: Client, tmp_path: Path, mode: str) -> None:
    project, src = _write_modules(tmp_path)
    mine = client.submit_many("mytasks:triple", range(1, 4))
    theirs = client.submit_many("libtasks:negate", range(1, 4))
    w = _run_worker(server, project, "--path", "../src", "--max-tasks", "6", "--mode", mode,
                    "--concurrency", "1")
    assert w.returncode == 0, w.stderr
    tasks = [client.get_task(i) for i in [*mine, *theirs]]
    assert [t.state for t in tasks] == [TaskState.DONE] * 6, [t.error for t in tasks]
    assert [t.result for t in tasks] == [3, 6, 9, -1, -2, -3]


@needs_script
def test_a_missing_path_folder_is_a_one_line_error(server: ServerProcess,
                                                   tmp_path: Path) -> None:
    w = _run_worker(server, tmp_path, "--path", "no-such-dir")
    assert w.returncode == 2 and "Traceback" not in w.stderr
    assert w.stderr.strip().endswith("no-such-dir: no such folder")


def test_the_module_form_keeps_working(server: ServerProcess, client: Client, tmp_path: Path,
                                       procs: Callable[..., subprocess.Popen]) -> None:
    project, _ = _write_modules(tmp_path)
    ids = client.submit_many("mytasks:triple", [5])
    assert server.address is not None
    w = subprocess.run([sys.executable, "-m", "guidist", "worker", "--connect",
                        connect_arg(server.address), "--max-tasks", "1"], cwd=project,
                       env=cli_env(), capture_output=True, text=True, timeout=60)
    assert w.returncode == 0, w.stderr
    assert client.get_task(ids[0]).result == 15
