"""``grasp-equi validate-physics``: analytic labels and model scores against MuJoCo trials.

This module holds the arguments and their checks; the trials run in ``validate.py`` (MuJoCo,
trimesh and torch are imported only then, so ``--help`` is fast). Outputs go only where the
user points: the report to ``--json``, the reliability plot to ``--plot`` (default: beside the
JSON; none without either).
"""

from __future__ import annotations

from pathlib import Path

from grasp_equi.cli_types import device, nonneg_float, nonneg_int, positive_float, positive_int, unit_fraction
from grasp_equi.data.units import UNITS
from grasp_equi.fileio import check_outputs
from grasp_equi.physics.agreement import STABLE_THRESHOLD
from grasp_equi.physics.jaw import MAX_FINGERS, JawSpec


def add_arguments(parser) -> None:
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--families", nargs="+", metavar="FAMILY",
                     help="object families (default: the held-out test families of --splits)")
    src.add_argument("--meshes", type=Path, metavar="DIR", help="a directory of mesh files instead of families")
    parser.add_argument("--units", default="m", choices=sorted(UNITS), help="units of --meshes files")
    parser.add_argument("--splits", type=Path,
                        help="splits.json (or a dataset directory holding one) naming the held-out families "
                             "(default: the built-in split)")
    parser.add_argument("--objects", type=positive_int, default=16, help="objects per family (or meshes, at most)")
    parser.add_argument("--grasps-per-object", type=positive_int, default=6, help="per object and K")
    parser.add_argument("--k", type=int, nargs="+", default=[2], choices=range(2, MAX_FINGERS + 1), metavar="K",
                        help="contacts per grasp, one or more of 2..5: K = 2 with the parallel jaws, K = 3..5 "
                             "with the fingertip hand (the report has a section per K)")
    parser.add_argument("--sampler", choices=("dataset", "antipodal"), default="dataset",
                        help="dataset: the training data's K=2 mix (antipodal, perturbed, random pairs); "
                             "antipodal: only jaw-reachable pairs, 40%% of them tilted up to twice the friction cone")
    parser.add_argument("--weights", type=Path, help="model checkpoint (default: the shipped weights, if present)")
    parser.add_argument("--device", type=device, default="auto")
    parser.add_argument("--cloud-points", type=positive_int, default=2048, help="points of the complete cloud the model sees")
    parser.add_argument("--json", type=Path, help="write the report here")
    parser.add_argument("--plot", type=Path,
                        help="outcome rate vs predicted probability (PNG; default: beside --json, else none)")
    parser.add_argument("--workers", type=positive_int, default=1, help="parallel simulation processes")
    parser.add_argument("--seed", type=nonneg_int, default=0)
    parser.add_argument("--grip-force", type=positive_float, default=JawSpec.grip_force, help="newtons per finger")
    parser.add_argument("--sim-mu", type=positive_float, default=JawSpec.mu, help="friction in the simulation")
    parser.add_argument("--sim-noslip", type=nonneg_int, default=JawSpec.noslip_iterations,
                        help="MuJoCo noslip iterations (0 = its soft friction, which creeps inside the cone)")
    parser.add_argument("--conditions", choices=("fixed", "randomised"), default="fixed",
                        help="fixed: every trial at --grip-force and --sim-mu; randomised: each object's trials under "
                             "one draw of label-physics' conditions (friction, density, grip force, 1 mm contact "
                             "noise), the distribution P(held) is defined over")
    parser.add_argument("--pads", choices=("fingertips", "flat"), default="fingertips",
                        help="fingertips: 5 mm rubber tips touch at the sampled points (the labels' soft-finger "
                             "contacts); flat: the box fingers are the jaws and settle where the geometry lets them")
    parser.add_argument("--label-mu", type=positive_float, default=0.5)
    parser.add_argument("--label-sigma", type=nonneg_float, default=0.003, help="contact perturbation (m)")
    parser.add_argument("--label-mu-sigma", type=nonneg_float, default=0.1)
    parser.add_argument("--label-samples", type=positive_int, default=24)
    parser.add_argument("--label-threshold", type=unit_fraction, default=STABLE_THRESHOLD,
                        help="P(force closure) at or above which a label counts as stable")
    parser.add_argument("--force", action="store_true", help="replace --json / --plot if they exist")
    parser.add_argument("--calibrate", action="store_true",
                        help="grid-search label parameters against the outcomes (TRAINING families only)")


def _check(args) -> None:
    """Cross-option checks argparse cannot do; ValueError naming the option."""
    from grasp_equi.data.objects import FAMILIES

    if args.label_threshold == 0.0:
        raise ValueError("--label-threshold must lie in (0, 1]; got 0")
    if args.meshes is not None and not args.meshes.is_dir():
        raise FileNotFoundError(f"--meshes {args.meshes}: no such folder")
    if args.weights is not None and not args.weights.is_file():
        raise FileNotFoundError(f"--weights {args.weights}: no such file")
    if args.families:
        unknown = [f for f in args.families if f not in FAMILIES]
        if unknown:
            raise ValueError(f"--families: unknown {unknown}; choose from {', '.join(FAMILIES)}")


def run(args) -> int:
    """Check the arguments, then run the trials (``validate.run``); 0 on success."""
    _check(args)
    if args.plot is None and args.json is not None:
        args.plot = args.json.with_suffix(".png")
    check_outputs({"--json": args.json, "--plot": args.plot}, args.force, plots=("--plot",))  # before any trial
    from grasp_equi.physics.validate import run as run_trials

    return run_trials(args)
