"""RViz markers for scored grasps: DELETEALL first, then a fixed handful of markers.

However many grasps there are, the array holds at most five markers (one DELETEALL, contact
spheres, grasp lines, the best grasp, its label), each with per-point colours, so RViz stays
fast and nothing stale survives from the previous request.
"""

from __future__ import annotations

import itertools

import numpy as np
from geometry_msgs.msg import Point
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

NAMESPACE = "grasp_equi"


def score_color(score: float, alpha: float = 1.0) -> ColorRGBA:
    """Red (0) -> yellow (0.5) -> green (1); grey for a grasp that was not judged (NaN)."""
    if not np.isfinite(score):
        return ColorRGBA(r=0.5, g=0.5, b=0.5, a=alpha)
    s = float(np.clip(score, 0.0, 1.0))
    return ColorRGBA(r=float(min(1.0, 2 * (1 - s))), g=float(min(1.0, 2 * s)), b=0.0, a=alpha)


def _point(xyz) -> Point:
    return Point(x=float(xyz[0]), y=float(xyz[1]), z=float(xyz[2]))


def _marker(header, marker_id: int, kind: int, scale: float) -> Marker:
    m = Marker(header=header, ns=NAMESPACE, id=marker_id, type=kind, action=Marker.ADD)
    m.pose.orientation.w = 1.0
    m.scale.x = m.scale.y = m.scale.z = scale
    return m


def grasp_markers(header, grasps: list[np.ndarray], scores: np.ndarray, grasp_ids: np.ndarray,
                  size: float) -> MarkerArray:
    """Markers for grasps ``G x (K_i, 3)`` with ``scores`` and ``grasp_ids`` ``(G,)``, in the
    request's frame."""
    clear = Marker(header=header, ns=NAMESPACE, action=Marker.DELETEALL)
    out = MarkerArray(markers=[clear])
    if not grasps:
        return out
    spheres = _marker(header, 0, Marker.SPHERE_LIST, size)
    lines = _marker(header, 1, Marker.LINE_LIST, size / 4)
    for contacts, score in zip(grasps, scores):
        color = score_color(score, alpha=0.8)
        for c in contacts:
            spheres.points.append(_point(c))
            spheres.colors.append(color)
        for a, b in itertools.combinations(range(len(contacts)), 2):  # every pair of fingers
            lines.points += [_point(contacts[a]), _point(contacts[b])]
            lines.colors += [color, color]
    if not np.isfinite(scores).any():
        out.markers += [spheres, lines]
        return out
    best_index = int(np.nanargmax(scores))
    best_contacts = grasps[best_index]
    best = _marker(header, 2, Marker.LINE_LIST, size / 1.5)
    best.color = ColorRGBA(r=0.1, g=0.6, b=1.0, a=1.0)  # blue: stands out from the red-green scale
    for a, b in itertools.combinations(range(len(best_contacts)), 2):
        best.points += [_point(best_contacts[a]), _point(best_contacts[b])]
    label = _marker(header, 3, Marker.TEXT_VIEW_FACING, size * 2)
    label.pose.position = _point(best_contacts.mean(axis=0) + np.array([0.0, 0.0, 2 * size]))
    label.color = ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0)
    label.text = f"best grasp {int(grasp_ids[best_index])}: {float(scores[best_index]):.2f}"
    out.markers += [spheres, lines, best, label]
    return out
