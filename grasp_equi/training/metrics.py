"""Classification metrics for grasp scores (numpy only; no scikit-learn dependency).

Labels are robust P(force closure) in [0, 1]; a grasp counts as *stable* when its label is
>= 0.5 (the data pipeline's threshold). Scores are predicted P(stable) in [0, 1].
"""

from __future__ import annotations

import numpy as np

STABLE_THRESHOLD = 0.5


def auc(scores: np.ndarray, stable: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with mid-ranks for ties); NaN if one class is absent."""
    scores = np.asarray(scores, dtype=np.float64)
    stable = np.asarray(stable, dtype=bool)
    n_pos, n_neg = int(stable.sum()), int((~stable).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores), dtype=np.float64)
    # mid-ranks: every run of equal scores gets the mean of its positions (1-based)
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(scores)]])
    for lo, hi in zip(starts, ends):
        ranks[order[lo:hi]] = (lo + hi + 1) / 2.0
    return float((ranks[stable].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def top_k_precision(scores: np.ndarray, stable: np.ndarray, groups: np.ndarray, k: int) -> float:
    """Mean over objects (``groups``) of the fraction of stable grasps among the top-``k`` scored."""
    values = []
    for g in np.unique(groups):
        mask = groups == g
        top = np.argsort(-scores[mask], kind="mergesort")[:k]
        values.append(float(stable[mask][top].mean()))
    return float(np.mean(values)) if values else float("nan")


def calibration_bins(scores: np.ndarray, labels: np.ndarray, num_bins: int = 10) -> list[dict]:
    """Reliability diagram data: per score bin, the mean score, mean label and count."""
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    which = np.clip(np.digitize(scores, edges[1:-1]), 0, num_bins - 1)
    bins = []
    for b in range(num_bins):
        mask = which == b
        bins.append({
            "lo": float(edges[b]), "hi": float(edges[b + 1]), "count": int(mask.sum()),
            "mean_score": float(scores[mask].mean()) if mask.any() else None,
            "mean_label": float(labels[mask].mean()) if mask.any() else None,
        })
    return bins


def summary(scores: np.ndarray, labels: np.ndarray, groups: np.ndarray | None = None) -> dict:
    """AUC, accuracy at 0.5, Brier score, stable fraction and (with ``groups``) top-1/top-5 precision."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    stable = labels >= STABLE_THRESHOLD
    out = {
        "num_grasps": int(len(scores)),
        "stable_fraction": float(stable.mean()) if len(scores) else float("nan"),
        "auc": auc(scores, stable),
        "accuracy": float(((scores >= 0.5) == stable).mean()) if len(scores) else float("nan"),
        "brier": float(((scores - labels) ** 2).mean()) if len(scores) else float("nan"),
    }
    if groups is not None:
        groups = np.asarray(groups)
        out["num_objects"] = int(len(np.unique(groups)))
        out["top1_precision"] = top_k_precision(scores, stable, groups, 1)
        out["top5_precision"] = top_k_precision(scores, stable, groups, 5)
    return out
