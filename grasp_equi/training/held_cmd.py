"""``grasp-equi fit-held``: give trained weights a second answer, P(held), learned from physics trials.

Arguments and checks only; the work is ``grasp_equi.training.ensemble`` (the same last-layer
readouts as the uncertainty ensemble). The network is frozen; ``--members`` readouts on its
pooled invariant grasp features start as copies of its force-closure readout (a related answer: the
best start measured, docs/physics.md) and are fitted, each on its own bootstrap sample, to the fraction of
MuJoCo trials that held (``grasp-equi label-physics`` writes ``DATA/physics/``), with plain
(unweighted) BCE so that P(held) is calibrated. Grasps without trials are left out, and so are shards
whose label file does not fit them (another grasp count: labels of an older shard; not rates in [0, 1]),
with a warning naming them; only the equivariant network takes P(held) readouts. The output
is a new checkpoint whose ``score()`` answers P(held) by default (P(force closure) on request);
an existing file is replaced only with ``--force``. The report gives, per split and K, the AUC and
calibration error of P(held) against the trials, beside the force-closure output's AUC.
"""

from __future__ import annotations

import time
from pathlib import Path

from grasp_equi.cli_types import nonneg_int, positive_float, positive_int
from grasp_equi.fileio import check_outputs, json_text


def add_arguments(parser) -> None:
    parser.add_argument("--weights", type=Path, required=True, help="trained checkpoint (.safetensors)")
    parser.add_argument("--data", type=Path, required=True,
                        help="a generated dataset with physics labels (grasp-equi label-physics --data DATA)")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint to write (the network plus P(held))")
    parser.add_argument("--members", type=positive_int, default=4, help="P(held) readouts (<= 64; default %(default)s); their spread is σ")
    parser.add_argument("--epochs", type=positive_int, default=10, help="passes over the labelled grasps per member (default %(default)s)")
    parser.add_argument("--lr", type=positive_float, default=1e-3, help="Adam learning rate (default %(default)s)")
    parser.add_argument("--seed", type=nonneg_int, default=0)
    parser.add_argument("--force", action="store_true", help="replace --out if it exists")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def held_report(model, records) -> dict:
    """P(held) and P(force closure) against the trials' P(held) on ``records``' simulated grasps, overall
    and per K: grasps, held rate, AUC (held = P(held) >= 0.5 over the trials) and calibration error."""
    import numpy as np
    import torch

    from grasp_equi import keys
    from grasp_equi.physics.agreement import calibration_error
    from grasp_equi.training.ensemble import labelled_batches
    from grasp_equi.training.metrics import STABLE_THRESHOLD, auc

    held_p, fc_p, target, ks = [], [], [], []
    with torch.no_grad():
        for batch, y in labelled_batches(records, keys.OUTPUT_HELD):
            feats = model.encode(batch)
            held_p.append(torch.sigmoid(model.held_logits(batch, feats)).mean(0))  # [G]
            fc_p.append(torch.sigmoid(model.score_grasps(batch, feats)))  # [G]
            target.append(y.numpy())
            ks.append(batch[keys.GRASP_NUM_CONTACTS].numpy())
    if not target:
        return {"grasps": 0}
    held_p, fc_p = torch.cat(held_p).double().numpy(), torch.cat(fc_p).double().numpy()
    target, ks = np.concatenate(target), np.concatenate(ks)

    def section(sel):
        held = target[sel] >= STABLE_THRESHOLD
        return {"grasps": int(sel.sum()), "held_rate": float(held.mean()) if sel.any() else float("nan"),
                "held_auc": auc(held_p[sel], held), "held_ece": calibration_error(held_p[sel], target[sel]),
                "force_closure_auc": auc(fc_p[sel], held)}

    out = section(np.ones(len(target), bool))
    out["per_k"] = {str(k): section(ks == k) for k in sorted(set(ks.tolist()))}
    return out


def _force_closure_readouts(model, members: int):
    """``members`` copies of the invariant head's force-closure readout, or None (other heads: random start)."""
    import torch

    from grasp_equi.model.ensemble import ReadoutEnsemble

    norm, readout = getattr(model.head, "norm", None), getattr(model.head, "readout", None)
    if not isinstance(norm, torch.nn.LayerNorm) or not isinstance(readout, torch.nn.Sequential) or len(readout) != 3:
        return None
    return ReadoutEnsemble.from_readout(norm, readout, members)


def run(args) -> int:
    if args.members > 64:
        raise ValueError(f"--members must be at most 64; got {args.members}")
    if not args.weights.is_file():
        raise FileNotFoundError(f"--weights {args.weights}: no such file")
    if not args.data.is_dir():
        raise FileNotFoundError(f"--data {args.data}: no such folder (give a dataset made by grasp-equi generate)")
    if not (args.data / "physics").is_dir():
        raise FileNotFoundError(f"--data {args.data}: no physics labels (run grasp-equi label-physics --data "
                                f"{args.data} first)")
    check_outputs({"--out": args.out}, args.force)
    import sys

    import numpy as np

    from grasp_equi import keys
    from grasp_equi.checkpoint import save_checkpoint
    from grasp_equi.data.shards import unusable_physics_labels
    from grasp_equi.scorer import GraspScorer
    from grasp_equi.training.dataset import prepare_records_for
    from grasp_equi.training.ensemble import fit_readout_ensemble, pooled_features, with_readouts
    from grasp_equi.training.splits import load_split

    start = time.perf_counter()
    scorer = GraspScorer.from_checkpoint(args.weights, device="cpu")
    model, config = scorer.model, scorer.config
    if config.architecture != "equivariant":  # the baseline has no P(held) readouts
        raise ValueError(f"--weights {args.weights}: a {config.architecture!r} model; P(held) readouts need the "
                         "'equivariant' network")
    unusable = unusable_physics_labels(args.data)
    unused = (f"{len(unusable)} shard(s) have physics labels that do not fit them (e.g. {unusable[0]}: another "
              f"grasp count or not P(held) rates), redo them with grasp-equi label-physics --data {args.data} "
              "--force") if unusable else ""
    if unused:
        print(f"grasp-equi fit-held: warning: {unused}", file=sys.stderr)

    def records(split):
        samples = [s for s in load_split(args.data, split) if s.p_held is not None]  # labelled shards only
        if split == "train" and not any(np.isfinite(s.p_held).any() for s in samples):
            raise ValueError(f"--data {args.data}: no physics-labelled grasps in the train split"
                             + (f"; {unused}" if unused else ""))
        return prepare_records_for(samples, config, progress=not args.quiet)

    train = records("train")
    features, labels = pooled_features(model, train, progress=not args.quiet, target=keys.OUTPUT_HELD)
    readouts = fit_readout_ensemble(features, labels, args.members, config.readout_hidden, args.epochs, args.seed,
                                    lr=args.lr, progress=not args.quiet, balanced=False,
                                    start=_force_closure_readouts(model, args.members))
    new_model, new_config = with_readouts(model, config, "held", readouts)
    report = {"members": args.members, "epochs": args.epochs, "seed": args.seed, "train_grasps": int(len(labels)),
              "weights": str(args.weights), "data": str(args.data), "train": held_report(new_model, train)}
    for split in ("val", "test"):
        report[split] = held_report(new_model, records(split))
    report["seconds"] = time.perf_counter() - start
    save_checkpoint(args.out, new_model, new_config, {**scorer.info, "held": report})
    print(json_text({k: report[k] for k in ("train", "val", "test")}, indent=1))
    print(f"wrote {args.out} (P(held) from {report['train_grasps']} simulated grasps, {report['seconds']:.0f} s)")
    return 0
