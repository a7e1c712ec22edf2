"""A headless install: ``pip install .`` in a fresh virtual environment brings no Qt, no numpy.

The copy of the project is installed with the machine's ordinary pip configuration (its
package index or pip's cache: psutil, platformdirs and the build backend). Then the installed
commands run a real server, submit, a worker and status, and ``guidist gui`` says in one line
how to get the window.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from guidist import __version__
from guidist.commands.window import GUI_HINT
from guidist.core.errors import ExitCode
from tests.conftest import REPO, TEST_KEY

pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    """The environment without this test run's virtual environment or import paths."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "DISPLAY", "WAYLAND_DISPLAY",
                        "QT_QPA_PLATFORM", "GUIDIST_AUTHKEY")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _copy_project(dest: Path) -> Path:
    """What an sdist would hold: the packaging files and the package, no caches, no .venv."""
    dest.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, dest / name)
    shutil.copytree(REPO / "guidist", dest / "guidist",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


@pytest.fixture(scope="module")
def headless_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with ``pip install .`` of a copy of this project; its bin folder."""
    root = tmp_path_factory.mktemp("install")
    project = _copy_project(root / "project")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    out = subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "--quiet",
                          str(project)], cwd=root, env=_env(), capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    return bin_dir


def _run(bin_dir: Path, *argv: str, cwd: Path, key: str | None = None,
         timeout: float = 60) -> subprocess.CompletedProcess:
    env = _env()
    if key is not None:
        env["GUIDIST_AUTHKEY"] = key
    return subprocess.run([str(bin_dir / argv[0]), *argv[1:]], cwd=cwd, env=env,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=timeout)


def test_the_base_install_has_no_qt_and_no_numpy(headless_venv: Path, tmp_path: Path) -> None:
    check = ("import importlib.util, json, sys\n"
             "import guidist, guidist.cli, guidist.core.client, guidist.core.server, "
             "guidist.core.worker\n"
             "print(json.dumps({'missing': [m for m in ('PySide6', 'pyqtgraph', 'numpy') "
             "if importlib.util.find_spec(m) is None], 'file': guidist.__file__, "
             "'version': guidist.__version__}))\n")
    out = _run(headless_venv, "python", "-c", check, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["missing"] == ["PySide6", "pyqtgraph", "numpy"]
    assert str(headless_venv.parent) in report["file"]  # the installed copy, not this checkout
    assert report["version"] == __version__
    assert _run(headless_venv, "guidist", "--version", cwd=tmp_path).stdout.strip() == \
        f"guidist {__version__}"
    assert (headless_venv / "guidist-gui").exists() or os.name == "nt"


def test_worker_help_works_and_gui_prints_the_hint(headless_venv: Path, tmp_path: Path) -> None:
    help_out = _run(headless_venv, "guidist", "worker", "--help", cwd=tmp_path)
    assert help_out.returncode == 0 and "--connect HOST:PORT" in help_out.stdout
    for argv in (["guidist", "gui"], ["guidist"], ["guidist", "--demo"], ["guidist-gui"]):
        out = _run(headless_venv, *argv, cwd=tmp_path)
        assert out.returncode == ExitCode.UNSUPPORTED, (argv, out)
        assert out.stderr.strip() == f"guidist gui: error: {GUI_HINT}", argv
        assert "Traceback" not in out.stderr


def test_the_headless_install_serves_and_works(headless_venv: Path, tmp_path: Path) -> None:
    server = subprocess.Popen([str(headless_venv / "guidist"), "serve", "--port", "0",
                               "--no-journal", "--interval", "60"], cwd=tmp_path,
                              env={**_env(), "GUIDIST_AUTHKEY": TEST_KEY},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        m = re.match(r"guidist server listening on (127\.0\.0\.1:\d+)", first)
        assert m, first
        where = m.group(1)
        sub = _run(headless_venv, "guidist", "submit", "--connect", where, "--range", "1..50",
                   cwd=tmp_path, key=TEST_KEY)
        assert sub.returncode == 0, sub.stderr
        work = _run(headless_venv, "guidist", "worker", "--connect", where, "--max-tasks", "50",
                    cwd=tmp_path, key=TEST_KEY)
        assert work.returncode == 0, work.stderr
        status = _run(headless_venv, "guidist", "status", "--connect", where, "--json",
                      cwd=tmp_path, key=TEST_KEY)
        assert json.loads(status.stdout)["done"] == 50
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGINT)
        try:
            server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.communicate(timeout=10)
    assert server.returncode == 0
