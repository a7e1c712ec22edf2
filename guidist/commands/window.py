"""Whether the window can open here, said in one line before Qt is even imported.

Without the gui extra, ``import PySide6`` fails; without a display, Qt's xcb plugin aborts the
process (exit 134, a core dump and a page of advice). Both are checked first, cheaply.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
from collections.abc import Mapping

from .. import __version__

GUI_MODULES = ("PySide6", "pyqtgraph", "numpy")
GUI_HINT = ("the window needs the gui extra (PySide6, pyqtgraph, numpy): run pip install "
            f"\".[gui]\" in a copy of the repository, or pip install \"./guidist-{__version__}-"
            "py3-none-any.whl[gui]\" with a built wheel; serve, worker, submit and status work "
            "without it")
NO_DISPLAY = "no display: run under a desktop session or set QT_QPA_PLATFORM=offscreen"
_X11_PLATFORMS = ("linux", "freebsd", "openbsd", "netbsd", "dragonfly", "sunos")


def missing_gui_modules() -> list[str]:
    """The gui extra's modules this interpreter cannot import."""
    missing = []
    for name in GUI_MODULES:
        try:
            if importlib.util.find_spec(name) is None:
                missing.append(name)
        except (ImportError, ValueError):
            missing.append(name)
    return missing


def _local_x_display_answers(display: str) -> bool:
    """False only for a local display (":N") whose X server socket nobody listens on."""
    host, _, rest = display.rpartition(":")
    number = rest.split(".", 1)[0]
    if host not in ("", "unix") or not number.isdigit():
        return True  # remote, forwarded (localhost:10) or unusual: let Qt try
    path = f"/tmp/.X11-unix/X{number}"
    # Linux X servers listen on an abstract socket too, which exists without the file.
    candidates = ["\0" + path, path] if sys.platform.startswith("linux") else [path]
    for address in candidates:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(1.0)
        try:
            s.connect(address)
            return True
        except OSError:
            continue
        finally:
            s.close()
    return False


def display_problem(env: Mapping[str, str] | None = None,
                    platform: str | None = None) -> str | None:
    """Why Qt would find no display here, or None when it should (or when we cannot tell)."""
    env = os.environ if env is None else env
    platform = platform or sys.platform
    if not platform.startswith(_X11_PLATFORMS):
        return None  # Windows and macOS always have their own window system
    if env.get("QT_QPA_PLATFORM") or env.get("WAYLAND_DISPLAY"):
        return None  # the user chose a platform (offscreen, vnc...) or runs Wayland
    display = env.get("DISPLAY", "")
    if not display or not _local_x_display_answers(display):
        return NO_DISPLAY
    return None
