"""Column widths that fit what the columns hold.

Fixed pixel widths cut headers ("Subm…", "clas…") and made both tables scroll sideways. Each
column starts as wide as its header or a typical value, whichever is wider, and grows (never
shrinks, so it does not jump while rows change) to fit the rows on screen. Measuring only the
visible rows keeps this cheap for a virtual table of a million tasks, unlike
``QHeaderView.ResizeToContents``, which measures on every change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QStyle, QStyleOptionHeader, QTableView

#: Room for the cell's margins (and a sort arrow in the header).
_CELL_PADDING = 14
#: No column is made wider than this by its content (the person can still widen it).
MAX_AUTO_WIDTH = 360


def header_width(table: QTableView, column: int) -> int:
    """Pixels the header of column needs, sort indicator included."""
    header = table.horizontalHeader()
    text = str(table.model().headerData(column, Qt.Orientation.Horizontal) or "")
    opt = QStyleOptionHeader()
    opt.initFrom(header)
    opt.text = text
    size = header.style().sizeFromContents(QStyle.ContentsType.CT_HeaderSection, opt,
                                           header.fontMetrics().size(0, text), header)
    arrow = header.style().pixelMetric(QStyle.PixelMetric.PM_HeaderMarkSize, None, header)
    return size.width() + arrow + 4


def text_width(table: QTableView, text: str) -> int:
    """Pixels a cell needs for text."""
    return table.fontMetrics().horizontalAdvance(text) + _CELL_PADDING


def fit_columns(table: QTableView, samples: Mapping[int, str]) -> None:
    """Set each column to the wider of its header and its sample value."""
    header = table.horizontalHeader()
    last = table.model().columnCount() - 1
    for column in range(table.model().columnCount()):
        if column == last and header.stretchLastSection():
            continue
        width = max(header_width(table, column), text_width(table, samples.get(column, "")))
        header.resizeSection(column, min(width, MAX_AUTO_WIDTH))


def widen_to_rows(table: QTableView, columns: Iterable[int]) -> None:
    """Widen columns (never narrow them) to fit the display text of the rows on screen."""
    model = table.model()
    rows = model.rowCount()
    if rows == 0:
        return
    first = max(table.rowAt(0), 0)
    last = table.rowAt(table.viewport().height() - 1)
    last = rows - 1 if last < 0 else last
    header = table.horizontalHeader()
    for column in columns:
        need = 0
        for row in range(first, min(last, first + 200) + 1):
            value = model.data(model.index(row, column), Qt.ItemDataRole.DisplayRole)
            if value:
                need = max(need, text_width(table, str(value)))
        if need > header.sectionSize(column):
            header.resizeSection(column, min(need, MAX_AUTO_WIDTH))


def fill_first_column(table: QTableView) -> None:
    """Give the first column what the others leave, but never less than its header and its
    cells need (Qt's own measures): a stretched name column shrank below its title ("Functio")
    once the numbers beside it grew. Too narrow a table scrolls sideways instead."""
    header = table.horizontalHeader()
    others = sum(header.sectionSize(c) for c in range(1, header.count()))
    need = max(header.sectionSizeHint(0), table.sizeHintForColumn(0))
    header.resizeSection(0, max(need, table.viewport().width() - others))
