"""Publishing a trained checkpoint: copy it into the weights folder with its held-out
evaluation in the checkpoint's info, and (re)write ``MODEL_CARD.md`` from every checkpoint
in that folder, so the card always describes the files next to it."""

from __future__ import annotations

import json
from pathlib import Path

from grasp_equi.checkpoint import read_checkpoint, save_checkpoint
from grasp_equi.fileio import json_text

MAX_BYTES = 5 * 1024 * 1024
CARD_ORDER = ("grasp_equi.safetensors", "baseline.safetensors", "baseline_noaug.safetensors")


def publish(best: Path, target: Path, data_dir: Path, device: str = "auto", progress: bool = True,
            max_clouds: int | None = None) -> dict:
    """Evaluate ``best`` on the test families, save it as ``target`` with the results, write the card."""
    from grasp_equi.evaluate import calibration_plot, evaluate

    results, res = evaluate(best, data_dir, "test", max_clouds=max_clouds, device=device, progress=progress,
                            rotate=True)
    state, config, info = read_checkpoint(best)
    info["heldout"] = _compact(results)
    target.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(target, _Weights(state), config, info)
    if target.stat().st_size > MAX_BYTES:
        raise ValueError(f"{target}: {target.stat().st_size / 1e6:.1f} MB exceeds the 5 MB budget for shipped weights")
    stem = target.with_suffix("")
    (stem.parent / f"{stem.name}_heldout.json").write_text(json_text(results) + "\n")
    calibration_plot(res, stem.parent / f"{stem.name}_calibration.png",
                     f"{target.name}: held-out families, random poses")
    write_model_card(target.parent)
    return results


class _Weights:
    """Already-read tensors in the shape ``save_checkpoint`` expects (no network rebuild)."""

    def __init__(self, state: dict):
        self._state = state

    def state_dict(self) -> dict:
        return self._state


def _compact(results: dict) -> dict:
    """The parts of an evaluation the card needs (the full JSON sits beside the weights)."""
    keep = ("families", "clouds", "rotated", "overall", "by_view", "by_view_k", "by_k", "by_family", "invariance")
    return {k: results[k] for k in keep if k in results}


def _fmt(x) -> str:
    return "–" if x is None or (isinstance(x, float) and x != x) else f"{x:.3f}"


def _card_section(path: Path) -> str:
    _, config, info = read_checkpoint(path)
    held = info.get("heldout", {})
    lines = [f"## `{path.name}` ({config.architecture})", ""]
    train, val = info.get("train_data", {}), info.get("val_data", {})
    settings = info.get("settings", {})
    lines += [
        f"- **Training data**: {train.get('clouds', '?')} clouds ({train.get('partial_clouds', '?')} single-view "
        f"partial), {train.get('grasps', '?')} labelled grasps, K per grasp: {train.get('grasps_per_k', {})}, "
        f"stable fraction {_fmt(train.get('stable_fraction'))}; fraction of training objects used: "
        f"{info.get('fraction', 1.0)}.",
        f"- **Training families**: {', '.join(train.get('families', []))}.",
        f"- **Validation families** (early stopping): {', '.join(val.get('families', []))}.",
        f"- **Held-out test families** (never seen in training): {', '.join(held.get('families', []))}.",
        f"- **Training**: {info.get('step', '?')} steps to the best validation AUC {_fmt(info.get('val_auc'))}, "
        f"{info.get('train_seconds', 0) / 60:.0f} min on {info.get('hardware', '?')}; torch {info.get('torch', '?')}; "
        f"rotation augmentation: {settings.get('augment_rotations', False)}.",
        f"- **Command**: `{info.get('command', '?')}`" + (
            " (a resumed run: it continued an earlier run in the same folder; steps and time count every part)"
            if "--resume" in str(info.get("command", "")) else ""),
        f"- **Model config**: `{json.dumps(config.to_dict())}`",
        f"- **Optimiser settings**: `{json.dumps(settings)}`",
        "",
    ]
    if held:
        lines += [f"Held-out results ({held.get('clouds')} clouds, every cloud in a random pose"
                  " (rotation + translation), scored through `GraspScorer` with estimated normals):", "",
                  "| view | K | grasps | stable | AUC | accuracy | top-1 precision | Brier |",
                  "|---|---|---|---|---|---|---|---|"]
        for view, per_k in held.get("by_view_k", {}).items():
            for k, m in per_k.items():
                lines.append(f"| {view} | {k} | {m['num_grasps']} | {_fmt(m['stable_fraction'])} | {_fmt(m['auc'])} | "
                             f"{_fmt(m['accuracy'])} | {_fmt(m.get('top1_precision'))} | {_fmt(m['brier'])} |")
            v = held.get("by_view", {}).get(view)
            if v:
                lines.append(f"| **{view}** | all | {v['num_grasps']} | {_fmt(v['stable_fraction'])} | "
                             f"**{_fmt(v['auc'])}** | {_fmt(v['accuracy'])} | {_fmt(v.get('top1_precision'))} | "
                             f"{_fmt(v['brier'])} |")
        o = held.get("overall", {})
        lines += [f"| **all** | all | {o.get('num_grasps')} | {_fmt(o.get('stable_fraction'))} | "
                  f"**{_fmt(o.get('auc'))}** | {_fmt(o.get('accuracy'))} | {_fmt(o.get('top1_precision'))} | "
                  f"{_fmt(o.get('brier'))} |", ""]
        inv = held.get("invariance", {})
        lines += [f"Invariance error on the held-out data: max |Δscore| = {inv.get('max_abs', float('nan')):.2e}, "
                  f"mean {inv.get('mean_abs', float('nan')):.2e} over {inv.get('grasps')} grasps on "
                  f"{inv.get('clouds')} clouds ({inv.get('motions', '')}).", ""]
        fams = held.get("by_family", {})
        if fams:
            lines += ["Per held-out family: " + "; ".join(f"{f} AUC {_fmt(m['auc'])}" for f, m in fams.items()) + ".",
                      ""]
    return "\n".join(lines + _held_lines(info.get("held")))


