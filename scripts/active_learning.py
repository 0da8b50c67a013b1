"""Active learning with the invariant ensemble: which grasps to label next, and how many labels it saves.

    python scripts/active_learning.py --weights W.safetensors --data data/default --out runs/active \
        [--seeds 3] [--start 300] [--batch 300] [--rounds 8] [--members 5] [--pool-clouds 1500] [--test-clouds 400]
        [--baseline-weights B.safetensors]

The network is frozen; every pool grasp (training families) and test grasp (held-out families) is
described once by the head's pooled invariant features. Starting from ``--start`` random labelled
pool grasps, each round fits a last-layer ensemble (``grasp_equi.training.ensemble``) on the
labelled grasps, records its held-out AUC, and picks the next ``--batch`` grasps either by the
largest ensemble spread σ (``sigma``), by σ with a batch of grasps unlike each other (``diverse``:
``diverse_batch``) or at random; a picked grasp is labelled by calling the labeller itself
(robust force closure, ``grasp_equi.quality.label_grasps`` with the dataset's label parameters).
The σ strategy picks by ``acquisition_scores``: σ, faded to 0 for a grasp whose invariant features lie
next to a labelled grasp's (its label is known). Several seeds, both strategies, the same budget. Then
the invariance check: rotated copies of already-labelled clouds are prepared afresh and scored; where
they rank among the unlabelled pool by σ and by the acquisition score, and how many the next batch
would label; with ``--baseline-weights`` the same for the non-invariant baseline's ensemble.
Writes ``OUT/active_learning.json`` and ``OUT/active_learning.png``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch


def _records(scorer, samples):
    from grasp_equi.training.dataset import prepare_records_for

    return prepare_records_for(samples, scorer.config, progress=False)


def _labeller(manifest: dict):
    """The dataset's robust force-closure labeller, with its parameters (from the manifest)."""
    from grasp_equi.quality import label_grasps

    label = manifest.get("label", {})

    def label_one(contacts, normals, center, radius, rng) -> float:
        p, _ = label_grasps(contacts[None], normals[None], center, radius, samples=int(label.get("samples", 24)),
                            sigma=float(label.get("sigma_m", 0.003)), mu_sigma=float(label.get("mu_sigma", 0.1)),
                            rng=rng, mu=float(label.get("mu", 0.5)))
        return float(p[0])

    return label_one


def _rotated(samples, seed: int):
    """Copies of ``samples`` with cloud, contacts and normals turned by a random rotation each."""
    from types import SimpleNamespace

    from grasp_equi.geometry import random_rotation

    rng = np.random.default_rng(seed)
    out = []
    for s in samples:
        rot = random_rotation(rng)
        # float64: the same arrays moved rigidly (a float32 round-off of the turned cloud is another input)
        out.append(SimpleNamespace(**{**vars(s), "points": np.asarray(s.points, np.float64) @ rot.T,
                                      "normals": np.asarray(s.normals, np.float64) @ rot.T,
                                      "grasps": [np.asarray(g, np.float64) @ rot.T for g in s.grasps]}))
    return out


def _grasp_table(samples):
    """Per pool grasp: (sample index, grasp index) in the order ``pooled_features`` returns them."""
    return [(i, g) for i, s in enumerate(samples) for g in range(len(s.grasps))]


