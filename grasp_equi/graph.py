"""Cloud + contacts -> graph tensors (pure functions, torch only).

The pipeline per cloud: centre on the centroid and divide by the characteristic radius
(both computed from the cloud itself, so the result is invariant to translation and
scale), farthest-point sample ``num_nodes`` nodes with an invariant start, estimate normals
at the nodes if none were given. Neighbour lists are built here as pure functions that drop
self-edges with an explicit ``i != j`` mask (never ``dist > 0``).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable, ContextManager, Sequence

import numpy as np
import torch

from grasp_equi import keys
from grasp_equi.geometry import (NeighbourIndex, centroid_sign, estimate_normals, exact_cdist, farthest_point_sampling,
                                 unique_points, unsigned_normals)
from grasp_equi.orientation import NUM_REFERENCE, SURFACE_RULES, SurfaceOrientation, reference_indices
from grasp_equi.outliers import far_outliers


# Bump when prepare_cloud's output changes for the same input: prepared-cloud caches carry it.
# 2: duplicates merged, tie-proof sampling, smooth neighbourhoods, soft signs, the normal axis.
# 3: thinning above ModelConfig.cloud_points, farthest-point references (both off for older models).
PREPROCESS_VERSION = 3


@dataclass
class PreparedCloud:
    """One cloud after sampling, in normalised coordinates."""

    node_pos: torch.Tensor  # [M, 3] float32, (p - center) / scale
    node_normal: torch.Tensor  # [M, 3] float32, outward normals (shortened towards 0 where the sign is ambiguous)
    center: torch.Tensor  # [3] float64, centroid in the input frame
    scale: torch.Tensor  # [] float64, max distance of a point from the centroid
    # neighbour search over the whole normalised cloud, kept for the contact normals (not cached to
    # disk; None when the normals were given)
    index: NeighbourIndex | None = field(default=None, repr=False, compare=False)
    # how the contact normals get their sign ("surface" orientation only; None: away from the centroid)
    orientation: SurfaceOrientation | None = field(default=None, repr=False, compare=False)
    # the deduplicated cloud ``[U, 3]`` float64 in the normalised frame and the node indices ``[M]`` into it
    # (not cached to disk; the scorer's contact checks and neighbour search use them)
    local: torch.Tensor | None = field(default=None, repr=False, compare=False)
    node_index: torch.Tensor | None = field(default=None, repr=False, compare=False)
    # [M, 3] float32 unit normal directions, sign arbitrary (None: node_normal normalised, as in older caches)
    node_axis: torch.Tensor | None = field(default=None, repr=False, compare=False)
    # stray points far outside the object left out before normalising (``grasp_equi.outliers``)
    stray_points: int = field(default=0, compare=False)

    def axis(self) -> torch.Tensor:
        """Unit normal directions ``[M, 3]`` of the nodes (sign arbitrary)."""
        if self.node_axis is None:
            return torch.nn.functional.normalize(self.node_normal, dim=1)
        return self.node_axis


def cloud_options(config) -> dict:
    """``prepare_cloud``'s keyword arguments for a model of ``ModelConfig`` ``config`` (its preprocessing)."""
    return {"num_nodes": config.num_nodes, "normal_k": config.normal_k, "orientation": config.normal_orientation,
            "max_points": config.cloud_points, "reference_sampling": config.reference_sampling,
            "num_references": config.num_references}


def normalised_cloud(points: torch.Tensor, normals: torch.Tensor | None = None, max_points: int = 0):
    """The cloud ``[N, 3]`` as ``prepare_cloud`` sees it: ``(local [U, 3] float64, normals [U, 3] | None,
    center [3], scale [], stray_points)``.

    Exact duplicates are merged (``unique_points``), stray points far outside the object left out
    (``far_outliers``), the rest centred on its centroid and divided by its radius (both float64).
    With ``max_points > 0`` a cloud of more distinct points is then thinned to ``max_points`` by the
    rank of their distance from the centroid (``reference_indices``: every ``U / max_points``-th, ties
    by point index), an invariant, order-free choice; the thinned points come in that rank order.
    """
    points, normals = unique_points(points.to(torch.float64), normals)  # [U, 3]: copies add nothing
    stray = far_outliers(points)  # [U] flying pixels would set the scale
    if bool(stray.any()):
        points, normals = points[~stray], None if normals is None else normals[~stray]  # [U', 3]
    center = points.mean(dim=0)  # [3]
    rel = points - center  # [U, 3]
    scale = rel.norm(dim=1).max()  # []
    local64 = rel / scale  # [U, 3] float64: every decision below is taken at this precision
    if 0 < max_points < local64.shape[0]:
        keep = reference_indices(local64, max_points)  # [max_points]
        local64, normals = local64[keep], None if normals is None else normals[keep]
    return local64, normals, center, scale, int(stray.sum())


