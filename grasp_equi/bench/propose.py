"""``grasp-equi bench --propose``: the planner on one cloud, next to scoring the same grasps alone.

One record per device (``mode: "propose"``): medians of ``GraspPlanner.propose`` end to end and
of its steps (encode, sample = normals + antipodal pairs + poses, collide_close = collision
check + closing the jaws, score = the one batched scoring call), how many candidates each step
kept, and ``scoring_only_ms``: ``GraspScorer.score`` of the cloud with the same number of
grasps (the figure the rest of the bench table reports).
"""

from __future__ import annotations

import time

import numpy as np

from grasp_equi.bench.measure import make_workload

PROPOSE_POINTS = 20_000
STEPS = ("encode", "sample", "collide_close", "score")


def measure_propose(scorer, n_points: int = PROPOSE_POINTS, repeats: int = 3, warmup: int = 1) -> dict:
    """Median timings (ms) of proposals on a ``n_points`` cloud (the bench's ellipsoid workload)."""
    from grasp_equi.planner import GraspPlanner

    work = make_workload(n_points, 1)
    planner = GraspPlanner(scorer)
    totals, steps, ranked = [], {s: [] for s in STEPS}, None
    for i in range(warmup + repeats):
        start = time.perf_counter()
        ranked = planner.propose(work.points)
        if i >= warmup:
            totals.append((time.perf_counter() - start) * 1e3)
            for s in STEPS:
                steps[s].append(ranked.timings.get(s, 0.0))
    scored = ranked.counts["scored"]
    contacts = work.points[np.random.default_rng(0).integers(0, n_points, size=(max(scored, 1), 2))]  # [G, 2, 3]
    scoring = []
    for i in range(warmup + repeats):
        start = time.perf_counter()
        scorer.score(work.points, contacts)
        if i >= warmup:
            scoring.append((time.perf_counter() - start) * 1e3)
    return {"mode": "propose", "device": str(scorer.device.type), "n_points": n_points, "n_grasps": scored,
            "counts": dict(ranked.counts), "top_k": len(ranked), "repeats": repeats,
            "step_ms": {s: float(np.median(v)) for s, v in steps.items()},
            "total_ms_median": float(np.median(totals)), "scoring_only_ms": float(np.median(scoring))}


def propose_table(records: list[dict]) -> str:
    """Markdown: proposals vs scoring-only, one row per device."""
    lines = ["| device | N | candidates | collision-free | scored | encode | sample | collide + close | score | "
             "**propose total** | scoring only (same N, G) |", "|" + "---|" * 11]
    for r in records:
        c, s = r["counts"], r["step_ms"]
        lines.append(f"| {r['device']} | {r['n_points']:,} | {c['candidates']:,} ({c['pairs']} pairs) | "
                     f"{c['collision_free']:,} | {c['scored']:,} | {s['encode']:.0f} | {s['sample']:.0f} | "
                     f"{s['collide_close']:.0f} | {s['score']:.0f} | **{r['total_ms_median']:.0f}** | "
                     f"{r['scoring_only_ms']:.0f} |")
    return "\n".join(lines)
