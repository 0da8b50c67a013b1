"""Candidate grasps on an object's true surface: contacts ``(G, K, 3)`` and outward normals ``(G, K, 3)``.

- ``sample_antipodal``: parallel-jaw (K = 2) grasps the jaws can actually reach. A surface
  point and a closing axis within its friction cone define a line; the two contacts are
  where jaws closing along that line from outside first touch the object (its two extreme
  surface points on the line), and the width must fit the gripper.
- ``sample_multifinger``: K = 3..5 fingers closing toward a hand axis (spread around it, or
  a thumb opposing the other fingers); each contact is the first surface hit of its finger.
- ``sample_opposed``: K fingers on parallel lines, a thumb opposing the others.
- ``sample_random``: K surface points drawn anywhere, or all from one patch (clear negatives).
- ``perturb_grasps``: contacts moved on the surface by a few millimetres (boundary cases).
Samplers may return fewer than ``n`` grasps when the object rarely admits one (e.g. wider
than the gripper everywhere).
"""

from __future__ import annotations

import numpy as np
import open3d as o3d

from grasp_equi.data.clouds import cast, random_unit, raycasting_scene, sample_surface
from grasp_equi.data.objects import ObjectInfo

MIN_WIDTH = 0.002  # metres: narrower jaw openings are slivers, not grasps
MIN_FINGER_GAP = 0.005  # metres: two fingers closer than this are one finger


