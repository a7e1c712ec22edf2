"""The composition root: logging, the exception hook, QApplication, and the wiring of the window.

``main(args)`` is what ``guidist gui`` (and plain ``guidist``) runs. ``build_window(args)`` does
all the wiring without entering the event loop, so tests, benchmarks and the screenshot script
drive the very window a person gets.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import logging
import os
import signal
import sys
import threading
import traceback
from pathlib import Path
from types import TracebackType
from typing import Any

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtGui import QGuiApplication, QIcon
from PySide6.QtWidgets import QApplication, QMessageBox

from ..core.backends.base import DEFAULTS
from ..core.security import generate_key
from .controller import Controller
from .dialogs import Preferences
from .main_window import MainWindow
from .scheduling import request_thread_slice
from .state import POLL_INTERVAL_MS

log = logging.getLogger(__name__)

KEY_ENV = "GUIDIST_AUTHKEY"
#: guidist.desktop, as installed from resources/ (see the README).
DESKTOP_FILE_NAME = "guidist"
ORGANIZATION = "guidist"
APPLICATION = "guidist"
RESOURCES = Path(__file__).resolve().parent.parent / "resources"


def app_icon() -> QIcon:
    """The application icon from guidist/resources (SVG, with PNG sizes as a fallback)."""
    icon = QIcon()
    for size in (64, 256):
        png = RESOURCES / f"guidist-{size}.png"
        if png.exists():
            icon.addFile(str(png))
    svg = RESOURCES / "guidist.svg"
    if svg.exists():
        icon.addFile(str(svg))
    return icon


def journal_available() -> bool:
    """True when this install has the SQLite journal (the window then journals by default)."""
    try:
        return importlib.util.find_spec("guidist.core.backends.memory.journal") is not None
    except (ImportError, ValueError):
        return False


def default_settings() -> QSettings:
    """The per-user settings store."""
    return QSettings(ORGANIZATION, APPLICATION)


def saved_preferences(settings: QSettings) -> Preferences:
    """The preferences a person chose, as saved (no command-line option changes these)."""
    def value(key: str, default: Any, kind: type) -> Any:
        raw = settings.value(key, default)
        try:
            if kind is bool:
                return raw if isinstance(raw, bool) else str(raw).lower() in ("1", "true",
                                                                               "yes")
            return kind(raw)
        except (TypeError, ValueError):
            return default

    available = journal_available()
    prefs = Preferences(
        lease_timeout=value("server/lease_timeout", DEFAULTS.lease_timeout, float),
        max_attempts=value("server/max_attempts", DEFAULTS.max_attempts, int),
        use_journal=value("server/use_journal", available, bool),
        journal_path=str(settings.value("server/journal_path", "") or ""),
        autostart=value("server/autostart", False, bool),
        metrics_port=value("server/metrics_port", 0, int),
    )
    if not prefs.journal_path and available:
        from ..core.paths import default_journal_path

        prefs.journal_path = str(default_journal_path())
    return prefs


def session_preferences(saved: Preferences, args: argparse.Namespace) -> Preferences:
    """What this run uses: the saved preferences with the command line applied. A copy: a
    --demo or --no-journal run must not turn the journal off for every later window (closing
    a demo window saved server/use_journal=false)."""
    prefs = dataclasses.replace(saved)
    if getattr(args, "lease_timeout", None):
        prefs.lease_timeout = float(args.lease_timeout)
    if getattr(args, "max_attempts", None):
        prefs.max_attempts = int(args.max_attempts)
    journal = getattr(args, "journal", None)
    if journal:
        prefs.use_journal, prefs.journal_path = True, str(journal)
    elif getattr(args, "no_journal", False) or getattr(args, "demo", False):
        # The demo's load is not worth keeping: it would come back at the next start.
        prefs.use_journal = False
    return prefs


def load_preferences(settings: QSettings, args: argparse.Namespace) -> Preferences:
    """The preferences this run uses: the saved ones with the command line applied."""
    return session_preferences(saved_preferences(settings), args)


def paint_on_the_gui_thread() -> None:
    """Keep Qt's raster painting on the GUI thread (unless the environment says otherwise).

    Qt hands fills of more than ~96 spans to a pool of its own threads and waits for them; a
    plot's vertical grid line or curve is hundreds of 1-pixel spans. With every core busy
    (the server and the workers under full load) the GUI thread then waited for those threads
    to get a core: paints of 5 ms of CPU took 25 ms. Read by Qt at its first paint.
    """
    os.environ.setdefault("QT_NO_GUI_THREADPOOL", "1")


def build_window(args: argparse.Namespace, settings: QSettings | None = None,
                 poll_ms: int | None = None) -> MainWindow:
    """Wire controller and window from command-line arguments; needs a QApplication.

    ``args`` has host, port, authkey, demo, journal, no_journal (as ``guidist gui`` parses
    them) and may add lease_timeout, max_attempts and poll_ms. The server starts at once with
    --demo, an explicit --port or --authkey, or the "start when the window opens" preference.
    The window is not shown.
    """
    if QApplication.instance() is None:
        raise RuntimeError("build_window needs a QApplication")
    paint_on_the_gui_thread()
    # A short time slice: under full load the GUI thread's long timer gaps are waits for a
    # core, not work; a waking GUI thread then goes before its session's busy processes.
    request_thread_slice()
    settings = settings if settings is not None else default_settings()
    saved = saved_preferences(settings)
    prefs = session_preferences(saved, args)
    controller = Controller(poll_ms=poll_ms or getattr(args, "poll_ms", None)
                            or POLL_INTERVAL_MS)
    window = MainWindow(controller, settings, saved, journal_available(),
                        session_prefs=prefs)
    controller.setParent(window)
    window.setWindowIcon(app_icon())

    explicit_key = getattr(args, "authkey", None) or os.environ.get(KEY_ENV)
    explicit_port = int(getattr(args, "port", 0) or 0)
    try:
        remembered_port = int(settings.value("server/port", 0) or 0)
    except (TypeError, ValueError):
        remembered_port = 0
    host = getattr(args, "host", None) or "127.0.0.1"
    window.server_bar.set_options(host, explicit_port or remembered_port,
                                  explicit_key or generate_key())
    if getattr(args, "demo", False):
        window.start_demo()
    elif explicit_port or getattr(args, "authkey", None) or prefs.autostart:
        window.start_server()
    else:
        window.show_welcome()
    return window


# ---------------------------------------------------------------------- running


def _excepthook(exc_type: type[BaseException], exc: BaseException,
                tb: TracebackType | None) -> None:
    """Log an unhandled exception and show it, instead of silently losing it (or aborting)."""
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    log.critical("unhandled exception", exc_info=(exc_type, exc, tb))
    app = QApplication.instance()
    if app is None or threading.current_thread() is not threading.main_thread():
        return
    box = QMessageBox(QMessageBox.Icon.Critical, "guidist: unexpected error",
                      f"Something went wrong: {exc_type.__name__}: {exc}\n\nThe window keeps "
                      "running; please report this with the details below.")
    box.setDetailedText("".join(traceback.format_exception(exc_type, exc, tb)))
    box.exec()


def install_excepthook() -> None:
    """Route unhandled exceptions (GUI thread and others) to the log and an error dialog."""
    sys.excepthook = _excepthook

    def thread_hook(hook_args: threading.ExceptHookArgs) -> None:
        log.critical("unhandled exception in thread %s",
                     hook_args.thread.name if hook_args.thread else "?",
                     exc_info=(hook_args.exc_type, hook_args.exc_value,
                               hook_args.exc_traceback))

    threading.excepthook = thread_hook


def main(args: argparse.Namespace) -> int:
    """Open the window and run until it closes; returns the exit code."""
    level = logging.WARNING - 10 * min(int(getattr(args, "verbose", 0) or 0), 2)
    logging.getLogger("guidist").setLevel(level)
    QApplication.setOrganizationName(ORGANIZATION)
    QApplication.setApplicationName(APPLICATION)
    # No application display name: Qt appends it to every title ("guidist — host —
    # guidist"); the window's title says "guidist" itself.
    # The desktop file's name: Wayland takes the window's icon and name from it.
    QGuiApplication.setDesktopFileName(DESKTOP_FILE_NAME)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setWindowIcon(app_icon())
    install_excepthook()
    window = build_window(args)
    window.show()

    # Ctrl-C in the terminal, or SIGTERM (a logout, `kill`, a service manager): close as the
    # close button does, without asking: settings saved, workers and server stopped. The
    # handler only sets a flag (it runs between bytecodes, maybe deep in a Qt call); a timer
    # lets the interpreter in a few times a second and acts on it from the event loop.
    stop_requested: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        stop_requested.append(signum)

    def check_signals() -> None:
        if stop_requested:
            log.info("signal %d: closing", stop_requested[0])
            stop_requested.clear()
            window.shutdown()
            app.quit()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)
    wake = QTimer()
    wake.timeout.connect(check_signals)
    wake.start(250)
    try:
        code = app.exec()
    finally:
        wake.stop()
        window.shutdown()
    return int(code)
