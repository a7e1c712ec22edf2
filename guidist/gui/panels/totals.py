"""The totals panel: the server's counters in large type, readable from across the room."""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt
from PySide6.QtWidgets import QGridLayout, QGroupBox, QLabel, QVBoxLayout, QWidget

from ...core.protocol import Snapshot
from ..style import WORKERS_COLOR, fmt_int, muted, state_color, text_color, tile_background

#: (key, caption, colour: a state name, "" for the text colour, or "#rrggbb"), tooltip.
_TILES = (
    ("queued", "Queued", "queued", "Tasks waiting for a worker"),
    ("running", "Running", "running", "Tasks a worker holds now"),
    ("done", "Done", "done", "Tasks that finished without an error"),
    ("failed", "Failed", "failed", "Tasks that raised an error (Tasks → failed shows them)"),
    ("dead", "Dead", "dead", "Tasks whose worker died or hung holding them, too many times"),
    ("cancelled", "Cancelled", "cancelled", "Queued tasks cancelled or purged"),
    ("submitted", "Submitted", "", "Tasks queued since the server started"),
    ("requeued", "Requeued", "running",
     "Tasks put back in the queue: a worker's lease expired (it died or hung), or a person "
     "retried them"),
    ("rate", "Tasks/s", WORKERS_COLOR, "Tasks finished per second over the last 10 seconds"),
)


class TotalsPanel(QGroupBox):
    """Nine counters: one per task state, submitted, requeued and throughput."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Totals", parent)
        self.setObjectName("totalsPanel")
        self.values: dict[str, QLabel] = {}
        self.captions: dict[str, QLabel] = {}
        self._tiles: dict[str, QWidget] = {}
        grid = QGridLayout()
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(6)
        for i, (key, title, _color, tip) in enumerate(_TILES):
            tile = QWidget()
            tile.setObjectName(f"total_{key}")
            tile.setToolTip(tip)
            v = QVBoxLayout(tile)
            v.setContentsMargins(6, 3, 6, 3)
            v.setSpacing(0)
            value = QLabel("–")
            value.setObjectName(f"totalValue_{key}")
            value.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
            caption = QLabel(title)
            caption.setObjectName(f"totalCaption_{key}")
            v.addWidget(value)
            v.addWidget(caption)
            grid.addWidget(tile, i // 3, i % 3)
            self.values[key] = value
            self.captions[key] = caption
            self._tiles[key] = tile
        self.demo_note = QLabel()
        self.demo_note.setObjectName("totalsDemoNote")
        self.demo_note.setWordWrap(True)
        self.demo_note.hide()
        layout = QVBoxLayout(self)
        layout.addLayout(grid)
        layout.addWidget(self.demo_note)
        self._restyle()

    def set_snapshot(self, snap: Snapshot | None) -> None:
        """Show a snapshot's counters (dashes when there is no server)."""
        if snap is None:
            for label in self.values.values():
                label.setText("–")
            return
        for key, label in self.values.items():
            if key == "submitted":
                value = fmt_int(snap.submitted) if snap.kind == "guidist" else "–"
            elif key == "requeued":
                value = fmt_int(snap.requeued) if snap.kind == "guidist" else "–"
            elif key == "rate":
                value = f"{snap.throughput:,.0f}" if snap.kind == "guidist" else "–"
            elif snap.kind == "classic" and key != "queued":
                value = "–"
            else:
                value = fmt_int(snap.count(key))
            label.setText(value)

    def set_demo(self, on: bool, deliberate: str = "fail") -> None:
        """While the demo runs, say that its failures are deliberate (red is not a fault)."""
        self.captions["failed"].setText("Failed (demo: on purpose)" if on else "Failed")
        self.demo_note.setText(f"The demo queues <code>{deliberate}</code> tasks that fail on "
                               "purpose, to show what failures look like." if on else "")
        self.demo_note.setVisible(on)

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 (Qt name)
        """Follow the palette (a dark theme gets dark tiles)."""
        if event.type() == QEvent.Type.PaletteChange:
            self._restyle()
        super().changeEvent(event)

    def _restyle(self) -> None:
        grey, background = muted(), tile_background()
        for key, _title, color, _tip in _TILES:
            shade = state_color(color) if color else text_color()
            self.values[key].setStyleSheet(f"color:{shade}; font-size:13pt; font-weight:600;")
            self.captions[key].setStyleSheet(f"color:{grey}; font-size:8pt;")
            self._tiles[key].setStyleSheet(f"#total_{key} {{ background:{background}; "
                                           f"border-left:3px solid {shade}; }}")
        self.demo_note.setStyleSheet(f"color:{grey}; font-size:8pt;")
