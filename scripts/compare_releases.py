"""Time one scoring call of this checkout against an earlier release, interleaved call by call.

Each release runs in its own Python process with its own code and shipped weights (one torch
thread each); the parent sends both the same cloud and grasps and asks them for one call in turn,
so a machine that changes speed during the run slows both alike. Prints the per-release medians
and the ratio; ``--json`` writes them.

    git worktree add /tmp/release <commit>
    python scripts/compare_releases.py --release /tmp/release --json docs/bench_release.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

# The child: loads its checkout's shipped weights, warms up, then times one score() per "go" line.
CHILD = r"""
import sys, time
import numpy as np, torch
torch.set_num_threads(1)
from grasp_equi import GraspScorer
work = np.load(sys.argv[1])
points, contacts = work["points"], work["contacts"]
scorer = GraspScorer.from_checkpoint(device="cpu")
for _ in range(3):
    scorer.score(points, contacts)
print("ready", flush=True)
for line in sys.stdin:
    start = time.perf_counter()
    scorer.score(points, contacts)
    print(f"{1000 * (time.perf_counter() - start):.4f}", flush=True)
"""


def _child(code_dir: Path, workload: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(code_dir), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(workload)], cwd=code_dir, env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    if proc.stdout.readline().strip() != "ready":
        raise RuntimeError(f"{code_dir}: the scorer did not start")
    return proc


def _one_call(proc: subprocess.Popen) -> float:
    proc.stdin.write("go\n")
    proc.stdin.flush()
    return float(proc.stdout.readline())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", type=Path, required=True, help="checkout of the earlier release (git worktree)")
    parser.add_argument("--n-points", type=int, default=20_000)
    parser.add_argument("--n-grasps", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=45, help="calls per release, interleaved")
    parser.add_argument("--json", type=Path, help="write the medians here")
    args = parser.parse_args(argv)
    from grasp_equi.bench.measure import machine_description, make_workload

    work = make_workload(args.n_points, args.n_grasps)
    with tempfile.TemporaryDirectory() as tmp:
        workload = Path(tmp) / "work.npz"
        np.savez(workload, points=work.points, contacts=work.contacts)
        procs = {"this checkout": _child(REPO, workload), "release": _child(args.release.resolve(), workload)}
        times = {name: [] for name in procs}
        try:
            for _ in range(args.repeats):
                for name, proc in procs.items():
                    times[name].append(_one_call(proc))
        finally:
            for proc in procs.values():
                proc.stdin.close()
                proc.wait(timeout=60)
    import torch

    medians = {name: float(np.median(t)) for name, t in times.items()}
    report = {"n_points": args.n_points, "n_grasps": args.n_grasps, "repeats": args.repeats,
              "release": str(args.release), "machine": machine_description(torch.device("cpu")),
              "median_ms": medians, "quartiles_ms": {n: [float(q) for q in np.percentile(t, [25, 75])]
                                                     for n, t in times.items()},
              "ratio": medians["this checkout"] / medians["release"]}
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