def run(args) -> dict:
    from grasp_equi import GraspScorer
    from grasp_equi.data.shards import load_manifest
    from grasp_equi.training.ensemble import acquisition_scores, diverse_batch, fit_readout_ensemble, pooled_features
    from grasp_equi.training.metrics import STABLE_THRESHOLD, auc
    from grasp_equi.training.splits import load_split

    torch.set_num_threads(1)
    scorer = GraspScorer.from_checkpoint(args.weights, device="cpu")
    rng0 = np.random.default_rng(args.seed)
    train = load_split(args.data, "train")
    pool_samples = [train[i] for i in sorted(rng0.permutation(len(train))[:args.pool_clouds])]
    test_all = load_split(args.data, "test")
    test_samples = [test_all[i] for i in sorted(rng0.permutation(len(test_all))[:args.test_clouds])]
    pool_x, _ = pooled_features(scorer.model, _records(scorer, pool_samples), progress=True)  # [P, d]
    test_x, test_y = pooled_features(scorer.model, _records(scorer, test_samples), progress=True)  # [T, d]
    table = _grasp_table(pool_samples)
    label_one = _labeller(load_manifest(args.data))
    hidden = scorer.config.readout_hidden
    curves = {strategy: [] for strategy in args.strategies}
    label_cache: dict[int, float] = {}

    def label(idx: int, rng) -> float:  # the labeller is called once per grasp, whatever the strategy
        if idx not in label_cache:
            s, g = table[idx]
            smp = pool_samples[s]
            label_cache[idx] = label_one(np.asarray(smp.grasps[g], np.float64),
                                         np.asarray(smp.contact_normals[g], np.float64), smp.center, smp.radius, rng)
        return label_cache[idx]

    for strategy in curves:
        for seed in range(args.seeds):
            rng = np.random.default_rng([args.seed, seed])
            labelled = list(rng.permutation(len(table))[:args.start])
            curve = []
            for round_ in range(args.rounds + 1):
                y = torch.tensor([label(i, rng) for i in labelled], dtype=torch.float32)
                ens = fit_readout_ensemble(pool_x[labelled], y, args.members, hidden, args.epochs, seed, min_steps=300)
                with torch.no_grad():
                    test_p = torch.sigmoid(ens(test_x)).mean(0).numpy()
                curve.append((len(labelled), auc(test_p, test_y.numpy() >= STABLE_THRESHOLD)))
                print(f"{strategy} seed {seed} round {round_}: {len(labelled)} labels, held-out AUC {curve[-1][1]:.3f}",
                      flush=True)
                if round_ == args.rounds:
                    break
                rest = np.setdiff1d(np.arange(len(table)), labelled)
                if strategy in ("sigma", "diverse"):
                    with torch.no_grad():
                        sigma = torch.sigmoid(ens(pool_x[rest])).std(0)
                    score = acquisition_scores(sigma, pool_x[rest], pool_x[labelled])
                    if strategy == "sigma":
                        picks = rest[np.argsort(-score.numpy(), kind="stable")[:args.batch]]
                    else:
                        picks = rest[diverse_batch(score, pool_x[rest], pool_x[labelled], args.batch)]
                else:
                    picks = rng.choice(rest, size=min(args.batch, len(rest)), replace=False)
                labelled += [int(i) for i in picks]
            curves[strategy].append(curve)
    result = {"settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
              "curves": curves, "labeller_calls": len(label_cache)}
    result["rotated_copies"] = {"equivariant": _rotated_copies_rank(scorer, pool_samples, pool_x, table, label, args)}
    if args.baseline_weights is not None:  # the same check with the non-invariant baseline's own ensemble
        base = GraspScorer.from_checkpoint(args.baseline_weights, device="cpu")
        base_x, _ = pooled_features(base.model, _records(base, pool_samples), progress=True)
        result["rotated_copies"]["baseline"] = _rotated_copies_rank(base, pool_samples, base_x, table, label, args)
    return result