def reference_picks(local64: torch.Tensor, reference_sampling: str = "radius_ranks",
                    num_references: int = NUM_REFERENCE, picks: torch.Tensor | None = None) -> torch.Tensor:
    """Indices ``[S]`` of the surface orientation's reference points in ``local64`` ``[U, 3]``
    (``ModelConfig.reference_sampling``): ``NUM_REFERENCE`` radius ranks (``reference_indices``), or the
    first ``num_references`` farthest-point samples (``picks``: samples already drawn, at least that many
    when the cloud has them; drawn here when None)."""
    if reference_sampling != "farthest_point":
        return reference_indices(local64)
    return farthest_point_sampling(local64, num_references) if picks is None else picks[:num_references]


def spacing_picks(local64: torch.Tensor, reference_sampling: str) -> torch.Tensor | None:
    """Where the contact check measures the cloud's local point spacing: the radius-rank points
    (``reference_indices``) for every model. None when those are the reference points already;
    farthest-point references favour sparse rims, whose spacing would loosen the check."""
    return reference_indices(local64) if reference_sampling == "farthest_point" else None


def surface_orientation(local64: torch.Tensor, index: NeighbourIndex, normal_k: int, orientation: str,
                        reference_sampling: str = "radius_ranks", num_references: int = NUM_REFERENCE,
                        picks: torch.Tensor | None = None) -> SurfaceOrientation:
    """The orientation ``prepare_cloud`` builds for ``local64`` ``[U, 3]`` (``normalised_cloud``'s) without
    given normals (``picks``: as in ``reference_picks``)."""
    refs = reference_picks(local64, reference_sampling, num_references, picks)  # [S]
    return SurfaceOrientation.from_cloud(local64, index, normal_k, method=orientation, picks=refs,
                                         spacing_picks=spacing_picks(local64, reference_sampling))


