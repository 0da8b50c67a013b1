#!/usr/bin/env python3
"""Data-efficiency study: equivariant model vs PointNet baseline (with and without rotation
augmentation) trained on fractions of the training objects, all evaluated on the held-out
test families with every cloud in a random orientation.

    .venv/bin/python scripts/data_efficiency.py --data data/default --out runs/study \
        --steps 1500 --minutes 20 --plot docs/data_efficiency.png

Every run trains with the same settings and budget (steps and wall clock, early stopping on
the val families) and keeps its result in ``OUT/<run>/result.json``: rerunning the script
skips finished runs, so the study can be spread over several sessions. The clouds are
preprocessed once; evaluation rotates the preprocessed tensors, which equals preprocessing
rotated clouds because sampling and normal estimation commute with rotations
(``tests/test_invariance.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from grasp_equi.model import ModelConfig, build_model
from grasp_equi.train import BASELINE_MODEL, SHIPPED_MODEL
from grasp_equi.training import metrics
from grasp_equi.training.dataset import prepare_records_for, random_rotations
from grasp_equi.training.loop import TrainSettings, fit, predict, validation_picks
from grasp_equi.training.splits import load_split, subsample_objects

VARIANTS = {
    # name: (model config overrides, rotation augmentation, learning rate)
    "equivariant": (SHIPPED_MODEL, False, 3e-3),
    "pointnet": (BASELINE_MODEL, False, 5e-3),
    "pointnet+aug": (BASELINE_MODEL, True, 5e-3),
}
STYLE = {"equivariant": ("tab:blue", "o-"), "pointnet": ("tab:red", "s--"), "pointnet+aug": ("tab:orange", "^-.")}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="folder for the runs and results")
    p.add_argument("--fractions", type=float, nargs="+", default=[1 / 16, 1 / 4, 1.0])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--steps", type=int, default=1500, help="max steps per run")
    p.add_argument("--minutes", type=float, help="max wall-clock minutes per run")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--grasps-per-cloud", type=int, default=64)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--patience", type=int, default=5)
    p.add_argument("--test-clouds", type=int, default=400, help="held-out clouds evaluated per run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int)
    p.add_argument("--plot", type=Path, default=Path("docs/data_efficiency.png"))
    p.add_argument("--only-report", action="store_true", help="no training: table + plot from finished runs")
    p.add_argument("--merge", nargs="*", default=[], type=Path,
                   help="other study folders whose finished runs join the table and plot")
    return p.parse_args(argv)


def evaluate_rotated(model, records, picks, seed: int) -> dict:
    """AUC etc. on held-out clouds, each in a random orientation (overall, complete, partial)."""
    rot = random_rotations(len(picks), np.random.default_rng([seed, 21]))
    probs, labels = predict(model, records, picks, "cpu", rotations=rot)
    partial = np.concatenate([np.full(len(g), records[i].partial) for i, g in picks])
    k = np.concatenate([records[i].num_contacts[g] for i, g in picks])
    out = {"all": metrics.summary(probs, labels)}
    for name, mask in (("complete", ~partial), ("partial", partial), ("k2", k == 2), ("k3_5", k > 2)):
        if mask.any():
            out[name] = metrics.summary(probs[mask], labels[mask])
    return out


def run_study(args) -> list[dict]:
    t0 = time.perf_counter()
    cfg0 = ModelConfig(**SHIPPED_MODEL)
    assert all(ModelConfig(**m).num_nodes == cfg0.num_nodes for m, _, _ in VARIANTS.values())
    cache = args.out / "cache"
    train_all = prepare_records_for(load_split(args.data, "train"), cfg0, cache=cache / "train.safetensors")
    val = prepare_records_for(load_split(args.data, "val"), cfg0, cache=cache / "val.safetensors")
    test = prepare_records_for(load_split(args.data, "test"), cfg0, cache=cache / "test.safetensors")
    test_picks = validation_picks(test, args.test_clouds, 128, seed=args.seed + 1)
    print(f"preprocessed {len(train_all)}/{len(val)}/{len(test)} clouds in {time.perf_counter() - t0:.0f} s", flush=True)
    results = []
    for fraction in args.fractions:
        train = subsample_objects(train_all, fraction, args.seed)
        for variant in args.variants:
            name = f"{variant}_f{fraction:.4f}"
            result_file = args.out / name / "result.json"
            if result_file.is_file():
                results.append(json.loads(result_file.read_text()))
                continue
            if args.only_report:
                continue
            overrides, augment, lr = VARIANTS[variant]
            config = ModelConfig(**overrides)
            settings = TrainSettings(steps=args.steps, max_minutes=args.minutes, lr=lr, batch_clouds=args.batch,
                                     warmup_steps=min(50, max(1, args.steps // 10)),
                                     grasps_per_cloud=args.grasps_per_cloud, eval_every=args.eval_every,
                                     patience=args.patience, augment_rotations=augment, seed=args.seed)
            torch.manual_seed(args.seed)
            model = build_model(config)
            print(f"== {name}: {len(train)} clouds, {len({r.object_id for r in train})} objects", flush=True)
            summary = fit(model, config, settings, train, val, args.out / name, "cpu",
                          extra_info={"fraction": fraction, "study": True})
            from grasp_equi.checkpoint import load_weights, read_checkpoint

            state, _, _ = read_checkpoint(args.out / name / "best.safetensors")
            load_weights(args.out / name / "best.safetensors", model, state)
            result = {"variant": variant, "fraction": fraction, "train_clouds": len(train),
                      "train_objects": len({r.object_id for r in train}),
                      "train_grasps": int(sum(r.num_grasps for r in train)), "summary": summary,
                      "settings": settings.__dict__, "test": evaluate_rotated(model, test, test_picks, args.seed)}
            result_file.write_text(json.dumps(result, indent=2) + "\n")
            print(f"   test AUC (random poses) {result['test']['all']['auc']:.3f}", flush=True)
            results.append(result)
    return results


def _group(r: dict) -> tuple[int, int, str]:
    """Sort key and label of a result: variant and step budget (several budgets may be merged)."""
    steps = r["settings"]["steps"]
    return list(VARIANTS).index(r["variant"]), steps, f"{r['variant']}, {steps} steps"


def table(results: list[dict]) -> str:
    rows = ["| model, step budget | training objects (fraction) | steps run | train min | held-out AUC, random poses |"
            " complete | partial | K=2 | K=3-5 |", "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(results, key=lambda r: (_group(r)[:2], r["fraction"])):
        t = r["test"]
        cell = lambda key: f"{t[key]['auc']:.3f}" if key in t else "–"  # noqa: E731
        rows.append(f"| {_group(r)[2]} | {r['train_objects']} ({r['fraction']:.3g}) | {r['summary']['steps']} | "
                    f"{r['summary']['train_seconds'] / 60:.0f} | **{t['all']['auc']:.3f}** | {cell('complete')} | "
                    f"{cell('partial')} | {cell('k2')} | {cell('k3_5')} |")
    return "\n".join(rows)


def plot(results: list[dict], path: Path, subtitle: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    budgets = sorted({r["settings"]["steps"] for r in results})
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.8), sharey=True)
    for ax, key, title in zip(axes, ("all", "complete", "partial"), ("all held-out clouds", "complete", "partial")):
        for group in sorted({_group(r) for r in results}):
            rs = sorted((r for r in results if _group(r) == group and key in r["test"]), key=lambda r: r["train_objects"])
            if rs:
                color, style = STYLE[rs[0]["variant"]]
                extra = budgets.index(group[1]) > 0  # larger budgets: dotted, hollow markers
                ax.plot([r["train_objects"] for r in rs], [r["test"][key]["auc"] for r in rs],
                        style[0] + (":" if extra else style[1:]), color=color, label=group[2],
                        markerfacecolor="none" if extra else color)
        ax.set_xscale("log")
        ax.set_xticks(sorted({r["train_objects"] for r in results}))
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set(title=title, xlabel="training objects (log scale)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("AUC on held-out families, random poses")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8)
    fig.suptitle("Data efficiency" + (f" ({subtitle})" if subtitle else ""), fontsize=10)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    results = run_study(args)
    for folder in args.merge:  # finished runs of other budgets (e.g. longer baseline runs)
        results += [json.loads(f.read_text()) for f in sorted(Path(folder).glob("*/result.json"))]
    if not results:
        print("no finished runs", file=sys.stderr)
        return 1
    budget = f"batch {args.batch} clouds, early stopping on val families; 2-core CPU"
    plot(results, args.plot, budget)
    md = table(results)
    (args.out / "table.md").write_text(md + "\n")
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
