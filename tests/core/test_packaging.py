"""What pyproject.toml promises: a headless base, the window as an extra, honest metadata."""

from __future__ import annotations

import re

import pytest

from guidist import __version__
from tests.conftest import REPO

tomllib = pytest.importorskip("tomllib")  # Python 3.11+; the rules are the same on 3.10
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
HEAVY = ("pyside6", "pyqtgraph", "numpy")


def _names(requirements: list[str]) -> list[str]:
    return [re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].strip().lower() for r in requirements]


def test_the_base_install_is_headless() -> None:
    base = _names(PROJECT["dependencies"])
    assert not [n for n in base if n.startswith(HEAVY)], base


def test_the_gui_extra_has_the_window_and_keeps_the_pin() -> None:
    gui = PROJECT["optional-dependencies"]["gui"]
    assert sorted(_names(gui)) == ["numpy", "pyqtgraph", "pyside6-essentials"]
    pyside = next(r for r in gui if r.lower().startswith("pyside6-essentials"))
    assert "<6.12" in pyside  # 6.12.0 aborts on Python 3.11 (see the comment beside it)
    text = (REPO / "pyproject.toml").read_text()
    assert "none_dealloc" in text  # the reason stays next to the pin


def test_the_test_extra_includes_the_gui_and_ci_installs_it() -> None:
    test = PROJECT["optional-dependencies"]["test"]
    assert any(re.fullmatch(r"guidist\[[^\]]*\bgui\b[^\]]*\]", r) for r in test), test
    ci = (REPO / ".ci" / "run").read_text()
    assert 'pip install ".[test]"' in ci


def test_metadata() -> None:
    assert PROJECT["license"] == "MIT" and (REPO / "LICENSE").read_text().startswith("MIT")
    assert PROJECT["authors"] and PROJECT["keywords"] and PROJECT["classifiers"]
    assert not [c for c in PROJECT["classifiers"] if c.startswith("License ::")]  # PEP 639
    assert PROJECT["dynamic"] == ["version"] and "version" not in PROJECT
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__)
    assert PROJECT["gui-scripts"] == {"guidist-gui": "guidist.cli:gui_main"}
    assert PROJECT["scripts"] == {"guidist": "guidist.cli:main"}
    assert (REPO / "guidist" / "py.typed").exists()
