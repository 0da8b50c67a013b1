"""3D view of the scene: cloud, mesh, grasps coloured by score, the selected grasp highlighted.

A thin ``pyqtgraph.opengl.GLViewWidget``: it reads the (posed) arrays from the ``Scene`` on
every change and never holds state of its own; the mouse orbits and zooms the camera.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph.opengl as gl
from pyqtgraph import Vector

from grasp_equi_gui.colors import SELECTED, score_rgba
from grasp_equi_gui.scene import Scene

CLOUD_RGBA = (0.7, 0.75, 0.85, 0.55)
MESH_RGBA = (0.4, 0.5, 0.7, 0.45)
COLOR_KEYS = ("node", "equivariant", "baseline")  # which scores colour the grasps, first present wins


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
        self.axes_item = gl.GLAxisItem()
        for item in (self.mesh_item, self.cloud_item, self.line_item, self.contact_item,
                     self.selected_lines, self.selected_contacts, self.axes_item):
            item.setVisible(False)
            self.addItem(item)
        scene.object_changed.connect(self._on_object)
        scene.pose_changed.connect(self._redraw_geometry)
        scene.grasps_changed.connect(self._redraw_grasps)
        scene.scores_changed.connect(self._redraw_grasps)
        scene.selection_changed.connect(self._redraw_selection)

    # ------------------------------------------------------------------ updates
    def _on_object(self) -> None:
        obj = self.scene.object
        if obj is None:
            return
        center, radius = obj.center, max(obj.radius, 1e-6)
        if obj.name != self._framed_name:  # a new object: frame it; a live update keeps the user's camera
            self._framed_name = obj.name
            self.opts["center"] = Vector(*center)
            self.setCameraPosition(distance=3.0 * radius, elevation=25, azimuth=40)
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
        grasps = self.scene.world_grasps() if self.scene.object is not None else []
        if not grasps:
            for item in (self.contact_item, self.line_item, self.selected_contacts, self.selected_lines):
                item.setVisible(False)
            return
        scores = next((self.scene.scores[k] for k in COLOR_KEYS if k in self.scene.scores), None)
        rgba = score_rgba(scores, len(grasps))  # [G, 4]
        points = np.concatenate(grasps)  # [C, 3]
        point_rgba = np.concatenate([np.tile(rgba[i], (len(g), 1)) for i, g in enumerate(grasps)])
        segments = [grasp_segments(g) for g in grasps]
        seg_rgba = np.concatenate([np.tile(rgba[i], (len(s), 1)) for i, s in enumerate(segments)])
        self.contact_item.setData(pos=points, color=point_rgba)
        self.line_item.setData(pos=np.concatenate(segments), color=seg_rgba)
        self.contact_item.setVisible(True)
        self.line_item.setVisible(True)
        self._redraw_selection()

    def _redraw_selection(self) -> None:
        sel = self.scene.selected
        if sel is None or self.scene.object is None or sel >= len(self.scene.grasps):
            self.selected_contacts.setVisible(False)
            self.selected_lines.setVisible(False)
            return
        grasp = self.scene.world_grasps()[sel]  # [K, 3]
        self.selected_contacts.setData(pos=grasp)
        self.selected_lines.setData(pos=grasp_segments(grasp))
        self.selected_contacts.setVisible(True)
        self.selected_lines.setVisible(True)
