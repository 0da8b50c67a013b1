"""The body of ``grasp-equi validate-physics`` (arguments: ``validate_cmd``): analytic labels and model scores against MuJoCo trials.

For objects of held-out families (or the user's meshes) it samples K-contact grasps the way
the dataset does (``--k``: K = 2 for the parallel jaws, 3..5 for the fingertip hand), labels
them with robust force closure, scores them with the model, and runs each grasp in MuJoCo
(close, lift, shake). It reports agreement (accuracy, Cohen's kappa) of labels with outcomes,
the model's AUC against outcomes, per K and per family, and plots outcome rate vs predicted
probability. The jaw-specific checks (labels at the jaws' actual contacts, the calibrated
criterion, jaw drift) cover the K = 2 trials. ``--calibrate`` grid-searches label parameters on the
same trials: run it on TRAINING families only, never on the families you report.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from grasp_equi.data.objects import DEFAULT_SPLITS, FAMILIES, MESH_SUFFIXES, load_mesh_object, make_object
from grasp_equi.fileio import json_text

from .agreement import STABLE_THRESHOLD, agreement, calibration_error, plot_reliability, reliability
from .scene import JawSpec

FALLBACK_DENSITY = 500.0  # kg/m^3 for meshes without a mass


def _test_families(splits: Path | None) -> list[str]:
    if splits is None:
        return list(DEFAULT_SPLITS["test"])
    splits = Path(splits)
    if splits.is_dir():  # a dataset directory
        splits = splits / "splits.json"
    try:
        data = json.loads(Path(splits).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{splits}: cannot read splits ({err})") from None
    test = data.get("test") if isinstance(data, dict) else None
    if not test or not all(isinstance(f, str) for f in test):
        raise ValueError(f"{splits}: needs a 'test' list of family names")
    return list(test)


def _objects(args) -> list:
    """(family, ObjectInfo) for every object of the run, deterministic for --seed."""
    if args.meshes is not None:
        if not args.meshes.is_dir():
            raise ValueError(f"--meshes {args.meshes}: not a directory")
        files = sorted(p for p in args.meshes.iterdir() if p.suffix.lower() in MESH_SUFFIXES)[:args.objects]
        if not files:
            raise ValueError(f"--meshes {args.meshes}: no mesh files ({', '.join(MESH_SUFFIXES)})")
        objects = []
        for path in files:
            try:
                objects.append(load_mesh_object(path, args.units, require_watertight=False))
            except ValueError as err:  # one bad file does not end the run
                print(f"skipped {err}", file=sys.stderr)
        if not objects:
            raise ValueError(f"--meshes {args.meshes}: no usable mesh")
        return objects
    families = args.families or _test_families(args.splits)
    return [make_object(fam, np.random.default_rng([args.seed, FAMILIES.index(fam), i]), name=f"{fam}_{i}")
            for fam in families for i in range(args.objects)]


def _grasps(obj, args, rng, k: int = 2) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """K-contact grasps ``(contacts [G, K, 3], normals [G, K, 3], source name per grasp)``; K > 2 always
    from the dataset's sampler (``--sampler antipodal`` is a two-contact sampler)."""
    from grasp_equi.data.grasps import sample_antipodal
    from grasp_equi.data.labels import SOURCES, candidates

    n = args.grasps_per_object
    if args.sampler == "dataset" or k != 2:
        contacts, normals, source = candidates(obj, k, n, rng, mu=args.label_mu)
        return contacts, normals, [SOURCES[i] for i in source]
    n_wide = int(round(0.4 * n))
    c1, n1 = sample_antipodal(obj, n - n_wide, rng, mu=args.label_mu, cone_scale=1.0)
    c2, n2 = sample_antipodal(obj, n_wide, rng, mu=args.label_mu, cone_scale=2.0)
    return (np.concatenate([c1, c2]).reshape(-1, 2, 3), np.concatenate([n1, n2]).reshape(-1, 2, 3),
            ["antipodal"] * len(c1) + ["antipodal_wide"] * len(c2))