def _rotated_copies_rank(scorer, pool_samples, pool_x, table, label, args) -> dict:
    """Rotated copies of labelled clouds vs the unlabelled pool: where they rank by σ and by the acquisition
    score (σ faded out near a labelled grasp's features), 1.0 = picked last."""
    from grasp_equi.training.ensemble import acquisition_scores, fit_readout_ensemble, pooled_features

    rng = np.random.default_rng([args.seed, 99])
    clouds = sorted(rng.permutation(len(pool_samples))[:args.rotated_clouds])
    labelled = [i for i, (s, _) in enumerate(table) if s in set(clouds)]
    y = torch.tensor([label(i, rng) for i in labelled], dtype=torch.float32)
    ens = fit_readout_ensemble(pool_x[labelled], y, args.members, scorer.config.readout_hidden, args.epochs,
                               args.seed, min_steps=300)
    copies_x, _ = pooled_features(scorer.model, _records(scorer, _rotated([pool_samples[c] for c in clouds], 7)))
    rest = np.setdiff1d(np.arange(len(table)), labelled)
    with torch.no_grad():
        sigma_rest = torch.sigmoid(ens(pool_x[rest])).std(0)
        sigma_copies = torch.sigmoid(ens(copies_x)).std(0)
        sigma_originals = torch.sigmoid(ens(pool_x[labelled])).std(0)
    acq_rest = acquisition_scores(sigma_rest, pool_x[rest], pool_x[labelled]).numpy()
    acq_copies = acquisition_scores(sigma_copies, copies_x, pool_x[labelled]).numpy()
    sigma_rest, sigma_copies = sigma_rest.numpy(), sigma_copies.numpy()

    def rank(copies, rest_values):  # fraction of the unlabelled pool ranked before each copy (1.0: last)
        return (rest_values[None, :] > copies[:, None]).mean(axis=1) + 0.5 * (rest_values[None, :] == copies[:, None]).mean(axis=1)

    by_sigma, by_acq = rank(sigma_copies, sigma_rest), rank(acq_copies, acq_rest)
    picked = np.argsort(-np.concatenate([acq_rest, acq_copies]), kind="stable")[:args.batch]  # one batch's picks
    scale = float(pool_x.norm(dim=1).median())
    to_labelled = torch.cdist(copies_x, pool_x[labelled]).min(dim=1).values / scale  # [copies]
    between = torch.cdist(pool_x[labelled], pool_x[labelled])
    between.fill_diagonal_(float("inf"))
    return {"model": scorer.name, "clouds": len(clouds), "copies": int(len(sigma_copies)),
            "max_abs_sigma_change_vs_original": float(np.abs(sigma_copies - sigma_originals.numpy()).max()),
            "median_rank_by_sigma": float(np.median(by_sigma)),
            "median_rank_by_acquisition": float(np.median(by_acq)), "min_rank_by_acquisition": float(by_acq.min()),
            "copies_in_next_batch": int((picked >= len(acq_rest)).sum()), "batch": args.batch,
            "max_feature_distance_to_a_labelled_grasp": float(to_labelled.max()),
            "min_feature_distance_between_distinct_labelled_grasps": float(between.min() / scale)}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    names = {"sigma": ("largest σ", "#2e86de"), "diverse": ("σ, diverse batch", "#e67e22"), "random": ("random", "#999999")}
    for strategy, runs in result["curves"].items():
        curves = np.array(runs)  # [seeds, rounds, 2]
        x, y = curves[0, :, 0], curves[:, :, 1]
        name, color = names[strategy]
        ax.plot(x, y.mean(0), marker="o", color=color, label=f"{name} ({len(curves)} seeds)")
        ax.fill_between(x, y.min(0), y.max(0), color=color, alpha=0.2)
    ax.set_xlabel("labelled grasps (robust force-closure labeller calls)")
    ax.set_ylabel("held-out AUC (test families)")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("last-layer ensemble on the frozen invariant network", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--start", type=int, default=300)
    p.add_argument("--batch", type=int, default=300)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--members", type=int, default=5)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--pool-clouds", type=int, default=1500)
    p.add_argument("--test-clouds", type=int, default=400)
    p.add_argument("--rotated-clouds", type=int, default=40)
    p.add_argument("--baseline-weights", type=Path, help="also run the rotated-copies check with this (non-invariant) "
                                                           "baseline's own last-layer ensemble")
    p.add_argument("--strategies", nargs="+", choices=("sigma", "diverse", "random"),
                   default=["sigma", "diverse", "random"])
    p.add_argument("--force", action="store_true")
    args = p.parse_args(argv)
    from grasp_equi.fileio import json_text

    out = args.out / "active_learning.json"
    if out.exists() and not args.force:
        print(f"active_learning: {out} exists; pass --force to replace it", file=sys.stderr)
        return 1
    result = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    out.write_text(json_text(result, indent=1) + "\n")
    plot(result, args.out / "active_learning.png")
    print(f"wrote {out} and {args.out / 'active_learning.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
