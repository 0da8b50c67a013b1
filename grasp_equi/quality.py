"""Analytic grasp quality: friction-cone wrench spaces, Ferrari-Canny epsilon, robust force closure.

Conventions (docs/design.md, "Grasp stability labels"):
- contacts ``(K, 3)`` on the object surface and their OUTWARD unit normals ``(K, 3)``;
- each contact pushes into the object (along ``-n``) within a Coulomb cone of friction ``mu``
  approximated by ``NUM_EDGES`` = 8 edge forces of unit normal component;
- wrench = ``[f; (c - o) x f / rho]`` with ``o`` the object centre and ``rho`` its radius,
  so torques are unitless and epsilon does not depend on the object's size;
- soft-finger contacts (default for K = 2) add two pure-torsion wrenches ``+-gamma n / rho``
  with ``gamma = mu * soft_radius`` (a 5 mm contact patch), because two hard point contacts
  can never resist torque about the line joining them;
- Ferrari-Canny epsilon = radius of the largest origin-centred ball in the convex hull of the
  primitive wrenches (qhull), 0 when the origin is not strictly inside (no force closure),
  degenerate (flat) hulls included;
- the training label is the probability of force closure when contact positions (sigma, m)
  and friction (mu_sigma) are perturbed.

The friction pyramid's rotation about each normal is taken from the grasp itself (toward the
other contacts, else toward the centre), so labels are invariant under rigid motions of
contacts, normals and centre together.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import nnls
from scipy.spatial import ConvexHull, QhullError

NUM_EDGES = 8
SOFT_RADIUS = 0.005  # metres: radius of the soft-finger contact patch (torsional friction arm)
FC_TOLERANCE = 1e-7  # epsilon below this is numerical noise, not force closure
MAX_WEIGHT_RATIO = 1e4  # NNLS force-closure test: larger wrench-weight ratios mean a boundary case


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-300)


def _project_tangent(v: np.ndarray, n: np.ndarray) -> np.ndarray:
    return v - (v * n).sum(axis=-1, keepdims=True) * n


def _any_perpendicular(n: np.ndarray) -> np.ndarray:
    """A unit vector perpendicular to each ``n`` (axis-based; only a last-resort fallback)."""
    axis = np.where(np.abs(n[..., :1]) < 0.9, np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]))
    return _unit(np.cross(n, axis))


def tangent_frames(contacts: np.ndarray, normals: np.ndarray, center: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Equivariant tangent bases ``t1, t2`` ``[..., K, 3]`` for each contact's friction pyramid.

    ``t1`` points toward the mean of the other contacts (projected on the tangent plane), or
    toward the centre when that is along the normal (antipodal pairs), or along the first
    contact's tangent for fully collinear grasps (there any common rotation about the line
    leaves epsilon unchanged).
    """
    k = contacts.shape[-2]
    scale = np.linalg.norm(contacts - center[..., None, :], axis=-1).max(axis=-1)[..., None, None] + 1e-12
    others = (contacts.sum(axis=-2, keepdims=True) - contacts) / max(k - 1, 1)  # [..., K, 3]
    ref = _project_tangent(others - contacts, normals)
    small = np.linalg.norm(ref, axis=-1, keepdims=True) < 1e-6 * scale
    ref = np.where(small, _project_tangent(center[..., None, :] - contacts, normals), ref)
    small = np.linalg.norm(ref, axis=-1, keepdims=True) < 1e-6 * scale
    first = np.broadcast_to(_any_perpendicular(normals[..., :1, :]), normals.shape)
    ref = np.where(small, _project_tangent(first, normals), ref)
    small = np.linalg.norm(ref, axis=-1, keepdims=True) < 1e-6
    ref = np.where(small, _any_perpendicular(normals), ref)
    t1 = _unit(ref)
    t2 = np.cross(normals, t1)
    return t1, t2


