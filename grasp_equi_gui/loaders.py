"""Open a mesh or point-cloud file as a ``SceneObject`` (Qt-free).

Meshes (OBJ, STL, PLY with faces, OFF, GLB) load with trimesh and get a surface cloud;
clouds (PCD, PLY without faces, XYZ) with open3d; ``.npy``/``.npz`` arrays with numpy
(never unpickled). Every failure is a ``ValueError`` naming the file and the problem, which
the window shows in a message box.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from grasp_equi_gui.samples import CLOUD_POINTS, load_mesh_info, surface_cloud
from grasp_equi_gui.scene import SceneObject

MESH_SUFFIXES = (".obj", ".stl", ".off", ".glb", ".gltf")
CLOUD_SUFFIXES = (".pcd", ".xyz", ".xyzn", ".pts")
ARRAY_SUFFIXES = (".npy", ".npz")
FILE_FILTER = "Meshes and clouds (*.obj *.stl *.ply *.off *.glb *.pcd *.xyz *.npy *.npz);;All files (*)"
MAX_EXTENT_M = 1.0  # bigger objects are assumed to be in millimetres
MAX_POINTS = 100_000  # larger clouds are subsampled once, on load


def load_object_file(path, seed: int = 0) -> tuple[SceneObject, str]:
    """The object in ``path`` and a one-line note about how it was read."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix in ARRAY_SUFFIXES:
            obj = _load_array(path)
        elif suffix in CLOUD_SUFFIXES:
            obj = _load_cloud(path)
        elif suffix in MESH_SUFFIXES or suffix == ".ply":
            obj = _load_mesh_or_cloud(path, seed)
        else:
            raise ValueError(f"unsupported file type {suffix!r}")
    except ValueError as err:
        text = str(err)
        raise ValueError(text if text.startswith(path.name) else f"{path.name}: {text}") from None
    except Exception as err:  # noqa: BLE001  trimesh/open3d raise many types on corrupt files
        raise ValueError(f"{path.name}: not a readable mesh or cloud ({type(err).__name__}: {err})") from None
    return _checked_and_scaled(obj, path)


def _load_array(path: Path) -> SceneObject:
    data = np.load(path, allow_pickle=False)
    if isinstance(data, np.lib.npyio.NpzFile):
        if "points" not in data:
            raise ValueError("an .npz cloud needs a 'points' array")
        points, normals = data["points"], (data["normals"] if "normals" in data else None)
    else:
        if data.ndim != 2 or data.shape[1] not in (3, 6):
            raise ValueError(f"expected an (N, 3) or (N, 6) array, got shape {data.shape}")
        points, normals = data[:, :3], (data[:, 3:] if data.shape[1] == 6 else None)
    return SceneObject(path.name, np.asarray(points, np.float64),
                       None if normals is None else np.asarray(normals, np.float64), source=None)


def _load_cloud(path: Path) -> SceneObject:
    import open3d as o3d

    pcd = o3d.io.read_point_cloud(str(path))
    if len(pcd.points) == 0:
        raise ValueError("no points could be read (empty or corrupt cloud file)")
    normals = np.asarray(pcd.normals, np.float64) if pcd.has_normals() else None
    return SceneObject(path.name, np.asarray(pcd.points, np.float64), normals, source=None)


def _load_mesh_or_cloud(path: Path, seed: int) -> SceneObject:
    """A mesh with a surface cloud; a PLY without faces is read as a cloud instead."""
    import trimesh

    loaded = trimesh.load(str(path), force="mesh", process=False)
    faces = getattr(loaded, "faces", None)
    if path.suffix.lower() == ".ply" and (faces is None or len(faces) == 0):
        return _load_cloud(path)
    if not isinstance(loaded, trimesh.Trimesh) or len(loaded.faces) == 0:
        raise ValueError("no triangles could be read (empty or corrupt mesh)")
    vertices = np.asarray(loaded.vertices, np.float64)
    if not np.isfinite(vertices).all():
        raise ValueError("the mesh has NaN/inf vertices")
    units = "mm" if np.ptp(vertices, axis=0).max() > MAX_EXTENT_M else "m"
    info = load_mesh_info(path, units)
    rng = np.random.default_rng(seed)
    mesh = info.mesh if info is not None else trimesh.Trimesh(vertices * (1e-3 if units == "mm" else 1.0),
                                                               loaded.faces, process=True)
    if mesh.area <= 0:
        raise ValueError("the mesh has zero surface area")
    points, normals = surface_cloud(info, mesh, CLOUD_POINTS, rng)
    name = path.name + (" (read as millimetres)" if units == "mm" else "")
    return SceneObject(name, points, normals, np.asarray(mesh.vertices, np.float64),
                       np.asarray(mesh.faces, np.int64), source=info)


def _checked_and_scaled(obj: SceneObject, path: Path) -> tuple[SceneObject, str]:
    """Reject unusable clouds; subsample huge ones; read very large clouds as millimetres."""
    pts = obj.points
    if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) < 4:
        raise ValueError(f"{path.name}: needs at least 4 points of 3 coordinates, got shape {pts.shape}")
    if not np.isfinite(pts).all():
        raise ValueError(f"{path.name}: the cloud contains NaN/inf coordinates")
    if np.ptp(pts, axis=0).max() <= 1e-9:
        raise ValueError(f"{path.name}: all points are at one location")
    if obj.normals is not None and (obj.normals.shape != pts.shape or not np.isfinite(obj.normals).all()
                                    or (np.linalg.norm(obj.normals, axis=1) < 1e-9).any()):
        obj.normals = None  # unusable normals: the scorer estimates its own
    extent = float(np.ptp(pts, axis=0).max())
    note = f"{obj.name}: {len(pts)} points" + (", mesh" if obj.mesh_faces is not None else "")
    if len(pts) > MAX_POINTS:  # a fixed subset in the object's own frame: poses still see the same points
        keep = np.sort(np.random.default_rng(0).choice(len(pts), MAX_POINTS, replace=False))
        obj.points = pts = pts[keep]
        obj.normals = None if obj.normals is None else obj.normals[keep]
        note += f" (kept a random {MAX_POINTS})"
    if extent > MAX_EXTENT_M and obj.mesh_faces is None:
        obj.points = pts * 1e-3
        note += f" (extent {extent:.3g} > {MAX_EXTENT_M}: read as millimetres)"
    return obj, note
