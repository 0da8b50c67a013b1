"""Timing and memory of one benchmark configuration (device x N points x G grasps).

Everything runs the real path: ``GraspScorer.score`` on a synthetic object, with the
per-stage split the scorer records itself, plus the PointCloud2 decode/encode of the ROS
codec when ``sensor_msgs`` is importable (it is not on a bare GPU box; those stages are
then left out, not faked).
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass

import numpy as np
import torch

from grasp_equi.geometry import random_rotation

# Stage names in pipeline order (the README table and the plot use this order).
STAGES = ("decode", "sampling", "normals", "graph", "encoder", "head", "encode", "overhead")


@dataclass
class Workload:
    """A synthetic object and candidate grasps, in metres, away from the origin like a camera frame."""

    points: np.ndarray  # [N, 3] float64
    contacts: np.ndarray  # [G, K, 3] float64, each contact a cloud point (so it touches the object)


def make_workload(n_points: int, n_grasps: int, k: int = 2, seed: int = 0) -> Workload:
    """A noisy 10 x 6 x 4 cm ellipsoid at 0.6 m from the origin and ``n_grasps`` grasps of ``k`` contacts."""
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=(n_points, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    points = direction * np.array([0.05, 0.03, 0.02]) + rng.normal(scale=5e-4, size=(n_points, 3))
    points = points @ random_rotation(rng).T + np.array([0.1, -0.2, 0.6])  # [N, 3]
    contacts = points[rng.integers(0, n_points, size=(n_grasps, k))]  # [G, K, 3]
    return Workload(points, contacts)


# ---------------------------------------------------------------------------- memory
def _read_status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_host_peak() -> bool:
    """Reset the kernel's peak-RSS counter of this process (Linux ``clear_refs`` 5)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def host_peak_mb() -> float | None:
    """Peak resident memory since the last reset (``VmHWM``), MiB; None off Linux."""
    kb = _read_status_kb("VmHWM")
    return None if kb is None else kb / 1024


def host_rss_mb() -> float | None:
    kb = _read_status_kb("VmRSS")
    return None if kb is None else kb / 1024


# ---------------------------------------------------------------------------- codec
class Codec:
    """PointCloud2 decode (cloud + contacts request) and encode (scored result), timed.

    ``Codec.load()`` returns None when the ROS message packages are missing.
    """

    def __init__(self, codec_module, header_type):
        self.codec = codec_module
        self.header_type = header_type

    @classmethod
    def load(cls) -> "Codec | None":
        try:
            from std_msgs.msg import Header

            from grasp_equi.ros import codec
        except ImportError:
            return None
        return cls(codec, Header)

    def messages(self, work: Workload):
        header = self.header_type(frame_id="object")
        return self.codec.cloud_message(header, work.points), self.codec.contacts_message(header, work.contacts)

    def decode(self, cloud_msg, contacts_msg, max_points: int = 10**7):
        cloud = self.codec.decode_cloud(cloud_msg, max_points)
        _, grasps = self.codec.decode_contacts(contacts_msg, max_points).grasps()
        return cloud.points, grasps

    def encode(self, contacts_msg, grasps: list[np.ndarray], scores: np.ndarray):
        points = np.concatenate(grasps)  # [C, 3]
        counts = [len(g) for g in grasps]
        cols = {**self.codec.xyz_columns(points),
                "grasp_id": np.repeat(np.arange(len(grasps), dtype=np.uint32), counts),
                "score": np.repeat(scores.astype(np.float32), counts)}
        return self.codec.encode_cloud(contacts_msg.header, cols)


