"""docs/proposals.png: the planner's top grippers drawn on complete clouds of three procedural objects.

Each gripper is drawn as the node's RViz markers draw it (``grasp_equi.poses.body_boxes``: two
finger pads closed to the grasp width and the palm), the best one in blue, the others coloured
by score (red -> green), with the contacts as black dots.

    .venv/bin/python scripts/proposals_figure.py --out docs/proposals.png
"""

from __future__ import annotations

import argparse
import itertools

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from mpl_toolkits.mplot3d.art3d import Poly3DCollection  # noqa: E402

from grasp_equi.data.clouds import complete_cloud  # noqa: E402
from grasp_equi.data.objects import make_object  # noqa: E402
from grasp_equi.planner import GraspPlanner, PlannerConfig  # noqa: E402
from grasp_equi.poses import GripperBody, as_frames, body_boxes  # noqa: E402
from grasp_equi.scorer import GraspScorer  # noqa: E402

OBJECTS = (("box", 1), ("mug", 3), ("cylinder", 2))
FACES = ((0, 1, 3, 2), (4, 5, 7, 6), (0, 1, 5, 4), (2, 3, 7, 6), (0, 2, 6, 4), (1, 3, 7, 5))


def box_faces(centre: np.ndarray, size: np.ndarray, rot: np.ndarray) -> list[np.ndarray]:
    """The 6 faces ``(4, 3)`` of a box with axes ``rot``'s columns."""
    corners = np.array(list(itertools.product((-0.5, 0.5), repeat=3))) * size  # [8, 3]
    world = corners @ rot.T + centre
    return [world[list(face)] for face in FACES]


def color(score: float, best: bool):
    if best:
        return (0.1, 0.6, 1.0, 0.9)
    s = float(np.clip(score, 0, 1))
    return (min(1.0, 2 * (1 - s)), min(1.0, 2 * s), 0.0, 0.35)


def draw(ax, points: np.ndarray, ranked, body: GripperBody, title: str) -> None:
    ax.scatter(*points[::3].T, s=1, c="0.6", depthshade=False)
    positions, rotations = as_frames(ranked.poses)
    for rank in reversed(range(len(ranked))):  # best drawn last, on top
        centres, sizes = body_boxes(positions[rank], rotations[rank], ranked.widths[rank], body)
        faces = [f for c, s in zip(centres, sizes) for f in box_faces(c, s, rotations[rank])]
        ax.add_collection3d(Poly3DCollection(faces, facecolor=color(ranked.scores[rank], rank == 0),
                                             edgecolor=(0, 0, 0, 0.3), linewidths=0.3))
        ax.scatter(*ranked.contacts[rank].T, s=12, c="k", depthshade=False)
    everything = np.concatenate([points, positions])
    mid, half = everything.mean(axis=0), np.ptp(everything, axis=0).max() / 2 + 0.02
    for axis, setter in zip(mid, (ax.set_xlim, ax.set_ylim, ax.set_zlim)):
        setter(axis - half, axis + half)
    ax.set_box_aspect((1, 1, 1))
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/proposals.png")
    parser.add_argument("--top", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    body = GripperBody()
    planner = GraspPlanner(GraspScorer.from_checkpoint(device="cpu"), body, PlannerConfig(top_k=args.top))
    fig = plt.figure(figsize=(12, 4.4))
    for i, (family, seed) in enumerate(OBJECTS):
        rng = np.random.default_rng(seed)
        obj = make_object(family, rng)
        points = complete_cloud(obj, 3000, rng)[0]
        ranked = planner.propose(points)
        ax = fig.add_subplot(1, len(OBJECTS), i + 1, projection="3d")
        ax.view_init(elev=25, azim=-60 + 40 * i)
        best = f"best {ranked.scores[0]:.2f}" if len(ranked) else "no proposal"
        draw(ax, points, ranked, body, f"{family}: {len(points)} points\n"
             f"top {len(ranked)} of {ranked.counts['scored']} scored ({ranked.counts['candidates']} candidates), "
             f"{best}")
    fig.suptitle("grasp-equi propose: ranked collision-free gripper poses (best in blue)", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
