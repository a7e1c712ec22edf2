"""Render the desktop icons in resources/icons from the package's SVG (guidist/resources).

    python scripts/render_icons.py

The window loads its icon from the package data at run time; the freedesktop icon theme
layout under resources/icons (hicolor/SIZExSIZE/apps/guidist.png and scalable/apps/
guidist.svg) is what a desktop installs. Run this after changing guidist/resources/guidist.svg.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO / "guidist" / "resources" / "guidist.svg"
THEME = REPO / "resources" / "icons" / "hicolor"
#: The sizes desktops look for (the freedesktop icon theme's usual set).
SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)


def main() -> int:
    """Copy the SVG and render one PNG per size."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    app = QGuiApplication(sys.argv[:1])  # noqa: F841 - painting needs an application
    scalable = THEME / "scalable" / "apps" / "guidist.svg"
    scalable.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SOURCE, scalable)
    renderer = QSvgRenderer(str(SOURCE))
    if not renderer.isValid():
        print(f"cannot read {SOURCE}", file=sys.stderr)
        return 1
    for size in SIZES:
        image = QImage(size, size, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        renderer.render(painter)
        painter.end()
        out = THEME / f"{size}x{size}" / "apps" / "guidist.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        if not image.save(str(out), "PNG"):
            print(f"could not write {out}", file=sys.stderr)
            return 1
        print(f"wrote {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
