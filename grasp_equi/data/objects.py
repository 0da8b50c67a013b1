"""Objects to grasp: procedural families made with trimesh, and the user's own meshes.

Every family is a name, so evaluation can hold out whole families (``splits.json``). A
generated object is 2-15 cm across, randomly proportioned, randomly rotated, and stored with
its centre (centre of mass for a watertight mesh of uniform, random density; the surface
centroid otherwise) and characteristic radius (largest distance of the surface from that
centre), the two quantities the grasp-quality wrenches are expressed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh

from grasp_equi.data.units import MESH_SUFFIXES, UNITS  # noqa: F401 (re-exported)

MIN_RADIUS, MAX_RADIUS = 0.005, 1.0  # metres; outside this a mesh is almost surely in the wrong units


@dataclass
class ObjectInfo:
    """One object: its mesh (metres) and the frame its grasp wrenches are measured in."""

    mesh: trimesh.Trimesh
    family: str
    center: np.ndarray  # (3,) centre of mass (watertight) or surface centroid
    radius: float  # max distance of the surface from ``center``
    name: str
    mass: float = 0.0  # kg (0 when unknown: user meshes without volume)
    watertight: bool = True

    def __getstate__(self):  # the cached open3d ray-casting scene cannot be pickled
        state = dict(self.__dict__)
        state.pop("_scene", None)
        return state


# ----------------------------------------------------------------------------- primitives
def _box(rng):
    return trimesh.creation.box(extents=rng.uniform(0.02, 0.12, size=3))


def _cylinder(rng):
    return trimesh.creation.cylinder(radius=rng.uniform(0.01, 0.045), height=rng.uniform(0.02, 0.15), sections=48)


def _sphere(rng):
    return trimesh.creation.icosphere(subdivisions=3, radius=rng.uniform(0.01, 0.05))


def _ellipsoid(rng):
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=1.0)
    mesh.apply_scale(rng.uniform(0.01, 0.06, size=3))
    return mesh


def _capsule(rng):
    return trimesh.creation.capsule(height=rng.uniform(0.01, 0.1), radius=rng.uniform(0.008, 0.035), count=[32, 16])


def _cone(rng):
    return trimesh.creation.cone(radius=rng.uniform(0.015, 0.06), height=rng.uniform(0.03, 0.13), sections=48)


def _torus(rng):
    major = rng.uniform(0.02, 0.055)
    minor = rng.uniform(0.25, 0.6) * major
    return trimesh.creation.torus(major_radius=major, minor_radius=minor, major_sections=48, minor_sections=20)


def _superquadric(rng):
    """Star-shaped superquadric: each icosphere direction pushed out to the implicit surface."""
    mesh = trimesh.creation.icosphere(subdivisions=4, radius=1.0)
    e1, e2 = rng.uniform(0.3, 1.6, size=2)  # squareness: < 1 boxy, 1 ellipsoid, > 1 pinched
    a, b, c = rng.uniform(0.012, 0.06, size=3)
    d = np.asarray(mesh.vertices)  # [V, 3] unit directions
    x, y, z = np.abs(d[:, 0]) / a, np.abs(d[:, 1]) / b, np.abs(d[:, 2]) / c
    f = (x ** (2 / e2) + y ** (2 / e2)) ** (e2 / e1) + z ** (2 / e1)  # F(d); F(t d) = t^(2/e1) F(d)
    t = f ** (-e1 / 2)  # [V]
    return trimesh.Trimesh(d * t[:, None], mesh.faces, process=True)


def _convex_hull(rng):
    pts = rng.normal(size=(rng.integers(8, 40), 3)) * rng.uniform(0.01, 0.05, size=3)
    return trimesh.convex.convex_hull(pts)


def _prism(rng):
    """Regular 3-8 sided prism (a low-section cylinder)."""
    return trimesh.creation.cylinder(radius=rng.uniform(0.012, 0.05), height=rng.uniform(0.02, 0.14),
                                     sections=int(rng.integers(3, 9)))


def _extrude_polygon(outline: np.ndarray, triangles: np.ndarray, height: float) -> trimesh.Trimesh:
    return trimesh.creation.extrude_triangulation(outline, triangles, height)


def _l_shape(rng):
    """An L: two slabs sharing a corner, extruded from a hand-triangulated 6-gon."""
    w, h = rng.uniform(0.04, 0.12, size=2)
    t1, t2 = rng.uniform(0.012, 0.035, size=2)
    outline = np.array([[0, 0], [w, 0], [w, t1], [t2, t1], [t2, h], [0, h]])
    tris = np.array([[0, 1, 2], [0, 2, 3], [0, 3, 4], [0, 4, 5]])
    return _extrude_polygon(outline, tris, rng.uniform(0.015, 0.06))


def _t_shape(rng):
    """A T: a bar on a stem, extruded from a hand-triangulated 8-gon."""
    w, h = rng.uniform(0.05, 0.13), rng.uniform(0.04, 0.11)
    bar, stem = rng.uniform(0.012, 0.03), rng.uniform(0.012, 0.035)
    x0, x1 = (w - stem) / 2, (w + stem) / 2
    outline = np.array([[x0, 0], [x1, 0], [x1, h - bar], [w, h - bar], [w, h], [0, h], [0, h - bar], [x0, h - bar]])
    tris = np.array([[0, 1, 2], [0, 2, 7], [7, 2, 3], [7, 3, 4], [7, 4, 5], [7, 5, 6]])
    return _extrude_polygon(outline, tris, rng.uniform(0.015, 0.05))


def _revolve(profile: np.ndarray, sections: int = 48) -> trimesh.Trimesh:
    """Solid of revolution of a (radius, z) polyline about z, closed at both ends on the axis."""
    return trimesh.creation.revolve(profile, sections=sections)


def _bottle(rng):
    r, body = rng.uniform(0.015, 0.04), rng.uniform(0.05, 0.11)
    neck_r, shoulder, neck = r * rng.uniform(0.3, 0.5), rng.uniform(0.01, 0.03), rng.uniform(0.01, 0.035)
    profile = np.array([[0, 0], [r, 0], [r, body], [neck_r, body + shoulder],
                        [neck_r, body + shoulder + neck], [0, body + shoulder + neck]])
    return _revolve(profile)


def _mug(rng):
    """Open cup (revolved wall profile) with a half-torus handle, joined by a boolean union."""
    r, h = rng.uniform(0.025, 0.045), rng.uniform(0.06, 0.11)
    wall, base = rng.uniform(0.003, 0.007), rng.uniform(0.004, 0.01)
    profile = np.array([[0, 0], [r, 0], [r, h], [r - wall, h], [r - wall, base], [0, base]])
    cup = _revolve(profile)
    major = rng.uniform(0.3, 0.42) * h
    handle = trimesh.creation.torus(major_radius=major, minor_radius=rng.uniform(0.004, 0.008),
                                    major_sections=40, minor_sections=12)
    handle.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0]))
    handle.apply_translation([r, 0, h / 2])  # half inside the wall: the union keeps the outer half
    return trimesh.boolean.union([cup, handle])


def _compound(rng):
    """2-4 random primitives, each overlapping the previous one, unioned into one solid."""
    makers = (_box, _cylinder, _sphere, _capsule, _ellipsoid)
    parts = []
    for i in range(int(rng.integers(2, 5))):
        part = makers[rng.integers(len(makers))](rng)
        part.apply_scale(0.7)
        part.apply_transform(_random_rotation(rng))
        if parts:  # centre it on a surface point of the previous part so they overlap
            anchor, _ = trimesh.sample.sample_surface(parts[-1], 1, seed=int(rng.integers(1 << 31)))
            part.apply_translation(anchor[0] - part.centroid)
        parts.append(part)
    return trimesh.boolean.union(parts)


# ----------------------------------------------------------------------------- irregular shapes
def _blob(rng):
    """A noisy, lumpy star-shaped solid: each sphere direction pushed out by a smooth random field."""
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=1.0)
    d = np.asarray(mesh.vertices)  # [V, 3] unit directions
    waves = rng.normal(size=(6, 3))
    waves /= np.linalg.norm(waves, axis=1, keepdims=True)  # [6, 3]
    field = (rng.uniform(0.05, 0.2, 6) * np.cos(rng.uniform(1.0, 4.0, 6) * (d @ waves.T) + rng.uniform(0, 2 * np.pi, 6)))
    mesh.vertices = d * np.exp(field.sum(axis=1))[:, None] * rng.uniform(0.015, 0.05, size=3)  # [V, 3]
    return mesh


def _bowl(rng):
    """A thin-walled open bowl (2-5 mm wall): revolved, flared profile."""
    r, h = rng.uniform(0.03, 0.07), rng.uniform(0.02, 0.07)
    foot, wall = r * rng.uniform(0.35, 0.7), rng.uniform(0.002, 0.005)
    base = wall * rng.uniform(1.0, 2.0)
    profile = np.array([[0, 0], [foot, 0], [r, h], [r - wall, h], [foot - wall, base], [0, base]])
    return _revolve(profile)


def _convex_parts(rng):
    """2-4 random convex hulls, each overlapping the previous one: an irregular multi-part solid."""
    parts = []
    for _ in range(int(rng.integers(2, 5))):
        part = trimesh.convex.convex_hull(rng.normal(size=(int(rng.integers(6, 20)), 3)) * rng.uniform(0.006, 0.03, 3))
        if parts:
            anchor, _ = trimesh.sample.sample_surface(parts[-1], 1, seed=int(rng.integers(1 << 31)))
            part.apply_translation(anchor[0] - part.centroid)
        parts.append(part)
    return trimesh.boolean.union(parts)


def _pebble(rng):
    """A small (2-3 cm) irregular convex stone."""
    mesh = trimesh.convex.convex_hull(rng.normal(size=(int(rng.integers(10, 30)), 3)) * rng.uniform(0.5, 1.0, 3))
    mesh.apply_scale(rng.uniform(0.02, 0.03) / float(np.ptp(mesh.vertices, axis=0).max()))
    return mesh


_MAKERS = {
    "box": _box, "cylinder": _cylinder, "sphere": _sphere, "ellipsoid": _ellipsoid, "capsule": _capsule,
    "cone": _cone, "torus": _torus, "superquadric": _superquadric, "convex_hull": _convex_hull,
    "prism": _prism, "l_shape": _l_shape, "t_shape": _t_shape, "bottle": _bottle, "mug": _mug,
    "compound": _compound,
    # irregular shapes, unlike the primitives above (appended: earlier families keep their index)
    "blob": _blob, "bowl": _bowl, "convex_parts": _convex_parts, "pebble": _pebble,
}
FAMILIES: tuple[str, ...] = tuple(_MAKERS)

# Whole families held out: evaluation never sees a family the model trained on.
DEFAULT_SPLITS = {
    "val": ["capsule", "t_shape"],
    "test": ["mug", "torus", "superquadric"],
}
DEFAULT_SPLITS["train"] = [f for f in FAMILIES if f not in DEFAULT_SPLITS["val"] + DEFAULT_SPLITS["test"]]


def _random_rotation(rng) -> np.ndarray:
    """4x4 homogeneous uniform random rotation."""
    q = rng.normal(size=4)
    return trimesh.transformations.quaternion_matrix(q / np.linalg.norm(q))


def _finish(mesh: trimesh.Trimesh, family: str, name: str, density: float | None) -> ObjectInfo:
    """Centre and radius of a clean mesh; centre of mass when it bounds a volume."""
    watertight = bool(mesh.is_watertight) and mesh.volume > 0
    center = np.asarray(mesh.center_mass if watertight else _surface_centroid(mesh), dtype=np.float64)
    radius = float(np.linalg.norm(np.asarray(mesh.vertices) - center, axis=1).max())
    mass = float(mesh.volume * density) if (watertight and density) else 0.0
    return ObjectInfo(mesh=mesh, family=family, center=center, radius=radius, name=name, mass=mass,
                      watertight=watertight)


def _surface_centroid(mesh: trimesh.Trimesh) -> np.ndarray:
    areas = mesh.area_faces  # [F]
    return (mesh.triangles_center * areas[:, None]).sum(axis=0) / max(areas.sum(), 1e-30)


def make_object(family: str, rng: np.random.Generator, name: str | None = None) -> ObjectInfo:
    """A random object of ``family``: randomly sized, rotated, centred at its centre of mass."""
    if family not in _MAKERS:
        raise ValueError(f"unknown object family {family!r}; choose from {', '.join(FAMILIES)}")
    for _ in range(8):  # booleans/hulls occasionally give a degenerate solid: draw again
        mesh = _MAKERS[family](rng)
        if mesh.is_watertight and mesh.volume > 1e-9 and mesh.body_count == 1:
            break
    else:
        raise ValueError(f"family {family!r} failed to produce a watertight single solid")
    mesh.apply_transform(_random_rotation(rng))
    extent = float(np.ptp(mesh.vertices, axis=0).max())
    if extent > 0.15:  # keep every object within 2-15 cm (its bounding box as placed)
        mesh.apply_scale(0.15 / extent)
    elif extent < 0.02:
        mesh.apply_scale(0.02 / extent)
    mesh.apply_translation(-mesh.center_mass)
    density = float(rng.uniform(200.0, 1500.0))  # kg/m^3: foam to dense plastic
    return _finish(mesh, family, name or family, density)


def load_mesh_object(path, units: str = "m", require_watertight: bool = False, centre: bool = True) -> ObjectInfo:
    """Load a user's mesh (OBJ/STL/PLY/GLB/...) in ``units``; ``ValueError`` says why a mesh is unusable.

    Rejected: unreadable files, no faces, NaN/inf vertices, zero extent or zero volume, sizes
    outside 5 mm-1 m radius after unit conversion (wrong ``units``), and, with
    ``require_watertight``, meshes with holes. Open meshes are otherwise kept. With ``centre``
    the mesh is moved to its centre of mass (surface centroid when it has no volume), like the
    procedural objects; without it, it stays in the file's frame (``info.center`` says where the
    centre is), which is what a caller wants whose answers are poses in that frame.
    """
    path = Path(path)
    if units not in UNITS:
        raise ValueError(f"unknown units {units!r}; choose from {', '.join(UNITS)}")
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        loaded = trimesh.load(str(path), force="mesh", process=False)
    except Exception as err:  # trimesh raises many types on malformed files
        raise ValueError(f"{path.name}: cannot be read as a mesh ({type(err).__name__}: {err})") from None
    if not isinstance(loaded, trimesh.Trimesh):
        raise ValueError(f"{path.name}: contains no triangle mesh")
    vertices = np.asarray(loaded.vertices, dtype=np.float64)
    faces = np.asarray(loaded.faces)
    if len(faces) == 0 or len(vertices) < 3:
        raise ValueError(f"{path.name}: mesh has no faces")
    if not np.isfinite(vertices).all():
        raise ValueError(f"{path.name}: {int((~np.isfinite(vertices).all(axis=1)).sum())} vertices are NaN/inf")
    mesh = trimesh.Trimesh(vertices * UNITS[units], faces, process=True)
    mesh.remove_unreferenced_vertices()
    if len(mesh.faces) == 0:
        raise ValueError(f"{path.name}: all faces are degenerate")
    extents = np.ptp(mesh.vertices, axis=0)
    if extents.min() <= 1e-6 * max(extents.max(), 1e-12):
        raise ValueError(f"{path.name}: zero volume (the mesh is flat, extents {np.round(extents, 6).tolist()} m)")
    watertight = bool(mesh.is_watertight)
    if watertight:
        if mesh.volume < 0:
            mesh.invert()  # inside-out faces
        if mesh.volume <= 1e-9 * float(np.prod(extents)):  # relative: a small object in other units is a size error
            raise ValueError(f"{path.name}: zero volume")
    elif require_watertight:
        raise ValueError(f"{path.name}: not watertight (has holes), but a closed volume is needed")
    info = _finish(mesh, "mesh", path.stem, density=None)
    if not MIN_RADIUS <= info.radius <= MAX_RADIUS:
        raise ValueError(f"{path.name}: radius {info.radius:.4g} m is outside [{MIN_RADIUS}, {MAX_RADIUS}] m; "
                         f"check --units (got {units!r})")
    if centre:
        info.mesh.apply_translation(-info.center)  # centred like the procedural objects
        info.center = np.zeros(3)
    return info