def prepare_cloud(
    points: torch.Tensor,
    normals: torch.Tensor | None,
    num_nodes: int,
    normal_k: int = 16,
    stage: Callable[[str], ContextManager] | None = None,
    orientation: str = "centroid",
    max_points: int = 0,
    reference_sampling: str = "radius_ranks",
    num_references: int = NUM_REFERENCE,
) -> PreparedCloud:
    """Normalise, sample and (when ``normals`` is None) estimate normals for one cloud.

    ``points`` ``[N, 3]`` and ``normals`` ``[N, 3]`` may be float64 (preferred: the
    centring is done in float64 so clouds metres away from the origin lose no precision).
    ``stage(name)``, when given, is entered around the ``"sampling"`` and ``"normals"``
    steps (the scorer times them with it). ``orientation`` (``ModelConfig.normal_orientation``):
    "centroid" points estimated normals away from the centroid; "surface"/"harmonic" propagate their
    sign over the surface (``grasp_equi.orientation``) and keep it for the contact normals; given
    ``normals`` are then the reference for the contacts' signs. ``max_points``,
    ``reference_sampling`` and ``num_references``: ``ModelConfig.cloud_points`` and its namesakes
    (``cloud_options(config)`` gives them all).

    Every step is a continuous function of the points or a decision that rounding cannot flip:
    exact duplicates are merged first (``unique_points``), stray points far outside the object are
    left out (``far_outliers``; counted in ``PreparedCloud.stray_points``), thinning, sampling and
    rankings break ties by point index (``TIE_BIAS``, ``RANK_TIE``), neighbourhoods are smooth
    (``neighbourhood_weights``) and sign choices fade through zero (``soft_sign``). So the same array
    in any rigid pose gives the same result up to float rounding; a permutation of a cloud with exact
    ties (a grid, a symmetric mesh) may pick other, equivalent nodes.
    """
    stage = stage or (lambda name: nullcontext())
    # with farthest-point references the nodes are the first of them: one sampling pass draws both
    from_fps = orientation in SURFACE_RULES and reference_sampling == "farthest_point"
    draws = max(num_nodes, num_references) if from_fps else num_nodes
    with stage("sampling"):
        local64, normals, center, scale, strays = normalised_cloud(points, normals, max_points)  # [U, 3]
        picks = farthest_point_sampling(local64, draws)  # [draws]
        idx = picks[:num_nodes]  # [M]
        node_pos = local64[idx].to(torch.float32)  # [M, 3]
    with stage("normals"):
        index, oriented = None, None  # with given normals no search is needed here (the scorer builds one if it must)
        if normals is not None:
            unit = torch.nn.functional.normalize(normals.to(torch.float64), dim=1)  # [U, 3]
            axis = node_normal = unit[idx]  # [M, 3]
            if orientation in SURFACE_RULES:
                refs = reference_picks(local64, reference_sampling, num_references, picks)  # [S]
                oriented = SurfaceOrientation.from_normals(local64, unit, picks=refs,
                                                           spacing_picks=spacing_picks(local64, reference_sampling))
        elif orientation in SURFACE_RULES:
            index = NeighbourIndex(local64)
            oriented = surface_orientation(local64, index, normal_k, orientation, reference_sampling, num_references,
                                           picks)
            if from_fps and num_references >= idx.shape[0]:
                m = idx.shape[0]  # the nodes are the first references: their normals are already signed
                axis, node_normal = oriented.axes[:m], oriented.normals[:m]  # [M, 3] x2
            else:
                axis = unsigned_normals(local64[idx], local64, normal_k, index)  # [M, 3]
                node_normal = oriented.orient(local64[idx], axis)  # [M, 3]
        else:
            index = NeighbourIndex(local64)
            axis = unsigned_normals(local64[idx], local64, normal_k, index)  # [M, 3]
            node_normal = axis * centroid_sign(local64[idx], axis)  # [M, 3]
    return PreparedCloud(node_pos, node_normal.to(torch.float32), center, scale, index, oriented, local64, idx,
                         axis.to(torch.float32), strays)


def normalise_contacts(contacts: torch.Tensor, cloud: PreparedCloud, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Contacts ``[C, 3]`` in the input frame -> the cloud's normalised frame (``dtype``: float32 for the
    network, float64 for neighbour searches and normals)."""
    return ((contacts.to(torch.float64) - cloud.center) / cloud.scale).to(dtype)


def contact_normals(contacts: torch.Tensor, index: NeighbourIndex | None, k: int = 16,
                    orientation: SurfaceOrientation | None = None, source: str = "pca") -> torch.Tensor:
    """Outward normals ``[C, 3]`` (float32) of the cloud at each contact.

    ``contacts`` ``[C, 3]`` and ``index`` (over the cloud's ``[N, 3]`` points, e.g.
    ``PreparedCloud.index``) are both in the cloud's normalised frame (centroid at the origin),
    float64 for pose-independent neighbourhoods. The sign rule is the nodes' one: ``orientation``
    (``PreparedCloud.orientation``) when given, else away from the centroid; a normal whose sign
    is ambiguous is shortened continuously towards zero. Estimated from the cloud, never taken
    from a mesh, in training as at inference. ``source`` (``ModelConfig.contact_normal_source``):
    "pca" as above; "reference" the mean of ``orientation``'s oriented reference normals around
    the contact (``SurfaceOrientation.normals_at``; ``index`` unused).
    """
    if contacts.shape[0] == 0:
        return torch.zeros(0, 3, dtype=torch.float32, device=contacts.device)
    if source == "reference":
        if orientation is None:
            raise ValueError("contact normals from reference points need the cloud's surface orientation")
        return orientation.normals_at(contacts.to(torch.float64)).to(torch.float32)
    contacts = contacts.to(index.cloud.dtype)
    if orientation is not None:
        normals = orientation.orient(contacts, unsigned_normals(contacts, index.cloud, k, index))
    else:
        normals = estimate_normals(contacts, index.cloud, k=k,
                                   center=torch.zeros(3, dtype=contacts.dtype, device=contacts.device), index=index)
    return normals.to(torch.float32)


def grasp_tensors(num_contacts: Sequence[int], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``contact_grasp`` ``[C]`` and ``grasp_num_contacts`` ``[G]`` for grasps of given K."""
    counts = torch.as_tensor(list(num_contacts), dtype=torch.long, device=device)  # [G]
    contact_grasp = torch.repeat_interleave(torch.arange(len(counts), device=device), counts)  # [C]
    return contact_grasp, counts