def primitive_wrenches(contacts, normals, center, radius: float, mu, soft: bool,
                       soft_radius: float = SOFT_RADIUS) -> np.ndarray:
    """Primitive wrenches ``[..., M, 6]``, M = K * (8 + 2 if soft else 8).

    ``contacts``/``normals`` ``[..., K, 3]``, ``center`` ``[..., 3]`` or ``(3,)``, ``mu``
    scalar or ``[...]``.
    """
    contacts = np.asarray(contacts, dtype=np.float64)
    normals = _unit(np.asarray(normals, dtype=np.float64))
    center = np.broadcast_to(np.asarray(center, dtype=np.float64), contacts.shape[:-2] + (3,))
    mu = np.broadcast_to(np.asarray(mu, dtype=np.float64), contacts.shape[:-2])[..., None, None]  # [..., 1, 1]
    t1, t2 = tangent_frames(contacts, normals, center)
    angles = 2 * np.pi * np.arange(NUM_EDGES) / NUM_EDGES
    cos, sin = np.cos(angles)[:, None], np.sin(angles)[:, None]  # [E, 1]
    # forces [..., K, E, 3]: unit normal push into the object plus tangential friction mu
    forces = -normals[..., None, :] + mu[..., None] * (cos * t1[..., None, :] + sin * t2[..., None, :])
    arm = (contacts - center[..., None, :])[..., None, :] / radius  # [..., K, 1, 3]
    torques = np.cross(np.broadcast_to(arm, forces.shape), forces)  # [..., K, E, 3]
    wrenches = np.concatenate([forces, torques], axis=-1)  # [..., K, E, 6]
    if soft:
        push = -normals[..., None, :]  # [..., K, 1, 3]
        base = np.cross(arm[..., 0, :], -normals)[..., None, :]  # [..., K, 1, 3]
        twist = (mu[..., None] * soft_radius / radius) * normals[..., None, :]  # [..., K, 1, 3]
        torsion = np.concatenate([np.concatenate([push, base + twist], axis=-1),
                                  np.concatenate([push, base - twist], axis=-1)], axis=-2)  # [..., K, 2, 6]
        wrenches = np.concatenate([wrenches, torsion], axis=-2)
    return wrenches.reshape(wrenches.shape[:-3] + (-1, 6))


def hull_epsilon(wrenches: np.ndarray) -> float:
    """Ferrari-Canny epsilon of one wrench set ``[M, 6]``: 0 unless the origin is strictly inside."""
    try:
        hull = ConvexHull(wrenches)
    except (QhullError, ValueError):  # flat (rank < 6) hull: no force closure
        return 0.0
    dist = -hull.equations[:, -1]  # distance of the origin inside each facet (unit facet normals)
    eps = float(dist.min())
    return eps if eps > FC_TOLERANCE else 0.0


def _cannot_close(wrenches: np.ndarray) -> np.ndarray:
    """Cheap certificate of NO force closure for a batch ``[B, M, 6]`` -> ``[B]`` bool.

    If the origin is inside the hull with margin epsilon, every unit direction u has a wrench
    with ``w . u <= -epsilon``. A unit direction (the mean wrench's, or one of the 12 axis
    directions) with all ``w . u > -FC_TOLERANCE`` therefore proves epsilon is 0 without qhull.
    """
    mean = wrenches.mean(axis=1, keepdims=True)  # [B, 1, 6]
    norm = np.linalg.norm(mean, axis=-1, keepdims=True)  # [B, 1, 1]
    along = (wrenches * mean).sum(axis=-1) / np.maximum(norm[..., 0], 1e-300)  # [B, M]
    blocked = (norm[:, 0, 0] > 1e-9) & (along > -FC_TOLERANCE).all(axis=1)
    blocked |= (wrenches > -FC_TOLERANCE).all(axis=1).any(axis=-1)
    blocked |= (wrenches < FC_TOLERANCE).all(axis=1).any(axis=-1)
    return blocked


def batch_epsilon(wrenches: np.ndarray) -> np.ndarray:
    """Ferrari-Canny epsilon for each wrench set of a batch ``[B, M, 6]`` -> ``[B]``."""
    eps = np.zeros(len(wrenches))
    for b in np.flatnonzero(~_cannot_close(wrenches)):
        eps[b] = hull_epsilon(wrenches[b])
    return eps


def batch_force_closure(wrenches: np.ndarray) -> np.ndarray:
    """Force closure (yes/no) for each wrench set ``[B, M, 6]`` -> ``[B]`` bool, ~50x faster than qhull.

    The wrenches positively span R^6 (origin strictly inside their hull) iff they span R^6
    linearly and some strictly positive combination sums to zero. The second part is a
    non-negative least-squares problem: ``min |W^T (1 + l)|`` over ``l >= 0`` is 0 iff such a
    combination exists (with bounded weights ``l < MAX_WEIGHT_RATIO``, which excludes
    origins on the hull's boundary). Agrees with ``hull_epsilon > 0`` except on measure-zero boundaries.
    """
    singular = np.linalg.svd(wrenches, compute_uv=False)  # [B, 6] descending
    closed = singular[:, -1] > 1e-6 * singular[:, 0]
    closed &= ~_cannot_close(wrenches)
    scale = np.linalg.norm(wrenches, axis=(1, 2))  # [B]
    for b in np.flatnonzero(closed):
        w_t = wrenches[b].T  # [6, M]
        weights, residual = nnls(w_t, -w_t.sum(axis=1))
        # huge weights = a combination that only balances in the limit: the origin sits on the
        # hull's boundary (epsilon ~ 0), which is not force closure
        closed[b] = residual < 1e-9 * scale[b] and weights.max() < MAX_WEIGHT_RATIO
    return closed


