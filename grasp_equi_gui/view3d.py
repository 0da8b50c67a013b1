"""3D view of the scene: cloud, mesh, grasps coloured by score, the selected grasp highlighted.

A thin ``pyqtgraph.opengl.GLViewWidget``: it reads the (posed) arrays from the ``Scene`` on
every change and never holds state of its own; the mouse orbits and zooms the camera. Only
the scene's visible grasps (its top-N filter) are drawn; the selected grasp, when K = 2, also
gets a wireframe parallel-jaw gripper at its pose (one gripper: ten would hide the object);
hovering a contact shows that grasp's score.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph.opengl as gl
from pyqtgraph import Vector
from PySide6.QtWidgets import QToolTip

from grasp_equi_gui.colors import SELECTED, score_rgba
from grasp_equi_gui.gripper3d import gripper_segments, project, side_view_angles
from grasp_equi_gui.scene import Scene

HOVER_PIXELS = 10.0  # a contact this close to the mouse pointer shows its grasp's score

CLOUD_RGBA = (0.7, 0.75, 0.85, 0.55)
MESH_RGBA = (0.4, 0.5, 0.7, 0.45)


def grasp_segments(grasp: np.ndarray) -> np.ndarray:
    """Line endpoints ``[2 * S, 3]`` joining a grasp's contacts (a pair, or a closed ring)."""
    k = len(grasp)
    if k == 2:
        return grasp.copy()
    return np.concatenate([np.stack([grasp[i], grasp[(i + 1) % k]]) for i in range(k)])


