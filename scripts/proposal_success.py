"""Proposal success rate: how often the planner's top-1 grasp is stable by the analytic label.

For a few dozen objects of the held-out families (never trained on), the planner proposes on a
cloud of the object (complete surface samples, and one single-view partial cloud); the top-1
proposal's contacts are projected onto the true mesh, and the dataset labeller's robust force
closure (``grasp_equi.quality.label_grasps``: P(force closure) under contact/friction noise)
decides whether it holds (P >= 0.5, the dataset's stable threshold). For reference the same
label is computed for every scored candidate: the mean over candidates is what a random pick
among collision-free antipodal proposals would achieve.

    .venv/bin/python scripts/proposal_success.py --per-family 12 --out docs/proposal_success.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from grasp_equi.data.clouds import complete_cloud, partial_cloud
from grasp_equi.data.grasps import project_to_surface
from grasp_equi.data.objects import DEFAULT_SPLITS, make_object
from grasp_equi.fingers import propose_fingers
from grasp_equi.planner import GraspPlanner, PlannerConfig
from grasp_equi.poses import GripperBody
from grasp_equi.quality import label_grasps
from grasp_equi.scorer import GraspScorer

STABLE = 0.5


FINGERS = 2  # set by --fingers


def propose(planner: GraspPlanner, points: np.ndarray, top_k: int | None = None):
    """The jaw planner's proposals, or K-finger ones with ``--fingers K``."""
    if FINGERS == 2:
        return planner.propose(points, top_k=top_k)
    return propose_fingers(planner, points, FINGERS, top_k=top_k)


def labels_for(obj, contacts: np.ndarray, rng) -> np.ndarray:
    """Robust P(force closure) ``[G]`` of contacts ``[G, K, 3]`` snapped onto the true surface."""
    if len(contacts) == 0:
        return np.zeros(0)
    k = contacts.shape[1]
    surface, normals = project_to_surface(obj, contacts.reshape(-1, 3))
    p, _ = label_grasps(surface.reshape(-1, k, 3), normals.reshape(-1, k, 3), obj.center, obj.radius, rng=rng)
    return p


def one_cloud(planner: GraspPlanner, obj, points: np.ndarray, rng) -> dict:
    start = time.perf_counter()
    ranked = propose(planner, points)
    seconds = time.perf_counter() - start
    row = {"counts": ranked.counts, "seconds": round(seconds, 3)}
    if not len(ranked):
        return {**row, "top1": None, "candidates_mean": None}
    row["top1"] = float(labels_for(obj, ranked.contacts[:1], rng)[0])
    row["top1_score"] = float(ranked.scores[0])
    return row


def candidates_mean(planner: GraspPlanner, obj, points: np.ndarray, rng, limit: int = 200) -> float | None:
    """Mean stable rate over (up to ``limit``) scored candidates: a random pick's success rate."""
    wide = GraspPlanner(planner.scorer, planner.body,
                        PlannerConfig(**{**planner.config.__dict__, "top_k": limit, "nms_distance": 0.0}))
    ranked = propose(wide, points, top_k=limit)
    if not len(ranked):
        return None
    pick = np.random.default_rng(0).permutation(len(ranked))[:limit]
    return float((labels_for(obj, ranked.contacts[pick], rng) >= STABLE).mean())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-family", type=int, default=12)
    parser.add_argument("--points", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=123)
    parser.add_argument("--out", default="docs/proposal_success.json")
    parser.add_argument("--fingers", type=int, choices=(2, 3, 4, 5), default=2)
    parser.add_argument("--views", default="complete,partial")
    args = parser.parse_args()
    global FINGERS
    FINGERS = args.fingers
    torch.set_num_threads(1)
    planner = GraspPlanner(GraspScorer.from_checkpoint(device="cpu"), GripperBody(), PlannerConfig())
    rows = []
    for family in DEFAULT_SPLITS["test"]:
        for i in range(args.per_family):
            rng = np.random.default_rng([args.seed, i, len(family)])
            obj = make_object(family, rng)
            clouds = {"complete": complete_cloud(obj, args.points, rng)[0], "partial": partial_cloud(obj, rng)[0]}
            for view, points in clouds.items():
                if view not in args.views.split(","):
                    continue
                row = {"family": family, "object": i, "view": view, "n_points": len(points)}
                row.update(one_cloud(planner, obj, points, rng))
                row["candidates_stable_rate"] = candidates_mean(planner, obj, points, rng)
                rows.append(row)
                print(json.dumps(row), flush=True)
    summary = {}
    for view in ("complete", "partial"):
        for family in DEFAULT_SPLITS["test"] + ["all"]:
            sel = [r for r in rows if r["view"] == view and (family == "all" or r["family"] == family)]
            got = [r for r in sel if r["top1"] is not None]
            base = [r["candidates_stable_rate"] for r in got if r["candidates_stable_rate"] is not None]
            summary[f"{view}/{family}"] = {
                "clouds": len(sel), "with_proposal": len(got),
                "top1_stable_rate": round(float(np.mean([r["top1"] >= STABLE for r in got])), 3) if got else None,
                "top1_stable_rate_over_all_clouds": round(sum(r["top1"] >= STABLE for r in got) / max(len(sel), 1), 3),
                "random_candidate_stable_rate": round(float(np.mean(base)), 3) if base else None,
                "median_seconds": round(float(np.median([r["seconds"] for r in sel])), 3) if sel else None,
            }
    Path(args.out).write_text(json.dumps({"summary": summary, "stable_threshold": STABLE, "fingers": FINGERS,
                                          "rows": rows}, indent=1))
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
