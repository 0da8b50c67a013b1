"""RViz markers that draw parallel-jaw grippers: two finger pads and a palm per pose (CUBE markers).

The best ``top_n`` poses are drawn, pads closed to the grasp's width; each gripper is coloured
by its score (red -> green), the best one in blue and opaque, the others translucent.
Namespace ``grasp_equi/grippers``; ids ``3 * rank + part`` (part 0/1 = pads, 2 = palm).
"""

from __future__ import annotations

import numpy as np
from geometry_msgs.msg import Point, Quaternion
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker

from grasp_equi.gripper import matrix_to_quaternion
from grasp_equi.poses import GripperBody, body_boxes
from grasp_equi.ros.markers import score_color

NAMESPACE = "grasp_equi/grippers"
BEST_COLOR = ColorRGBA(r=0.1, g=0.6, b=1.0, a=1.0)  # the same blue as the best contact line
OTHERS_ALPHA = 0.45


def gripper_markers(header, positions: np.ndarray, rotations: np.ndarray, widths: np.ndarray, scores: np.ndarray,
                    body: GripperBody, top_n: int) -> list[Marker]:
    """CUBE markers for the ``top_n`` best of ``G`` poses (``positions`` ``(G, 3)``, ``rotations``
    ``(G, 3, 3)``, ``widths`` ``(G,)`` metres, ``scores`` ``(G,)``), best first; NaN scores skipped."""
    scores = np.asarray(scores, dtype=np.float64)
    order = [int(i) for i in np.lexsort((np.arange(len(scores)), -np.nan_to_num(scores, nan=-np.inf)))
             if np.isfinite(scores[i])][:top_n]
    markers = []
    for rank, i in enumerate(order):
        centres, sizes = body_boxes(positions[i], rotations[i], widths[i], body)
        quat = matrix_to_quaternion(rotations[i][None])[0]
        color = BEST_COLOR if rank == 0 else score_color(scores[i], alpha=OTHERS_ALPHA)
        for part in range(3):
            m = Marker(header=header, ns=NAMESPACE, id=3 * rank + part, type=Marker.CUBE, action=Marker.ADD)
            m.pose.position = Point(x=float(centres[part, 0]), y=float(centres[part, 1]), z=float(centres[part, 2]))
            m.pose.orientation = Quaternion(x=float(quat[0]), y=float(quat[1]), z=float(quat[2]), w=float(quat[3]))
            m.scale.x, m.scale.y, m.scale.z = (float(v) for v in sizes[part])
            m.color = color
            markers.append(m)
    return markers