def radius_graph(pos: torch.Tensor, ptr: torch.Tensor, radius: float) -> torch.Tensor:
    """Directed edges ``[2, E]`` (src, dst) between nodes of the same cloud within ``radius``.

    Nodes of cloud b are ``pos[ptr[b]:ptr[b+1]]``. Self-edges are removed by index, not by
    distance (see module docstring).
    """
    edges = []
    for b in range(ptr.numel() - 1):
        lo, hi = int(ptr[b]), int(ptr[b + 1])
        p = pos[lo:hi]  # [m, 3]
        dist = exact_cdist(p, p)  # [m, m]
        not_self = ~torch.eye(hi - lo, dtype=torch.bool, device=pos.device)  # [m, m]
        src, dst = torch.nonzero((dist < radius) & not_self, as_tuple=True)
        edges.append(torch.stack([src + lo, dst + lo]))
    return torch.cat(edges, dim=1) if edges else torch.zeros(2, 0, dtype=torch.long, device=pos.device)


def contact_object_graph(
    contact_pos: torch.Tensor,
    contact_cloud: torch.Tensor,
    node_pos: torch.Tensor,
    node_ptr: torch.Tensor,
    radius: float,
) -> torch.Tensor:
    """Edges ``[2, E]`` from object nodes (src) to contacts (dst) of the same cloud within ``radius``."""
    edges = []
    for b in range(node_ptr.numel() - 1):
        lo, hi = int(node_ptr[b]), int(node_ptr[b + 1])
        contacts_b = torch.nonzero(contact_cloud == b, as_tuple=True)[0]  # [c_b]
        if contacts_b.numel() == 0:
            continue
        dist = exact_cdist(contact_pos[contacts_b], node_pos[lo:hi])  # [c_b, m]
        dst, src = torch.nonzero(dist < radius, as_tuple=True)
        edges.append(torch.stack([src + lo, contacts_b[dst]]))
    return torch.cat(edges, dim=1) if edges else torch.zeros(2, 0, dtype=torch.long, device=node_pos.device)


def contact_pair_graph(contact_grasp: torch.Tensor, num_contacts: torch.Tensor) -> torch.Tensor:
    """All ordered pairs ``[2, E]`` of distinct contacts within each grasp (src, dst).

    Grasps are contiguous in ``contact_grasp``; built per distinct K so mixed K cost one
    vectorised step each.
    """
    device = contact_grasp.device
    first = torch.cumsum(num_contacts, 0) - num_contacts  # [G] index of each grasp's first contact
    edges = []
    for k in torch.unique(num_contacts).tolist():
        grasps = torch.nonzero(num_contacts == k, as_tuple=True)[0]  # [g_k]
        a, b = torch.meshgrid(torch.arange(k, device=device), torch.arange(k, device=device), indexing="ij")
        not_self = a != b  # [k, k], explicit i != j
        a, b = a[not_self], b[not_self]  # [k(k-1)]
        base = first[grasps][:, None]  # [g_k, 1]
        edges.append(torch.stack([(base + a).reshape(-1), (base + b).reshape(-1)]))
    return torch.cat(edges, dim=1) if edges else torch.zeros(2, 0, dtype=torch.long, device=device)


