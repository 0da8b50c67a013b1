"""Benchmark output: the console/README table, the JSON file and the latency plot."""

from __future__ import annotations

import json
from pathlib import Path

from grasp_equi.bench.measure import STAGES


def _fmt(value) -> str:
    if value is None:
        return "–"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def markdown_table(records: list[dict]) -> str:
    """One row per record: stage medians, total median [p10–p90], peak memory."""
    records = [r for r in records if r.get("mode", "api") == "api"]
    shown = [s for s in STAGES if any(s in r["stage_ms"] for r in records)]
    head = (["device", "N", "G"] + shown
            + ["**total (API)**", "p10–p90", "CPU time", "pipeline", "host peak MiB", "GPU peak MiB"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in records:
        device = " ".join([r["device"]] + ([r["precision"]] if r.get("precision", "fp32") != "fp32" else [])
                          + (["compiled"] if r.get("compiled") else []))
        cells = [device, f"{r['n_points']:,}", f"{r['n_grasps']:,}"]
        cells += [_fmt(r["stage_ms"].get(s)) for s in shown]
        cells += [f"**{_fmt(r['total_ms_median'])}**", f"{_fmt(r['total_ms_p10'])}–{_fmt(r['total_ms_p90'])}",
                  _fmt(r.get("cpu_ms_median")), _fmt(r.get("pipeline_ms_median")),
                  _fmt(r.get("host_peak_mb")), _fmt(r.get("device_peak_mb"))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ros_table(records: list[dict]) -> str:
    """End to end over ROS 2: node vs echo (transport floor) vs the Python API, medians in ms."""
    lines = ["| device | N | G | API | echo (transport) | grasp_node | node - echo - API | node's own stages |",
             "|---|---|---|---|---|---|---|---|"]
    for r in records:
        api = r.get("api_ms_median")
        extra = "–"
        if api is not None:
            added = r["total_ms_median"] - r["echo_ms_median"] - api
            extra = f"{added:+.1f} ms ({100 * r['node_overhead_vs_api']:+.0f} % of API)"
        lines.append(f"| {r['device']} | {r['n_points']:,} | {r['n_grasps']:,} | {_fmt(api)} | "
                     f"{_fmt(r['echo_ms_median'])} | {_fmt(r['total_ms_median'])} | {extra} | "
                     + ", ".join(f"{k} {v:.1f}" for k, v in r.get("node_stage_ms", {}).items()) + " |")
    return "\n".join(lines)


def write_json(path: Path, records: list[dict], meta: dict) -> None:
    """A JSON list of records; ``meta`` (machine, model, versions) is copied into each record."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([{**r, **meta} for r in records], indent=1) + "\n")


def plot(path: Path, records: list[dict], title: str) -> bool:
    """Latency vs G (one line per N) and vs N (one line per G), per device; False without matplotlib.

    Solid: wall-clock medians. Dotted, same colour: the process's CPU time per call (on a
    shared machine the wall time also holds time spent waiting for other processes).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    records = [r for r in records if r.get("precision", "fp32") == "fp32" and r.get("mode", "api") == "api"]
    fig, (ax_g, ax_n) = plt.subplots(1, 2, figsize=(11, 4.2))
    styles = {"cpu": "-", "cuda": "--"}

    def label(r: dict) -> str:
        return r["device"] + (" compiled" if r.get("compiled") else "")

    for device in sorted({label(r) for r in records}):
        mine = [r for r in records if label(r) == device]
        for ax, line_key, x_key, marker in ((ax_g, "n_points", "n_grasps", "o"), (ax_n, "n_grasps", "n_points", "s")):
            for value in sorted({r[line_key] for r in mine}):
                row = sorted((r[x_key], r["total_ms_median"], r.get("cpu_ms_median")) for r in mine
                             if r[line_key] == value)
                if len(row) < 2:
                    continue
                xs, wall, cpu = zip(*row)
                name = "N" if line_key == "n_points" else "G"
                style = styles.get(device.split()[0], "-.") if "compiled" not in device else "-."
                (line,) = ax.plot(xs, wall, style, marker=marker, label=f"{device}, {name}={value:,}")
                if device.startswith("cpu") and None not in cpu:
                    ax.plot(xs, cpu, ":", color=line.get_color(), linewidth=1)
    for ax, xlabel in ((ax_g, "grasps G (K = 2 contacts each)"), (ax_n, "cloud points N")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("end-to-end latency, median ms (Python API)\n(dotted: CPU time per call)")
        ax.grid(True, which="both", alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    ax_g.set_title("latency vs number of grasps")
    ax_n.set_title("latency vs cloud size")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