class SceneView(gl.GLViewWidget):
    """Draws a ``Scene``; updates itself from the scene's signals."""

    def __init__(self, scene: Scene, parent=None):
        super().__init__(parent)
        self.scene = scene
        self._framed_name: str | None = None
        self.setBackgroundColor((24, 26, 32))
        self.setMinimumSize(320, 240)
        self.cloud_item = gl.GLScatterPlotItem(pos=np.zeros((1, 3)), color=CLOUD_RGBA, size=2.0, pxMode=True)
        self.mesh_item = gl.GLMeshItem(smooth=False, color=MESH_RGBA, shader="shaded", glOptions="translucent")
        self.contact_item = gl.GLScatterPlotItem(pos=np.zeros((1, 3)), size=9.0, pxMode=True)
        self.line_item = gl.GLLinePlotItem(pos=np.zeros((2, 3)), mode="lines", width=2.0, antialias=True)
        self.selected_contacts = gl.GLScatterPlotItem(pos=np.zeros((1, 3)), color=SELECTED, size=16.0, pxMode=True)
        self.selected_lines = gl.GLLinePlotItem(pos=np.zeros((2, 3)), mode="lines", width=5.0, color=SELECTED)
        self.selected_gripper = gl.GLLinePlotItem(pos=np.zeros((2, 3)), mode="lines", width=2.5, color=SELECTED)
        self.axes_item = gl.GLAxisItem()
        self.hover_text = ""  # the score label under the mouse pointer ("" when none)
        self.setMouseTracking(True)
        for item in (self.mesh_item, self.cloud_item, self.line_item, self.contact_item,
                     self.selected_lines, self.selected_contacts, self.selected_gripper, self.axes_item):
            item.setVisible(False)
            self.addItem(item)
        scene.object_changed.connect(self._on_object)
        scene.pose_changed.connect(self._redraw_geometry)
        scene.grasps_changed.connect(self._redraw_grasps)
        scene.scores_changed.connect(self._redraw_grasps)
        scene.selection_changed.connect(self._redraw_grasps)
        scene.filter_changed.connect(self._redraw_grasps)

    # ------------------------------------------------------------------ updates
    def _on_object(self) -> None:
        obj = self.scene.object
        if obj is None:
            return
        center, radius = obj.center, max(obj.radius, 1e-6)
        if obj.name != self._framed_name:  # a new object: frame it; a live update keeps the user's camera
            self._framed_name = obj.name
            self.opts["center"] = Vector(*center)
            elevation, azimuth = side_view_angles(obj.points)  # across the long axis, not end-on
            self.setCameraPosition(distance=3.0 * radius, elevation=elevation, azimuth=azimuth)
        self.axes_item.setSize(1.3 * radius, 1.3 * radius, 1.3 * radius)
        self.axes_item.resetTransform()
        self.axes_item.translate(*center)
        self.axes_item.setVisible(True)
        self._redraw_geometry()

    def _redraw_geometry(self) -> None:
        if self.scene.object is None:
            return
        self.cloud_item.setData(pos=self.scene.world_points())
        self.cloud_item.setVisible(True)
        vertices = self.scene.world_mesh_vertices()
        if vertices is not None:
            self.mesh_item.setMeshData(vertexes=vertices, faces=self.scene.object.mesh_faces)
        self.mesh_item.setVisible(vertices is not None)
        self._redraw_grasps()

    def _redraw_grasps(self) -> None:
        scene = self.scene
        shown = scene.visible() if scene.object is not None else []
        if not shown:
            for item in (self.contact_item, self.line_item, self.selected_contacts, self.selected_lines,
                         self.selected_gripper):
                item.setVisible(False)
            return
        world = scene.world_grasps()
        key = scene.primary_key()
        rgba = score_rgba(scene.scores.get(key) if key else None, len(world))  # [G, 4]
        grasps = [world[i] for i in shown]
        colours = [rgba[i] for i in shown]
        points = np.concatenate(grasps)  # [C, 3]
        point_rgba = np.concatenate([np.tile(c, (len(g), 1)) for c, g in zip(colours, grasps)])
        segments = [grasp_segments(g) for g in grasps]
        seg_rgba = np.concatenate([np.tile(c, (len(s), 1)) for c, s in zip(colours, segments)])
        self.contact_item.setData(pos=points, color=point_rgba)
        self.line_item.setData(pos=np.concatenate(segments), color=seg_rgba)
        self.contact_item.setVisible(True)
        self.line_item.setVisible(True)
        self._redraw_selection()

    def _redraw_selection(self) -> None:
        sel = self.scene.selected
        if sel is None or self.scene.object is None or sel >= len(self.scene.grasps):
            for item in (self.selected_contacts, self.selected_lines, self.selected_gripper):
                item.setVisible(False)
            return
        grasp = self.scene.world_grasps()[sel]  # [K, 3]
        self.selected_contacts.setData(pos=grasp)
        self.selected_lines.setData(pos=grasp_segments(grasp))
        self.selected_contacts.setVisible(True)
        self.selected_lines.setVisible(True)
        if len(grasp) == 2:
            self.selected_gripper.setData(pos=gripper_segments(grasp, self.scene.world_points().mean(axis=0)))
        self.selected_gripper.setVisible(len(grasp) == 2)

    # ------------------------------------------------------------------ hover labels
    def screen_positions(self, points: np.ndarray) -> np.ndarray:
        """Widget pixel coordinates ``[n, 2]`` of world ``points`` ``[n, 3]`` in the current camera."""
        viewport = self.getViewport()
        mvp = self.projectionMatrix(viewport, viewport) * self.viewMatrix()
        return project(points, np.array(mvp.copyDataTo()).reshape(4, 4), self.width(), self.height())

    def grasp_at(self, x: float, y: float) -> int | None:
        """The visible grasp with a contact within ``HOVER_PIXELS`` of widget pixel ``(x, y)``."""
        shown = self.scene.visible() if self.scene.object is not None else []
        if not shown:
            return None
        world = self.scene.world_grasps()
        owners = np.concatenate([[i] * len(world[i]) for i in shown])  # [C]
        pixels = self.screen_positions(np.concatenate([world[i] for i in shown]))  # [C, 2]
        dist = np.hypot(pixels[:, 0] - x, pixels[:, 1] - y)
        dist = np.where(np.isfinite(dist), dist, np.inf)
        nearest = int(np.argmin(dist))
        return int(owners[nearest]) if dist[nearest] <= HOVER_PIXELS else None

    def label(self, grasp: int) -> str:
        """``grasp #i (K=k): equivariant 0.9123, baseline 0.4410`` (or "scoring…")."""
        scores = ", ".join(f"{k} {v[grasp]:.4f}" for k, v in self.scene.scores.items() if len(v) > grasp)
        return f"grasp #{grasp} (K={len(self.scene.grasps[grasp])}): {scores or 'scoring…'}"

    def mouseMoveEvent(self, ev) -> None:  # noqa: N802  (Qt name)
        super().mouseMoveEvent(ev)
        pos = ev.position()
        grasp = self.grasp_at(pos.x(), pos.y())
        self.hover_text = "" if grasp is None else self.label(grasp)
        if self.hover_text:
            QToolTip.showText(ev.globalPosition().toPoint(), self.hover_text, self)
        else:
            QToolTip.hideText()