def _check_grasp(contacts, normals) -> tuple[np.ndarray, np.ndarray]:
    contacts = np.asarray(contacts, dtype=np.float64)
    normals = np.asarray(normals, dtype=np.float64)
    if contacts.ndim != 2 or contacts.shape[1] != 3 or contacts.shape[0] < 2:
        raise ValueError(f"contacts must have shape (K, 3) with K >= 2; got {contacts.shape}")
    if normals.shape != contacts.shape:
        raise ValueError(f"normals must have the shape of contacts {contacts.shape}; got {normals.shape}")
    if not (np.isfinite(contacts).all() and np.isfinite(normals).all()):
        raise ValueError("contacts and normals must be finite")
    return contacts, normals


def _soft_default(k: int, soft: bool | None) -> bool:
    return k == 2 if soft is None else bool(soft)


def ferrari_canny(contacts, normals, center, radius: float, mu: float = 0.5, soft: bool | None = None) -> float:
    """Ferrari-Canny epsilon of one grasp (``(K, 3)`` contacts, outward normals); 0 = no force closure."""
    contacts, normals = _check_grasp(contacts, normals)
    if not radius > 0:
        raise ValueError(f"radius must be positive; got {radius}")
    w = primitive_wrenches(contacts, normals, np.asarray(center, dtype=np.float64), radius, mu,
                           _soft_default(len(contacts), soft))
    return hull_epsilon(w)


def robust_force_closure(contacts, normals, center, radius: float, samples: int = 24, sigma: float = 0.003,
                         mu_sigma: float = 0.1, rng: np.random.Generator | None = None, mu: float = 0.5,
                         soft: bool | None = None) -> float:
    """P(force closure) of one grasp over ``samples`` perturbations (the training label)."""
    contacts, normals = _check_grasp(contacts, normals)
    labels, _ = label_grasps(contacts[None], normals[None], center, radius, samples=samples, sigma=sigma,
                             mu_sigma=mu_sigma, rng=rng, mu=mu, soft=soft)
    return float(labels[0])


def label_grasps(contacts, normals, center, radius: float, samples: int = 24, sigma: float = 0.003,
                 mu_sigma: float = 0.1, rng: np.random.Generator | None = None, mu: float = 0.5,
                 soft: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Labels for a batch of same-K grasps: ``(P(force closure) [G], nominal epsilon [G])``.

    ``contacts``/``normals`` ``[G, K, 3]``. Each perturbed copy moves every contact by
    N(0, sigma^2) along each axis of the contact's normal/tangent frame and draws
    mu ~ N(mu, mu_sigma^2) clipped to >= 0.05; normals are kept (no surface to re-project onto). Wrenches are built for all copies at once; qhull runs
    once per grasp (nominal epsilon), the perturbed copies use the NNLS force-closure test.
    """
    rng = np.random.default_rng() if rng is None else rng
    contacts = np.asarray(contacts, dtype=np.float64)
    normals = _unit(np.asarray(normals, dtype=np.float64))
    g, k = contacts.shape[:2]
    center = np.asarray(center, dtype=np.float64)
    soft = _soft_default(k, soft)
    if g == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.float32)
    nominal = batch_epsilon(primitive_wrenches(contacts, normals, center, radius, mu, soft))  # [G]
    if samples <= 0:
        return (nominal > 0).astype(np.float32), nominal.astype(np.float32)
    # noise drawn in each contact's own (n, t1, t2) frame: the same isotropic Gaussian, but the
    # perturbed grasps move with the grasp, so a seeded label is exactly rigid-motion invariant
    t1, t2 = tangent_frames(contacts, normals, center)  # [G, K, 3] each
    frame = np.stack([normals, t1, t2], axis=-2)  # [G, K, 3 (axis), 3]
    local = rng.normal(scale=sigma, size=(g, samples, k, 3))  # [G, S, K, 3]
    noisy = contacts[:, None] + np.einsum("gska,gkad->gskd", local, frame)  # [G, S, K, 3]
    mus = np.clip(mu + mu_sigma * rng.normal(size=(g, samples)), 0.05, None)  # [G, S]
    wrenches = primitive_wrenches(noisy, np.broadcast_to(normals[:, None], noisy.shape), center, radius, mus, soft)
    closed = batch_force_closure(wrenches.reshape((g * samples,) + wrenches.shape[-2:])).reshape(g, samples)
    return closed.mean(axis=1).astype(np.float32), nominal.astype(np.float32)
