"""Clouds that break rounding-dependent preprocessing: exact ties, symmetry, duplicates.

Random noisy clouds almost never put two distances exactly equal, so they hide every
discrete decision (a farthest-point argmax, a k-NN boundary, a sign vote) that float
rounding can flip once the cloud is moved. Real inputs do: mesh vertices and mesh-sampled
grids, organised depth images of flat faces, symmetric CAD shapes, merged frames that
repeat points. ``adversarial_family`` builds one of each kind, with grasps, numpy only (it
runs on a GPU box without trimesh or open3d); the tests, ``grasp-equi bench`` and
``grasp-equi evaluate`` measure the invariance error on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from grasp_equi.geometry import random_rotation


@dataclass
class Case:
    """One adversarial input: ``points`` ``(N, 3)`` m, ``contacts`` ``(G, K, 3)`` m on the cloud."""

    name: str
    points: np.ndarray
    contacts: np.ndarray


def box_surface_grid(size=(0.06, 0.04, 0.10), step: float = 0.004) -> np.ndarray:
    """The six faces of an axis-aligned box sampled on an exact grid of ``step`` (m), ``(N, 3)``."""
    axes = [np.arange(-d / 2, d / 2 + 1e-9, step) for d in size]
    faces = []
    for normal_axis in range(3):
        a, b = [i for i in range(3) if i != normal_axis]
        u, v = np.meshgrid(axes[a], axes[b], indexing="ij")
        for side in (-1.0, 1.0):
            face = np.zeros((u.size, 3))
            face[:, a], face[:, b] = u.ravel(), v.ravel()
            face[:, normal_axis] = side * size[normal_axis] / 2
            faces.append(face)
    return np.unique(np.round(np.concatenate(faces), 9), axis=0)


def flat_patch_grid(nx: int = 41, ny: int = 13, step: float = 0.002) -> np.ndarray:
    """One flat face on an exact grid, as an organised depth image of a plane sees it, ``(nx*ny, 3)``."""
    x, y = np.meshgrid(np.arange(nx) * step, np.arange(ny) * step, indexing="ij")
    return np.stack([x.ravel(), y.ravel(), np.zeros(x.size)], axis=1)


def plate_grid(thickness: float = 0.003, nx: int = 21, ny: int = 15, step: float = 0.003) -> np.ndarray:
    """Both faces of a thin plate, each an exact grid, ``(2 nx ny, 3)``."""
    face = flat_patch_grid(nx, ny, step)
    return np.concatenate([face, face + [0.0, 0.0, thickness]])


def icosphere(subdivisions: int = 3, radius: float = 0.04) -> np.ndarray:
    """Vertices ``(V, 3)`` of a subdivided icosahedron (every vertex exactly ``radius`` from the centre)."""
    t = (1.0 + 5 ** 0.5) / 2.0
    verts = [[-1, t, 0], [1, t, 0], [-1, -t, 0], [1, -t, 0], [0, -1, t], [0, 1, t], [0, -1, -t], [0, 1, -t],
             [t, 0, -1], [t, 0, 1], [-t, 0, -1], [-t, 0, 1]]
    faces = [[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4], [11, 10, 2],
             [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8], [3, 8, 9], [4, 9, 5], [2, 4, 11],
             [6, 2, 10], [8, 6, 7], [9, 8, 1]]
    verts = [np.asarray(v, dtype=np.float64) / np.linalg.norm(v) for v in verts]
    for _ in range(subdivisions):
        midpoint: dict[tuple[int, int], int] = {}

        def mid(i: int, j: int) -> int:
            key = (min(i, j), max(i, j))
            if key not in midpoint:
                m = verts[i] + verts[j]
                verts.append(m / np.linalg.norm(m))
                midpoint[key] = len(verts) - 1
            return midpoint[key]

        faces = [f for a, b, c in faces for f in ([a, mid(a, b), mid(a, c)], [b, mid(b, c), mid(a, b)],
                                                  [c, mid(a, c), mid(b, c)], [mid(a, b), mid(b, c), mid(a, c)])]
    return np.asarray(verts) * radius


def cylinder_vertices(sections: int = 32, rings: int = 12, radius: float = 0.03, height: float = 0.10) -> np.ndarray:
    """Side-wall vertices of a cylinder mesh with ``sections`` segments, plus its two cap rings' centres."""
    angle = np.arange(sections) * (2 * np.pi / sections)
    z = np.linspace(-height / 2, height / 2, rings)
    ring = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)  # [s, 2]
    wall = np.concatenate([np.column_stack([ring, np.full(sections, h)]) for h in z])
    caps = np.array([[0.0, 0.0, -height / 2], [0.0, 0.0, height / 2]])
    return np.concatenate([wall, caps])


def sphere_shell(n: int = 800, radius: float = 0.05, seed: int = 0) -> np.ndarray:
    """``n`` random points scaled to lie exactly ``radius`` from the origin (all tied for 'farthest')."""
    d = np.random.default_rng(seed).normal(size=(n, 3))
    return radius * d / np.linalg.norm(d, axis=1, keepdims=True)


