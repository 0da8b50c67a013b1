"""``grasp-equi bench --contention``: one scoring call on a busy machine next to a quiet one.

A robot's computer is never idle. This starts its own competing CPU-bound process (a busy
loop pinned to the last core), times ``GraspScorer.score`` with and without it, and stops it
again. Two thread settings are measured in the same run: the library's default
(``grasp_equi.scorer.DEFAULT_THREADS``) and one torch thread per core (torch's own default),
whose OpenMP workers spin-wait for the core the other process holds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np

# The competitor: a pure-Python busy loop on one core (the last one), until it is killed.
_SPIN = """
import os, sys
try:
    os.sched_setaffinity(0, {int(sys.argv[1])})
except (AttributeError, OSError):
    pass
while True:
    pass
"""


def start_competitor() -> subprocess.Popen:
    """A CPU-bound process on the machine's last core (``sched_setaffinity`` where the OS has it)."""
    core = (os.cpu_count() or 1) - 1
    return subprocess.Popen([sys.executable, "-c", _SPIN, str(core)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _median_call_ms(scorer, work, repeats: int, budget_s: float) -> tuple[float, int]:
    """Median wall time (ms) of ``scorer.score`` over up to ``repeats`` calls within ``budget_s``, and the count."""
    times = []
    started = time.perf_counter()
    while len(times) < repeats and (len(times) < 2 or time.perf_counter() - started < budget_s):
        start = time.perf_counter()
        scorer.score(work.points, work.contacts)
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times)), len(times)


def measure_contention(make_scorer, n_points: int = 20_000, n_grasps: int = 64, repeats: int = 15,
                       budget_s: float = 20.0) -> list[dict]:
    """Records of quiet vs busy median call time for the library default and one thread per core.

    ``make_scorer(threads)`` builds a ``GraspScorer`` with that ``threads`` setting.
    """
    from grasp_equi.bench import _load_average as load_average
    from grasp_equi.bench.measure import make_workload
    from grasp_equi.scorer import DEFAULT_THREADS

    cores = os.cpu_count() or 1
    work = make_workload(n_points, n_grasps)
    settings = [("library default", DEFAULT_THREADS)]
    if cores > 1:
        settings.append(("one thread per core (torch's default)", cores))
    records = []
    for label, threads in settings:
        scorer = make_scorer(threads)
        scorer.score(work.points, work.contacts)  # warm-up
        quiet, quiet_n = _median_call_ms(scorer, work, repeats, budget_s)
        load = load_average()
        competitor = start_competitor()
        try:
            time.sleep(0.3)  # let it take its core
            scorer.score(work.points, work.contacts)
            busy, busy_n = _median_call_ms(scorer, work, repeats, budget_s)
        finally:
            competitor.kill()
            competitor.wait()
        records.append({"mode": "contention", "setting": label, "threads": threads, "cores": cores,
                        "n_points": n_points, "n_grasps": n_grasps, "quiet_ms_median": quiet,
                        "busy_ms_median": busy, "slowdown": busy / quiet, "repeats": [quiet_n, busy_n],
                        "load_avg_before": load})
    if records and records[0]["load_avg_before"] is not None and records[0]["load_avg_before"] > 0.9:
        print(f"bench --contention: the machine was not quiet (load average {records[0]['load_avg_before']:.1f} "
              "before the competitor started): the 'quiet' times include other work", file=sys.stderr)
    return records


def contention_table(records: list[dict]) -> str:
    """Markdown table of ``measure_contention``'s records."""
    lines = ["| threads | quiet (ms) | one core busy (ms) | slowdown |", "|---|---|---|---|"]
    for r in records:
        lines.append(f"| {r['setting']}: {r['threads']} | {r['quiet_ms_median']:.0f} | {r['busy_ms_median']:.0f} "
                     f"| {r['slowdown']:.2f}x |")
    n = records[0] if records else {"n_points": 0, "n_grasps": 0, "cores": 0}
    lines.append(f"\nN = {n['n_points']}, G = {n['n_grasps']}, {n['cores']} cores; the busy loop is pinned to the "
                 "last core (grasp-equi bench --contention)")
    return "\n".join(lines)
