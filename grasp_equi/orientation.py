"""Consistent outward orientation of PCA normals, propagated over the surface.

A PCA normal has no sign. "Away from the centroid" is right on convex shapes and wrong
wherever the surface faces the centroid: a torus' inner ring, an L's inner corner, the inside
of a bowl. There a contact normal flips, and a grasp that pushes both jaws the same way looks
antipodal (the model then calls it stable).

The rule here, on ~1k reference points of the cloud (``SurfaceOrientation.from_cloud``):
1. Propagation in the spirit of Hoppe et al. (SIGGRAPH 1992): a spanning forest of the k-NN
   graph keeps the most trustworthy edges, each saying how two neighbours' signs relate
   (``edge_rules``: alike on a smooth patch; at a fold or across a thin wall by the side each
   normal sees the other point on), so signs stay consistent within each patch.
2. Anchors: points on the convex hull are certainly on the outside; each patch takes the sign
   its hull points vote for, and they keep it (a thin wedge can fool the propagation, not the
   hull). A patch with no hull point (a hidden inner surface) takes the sign that makes
   ``sum n . p`` positive, as ``∮ n . p dA = 3 V > 0`` for any closed surface.
Any other normal (a node, a contact) takes the sign its nearest reference normals agree on.

Everything depends only on distances and dot products of centred points, and the reference
points are chosen by rank of their distance from the centroid, so the result is equivariant
under rotations and reflections and independent of the order of the points (up to exact
ties). Limits: walls and wedges thinner than a PCA neighbourhood (a mug's 3-7 mm wall in a
2,048-point cloud) have no well-defined local normal; there it does no better than the
centroid rule. CPU (numpy/scipy): ~13 ms per cloud on one core up to 20k points.

That is the "surface" rule (``SurfaceOrientation.from_cloud(..., method="surface")``). The shipped
model uses "harmonic" (``grasp_equi.orientation_solve``): the same evidence in one least-squares
solve, continuous in the input and all torch. Both share the reference points, their PCA normals
and everything after the signs (``orient``, ``normals_at``, ``spacing_at``).
"""

from __future__ import annotations

import numpy as np
import torch

from grasp_equi.geometry import (QUERY_FACTOR, SIGN_FLOOR, NeighbourIndex, argsort_unstable, local_pca,
                                 neighbourhood_weights, soft_sign)

VERSION = 5  # bump when the rule changes: prepared-cloud caches carry it
SURFACE_RULES = ("surface", "harmonic")  # ModelConfig.normal_orientation values that build a SurfaceOrientation
NUM_REFERENCE = 1024  # reference points: spacing ~0.1 object radii on a sphere-sized surface
GRAPH_K = 8  # neighbours per reference point in the propagation graph
QUERY_K = 4  # reference normals that vote on the sign of each node / contact normal (smooth k-neighbourhood)
MAX_VARIATION = 0.05  # above this surface variation a point is on a rim, not a smooth patch
MIN_SMOOTH_DOT = 0.7  # neighbours on one smooth patch: normals within ~45 degrees (up to sign)
MIN_FOLD = 0.5  # an edge 30+ degrees off both tangent planes crosses a fold or a wall
HULL_TOLERANCE = 0.02  # points this close (in object radii) to a supporting plane of the hull are on it
MIN_HULL_FACING = 0.5  # ... and anchor their sign when their normal is within 60 degrees of the facet's


# Distances from the centroid closer than this (relative) are one rank, ordered by point index: far above
# the rounding that separates exact ties in another pose (~6e-13 relative 100 m from the origin), far
# below the gaps between distinct distances (a random pair of 20k points is this close with p ~ 1e-5).
RANK_TIE = 1e-11


def reference_indices(local: torch.Tensor, count: int = NUM_REFERENCE) -> torch.Tensor:
    """Indices ``[S]`` of an order-free, rotation-invariant subsample of ``local`` ``[N, 3]``.

    Points are ranked by their distance from the centroid (the origin of ``local``), an
    invariant, and every ``N / count``-th is kept: spread over the whole object, not clustered.
    Distances within ``RANK_TIE`` (relative) of the next smaller one form one rank, ordered by point
    index: ties up to rounding (a sphere's vertices, a grid's symmetric points) give the same
    picks in any pose, and distinct distances keep their order whatever the order of the points.
    """
    n = local.shape[0]
    radius = local.double().norm(dim=1)  # [N]
    by_radius = argsort_unstable(radius).to(local.device)  # [N]; the order of equal distances does not matter below
    ranked = radius[by_radius]  # [N] ascending
    step_up = torch.ones(n, dtype=torch.long, device=local.device)
    step_up[1:] = (ranked[1:] - ranked[:-1] > RANK_TIE * ranked[1:]).long()  # a new rank starts here
    if bool(step_up.all()):  # no two distances tie: the sort is the order (the common, noisy case)
        order = by_radius
    else:
        rank = torch.empty(n, dtype=torch.long, device=local.device)
        rank[by_radius] = torch.cumsum(step_up, 0)  # [N] rank of each point's distance
        order = argsort_unstable(rank * n + torch.arange(n, device=local.device)).to(local.device)  # rank, then index
    if n <= count:
        return order
    picks = torch.floor(torch.arange(count, dtype=torch.float64, device=local.device) * (n / count)).long()  # [S]
    return order[picks]


