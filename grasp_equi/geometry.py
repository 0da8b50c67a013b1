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


def farthest_point_sampling(points: torch.Tensor, num_samples: int) -> torch.Tensor:
    """Indices ``[num_samples]`` of points picked by farthest-point sampling.

    The first pick is the point farthest from the centroid, a rotation- and
    permutation-invariant choice (a fixed index or a random start would not be). Returns
    all indices when the cloud has no more than ``num_samples`` points.

    The loop is inherently sequential (``num_samples`` passes over the cloud), so its cost
    is per-step overhead: on the CPU it runs in numpy (about 4x fewer microseconds per
    step than torch), on the GPU in torch without host syncs, replayed from a CUDA graph
    (``cuda_fps``). All compute the same squared distances and pick the same points.
    """
    n = points.shape[0]
    if n <= num_samples:
        return torch.arange(n, device=points.device)
    centroid = points.mean(dim=0, keepdim=True)  # [1, 3]
    start = torch.argmax(((points - centroid) ** 2).sum(dim=1))  # [] on points.device
    if points.device.type == "cpu":
        picked = _fps_numpy(points.detach().numpy(), int(start), num_samples)
        return torch.from_numpy(picked)
    if points.device.type == "cuda" and cuda_fps.enabled():
        return cuda_fps.sample(points, start, num_samples, _fps_torch)  # one graph replay per call
    return _fps_torch(points, start, num_samples)


def _fps_numpy(points: np.ndarray, start: int, num_samples: int) -> np.ndarray:
    """Farthest-point sampling from index ``start`` on a ``[N, 3]`` array (CPU path)."""
    x, y, z = np.ascontiguousarray(points.T)  # 3 x [N]: contiguous columns, no strided reads
    min_dist = np.full(len(x), np.inf, dtype=points.dtype)  # [N] squared distance to the picked set
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
        np.minimum(min_dist, dist, out=min_dist)
        current = int(min_dist.argmax())
    return picked


def _fps_torch(points: torch.Tensor, start: torch.Tensor, num_samples: int) -> torch.Tensor:
    """Farthest-point sampling from index ``start`` (a 0-d tensor) in torch (GPU path).

    The current pick stays a device tensor, so the loop never waits for the GPU.
    """
    cols = points.t().contiguous()  # [3, N]
    min_dist = torch.full((points.shape[0],), float("inf"), device=points.device, dtype=points.dtype)  # [N]
    picked = torch.empty(num_samples, dtype=torch.long, device=points.device)  # [M]
    current = start.reshape(1)  # [1]
    for i in range(num_samples):
        picked[i:i + 1] = current
        diff = cols - cols.index_select(1, current)  # [3, N]
        torch.minimum(min_dist, (diff * diff).sum(dim=0), out=min_dist)
        current = torch.argmax(min_dist).reshape(1)
    return picked


class NeighbourIndex:
    """Exact k-nearest-neighbour queries into one cloud ``[N, 3]``, built once, queried often.

    CPU: a k-d tree (scipy; building it costs O(N log N), less than the O(n_q N) distance
    matrix). GPU: the exact distance matrix and ``topk``. Both return the same sets (up to
    exact ties); the order within a row is not used by callers. The scorer queries the same
    index for the node normals and, later, for the normals at every batch of contacts.
    """

    def __init__(self, cloud: torch.Tensor):
        self.cloud = cloud  # [N, 3]
        self._tree = None
        if cloud.device.type == "cpu":
            from scipy.spatial import cKDTree  # lazy: scipy.spatial costs ~0.1 s to import

            self._tree = cKDTree(cloud.detach().numpy().astype(np.float64), balanced_tree=False, compact_nodes=False)

    def query(self, queries: torch.Tensor, k: int) -> torch.Tensor:
        """Indices ``[n_q, k]`` of the ``k`` nearest cloud points of each query."""
        k = min(k, self.cloud.shape[0])
        if self._tree is not None:
            _, idx = self._tree.query(queries.detach().numpy().astype(np.float64), k=k)
            return torch.from_numpy(np.asarray(idx, dtype=np.int64).reshape(queries.shape[0], k))
        dist = exact_cdist(queries, self.cloud)  # [n_q, N]
        return dist.topk(k, dim=1, largest=False).indices  # [n_q, k]


def nearest_neighbours(queries: torch.Tensor, cloud: torch.Tensor, k: int) -> torch.Tensor:
    """Indices ``[n_q, k]`` of the ``k`` nearest ``cloud`` points of each query (exact)."""
    return NeighbourIndex(cloud).query(queries, k)


def local_pca(queries: torch.Tensor, cloud: torch.Tensor, k: int, index: NeighbourIndex | None = None,
              dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues ``[n_q, 3]`` (ascending) and eigenvectors ``[n_q, 3, 3]`` (columns) of the
    covariance of each query's ``k`` nearest ``cloud`` points; ``dtype`` (default: the cloud's)
    moves the neighbourhoods to the CPU in that precision first."""
    knn = (index or NeighbourIndex(cloud)).query(queries, k)  # [n_q, k]
    neigh = cloud[knn]  # [n_q, k, 3]
    if dtype is not None:
        neigh = neigh.detach().cpu().to(dtype)
    centred = neigh - neigh.mean(dim=1, keepdim=True)  # [n_q, k, 3]
    return torch.linalg.eigh(centred.transpose(1, 2) @ centred)  # [n_q, 3], [n_q, 3, 3]


def estimate_normals(
    queries: torch.Tensor, cloud: torch.Tensor, k: int = 16, center: torch.Tensor | None = None,
    index: NeighbourIndex | None = None,
) -> torch.Tensor:
    """Unit normals at ``queries`` by PCA of their ``k`` nearest neighbours in ``cloud``.

    The sign is chosen equivariantly: each normal points away from ``center`` (default: the
    cloud's centroid), never toward a fixed axis or camera. ``index`` (over ``cloud``) saves
    rebuilding the neighbour search. Returns ``[n_queries, 3]``.
    """
    center = cloud.mean(dim=0) if center is None else center  # [3]
    _, eigvec = local_pca(queries, cloud, k, index)  # eigenvalues ascending
    normals = eigvec[:, :, 0]  # [n_q, 3], direction of least variance
    outward = ((queries - center) * normals).sum(dim=1, keepdim=True)  # [n_q, 1]
    return torch.where(outward < 0, -normals, normals)