def collate(
    clouds: Sequence[PreparedCloud],
    contacts_per_cloud: Sequence[Sequence[torch.Tensor]],
    normals_per_cloud: Sequence[Sequence[torch.Tensor]] | None = None,
) -> dict[str, torch.Tensor]:
    """Batch prepared clouds and their grasps into one graph dictionary.

    ``contacts_per_cloud[b]`` is a list of ``[K_i, 3]`` tensors already in cloud b's
    normalised frame; ``normals_per_cloud`` (same layout, optional) their contact normals.
    Grasps keep their order: cloud 0's first, then cloud 1's, ...
    """
    device = clouds[0].node_pos.device
    sizes = torch.tensor([c.node_pos.shape[0] for c in clouds], device=device)  # [B]
    node_ptr = torch.cat([torch.zeros(1, dtype=torch.long, device=device), torch.cumsum(sizes, 0)])
    grasp_cloud = torch.cat([
        torch.full((len(grasps),), b, dtype=torch.long, device=device)
        for b, grasps in enumerate(contacts_per_cloud)
    ])  # [G]
    flat = [g for grasps in contacts_per_cloud for g in grasps]
    contact_grasp, num_contacts = grasp_tensors([g.shape[0] for g in flat], device)
    batch = {
        keys.NODE_POS: torch.cat([c.node_pos for c in clouds]),  # [n_nodes, 3]
        keys.NODE_NORMAL: torch.cat([c.node_normal for c in clouds]),  # [n_nodes, 3]
        keys.NODE_AXIS: torch.cat([c.axis() for c in clouds]),  # [n_nodes, 3]
        keys.NODE_CLOUD: torch.repeat_interleave(torch.arange(len(clouds), device=device), sizes),
        keys.NODE_PTR: node_ptr,  # [B + 1]
        keys.CLOUD_CENTER: torch.stack([c.center for c in clouds]),  # [B, 3]
        keys.CLOUD_SCALE: torch.stack([c.scale for c in clouds]),  # [B]
        keys.CONTACT_POS: torch.cat(flat) if flat else torch.zeros(0, 3, device=device),  # [C, 3]
        keys.CONTACT_GRASP: contact_grasp,  # [C]
        keys.GRASP_CLOUD: grasp_cloud,  # [G]
        keys.GRASP_NUM_CONTACTS: num_contacts,  # [G]
    }
    if normals_per_cloud is not None:
        normals = [n for grasps in normals_per_cloud for n in grasps]
        batch[keys.CONTACT_NORMAL] = torch.cat(normals) if normals else torch.zeros(0, 3, device=device)  # [C, 3]
    return batch


def collate_grasps(cloud: PreparedCloud, contact_pos: torch.Tensor, num_contacts: torch.Tensor,
                   contact_normal: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """``collate([cloud], [grasps])`` for grasps given flat: the same dictionary, no per-grasp tensors.

    ``contact_pos`` ``[C, 3]`` in the cloud's normalised frame, ``num_contacts`` ``[G]`` (K of
    each grasp; grasps contiguous), ``contact_normal`` ``[C, 3]`` optional. With thousands of
    grasps this saves the Python loop over them.
    """
    device = cloud.node_pos.device
    num_grasps = num_contacts.shape[0]
    batch = {
        keys.NODE_POS: cloud.node_pos,  # [M, 3]
        keys.NODE_NORMAL: cloud.node_normal,  # [M, 3]
        keys.NODE_AXIS: cloud.axis(),  # [M, 3]
        keys.NODE_CLOUD: torch.zeros(cloud.node_pos.shape[0], dtype=torch.long, device=device),  # [M]
        keys.NODE_PTR: torch.tensor([0, cloud.node_pos.shape[0]], device=device),  # [2]
        keys.CLOUD_CENTER: cloud.center[None],  # [1, 3]
        keys.CLOUD_SCALE: cloud.scale[None],  # [1]
        keys.CONTACT_POS: contact_pos,  # [C, 3]
        keys.CONTACT_GRASP: torch.repeat_interleave(torch.arange(num_grasps, device=device), num_contacts),  # [C]
        keys.GRASP_CLOUD: torch.zeros(num_grasps, dtype=torch.long, device=device),  # [G]
        keys.GRASP_NUM_CONTACTS: num_contacts,  # [G]
    }
    if contact_normal is not None:
        batch[keys.CONTACT_NORMAL] = contact_normal  # [C, 3]
    return batch


def as_grasp_list(contacts) -> list[np.ndarray]:
    """Accept ``(G, K, 3)`` arrays or a sequence of ``(K_i, 3)`` arrays (mixed K)."""
    if isinstance(contacts, np.ndarray) or torch.is_tensor(contacts):
        arr = np.asarray(contacts.cpu() if torch.is_tensor(contacts) else contacts)
        if arr.ndim == 3:
            return list(arr)
        if arr.ndim == 2 and arr.shape[0] == 0:
            return []
        raise ValueError(f"contacts must have shape (G, K, 3) or be a list of (K, 3) arrays; got shape {arr.shape}")
    return [np.asarray(g) for g in contacts]
