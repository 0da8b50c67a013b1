"""The grasp list: one row per visible grasp (the scene's top-N filter), best first; selecting a
row selects it in the scene; hovering a row shows its scores."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

from grasp_equi_gui.colors import hex_color, score_rgba
from grasp_equi_gui.models import BASELINE, EQUIVARIANT
from grasp_equi_gui.scene import PRIMARY_KEYS, Scene
from grasp_equi_gui.scoring import STD_SUFFIX

# columns, when the scene has those scores (the first one sorts); last the ensembles' spreads
SCORE_KEYS = (*PRIMARY_KEYS, EQUIVARIANT + STD_SUFFIX, BASELINE + STD_SUFFIX)
HEADERS = {EQUIVARIANT + STD_SUFFIX: "σ", BASELINE + STD_SUFFIX: "baseline σ"}  # short: the columns are narrow


class GraspTable(QTableWidget):
    """Sorted by the first available score (the node's in live mode, else the equivariant one)."""

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

    def sort_key(self) -> str | None:
        return next((k for k in SCORE_KEYS if k in self.scene.scores), None)

    def refresh(self) -> None:
        scene = self.scene
        keys = [k for k in SCORE_KEYS if k in scene.scores and len(scene.scores[k]) == len(scene.grasps)]
        sort_key = scene.primary_key()
        self.row_grasps = scene.visible()
        self._filling = True
        self.setColumnCount(2 + max(len(keys), 1))
        self.setHorizontalHeaderLabels(["#", "K"] + ([HEADERS.get(k, k) for k in keys] or ["score"]))
        self.setRowCount(len(self.row_grasps))
        colors = score_rgba(scene.scores.get(sort_key) if sort_key else None, len(scene.grasps))
        for row, g in enumerate(self.row_grasps):
            cells = [str(g), str(len(scene.grasps[g]))]
            cells += [f"{scene.scores[k][g]:.4f}" for k in keys] if keys else ["scoring…"]
            tip = f"grasp #{g}: " + (", ".join(f"{k} {scene.scores[k][g]:.4f}" for k in keys) or "scoring…")
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
