"""Outward signs of PCA normals as one sparse least-squares solve, in torch (CPU or GPU).

The "harmonic" orientation rule (``ModelConfig.normal_orientation = "harmonic"``), on the
reference points of ``grasp_equi.orientation``. It keeps that module's evidence and replaces its
discrete steps (a convex hull, a spanning tree, patch votes) with continuous ones:

* **Relations** between neighbouring normals (``edge_rules``: alike on a smooth patch, by the side
  each normal sees the other point at a fold or across a thin wall), weighted by their confidence
  and by a smooth k-NN kernel (``neighbourhood_weights``), over all edges, not a tree.
* **Anchors**: a point whose own tangent plane supports the cloud (every other point lies behind
  it, within a tolerance) is on the convex hull and its normal's side is the outside
  (``support_anchors``). The anchor's strength falls linearly to 0 as the margin grows to the
  tolerance, so no anchor appears or flips with rounding.
* **Prior**: a faint pull towards pointing away from the centroid, which decides a patch with no
  anchor (a hidden inner surface) the way ``∮ n . p dA = 3 V > 0`` says on average.

The signs ``s`` ``[S]`` minimise ``Σ_e c_e (s_i - r_e s_j)² + w Σ_i |a_i| (s_i - sign a_i)² + ε Σ_i (s_i - f_i)²``
(a signed graph Laplacian, as in spectral normal orientation, e.g. Schertler et al., "Towards
globally optimal normal orientations for large point clouds", CGF 2017), solved exactly (a sparse
LU on the CPU, a dense solve on a GPU): a continuous function of the points, so a rigid motion
moves the result only by rounding. Each normal is then scaled by ``soft_sign(s_i)``: where
the evidence conflicts (a frustrated loop at a thin wall) it shortens instead of flipping.
"""

from __future__ import annotations

import numpy as np
import torch

from grasp_equi.geometry import NeighbourIndex, QUERY_FACTOR, SIGN_FLOOR, neighbourhood_weights, soft_sign

GRAPH_K = 8  # neighbours per reference point (smooth kernel over QUERY_FACTOR x as many candidates)
SUPPORT_TOLERANCE = 0.02  # object radii: a plane this close to supporting the cloud still anchors (fading linearly)
ROUGHNESS_TOLERANCE = 4.0  # ... plus this many times the point's roughness, the RMS of its neighbours off its tangent
# plane: depth noise tilts the planes PCA normals span (4: single-view sign accuracy that of the "surface" rule; 6+ mistakes a torus' thin tube's curvature for noise)
ANCHOR_WEIGHT = 10.0  # an anchor outweighs the relations of its ~8 neighbours: on the hull the hull decides
PRIOR_WEIGHT = 1e-3  # the centroid prior's weight, against relations of weight ~1
MAX_VARIATION = 0.05  # above this surface variation a point is on a rim, not a smooth patch
MIN_SMOOTH_DOT = 0.7  # neighbours on one smooth patch: normals within ~45 degrees (up to sign)
MIN_FOLD = 0.5  # an edge 30+ degrees off both tangent planes crosses a fold or a wall