def _rows(obj, k: int, contacts, normals, sources, prob, eps, scores, held_scores) -> list[dict]:
    """One report row per grasp (the trial's outcome is added after the simulation): ``score`` is the
    model's P(force closure), ``held_score`` its P(held) (NaN for models without it)."""
    return [{"object": obj.name, "family": obj.family, "k": k, "source": sources[g], "mass": _mass(obj),
             "center": obj.center.tolist(), "radius": obj.radius, "contacts": contacts[g].tolist(),
             "normals": normals[g].tolist(), "label": float(prob[g]), "epsilon": float(eps[g]),
             "score": float(scores[g]), "held_score": float(held_scores[g])} for g in range(len(contacts))]


def _conditions(args, spec: JawSpec, mass: float, contacts: np.ndarray, index: int, k: int):
    """``(spec, mass, contacts)`` an object's trials run with: as given (``--conditions fixed``), or one draw
    of ``label-physics``' trial conditions from a stream of its own (``randomised``; the grasps, labels and
    scores keep theirs)."""
    if getattr(args, "conditions", "fixed") == "fixed":
        return spec, mass, contacts
    from .label import CONTACT_NOISE, draw_conditions

    rng = np.random.default_rng([args.seed, 2000 + index, k])
    variant, variant_mass = draw_conditions(rng, mass)
    variant = replace(variant, noslip_iterations=spec.noslip_iterations, pad_radius=spec.pad_radius)
    return variant, variant_mass, contacts + rng.normal(scale=CONTACT_NOISE, size=contacts.shape)


def _model_answers(scorer, cloud: np.ndarray, contacts) -> tuple[np.ndarray, np.ndarray]:
    """``(P(force closure) [G], P(held) [G])`` of the model on one cloud (P(held) NaN when it has none)."""
    from grasp_equi import keys

    encoded = scorer.encode(cloud)
    fc = scorer.score_encoded(encoded, contacts, output=keys.OUTPUT_FORCE_CLOSURE)
    held = scorer.score_encoded(encoded, contacts, output=keys.OUTPUT_HELD) if keys.OUTPUT_HELD in scorer.outputs \
        else np.full(len(fc), np.nan)
    return np.asarray(fc, dtype=np.float64), np.asarray(held, dtype=np.float64)


def _mass(obj) -> float:
    if obj.mass > 0:
        return float(obj.mass)
    return float(FALLBACK_DENSITY * obj.mesh.convex_hull.volume)


def _scorer(args):
    """The model to score with, or (None, reason) when there are no weights."""
    from grasp_equi.checkpoint import CheckpointError
    from grasp_equi.scorer import SHIPPED_WEIGHTS, GraspScorer

    if args.weights is None and not SHIPPED_WEIGHTS.is_file():
        return None, f"no shipped weights at {SHIPPED_WEIGHTS} and no --weights: model AUC skipped"
    if args.weights is not None and not args.weights.is_file():
        raise ValueError(f"--weights {args.weights}: no such file")
    try:
        return GraspScorer.from_checkpoint(args.weights, device=args.device), ""
    except CheckpointError as err:
        raise ValueError(f"--weights: {err}") from None


