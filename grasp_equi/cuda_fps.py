"""Farthest-point sampling on the GPU, replayed from a captured CUDA graph.

Eager FPS launches ~4 small kernels per pick from Python (256 picks: ~1000 launches, several
ms of launch overhead for microseconds of GPU work). A CUDA graph records the whole loop
once per cloud size and replays it with one call. To keep the number of graphs small, the
cloud is padded to a size bucket (<= 12.5 % larger) with copies of the start point: a copy
is at distance 0 from the first pick, so it can never be picked before a real point, and
``argmax`` ties go to the lowest index (a real point). The picks are those of the eager loop.

Disable with ``GRASP_EQUI_CUDA_GRAPHS=0``; any capture failure falls back to the eager loop.
"""

from __future__ import annotations

import os
import warnings
from collections import OrderedDict
from typing import Callable

import torch

MAX_GRAPHS = 8  # cloud-size buckets kept (each holds a few MB of graph memory)
_graphs: OrderedDict = OrderedDict()  # (device, dtype, bucket, num_samples) -> captured state
_failed: set = set()


def enabled() -> bool:
    return os.environ.get("GRASP_EQUI_CUDA_GRAPHS", "1") != "0" and torch.cuda.is_available()


def bucket_size(n: int) -> int:
    """``n`` rounded up to a multiple of 1/8 of its power of two (at most 12.5 % padding)."""
    step = max(1, 1 << max(0, n.bit_length() - 4))
    return -(-n // step) * step


def pad_with_start(points: torch.Tensor, start: torch.Tensor, size: int) -> torch.Tensor:
    """``points`` ``[n, 3]`` followed by ``size - n`` copies of ``points[start]`` (no host sync)."""
    extra = size - points.shape[0]
    return torch.cat([points, points.index_select(0, start.reshape(1)).expand(extra, 3)]) if extra > 0 else points


def sample(points: torch.Tensor, start: torch.Tensor, num_samples: int,
           eager: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]) -> torch.Tensor:
    """``eager(points, start, num_samples)`` computed by replaying a CUDA graph of it."""
    n = points.shape[0]
    size = bucket_size(n)
    key = (points.device, points.dtype, size, num_samples)
    if key in _failed:
        return eager(points, start, num_samples)
    padded = pad_with_start(points, start, size)  # [n_b, 3]
    state = _graphs.get(key)
    if state is None:
        try:
            state = _capture(padded, start, num_samples, eager)
        except Exception as err:  # noqa: BLE001 - any capture problem: stay correct, just slower
            _failed.add(key)
            warnings.warn(f"CUDA graph capture of FPS failed ({err}); using the eager loop", RuntimeWarning)
            return eager(points, start, num_samples)
        _graphs[key] = state
        while len(_graphs) > MAX_GRAPHS:
            _graphs.popitem(last=False)
    _graphs.move_to_end(key)
    graph, static_points, static_start, static_picked = state
    static_points.copy_(padded)
    static_start.copy_(start.reshape(1))
    graph.replay()
    return static_picked.clone()  # [M]; the static buffer is overwritten by the next replay


def _capture(points: torch.Tensor, start: torch.Tensor, num_samples: int, eager):
    static_points = points.clone()  # [n_b, 3]
    static_start = start.reshape(1).clone()  # [1]
    side = torch.cuda.Stream(points.device)
    side.wait_stream(torch.cuda.current_stream(points.device))
    with torch.cuda.stream(side):  # warm-up outside the capture, as torch.cuda.graphs asks
        eager(static_points, static_start, num_samples)
    torch.cuda.current_stream(points.device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_picked = eager(static_points, static_start, num_samples)
    return graph, static_points, static_start, static_picked
