"""Live plots of the selected grasp's score against sweep angle, one curve per model.

Top: each answer (P(held), P(force closure)) on 0..1, where the equivariant curve is flat and the baseline's wanders.
Bottom: |score(angle) - score(first angle)| on a log axis, so even a small wander (an
untrained baseline) stands far above float32 round-off (~1e-7). The max deviation of each
model is printed under the plots.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from grasp_equi import keys
from grasp_equi_gui.models import BASELINE, EQUIVARIANT, ModelSlot
from grasp_equi_gui.scene import Scene
from grasp_equi_gui.scoring import OUTPUT_SEPARATOR, STD_SUFFIX, SWEEP_STEPS, output_key, slot_keys

DEVIATION_FLOOR = 1e-9  # |delta| of exactly 0 is drawn here (a log axis has no 0)
CURVE_STYLE = {EQUIVARIANT: ("#2ecc71", "equivariant"), BASELINE: ("#e67e22", "baseline (not equivariant)"),
               EQUIVARIANT + STD_SUFFIX: ("#5dade2", "equivariant σ (spread of its readouts)"),
               BASELINE + STD_SUFFIX: ("#c0392b", "baseline σ (ensemble spread)"),
               output_key(EQUIVARIANT, keys.OUTPUT_FORCE_CLOSURE): ("#f4d03f", "equivariant P(force closure)")}


def _model_key(key: str) -> str:
    """The model of a curve key (``"equivariant_std"``, ``"equivariant:force_closure"`` -> ``"equivariant"``)."""
    return key.split(OUTPUT_SEPARATOR)[0].removesuffix(STD_SUFFIX)


class SweepPlot(QWidget):
    """``PlotWidget`` + a label with the max deviation of each model; follows the scene."""

    def __init__(self, scene: Scene, slots: list[ModelSlot], parent=None, sweep_steps: int = SWEEP_STEPS):
        super().__init__(parent)
        self.scene = scene
        self.sweep_steps = sweep_steps  # what the idle text promises (the window's --sweep-steps)
        self.slots = {slot.key: slot for slot in slots}
        self.plot = pg.PlotWidget(background="#15171c")
        self.plot.setLabel("bottom", "sweep angle", units="°")
        self.plot.setLabel("left", "P of the selected grasp")
        self.plot.setXRange(0, 360, padding=0.02)
        self.plot.setYRange(0, 1, padding=0.02)
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.plot.addLegend(offset=(-10, -10))  # bottom right, clear of curves near 0.5
        self.deviation_plot = pg.PlotWidget(background="#15171c")
        self.deviation_plot.setLabel("bottom", "sweep angle", units="°")
        self.deviation_plot.setLabel("left", "|Δ score| (log)")
        self.deviation_plot.setLogMode(x=False, y=True)
        self.deviation_plot.setXRange(0, 360, padding=0.02)
        self.deviation_plot.setYRange(-9, 0, padding=0.02)  # log10 units: 1e-9 .. 1
        self.deviation_plot.showGrid(x=True, y=True, alpha=0.25)
        self.deviation_plot.setXLink(self.plot)
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.deviation_curves: dict[str, pg.PlotDataItem] = {}
        for key, (color, name) in CURVE_STYLE.items():
            slot = self.slots.get(_model_key(key))
            if slot is not None and key in slot_keys(slot):  # the model gives that answer (σ, P(force closure))
                trained = "" if slot.trained else " [untrained]"
                self.curves[key] = self.plot.plot([], [], pen=pg.mkPen(color, width=3), name=name + trained,
                                                  symbol="o", symbolSize=4, symbolBrush=color, symbolPen=None)
                self.deviation_curves[key] = self.deviation_plot.plot([], [], pen=pg.mkPen(color, width=2))
        self.deviation_label = QLabel()
        self.deviation_label.setWordWrap(True)
        self.deviation_label.setStyleSheet("font-size: 13px; padding: 4px;")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot, 3)
        layout.addWidget(self.deviation_plot, 2)
        layout.addWidget(self.deviation_label)
        scene.sweep_changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        sweep, grasp = self.scene.sweep, self.scene.selected
        if sweep is None or grasp is None or not sweep.angles_deg:
            for curve in (*self.curves.values(), *self.deviation_curves.values()):
                curve.setData([], [])
            self.deviation_label.setText(self._idle_text())
            return
        lines = [f"<b>Sweep about {sweep.axis_label}</b>, grasp #{grasp}: "
                 f"{len(sweep.angles_deg)}/{sweep.total_steps} orientations"]
        for key, curve in self.curves.items():
            series = sweep.series(key, grasp)
            angles = sweep.angles_deg[:len(series)]
            curve.setData(angles, series)
            delta = np.abs(series - series[0]) if len(series) else series
            self.deviation_curves[key].setData(angles, np.maximum(delta, DEVIATION_FLOOR))
            color = CURVE_STYLE[key][0]
            lines.append(f"<span style='color:{color}'>■</span> {key}: max deviation "
                         f"<b>{sweep.max_deviation(key, grasp):.2e}</b>")
        if BASELINE not in self.curves:
            lines.append(self.slots[BASELINE].label if BASELINE in self.slots else "baseline: not available")
        self.deviation_label.setText("<br>".join(lines))

    def _idle_text(self) -> str:
        text = (f"Press <b>Sweep</b> to turn the object through {self.sweep_steps} orientations and "
                "re-score at each.")
        if BASELINE in self.slots and not self.slots[BASELINE].available:
            text += "<br>" + self.slots[BASELINE].label
        return text

    def curve_data(self, key: str):
        """``(angles, scores)`` arrays currently plotted for ``key`` (for tests and screenshots)."""
        return self.curves[key].getData()