# ---------------------------------------------------------------------------- timing
def _precision_context(device: torch.device, precision: str):
    """``fp32`` = as shipped; ``bf16``/``fp16`` = torch.autocast around the whole call."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return torch.autocast(device_type=device.type, dtype=dtype)


def _summary(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=np.float64)
    return {"median": float(np.median(arr)), "p10": float(np.percentile(arr, 10)),
            "p90": float(np.percentile(arr, 90)), "min": float(arr.min()), "max": float(arr.max())}


def invariance_error(scorer, work: Workload, precision: str = "fp32", seed: int = 7) -> float:
    """max |score(R p + t, R c + t) - score(p, c)| under one random rotation-reflection + translation."""
    rng = np.random.default_rng(seed)
    rot, shift = random_rotation(rng, reflect=True), rng.uniform(-2, 2, size=3)
    with _precision_context(scorer.device, precision):
        base = scorer.score(work.points, work.contacts)
        moved = scorer.score(work.points @ rot.T + shift, work.contacts @ rot.T + shift)
    return float(np.abs(moved - base).max())


def measure(scorer, work: Workload, codec: Codec | None, warmup: int, min_repeats: int,
            max_repeats: int, budget_s: float, precision: str = "fp32") -> dict:
    """Time ``scorer.score`` on ``work`` (warm-ups excluded) and return one benchmark record."""
    device = scorer.device
    messages = codec.messages(work) if codec else None
    with _precision_context(device, precision):
        for _ in range(warmup):
            scorer.score(work.points, work.contacts)
        totals, cpu_totals, stages = [], [], {name: [] for name in STAGES}
        started = time.perf_counter()
        while len(totals) < max_repeats and (len(totals) < min_repeats
                                              or time.perf_counter() - started < budget_s):
            row = _one_run(scorer, work, codec, messages)
            totals.append(row.pop("total"))
            cpu_totals.append(row.pop("cpu"))
            for name in STAGES:
                if name in row:
                    stages[name].append(row[name])
        host_before = host_rss_mb()
        peak_reset = reset_host_peak()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        scorer.score(work.points, work.contacts)
        device_peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
        host_peak = host_peak_mb() if peak_reset else None
    total = _summary(totals)
    stage_ms = {name: float(np.median(v)) for name, v in stages.items() if v}
    record = {
        "device": device.type,
        "precision": precision,
        "n_points": int(len(work.points)),
        "n_grasps": int(len(work.contacts)),
        "k": int(work.contacts.shape[1]),
        "repeats": len(totals),
        "stage_ms": stage_ms,
        "stage_spread_ms": {name: [float(np.percentile(v, 10)), float(np.percentile(v, 90))]
                            for name, v in stages.items() if v},
        "total_ms_median": total["median"],
        "total_ms_p10": total["p10"],
        "total_ms_p90": total["p90"],
        "total_ms_min": total["min"],
        "total_ms_max": total["max"],
        # CPU time of the whole process per call (all threads): on a shared machine the wall
        # time includes waiting for other processes, this does not
        "cpu_ms_median": float(np.median(cpu_totals)),
        "grasps_per_s": 1e3 * len(work.contacts) / total["median"],
        "host_rss_before_mb": host_before,
        "host_peak_mb": host_peak,
        "device_peak_mb": device_peak,
    }
    if codec:
        record["pipeline_ms_median"] = stage_ms["decode"] + total["median"] + stage_ms["encode"]
    return record


def _one_run(scorer, work: Workload, codec: Codec | None, messages) -> dict[str, float]:
    """One request: (decode) -> score -> (encode); milliseconds per stage."""
    row = {}
    points, grasps = work.points, work.contacts
    if codec:
        start = time.perf_counter()
        points, grasps = codec.decode(*messages)
        row["decode"] = (time.perf_counter() - start) * 1e3
    start, cpu_start = time.perf_counter(), time.process_time()
    scores = scorer.score(points, grasps)  # returns numpy: any GPU work has finished
    row["total"] = (time.perf_counter() - start) * 1e3
    row["cpu"] = (time.process_time() - cpu_start) * 1e3
    row.update(scorer.sample_timings)
    for name in ("encoder", "graph", "head"):
        row[name] = scorer.timings.get(name, 0.0)
    # validation, array conversion, host<->device copies: the part no stage owns
    row["overhead"] = max(0.0, row["total"] - sum(scorer.timings.values()))
    if codec:
        start = time.perf_counter()
        codec.encode(messages[1], list(grasps), scores)
        row["encode"] = (time.perf_counter() - start) * 1e3
    return row


def machine_description(device: torch.device) -> str:
    """'Intel Xeon ... (2 cores, torch 2 threads)' or the GPU's name."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda}, torch {torch.__version__})"
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    return (f"{model} ({os.cpu_count()} cores, torch {torch.__version__} with "
            f"{torch.get_num_threads()} threads)")
