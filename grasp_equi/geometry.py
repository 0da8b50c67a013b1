"""Rigid transforms, invariant farthest-point sampling and equivariant normal estimation.

Everything here is plain torch so it runs on the GPU, and every function commutes with
rigid motions of its input (the sampling picks the same points, normals rotate with the
cloud); see docs/design.md, "Invariance, end to end".
"""

from __future__ import annotations

import math

import numpy as np
import torch

from grasp_equi import cuda_fps


def exact_cdist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise Euclidean distances without the matrix-product shortcut.

    ``torch.cdist`` switches to ``|a|^2 + |b|^2 - 2ab`` above 25 points, which leaves
    orientation-dependent round-off (and non-zero self-distances); this keeps it exact.
    """
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")  # [n_a, n_b]


def random_rotation(rng: np.random.Generator | None = None, reflect: bool = False) -> np.ndarray:
    """A uniformly random 3x3 rotation (det +1), or an improper one (det -1) if ``reflect``."""
    rng = np.random.default_rng() if rng is None else rng
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    rot = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )  # [3, 3]
    if reflect:
        rot = rot @ np.diag([1.0, 1.0, -1.0])
    return rot


def rotation_from_euler(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """Rotation matrix for intrinsic Z-Y-X (yaw, pitch, roll) angles in radians."""
    cr, sr, cp, sp, cy, sy = (math.cos(roll), math.sin(roll), math.cos(pitch),
                              math.sin(pitch), math.cos(yaw), math.sin(yaw))
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return rz @ ry @ rx  # [3, 3]


def rotation_about_axis(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues' formula: rotation by ``angle`` radians about ``axis`` (any length)."""
    axis = np.asarray(axis, dtype=np.float64)
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * (k @ k)  # [3, 3]


def transform_points(points: np.ndarray, rot: np.ndarray, trans: np.ndarray | None = None) -> np.ndarray:
    """Apply ``x -> R x + t`` to an array of points of shape ``(..., 3)``."""
    out = np.asarray(points) @ np.asarray(rot).T
    return out if trans is None else out + np.asarray(trans)


# Ties in an argmax or a ranking go to the lowest point index: values are compared after scaling by
# (1 -/+ TIE_BIAS * index), so exactly tied values differ by >= TIE_BIAS relative, far above the
# rounding that moves the same cloud's values in another pose (~1e-12 relative in float64, 100 m
# away), and values that differ by more than TIE_BIAS * N (1e-5 at N = 100k) keep their order.
TIE_BIAS = 1e-10
_DEDUP_KEY = (0.7548776662466927, 0.5698402909980532, 0.3141592653589793)  # any fixed, "irrational" weights


def tie_break_factors(n: int, like: torch.Tensor) -> torch.Tensor:
    """``[n]`` factors ``1 - TIE_BIAS * i``: multiply non-negative values by them before an argmax so that
    ties (exact, or off by rounding) go to the lowest index."""
    return 1.0 - TIE_BIAS * torch.arange(n, dtype=like.dtype, device=like.device)


def argsort_unstable(values: torch.Tensor) -> torch.Tensor:
    """Indices ``[N]`` that sort ``values`` ``[N]`` ascending; equal values in any order (callers that care break
    ties themselves). On the CPU numpy's vectorised sort (x86-simd-sort): ~7x torch's stable sort for 20k
    doubles."""
    if values.device.type == "cpu":
        return torch.from_numpy(np.argsort(values.detach().numpy()))
    return torch.argsort(values)