def run(args) -> int:
    from grasp_equi.data.clouds import complete_cloud
    from grasp_equi.quality import label_grasps

    from .runner import ObjectJob, run_jobs

    spec = JawSpec(grip_force=args.grip_force, mu=args.sim_mu, noslip_iterations=args.sim_noslip,
                   pad_radius=JawSpec.pad_radius if args.pads == "fingertips" else 0.0)
    scorer, skip_reason = _scorer(args)
    objects = _objects(args)
    jobs, rows = [], []
    for index, obj in enumerate(objects):
        for k in sorted(set(getattr(args, "k", [2]))):
            # K = 2 keeps the stream it always had, so earlier K = 2 reports reproduce
            rng = np.random.default_rng([args.seed, 1000 + index] + ([] if k == 2 else [k]))
            contacts, normals, sources = _grasps(obj, args, rng, k)
            if len(contacts) == 0:
                print(f"{obj.name}: no {k}-contact grasp fits the hand; skipped", file=sys.stderr)
                continue
            prob, eps = label_grasps(contacts, normals, obj.center, obj.radius, samples=args.label_samples,
                                     sigma=args.label_sigma, mu_sigma=args.label_mu_sigma, rng=rng, mu=args.label_mu)
            scores = held_scores = np.full(len(contacts), np.nan)
            if scorer is not None:
                cloud, _ = complete_cloud(obj, args.cloud_points, rng)
                scores, held_scores = _model_answers(scorer, cloud, contacts)
            job_spec, mass, simulated = _conditions(args, spec, _mass(obj), contacts, index, k)
            jobs.append(ObjectJob(np.asarray(obj.mesh.vertices), np.asarray(obj.mesh.faces), mass, simulated,
                                  job_spec))
            rows += _rows(obj, k, contacts, normals, sources, prob, eps, scores, held_scores)
    if not rows:
        raise ValueError("no grasps to simulate")
    results = [r for per_object in run_jobs(jobs, args.workers) for r in per_object]

    for row, res in zip(rows, results):
        row.update({k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in res.items()})
    _relabel_at_jaws(rows, args)
    _label_calibrated(rows, args)
    report = _report(rows, args, spec, scorer, skip_reason)
    if args.calibrate:
        from .calibrate import grid_search

        report["calibration"] = grid_search(rows, rng=np.random.default_rng(args.seed), grip_force=args.grip_force,
                                           samples=args.label_samples)
    _print(report)
    if args.plot:
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        _plot(rows, report, args.plot)
        print(f"plot: {args.plot}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json_text({**report, "trials": rows}, indent=1))
        print(f"report: {args.json}")
    return 0


def _relabel_at_jaws(rows: list[dict], args) -> None:
    """Robust label of the contacts where the jaws actually pressed (NaN where they did not)."""
    from grasp_equi.quality import label_grasps

    rng = np.random.default_rng([args.seed, 7])
    for row in rows:
        jaw = np.asarray(row["jaw_contacts"], dtype=np.float64)
        row["jaw_label"] = float("nan")
        if row["k"] == 2 and np.isfinite(jaw).all():
            p, _ = label_grasps(jaw[None], np.asarray(row["jaw_normals"])[None], np.asarray(row["center"]),
                                row["radius"], samples=args.label_samples, sigma=args.label_sigma,
                                mu_sigma=args.label_mu_sigma, rng=rng, mu=args.label_mu)
            row["jaw_label"] = float(p[0])


def _label_calibrated(rows: list[dict], args) -> None:
    """``calibrated_stable`` of every trial by the criterion chosen on training families."""
    from .calibrate import CALIBRATED, criterion_stable

    pairs = [r for r in rows if r["k"] == 2]  # a jaw criterion: K = 2 only
    stable = criterion_stable(pairs, CALIBRATED, args.grip_force, args.label_samples,
                              np.random.default_rng([args.seed, 11])) if pairs else []
    for row, value in zip(pairs, stable):
        row["calibrated_stable"] = bool(value)


def _calibrated_section(rows: list[dict]) -> dict:
    counted = [r for r in _counted(rows) if r["k"] == 2]
    return agreement(np.array([float(r["calibrated_stable"]) for r in counted]),
                     np.array([r["held"] for r in counted], dtype=bool), 0.5)


def _counted(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r["held"] is not None]


def _section(rows: list[dict], has_scores: bool, threshold: float = STABLE_THRESHOLD) -> dict:
    from grasp_equi.training.metrics import auc

    counted = _counted(rows)
    held = np.array([r["held"] for r in counted], dtype=bool)
    out = agreement(np.array([r["label"] for r in counted]), held, threshold)
    out["statuses"] = {s: sum(r["status"] == s for r in rows) for s in sorted({r["status"] for r in rows})}
    seated = [r for r in counted if r["status"] != "rotated"]  # the object did not turn in the closing jaws
    out["without_rotated"] = {k: v for k, v in agreement(np.array([r["label"] for r in seated]),
                                                         np.array([r["held"] for r in seated], dtype=bool),
                                                         threshold).items()
                              if k in ("trials", "accuracy", "kappa")}
    if has_scores:
        out["model_auc"] = auc(np.array([r["score"] for r in counted]), held)
        out["model_accuracy"] = float(((np.array([r["score"] for r in counted]) >= 0.5) == held).mean()) \
            if counted else float("nan")
        held_scores = np.array([r.get("held_score", np.nan) for r in counted], dtype=np.float64)
        scored = np.isfinite(held_scores)  # all of them for a model with P(held), none without
        if scored.any():
            out["held_auc"] = auc(held_scores[scored], held[scored])
            out["held_accuracy"] = float(((held_scores[scored] >= 0.5) == held[scored]).mean())
            out["held_ece"] = calibration_error(held_scores[scored], held[scored])
    return out


def _report(rows, args, spec: JawSpec, scorer, skip_reason: str) -> dict:
    has_scores = scorer is not None
    thr = args.label_threshold
    counted = _counted(rows)
    statuses = {}
    for r in rows:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    report = {
        "config": {"grip_force_n": spec.grip_force, "sim_mu": spec.mu, "sim_noslip": spec.noslip_iterations,
                   "pads": args.pads, "label_mu": args.label_mu,
                   "label_sigma": args.label_sigma, "label_mu_sigma": args.label_mu_sigma,
                   "label_samples": args.label_samples, "stable_threshold": args.label_threshold, "seed": args.seed,
                   "conditions": getattr(args, "conditions", "fixed"),
                   "model": scorer.name if has_scores else None},
        "model_skipped": skip_reason or None,
        "statuses": statuses,
        "overall": _section(rows, has_scores, thr),
        "per_k": {str(k): _section([r for r in rows if r["k"] == k], has_scores, thr)
                  for k in sorted({r["k"] for r in rows})},
        "per_family": {f: _section([r for r in rows if r["family"] == f], has_scores, thr)
                       for f in sorted({r["family"] for r in rows})},
        "per_source": {s: _section([r for r in rows if r["source"] == s], has_scores, thr)
                       for s in sorted({r["source"] for r in rows})},
    }
    pairs = [r for r in counted if r["k"] == 2]
    drift = np.array([r["drift"] for r in pairs], dtype=np.float64)
    report["by_jaw_drift"] = {}
    for lo, hi in ((0.0, 0.004), (0.004, 0.008), (0.008, 0.015), (0.015, np.inf)):
        sel = [r for r, d in zip(pairs, drift) if lo <= d < hi]
        report["by_jaw_drift"][f"{lo * 1000:g}-{hi * 1000:g}mm"] = _section(sel, has_scores, thr)
    jaw = [r for r in counted if np.isfinite(r["jaw_label"]) and r["status"] != "rotated"]
    report["jaw_contact_labels"] = agreement(np.array([r["jaw_label"] for r in jaw]),
                                             np.array([r["held"] for r in jaw], dtype=bool), thr)
    from .calibrate import CALIBRATED

    report["calibrated_labels"] = {
        "criterion": CALIBRATED.as_dict(),
        "overall": _calibrated_section(rows),
        "per_family": {f: _calibrated_section([r for r in rows if r["family"] == f]) for f in report["per_family"]},
    }
    held = np.array([r["held"] for r in counted], dtype=bool)
    report["reliability"] = {"label": reliability(np.array([r["label"] for r in counted]), held)}
    if has_scores:
        answers = ("score", "model") + (("held_score", "held") if "held_auc" in report["overall"] else ())
        for key, name in zip(answers[::2], answers[1::2]):
            report["reliability"][name] = reliability(np.array([r[key] for r in counted]), held)
            for k in report["per_k"]:
                sel = [r for r in counted if r["k"] == int(k)]
                report["reliability"][f"{name}_k{k}"] = reliability(np.array([r[key] for r in sel]),
                                                                    np.array([r["held"] for r in sel], dtype=bool))
    return report


def _fmt_agreement(section: dict) -> str:
    return (f"{section['trials']:4d} trials  held {section['held_rate']:.2f}  label-stable "
            f"{section['label_stable_rate']:.2f}  accuracy {section['accuracy']:.3f}  kappa {section['kappa']:.3f}")


def _fmt(section: dict) -> str:
    text = _fmt_agreement(section)
    if "model_auc" in section:
        text += f"  P(fc) AUC {section['model_auc']:.3f}"
    if "held_auc" in section:
        text += f"  P(held) AUC {section['held_auc']:.3f} ECE {section['held_ece']:.3f}"
    return text


def _print(report: dict) -> None:
    print(f"trial outcomes: {report['statuses']}")
    print(f"overall        {_fmt(report['overall'])}")
    for k, sec in report["per_k"].items():
        if sec["trials"] and len(report["per_k"]) > 1:
            print(f"  K = {k}        {_fmt(sec)}")
    for name, sec in report["per_family"].items():
        if sec["trials"]:
            print(f"  {name:13s}{_fmt(sec)}")
    for name, sec in report["per_source"].items():
        if sec["trials"]:
            print(f"  [{name}]{' ' * max(1, 11 - len(name))}{_fmt(sec)}")
    for name, sec in report["by_jaw_drift"].items():
        if sec["trials"]:
            print(f"  drift {name:9s}{_fmt(sec)}")
    jaw = report["jaw_contact_labels"]
    print(f"labels at the jaws' actual contacts: accuracy {jaw['accuracy']:.3f} kappa {jaw['kappa']:.3f}")
    cal = report["calibrated_labels"]
    print(f"calibrated label {cal['criterion']}:")
    print(f"  overall      {_fmt_agreement(cal['overall'])}")
    for name, sec in cal["per_family"].items():
        if sec["trials"]:
            print(f"  {name:13s}{_fmt_agreement(sec)}")
    if report["model_skipped"]:
        print(report["model_skipped"])
    if "calibration" in report:
        best = report["calibration"]["best"]
        print(f"calibration (best kappa): {best}")


def _plot(rows: list[dict], report: dict, path: Path) -> None:
    curves = {"robust force-closure label": report["reliability"]["label"]}
    name = "held" if "held" in report["reliability"] else "model"  # the model's answer about holding
    if name in report["reliability"]:
        label = "P(held)" if name == "held" else "P(force closure)"
        curves[f"{label} ({report['config']['model']})"] = report["reliability"][name]
        if len(report["per_k"]) > 1:
            curves.update({f"{label}, K = {k}": report["reliability"][f"{name}_k{k}"] for k in report["per_k"]})
    fams = ", ".join(report["per_family"])
    ov, cal = report["overall"], report["calibrated_labels"]["overall"]
    title = (f"MuJoCo close/lift/shake, {report['config'].get('conditions', 'fixed')} conditions, "
             f"{ov['trials']} trials ({fams})\n"
             f"label: acc {ov['accuracy']:.2f}, kappa {ov['kappa']:.2f}; calibrated: acc {cal['accuracy']:.2f}"
             + (f"\nmodel AUC: P(force closure) {ov['model_auc']:.2f}" if "model_auc" in ov else "")
             + (f", P(held) {ov['held_auc']:.2f} (ECE {ov['held_ece']:.3f})" if "held_auc" in ov else ""))
    path.parent.mkdir(parents=True, exist_ok=True)
    plot_reliability(curves, path, title)