def _perpendicular_frame(axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors ``[n, 3]`` completing each ``axis`` ``[n, 3]`` to an orthonormal frame."""
    helper = np.where(np.abs(axis[:, :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]])
    v = np.cross(axis, helper)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v, np.cross(axis, v)


def _tilt(directions: np.ndarray, max_angle: np.ndarray | float, rng) -> np.ndarray:
    """Each unit direction turned by an angle uniform in solid angle within ``max_angle``."""
    n = len(directions)
    cos_max = np.cos(max_angle)
    cos = 1 - rng.random(n) * (1 - cos_max)  # uniform on the spherical cap
    sin = np.sqrt(np.clip(1 - cos**2, 0, None))
    phi = rng.uniform(0, 2 * np.pi, n)
    v, w = _perpendicular_frame(directions)
    return cos[:, None] * directions + sin[:, None] * (np.cos(phi)[:, None] * v + np.sin(phi)[:, None] * w)


def _reach(obj: ObjectInfo) -> float:
    """A distance from the centre that is safely outside the object."""
    return 2.0 * obj.radius + 0.01


def jaw_contacts(obj: ObjectInfo, points: np.ndarray, axes: np.ndarray):
    """Where two jaws closing along lines ``points + s * axes`` first touch the object.

    Returns ``(ok [n], contacts [n, 2, 3], normals [n, 2, 3])``: contact 0 is hit by the jaw
    coming from ``-axis``, contact 1 by the jaw coming from ``+axis``.
    """
    along = ((points - obj.center) * axes).sum(axis=1, keepdims=True)
    mid = points - along * axes  # foot of the centre on each line: both jaws start equally far out
    far = _reach(obj)
    t0, c0, n0 = cast(obj, mid - far * axes, axes)
    t1, c1, n1 = cast(obj, mid + far * axes, -axes)
    ok = np.isfinite(t0) & np.isfinite(t1)
    return ok, np.stack([c0, c1], axis=1), np.stack([n0, n1], axis=1)


def sample_antipodal(obj: ObjectInfo, n: int, rng: np.random.Generator, max_width: float = 0.085,
                     mu: float = 0.5, cone_scale: float = 1.0, max_rounds: int = 20):
    """``n`` parallel-jaw grasps ``(contacts (G, 2, 3), normals (G, 2, 3))``, G <= n.

    The closing axis is the inward normal at a random surface point tilted within
    ``cone_scale`` x the friction-cone angle ``atan(mu)``; the contacts are the jaws' first
    touches along that line, kept when the opening fits ``max_width``.
    """
    contacts, normals = [], []
    found = 0
    for _ in range(max_rounds):
        if found >= n:
            break
        m = max(2 * (n - found), 16)
        points, surface_normals = sample_surface(obj, m, rng)
        axes = _tilt(-surface_normals, cone_scale * np.arctan(mu), rng)
        ok, c, nrm = jaw_contacts(obj, points, axes)
        width = np.linalg.norm(c[:, 1] - c[:, 0], axis=1)
        ok &= (width <= max_width) & (width >= MIN_WIDTH)
        contacts.append(c[ok])
        normals.append(nrm[ok])
        found += int(ok.sum())
    return np.concatenate(contacts)[:n], np.concatenate(normals)[:n]


def sample_multifinger(obj: ObjectInfo, k: int, n: int, rng: np.random.Generator, spread: float = 0.35,
                       max_span: float = 0.2, max_rounds: int = 20):
    """``n`` K-finger grasps ``(contacts (G, k, 3), normals (G, k, 3))``, G <= n.

    A hand axis through a point near the centre; fingers approach it radially from angles
    spread evenly around it (or, half the time, a thumb opposite the other k - 1 fingers),
    jittered by ``spread`` radians and offset along the axis. Every finger must touch the
    object, fingers must be ``MIN_FINGER_GAP`` apart and within ``max_span`` of each other.
    """
    if k < 2:
        raise ValueError(f"a grasp needs k >= 2 contacts; got {k}")
    contacts, normals = [], []
    found = 0
    for _ in range(max_rounds):
        if found >= n:
            break
        m = max(2 * (n - found), 16)
        axis = random_unit(rng, m)  # [m, 3]
        v, w = _perpendicular_frame(axis)
        hub = obj.center + 0.25 * obj.radius * rng.normal(size=(m, 3))  # [m, 3]
        even = 2 * np.pi * np.arange(k) / k  # [k]
        thumb = np.concatenate([[0.0], np.pi + np.linspace(-0.5, 0.5, k - 1) * (k > 2)])  # [k]
        angles = np.where(rng.random((m, 1)) < 0.5, even, thumb) + rng.uniform(0, 2 * np.pi, (m, 1))
        angles = angles + spread * rng.normal(size=(m, k))  # [m, k]
        heights = 0.3 * obj.radius * rng.normal(size=(m, k))  # [m, k]
        radial = np.cos(angles)[..., None] * v[:, None] + np.sin(angles)[..., None] * w[:, None]  # [m, k, 3]
        approach = -_tilt(radial.reshape(-1, 3), spread * 0.5, rng)  # [m*k, 3] toward the axis
        base = (hub[:, None] + heights[..., None] * axis[:, None]).reshape(-1, 3)  # [m*k, 3]
        t, c, nrm = cast(obj, base - _reach(obj) * approach, approach)
        c, nrm = c.reshape(m, k, 3), nrm.reshape(m, k, 3)
        ok = np.isfinite(t).reshape(m, k).all(axis=1)
        gaps = np.linalg.norm(c[:, :, None] - c[:, None], axis=-1)  # [m, k, k]
        off_diag = ~np.eye(k, dtype=bool)
        ok &= (gaps[:, off_diag] >= MIN_FINGER_GAP).all(axis=1) & (gaps.max(axis=(1, 2)) <= max_span)
        contacts.append(c[ok])
        normals.append(nrm[ok])
        found += int(ok.sum())
    return np.concatenate(contacts)[:n], np.concatenate(normals)[:n]


def sample_opposed(obj: ObjectInfo, k: int, n: int, rng: np.random.Generator, max_width: float = 0.085,
                   mu: float = 0.5, finger_gap: float = 0.02, max_rounds: int = 20):
    """``n`` K-finger opposition grasps (a thumb against k - 1 fingers), ``(contacts, normals)``, G <= n.

    Like a jaw grasp along an axis within the friction cone of a surface point, but each
    finger closes along its own line, parallel to the axis and offset sideways by up to
    ``finger_gap``: the thumb on one side, the other fingers on the other (then each side
    at random), each touching where its line first meets the object.
    """
    if k < 2:
        raise ValueError(f"a grasp needs k >= 2 contacts; got {k}")
    contacts, normals = [], []
    found = 0
    for _ in range(max_rounds):
        if found >= n:
            break
        m = max(2 * (n - found), 16)
        points, surface_normals = sample_surface(obj, m, rng)
        axes = _tilt(-surface_normals, np.arctan(mu), rng)  # [m, 3]
        v, w = _perpendicular_frame(axes)
        offsets = finger_gap * rng.uniform(-1, 1, size=(m, k, 2))  # [m, k, 2]
        offsets[:, 0] *= 0.25  # the thumb stays near the sampled point
        lines = points[:, None] + offsets[..., :1] * v[:, None] + offsets[..., 1:] * w[:, None]  # [m, k, 3]
        side = np.ones((m, k), dtype=bool)
        side[:, 0] = False
        side[:, 1] = True
        if k > 2:
            side[:, 2:] = rng.random((m, k - 2)) < 0.75
        ok, c, nrm = jaw_contacts(obj, lines.reshape(-1, 3), np.repeat(axes, k, axis=0))
        pick = side.reshape(-1).astype(int)  # which jaw's touch each finger takes
        c = c[np.arange(m * k), pick].reshape(m, k, 3)
        nrm = nrm[np.arange(m * k), pick].reshape(m, k, 3)
        ok = ok.reshape(m, k).all(axis=1)
        gaps = np.linalg.norm(c[:, :, None] - c[:, None], axis=-1)  # [m, k, k]
        ok &= (gaps[:, ~np.eye(k, dtype=bool)] >= MIN_FINGER_GAP).all(axis=1) & (gaps.max(axis=(1, 2)) <= max_width)
        contacts.append(c[ok])
        normals.append(nrm[ok])
        found += int(ok.sum())
    return np.concatenate(contacts)[:n], np.concatenate(normals)[:n]


def sample_random(obj: ObjectInfo, k: int, n: int, rng: np.random.Generator, patch_fraction: float = 0.5):
    """``n`` grasps of ``k`` random surface points; a ``patch_fraction`` of them all from one patch.

    Uniform random contacts are the classic negatives for K = 2 (and often fine for K = 5);
    contacts crowded into one patch (within 0.2-0.8 x radius of a seed point) are not in
    force closure unless the patch wraps around the object.
    """
    if k < 2:
        raise ValueError(f"a grasp needs k >= 2 contacts; got {k}")
    points, surface_normals = sample_surface(obj, n * k, rng)
    contacts, normals = points.reshape(n, k, 3), surface_normals.reshape(n, k, 3)
    patchy = rng.random(n) < patch_fraction
    if patchy.any():
        pool, pool_normals = sample_surface(obj, 4096, rng)
        for g in np.flatnonzero(patchy):
            seed = pool[rng.integers(len(pool))]
            near = np.flatnonzero(np.linalg.norm(pool - seed, axis=1) <= rng.uniform(0.2, 0.8) * obj.radius)
            if len(near) >= k:
                pick = rng.choice(near, size=k, replace=False)
                contacts[g], normals[g] = pool[pick], pool_normals[pick]
    return contacts, normals


def project_to_surface(obj: ObjectInfo, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Closest surface points ``[n, 3]`` and their outward face normals."""
    query = o3d.core.Tensor(np.asarray(points, dtype=np.float32))
    result = raycasting_scene(obj).compute_closest_points(query)
    ids = result["primitive_ids"].numpy().astype(np.int64)
    return result["points"].numpy().astype(np.float64), np.asarray(obj.mesh.face_normals)[ids].copy()


def perturb_grasps(obj: ObjectInfo, contacts: np.ndarray, rng: np.random.Generator, scale: float = 0.01):
    """Each contact moved by N(0, scale^2) per axis and snapped back onto the surface."""
    g, k = contacts.shape[:2]
    moved = contacts.reshape(-1, 3) + rng.normal(scale=scale, size=(g * k, 3))
    points, normals = project_to_surface(obj, moved)
    return points.reshape(g, k, 3), normals.reshape(g, k, 3)
