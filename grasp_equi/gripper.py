"""Parallel-jaw gripper poses -> contact pairs, by closing the jaws onto the cloud (ROS-free).

Gripper frame (the ``grasp_poses`` contract): +z is the approach direction, the fingers
close along ±y, and the origin lies midway between the fingertips. Each finger is a flat pad
``finger_width`` wide (along x) reaching ``finger_depth`` back from the tip (z in
``[-finger_depth, 0]``); open, the pads are ``max_width`` apart. Closing moves both pads
toward y = 0 until they touch the cloud, so the contacts are the cloud points in the swept
box with the largest and the smallest y. Everything is computed in the gripper frame, so the
result moves rigidly with the cloud and the pose (the scorer's invariance is kept).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree


@dataclass(frozen=True)
class JawGeometry:
    """Parallel-jaw gripper dimensions in metres."""

    max_width: float = 0.08  # pad-to-pad opening
    finger_depth: float = 0.03  # pad length along the approach axis, back from the tip
    finger_width: float = 0.02  # pad width along x
    contact_tolerance: float = 0.002  # points this close to the first touch form the contact patch

    def __post_init__(self):
        for name in ("max_width", "finger_depth", "finger_width", "contact_tolerance"):
            value = getattr(self, name)
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"gripper {name} must be a positive number of metres; got {value}")


def quaternion_to_matrix(quat_xyzw: np.ndarray) -> np.ndarray:
    """Rotation matrices ``(P, 3, 3)`` from unit-normalised quaternions ``(P, 4)`` in ROS order
    (x, y, z, w). Zero-length or non-finite quaternions raise ``ValueError``."""
    q = np.asarray(quat_xyzw, dtype=np.float64).reshape(-1, 4)
    norm = np.linalg.norm(q, axis=1)  # [P]
    bad = ~np.isfinite(norm) | (norm < 1e-9)
    if bad.any():
        raise ValueError(f"pose {int(np.argmax(bad))} has a zero-length or non-finite orientation quaternion")
    x, y, z, w = (q / norm[:, None]).T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], axis=1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], axis=1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], axis=1),
    ], axis=1)  # [P, 3, 3], columns = gripper axes in the cloud frame


def matrix_to_quaternion(rot: np.ndarray) -> np.ndarray:
    """``(P, 4)`` quaternions (x, y, z, w) from proper rotations ``(P, 3, 3)`` (Shepperd's method:
    divide by the largest of the four candidate terms, so it is stable for any rotation)."""
    rot = np.asarray(rot, dtype=np.float64).reshape(-1, 3, 3)
    out = np.empty((len(rot), 4))
    for i, m in enumerate(rot):
        trace = np.trace(m)
        if trace > 0:
            s = 2 * np.sqrt(trace + 1)
            out[i] = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, s / 4]
            continue
        k = int(np.argmax(np.diag(m)))
        a, b = (k + 1) % 3, (k + 2) % 3
        s = 2 * np.sqrt(1 + m[k, k] - m[a, a] - m[b, b])
        out[i, k], out[i, a], out[i, b] = s / 4, (m[a, k] + m[k, a]) / s, (m[b, k] + m[k, b]) / s
        out[i, 3] = (m[b, a] - m[a, b]) / s
    return out


def close_jaws(points: np.ndarray, positions: np.ndarray, quats_xyzw: np.ndarray,
               jaw: JawGeometry) -> tuple[np.ndarray, np.ndarray]:
    """Close each gripper onto ``points`` ``(N, 3)``.

    ``positions`` ``(P, 3)`` and ``quats_xyzw`` ``(P, 4)`` give the gripper frames in the
    cloud's frame. Returns ``contacts`` ``(P, 2, 3)`` (the +y pad's contact first) and
    ``valid`` ``(P,)``: False where the pads close on nothing or on a single spot
    (those rows of ``contacts`` are NaN).
    """
    pts = np.asarray(points, dtype=np.float64)
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    if not np.isfinite(pos).all():
        raise ValueError("gripper positions contain NaN/inf")
    rot = quaternion_to_matrix(quats_xyzw)  # [P, 3, 3]
    if len(rot) != len(pos):
        raise ValueError(f"{len(pos)} positions but {len(rot)} orientations")
    contacts = np.full((len(pos), 2, 3), np.nan)
    valid = np.zeros(len(pos), dtype=bool)
    half_width, half_pad = jaw.max_width / 2, jaw.finger_width / 2
    # only points within the swept box's circumscribed ball can be touched: a k-d tree finds
    # them, so P poses on an N-point cloud cost O(P log N + touched points), not O(P N)
    reach = float(np.sqrt(half_width**2 + half_pad**2 + jaw.finger_depth**2)) * (1 + 1e-9)
    nearby = cKDTree(pts).query_ball_point(pos, reach) if len(pts) else [[] for _ in pos]
    for i in range(len(pos)):
        near = np.asarray(nearby[i], dtype=np.int64)  # [n_near]
        local = (pts[near] - pos[i]) @ rot[i]  # [n_near, 3] in the gripper frame
        inside = ((np.abs(local[:, 0]) <= half_pad) & (np.abs(local[:, 1]) <= half_width)
                  & (local[:, 2] <= 0.0) & (local[:, 2] >= -jaw.finger_depth))  # [n_near]
        idx = near[inside]
        local = local[inside]
        if len(idx) < 2:
            continue
        y = local[:, 1]  # [n_inside]
        top, bottom = y.max(), y.min()
        if top - bottom <= 2 * jaw.contact_tolerance:
            continue  # the pads meet on (almost) one spot: nothing to hold
        contacts[i, 0] = pts[idx[y >= top - jaw.contact_tolerance]].mean(axis=0)
        contacts[i, 1] = pts[idx[y <= bottom + jaw.contact_tolerance]].mean(axis=0)
        valid[i] = True
    return contacts, valid
