"""Start-up time of the command line: ``grasp-equi --help`` and every ``grasp-equi CMD --help``.

Target: < 1 s each (subcommand modules import only the standard library until they run).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

HELP_TARGET_S = 1.0


def help_seconds(repeats: int = 3) -> dict[str, float]:
    """Median wall seconds of a fresh ``python -m grasp_equi.cli [CMD] --help`` process, by command
    (``""`` = the top level). Raises RuntimeError when a ``--help`` does not exit 0."""
    from grasp_equi.cli import SUBCOMMANDS

    out = {}
    for command in ["", *SUBCOMMANDS]:
        argv = [sys.executable, "-m", "grasp_equi.cli", *([command] if command else []), "--help"]
        times = []
        for _ in range(max(1, repeats)):
            start = time.perf_counter()
            proc = subprocess.run(argv, capture_output=True, timeout=60)
            times.append(time.perf_counter() - start)
            if proc.returncode != 0:
                raise RuntimeError(f"`grasp-equi {command} --help` exited {proc.returncode}")
        out[command or "(top level)"] = round(statistics.median(times), 3)
    return out


def help_line(seconds: dict[str, float]) -> str:
    """One printable line: slowest command, and every time."""
    worst = max(seconds, key=seconds.get)
    verdict = "meets" if seconds[worst] < HELP_TARGET_S else "MISSES"
    times = ", ".join(f"{k} {v:.2f}" for k, v in seconds.items())
    return (f"--help start-up ({verdict} the {HELP_TARGET_S:.0f} s target; slowest {worst} "
            f"{seconds[worst]:.2f} s): {times} s")