def _held_lines(held: dict | None) -> list[str]:
    """The P(held) output's section (``grasp-equi fit-held``'s report), empty for models without it."""
    if not held:
        return []
    lines = [f"**P(held)** (the default output): {held['members']} readouts on the frozen network's grasp features, "
             f"fitted to {held['train_grasps']} training-family grasps labelled by randomised MuJoCo close/lift/shake "
             "trials (`grasp-equi fit-held`). Against the trials (held = at least half of a grasp's trials held):", "",
             "| split | K | grasps | held rate | P(held) AUC | P(held) ECE | P(force closure) AUC |", "|---|---|---|---|---|---|---|"]
    for split in ("val", "test"):
        section = held.get(split, {})
        for k, m in {"all": section, **section.get("per_k", {})}.items():
            if m.get("grasps"):
                lines.append(f"| {split} | {k} | {m['grasps']} | {_fmt(m['held_rate'])} | {_fmt(m['held_auc'])} | "
                             f"{_fmt(m['held_ece'])} | {_fmt(m['force_closure_auc'])} |")
    return lines + [""]


def write_model_card(weights_dir: Path) -> Path:
    """(Re)write ``weights_dir/MODEL_CARD.md`` from the checkpoints in the folder."""
    weights_dir = Path(weights_dir)
    files = sorted(weights_dir.glob("*.safetensors"),
                   key=lambda p: (CARD_ORDER.index(p.name) if p.name in CARD_ORDER else 99, p.name))
    parts = [
        "# grasp_equi model card",
        "",
        "Grasp stability scorers: input an object point cloud (N x 3, metres) and grasps (K = 2..5",
        "contact points each); output per grasp P(held) (the object stays in the hand through close, lift and",
        "shake; learned from MuJoCo trials, for files with a P(held) section) and P(force closure) (the network's",
        "own answer, trained on robust force-closure labels: P(force closure) under perturbed contacts and",
        "friction, Coulomb friction mu = 0.5, soft-finger contacts for K = 2; see docs/design.md). The held-out",
        "table below is P(force closure) against that label. `grasp_equi.safetensors` is the SE(3)-invariant e3nn network",
        "loaded by `GraspScorer.from_checkpoint()`; the baseline files are the non-equivariant PointNet",
        "comparison (`GraspScorer.from_checkpoint('grasp_equi/weights/baseline.safetensors')`).",
        "",
        "Intended use: ranking candidate grasps on single objects 2-15 cm across, seen as complete or",
        "single-view clouds. The force-closure label is analytic, not physical: on held-out",
        "families it agrees with MuJoCo lift-and-shake trials on 78.5 % of grasps (docs/physics.md,",
        "physics validation), and force closure ignores the object's weight; P(held) is fitted to trials.",
        "Training objects are procedural shapes; held-out numbers below are on families never seen in",
        "training, not on real household scans. `make train` trains the shipped architecture from scratch;",
        "each section's command says how that file was made (`--init`: fine-tuned from earlier weights).",
        "",
    ]
    for f in files:
        parts.append(_card_section(f))
    path = weights_dir / "MODEL_CARD.md"
    path.write_text("\n".join(parts).rstrip() + "\n")
    return path
