"""Scene clouds -> one object: remove the dominant support plane, keep one object cluster.

For a depth camera's raw cloud of an object on a table (numpy/scipy only, no open3d, so it runs
wherever the scorer runs):
1. RANSAC finds the plane holding the most points within ``plane_distance`` (seeded, so the
   result is reproducible); refined by least squares on its inliers. It is a support only when it
   holds at least ``min_plane_fraction`` of the cloud and reaches beyond the rest: at least
   ``min_beyond`` of its inliers lie outside the disc (in the plane) that covers the other points'
   footprint. Otherwise nothing is removed: a box's large face is a plane too, but it ends where
   the box does.
2. The plane's inliers, and the points on its sparser side (under the table), are removed.
3. The rest is split into clusters: points closer than ``cluster_radius`` belong together.
4. The cluster kept is the one holding the point nearest ``near``, else the largest one inside
   ``box`` (axis-aligned, in the cloud's frame), else the largest one.
Limits: one dominant plane (a shelf's back wall may win over its floor on a wide view);
objects touching each other form one cluster; an object thinner than ``plane_distance`` is
removed with the plane.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_POINTS = 2_000_000  # scenes beyond this are refused (the RANSAC distance pass is N x iterations)


@dataclass(frozen=True)
class SceneConfig:
    """Segmentation settings (metres)."""

    plane_distance: float = 0.005
    plane_iterations: int = 200
    min_plane_fraction: float = 0.15
    min_beyond: float = 0.2
    cluster_radius: float = 0.01
    seed: int = 0

    def __post_init__(self):
        for name in ("plane_distance", "cluster_radius"):
            value = getattr(self, name)
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"scene {name} must be a positive number of metres; got {value}")
        if self.plane_iterations < 1 or not 0 < self.min_plane_fraction <= 1:
            raise ValueError("scene plane_iterations must be >= 1 and min_plane_fraction in (0, 1]")


@dataclass
class Segmentation:
    """Indices into the scene cloud: the object cluster and the support plane (may be empty)."""

    object_idx: np.ndarray  # (n_obj,) int64
    plane_idx: np.ndarray  # (n_plane,) int64, inliers of the removed plane
    plane: np.ndarray | None  # (4,) unit normal n and d with n . p + d = 0; None when no plane was removed
    num_clusters: int


def fit_plane(points: np.ndarray, distance: float, iterations: int, rng: np.random.Generator):
    """The RANSAC plane ``(4,)`` with the most inliers within ``distance`` of ``points`` ``(N, 3)``,
    refined by least squares on them, and its inlier mask ``(N,)``; ``(None, all False)`` if none."""
    n = len(points)
    center = points.mean(axis=0)
    rel = (points - center).astype(np.float32)  # [N, 3]
    triples = rng.integers(0, n, size=(iterations, 3))  # [I, 3]
    a, b, c = rel[triples[:, 0]], rel[triples[:, 1]], rel[triples[:, 2]]
    normal = np.cross(b - a, c - a)  # [I, 3]
    length = np.linalg.norm(normal, axis=1)
    ok = length > 1e-12
    if not ok.any():
        return None, np.zeros(n, dtype=bool)
    normal, a = normal[ok] / length[ok, None], a[ok]
    offset = -(normal * a).sum(axis=1)  # [I]
    best, best_count = 0, -1
    for start in range(0, len(normal), 32):  # [N, 32] distances at a time
        counts = (np.abs(rel @ normal[start:start + 32].T + offset[start:start + 32]) <= distance).sum(axis=0)
        i = int(np.argmax(counts))
        if counts[i] > best_count:
            best, best_count = start + i, int(counts[i])
    inliers = np.abs(rel @ normal[best] + offset[best]) <= distance
    on = rel[inliers].astype(np.float64)
    mean = on.mean(axis=0)
    refined = np.linalg.svd(on - mean, full_matrices=False)[2][-1]  # least-squares normal
    plane = np.append(refined, -refined @ (mean + center))
    return plane, np.abs(points @ plane[:3] + plane[3]) <= distance


def _beyond_fraction(points: np.ndarray, plane: np.ndarray, on_plane: np.ndarray) -> float:
    """Share of the plane's inliers outside the in-plane disc covering the other points."""
    if on_plane.all():
        return 1.0
    flat = points - np.outer(points @ plane[:3] + plane[3], plane[:3])  # [N, 3] projected onto the plane
    rest = flat[~on_plane]
    centre = rest.mean(axis=0)
    radius = np.linalg.norm(rest - centre, axis=1).max()
    return float((np.linalg.norm(flat[on_plane] - centre, axis=1) > radius).mean())


def clusters(points: np.ndarray, radius: float) -> tuple[int, np.ndarray]:
    """Connected components of the ``radius`` neighbour graph: ``(count, label (N,))``."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    pairs = cKDTree(points).query_pairs(radius, output_type="ndarray")  # [E, 2]
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(points),) * 2)
    return connected_components(graph, directed=False)


def segment_object(points, near=None, box=None, config: SceneConfig | None = None) -> Segmentation:
    """Split a scene cloud ``(N, 3)`` into the support plane and one object (module docstring).

    ``near`` ``(3,)``: keep the cluster nearest this point; ``box`` ``(2, 3)`` (min and max
    corners): keep the largest cluster inside it. ``ValueError`` for bad input or when no
    object is left.
    """
    from grasp_equi.validation import check_cloud

    config = config or SceneConfig()
    pts, _ = check_cloud(points)
    if len(pts) > MAX_POINTS:
        raise ValueError(f"scene cloud has {len(pts)} points, more than {MAX_POINTS}")
    plane, on_plane = fit_plane(pts, config.plane_distance, config.plane_iterations,
                                np.random.default_rng(config.seed))
    if plane is None or on_plane.mean() < config.min_plane_fraction or \
            _beyond_fraction(pts, plane, on_plane) < config.min_beyond:
        plane, on_plane = None, np.zeros(len(pts), dtype=bool)
    keep = ~on_plane
    if plane is not None:
        side = pts @ plane[:3] + plane[3]  # [N] signed distance
        above = side[keep] > 0
        keep &= (side > 0) if above.sum() >= (~above).sum() else (side < 0)  # the object's side of the table
    if box is not None:
        corners = np.asarray(box, dtype=np.float64).reshape(2, 3)
        keep &= ((pts >= corners.min(axis=0)) & (pts <= corners.max(axis=0))).all(axis=1)
    rest = np.flatnonzero(keep)
    if len(rest) < 4:
        raise ValueError(f"no object left after removing the support plane ({int(on_plane.sum())} points) "
                         f"{'and cropping to the box ' if box is not None else ''}({len(rest)} points remain)")
    count, label = clusters(pts[rest], config.cluster_radius)
    if near is not None:
        target = np.asarray(near, dtype=np.float64).reshape(3)
        chosen = label[int(np.argmin(np.linalg.norm(pts[rest] - target, axis=1)))]
    else:
        chosen = int(np.argmax(np.bincount(label)))  # largest; ties to the lowest label
    return Segmentation(rest[label == chosen], np.flatnonzero(on_plane), plane, int(count))
