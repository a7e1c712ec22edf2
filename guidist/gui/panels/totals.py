"""The totals panel: the server's counters in large type, readable from across the room."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGridLayout, QGroupBox, QLabel, QVBoxLayout, QWidget

from ...core.protocol import Snapshot
from ..style import STATE_COLORS, WORKERS_COLOR, fmt_int

_TILES = (
    ("queued", "Queued", STATE_COLORS["queued"]),
    ("running", "Running", STATE_COLORS["running"]),
    ("done", "Done", STATE_COLORS["done"]),
    ("failed", "Failed", STATE_COLORS["failed"]),
    ("dead", "Dead", STATE_COLORS["dead"]),
    ("cancelled", "Cancelled", STATE_COLORS["cancelled"]),
    ("submitted", "Submitted", "#333333"),
    ("requeued", "Requeued", STATE_COLORS["running"]),
    ("rate", "Tasks/s", WORKERS_COLOR),
)


class TotalsPanel(QGroupBox):
    """Nine counters: one per task state, submitted, requeued and throughput."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Totals", parent)
        self.setObjectName("totalsPanel")
        self.values: dict[str, QLabel] = {}
        grid = QGridLayout()
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(6)
        for i, (key, title, color) in enumerate(_TILES):
            tile = QWidget()
            tile.setObjectName(f"total_{key}")
            v = QVBoxLayout(tile)
            v.setContentsMargins(6, 3, 6, 3)
            v.setSpacing(0)
            value = QLabel("–")
            value.setObjectName(f"totalValue_{key}")
            value.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
            value.setStyleSheet(f"color:{color}; font-size:13pt; font-weight:600;")
            caption = QLabel(title)
            caption.setStyleSheet("color:#666; font-size:8pt;")
            v.addWidget(value)
            v.addWidget(caption)
            tile.setStyleSheet(f"#total_{key} {{ background:#f7f8fa; border-left:3px solid "
                               f"{color}; }}")
            grid.addWidget(tile, i // 3, i % 3)
            self.values[key] = value
        layout = QVBoxLayout(self)
        layout.addLayout(grid)
        layout.addStretch(1)

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
