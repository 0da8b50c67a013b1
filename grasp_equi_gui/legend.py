"""The "Show" panel: how many grasps the view and the list show (top-N slider), and the colour
legend of the 3D view (score scale, selected, unscored). It stays usable while sweeping and in
live view: it changes only what is shown, never the scene."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGroupBox, QHBoxLayout, QLabel, QSlider, QVBoxLayout

from grasp_equi_gui.colors import SELECTED, UNSCORED, hex_color, score_rgba

DEFAULT_TOP_N = 10
LEGEND_STOPS = (0.0, 0.5, 1.0)  # scores whose colours the gradient bar shows


def legend_gradient() -> str:
    """Qt style sheet of the score bar: the view's own colours at ``LEGEND_STOPS``."""
    import numpy as np

    colours = score_rgba(np.array(LEGEND_STOPS), len(LEGEND_STOPS))
    stops = ", ".join(f"stop:{s} {hex_color(c)}" for s, c in zip(LEGEND_STOPS, colours))
    return f"background: qlineargradient(x1:0, y1:0, x2:1, y2:0, {stops}); border: 1px solid #444;"


class ShowPanel(QGroupBox):
    """``top`` (QSlider, 1..G; its maximum shows every grasp) and the legend labels."""

    def __init__(self, parent=None):
        super().__init__("Show", parent)
        self.top = QSlider(Qt.Orientation.Horizontal)
        self.top.setRange(1, 1)
        self.top.setToolTip("show only the N best-scored grasps (the selected one always stays)")
        self.top_label = QLabel()
        self.bar = QLabel()
        self.bar.setFixedHeight(12)
        self.bar.setStyleSheet(legend_gradient())
        ends = QHBoxLayout()
        for text, align in (("0 falls", Qt.AlignmentFlag.AlignLeft), ("0.5", Qt.AlignmentFlag.AlignCenter),
                            ("1 held", Qt.AlignmentFlag.AlignRight)):
            label = QLabel(text)
            label.setAlignment(align)
            ends.addWidget(label, 1)
        self.keys = QLabel(f"<span style='color:{hex_color(SELECTED)}'>■</span> selected grasp &nbsp; "
                           f"<span style='color:{hex_color(UNSCORED)}'>■</span> scoring…<br>"
                           "colour = the default answer (P(held)); hover a contact for all")
        self.keys.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.top, 1)
        row.addWidget(self.top_label)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.bar)
        layout.addLayout(ends)
        layout.addWidget(self.keys)
        self.set_count(0)

    def set_count(self, count: int) -> None:
        """Adapt the slider to ``count`` grasps, keeping the user's N (default 10)."""
        previous = self.top.value() if self.top.maximum() > 1 else DEFAULT_TOP_N
        self.top.blockSignals(True)
        self.top.setRange(1, max(1, count))
        self.top.setValue(min(previous, max(1, count)))
        self.top.blockSignals(False)
        self.show_value()

    def value(self) -> int | None:
        """N, or None when every grasp is shown."""
        return None if self.top.value() >= self.top.maximum() else self.top.value()

    def show_value(self) -> None:
        n = self.value()
        self.top_label.setText(f"all {self.top.maximum()}" if n is None else f"top {n}")
