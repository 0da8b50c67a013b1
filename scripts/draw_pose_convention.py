#!/usr/bin/env python3
"""Draw the parallel-jaw pose convention (``grasp_poses``, ``grasp-equi propose``) to a PNG.

The gripper is drawn from the code's own geometry (``GripperBody().boxes()``, default jaw):
+z is the approach direction, the fingers close along ±y, the origin (the pose's position)
lies midway between the fingertips, x = y × z.

    python scripts/draw_pose_convention.py docs/pose_convention.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from mpl_toolkits.mplot3d.art3d import Poly3DCollection  # noqa: E402

FACES = ((0, 1, 3, 2), (4, 5, 7, 6), (0, 1, 5, 4), (2, 3, 7, 6), (0, 2, 6, 4), (1, 3, 7, 5))


def box_faces(lo: np.ndarray, hi: np.ndarray) -> list[np.ndarray]:
    """The six faces of an axis-aligned box as ``(4, 3)`` corner arrays."""
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    return [corners[list(f)] for f in FACES]


def draw(path: Path) -> None:
    from grasp_equi.poses import GripperBody

    body = GripperBody()
    boxes = body.boxes()  # [3 (left pad, right pad, palm), 2 (min, max), 3] metres
    mm = 1000.0
    fig = plt.figure(figsize=(7.0, 5.2))
    ax = fig.add_subplot(projection="3d")
    for (lo, hi), colour in zip(boxes, ("#7a8ca3", "#7a8ca3", "#4c5d73")):
        ax.add_collection3d(Poly3DCollection([f * mm for f in box_faces(lo, hi)], facecolor=colour,
                                             edgecolor="#2b3440", alpha=0.55, linewidths=0.6))
    depth = body.jaw.finger_depth
    u, v = np.mgrid[0:2 * np.pi:24j, 0:np.pi:12j]
    r = 0.022
    ax.plot_surface(r * np.cos(u) * np.sin(v) * mm, r * np.sin(u) * np.sin(v) * mm,
                    (-depth / 2 + r * np.cos(v)) * mm, color="#e3a33b", alpha=0.35, linewidth=0)
    length = 45.0
    for vec, colour, label in (((1, 0, 0), "#c0392b", "x = y × z"), ((0, 1, 0), "#27ae60", "+y\n(close along ±y)"),
                               ((0, 0, 1), "#2e6fd8", "+z approach")):
        ax.quiver(0, 0, 0, *(np.array(vec) * length), color=colour, linewidth=2.2, arrow_length_ratio=0.12)
        ax.text(*(np.array(vec) * length * 1.12), label, color=colour, fontsize=9)
    ax.scatter([0], [0], [0], color="black", s=25)
    ax.text(0, -58, 14, "origin = pose position\n(midway between the fingertips)", fontsize=8)
    ax.plot([0, 0], [-40, 0], [12, 0], color="black", linewidth=0.6)
    half = body.jaw.max_width / 2 * mm
    ax.plot([0, 0], [-half, half], [-depth * mm - 3] * 2, color="black", linewidth=0.8)
    ax.text(0, 0, -depth * mm - 30, f"max_width {body.jaw.max_width * mm:.0f} mm", fontsize=8, ha="center")
    ax.text(0, half + 20, -depth * mm / 2 - 8, f"finger_depth\n{depth * mm:.0f} mm", fontsize=8)
    ax.set(xlabel="x (mm)", ylabel="y (mm)", zlabel="z (mm)", xlim=(-50, 50), ylim=(-60, 60), zlim=(-60, 50))
    ax.set_box_aspect((100, 120, 110))
    ax.view_init(elev=14, azim=22)
    ax.set_title("grasp_poses / propose: a parallel-jaw pose in its own frame\n"
                 "(the jaws close on the cloud points between the pads)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, nargs="?", default=Path("docs/pose_convention.png"))
    args = parser.parse_args(argv)
    draw(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
