"""Stray points far outside an object: flying pixels at depth edges, a segmentation that leaked a
point of the table or the wall. The cloud is normalised by its largest distance from the centroid,
so one stray point 30 cm from a 5 cm object would shrink the object to a sixth of its size in the
network's frame and move every score. They are found by a gap in the sorted distances from the
centroid and left out before normalisation (``far_outliers``).

The rule is a comparison with a wide margin (a point counts as stray only when it lies ``GAP``
times farther out than every point kept), so float rounding in another pose cannot flip it, and it
depends on the distances only, so it is the same in any pose and any point order. Clouds of the
training data (a dense surface, mm noise, holes) have no such gap: for them it changes nothing.
"""

from __future__ import annotations

import torch

MIN_POINTS = 64  # below this a cloud is too sparse to tell a stray point from the object's own
MAX_FRACTION = 0.01  # at most this fraction of the points (at least one) is ever left out
GAP = 2.0  # a stray point is this many times farther from the centroid than the farthest point kept
ROUNDS = 3  # the centroid moves when stray points leave; look again from the new one


def far_outliers(points: torch.Tensor) -> torch.Tensor:
    """Mask ``[N]`` (bool) of the stray points of ``points`` ``[N, 3]`` (float64, copies merged).

    A point is stray when, sorting the distances from the centroid of the points kept so far, a gap
    of ``GAP`` x separates it (and every point farther out) from the rest, and at most
    ``MAX_FRACTION`` of the points lie beyond the gap. Repeated ``ROUNDS`` times from the centroid of
    the points kept. A cloud of fewer than ``MIN_POINTS`` points is returned whole.
    """
    n = points.shape[0]
    stray = torch.zeros(n, dtype=torch.bool, device=points.device)  # [N]
    if n < MIN_POINTS:
        return stray
    budget = max(1, int(MAX_FRACTION * n))
    for _ in range(ROUNDS):
        left = budget - int(stray.sum())
        if left <= 0:
            break
        kept = ~stray  # [N]
        radius = (points - points[kept].mean(dim=0)).norm(dim=1)  # [N]
        top = torch.topk(radius[kept], left + 1).values  # [left + 1] descending
        ratio = top[:-1] / top[1:].clamp_min(torch.finfo(top.dtype).tiny)  # [left]
        gaps = torch.nonzero(ratio > GAP).flatten()
        if gaps.numel() == 0:
            break
        inner = int(gaps[-1])  # the gap nearest the object: everything beyond it is stray
        # cut between the two sides of the gap (their geometric mean): far from both, so no rounding decides it
        cut = torch.sqrt(top[inner] * top[inner + 1])
        stray |= kept & (radius > cut)
    return stray
