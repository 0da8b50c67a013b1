"""Rigid transforms, invariant farthest-point sampling and equivariant normal estimation.

Everything here is plain torch so it runs on the GPU, and every function commutes with
rigid motions of its input (the sampling picks the same points, normals rotate with the
cloud); see DESIGN.md, "Invariance, end to end".
"""

from __future__ import annotations

import math

import numpy as np
import torch


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
    """Indices of ``num_samples`` points picked by farthest-point sampling.

    The first pick is the point farthest from the centroid, a rotation- and
    permutation-invariant choice (a fixed index or a random start would not be). Returns
    all indices when the cloud has no more than ``num_samples`` points.
    """
    n = points.shape[0]
    if n <= num_samples:
        return torch.arange(n, device=points.device)
    centroid = points.mean(dim=0, keepdim=True)  # [1, 3]
    start = torch.argmax(((points - centroid) ** 2).sum(dim=1))
    picked = torch.empty(num_samples, dtype=torch.long, device=points.device)  # [M]
    min_dist = torch.full((n,), float("inf"), device=points.device, dtype=points.dtype)  # [N]
    current = start
    for i in range(num_samples):
        picked[i] = current
        dist = ((points - points[current]) ** 2).sum(dim=1)  # [N]
        min_dist = torch.minimum(min_dist, dist)
        current = torch.argmax(min_dist)
    return picked


def estimate_normals(
    queries: torch.Tensor, cloud: torch.Tensor, k: int = 16, center: torch.Tensor | None = None
) -> torch.Tensor:
    """Unit normals at ``queries`` by PCA of their ``k`` nearest neighbours in ``cloud``.

    The sign is chosen equivariantly: each normal points away from ``center`` (default: the
    cloud's centroid), never toward a fixed axis or camera. Returns ``[n_queries, 3]``.
    """
    k = min(k, cloud.shape[0])
    center = cloud.mean(dim=0) if center is None else center  # [3]
    dist = exact_cdist(queries, cloud)  # [n_q, N]
    knn = dist.topk(k, dim=1, largest=False).indices  # [n_q, k]
    neigh = cloud[knn]  # [n_q, k, 3]
    centred = neigh - neigh.mean(dim=1, keepdim=True)  # [n_q, k, 3]
    cov = centred.transpose(1, 2) @ centred  # [n_q, 3, 3]
    _, eigvec = torch.linalg.eigh(cov)  # eigenvalues ascending
    normals = eigvec[:, :, 0]  # [n_q, 3], direction of least variance
    outward = ((queries - center) * normals).sum(dim=1, keepdim=True)  # [n_q, 1]
    return torch.where(outward < 0, -normals, normals)
