"""Drawing geometry for the 3D view (Qt-free): a parallel-jaw gripper at a K = 2 grasp, the
camera angles that show an object from the side, and screen-space picking.

The gripper follows the project's pose convention (``grasp_equi.poses``): +z approach,
fingers closing along ±y, origin midway between the fingertips; its pads close on the two
contacts (opening = their distance) and come from outside the object (the approach is the
direction from the grasp's midpoint toward the object's centroid, made perpendicular to the
closing line).
"""

from __future__ import annotations

import numpy as np

from grasp_equi.poses import GripperBody

BOX_EDGES = ((0, 1), (2, 3), (4, 5), (6, 7), (0, 2), (1, 3), (4, 6), (5, 7), (0, 4), (1, 5), (2, 6), (3, 7))


def box_segments(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The 12 edges of an axis-aligned box as line endpoints ``[24, 3]``."""
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    return corners[np.array(BOX_EDGES).reshape(-1)]


def gripper_frame(contacts: np.ndarray, center: np.ndarray, depth: float) -> tuple[np.ndarray, np.ndarray]:
    """``(origin [3], rotation [3, 3])`` of a jaw gripper closing on two contacts ``[2, 3]``.

    Columns of ``rotation`` are the gripper's x, y (closing line), z (approach) axes in the
    world; the contacts sit at half the pad depth behind the fingertips.
    """
    c0, c1 = np.asarray(contacts, dtype=np.float64)
    y = c1 - c0
    y /= max(np.linalg.norm(y), 1e-12)
    mid = (c0 + c1) / 2
    inward = np.asarray(center, dtype=np.float64) - mid  # from the grasp toward the object
    z = inward - (inward @ y) * y
    if np.linalg.norm(z) < 1e-9:  # the closing line passes through the centroid: any perpendicular
        helper = np.eye(3)[int(np.argmin(np.abs(y)))]
        z = helper - (helper @ y) * y
    z /= np.linalg.norm(z)
    x = np.cross(y, z)
    origin = mid + z * depth / 2  # fingertips ahead of the contacts by half the pad depth
    return origin, np.stack([x, y, z], axis=1)


def gripper_segments(contacts: np.ndarray, center: np.ndarray, body: GripperBody | None = None) -> np.ndarray:
    """Wireframe line endpoints ``[72, 3]`` (pads + palm) of the gripper closed on ``contacts``."""
    body = body or GripperBody()
    width = float(np.linalg.norm(np.asarray(contacts[1]) - np.asarray(contacts[0])))
    origin, rot = gripper_frame(contacts, center, body.jaw.finger_depth)
    local = np.concatenate([box_segments(lo, hi) for lo, hi in body.boxes(width)])  # [72, 3] gripper frame
    return local @ rot.T + origin


def side_view_angles(points: np.ndarray) -> tuple[float, float]:
    """``(elevation, azimuth)`` in degrees of a camera looking across the object's long axis.

    pyqtgraph places the camera at ``(cos e cos a, cos e sin a, sin e)`` from the centre; the
    angles are chosen (elevation 15-35°) so that direction is as perpendicular as possible to
    the first principal axis, preferring azimuths near 40° (the old default) on ties.
    """
    pts = np.asarray(points, dtype=np.float64)
    centred = pts - pts.mean(axis=0)
    axis = np.linalg.svd(centred[:: max(1, len(pts) // 2000)], full_matrices=False)[2][0]  # [3]
    best, best_cost = (25.0, 40.0), np.inf
    for elev in (15.0, 25.0, 35.0):
        for azim in np.arange(0.0, 360.0, 5.0):
            e, a = np.radians(elev), np.radians(azim)
            direction = np.array([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)])
            cost = abs(direction @ axis) + 1e-3 * abs(((azim - 40.0 + 180.0) % 360.0) - 180.0) / 180.0
            if cost < best_cost:
                best, best_cost = (elev, float(azim)), cost
    return best


def project(points: np.ndarray, mvp: np.ndarray, width: float, height: float) -> np.ndarray:
    """Widget pixel coordinates ``[n, 2]`` of world ``points`` ``[n, 3]`` under the 4 x 4
    model-view-projection matrix ``mvp`` (row-major); NaN behind the camera."""
    pts = np.asarray(points, dtype=np.float64)
    clip = np.concatenate([pts, np.ones((len(pts), 1))], axis=1) @ np.asarray(mvp).T  # [n, 4]
    w = clip[:, 3:4]
    ndc = np.where(w > 1e-9, clip[:, :2] / np.where(w > 1e-9, w, 1.0), np.nan)  # [n, 2]
    return np.stack([(ndc[:, 0] + 1) / 2 * width, (1 - ndc[:, 1]) / 2 * height], axis=1)