def unique_points(points: torch.Tensor, normals: torch.Tensor | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``points`` ``[N, 3]`` without exact duplicates (first occurrences, in input order) and their ``normals``.

    Merged frames and repeated scans hold the same point many times; a copy adds nothing to the
    surface but fills k-NN neighbourhoods with one location (zero covariance) and shifts the
    centroid. Exact copies stay exact copies in any pose, so merging them is pose-independent.
    A fixed linear key finds clouds without copies in one sort (equal rows have equal keys);
    only clouds with equal keys pay for the exact row-wise ``unique``.
    """
    key = points @ torch.tensor(_DEDUP_KEY, dtype=points.dtype, device=points.device)  # [N]
    sorted_key = key[argsort_unstable(key)]  # [N]
    if not bool((sorted_key[1:] == sorted_key[:-1]).any()):
        return points, normals
    rows = np.ascontiguousarray(points.detach().cpu().numpy())  # [N, 3]
    _, first = np.unique(rows.view(np.dtype((np.void, rows.dtype.itemsize * 3))).ravel(), return_index=True)
    if first.shape[0] == points.shape[0]:
        return points, normals
    keep = torch.from_numpy(np.sort(first)).to(points.device)  # [U] input order
    return points[keep], None if normals is None else normals[keep]


def farthest_point_sampling(points: torch.Tensor, num_samples: int) -> torch.Tensor:
    """Indices ``[num_samples]`` of points picked by farthest-point sampling (Eldar et al. 1997).

    The first pick is the point farthest from the centroid, a rotation-invariant choice (a fixed
    index or a random start would not be). Every argmax breaks ties (exact, or off by rounding)
    towards the lowest index (``TIE_BIAS``), so the same array in any rigid pose gives the same
    picks (pass float64 points: float32 rounding is larger than the bias). A permutation of a
    cloud without exact distance ties gives the same points; with ties (grids, symmetric shapes)
    it may pick other, equally far points. Returns all indices when the cloud has no more than
    ``num_samples`` points.

    The loop is inherently sequential (``num_samples`` passes over the cloud), so its cost
    is per-step overhead: on the CPU it runs in numpy, on the GPU in torch without host syncs,
    replayed from a CUDA graph (``cuda_fps``). All compute the same distances and picks.
    """
    n = points.shape[0]
    if n <= num_samples:
        return torch.arange(n, device=points.device)
    centroid = points.mean(dim=0, keepdim=True)  # [1, 3]
    factors = tie_break_factors(n, points)  # [N]
    start = torch.argmax(((points - centroid) ** 2).sum(dim=1) * factors)  # [] on points.device
    if points.device.type == "cpu":
        picked = _fps_numpy(points.detach().numpy(), int(start), num_samples, factors.numpy())
        return torch.from_numpy(picked)
    if points.device.type == "cuda" and cuda_fps.enabled():
        return cuda_fps.sample(points, start, num_samples, _fps_torch)  # one graph replay per call
    return _fps_torch(points, start, num_samples)


def _fps_numpy(points: np.ndarray, start: int, num_samples: int, factors: np.ndarray) -> np.ndarray:
    """Farthest-point sampling from index ``start`` on a ``[N, 3]`` array (CPU path); ``factors`` ``[N]``
    from ``tie_break_factors``. The distances kept are scaled by them (a minimum commutes with a
    positive factor), so the argmax sees tie-broken values at the cost of one multiply."""
    x, y, z = np.ascontiguousarray(points.T)  # 3 x [N]: contiguous columns, no strided reads
    min_dist = np.full(len(x), np.inf, dtype=points.dtype)  # [N] scaled squared distance to the picked set
    dist = np.empty_like(min_dist)  # [N] preallocated: no allocation inside the loop
    diff = np.empty_like(min_dist)  # [N]
    picked = np.empty(num_samples, dtype=np.int64)  # [M]
    current = start
    for i in range(num_samples):
        picked[i] = current
        np.subtract(x, x[current], out=diff)
        np.multiply(diff, diff, out=dist)
        np.subtract(y, y[current], out=diff)
        diff *= diff
        dist += diff
        np.subtract(z, z[current], out=diff)
        diff *= diff
        dist += diff
        dist *= factors
        np.minimum(min_dist, dist, out=min_dist)
        current = int(min_dist.argmax())
    return picked


def _fps_torch(points: torch.Tensor, start: torch.Tensor, num_samples: int) -> torch.Tensor:
    """Farthest-point sampling from index ``start`` (a 0-d tensor) in torch (GPU path).

    The current pick stays a device tensor, so the loop never waits for the GPU.
    """
    cols = points.t().contiguous()  # [3, N]
    factors = tie_break_factors(points.shape[0], points)  # [N]
    min_dist = torch.full((points.shape[0],), float("inf"), device=points.device, dtype=points.dtype)  # [N]
    picked = torch.empty(num_samples, dtype=torch.long, device=points.device)  # [M]
    current = start.reshape(1)  # [1]
    for i in range(num_samples):
        picked[i:i + 1] = current
        diff = cols - cols.index_select(1, current)  # [3, N]
        torch.minimum(min_dist, (diff * diff).sum(dim=0) * factors, out=min_dist)
        current = torch.argmax(min_dist).reshape(1)
    return picked


class NeighbourIndex:
    """Exact k-nearest-neighbour queries into one cloud ``[N, 3]``, built once, queried often.

    CPU: a k-d tree (scipy; building it costs O(N log N), less than the O(n_q N) distance
    matrix). GPU: the exact distance matrix and ``topk``. Both return the same sets up to
    exact ties; callers must not depend on which of several tied points is returned (see
    ``neighbourhood_weights``) nor on the order within a row.
    """

    def __init__(self, cloud: torch.Tensor):
        self.cloud = cloud  # [N, 3]
        self._tree = None
        if cloud.device.type == "cpu":
            from scipy.spatial import cKDTree  # lazy: scipy.spatial costs ~0.1 s to import

            self._tree = cKDTree(cloud.detach().numpy().astype(np.float64), balanced_tree=False, compact_nodes=False)

    def query(self, queries: torch.Tensor, k: int) -> torch.Tensor:
        """Indices ``[n_q, k]`` of the ``k`` nearest cloud points of each query."""
        return self.query_with_distances(queries, k)[1]

    def query_with_distances(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Distances ``[n_q, k]`` (ascending, the cloud's dtype) and indices ``[n_q, k]`` of the ``k``
        nearest cloud points of each query."""
        k = min(k, self.cloud.shape[0])
        if self._tree is not None:
            dist, idx = self._tree.query(queries.detach().numpy().astype(np.float64), k=k)
            shape = (queries.shape[0], k)
            return (torch.from_numpy(np.asarray(dist).reshape(shape)).to(self.cloud.dtype),
                    torch.from_numpy(np.asarray(idx, dtype=np.int64).reshape(shape)))
        dist = exact_cdist(queries.to(self.cloud.dtype), self.cloud)  # [n_q, N]
        near = dist.topk(k, dim=1, largest=False)  # sorted ascending
        return near.values, near.indices  # [n_q, k], [n_q, k]


def nearest_neighbours(queries: torch.Tensor, cloud: torch.Tensor, k: int) -> torch.Tensor:
    """Indices ``[n_q, k]`` of the ``k`` nearest ``cloud`` points of each query (exact)."""
    return NeighbourIndex(cloud).query(queries, k)


# A smooth k-NN neighbourhood: weight 1 out to KERNEL_FLAT of the reach, then a smooth fall to 0 at
# the reach, KERNEL_REACH x the k-th neighbour's distance (capped by the farthest of QUERY_FACTOR x k
# candidates). Close to the plain k-NN average (which the normal-orientation rules were tuned on),
# without its jump when two distances swap at the k-th place.
KERNEL_REACH = 1.05
KERNEL_FLAT = 0.85
QUERY_FACTOR = 3


def neighbourhood_weights(dist: torch.Tensor, k: int) -> torch.Tensor:
    """Weights ``[n_q, n_c]`` in [0, 1] of candidate neighbours at distances ``dist`` ``[n_q, n_c]`` (ascending).

    A hard k-NN set changes when two distances swap at the k-th place (a grid, a ring of
    equidistant points), and the swap depends on rounding, so on the pose. Here each candidate
    gets ``w(d / r)`` with ``r = min(KERNEL_REACH d_k, d_max)``: ``r`` is a continuous function of
    the cloud, every point closer than ``r`` is among the candidates whatever the tie-breaking,
    and ``w`` falls smoothly from 1 (below ``KERNEL_FLAT``) to exactly 0 at ``r``. ``r`` is at
    least ``d_0 / KERNEL_FLAT``, so the nearest candidate always weighs 1.
    """
    k = min(k, dist.shape[1])
    reach = torch.minimum(KERNEL_REACH * dist[:, k - 1], dist[:, -1])  # [n_q]
    # ...but never below the nearest candidate's distance / KERNEL_FLAT: it always weighs 1, so the weights
    # never all vanish (a query equidistant from every candidate, e.g. on a cylinder's axis)
    reach = torch.maximum(reach, dist[:, 0] / KERNEL_FLAT)[:, None]  # [n_q, 1]
    t = dist / reach.clamp_min(torch.finfo(dist.dtype).tiny)  # [n_q, n_c]
    u = ((t - KERNEL_FLAT) / (1.0 - KERNEL_FLAT)).clamp(0.0, 1.0)
    return (1.0 - u * u) ** 2


def local_pca(queries: torch.Tensor, cloud: torch.Tensor, k: int, index: NeighbourIndex | None = None,
              dtype: torch.dtype | None = None, return_distances: bool = False):
    """Eigenvalues ``[n_q, 3]`` (ascending) and eigenvectors ``[n_q, 3, 3]`` (columns) of the weighted
    covariance of each query's smooth k-neighbourhood in ``cloud`` (``neighbourhood_weights``: no
    tie at the k-th neighbour can change it). ``dtype`` (default: the cloud's) moves the
    neighbourhoods to the CPU in that precision first. ``return_distances``: also the ascending
    distances ``[n_q, QUERY_FACTOR k]`` of the candidates (third element)."""
    dist, knn = (index or NeighbourIndex(cloud)).query_with_distances(queries, QUERY_FACTOR * k)  # [n_q, c] x2
    neigh = cloud[knn]  # [n_q, c, 3]
    if dtype is not None:
        neigh, dist = neigh.detach().cpu().to(dtype), dist.detach().cpu().to(dtype)
    weights = neighbourhood_weights(dist.to(neigh.dtype), k)[:, :, None]  # [n_q, c, 1]
    total = weights.sum(dim=1, keepdim=True)  # [n_q, 1, 1] > 0: the nearest point weighs 1
    mean = (weights * neigh).sum(dim=1, keepdim=True) / total  # [n_q, 1, 3]
    centred = (neigh - mean) * weights.sqrt()  # [n_q, c, 3]
    eigval, eigvec = torch.linalg.eigh(centred.transpose(1, 2) @ centred / total)  # [n_q, 3], [n_q, 3, 3]
    return (eigval, eigvec, dist) if return_distances else (eigval, eigvec)


# Sign decisions fade linearly to 0 within this band around their boundary (see ``soft_sign``).
SIGN_BAND = 0.1
# Lengths below this (in object radii: clouds are normalised) count as zero when a direction or a
# ratio feeds a sign: dividing rounding noise by rounding noise gives a value of any size.
SIGN_FLOOR = 1e-6


def soft_sign(x: torch.Tensor, band: float = SIGN_BAND) -> torch.Tensor:
    """``clamp(x / band, -1, 1)``: the sign of ``x`` where ``|x| >= band``, a linear ramp through 0 inside.

    A hard sign of a value near 0 flips with rounding (so with the pose); a normal scaled by this
    shrinks continuously to zero length instead, and rounding moves it by ~1e-15 / band.
    """
    return (x / band).clamp(-1.0, 1.0)


def unsigned_normals(queries: torch.Tensor, cloud: torch.Tensor, k: int = 16,
                     index: NeighbourIndex | None = None) -> torch.Tensor:
    """Unit normals ``[n_q, 3]`` of unknown sign: the least-variance direction of ``local_pca``."""
    return local_pca(queries, cloud, k, index)[1][:, :, 0]


def estimate_normals(
    queries: torch.Tensor, cloud: torch.Tensor, k: int = 16, center: torch.Tensor | None = None,
    index: NeighbourIndex | None = None,
) -> torch.Tensor:
    """Normals ``[n_queries, 3]`` at ``queries`` by weighted PCA of their smooth k-neighbourhood in ``cloud``.

    The sign is chosen equivariantly: each normal points away from ``center`` (default: the
    cloud's centroid), never toward a fixed axis or camera. Where the surface runs almost along
    the direction from the centre (``|cos| < SIGN_BAND``) that choice is ambiguous and the normal
    is shortened continuously to zero there (``soft_sign``); elsewhere it has unit length.
    ``index`` (over ``cloud``) saves rebuilding the neighbour search.
    """
    center = cloud.mean(dim=0) if center is None else center  # [3]
    normals = unsigned_normals(queries, cloud, k, index)  # [n_q, 3]
    return normals * centroid_sign(queries, normals, center)  # [n_q, 3]


def centroid_sign(queries: torch.Tensor, normals: torch.Tensor, center: torch.Tensor | None = None) -> torch.Tensor:
    """Factor ``[n_q, 1]`` in [-1, 1] that points ``normals`` ``[n_q, 3]`` (at ``queries``) away from ``center``
    (default: the origin): ``soft_sign`` of the cosine between normal and radial direction."""
    rel = queries.to(normals.dtype) if center is None else queries.to(normals.dtype) - center  # [n_q, 3]
    radial = rel / rel.norm(dim=1, keepdim=True).clamp_min(SIGN_FLOOR)  # [n_q, 3]; ~0 at the centre itself
    return soft_sign((radial * normals).sum(dim=1, keepdim=True))  # [n_q, 1]
