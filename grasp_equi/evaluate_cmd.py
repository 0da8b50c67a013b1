"""``grasp-equi evaluate``: metrics of a checkpoint on a dataset's held-out families.

Writes the metrics to ``--json`` (and a calibration plot beside it, or to ``--png``): outputs
go only where the user points. The work is done by ``grasp_equi.evaluate``; torch is imported
only when the command runs, so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from grasp_equi.cli_types import device, nonneg_int, positive_int
from grasp_equi.fileio import check_outputs, json_text
from grasp_equi.paths import SHIPPED_WEIGHTS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", type=Path, default=SHIPPED_WEIGHTS, help="checkpoint (default: shipped)")
    parser.add_argument("--data", required=True, type=Path, help="dataset directory")
    parser.add_argument("--json", required=True, type=Path, help="metrics output (.json)")
    parser.add_argument("--png", type=Path, help="calibration plot (default: the JSON path with .png)")
    parser.add_argument("--split", default="test", choices=["train", "val", "test", "all"],
                        help="which families to evaluate on (default: the held-out test families)")
    parser.add_argument("--families", nargs="+", help="explicit families instead of --split")
    parser.add_argument("--rotate", action="store_true", help="score each cloud in a random rigid pose")
    parser.add_argument("--max-clouds", type=positive_int, help="evaluate at most this many clouds (seeded subset)")
    parser.add_argument("--invariance-clouds", type=nonneg_int, default=20,
                        help="clouds scored twice (original and randomly moved) for the invariance error")
    parser.add_argument("--device", type=device, default="auto")
    parser.add_argument("--seed", type=nonneg_int, default=0)
    parser.add_argument("--threads", type=positive_int, help="torch CPU threads")
    parser.add_argument("--force", action="store_true", help="replace --json / --png if they exist")
    parser.add_argument("--quiet", action="store_true")


def run(args) -> int:
    """Evaluate, write ``--json`` and the calibration PNG; 0 on success. Raises ValueError /
    FileNotFoundError naming the option."""
    if not args.weights.is_file():
        raise FileNotFoundError(f"--weights {args.weights}: no such file")
    if not args.data.is_dir():
        raise FileNotFoundError(f"--data {args.data}: no such folder")
    png = args.png or args.json.with_suffix(".png")
    check_outputs({"--json": args.json, "--png": png}, args.force, plots=("--png",))  # before any work
    import torch

    from grasp_equi.evaluate import calibration_plot, evaluate
    from grasp_equi.scorer import DEFAULT_THREADS, GraspScorer

    if args.threads:
        torch.set_num_threads(args.threads)
    scorer = GraspScorer.from_checkpoint(args.weights, device=args.device, threads=args.threads or DEFAULT_THREADS)
    out, res = evaluate(args.weights, args.data, args.split, args.families, args.rotate, args.max_clouds,
                        args.invariance_clouds, args.device, args.seed, not args.quiet, scorer=scorer)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json_text(out) + "\n")
    calibration_plot(res, png, f"{out['model']} on {out['split']} families ({out['clouds']} clouds"
                               f"{', random poses' if args.rotate else ''})")
    o, inv = out["overall"], out["invariance"]
    invariance = ("invariance not measured" if inv["max_abs"] is None else
                  f"invariance max |d| {inv['max_abs']:.2e} (adversarial clouds: "
                  f"{max(inv.get('adversarial', {0: 0}).values()):.2e})")
    print(f"{out['clouds']} clouds, {o['num_grasps']} grasps scored ({100 * o['judged_fraction']:.1f} % judged), "
          f"P(force closure) vs the analytic label: AUC {o['auc']:.3f}, accuracy {o['accuracy']:.3f}, "
          f"Brier {o['brier']:.3f}, top-1 {o['top1_precision']:.3f}; {invariance}; wrote {args.json} and {png}")
    for view, per_k in out["by_view_k"].items():
        print(f"  {view}: " + ", ".join(f"K={k} AUC {m['auc']:.3f} ({m['num_grasps']}, "
                                       f"{100 * m['judged_fraction']:.0f} % judged)" for k, m in per_k.items()))
    if "held" in out:
        print("  P(held) vs physics trials: " + (", ".join(
            f"K={k} AUC {m['held_auc']:.3f} (P(force closure) {m['force_closure_auc']:.3f}), ECE {m['held_ece']:.3f} "
            f"({m['grasps']})" for k, m in out["held"]["by_k"].items())
            or "none here (no grasp of this data has trials: grasp-equi label-physics)"))
    return 0
