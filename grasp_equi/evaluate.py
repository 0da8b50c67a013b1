"""Metrics of a checkpoint on a dataset's held-out families.

Everything is scored through ``GraspScorer`` (the path robots use: validation, sampling,
estimated normals, encoder once per cloud), so the numbers describe the shipped pipeline,
not just the network (the command line is ``grasp_equi.evaluate_cmd``). Reported: AUC, accuracy at 0.5, top-1/top-5 precision per cloud,
Brier score, a calibration plot, all overall, per family, per K, and complete vs partial;
plus the invariance error measured on the evaluation data itself. ``--rotate`` scores every
cloud in a random pose (rotation + translation), for models that are not invariant.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from grasp_equi.geometry import random_rotation, transform_points
from grasp_equi import keys
from grasp_equi.scorer import GraspScorer
from grasp_equi.training import metrics
from grasp_equi.training.splits import load_split


def random_pose(rng: np.random.Generator, points: np.ndarray, contacts: list[np.ndarray], reflect: bool = False):
    """The same random rotation (optionally improper) and translation applied to cloud and contacts."""
    rot = random_rotation(rng, reflect=reflect)
    trans = rng.uniform(-1.0, 1.0, size=3)
    return transform_points(points, rot, trans), [transform_points(c, rot, trans) for c in contacts]


def score_samples(scorer: GraspScorer, samples: list, rotate: bool = False, seed: int = 0,
                  progress: bool = True) -> dict[str, np.ndarray]:
    """Score every grasp of every sample; per-grasp arrays for the breakdowns: ``score`` is P(force
    closure) (against the analytic ``label``); models with P(held) add ``held_score`` (against ``p_held``,
    the physics label where the dataset has one, else NaN). Each cloud is encoded once for both."""
    rng = np.random.default_rng([seed, 5])
    has_held = keys.OUTPUT_HELD in scorer.outputs
    cols = {"score": [], "label": [], "k": [], "partial": [], "family": [], "cloud": []}
    cols.update({"held_score": [], "p_held": []} if has_held else {})
    for i, s in enumerate(tqdm(samples, desc="evaluate", unit="cloud", disable=not progress)):
        grasps = [np.asarray(g, dtype=np.float64) for g in s.grasps]
        if not grasps:
            continue
        points = np.asarray(s.points, dtype=np.float64)
        if rotate:
            points, grasps = random_pose(rng, points, grasps)
        encoded = scorer.encode(points)
        cols["score"].append(scorer.score_encoded(encoded, grasps, output=keys.OUTPUT_FORCE_CLOSURE))
        cols["label"].append(np.asarray(s.labels, dtype=np.float64))
        if has_held:
            cols["held_score"].append(scorer.score_encoded(encoded, grasps, output=keys.OUTPUT_HELD))
            cols["p_held"].append(np.full(len(grasps), np.nan) if getattr(s, "p_held", None) is None
                                  else np.asarray(s.p_held, dtype=np.float64))
        cols["k"].append(np.array([len(g) for g in grasps]))
        cols["partial"].append(np.full(len(grasps), bool(s.partial)))
        cols["family"].append(np.full(len(grasps), str(s.family), dtype=object))
        cols["cloud"].append(np.full(len(grasps), i))
    if not cols["score"]:
        raise ValueError("no grasps to evaluate (empty split?)")
    return {k: np.concatenate(v) for k, v in cols.items()}


def breakdown(res: dict[str, np.ndarray]) -> dict:
    """Metrics overall, complete vs partial, per K, per (view, K) and per family."""
    judged = ~np.isnan(res["score"])  # grasps with a contact off the surface get no score

    def stats(mask):
        keep = mask & judged
        out = metrics.summary(res["score"][keep], res["label"][keep], res["cloud"][keep])
        return {**out, "judged_fraction": float(keep.sum() / max(mask.sum(), 1))}

    everything = np.ones(len(res["score"]), dtype=bool)
    views = {"complete": ~res["partial"], "partial": res["partial"]}
    out = {"overall": stats(everything), "by_view": {}, "by_k": {}, "by_view_k": {}, "by_family": {}}
    for view, vmask in views.items():
        if vmask.any():
            out["by_view"][view] = stats(vmask)
            out["by_view_k"][view] = {int(k): stats(vmask & (res["k"] == k)) for k in np.unique(res["k"][vmask])}
    for k in np.unique(res["k"]):
        out["by_k"][int(k)] = stats(res["k"] == k)
    for fam in sorted(set(res["family"].tolist())):
        out["by_family"][fam] = stats(res["family"] == fam)
    out["calibration"] = metrics.calibration_bins(res["score"][judged], res["label"][judged])
    if "held_score" in res:
        out["held"] = held_breakdown(res)
    return out


def held_breakdown(res: dict[str, np.ndarray]) -> dict:
    """P(held) and P(force closure) against the physics label (held: P(held) over the trials >= 0.5) on the
    grasps that have one, overall and per K: AUC, and P(held)'s calibration error."""
    from grasp_equi.physics.agreement import calibration_error

    labelled = np.isfinite(res["p_held"]) & np.isfinite(res["held_score"])

    def stats(mask):
        keep = labelled & mask
        held = res["p_held"][keep] >= metrics.STABLE_THRESHOLD
        return {"grasps": int(keep.sum()), "held_auc": metrics.auc(res["held_score"][keep], held),
                "held_ece": calibration_error(res["held_score"][keep], res["p_held"][keep]),
                "force_closure_auc": metrics.auc(res["score"][keep], held)}

    return {"overall": stats(np.ones(len(labelled), bool)),
            "by_k": {int(k): stats(res["k"] == k) for k in np.unique(res["k"][labelled])}}


