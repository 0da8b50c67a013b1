"""The grasp list: one row per visible grasp (the scene's top-N filter), best first; selecting a
row selects it in the scene; hovering a row shows its scores."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

from grasp_equi import keys
from grasp_equi_gui.colors import hex_color, score_rgba
from grasp_equi_gui.models import BASELINE, EQUIVARIANT
from grasp_equi_gui.scene import PRIMARY_KEYS, Scene
from grasp_equi_gui.scoring import STD_SUFFIX, output_key

SPREAD_KEYS = (EQUIVARIANT + STD_SUFFIX, BASELINE + STD_SUFFIX)  # last columns: the spread of each default answer
HEADERS = {EQUIVARIANT + STD_SUFFIX: "σ", BASELINE + STD_SUFFIX: "baseline σ"}  # short: the columns are narrow
ANSWER_NAMES = {keys.OUTPUT_HELD: "P(held)", keys.OUTPUT_FORCE_CLOSURE: "P(force closure)"}


def score_columns(scores: dict[str, np.ndarray], num_grasps: int) -> list[tuple[str, str]]:
    """``(scene key, header)`` of each score column the table shows: per model (node, equivariant,
    baseline) its answers by name when it has several (P(held), P(force closure)), else its one
    score; then the spreads σ. Only scores with one value per grasp count."""
    present = [k for k, v in scores.items() if len(v) == num_grasps]
    out = []
    for key in PRIMARY_KEYS:
        prefix = "" if key == EQUIVARIANT else key + " "
        named = [(output_key(key, o), prefix + name) for o, name in ANSWER_NAMES.items()
                 if output_key(key, o) in present]
        out += named or ([(key, key)] if key in present else [])
    return out + [(k, HEADERS[k]) for k in SPREAD_KEYS if k in present]


class GraspTable(QTableWidget):
    """Rows ranked by the scene's primary score (the node's in live mode, else the equivariant model's default
    answer); the first score column's text is coloured by its values."""

    def __init__(self, scene: Scene, parent=None):
        super().__init__(parent)
        self.scene = scene
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.verticalHeader().setVisible(False)
        self.itemSelectionChanged.connect(self._on_user_selection)
        self._filling = False
        self.row_grasps: list[int] = []  # grasp index shown in each row
        scene.grasps_changed.connect(self.refresh)
        scene.scores_changed.connect(self.refresh)
        scene.selection_changed.connect(self._on_scene_selection)
        scene.filter_changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        scene = self.scene
        columns = score_columns(scene.scores, len(scene.grasps))
        self.row_grasps = scene.visible()  # ranked by the scene's primary score
        self._filling = True
        self.setColumnCount(2 + max(len(columns), 1))
        self.setHorizontalHeaderLabels(["#", "K"] + ([header for _, header in columns] or ["score"]))
        self.setRowCount(len(self.row_grasps))
        colors = score_rgba(scene.scores[columns[0][0]] if columns else None, len(scene.grasps))  # the first column's
        for row, g in enumerate(self.row_grasps):
            cells = [str(g), str(len(scene.grasps[g]))]
            cells += [f"{scene.scores[k][g]:.4f}" for k, _ in columns] if columns else ["scoring…"]
            tip = f"grasp #{g}: " + (", ".join(f"{h} {scene.scores[k][g]:.4f}" for k, h in columns) or "scoring…")
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(tip)
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                if col == 2:
                    item.setForeground(QBrush(QColor(hex_color(colors[g]))))
                self.setItem(row, col, item)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self._filling = False
        self._show_selection()

    def _on_scene_selection(self) -> None:
        # The selected grasp is always listed, even outside the top N; a new selection can also
        # drop the previous one's extra row (new scores put it outside the top N).
        if self.row_grasps != self.scene.visible():
            self.refresh()
        else:
            self._show_selection()

    def _show_selection(self) -> None:
        sel = self.scene.selected
        self._filling = True
        self.clearSelection()
        if sel is not None and sel in self.row_grasps:
            row = self.row_grasps.index(sel)
            self.selectRow(row)
            self.scrollToItem(self.item(row, 0))
        self._filling = False

    def _on_user_selection(self) -> None:
        if self._filling:
            return
        rows = {i.row() for i in self.selectedIndexes()}
        if rows:
            self.scene.select(self.row_grasps[min(rows)])
