"""``guidist status --watch``: the status again and again, redrawn in place on a terminal."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from typing import TextIO

from ..core.errors import GuidistError
from ..core.protocol import Snapshot

_UP = "\x1b[{n}F"  # cursor to the start of the line n lines up
_CLEAR_DOWN = "\x1b[J"  # erase from the cursor to the end of the screen


def watch(snapshot: Callable[[], Snapshot], render: Callable[[Snapshot], list[str]],
          interval: float, out: TextIO | None = None, frames: int | None = None) -> int:
    """Render a snapshot every interval seconds until Ctrl-C (or ``frames`` renders).

    On a terminal each frame replaces the last one; elsewhere (a pipe, a log file) every
    frame is appended, its first line stamped with the time, so the output stays a log.
    A server that stops answering shows as one line and is retried on the next frame.
    """
    out = out or sys.stdout
    tty = out.isatty()
    shown = 0
    n = 0
    try:
        while frames is None or n < frames:
            try:
                lines = render(snapshot())
            except GuidistError as exc:
                lines = [f"status unavailable: {exc}"]
            if tty:
                width = max(20, shutil.get_terminal_size().columns)
                # Lines cut to the width, so each is one screen row and the cursor math holds.
                lines = [time.strftime("%H:%M:%S") + f"  every {interval:g} s, Ctrl-C to stop",
                         *(line[:width - 1] for line in lines)]
                out.write((_UP.format(n=shown) if shown else "") + _CLEAR_DOWN
                          + "\n".join(lines) + "\n")
                shown = len(lines)
            else:
                out.write(time.strftime("%H:%M:%S ") + "\n".join(lines) + "\n")
            out.flush()
            n += 1
            if frames is None or n < frames:
                time.sleep(interval)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a watch ends: not a failure
    return 0
