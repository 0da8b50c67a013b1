"""Counters, latency percentiles and throttled warnings, published on ``/diagnostics``."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

STATUS_NAME = "grasp_stability: scorer"
COUNTERS = ("clouds", "requests", "scored", "dropped", "invalid", "unmatched", "poses_without_contact",
            "poses_in_collision", "proposals", "grasps_off_surface", "stray_points_left_out")


class Stats:
    """Thread-safe counts and a sliding window of per-request latencies (ms)."""

    def __init__(self, window: int = 500):
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter({name: 0 for name in COUNTERS})
        self.latency_ms: deque[float] = deque(maxlen=window)
        self.last_invalid = ""
        self.stage_ms: dict[str, float] = {}

    def count(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self.counts[name] += amount

    def invalid(self, reason: str) -> None:
        with self._lock:
            self.counts["invalid"] += 1
            self.last_invalid = reason

    def scored(self, latency_ms: float, stage_ms: dict[str, float]) -> None:
        with self._lock:
            self.counts["scored"] += 1
            self.latency_ms.append(latency_ms)
            self.stage_ms = dict(stage_ms)

    def snapshot(self) -> tuple[dict[str, int], np.ndarray, str, dict[str, float]]:
        with self._lock:
            return dict(self.counts), np.asarray(self.latency_ms), self.last_invalid, dict(self.stage_ms)


class Throttle:
    """Let one message of each kind through per ``period`` seconds; count the rest."""

    def __init__(self, period: float):
        self.period = period
        self._last: dict[str, float] = {}
        self._suppressed: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, kind: str) -> int | None:
        """None if this message should be suppressed, else how many were suppressed before it."""
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(kind, -np.inf) < self.period:
                self._suppressed[kind] += 1
                return None
            self._last[kind] = now
            return self._suppressed.pop(kind, 0)


def diagnostic_array(stamp, stats: Stats, device: str, model: str, trained: bool, queue_len: int,
                     queue_size: int, previous: dict[str, int],
                     about_model: dict[str, str] | None = None) -> tuple[DiagnosticArray, dict[str, int]]:
    """One ``DiagnosticStatus`` with the device, model (and ``about_model``'s values: which output
    ``score`` carries, which the model has), latency percentiles and counts.

    The level is WARN for an untrained model or when messages were invalid, unmatched or
    dropped since the ``previous`` counts; returns the array and the counts to pass next time.
    """
    counts, latency, last_invalid, stages = stats.snapshot()
    new = {name: counts[name] - previous.get(name, 0) for name in ("invalid", "unmatched", "dropped")}
    values = {"device": device, "model": model, "model_trained": str(trained).lower(),
              **(about_model or {}), "queue": f"{queue_len}/{queue_size}"}
    if len(latency):
        for q in (50, 90, 99):
            values[f"latency_p{q}_ms"] = f"{np.percentile(latency, q):.1f}"
    for stage, ms in stages.items():
        values[f"last_{stage}_ms"] = f"{ms:.1f}"
    values.update({name: str(counts[name]) for name in COUNTERS})
    if last_invalid:
        values["last_invalid_reason"] = last_invalid
    level, message = DiagnosticStatus.OK, "scoring"
    if not trained:
        level, message = DiagnosticStatus.WARN, "untrained model: scores are meaningless"
    elif any(new.values()):
        level = DiagnosticStatus.WARN
        message = ", ".join(f"{n} {k}" for k, n in new.items() if n) + " since the last report"
    status = DiagnosticStatus(level=level, name=STATUS_NAME, message=message, hardware_id=device,
                              values=[KeyValue(key=k, value=v) for k, v in values.items()])
    array = DiagnosticArray(status=[status])
    array.header.stamp = stamp
    return array, counts


def diagnostic_values(array: DiagnosticArray) -> dict[str, str]:
    """The key/values of our status in a ``DiagnosticArray`` ({} if it is someone else's)."""
    for status in array.status:
        if status.name == STATUS_NAME:
            return {kv.key: kv.value for kv in status.values}
    return {}