def edge_rules(points: torch.Tensor, normals: torch.Tensor, variation: torch.Tensor, src: torch.Tensor,
               dst: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sign relation ``[E]`` (``s_src * s_dst``, ±1) and confidence ``[E]`` in [0, 1] of each edge.

    Smooth patch: the sign of ``n_i . n_j``, trusted when the normals agree in direction, the edge
    lies in the tangent planes and neither point sits on a rim. Fold or wall: for outward normals
    ``t_i . (p_j - p_i)`` and ``t_j . (p_i - p_j)`` have the same sign at any fold and across a thin
    wall, so the relation is the product of their signs, trusted as far as the edge leaves the
    tangent planes. (The rules of ``grasp_equi.orientation.edge_rules``, in torch.)
    """
    edge = points[dst] - points[src]  # [E, 3]
    edge = edge / edge.norm(dim=1, keepdim=True).clamp_min(1e-12)
    a = (normals[src] * edge).sum(dim=1)  # [E]
    b = -(normals[dst] * edge).sum(dim=1)  # [E]
    dot = (normals[src] * normals[dst]).sum(dim=1)  # [E]
    clean = torch.maximum(variation[src], variation[dst]) < MAX_VARIATION  # [E]
    off_tangent = torch.minimum(a.abs(), b.abs())  # [E]
    fold = clean & (off_tangent > MIN_FOLD)
    smooth = clean & (dot.abs() > MIN_SMOOTH_DOT) & (torch.maximum(a.abs(), b.abs()) < MIN_FOLD) & ~fold
    relation = torch.where(fold, torch.sign(a) * torch.sign(b), torch.sign(dot))  # [E]
    relation = torch.where(relation == 0, torch.ones_like(relation), relation)
    zero = torch.zeros_like(dot)
    confidence = torch.where(fold, off_tangent, torch.where(smooth, dot.abs(), zero))  # [E]
    return relation, confidence


def support_anchors(points: torch.Tensor, normals: torch.Tensor, src: torch.Tensor, dst: torch.Tensor,
                    tolerance: float | torch.Tensor = SUPPORT_TOLERANCE) -> torch.Tensor:
    """Anchor ``[S]`` in [-1, 1] of each point from the supporting planes it lies on.

    The plane through ``points[i]`` with normal ``normals[j]`` (``j`` = ``i`` itself, or a neighbour
    ``dst`` of ``src`` = ``i``) supports the cloud when no point lies in front of it (``normals[j]`` is
    then an outward direction of the convex hull at ``points[i]``), or behind it (``-normals[j]`` is).
    Such a plane votes for the sign that points ``normals[i]`` its way, when the two normals are
    within ~60 degrees (up to sign): ``+1`` outward. Every plane gets a say, as every hull facet a
    point lies on does in ``grasp_equi.orientation``: at a box edge or a cone's rim the point's own
    PCA normal is a blend that no supporting plane has, its neighbours' normals are not. Votes
    that disagree cancel.

    Continuous: a plane's vote falls linearly to 0 as the cloud's reach in front of it grows to
    ``tolerance`` (a number, or ``[S]``: one per point tested), and as the normals' angle opens from 53 to
    66 degrees. ``points`` ``[S, 3]`` centred, in object radii; ``normals`` ``[S, 3]`` unit, unsigned.
    """
    proj = normals @ points.T  # [S_j, S_l]: n_j . p_l (rows: one reduction over contiguous memory)
    lowest, highest = proj.amin(dim=1), proj.amax(dim=1)  # [S] x2: the cloud's extent along each normal
    self_edges = torch.arange(points.shape[0], device=points.device)
    i, j = torch.cat([self_edges, src]), torch.cat([self_edges, dst])  # [S + E] x2
    along = (points[i] * normals[j]).sum(dim=1)  # [S + E]: p_i . n_j
    tol = tolerance[i] if torch.is_tensor(tolerance) else tolerance  # [S + E] or a number
    out = (1.0 - (highest[j] - along) / tol).clamp_min(0.0)  # [S + E]: nothing in front of the plane
    into = (1.0 - (along - lowest[j]) / tol).clamp_min(0.0)  # [S + E]: nothing behind it
    facing = (normals[i] * normals[j]).sum(dim=1)  # [S + E]
    vote = (out - into) * torch.sign(facing) * ((facing.abs() - 0.4) / 0.2).clamp(0.0, 1.0)
    zero = torch.zeros(points.shape[0], dtype=points.dtype, device=points.device)
    outward = zero.scatter_reduce(0, i, vote.clamp_min(0.0), reduce="amax")  # [S] strongest vote each way
    inward = zero.scatter_reduce(0, i, (-vote).clamp_min(0.0), reduce="amax")  # [S]
    return outward - inward


def reference_graph(points: torch.Tensor, k: int = GRAPH_K) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Edges ``src [E]``, ``dst [E]`` from each of ``points`` ``[S, 3]`` to its ``QUERY_FACTOR k`` nearest
    other points and their smooth k-NN kernel weights ``[E]`` (``neighbourhood_weights``: 1 for the
    nearest ~k, falling to exactly 0 before the last candidates). No self-edges."""
    s = points.shape[0]
    dist, nearest = NeighbourIndex(points).query_with_distances(points, min(QUERY_FACTOR * k + 1, s))  # [S, c] x2
    dist, nearest = dist[:, 1:].to(points), nearest[:, 1:].to(points.device)  # the first is the point itself
    weights = neighbourhood_weights(dist, k) if dist.shape[1] else dist  # [S, c - 1]
    src = torch.arange(s, device=points.device)[:, None].expand_as(nearest)  # [S, c - 1]
    keep = nearest != src  # exact copies are merged upstream; never a self-edge
    return src[keep], nearest[keep], weights[keep]


def solve_signs(num: int, src: torch.Tensor, dst: torch.Tensor, coupling: torch.Tensor, relation: torch.Tensor,
                anchor: torch.Tensor, prior: torch.Tensor, dense: bool | None = None) -> torch.Tensor:
    """``s`` ``[num]`` minimising the quadratic in the module docstring (``coupling`` ``[E]`` = c_e,
    ``relation`` ``[E]`` = r_e, ``anchor`` ``[num]`` = a_i, ``prior`` ``[num]`` = f_i): the normal equations
    ``A s = b``, ``A`` a signed graph Laplacian plus a positive diagonal (symmetric positive definite),
    solved exactly: SciPy's sparse LU (SuperLU) on the CPU, a dense ``torch.linalg.solve`` on a GPU
    (~1k unknowns; ``dense`` forces either). Exact, not iterative: an unconverged iterate is a fragile function of its input
    (100 conjugate-gradient steps amplified 1e-10 input rounding to 1e-4 on a single view)."""
    diag = ANCHOR_WEIGHT * anchor.abs() + PRIOR_WEIGHT  # [num]
    diag = diag.index_add(0, src, coupling).index_add(0, dst, coupling)  # [num]
    every = torch.arange(num, device=diag.device)
    rows = torch.cat([src, dst, every])  # [2E + num]: both halves of each symmetric term, then the diagonal
    cols = torch.cat([dst, src, every])  # [2E + num]
    values = torch.cat([-coupling * relation, -coupling * relation, diag])  # [2E + num]
    rhs = ANCHOR_WEIGHT * anchor + PRIOR_WEIGHT * prior  # [num]
    if not (rhs.device.type != "cpu" if dense is None else dense):
        import scipy.sparse
        import scipy.sparse.linalg

        matrix = scipy.sparse.csc_matrix((values.numpy(), (rows.numpy(), cols.numpy())), shape=(num, num))  # sums repeats
        return torch.from_numpy(np.atleast_1d(scipy.sparse.linalg.spsolve(matrix, rhs.numpy())))
    dense = torch.zeros(num, num, dtype=rhs.dtype, device=rhs.device).index_put_((rows, cols), values, accumulate=True)
    return torch.linalg.solve(dense, rhs)


def harmonic_signs(points: torch.Tensor, normals: torch.Tensor, variation: torch.Tensor,
                   roughness: torch.Tensor | None = None, radius: float = 1.0, graph_k: int = GRAPH_K) -> torch.Tensor:
    """Factor ``[S]`` in [-1, 1] that turns unsigned ``normals`` ``[S, 3]`` at ``points`` ``[S, 3]``
    (centred on the cloud's centroid; ``variation`` ``[S]`` the PCA surface variation, ``roughness`` ``[S]``
    the RMS of each neighbourhood off its tangent plane, ``radius`` the cloud's: 1 in the scorer's
    normalised frame, in which case lengths are object radii) outward: ``soft_sign`` of the
    least-squares signs (module docstring)."""
    src, dst, kernel = reference_graph(points, graph_k)  # [E] x3
    tolerance = SUPPORT_TOLERANCE * radius + (0.0 if roughness is None else ROUGHNESS_TOLERANCE * roughness)  # [S]
    anchor = support_anchors(points, normals, src, dst, tolerance)  # [S]: every candidate's plane votes
    near = kernel > 0  # relations: the smooth k-neighbourhood only
    src, dst, kernel = src[near], dst[near], kernel[near]  # [e] x3
    relation, confidence = edge_rules(points, normals, variation, src, dst)  # [e] x2
    keep = confidence > 0
    radial = points / points.norm(dim=1, keepdim=True).clamp_min(SIGN_FLOOR * radius)  # [S, 3]
    prior = (radial * normals).sum(dim=1)  # [S] cosine to "away from the centroid"
    s = solve_signs(points.shape[0], src[keep], dst[keep], (kernel * confidence)[keep], relation[keep],
                    anchor, prior)  # [S]
    return soft_sign(s)
