"""Built-in sample objects and candidate-grasp sampling for the window (Qt-free).

The project's data package (``grasp_equi.data``: object families, clouds, antipodal and
multi-finger grasp samplers) is used when it is importable. Without it, trimesh primitives
and the cloud-only samplers below stand in, so the window always has something to show.
"""

from __future__ import annotations

import numpy as np

from grasp_equi_gui.scene import SceneObject

CLOUD_POINTS = 2048  # points sampled on a sample object's surface
SAMPLER_POINTS = 4096  # the cloud-only grasp samplers look at most at this many points
_PRIMITIVES = ("box", "cylinder", "capsule", "ellipsoid")


def _data_modules():
    """``(objects, clouds, grasps)`` from grasp_equi.data, or None when not importable."""
    try:
        from grasp_equi.data import clouds, grasps, objects
    except ImportError:
        return None
    return objects, clouds, grasps


def sample_families() -> list[str]:
    """Names offered in the "sample" menu."""
    mods = _data_modules()
    return list(mods[0].FAMILIES) if mods else list(_PRIMITIVES)


def _primitive_mesh(family: str, rng: np.random.Generator):
    import trimesh

    s = rng.uniform(0.8, 1.2, size=3)
    if family == "box":
        return trimesh.creation.box(extents=[0.08 * s[0], 0.05 * s[1], 0.04 * s[2]])
    if family == "cylinder":
        return trimesh.creation.cylinder(radius=0.025 * s[0], height=0.09 * s[1], sections=48)
    if family == "capsule":
        return trimesh.creation.capsule(radius=0.02 * s[0], height=0.06 * s[1], count=[24, 24])
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=1.0)
    mesh.apply_scale([0.05 * s[0], 0.03 * s[1], 0.02 * s[2]])
    return mesh


