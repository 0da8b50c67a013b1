"""The main window: wires the scene model, the scoring worker, the views and the panels."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QApplication, QFileDialog, QHBoxLayout, QLabel, QMainWindow, QMessageBox,
                               QProgressBar, QSplitter, QVBoxLayout, QWidget)
from scipy.spatial.transform import Rotation

from grasp_equi.geometry import random_rotation
from grasp_equi_gui.grasp_table import GraspTable
from grasp_equi_gui.live import LiveController
from grasp_equi_gui.loaders import FILE_FILTER, load_object_file
from grasp_equi_gui.models import EQUIVARIANT, ModelSlot
from grasp_equi_gui.panels import ControlColumn
from grasp_equi_gui.plot import SweepPlot
from grasp_equi_gui.samples import CLOUD_POINTS, load_grasps_file, make_sample, sample_families, sample_grasps
from grasp_equi_gui.scene import Scene
from grasp_equi_gui.scoring import SWEEP_STEPS, off_object
from grasp_equi_gui.view3d import SceneView
from grasp_equi_gui.workers import ScoringController

DEFAULT_SAMPLE = "bottle"


@contextmanager
def busy_cursor():
    """Wait cursor for the short GUI-thread work (making a sample, reading a file, sampling grasps)."""
    QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
    try:
        yield
    finally:
        QApplication.restoreOverrideCursor()


class MainWindow(QMainWindow):
    """Load an object, sample grasps, turn the object, sweep, and compare the two models."""

    def __init__(self, slots: list[ModelSlot], warnings: list[str] = (), parent=None,
                 sweep_steps: int = SWEEP_STEPS):
        super().__init__(parent)
        self.setWindowTitle("grasp_equi — is the grasp stable, whichever way the object is turned?")
        self.slots = slots
        self.scene = Scene()
        self.controller = ScoringController(self.scene, slots, self)
        self.last_error: QMessageBox | None = None  # the latest error dialog (tests close it)
        self.rng = np.random.default_rng()
        self.cloud_points = CLOUD_POINTS  # surface points on built-in samples
        self.sweep_steps = sweep_steps  # orientations per sweep (--sweep-steps); titles follow it

        families = sample_families()
        self.controls = ControlColumn(families, slots, sweep_steps=sweep_steps)
        if DEFAULT_SAMPLE in families:
            self.controls.object.family.setCurrentText(DEFAULT_SAMPLE)
        self.view = SceneView(self.scene)
        self.plot = SweepPlot(self.scene, slots, sweep_steps=sweep_steps)
        self.table = GraspTable(self.scene)
        self.selection_label = QLabel()
        self.selection_label.setWordWrap(True)
        self._build_layout()
        self._build_status_bar()
        self.live = LiveController(self.scene, self.controller, self.controls.live, self)
        self._connect()
        self._show_selection()
        for message in warnings:
            self.show_error(message, title="Model")

    # ------------------------------------------------------------------ layout
    def _build_layout(self) -> None:
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.plot)
        table_box = QWidget()
        table_layout = QVBoxLayout(table_box)
        table_layout.setContentsMargins(0, 0, 0, 0)
        table_layout.addWidget(self.selection_label)
        table_layout.addWidget(self.table, 1)
        right.addWidget(table_box)
        right.setSizes([420, 300])
        splitter = QSplitter(Qt.Orientation.Horizontal)
        view_box = QWidget()
        view_layout = QVBoxLayout(view_box)
        view_layout.setContentsMargins(0, 0, 0, 0)
        equivariant = next((s for s in self.slots if s.key == EQUIVARIANT), None)
        if equivariant is not None and not equivariant.trained:
            banner = QLabel(f"⚠ {equivariant.label}: scores are not meaningful, but their invariance is real")
            banner.setStyleSheet("background: #7b241c; color: white; font-weight: bold; padding: 4px;")
            banner.setWordWrap(True)
            view_layout.addWidget(banner)
            self.untrained_banner = banner
        view_layout.addWidget(self.view, 1)
        splitter.addWidget(view_box)
        splitter.addWidget(right)
        splitter.setSizes([700, 460])
        central = QWidget()
        layout = QHBoxLayout(central)
        layout.addWidget(self.controls)
        layout.addWidget(splitter, 1)
        self.setCentralWidget(central)

    def _build_status_bar(self) -> None:
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(260)
        self.progress.setVisible(False)
        self.status_label = QLabel("Load a sample or open a mesh / cloud file.")
        self.statusBar().addWidget(self.status_label, 1)
        self.statusBar().addPermanentWidget(self.progress)

    def _connect(self) -> None:
        c = self.controls
        c.object.load_sample.clicked.connect(lambda: self.load_sample())
        c.object.open_file.clicked.connect(lambda: self.open_file())
        c.grasps.sample.clicked.connect(lambda: self.sample_grasps())
        c.grasps.load.clicked.connect(lambda: self.load_grasps())
        c.pose.euler_changed.connect(self._on_euler)
        c.pose.random_pose.clicked.connect(self.random_pose)
        c.pose.reset.clicked.connect(lambda: c.pose.set_euler(0, 0, 0))
        c.sweep.start.clicked.connect(lambda: self.start_sweep())
        c.sweep.stop.clicked.connect(self.controller.cancel_sweep)
        c.show_panel.top.valueChanged.connect(self._on_top_n)
        self.scene.grasps_changed.connect(lambda: c.show_panel.set_count(len(self.scene.grasps)))
        self.scene.grasps_changed.connect(self._on_top_n)
        self.controller.busy_changed.connect(self._on_busy)
        self.controller.sweep_progress.connect(self._on_sweep_progress)
        self.controller.sweep_finished.connect(self._on_sweep_finished)
        self.controller.error.connect(lambda msg: self.show_error(msg, title="Scoring failed"))
        self.scene.selection_changed.connect(self._show_selection)
        self.scene.scores_changed.connect(self._show_selection)
        self.scene.object_changed.connect(self._on_object)
        self.live.error.connect(lambda msg: self.show_error(msg, title="Live mode"))
        self.live.status.connect(self.status_label.setText)

    # ------------------------------------------------------------------ actions
    def load_sample(self, family: str | None = None, seed: int | None = None) -> bool:
        """Show a built-in object and sample grasps on it; False (and a dialog) on failure."""
        family = family or self.controls.object.family.currentText()
        if not family:  # the combo shows an opened file, not a family
            self.show_error("Choose a sample family first.")
            return False
        seed = self.controls.object.seed.value() if seed is None else seed
        self.controls.object.family.setCurrentText(family)  # the panel shows what is loaded
        self.controls.object.seed.setValue(seed)
        try:
            with busy_cursor():
                obj = make_sample(family, seed, self.cloud_points, self.controls.object.partial.isChecked())
        except Exception as err:  # noqa: BLE001  any failure becomes a dialog
            self.show_error(f"Could not make sample {family!r}: {err}")
            return False
        self.scene.set_object(obj)
        return self.sample_grasps()

    def open_file(self, path: str | None = None) -> bool:
        """Open a mesh or cloud (a file dialog when ``path`` is None)."""
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Open mesh or point cloud", "", FILE_FILTER)
            if not path:
                return False
        try:
            with busy_cursor():
                obj, note = load_object_file(path)
        except ValueError as err:
            self.show_error(str(err), title="Cannot open file")
            return False
        self.scene.set_object(obj)
        combo = self.controls.object.family
        combo.setCurrentIndex(-1)  # the combo no longer claims a built-in sample is shown
        combo.setPlaceholderText(f"file: {obj.name}")
        self.status_label.setText(note)
        return self.sample_grasps()

    def sample_grasps(self, k: int | None = None, count: int | None = None) -> bool:
        if self.scene.object is None:
            self.show_error("Load an object first.")
            return False
        k = self.controls.grasps.contacts.value() if k is None else k
        count = self.controls.grasps.count.value() if count is None else count
        try:
            with busy_cursor():
                grasps = sample_grasps(self.scene.object, k, count, seed=int(self.rng.integers(1 << 31)))
        except Exception as err:  # noqa: BLE001
            self.show_error(f"Grasp sampling failed: {err}")
            return False
        if not grasps:
            self.show_error(f"No {k}-contact grasps could be sampled on this object.")
            return False
        return self.set_grasps(grasps)

    def load_grasps(self, path: str | None = None) -> bool:
        if self.scene.object is None:
            self.show_error("Load an object first.")
            return False
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Open grasps (G, K, 3)", "", "NumPy (*.npy *.npz)")
            if not path:
                return False
        try:
            grasps = load_grasps_file(path)
        except ValueError as err:
            self.show_error(str(err), title="Cannot open grasps")
            return False
        return self.set_grasps(grasps)

    def set_grasps(self, grasps: list) -> bool:
        """Show ``grasps`` (object frame) minus those the scorers would refuse (contacts off the
        object), which are listed with their reason; False and a dialog when none is left."""
        refused = off_object(self.scene.object.points, grasps, self.slots)
        reasons = [text for _, text in refused]
        kept = [g for i, g in enumerate(grasps) if i not in {j for j, _ in refused}]
        if not kept:
            self.show_error(f"All {len(grasps)} grasps were removed:\n" + "\n".join(reasons[:5]),
                            title="Grasps off the object")
            return False
        self.scene.set_grasps(kept, rejected=reasons)
        if reasons:
            self.status_label.setText(f"{len(reasons)} grasp(s) removed: {reasons[0]}")
        return True

    def set_pose(self, roll: float, pitch: float, yaw: float) -> None:
        """Turn the object to roll/pitch/yaw degrees (moves the sliders; the scene re-scores)."""
        self.controls.pose.set_euler(roll, pitch, yaw, emit=True)

    def random_pose(self) -> None:
        yaw, pitch, roll = Rotation.from_matrix(random_rotation(self.rng)).as_euler("ZYX", degrees=True)
        self.set_pose(roll, pitch, yaw)

    def start_sweep(self, mode: str | None = None, steps: int | None = None) -> None:
        if mode is not None:
            self.controls.sweep.select_mode(mode)
        mode = self.controls.sweep.selected_mode()
        self.controller.start_sweep(mode, steps=self.sweep_steps if steps is None else steps)

    def show_error(self, message: str, title: str = "grasp_equi") -> None:
        """A non-blocking message box (the window stays usable behind it)."""
        box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, False)
        box.open()
        self.last_error = box
        self.status_label.setText(message.splitlines()[0] if message else title)

    # ------------------------------------------------------------------ reactions
    def _on_euler(self, roll: float, pitch: float, yaw: float) -> None:
        if self.scene.object is not None:
            self.scene.set_euler(roll, pitch, yaw)

    def _on_top_n(self, *_) -> None:
        self.controls.show_panel.show_value()
        self.scene.set_top_n(self.controls.show_panel.value())

    def _on_object(self) -> None:
        obj = self.scene.object
        if obj is not None:
            self.controls.object.info.setText(f"{obj.name}\n{len(obj.points)} points, "
                                              f"radius {100 * obj.radius:.1f} cm")
            self.controls.pose.set_euler(0, 0, 0, emit=False)

    def _on_busy(self, busy: bool) -> None:
        sweeping = self.controller.sweeping
        self.progress.setVisible(busy)
        if busy and not sweeping:
            self.progress.setRange(0, 0)  # indeterminate while one pose is scored
            self.status_label.setText("scoring…")
        elif not busy and not self.live.active:
            removed = f"; {len(self.scene.rejected)} grasp(s) removed" if self.scene.rejected else ""
            self.status_label.setText("scored" + removed if self.scene.scores else self.status_label.text())
        self.controls.set_editing_enabled(not sweeping and not self.live.active)
        self.controls.sweep.stop.setEnabled(sweeping)

    def _on_sweep_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        self.progress.setFormat("sweep %v/%m")
        self.status_label.setText(f"sweeping: orientation {done}/{total}")
        self.controls.set_editing_enabled(False)
        self.controls.sweep.stop.setEnabled(True)

    def _on_sweep_finished(self, cancelled: bool) -> None:
        self.status_label.setText("sweep stopped" if cancelled else "sweep done")
        self.controls.set_editing_enabled(not self.live.active)
        self.controls.sweep.stop.setEnabled(False)

    def _show_selection(self) -> None:
        sel = self.scene.selected
        removed = "".join(f"<br><small style='color:#c0392b'>{r}</small>" for r in self.scene.rejected[:3])
        if len(self.scene.rejected) > 3:
            removed += f"<br><small>… and {len(self.scene.rejected) - 3} more removed</small>"
        if sel is None or sel >= len(self.scene.grasps):
            self.selection_label.setText("no grasp selected" + removed)
            return
        grasp = self.scene.world_grasps()[sel]
        scores = ", ".join(f"{k} {v[sel]:.4f}" for k, v in self.scene.scores.items() if len(v) > sel)
        contacts = "  ".join("(" + ", ".join(f"{100 * x:.1f}" for x in c) + ")" for c in grasp)
        self.selection_label.setText(f"<b>grasp #{sel}</b> (K={len(grasp)}): {scores or 'scoring…'}"
                                     f"<br><small>contacts [cm]: {contacts}</small>{removed}")

    def closeEvent(self, event) -> None:  # noqa: N802  (Qt name)
        self.live.stop()
        self.controller.shutdown()
        super().closeEvent(event)
