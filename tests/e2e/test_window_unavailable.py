"""Without a display, ``guidist`` says so in one line instead of Qt's abort (exit 134)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from guidist.commands.window import NO_DISPLAY
from guidist.core.errors import ExitCode
from tests.conftest import REPO


def _no_display_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env.update(extra)
    return env


def _unused_display_number() -> int:
    return next(n for n in range(917, 999) if not os.path.exists(f"/tmp/.X11-unix/X{n}"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11 displays are Linux's")
@pytest.mark.parametrize("argv, extra", [
    ([], {}),
    (["--demo"], {}),
    (["gui", "--port", "0"], {}),
    ([], {"DISPLAY": f":{_unused_display_number()}"}),  # set, but no X server behind it
], ids=["no-args", "demo", "gui", "dead-display"])
def test_no_display_is_one_line(argv: list[str], extra: dict[str, str]) -> None:
    out = subprocess.run([sys.executable, "-m", "guidist", *argv], cwd=REPO,
                         env=_no_display_env(**extra), capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, timeout=60)
    assert out.returncode == ExitCode.UNSUPPORTED, out
    assert out.stderr.strip() == f"guidist gui: error: {NO_DISPLAY}"
    assert out.stdout == ""
