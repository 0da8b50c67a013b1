"""``grasp-equi <subcommand>``: one entry point; each subcommand lives in its own module.

A subcommand module provides ``add_arguments(parser)`` and ``run(args) -> int`` and imports
only the standard library and numpy at module level (torch, e3nn, rclpy, open3d, mujoco are
imported inside ``run``), so ``grasp-equi --help`` and every ``grasp-equi CMD --help`` take well under
a second. Exit codes: 0 success, 1 a failure (one ``grasp-equi CMD: error: ...`` line on stderr
naming the option or file), 2 a usage error (argparse: the subcommand's usage + one line),
130 interrupted (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys

SUBCOMMANDS = {
    # name: (module, one-line help)
    "run": ("grasp_equi.ros.run", "start the node and the bundled demo source; print one line per scored message"),
    "score": ("grasp_equi.score_cmd", "score grasps from files (cloud .npy/.npz/.ply/.pcd, grasps .npy)"),
    "propose": ("grasp_equi.propose_cmd", "rank collision-free parallel-jaw gripper poses on a cloud or mesh file"),
    "generate": ("grasp_equi.data.generate", "generate a labelled dataset from procedural families or meshes"),
    "train": ("grasp_equi.train", "train a model on a generated dataset"),
    "evaluate": ("grasp_equi.evaluate_cmd", "evaluate weights on a dataset (metrics JSON + plots)"),
    "bench": ("grasp_equi.bench", "latency/memory benchmark of the scoring pipeline"),
    "validate-physics": ("grasp_equi.physics.validate_cmd",
                         "check stability labels and predictions against MuJoCo close/lift/shake trials"),
    "fit-held": ("grasp_equi.training.held_cmd",
                 "add P(held) to trained weights: readouts fitted to physics trials (label-physics)"),
    "fit-ensemble": ("grasp_equi.training.ensemble_cmd",
                     "add a last-layer ensemble to trained weights: an invariant spread sigma per grasp"),
    "label-physics": ("grasp_equi.physics.label_cmd",
                      "P(held) per grasp (K = 2..5) of a generated dataset from randomised MuJoCo trials"),
}
DEBUG_ENV = "GRASP_EQUI_DEBUG"  # set to 1 to see the traceback of an unexpected error


def build_parser(command: str | None = None) -> tuple[argparse.ArgumentParser, dict]:
    """The CLI parser and its subparsers by name; only ``command``'s module is imported."""
    parser = argparse.ArgumentParser(prog="grasp-equi", description="SE(3)-invariant grasp stability scoring")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    subparsers = {}
    for name, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        subparsers[name] = p
        if name == command:
            _attach(p, name, module)
    return parser, subparsers


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


def _parse(argv: list[str]) -> argparse.Namespace:
    """Parse; an unknown option is reported by the subcommand's parser (its usage, exit 2)."""
    command = next((a for a in argv if not a.startswith("-")), None)
    parser, subparsers = build_parser(command)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        target = subparsers.get(args.command, parser)
        target.error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def _sigterm_as_interrupt(signum, frame):  # SIGTERM ends a run the way Ctrl-C does
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parse(argv)
    if hasattr(args, "_missing"):
        print(f"grasp-equi {args._missing}", file=sys.stderr)
        return 2
    previous = signal.signal(signal.SIGTERM, _sigterm_as_interrupt) if _main_thread() else None
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print(f"grasp-equi {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`... | head`): not an error, and nothing left to say
        _quiet_stdout()
        return 0
    except Exception as err:  # noqa: BLE001 - bad input and failures: one line, never a traceback
        if os.environ.get(DEBUG_ENV):
            raise
        print(f"grasp-equi {args.command}: error: {error_line(err)}", file=sys.stderr)
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def error_line(err: BaseException) -> str:
    """One line for ``err``: its message for expected errors (bad input, files), the type too otherwise."""
    text = " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, OSError) and err.filename is not None and str(err.filename) not in text:
        text = f"{err.filename}: {text}"
    if isinstance(err, (ValueError, OSError, LookupError)):  # CheckpointError is a ValueError
        return text
    return f"{type(err).__name__}: {text} (set {DEBUG_ENV}=1 for the traceback)"


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush cannot fail on the closed pipe again
    (the recipe of Python's signal module documentation, "Note on SIGPIPE")."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a real file (captured in tests)
        pass


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


if __name__ == "__main__":
    sys.exit(main())
