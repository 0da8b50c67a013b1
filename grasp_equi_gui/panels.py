"""Control panels on the window's left: object, grasps, pose, sweep, models, live mode.

Each panel only lays out widgets and exposes them; ``grasp_equi_gui.window`` connects them to the
scene and the scoring controller.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                               QPushButton, QSlider, QSpinBox, QVBoxLayout, QWidget)

from grasp_equi_gui.legend import ShowPanel
from grasp_equi_gui.models import ModelSlot
from grasp_equi_gui.scoring import SWEEP_MODES, SWEEP_STEPS


class ObjectPanel(QGroupBox):
    def __init__(self, families: list[str], parent=None):
        super().__init__("Object", parent)
        self.family = QComboBox()
        self.family.addItems(families)
        self.seed = QSpinBox()
        self.seed.setRange(0, 9999)
        self.partial = QCheckBox("one camera view (partial cloud)")
        self.partial.setToolTip("what a depth camera sees from one side, as the robot would")
        self.load_sample = QPushButton("Load sample")
        self.open_file = QPushButton("Open mesh / cloud…")
        self.info = QLabel("no object")
        self.info.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.family, 1)
        row.addWidget(QLabel("seed"))
        row.addWidget(self.seed)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.partial)
        layout.addWidget(self.load_sample)
        layout.addWidget(self.open_file)
        layout.addWidget(self.info)


class GraspPanel(QGroupBox):
    def __init__(self, parent=None):
        super().__init__("Candidate grasps", parent)
        self.contacts = QSpinBox()
        self.contacts.setRange(2, 5)
        self.contacts.setToolTip("K = 2: antipodal (parallel jaw); 3..5: multi-finger")
        self.count = QSpinBox()
        self.count.setRange(1, 500)
        self.count.setValue(24)
        self.sample = QPushButton("Sample grasps")
        self.load = QPushButton("Load grasps (.npy)…")
        form = QFormLayout()
        form.addRow("contacts K", self.contacts)
        form.addRow("how many", self.count)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.sample)
        layout.addWidget(self.load)


class PosePanel(QGroupBox):
    """Roll/pitch/yaw sliders that turn the OBJECT (and its grasps), not the camera."""

    euler_changed = Signal(float, float, float)

    def __init__(self, parent=None):
        super().__init__("Object pose (turns object + grasps)", parent)
        self.sliders: dict[str, QSlider] = {}
        self.values: dict[str, QLabel] = {}
        layout = QVBoxLayout(self)
        form = QFormLayout()
        for name in ("roll", "pitch", "yaw"):
            slider = QSlider(Qt.Orientation.Horizontal)
            slider.setRange(-180, 180)
            slider.setTracking(True)
            value = QLabel("0°")
            value.setMinimumWidth(40)
            slider.valueChanged.connect(self._emit)
            row = QHBoxLayout()
            row.addWidget(slider, 1)
            row.addWidget(value)
            form.addRow(name, row)
            self.sliders[name], self.values[name] = slider, value
        self.random_pose = QPushButton("Random pose")
        self.reset = QPushButton("Reset")
        buttons = QHBoxLayout()
        buttons.addWidget(self.random_pose)
        buttons.addWidget(self.reset)
        layout.addLayout(form)
        layout.addLayout(buttons)

    def euler(self) -> tuple[float, float, float]:
        return tuple(float(self.sliders[n].value()) for n in ("roll", "pitch", "yaw"))

    def set_euler(self, roll: float, pitch: float, yaw: float, emit: bool = True) -> None:
        """Move all three sliders at once; one ``euler_changed`` (not three) when ``emit``."""
        for name, value in zip(("roll", "pitch", "yaw"), (roll, pitch, yaw)):
            slider = self.sliders[name]
            slider.blockSignals(True)
            slider.setValue(int(round(value)))
            slider.blockSignals(False)
        self._show_values()
        if emit:
            self.euler_changed.emit(*self.euler())

    def _show_values(self) -> None:
        for name, slider in self.sliders.items():
            self.values[name].setText(f"{slider.value()}°")

    def _emit(self) -> None:
        self._show_values()
        self.euler_changed.emit(*self.euler())


class SweepPanel(QGroupBox):
    def __init__(self, parent=None, steps: int = SWEEP_STEPS):
        super().__init__(parent)
        self.set_steps(steps)
        self.mode = QComboBox()
        self.mode.addItems([m if m == SWEEP_MODES[-1] else f"about {m}" for m in SWEEP_MODES])
        self.start = QPushButton("Sweep")
        self.start.setStyleSheet("font-weight: bold;")
        self.stop = QPushButton("Stop")
        self.stop.setEnabled(False)
        row = QHBoxLayout()
        row.addWidget(self.start, 1)
        row.addWidget(self.stop)
        layout = QVBoxLayout(self)
        layout.addWidget(self.mode)
        layout.addLayout(row)

    def set_steps(self, steps: int) -> None:
        """The title follows the number of orientations a sweep takes (``--sweep-steps``)."""
        self.setTitle(f"Invariance sweep ({steps} orientations)")

    def selected_mode(self) -> str:
        return SWEEP_MODES[self.mode.currentIndex()]

    def select_mode(self, mode: str) -> None:
        if mode not in SWEEP_MODES:
            raise ValueError(f"sweep mode must be one of {SWEEP_MODES}, got {mode!r}")
        self.mode.setCurrentIndex(SWEEP_MODES.index(mode))


class ModelPanel(QGroupBox):
    """Which models score; untrained or missing ones are flagged in plain sight."""

    def __init__(self, slots: list[ModelSlot], parent=None):
        super().__init__("Models", parent)
        layout = QVBoxLayout(self)
        self.labels: dict[str, QLabel] = {}
        for slot in slots:
            label = QLabel(slot.label)
            label.setWordWrap(True)
            if not slot.trained:
                label.setStyleSheet("color: #e74c3c; font-weight: bold;")
            layout.addWidget(label)
            self.labels[slot.key] = label


class LivePanel(QGroupBox):
    def __init__(self, parent=None):
        super().__init__("Live view (ROS 2)", parent)
        self.toggle = QCheckBox("subscribe to cloud + scored_grasps")
        self.status = QLabel("off")
        self.status.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.toggle)
        layout.addWidget(self.status)


class ControlColumn(QWidget):
    """All panels stacked in one column."""

    def __init__(self, families: list[str], slots: list[ModelSlot], parent=None, sweep_steps: int = SWEEP_STEPS):
        super().__init__(parent)
        self.object = ObjectPanel(families)
        self.grasps = GraspPanel()
        self.show_panel = ShowPanel()
        self.pose = PosePanel()
        self.sweep = SweepPanel(steps=sweep_steps)
        self.models = ModelPanel(slots)
        self.live = LivePanel()
        layout = QVBoxLayout(self)
        for panel in (self.object, self.grasps, self.show_panel, self.pose, self.sweep, self.models, self.live):
            layout.addWidget(panel)
        layout.addStretch(1)
        self.setFixedWidth(300)

    def set_editing_enabled(self, enabled: bool) -> None:
        """Disable everything that changes the scene (during sweeps and in live mode)."""
        for panel in (self.object, self.grasps, self.pose):
            panel.setEnabled(enabled)
        self.sweep.start.setEnabled(enabled)