def mesh_surface_cloud(mesh, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points on a trimesh surface and the normals of the faces they lie on."""
    import trimesh

    seed = int(rng.integers(2**31 - 1))
    points, faces = trimesh.sample.sample_surface(mesh, n, seed=seed)
    return np.asarray(points, dtype=np.float64), np.asarray(mesh.face_normals[faces], dtype=np.float64)


def make_sample(family: str, seed: int = 0, n_points: int = CLOUD_POINTS, partial: bool = False) -> SceneObject:
    """A built-in object with its mesh and a complete surface cloud, or with ``partial`` the
    cloud one depth camera sees (needs grasp_equi.data)."""
    rng = np.random.default_rng(seed)
    mods = _data_modules()
    if mods:
        objects, clouds, _ = mods
        info = objects.make_object(family, rng)
        if partial:
            points, normals, _camera = clouds.partial_cloud(info, rng)
        else:
            points, normals = surface_cloud(info, info.mesh, n_points, rng)
        mesh, name = info.mesh, f"{info.name} (seed {seed}{', one view' if partial else ''})"
    else:
        if family not in _PRIMITIVES:
            raise ValueError(f"unknown sample {family!r}; choose one of {_PRIMITIVES}")
        mesh = _primitive_mesh(family, rng)
        points, normals = mesh_surface_cloud(mesh, n_points, rng)
        info, name = None, f"{family} (seed {seed})"
    return SceneObject(name=name, points=np.asarray(points, np.float64), normals=np.asarray(normals, np.float64),
                       mesh_vertices=np.asarray(mesh.vertices, np.float64),
                       mesh_faces=np.asarray(mesh.faces, np.int64), source=info)


def load_mesh_info(path, units: str):
    """The project's ``ObjectInfo`` for a mesh file (None without grasp_equi.data)."""
    mods = _data_modules()
    return mods[0].load_mesh_object(path, units) if mods else None


def surface_cloud(info, mesh, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A complete surface cloud with normals: the project's sampler when ``info`` is known."""
    mods = _data_modules()
    if mods and info is not None:
        points, normals = mods[1].complete_cloud(info, n, rng)
        return np.asarray(points, np.float64), np.asarray(normals, np.float64)
    return mesh_surface_cloud(mesh, n, rng)


# ---------------------------------------------------------------------- grasps
def sample_grasps(obj: SceneObject, k: int, n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` candidate grasps of ``k`` contacts on ``obj`` (object frame).

    K = 2 are antipodal pairs, K >= 3 multi-finger grasps; the project's samplers are used
    for objects they know (built-in samples, loaded meshes), the cloud samplers otherwise.
    """
    if not 2 <= k <= 5:
        raise ValueError(f"contacts per grasp must be 2..5, got {k}")
    rng = np.random.default_rng(seed)
    mods = _data_modules()
    if mods and obj.source is not None:
        _, _, grasps = mods
        if k == 2:
            contacts, _ = grasps.sample_antipodal(obj.source, n, rng)
        else:
            contacts, _ = grasps.sample_multifinger(obj.source, k, n, rng)
        out = [np.asarray(c, dtype=np.float64) for c in contacts]
        if out:
            return out
    points, normals = obj.points, obj.normals
    if len(points) > SAMPLER_POINTS:  # candidates come from a subset: bounded time and memory
        keep = rng.choice(len(points), SAMPLER_POINTS, replace=False)
        points, normals = points[keep], None if normals is None else normals[keep]
    normals = normals if normals is not None else estimate_normals_np(points)
    if k == 2:
        return antipodal_on_cloud(points, normals, n, rng)
    return ring_on_cloud(points, k, n, rng)


def estimate_normals_np(points: np.ndarray) -> np.ndarray:
    """Outward PCA normals with the project's (torch) estimator; used for sampling only."""
    import torch

    from grasp_equi.geometry import estimate_normals

    pts = torch.as_tensor(points, dtype=torch.float64)  # [N, 3]
    return estimate_normals(pts, pts, k=16).numpy()  # [N, 3]


def antipodal_on_cloud(points: np.ndarray, normals: np.ndarray, n: int, rng: np.random.Generator,
                       max_angle_deg: float = 20.0, tries: int = 40) -> list[np.ndarray]:
    """Pairs of cloud points whose normals oppose each other along the line joining them."""
    cos_max = np.cos(np.radians(max_angle_deg))
    out: list[np.ndarray] = []
    for _ in range(n * tries):
        if len(out) >= n:
            break
        i = rng.integers(len(points))
        d = points - points[i]  # [N, 3]
        dist = np.linalg.norm(d, axis=1)
        ok = dist > 1e-6
        along = np.full(len(points), -1.0)
        along[ok] = (d[ok] @ -normals[i]) / dist[ok]  # the line enters the object at i
        back = np.full(len(points), -1.0)
        back[ok] = np.einsum("ij,ij->i", d[ok], normals[ok]) / dist[ok]  # and leaves it at j
        cand = np.flatnonzero((along > cos_max) & (back > cos_max))
        if len(cand):
            j = cand[np.argmax(along[cand] + back[cand])]
            out.append(np.stack([points[i], points[j]]))
    return out


def ring_on_cloud(points: np.ndarray, k: int, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``k`` contacts spread around the object in a random plane through its centroid."""
    center = points.mean(axis=0)
    rel = points - center  # [N, 3]
    thickness = 0.15 * np.linalg.norm(rel, axis=1).max()
    out = []
    for _ in range(n):
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        u = np.cross(axis, rng.normal(size=3))
        u /= np.linalg.norm(u)
        v = np.cross(axis, u)
        near = np.flatnonzero(np.abs(rel @ axis) < thickness)
        if len(near) < k:
            continue
        azimuth = np.arctan2(rel[near] @ v, rel[near] @ u)  # [n_near]
        start = rng.uniform(0, 2 * np.pi)
        targets = (start + 2 * np.pi * np.arange(k) / k + np.pi) % (2 * np.pi) - np.pi
        gap = np.abs((azimuth[:, None] - targets[None, :] + np.pi) % (2 * np.pi) - np.pi)  # [n_near, k]
        out.append(points[near[gap.argmin(axis=0)]])
    return out


def load_grasps_file(path) -> list[np.ndarray]:
    """Contacts from ``.npy`` ``(G, K, 3)`` or ``.npz`` (``contacts``); never unpickles."""
    from pathlib import Path

    path = Path(path)
    try:
        data = np.load(path, allow_pickle=False)
        arr = data["contacts"] if isinstance(data, np.lib.npyio.NpzFile) else data
        arr = np.asarray(arr, dtype=np.float64)
    except (OSError, ValueError, KeyError, EOFError) as err:
        raise ValueError(f"grasps file {path.name}: cannot read it ({err})") from None
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[1] < 2:
        raise ValueError(f"grasps file {path.name}: expected (G, K>=2, 3) contacts, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"grasps file {path.name}: contains NaN/inf")
    return list(arr)
