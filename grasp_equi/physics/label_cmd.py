"""``grasp-equi label-physics``: P(held) per K = 2 grasp of a generated dataset, from MuJoCo trials.

Arguments and their checks only (MuJoCo is imported when trials run, so ``--help`` is fast); the
work is ``grasp_equi.physics.label``. Results go to ``DATA/physics/`` beside the shards; a run
that stops resumes at the first unfinished shard, and shards labelled with other settings are
only replaced with ``--force``.
"""

from __future__ import annotations

from pathlib import Path

from grasp_equi.cli_types import nonneg_int, positive_int


def add_arguments(parser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="a dataset folder made by `grasp-equi generate`")
    parser.add_argument("--trials", type=positive_int, default=4,
                        help="trials per grasp, each with its own friction, density, grip force and contact noise")
    parser.add_argument("--workers", type=positive_int, default=1, help="parallel processes (one shard each)")
    parser.add_argument("--seed", type=nonneg_int, default=0)
    parser.add_argument("--max-shards", type=positive_int, help="label only the first N shards")
    parser.add_argument("--force", action="store_true",
                        help="replace shards already labelled with other settings (default: refuse)")
    parser.add_argument("--reuse", type=Path, metavar="DIR",
                        help="first copy in the label files of DIR (e.g. labels/default/physics) that fit this "
                             "dataset's shards and settings, where a shard has none; never replaces a file")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    from grasp_equi.physics.label import LabelSettings, label_dataset, output_dir, reuse_labels, stale_shards

    if not (args.data / "manifest.json").is_file():
        raise FileNotFoundError(f"--data {args.data}: no manifest.json (make one with `grasp-equi generate`)")
    settings = LabelSettings(trials=args.trials, seed=args.seed)
    if args.reuse is not None:
        if not args.reuse.is_dir():
            raise FileNotFoundError(f"--reuse {args.reuse}: no such folder")
        copied, unfit = reuse_labels(args.reuse, args.data, settings)
        print(f"--reuse {args.reuse}: {copied} label file(s) copied" + (
            f", {unfit} not for these shards or settings (those shards are labelled here)" if unfit else ""))
    stale = stale_shards(args.data, settings)
    if stale and not args.force:
        raise ValueError(f"{output_dir(args.data)}: {len(stale)} shard(s) were labelled with other settings or for "
                         f"another version of the shard (e.g. {stale[0]}); pass --force to replace them, or use the "
                         "same --trials/--seed")
    summary = label_dataset(args.data, settings, args.workers, args.max_shards, progress=not args.quiet)
    rate = summary["trials_per_cpu_minute"]
    print(f"{summary['labelled_now']} shard(s) labelled now, {summary['kept']} kept; {summary['trials_now']} trials"
          + (f", {rate:.0f} trials per CPU-minute" if rate else "") + f"; wrote {output_dir(args.data)}")
    return 0
