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
    "propose": ("grasp_equi.propose_cmd", "rank collision-free parallel-jaw gripper poses on a cloud or mesh file"),
    "generate": ("grasp_equi.data.generate", "generate a labelled dataset from procedural families or meshes"),
    "train": ("grasp_equi.train", "train a model on a generated dataset"),
    "evaluate": ("grasp_equi.evaluate", "evaluate weights on a dataset (metrics JSON + plots)"),
    "bench": ("grasp_equi.bench", "latency/memory benchmark of the scoring pipeline"),
    "validate-physics": ("grasp_equi.physics.validate", "check stability labels and predictions against MuJoCo close/lift/shake trials"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The CLI parser; only ``command``'s module is imported (so ``grasp-equi score`` never
    pays for rclpy/open3d, and a broken optional module cannot break the others)."""
    parser = argparse.ArgumentParser(prog="grasp-equi", description="SE(3)-invariant grasp stability scoring")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            _attach(p, name, module)
    return parser


def _attach(p: argparse.ArgumentParser, name: str, module: str) -> None:
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as err:
        missing = err.name or "?"
        if module == missing or module.startswith(missing + "."):
            p.set_defaults(_missing=f"{name}: not available in this version")
        else:  # a dependency of the subcommand is missing (e.g. rclpy on a GPU box)
            p.set_defaults(_missing=f"{name}: needs the Python package {missing!r} ({err})")
        return
    mod.add_arguments(p)
    p.set_defaults(_run=mod.run)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
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
