"""Point clouds of an object: complete surface samples and single-view partial clouds.

Partial clouds are rendered by ray casting (``open3d.t.geometry.RaycastingScene``) from a
camera 0.3-1 m away looking at the object, with depth noise along each ray and random
dropout; only object points come back. Normals are the TRUE normals of the hit triangles
(stored for labelling and analysis; the model itself estimates its own).
"""

from __future__ import annotations

import numpy as np
import open3d as o3d

from grasp_equi.data.objects import ObjectInfo


def raycasting_scene(obj: ObjectInfo) -> o3d.t.geometry.RaycastingScene:
    """An open3d ray-casting scene holding the object's mesh (cached on the object)."""
    scene = getattr(obj, "_scene", None)
    if scene is None:
        scene = o3d.t.geometry.RaycastingScene()
        scene.add_triangles(o3d.core.Tensor(np.asarray(obj.mesh.vertices, dtype=np.float32)),
                            o3d.core.Tensor(np.asarray(obj.mesh.faces, dtype=np.uint32)))
        object.__setattr__(obj, "_scene", scene)
    return scene


def cast(obj: ObjectInfo, origins: np.ndarray, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First hits of rays ``[R, 3]``: ``(t [R] (inf = miss), points [R, 3], normals [R, 3])``.

    Normals are the hit triangles' normals, flipped where needed to face the ray's origin
    (the outward side of the surface seen from outside).
    """
    directions = directions / np.linalg.norm(directions, axis=1, keepdims=True)
    rays = np.concatenate([origins, directions], axis=1).astype(np.float32)  # [R, 6]
    hit = raycasting_scene(obj).cast_rays(o3d.core.Tensor(rays))
    t = hit["t_hit"].numpy().astype(np.float64)  # [R]
    ids = hit["primitive_ids"].numpy().astype(np.int64)  # [R]
    ok = np.isfinite(t)
    normals = np.zeros_like(origins, dtype=np.float64)
    normals[ok] = np.asarray(obj.mesh.face_normals)[ids[ok]]
    flip = (normals * directions).sum(axis=1) > 0  # facing away from the ray's origin
    normals[flip] *= -1
    return t, origins + np.where(ok, t, 0.0)[:, None] * directions, normals


def sample_surface(obj: ObjectInfo, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points uniformly distributed over the surface area, with their face normals."""
    mesh = obj.mesh
    areas = np.asarray(mesh.area_faces)  # [F]
    faces = rng.choice(len(areas), size=n, p=areas / areas.sum())  # [n]
    u, v = rng.random((2, n))
    fold = u + v > 1  # reflect into the triangle
    u, v = np.where(fold, 1 - u, u), np.where(fold, 1 - v, v)
    tri = np.asarray(mesh.triangles)[faces]  # [n, 3, 3]
    points = tri[:, 0] + u[:, None] * (tri[:, 1] - tri[:, 0]) + v[:, None] * (tri[:, 2] - tri[:, 0])
    return points, np.asarray(mesh.face_normals)[faces].copy()


def complete_cloud(obj: ObjectInfo, n_points: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(points [N, 3], normals [N, 3])``: the whole surface, area-uniform samples."""
    if n_points < 1:
        raise ValueError(f"n_points must be positive; got {n_points}")
    return sample_surface(obj, n_points, rng)


def random_unit(rng: np.random.Generator, n: int | None = None) -> np.ndarray:
    v = rng.normal(size=(3,) if n is None else (n, 3))
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def partial_cloud(obj: ObjectInfo, rng: np.random.Generator, distance=(0.3, 1.0), noise: float = 0.001,
                  dropout: float = 0.1, resolution: int = 96) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One depth-camera view: ``(points [N, 3], normals [N, 3], camera_position (3,))``.

    The camera sits ``distance`` metres (uniform in the range) from the object's centre in a
    random direction and looks at it (aim jittered by up to 20 % of the radius). Its image is
    cropped to the object: ``resolution`` x ``resolution`` rays spanning the object's angular
    size (a region of interest in a real depth image). Each hit moves along its ray by
    N(0, ``noise``^2) metres (depth noise); a ``dropout`` fraction of hits is removed.
    """
    lo, hi = (distance, distance) if np.isscalar(distance) else distance
    if not 0 < lo <= hi:
        raise ValueError(f"distance must be a positive range; got {distance}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1); got {dropout}")
    dist = rng.uniform(lo, hi)
    camera = obj.center + dist * random_unit(rng)  # (3,)
    target = obj.center + 0.2 * obj.radius * rng.uniform(-1, 1, size=3)
    forward = (target - camera) / np.linalg.norm(target - camera)
    right = np.cross(forward, random_unit(rng))
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    reach = np.linalg.norm(target - camera)
    half = np.tan(np.arcsin(min(0.99, 1.25 * obj.radius / reach)))  # half-width of the crop (tan of angle)
    grid = np.linspace(-half, half, resolution)
    gx, gy = np.meshgrid(grid, grid, indexing="xy")
    dirs = forward + gx.reshape(-1, 1) * right + gy.reshape(-1, 1) * up  # [R, 3]
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    origins = np.broadcast_to(camera, dirs.shape).copy()
    t, _, normals = cast(obj, origins, dirs)
    ok = np.isfinite(t)
    t, dirs, normals = t[ok], dirs[ok], normals[ok]
    t = t + rng.normal(scale=noise, size=t.shape) if noise > 0 else t
    points = camera + t[:, None] * dirs  # [N, 3]
    keep = rng.random(len(points)) >= dropout
    return points[keep], normals[keep], camera
