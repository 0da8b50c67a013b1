"""Convex pieces of an object mesh: MuJoCo collides every mesh geom as its convex hull.

A mesh that (almost) fills its own convex hull becomes one piece. Any other mesh (mugs, tori,
L-shapes, unions of parts) becomes a *shell*: its surface is cut into small, nearly flat
patches (faces grown from a seed while their normals stay within ``MAX_NORMAL_SPREAD`` of it
and their centres within ``MAX_PATCH_SIZE``), and each patch is extruded inward into a thin
convex slab. The slabs' outer faces ARE the surface (bridging a concave patch costs at most
``r (1 - cos(spread / 2))``, ~2 % of its curvature radius), so a jaw closing on a mug's
wall or a torus' ring touches the real wall, never a hull stretched over the hole. Each slab
is 90 % of the local wall thickness deep (measured by an inward ray, at most 8 mm): thick
enough that a finger pressing with 40 N never tunnels through it, yet never poking out of
the wall's other side (slabs of opposite walls may overlap inside the material, harmlessly).
Mass and inertia come from the solid mesh, not from the slabs. Deterministic and fast (no
random decomposition, numpy only).
"""

from __future__ import annotations

import numpy as np
import trimesh

CONVEX_FILL = 0.97  # volume / hull volume above this: treat the mesh as convex
MAX_NORMAL_SPREAD = np.deg2rad(20.0)
MAX_PATCH_SIZE = 0.012  # metres from the seed face's centre
MAX_SLAB, MIN_SLAB = 0.008, 0.0005  # metres of inward extrusion
MIN_PATCH_AREA = 1e-12  # m^2: a patch of degenerate (collinear) faces only; MuJoCo cannot hull its flat slab
WALL_FRACTION = 0.9  # of the wall thickness behind the patch: thick enough that a pressing finger never tunnels


def convex_pieces(mesh: trimesh.Trimesh) -> list[np.ndarray]:
    """Vertex arrays ``[(V_i, 3)]`` of convex pieces whose union's surface follows ``mesh``."""
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    if len(vertices) < 4 or not np.isfinite(vertices).all():
        raise ValueError("object mesh needs at least 4 finite vertices")
    hull = mesh.convex_hull
    if hull.volume <= 0:
        raise ValueError("object mesh is flat (its convex hull has no volume)")
    if not mesh.is_watertight or mesh.volume / hull.volume >= CONVEX_FILL:
        # convex, or open (no inside to follow): one hull (open meshes: a documented approximation)
        return [np.asarray(hull.vertices, dtype=np.float64)]
    return shell_pieces(mesh)


def shell_pieces(mesh: trimesh.Trimesh) -> list[np.ndarray]:
    """Thin convex slabs under nearly flat surface patches of a watertight ``mesh``."""
    patches = _grow_patches(mesh)
    depth = _inward_depth(mesh)  # [F] wall thickness behind each face
    tri = np.asarray(mesh.triangles)  # [F, 3, 3]
    normals = np.asarray(mesh.face_normals)  # [F, 3]
    areas = np.asarray(mesh.area_faces)
    pieces = []
    for faces in patches:
        n = (normals[faces] * areas[faces, None]).sum(axis=0)
        if np.linalg.norm(n) <= MIN_PATCH_AREA:  # zero-area sliver faces: no surface to follow, no slab
            continue
        n /= np.linalg.norm(n)  # the patch's mean outward normal
        slab = float(np.clip(WALL_FRACTION * depth[faces].min(), MIN_SLAB, MAX_SLAB))
        outer = np.unique(tri[faces].reshape(-1, 3), axis=0)  # [v, 3]
        pieces.append(np.concatenate([outer, outer - slab * n]))
    return pieces


def _grow_patches(mesh: trimesh.Trimesh) -> list[np.ndarray]:
    """Face index arrays of patches, grown over shared edges in face order (deterministic)."""
    normals = np.asarray(mesh.face_normals)
    centres = np.asarray(mesh.triangles_center)
    neighbours = [[] for _ in range(len(normals))]
    for a, b in mesh.face_adjacency:
        neighbours[a].append(b)
        neighbours[b].append(a)
    label = np.full(len(normals), -1)
    cos_limit = np.cos(MAX_NORMAL_SPREAD)
    patches = []
    for seed in range(len(normals)):
        if label[seed] >= 0:
            continue
        label[seed] = len(patches)
        members, frontier = [seed], [seed]
        while frontier:
            face = frontier.pop()
            for nb in neighbours[face]:
                if (label[nb] < 0 and normals[nb] @ normals[seed] >= cos_limit
                        and np.linalg.norm(centres[nb] - centres[seed]) <= MAX_PATCH_SIZE):
                    label[nb] = len(patches)
                    members.append(nb)
                    frontier.append(nb)
        patches.append(np.array(sorted(members)))
    return patches


def _inward_depth(mesh: trimesh.Trimesh, chunk: int = 256) -> np.ndarray:
    """Distance ``[F]`` from each face centre, inward along its normal, to the next surface (Moller-Trumbore)."""
    tri = np.asarray(mesh.triangles)  # [F, 3, 3]
    origins = np.asarray(mesh.triangles_center)  # [F, 3]
    dirs = -np.asarray(mesh.face_normals)  # [F, 3]
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]  # [F, 3]
    out = np.full(len(origins), np.inf)
    for lo in range(0, len(origins), chunk):
        o, d = origins[lo:lo + chunk, None], dirs[lo:lo + chunk, None]  # [c, 1, 3]
        p = np.cross(d, e2[None])  # [c, F, 3]
        det = (e1[None] * p).sum(-1)  # [c, F]
        ok = np.abs(det) > 1e-14
        inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
        s = o - tri[None, :, 0]  # [c, F, 3]
        u = (s * p).sum(-1) * inv
        q = np.cross(s, e1[None])
        v = (d * q).sum(-1) * inv
        t = (e2[None] * q).sum(-1) * inv
        hit = ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 1e-6)
        out[lo:lo + chunk] = np.where(hit, t, np.inf).min(axis=1)
    return np.where(np.isfinite(out), out, MAX_SLAB / WALL_FRACTION)