SPACING_NEIGHBOURS = 4  # a point's local spacing: the mean distance to its 4 nearest other points


def edge_rules(points: np.ndarray, normals: np.ndarray, variation: np.ndarray, src: np.ndarray,
               dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How the signs of two neighbouring normals relate: ``(relation [E] = s_src * s_dst, confidence [E])``.

    Two rules, the more confident one wins:
    * smooth patch: neighbours on a smooth surface have nearly parallel outward normals, so the
      relation is the sign of ``n_i . n_j``; trusted when the normals agree in direction, the edge
      lies in the tangent plane and neither point sits on a rim (surface variation);
    * fold or wall: for outward normals ``t``, ``t_i . (p_j - p_i)`` and ``t_j . (p_i - p_j)`` have
      the same sign at any fold, convex (both < 0: a box's edge, a cone's acute rim) or concave
      (both > 0), and across a thin wall (both < 0) or a narrow gap (both > 0); trusted as far as
      the edge leaves the tangent planes.
    """
    edge = points[dst] - points[src]  # [E, 3]
    edge = edge / np.maximum(np.linalg.norm(edge, axis=1, keepdims=True), 1e-12)
    a = (normals[src] * edge).sum(axis=1)  # [E]
    b = -(normals[dst] * edge).sum(axis=1)  # [E]
    dot = (normals[src] * normals[dst]).sum(axis=1)  # [E]
    clean = np.maximum(variation[src], variation[dst]) < MAX_VARIATION  # [E], both normals well defined
    off_tangent = np.minimum(np.abs(a), np.abs(b))  # [E]
    fold = clean & (off_tangent > MIN_FOLD)
    smooth = clean & (np.abs(dot) > MIN_SMOOTH_DOT) & (np.maximum(np.abs(a), np.abs(b)) < MIN_FOLD) & ~fold
    relation = np.where(fold, np.sign(a) * np.sign(b), np.sign(dot))  # [E]
    relation[relation == 0] = 1.0
    confidence = np.where(fold, off_tangent, np.where(smooth, np.abs(dot), 0.0))  # [E], 0: untrusted
    return relation, confidence


def _spanning_forest(points: np.ndarray, normals: np.ndarray, variation: np.ndarray,
                     graph_k: int) -> tuple[np.ndarray, np.ndarray]:
    """Parent ``[S]`` of each point in a maximum-confidence spanning forest of the k-NN graph, and
    the sign relation ``[S]`` to it (a root is its own parent, relation +1)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import breadth_first_order, connected_components, minimum_spanning_tree
    from scipy.spatial import cKDTree

    s = points.shape[0]
    k = min(graph_k + 1, s)
    _, nn = cKDTree(points).query(points, k=k)  # [S, k]
    nn = np.asarray(nn).reshape(s, k)
    src = np.repeat(np.arange(s), k)  # [S * k]
    dst = nn.ravel()  # [S * k]
    keep = src != dst  # drop self-edges explicitly
    src, dst = src[keep], dst[keep]
    _, confidence = edge_rules(points, normals, variation, src, dst)
    # The small constant keeps every weight > 0 (a sparse zero would be "no edge").
    graph = coo_matrix((1.0 + 1e-3 - confidence, (src, dst)), shape=(s, s)).tocsr()
    tree = minimum_spanning_tree(graph.maximum(graph.T))
    tree = tree.maximum(tree.T)
    _, component = connected_components(tree, directed=False)
    parent = np.arange(s)
    for root in np.unique(component, return_index=True)[1]:  # first point of each component
        order, pred = breadth_first_order(tree, root, directed=False)
        parent[order[1:]] = pred[order[1:]]
    relation, confidence = edge_rules(points, normals, variation, np.arange(s), parent)
    # The tree also spans untrusted edges (it must span the component): cut them, so each piece
    # decides its sign on its own.
    parent = np.where(confidence > 0, parent, np.arange(s))
    relation[parent == np.arange(s)] = 1.0
    return parent, relation


def convex_hull_signs(points: np.ndarray, normals: np.ndarray, tolerance: float = HULL_TOLERANCE) -> np.ndarray:
    """Sign ``[S]`` that points each normal out of the convex hull, for points within ``tolerance``
    (same units as ``points``) of its boundary (0 for the others).

    On the hull the outward side is certain: no part of the object lies beyond a supporting
    plane. The facets a point lies on decide, where its normal roughly faces them and they agree.
    Degenerate clouds (flat, < 4 points) get no anchors.
    """
    from scipy.spatial import ConvexHull, QhullError

    if points.shape[0] < 4:
        return np.zeros(points.shape[0])
    try:
        hull = ConvexHull(points)
    except (QhullError, ValueError):
        return np.zeros(points.shape[0])
    eq = torch.from_numpy(hull.equations)  # [F, 4] outward unit normal, offset
    near = torch.addmm(eq[:, 3], torch.from_numpy(points), eq[:, :3].T) > -tolerance  # [S, F], on that facet
    facing = torch.from_numpy(normals) @ eq[:, :3].T  # [S, F]
    # Every facet the point lies on gets a say, not only the nearest: a hull vertex lies on all its
    # facets at once (distance ~0, which one is "nearest" is rounding), and on a partial view's
    # rim those include the flat back, which faces the other way. A normal across a facet
    # (|facing| small) proves nothing; facets that disagree leave the point to the propagation.
    out = (near & (facing > MIN_HULL_FACING)).any(dim=1)  # [S]
    into = (near & (facing < -MIN_HULL_FACING)).any(dim=1)  # [S]
    return (out & ~into).double().numpy() - (into & ~out).double().numpy()


def _propagate_signs(relation: np.ndarray, parent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sign ``[S]`` of each normal relative to its tree's root and that root ``[S]``, by pointer
    jumping (O(S log S)): ``sign[v]`` starts as the relation to the parent; each round multiplies
    in the accumulated sign of the node ``up[v]`` it points to and jumps there."""
    sign = relation.copy()  # [S]; a root's is +1
    up = parent.copy()  # [S]
    while not (up[up] == up).all():
        sign = sign * sign[up]
        up = up[up]
    return sign, up


def _surface_signs(points: np.ndarray, nrm: np.ndarray, variation: np.ndarray, graph_k: int = GRAPH_K) -> np.ndarray:
    """Sign ``[S]`` for each reference normal by the "surface" rule (module docstring): propagation over a
    spanning forest, hull anchors, soft centroid fallback for unanchored patches (numpy/scipy)."""
    radius = float(np.linalg.norm(points, axis=1).max()) if len(points) else 1.0  # 1 in the scorer's frame
    hull_sign = convex_hull_signs(points, nrm, HULL_TOLERANCE * max(radius, 1e-12))  # [S], 0 off the hull
    parent, relation = _spanning_forest(points, nrm, variation, graph_k)
    sign, patch = _propagate_signs(relation, parent)  # consistent within each smooth patch
    # Each patch takes the sign its points on the hull vote for (a count: no rounding can tip
    # it); a patch with none (a hidden inner surface) the sign that makes sum(n . p) positive,
    # softly: a patch whose sum is near zero (a flat patch through the centroid) has no outside,
    # and its normals fade to zero length instead of taking a sign from rounding.
    anchored = np.bincount(patch, weights=hull_sign * sign, minlength=len(points))  # [S]
    along = sign * (nrm * points).sum(axis=1)  # [S]
    outward = np.bincount(patch, weights=along, minlength=len(points))  # [S]
    spread = np.bincount(patch, weights=np.abs(along), minlength=len(points))  # [S]
    # the floor keeps a patch whose every n . p is ~0 (a ring seen edge-on) at 0: rounding noise
    # over rounding noise would be a ratio of any size
    floor = SIGN_FLOOR * np.bincount(patch, minlength=len(points))  # [S]
    fallback = soft_sign(torch.from_numpy(outward / np.maximum(spread, np.maximum(floor, 1e-300)))).numpy()
    vote = np.where(anchored != 0, np.sign(anchored), fallback)[patch]  # [S]
    sign = sign * vote
    # On the hull the hull decides outright: a thin wedge (a squat cone's rim) can join two
    # faces in one patch with the wrong relation, the hull never errs there.
    sign = np.where(hull_sign != 0, hull_sign, sign)
    return sign


class SurfaceOrientation:
    """Oriented normals ``[S, 3]`` at reference points ``[S, 3]`` of one cloud (float64 tensors on the
    cloud's device); ``orient`` signs any other normals by them. Build it with ``from_cloud`` (PCA
    normals, signed by ``method``) or ``from_normals`` (the caller's own outward normals)."""

    def __init__(self, points: torch.Tensor, normals: torch.Tensor, spacing: torch.Tensor | None = None,
                 axes: torch.Tensor | None = None, spacing_points: torch.Tensor | None = None):
        self.points = points  # [S, 3]
        self.normals = normals  # [S, 3]
        self.axes = axes  # [S, 3] the unit PCA normals before signing (None: not kept)
        # where the cloud's local point spacing is measured ([S', 3]; default: the reference points) and its value
        # there ([S'], None: unknown). Farthest-point references favour sparse rims, so they get their own points.
        self.spacing_points = points if spacing_points is None else spacing_points
        self.spacing = spacing
        self._index = None  # NeighbourIndex over the points, built on the first query
        self._spacing_index = None  # ... over the spacing points, when they are others

    @classmethod
    def from_cloud(cls, local: torch.Tensor, index, normal_k: int = 16, num_reference: int = NUM_REFERENCE,
                   graph_k: int = GRAPH_K, method: str = "surface", picks: torch.Tensor | None = None,
                   spacing_picks: torch.Tensor | None = None) -> "SurfaceOrientation":
        """``local`` ``[N, 3]`` is the cloud in its normalised frame (centroid at the origin);
        ``index`` a ``NeighbourIndex`` over it for the PCA normals of the reference points.
        ``method``: "surface" (hull anchors and a spanning forest, numpy/scipy on the CPU; above) or
        "harmonic" (one least-squares solve in torch on the cloud's device, ``grasp_equi.orientation_solve``).
        ``picks`` ``[S]``: indices of the reference points in ``local`` (default: ``num_reference``
        picks by ``reference_indices``; ``prepare_cloud`` may pass farthest-point samples). ``spacing_picks``
        ``[S']``: where to measure the local point spacing (default: at the reference points)."""
        if method not in SURFACE_RULES:
            raise ValueError(f"unknown orientation method {method!r}; expected one of {SURFACE_RULES}")
        if picks is None:
            picks = reference_indices(local, num_reference)
        picks = picks.to(local.device)  # [S]
        points = local[picks].double()  # [S, 3]
        eigval, eigvec, dist = local_pca(points, index.cloud, normal_k, index, return_distances=True)
        eigval, nrm = eigval.double(), eigvec[:, :, 0].double()  # [S, 3], [S, 3]
        variation = eigval[:, 0] / eigval.sum(dim=1).clamp_min(1e-30)  # [S]
        spacing = dist[:, 1:SPACING_NEIGHBOURS + 1].double().mean(dim=1)  # [S] (the first neighbour is the point)
        spacing_points = None
        if spacing_picks is not None:
            spacing_points = local[spacing_picks.to(local.device)].double()  # [S', 3]
            near, _ = index.query_with_distances(spacing_points, SPACING_NEIGHBOURS + 1)  # [S', 5]
            spacing = near[:, 1:].double().mean(dim=1).to(local.device)  # [S']
        if method == "harmonic":
            from grasp_equi.orientation_solve import harmonic_signs

            roughness = eigval[:, 0].clamp_min(0.0).sqrt()  # [S] RMS distance of the neighbourhood off the plane
            radius = float(local.double().norm(dim=1).max()) if len(local) else 1.0  # 1 in the scorer's frame
            sign = harmonic_signs(points, nrm, variation, roughness, max(radius, 1e-12), graph_k)  # [S]
            return cls(points, nrm * sign[:, None], spacing, nrm, spacing_points)
        sign = _surface_signs(points.cpu().numpy(), nrm.cpu().numpy(), variation.cpu().numpy(), graph_k)  # [S]
        return cls(points, nrm * torch.from_numpy(sign).to(nrm.device)[:, None], spacing, nrm, spacing_points)

    @classmethod
    def from_normals(cls, local: torch.Tensor, normals: torch.Tensor, num_reference: int = NUM_REFERENCE,
                     picks: torch.Tensor | None = None, spacing_picks: torch.Tensor | None = None
                     ) -> "SurfaceOrientation":
        """The caller's own outward normals ``[N, 3]`` (at ``local`` ``[N, 3]``) as the reference, at ``picks``
        ``[S]`` (default: ``num_reference`` picks by ``reference_indices``); ``spacing_picks`` as in
        ``from_cloud`` (the spacing itself is left to the caller: ``grasp_equi.contacts.reference_spacing``)."""
        picks = (reference_indices(local, num_reference) if picks is None else picks).to(local.device)  # [S]
        spacing_points = None if spacing_picks is None else local[spacing_picks.to(local.device)].double()
        return cls(local[picks].double(), normals[picks].double(), spacing_points=spacing_points)

    def neighbours(self, queries: torch.Tensor, spacing: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Smooth ``QUERY_K``-neighbourhood weights ``[n_q, k]`` (float64) and the indices ``[n_q, k]`` of the
        reference points (``spacing``: the spacing points) around each query ``[n_q, 3]`` (on their device)."""
        points = self.spacing_points if spacing else self.points
        if spacing and points is not self.points:
            self._spacing_index = self._spacing_index or NeighbourIndex(points)
            index = self._spacing_index
        else:
            self._index = self._index or NeighbourIndex(points)
            index = self._index
        k = min(QUERY_FACTOR * QUERY_K, len(points))
        dist, nearest = index.query_with_distances(queries.to(points), k)  # [n_q, k] x2
        return neighbourhood_weights(dist.to(points), QUERY_K), nearest.to(points.device)

    def spacing_at(self, queries: torch.Tensor, neighbours=None) -> torch.Tensor:
        """The cloud's local point spacing ``[n_q]`` (float64) around each query ``[n_q, 3]``: the weighted mean
        of the spacing at the spacing points around it (``neighbours``: a ``neighbours(queries)`` result
        to reuse when those are the reference points). ``ValueError`` when this orientation was built
        without spacings."""
        if self.spacing is None:
            raise ValueError("this surface orientation holds no point spacing (built from given normals)")
        if neighbours is None or self.spacing_points is not self.points:
            neighbours = self.neighbours(queries, spacing=True)
        weights, nearest = neighbours  # [n_q, k] x2
        ref = self.spacing[nearest]  # [n_q, k]
        return ((weights * ref).sum(dim=1) / weights.sum(dim=1)).to(queries.device)  # [n_q]

    def normals_at(self, queries: torch.Tensor, neighbours=None) -> torch.Tensor:
        """Outward normals ``[n_q, 3]`` at ``queries`` ``[n_q, 3]`` (same frame as the reference points): the
        weighted mean of the oriented reference normals around each query (smooth ``QUERY_K``-neighbourhood).

        Where the neighbours agree the mean is a unit-length normal, smoothed over the reference
        spacing (~0.1 object radii, whatever the cloud's density); where they disagree (a thin wall,
        a sharp rim) it shortens continuously instead of flipping. No search in the full cloud, so
        it costs a few microseconds per query. Returns the input's device and dtype."""
        if queries.shape[0] == 0:
            return torch.zeros_like(queries)
        weights, nearest = neighbours if neighbours is not None else self.neighbours(queries)  # [n_q, k] x2
        ref = self.normals[nearest]  # [n_q, k, 3]
        mean = (weights[:, :, None] * ref).sum(dim=1) / weights.sum(dim=1, keepdim=True)  # [n_q, 3]
        return mean.to(device=queries.device, dtype=queries.dtype)

    def orient(self, queries: torch.Tensor, normals: torch.Tensor) -> torch.Tensor:
        """Sign each of ``normals`` ``[n_q, 3]`` (at ``queries`` ``[n_q, 3]``) by the reference normals
        around it: their weighted mean agreement ``a`` in [-1, 1] (smooth ``QUERY_K``-neighbourhood,
        ``neighbourhood_weights``) gives the factor ``soft_sign(a)``, so a normal whose neighbours
        disagree (a thin wall) shrinks towards zero length instead of flipping with rounding.
        Returns ``[n_q, 3]`` on the input's device and dtype."""
        if queries.shape[0] == 0:
            return normals
        weights, nearest = self.neighbours(queries)  # [n_q, k] x2
        ref = self.normals[nearest]  # [n_q, k, 3]
        dots = (normals.to(ref)[:, None, :] * ref).sum(dim=2)  # [n_q, k]
        agree = (weights * dots).sum(dim=1) / weights.sum(dim=1)  # [n_q]
        factor = soft_sign(agree).to(device=normals.device, dtype=normals.dtype)[:, None]  # [n_q, 1]
        return normals * factor