def depth_view_of_box(size=(0.06, 0.04, 0.10), pixels: int = 48, fov: float = 0.5) -> np.ndarray:
    """An organised depth image of a box seen along its diagonal, back-projected: ``(n_hit, 3)`` in the
    camera frame (the regular pixel grid makes many exact ties in x/y)."""
    half = np.asarray(size) / 2
    rot = _look_at(np.array([1.0, 0.8, 0.6]))
    origin = rot.T @ np.array([0.0, 0.0, -0.4])  # camera 0.4 m from the box centre, box frame
    u = np.tan(fov / 2) * np.linspace(-1, 1, pixels)
    uu, vv = np.meshgrid(u, u, indexing="ij")
    rays_cam = np.stack([uu.ravel(), vv.ravel(), np.ones(uu.size)], axis=1)
    rays = rays_cam @ rot  # box frame (rows: rot^T applied)
    with np.errstate(divide="ignore", invalid="ignore"):
        t1, t2 = (-half - origin) / rays, (half - origin) / rays
    near, far = np.minimum(t1, t2).max(axis=1), np.maximum(t1, t2).min(axis=1)
    hit = (near <= far) & (near > 0)
    depth = near[hit] * rays_cam[hit, 2]  # z in the camera frame
    return rays_cam[hit] * (depth / rays_cam[hit, 2])[:, None]


def _look_at(direction: np.ndarray) -> np.ndarray:
    """Rotation whose third row is the unit ``direction`` (camera z looks along it)."""
    z = direction / np.linalg.norm(direction)
    x = np.cross([0.0, 0.0, 1.0], z)
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z])


def mirrored_grasps(points: np.ndarray, num: int, k: int = 2, seed: int = 0) -> np.ndarray:
    """``(num, k, 3)`` grasps of cloud points: a random point, the point nearest its mirror image through
    the centroid, and (k > 2) further random points. Every contact is a cloud point."""
    rng = np.random.default_rng(seed)
    first = rng.integers(0, len(points), num)
    mirror = 2 * points.mean(axis=0) - points[first]
    second = np.argmin(((mirror[:, None] - points[None]) ** 2).sum(-1), axis=1)
    extra = rng.integers(0, len(points), (num, k - 2))
    return points[np.column_stack([first, second, extra])]


def adversarial_family(seed: int = 0, grasps: int = 12) -> list[Case]:
    """One cloud of each adversarial kind with ``grasps`` K=2 grasps (and K=3 on the box grid)."""
    box = box_surface_grid()
    base = box_surface_grid(step=0.01)
    rng = np.random.default_rng(seed)
    noisy = box + rng.normal(scale=5e-4, size=box.shape)
    clouds: list[tuple[str, np.ndarray]] = [
        ("grid_box_4mm", box),
        ("grid_box_2mm", box_surface_grid(step=0.002)),  # ~6k points: thinned to the model's cloud_points first
        ("flat_patch_2mm", flat_patch_grid()),
        ("plate_3mm", plate_grid()),
        ("icosphere_s3", icosphere(3)),
        ("cylinder_32", cylinder_vertices()),
        ("cube_vertices", box_surface_grid((0.05, 0.05, 0.05), step=0.005)),
        ("sphere_shell", sphere_shell()),
        ("depth_view_box", depth_view_of_box()),
        ("duplicates_x2", np.repeat(base, 2, axis=0)),
        ("duplicates_x20", np.repeat(base, 20, axis=0)),
        ("stacked_x8", np.tile(box, (8, 1))),
        ("noisy_box", noisy),
    ]
    cases = [Case(name, pts, mirrored_grasps(pts, grasps, 2, seed)) for name, pts in clouds]
    cases.append(Case("grid_box_4mm_k3", box, mirrored_grasps(box, grasps, 3, seed)))
    # flying pixels: three stray points equally far (0.3 m) from a grid box, left out before normalising
    stray = base.mean(axis=0) + 0.3 * np.eye(3)
    cases.append(Case("stray_points", np.concatenate([base, stray]), mirrored_grasps(base, grasps, 2, seed)))
    return cases


def rigid_motions(seed: int = 0, count: int = 4, max_shift: float = 100.0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` random ``(R (3, 3), t (3,))``: every second one a reflection, the last an exact 90 degree turn
    about z with a shift of ``max_shift`` m."""
    rng = np.random.default_rng([seed, 77])
    motions = [(random_rotation(rng, reflect=bool(i % 2)), rng.uniform(-1.0, 1.0, 3) * 10 ** rng.uniform(-2, 1))
               for i in range(count - 1)]
    motions.append((np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]), np.full(3, max_shift)))
    return motions


def invariance_error(score: Callable[[np.ndarray, np.ndarray], np.ndarray], case: Case,
                     motions: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """Max ``|score(R p + t, R c + t) - score(p, c)|`` over ``motions`` (NaN entries must match)."""
    base = score(case.points, case.contacts)
    worst = 0.0
    for rot, trans in motions:
        moved = score(case.points @ rot.T + trans, case.contacts @ rot.T + trans)
        if not np.array_equal(np.isnan(base), np.isnan(moved)):
            return float("inf")
        ok = ~np.isnan(base)
        worst = max(worst, float(np.abs(moved[ok] - base[ok]).max(initial=0.0)))
    return worst