def invariance_error(scorer: GraspScorer, samples: list, num_clouds: int, seed: int = 0) -> dict:
    """Max/mean |score(moved) - score(original)| over random rigid motions (half with reflection)."""
    rng = np.random.default_rng([seed, 9])
    diffs = []
    for i, s in enumerate(samples[:num_clouds]):
        grasps = [np.asarray(g, dtype=np.float64) for g in s.grasps][:256]
        if not grasps:
            continue
        points = np.asarray(s.points, dtype=np.float64)
        moved_points, moved_grasps = random_pose(rng, points, grasps, reflect=bool(i % 2))
        moved, base = scorer.score(moved_points, moved_grasps), scorer.score(points, grasps)
        # a grasp judged in one pose and not in the other is the worst invariance failure there is
        diffs.append(np.where(np.isnan(moved) == np.isnan(base), np.nan_to_num(np.abs(moved - base)), np.inf))
    if not diffs:
        return {"clouds": 0, "max_abs": None, "mean_abs": None}
    d = np.concatenate(diffs)
    return {"clouds": len(diffs), "grasps": int(len(d)), "max_abs": float(d.max()), "mean_abs": float(d.mean()),
            "motions": "random rotation + translation up to 1 m; every second one with a reflection",
            "adversarial": adversarial_invariance(scorer, seed)}


def adversarial_invariance(scorer: GraspScorer, seed: int = 0) -> dict[str, float]:
    """Max |score change| per cloud of ``grasp_equi.adversarial.adversarial_family`` (grids, symmetric
    meshes, repeated points, depth views) under rigid motions up to 100 m away."""
    from grasp_equi.adversarial import adversarial_family, invariance_error as case_error, rigid_motions

    motions = rigid_motions(seed)
    return {case.name: case_error(scorer.score, case, motions) for case in adversarial_family(seed)}


def calibration_plot(res: dict[str, np.ndarray], path: Path, title: str) -> None:
    """Reliability diagram (complete / partial) and score histograms of stable vs unstable grasps."""
    judged = ~np.isnan(res["score"])
    res = {name: values[judged] for name, values in res.items()}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.2))
    ax1.plot([0, 1], [0, 1], "k:", lw=1, label="perfect")
    for view, mask in (("complete", ~res["partial"]), ("partial", res["partial"])):
        if mask.any():
            bins = [b for b in metrics.calibration_bins(res["score"][mask], res["label"][mask]) if b["count"]]
            ax1.plot([b["mean_score"] for b in bins], [b["mean_label"] for b in bins], "o-", label=view)
    ax1.set(xlabel="predicted P(stable)", ylabel="mean robust label", title="calibration", xlim=(0, 1), ylim=(0, 1))
    ax1.legend()
    stable = res["label"] >= metrics.STABLE_THRESHOLD
    edges = np.linspace(0, 1, 26)
    ax2.hist(res["score"][stable], bins=edges, alpha=0.6, density=True, label="stable (label >= 0.5)")
    ax2.hist(res["score"][~stable], bins=edges, alpha=0.6, density=True, label="unstable")
    ax2.set(xlabel="predicted P(stable)", ylabel="density", title="score distributions")
    ax2.legend()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _no_clouds(data: Path, split: str, families) -> ValueError:
    """The error for a selection with no clouds: what was asked, and which families the dataset has."""
    from grasp_equi.data.shards import load_manifest

    where = f"families {families}" if families else f"split {split!r}"
    try:
        present = sorted(load_manifest(data).get("per_family", {}))
    except (ValueError, OSError):  # no readable manifest: say what was asked only
        present = []
    return ValueError(f"{data}: no clouds in {where}; its families: {', '.join(present) or 'none'} "
                      f"(choose with --families, or --split all)")


def evaluate(weights: Path, data: Path, split: str = "test", families=None, rotate: bool = False,
             max_clouds: int | None = None, invariance_clouds: int = 20, device: str = "auto", seed: int = 0,
             progress: bool = True, scorer: GraspScorer | None = None) -> tuple[dict, dict]:
    """Metrics dict (the JSON) and the per-grasp result arrays."""
    scorer = scorer or GraspScorer.from_checkpoint(weights, device=device)
    samples = load_split(data, split, families)
    if not samples:
        raise _no_clouds(data, split, families)
    if max_clouds and len(samples) > max_clouds:
        rng = np.random.default_rng([seed, 3])
        samples = [samples[i] for i in sorted(rng.permutation(len(samples))[:max_clouds])]
    start = time.perf_counter()
    res = score_samples(scorer, samples, rotate, seed, progress)
    seconds = time.perf_counter() - start
    out = {
        "weights": str(weights), "model": scorer.name, "architecture": scorer.config.architecture,
        "data": str(data), "split": split if families is None else "families",
        "families": sorted({s.family for s in samples}), "clouds": len(samples), "rotated": rotate,
        "device": str(scorer.device), "scoring_seconds": round(seconds, 1),
        **breakdown(res),
        "invariance": invariance_error(scorer, samples, invariance_clouds, seed),
    }
    return out, res
