"""Where guidist keeps its files: the per-user data folder and the default journals."""

from __future__ import annotations

from pathlib import Path


def journal_dir() -> Path:
    """The per-user folder that holds the default journals."""
    import platformdirs

    return Path(platformdirs.user_data_dir("guidist", appauthor=False))


def default_journal_path(name: str = "window") -> Path:
    """The default journal of one server: "window", or "serve-PORT" for ``guidist serve``.

    One file per server, so the window and a headless server (or two on different ports) never
    share one; restarting on the same port finds its own journal again.
    """
    return journal_dir() / f"{name}.sqlite"
