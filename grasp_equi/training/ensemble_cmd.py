"""``grasp-equi fit-ensemble``: add a last-layer ensemble (uncertainty) to trained weights.

Arguments and checks only; the work is ``grasp_equi.training.ensemble``. The output is a new
checkpoint (the same network plus ``--members`` readouts); ``GraspScorer.score(...,
return_std=True)`` then returns the members' mean and spread. Existing files are replaced
only with ``--force``.
"""

from __future__ import annotations

import time
from pathlib import Path

from grasp_equi.cli_types import nonneg_int, positive_int
from grasp_equi.fileio import check_outputs, json_text


def add_arguments(parser) -> None:
    parser.add_argument("--weights", type=Path, required=True, help="trained checkpoint (.safetensors)")
    parser.add_argument("--data", type=Path, required=True, help="the dataset it was trained on (train/val/test splits)")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint to write (the network plus the ensemble)")
    parser.add_argument("--members", type=positive_int, default=8, help="readouts in the ensemble (<= 64)")
    parser.add_argument("--epochs", type=positive_int, default=10, help="passes over the training grasps per member")
    parser.add_argument("--seed", type=nonneg_int, default=0)
    parser.add_argument("--max-clouds", type=positive_int, help="use at most this many training clouds")
    parser.add_argument("--in-distribution", type=Path, metavar="DIR",
                        help="a dataset of new objects of the training families (another --seed): its mean sigma is "
                             "reported beside the held-out families' (out of distribution)")
    parser.add_argument("--force", action="store_true", help="replace --out if it exists")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _uncertainty(model, config, records) -> dict:
    import numpy as np
    import torch

    from grasp_equi.training.ensemble import labelled_batches, uncertainty_report

    means, stds, labels = [], [], []
    with torch.no_grad():
        for batch, y in labelled_batches(records):
            p = torch.sigmoid(model.ensemble_logits(batch, model.encode(batch))).double()  # [M, G]
            means.append(p.mean(0))
            stds.append(p.std(0, unbiased=False))
            labels.append(y.double())

    cat = lambda xs: torch.cat(xs).numpy() if xs else np.zeros(0)  # noqa: E731
    return uncertainty_report(cat(means), cat(stds), cat(labels))


def run(args) -> int:
    if args.members > 64:
        raise ValueError(f"--members must be at most 64; got {args.members}")
    if not args.weights.is_file():
        raise FileNotFoundError(f"--weights {args.weights}: no such file")
    if not args.data.is_dir():
        raise FileNotFoundError(f"--data {args.data}: no such folder")
    check_outputs({"--out": args.out}, args.force)
    from grasp_equi.checkpoint import save_checkpoint
    from grasp_equi.scorer import GraspScorer
    from grasp_equi.training.dataset import prepare_records_for
    from grasp_equi.training.ensemble import fit_readout_ensemble, pooled_features, with_ensemble
    from grasp_equi.training.splits import load_split

    start = time.perf_counter()
    scorer = GraspScorer.from_checkpoint(args.weights, device="cpu")
    model, config = scorer.model, scorer.config
    if args.in_distribution is not None and not args.in_distribution.is_dir():
        raise FileNotFoundError(f"--in-distribution {args.in_distribution}: no such folder")

    def records(split, limit=None, data=args.data):
        samples = load_split(data, split)[:limit]
        return prepare_records_for(samples, config, progress=not args.quiet)

    train = records("train", args.max_clouds)
    features, labels = pooled_features(model, train, progress=not args.quiet)
    ensemble = fit_readout_ensemble(features, labels, args.members, config.readout_hidden, args.epochs, args.seed,
                                    progress=not args.quiet)
    new_model, new_config = with_ensemble(model, config, ensemble)
    report = {"members": args.members, "epochs": args.epochs, "seed": args.seed, "train_grasps": int(len(labels)),
              "weights": str(args.weights), "data": str(args.data)}
    for split in ("val", "test"):
        held = records(split, 150)
        if held:
            report[split] = _uncertainty(new_model, new_config, held)
    report["train"] = _uncertainty(new_model, new_config, train[:150])
    if args.in_distribution is not None:
        report["in_distribution"] = _uncertainty(new_model, new_config, records("train", 150, args.in_distribution))
    report["seconds"] = time.perf_counter() - start
    save_checkpoint(args.out, new_model, new_config, {**scorer.info, "ensemble": report})
    print(json_text({k: v for k, v in report.items() if k in ("train", "in_distribution", "val", "test")}, indent=1))
    print(f"wrote {args.out} ({args.members} members, {report['seconds']:.0f} s)")
    return 0
