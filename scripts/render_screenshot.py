"""Render docs/screenshot.png: the real window running the demo, captured mid-run.

Run it under a virtual display so the window is drawn exactly as on a desktop, with a screen
the size of the window (the window arranges its panels for the screen it opens on):

    xvfb-run -a -s "-screen 0 1440x900x24" python scripts/render_screenshot.py --size 1440x900
    xvfb-run -a -s "-screen 0 1024x700x24" python scripts/render_screenshot.py \\
        --size 1024x700 --output docs/screenshot-1024x700.png
    xvfb-run -a -s "-screen 0 1280x800x24" python scripts/render_screenshot.py --dark \\
        --output docs/screenshot-dark.png
    xvfb-run -a -s "-screen 0 1440x900x24" python scripts/render_screenshot.py --insight \
        --seconds 30 --output docs/screenshot-task-stream.png

It starts the demo (embedded server, a process-mode and a thread-mode local worker, a load
that alternates 20 s of CPU-bound primes and 20 s of blocking I/O), waits until the plots hold
both phases, selects a task so the detail pane shows something, grabs
the window with Qt, then stops everything it started. Settings go to a temporary file, so
your own window's settings are untouched.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    """Parse options, run the demo, save the screenshot."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=str(REPO / "docs" / "screenshot.png"))
    parser.add_argument("--seconds", type=float, default=52.0,
                        help="how long the demo runs before the capture (at 52 s the 1-minute "
                        "plots show a CPU phase, an I/O phase and the next CPU phase)")
    parser.add_argument("--size", default="1280x800", help="window size, WIDTHxHEIGHT")
    parser.add_argument("--dark", action="store_true",
                        help="a dark palette (Fusion style), as a dark desktop theme gives")
    parser.add_argument("--insight", action="store_true",
                        help="show the Task stream and the Functions view in the docks")
    opts = parser.parse_args()
    width, height = (int(v) for v in opts.size.lower().split("x"))

    sys.path.insert(0, str(REPO))
    from PySide6.QtCore import QEventLoop, QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from guidist.gui.app import app_icon, build_window

    app = QApplication(sys.argv[:1])
    app.setApplicationName("guidist")
    app.setWindowIcon(app_icon())
    if opts.dark:
        app.setStyle("Fusion")
        app.setPalette(dark_palette())
    with tempfile.TemporaryDirectory() as tmp:
        settings = QSettings(str(Path(tmp) / "settings.ini"), QSettings.Format.IniFormat)
        args = argparse.Namespace(host="127.0.0.1", port=0, authkey=None, demo=True,
                                  journal=None, no_journal=True, verbose=0)
        window = build_window(args, settings)
        window.resize(width, height)
        window.show()
        # Xvfb has no window manager: the window keeps room for a title bar that is not there
        # when it first fits the screen. Give it the whole size asked for.
        window.resize(width, height)
        # Show the launch controls as a person would set them for the CPU-bound preset.
        window.submit_panel.set_preset("primes")
        window.workers_panel.set_mode("process")
        try:
            run_for(app, window, opts.seconds, QEventLoop, QTimer)
            # Freeze the table for the picture and show where running and queued tasks give
            # way to finished ones, with a failed task selected (its traceback in the pane).
            panel = window.tasks_panel
            panel.live_check.setChecked(False)
            snap = window.last_snapshot
            # finished ones follow the running and claimed ones
            start = snap.leased if snap else 0
            panel.refresh()
            chosen = None
            for _ in range(6):  # rows move while tasks finish: look around until found
                page = range(max(0, start - 100), start + 100)
                for r in page:
                    panel.model.task_at(r)
                run_for(app, window, 0.5, QEventLoop, QTimer)
                rows = [(r, panel.model.task_at(r)) for r in page]
                finished = [(r, t) for r, t in rows if t is not None and t.finished]
                failed = [(r, t) for r, t in finished if t.error]
                if failed or finished:
                    chosen = (failed or finished)[0][0]
                    break
                start += 150
            if chosen is not None:
                panel.select_row(chosen)
                panel.table.scrollTo(panel.model.index(max(0, chosen - 3), 0),
                                     panel.table.ScrollHint.PositionAtTop)
            if opts.insight:
                # Where the time goes: the task stream where the workers were, the functions
                # (with the selected one's run-time histogram) where the tasks were.
                window.tabifyDockWidget(window.tasks_dock, window.functions_dock)
                window.stream_dock.raise_()
                window.functions_dock.raise_()
                table = window.functions_panel.table
                for row in range(table.rowCount()):
                    if table.item(row, 0).text() == "primes":
                        table.selectRow(row)
            run_for(app, window, 0.5, QEventLoop, QTimer)
            out = Path(opts.output)
            out.parent.mkdir(parents=True, exist_ok=True)
            if not window.grab().save(str(out), "PNG"):
                print(f"could not write {out}", file=sys.stderr)
                return 1
            print(f"wrote {out} ({len(window.plots.buffer)} seconds of data)")
        finally:
            window.shutdown()
            window.close()
    return 0


def dark_palette():  # noqa: ANN201 - a QPalette, imported late
    """A dark palette like the common desktop dark themes (text light on dark grey)."""
    from PySide6.QtGui import QColor, QPalette

    pal = QPalette()
    role = QPalette.ColorRole
    for r, color in ((role.Window, "#2b2d31"), (role.WindowText, "#e6e6e6"),
                     (role.Base, "#1e1f22"), (role.AlternateBase, "#26282c"),
                     (role.Text, "#e6e6e6"), (role.Button, "#35373c"),
                     (role.ButtonText, "#e6e6e6"), (role.Highlight, "#3d6fb4"),
                     (role.HighlightedText, "#ffffff"), (role.ToolTipBase, "#35373c"),
                     (role.ToolTipText, "#e6e6e6"), (role.PlaceholderText, "#8a8d93"),
                     (role.Link, "#6ea8fe"), (role.BrightText, "#ff6b6b"),
                     # the bevels Fusion draws pressed and checked buttons with
                     (role.Light, "#4a4d53"), (role.Midlight, "#3f4247"),
                     (role.Mid, "#232427"), (role.Dark, "#1b1c1f"), (role.Shadow, "#0e0f10")):
        pal.setColor(r, QColor(color))
    for r in (role.WindowText, role.Text, role.ButtonText):
        pal.setColor(QPalette.ColorGroup.Disabled, r, QColor("#7c7f85"))
    return pal


def run_for(app, window, seconds: float, loop_class, timer_class) -> None:  # noqa: ANN001
    """Run the event loop for a while (the demo needs real time to produce data)."""
    loop = loop_class()
    timer_class.singleShot(int(seconds * 1000), loop.quit)
    started = time.monotonic()
    loop.exec()
    if time.monotonic() - started < seconds * 0.5:  # pragma: no cover - sanity
        print("event loop returned early", file=sys.stderr)


if __name__ == "__main__":  # the server process is spawned: guard the entry point
    sys.exit(main())
