"""guidist.core is Qt-free: importing every core module (and the CLI) loads no Qt at all,
and no numpy either: a headless install (no gui extra) has neither."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO

CHECK = r"""
import importlib, json, pkgutil, sys
import guidist.core
names = sorted(m.name for m in pkgutil.walk_packages(guidist.core.__path__, "guidist.core."))
for name in names:
    importlib.import_module(name)
import guidist, guidist.cli, guidist.commands
for m in pkgutil.iter_modules(guidist.commands.__path__, "guidist.commands."):
    importlib.import_module(m.name)
bad = sorted(m for m in sys.modules
             if m.split(".")[0] in {"PySide6", "pyqtgraph", "shiboken6", "PyQt5", "PyQt6",
                                    "numpy"})
print(json.dumps({"modules": names, "qt": bad}))
"""


def test_importing_the_core_loads_no_qt() -> None:
    out = subprocess.run([sys.executable, "-c", CHECK], cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert "guidist.core.backends.memory.broker" in report["modules"]
    assert "guidist.core.server" in report["modules"]
    assert report["qt"] == []
