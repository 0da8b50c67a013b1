"""Live mode: what the robot sees (``cloud``) and how its grasps scored (``scored_grasps``).

Bridges ``grasp_equi_gui.ros_live.LiveSubscriber`` (rclpy, its own thread) into the GUI thread through
queued Qt signals and writes the messages into the scene. While live, the local scoring is
off: the grasps are coloured and ranked by the node's own scores (key ``"node"``); a node whose model
answers both P(held) and P(force closure) sends each by name too (keys ``"node:held"`` and so on).
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from grasp_equi_gui.panels import LivePanel
from grasp_equi_gui.ros_live import LiveCloud, LiveGrasps, LiveSubscriber
from grasp_equi_gui.scene import Scene, SceneObject
from grasp_equi_gui.scoring import output_key
from grasp_equi_gui.workers import ScoringController

NODE_SCORES = "node"


class LiveController(QObject):
    """Starts/stops the subscriber and applies its messages to the scene."""

    cloud_received = Signal(object)  # LiveCloud, emitted from the ROS thread
    grasps_received = Signal(object)  # LiveGrasps
    problem = Signal(str)
    error = Signal(str)  # could not start: the window shows a dialog
    status = Signal(str)  # one line for the window's status bar

    def __init__(self, scene: Scene, scoring: ScoringController, panel: LivePanel, parent=None):
        super().__init__(parent)
        self.scene, self.scoring, self.panel = scene, scoring, panel
        self.subscriber: LiveSubscriber | None = None
        self.clouds = 0
        self.scored = 0
        self._latest_grasps: LiveGrasps | None = None
        self.cloud_received.connect(self._apply_cloud)
        self.grasps_received.connect(self._apply_grasps)
        self.problem.connect(lambda msg: self.panel.status.setText(msg))
        panel.toggle.toggled.connect(self._on_toggle)

    @property
    def active(self) -> bool:
        return self.subscriber is not None

    def start(self) -> bool:
        """Subscribe (also ticks the panel's checkbox); False and ``error`` when ROS is unusable."""
        if self.active:
            return True
        subscriber = LiveSubscriber(self.cloud_received.emit, self.grasps_received.emit, self.problem.emit)
        try:
            subscriber.start()
        except Exception as err:  # noqa: BLE001  no ROS, bad domain, DDS failure: say so
            subscriber.stop()
            self._set_checked(False)
            self.error.emit(f"Live mode could not start: {err}")
            return False
        self.subscriber = subscriber
        self.scoring.enabled = False
        self.clouds = self.scored = 0
        self._set_checked(True)
        cloud, scored = subscriber.topics()
        self.panel.status.setText(f"waiting for {cloud} and {scored}…")
        self.status.emit(f"live view: subscribed to {cloud} and {scored}; grasps are ranked by the node's scores")
        self._parent_window_editing(False)
        return True

    def stop(self) -> None:
        if self.subscriber is None:
            return
        self.subscriber.stop()
        self.subscriber = None
        self.scoring.enabled = True
        self._set_checked(False)
        self.panel.status.setText("off")
        self.status.emit("live view off")
        self._parent_window_editing(True)

    def _on_toggle(self, checked: bool) -> None:
        if checked:
            self.start()
        else:
            self.stop()

    def _set_checked(self, checked: bool) -> None:
        self.panel.toggle.blockSignals(True)
        self.panel.toggle.setChecked(checked)
        self.panel.toggle.blockSignals(False)

    def _parent_window_editing(self, enabled: bool) -> None:
        window = self.parent()
        if hasattr(window, "controls"):
            window.controls.set_editing_enabled(enabled)

    # ------------------------------------------------------------------ messages (GUI thread)
    def _apply_cloud(self, cloud: LiveCloud) -> None:
        if not self.active:
            return
        self.clouds += 1
        self.scene.set_object(SceneObject(f"live: {cloud.frame_id or 'no frame'}", cloud.points, cloud.normals))
        latest = self._latest_grasps
        if latest is not None and latest.frame_id == cloud.frame_id:
            self._show_grasps(latest)  # keep showing the node's last scores until new ones arrive
        self._update_status()

    def _apply_grasps(self, grasps: LiveGrasps) -> None:
        if not self.active:
            return
        self.scored += 1
        self._latest_grasps = grasps
        if self.scene.object is not None:
            self._show_grasps(grasps)
        self._update_status()

    def _show_grasps(self, grasps: LiveGrasps) -> None:
        """The node's grasps, best selected (unless the user picked one); left-out ones listed."""
        named = {output_key(NODE_SCORES, output): values for output, values in grasps.answers.items()}
        self.scene.set_grasps(grasps.grasps, {NODE_SCORES: grasps.scores, **named}, rejected=grasps.rejected,
                              keep_user_selection=True)

    def _update_status(self) -> None:
        text = f"{self.clouds} cloud(s), {self.scored} scored_grasps message(s)"
        if self.scene.object is not None:
            text += f"; showing {len(self.scene.object.points)} points, {len(self.scene.grasps)} grasps"
        self.panel.status.setText(text)
