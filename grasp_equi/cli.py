"""``grasp-equi <subcommand>``: one entry point; each subcommand lives in its own module.

A subcommand module provides ``add_arguments(parser)`` and ``run(args) -> int``. Modules are
imported only when their subcommand runs, so ``grasp-equi score`` never loads rclpy or open3d.
"""

from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS = {
    # name: (module, one-line help)
    "run": ("grasp_equi.ros.run", "start the node and the bundled demo source; print one line per scored message"),
    "score": ("grasp_equi.score_cmd", "score grasps from files (cloud .npy/.ply/.pcd, grasps .npy)"),
    "generate": ("grasp_equi.data.generate", "generate a labelled dataset from procedural families or meshes"),
    "train": ("grasp_equi.train", "train a model on a generated dataset"),
    "evaluate": ("grasp_equi.evaluate", "evaluate weights on a dataset (metrics JSON + plots)"),
    "bench": ("grasp_equi.bench", "latency/memory benchmark of the scoring pipeline"),
    "validate-physics": ("grasp_equi.physics.validate", "check stability labels and predictions against MuJoCo close/lift/shake trials"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grasp-equi", description="SE(3)-invariant grasp stability scoring")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name and not module.startswith(err.name):
                # a dependency of the subcommand is missing (e.g. rclpy on a GPU box)
                p.set_defaults(_missing=f"{name}: needs the Python package {err.name!r} ({err})")
                continue
            p.set_defaults(_missing=f"{name}: not available in this version")
            continue
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if hasattr(args, "_missing"):
        print(f"grasp-equi {args._missing}", file=sys.stderr)
        return 2
    try:
        return int(args._run(args) or 0)
    except (ValueError, FileNotFoundError) as err:  # bad input: a message, not a traceback
        print(f"grasp-equi {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
