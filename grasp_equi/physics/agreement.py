"""Agreement between analytic labels / model scores and physical outcomes; the reliability plot."""

from __future__ import annotations

import numpy as np

from grasp_equi.training.metrics import auc

STABLE_THRESHOLD = 0.5  # the data pipeline's: label P(force closure) >= 0.5 means stable


def cohen_kappa(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's kappa of two binary ratings (NaN when there are none; 0 when chance explains all)."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if len(a) == 0:
        return float("nan")
    observed = float((a == b).mean())
    expected = float(a.mean() * b.mean() + (1 - a.mean()) * (1 - b.mean()))
    return 0.0 if expected >= 1.0 else (observed - expected) / (1.0 - expected)


def agreement(label: np.ndarray, held: np.ndarray, threshold: float = STABLE_THRESHOLD) -> dict:
    """Accuracy and kappa of ``label >= threshold`` against ``held``, plus the label's AUC."""
    label, held = np.asarray(label, dtype=np.float64), np.asarray(held, dtype=bool)
    stable = label >= threshold
    return {
        "trials": int(len(held)),
        "held_rate": float(held.mean()) if len(held) else float("nan"),
        "label_stable_rate": float(stable.mean()) if len(held) else float("nan"),
        "accuracy": float((stable == held).mean()) if len(held) else float("nan"),
        "kappa": cohen_kappa(stable, held),
        "false_positives": int((stable & ~held).sum()),
        "false_negatives": int((~stable & held).sum()),
        "label_auc": auc(label, held),
    }


def reliability(prob: np.ndarray, held: np.ndarray, num_bins: int = 5) -> list[dict]:
    """Per probability bin: mean predicted probability, outcome (held) rate and count."""
    prob, held = np.asarray(prob, dtype=np.float64), np.asarray(held, dtype=bool)
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    which = np.clip(np.digitize(prob, edges[1:-1]), 0, num_bins - 1)
    return [{"lo": float(edges[b]), "hi": float(edges[b + 1]), "count": int((which == b).sum()),
             "mean_prob": float(prob[which == b].mean()) if (which == b).any() else None,
             "held_rate": float(held[which == b].mean()) if (which == b).any() else None}
            for b in range(num_bins)]


def calibration_error(prob: np.ndarray, outcome: np.ndarray, num_bins: int = 10) -> float:
    """Expected calibration error: the count-weighted mean of |mean probability - outcome rate| over
    ``num_bins`` equal-width probability bins (Naeini et al. 2015); ``outcome`` may be a rate in
    [0, 1] (P(held) over trials). NaN for no rows."""
    prob, outcome = np.asarray(prob, dtype=np.float64), np.asarray(outcome, dtype=np.float64)
    if len(prob) == 0:
        return float("nan")
    which = np.clip(np.digitize(prob, np.linspace(0.0, 1.0, num_bins + 1)[1:-1]), 0, num_bins - 1)
    gaps = [abs(prob[which == b].mean() - outcome[which == b].mean()) * (which == b).sum()
            for b in range(num_bins) if (which == b).any()]
    return float(np.sum(gaps) / len(prob))


def plot_reliability(curves: dict[str, list[dict]], path, title: str) -> None:
    """Outcome rate vs predicted probability, one line per curve, marker size ~ bin count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 4.6), dpi=120)
    ax.plot([0, 1], [0, 1], color="0.7", lw=1, ls="--", label="perfectly calibrated")
    for (name, bins), colour in zip(curves.items(), plt.cm.tab10.colors):
        used = [b for b in bins if b["count"]]
        x = [b["mean_prob"] for b in used]
        y = [b["held_rate"] for b in used]
        ax.plot(x, y, "-", color=colour, label=name)
        ax.scatter(x, y, s=[12 + 2 * b["count"] for b in used], color=colour, alpha=0.7)
        for xi, yi, b in zip(x, y, used):
            ax.annotate(str(b["count"]), (xi, yi), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("predicted probability (label or model answer)")
    ax.set_ylabel("fraction held in MuJoCo (close, lift, shake)")
    ax.set_title(title, fontsize=8)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
