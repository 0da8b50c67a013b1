"""``grasp-equi bench --scaling``: cost per grasp, as the number of grasps grows, two models side by side.

A user who scores thousands of sampled candidates per object cares about the marginal cost of
a grasp, not the cost of one call. This times ``GraspScorer.score`` on one cloud (N = 20k by
default) for a range of G, for the model under test and, with ``--compare PATH``, a second
checkpoint in the same run (interleaved per G, so both see the same machine). It reports the
marginal cost (least-squares slope of the median time over G >= 500, ms per 1,000 grasps; only
when those G span at least a factor 2),
grasps/s per G, the per-stage split and the head's FLOPs per grasp.
"""

from __future__ import annotations

import time

import numpy as np
import torch

SCALING_GRASPS = (64, 500, 1_000, 2_000, 4_000)
SLOPE_FROM = 500  # the slope is fitted over G >= this (below it the fixed per-cloud cost dominates)


def _matmul_flops(*args, out_val=None, **kwargs) -> int:
    """2 x multiply-adds of ``mm(a, b)`` / ``addmm(c, a, b)``; a sparse ``a`` counts its stored entries only."""
    a, b = args[-2], args[-1]
    if a.layout != torch.strided:  # sparse CSR/COO: one multiply-add per stored value and output column
        return 2 * int(a._nnz()) * int(b.shape[-1])
    return 2 * int(a.shape[0]) * int(a.shape[1]) * int(b.shape[-1])


_matmul_flops._get_raw = True  # FlopCounterMode passes the tensors themselves (their layout), not shapes


def head_flops_per_grasp(scorer, n_points: int = 20_000, n_grasps: int = 1_000, k: int = 2) -> float | None:
    """FLOPs per grasp of the graph + head stages (``torch.utils.flop_counter``: matrix products,
    einsums and convolutions, a sparse product by its stored entries; element-wise work is not
    counted). None where torch lacks the counter."""
    try:
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError:
        return None
    from grasp_equi.bench.measure import make_workload

    work = make_workload(n_points, n_grasps, k=k)
    params = [p for p in scorer.model.parameters() if p.requires_grad]
    try:
        # The counter's module tracker hooks every tensor that requires grad, and fails on parameters
        # e3nn passes as arguments under no_grad: count with none requiring it.
        for p in params:
            p.requires_grad_(False)
        with torch.inference_mode(False):
            encoded = scorer.encode(work.points)
            mapping = {torch.ops.aten.mm: _matmul_flops, torch.ops.aten.addmm: _matmul_flops}
            with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
                scorer.score_encoded(encoded, work.contacts)
    finally:
        for p in params:
            p.requires_grad_(True)
    return counter.get_total_flops() / n_grasps


def _median_ms(scorer, work, repeats: int) -> tuple[float, dict[str, float]]:
    """Median wall time (ms) of ``scorer.score`` and the stage medians of those calls."""
    totals, stages = [], {}
    for _ in range(repeats):
        start = time.perf_counter()
        scorer.score(work.points, work.contacts)
        totals.append((time.perf_counter() - start) * 1e3)
        for name, ms in {**scorer.sample_timings, **scorer.timings}.items():
            stages.setdefault(name, []).append(ms)
    return float(np.median(totals)), {name: float(np.median(v)) for name, v in stages.items() if name != "sample"}


def measure_scaling(scorers: dict[str, object], n_points: int = 20_000, grasps=SCALING_GRASPS, k: int = 2,
                    repeats: int = 7) -> list[dict]:
    """One record per (model, G) plus one summary record per model (``mode`` "scaling_summary")."""
    from grasp_equi.bench.measure import make_workload

    records = []
    for n_grasps in grasps:
        work = make_workload(n_points, n_grasps, k=k)
        for label, scorer in scorers.items():  # interleaved: every model sees the same moment of the machine
            scorer.score(work.points, work.contacts)  # warm-up
            total, stages = _median_ms(scorer, work, repeats)
            records.append({"mode": "scaling", "model": label, "device": scorer.device.type, "n_points": n_points,
                            "n_grasps": n_grasps, "k": k, "total_ms_median": total, "stage_ms": stages,
                            "grasps_per_s": 1e3 * n_grasps / total, "threads": scorer.threads})
    for label, scorer in scorers.items():
        mine = [r for r in records if r["model"] == label and r["n_grasps"] >= SLOPE_FROM]
        counts = [r["n_grasps"] for r in mine]
        # a slope needs G values far enough apart that timing noise cannot dominate it (max >= 2 x min)
        slope = (float(np.polyfit(counts, [r["total_ms_median"] for r in mine], 1)[0])
                 if len(mine) >= 2 and max(counts) >= 2 * min(counts) else None)
        records.append({"mode": "scaling_summary", "model": label, "device": scorer.device.type,
                        "n_points": n_points, "k": k, "ms_per_1000_grasps": None if slope is None else 1e3 * slope,
                        "head_flops_per_grasp": head_flops_per_grasp(scorer, n_points, 1_000, k)})
    return records


def scaling_table(records: list[dict]) -> str:
    """Markdown: per model, ms and grasps/s per G, the marginal cost and FLOPs per grasp."""
    rows = [r for r in records if r.get("mode") == "scaling"]
    summaries = {r["model"]: r for r in records if r.get("mode") == "scaling_summary"}
    grasps = sorted({r["n_grasps"] for r in rows})
    head = ["model"] + [f"G={g:,}" for g in grasps] + ["ms per 1,000 grasps", "FLOPs per grasp"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for model, summary in summaries.items():
        cells = [model]
        for g in grasps:
            r = next((r for r in rows if r["model"] == model and r["n_grasps"] == g), None)
            cells.append("–" if r is None else f"{r['total_ms_median']:.0f} ms ({r['grasps_per_s']:,.0f}/s)")
        slope, flops = summary["ms_per_1000_grasps"], summary["head_flops_per_grasp"]
        cells += ["–" if slope is None else f"{slope:.1f}", "–" if flops is None else f"{flops / 1e3:,.0f} k"]
        lines.append("| " + " | ".join(cells) + " |")
    if rows:
        lines.append(f"\nN = {rows[0]['n_points']:,}, K = {rows[0]['k']}, {rows[0]['device']}, "
                     f"{rows[0]['threads'] or torch.get_num_threads()} thread(s); medians; the marginal cost is the "
                     f"slope over G >= {SLOPE_FROM}")
    return "\n".join(lines)


def plot_scaling(path, records: list[dict]) -> bool:
    """Grasps/s vs G per model (PNG); False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = [r for r in records if r.get("mode") == "scaling"]
    fig, ax = plt.subplots(figsize=(6, 4))
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = sorted((r["n_grasps"], r["grasps_per_s"]) for r in rows if r["model"] == model)
        ax.plot(*zip(*mine), marker="o", label=model)
    ax.set_xscale("log")
    ax.set_xlabel("grasps per call G (K = 2)")
    ax.set_ylabel("grasps scored per second (end to end)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    if rows:
        ax.set_title(f"one {rows[0]['device']} thread, N = {rows[0]['n_points']:,} points", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
