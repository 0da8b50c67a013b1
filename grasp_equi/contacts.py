"""Preparing the contacts of a request: which grasps the model can judge, and their normals.

A contact must touch the surface the cloud shows. "Touch" is measured in the cloud's own
local point spacing, not in object radii: a contact 20 mm inside a 6 cm object, a contact on
the hidden back of a single view, or a contact in metres beside a cloud in millimetres is
several spacings from every point, while a contact on the surface sits within about one.
Grasps with such a contact are not scored (NaN) and carry a reason; the other grasps of the
call are scored as usual.
"""

from __future__ import annotations

import numpy as np
import torch

from grasp_equi.geometry import NeighbourIndex
from grasp_equi.orientation import SPACING_NEIGHBOURS, SurfaceOrientation

# A contact farther than this many local point spacings from every cloud point is off the surface.
# Measured on held-out generated clouds: contacts on complete clouds lie within 2.3 spacings (99.9th
# percentile); on single views those beyond are on the occluded side, where the cloud has no evidence.
SURFACE_TOLERANCE = 4.0

REASON_OFF_SURFACE = "off_surface"


def surface_gaps(contacts: torch.Tensor, index: NeighbourIndex, orientation: SurfaceOrientation | None = None,
                 neighbours=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Distance ``[C]`` from each contact to the nearest cloud point and the cloud's local point
    spacing ``[C]`` there.

    ``contacts`` ``[C, 3]`` and ``index`` share one frame (any units; the scorer uses the cloud's
    normalised frame in float64). The spacing is the weighted mean of the spacing at the reference
    points of ``orientation`` around the contact (``SurfaceOrientation.spacing_at``; ``neighbours``
    reuses its neighbour query), else the mean distance from the nearest point to its
    ``SPACING_NEIGHBOURS`` nearest other points. The gap is a continuous function of the inputs,
    so a contact's verdict flips only where its ratio crosses ``SURFACE_TOLERANCE`` itself.
    """
    gap, nearest = index.query_with_distances(contacts.to(index.cloud.dtype), 1)  # [C, 1] x2
    if orientation is not None and orientation.spacing is not None:
        return gap[:, 0], orientation.spacing_at(contacts, neighbours).to(gap.dtype)
    around, _ = index.query_with_distances(index.cloud[nearest[:, 0]], SPACING_NEIGHBOURS + 1)  # [C, 5]
    return gap[:, 0], around[:, 1:].mean(dim=1)  # [C], [C]


def reference_spacing(points: torch.Tensor, index: NeighbourIndex) -> torch.Tensor:
    """The local point spacing ``[S]`` (float64) at cloud points ``points`` ``[S, 3]`` (the frame of
    ``index``): the mean distance to their ``SPACING_NEIGHBOURS`` nearest other points (the first
    neighbour of a cloud point is itself)."""
    dist, _ = index.query_with_distances(points.to(index.cloud.dtype), SPACING_NEIGHBOURS + 1)
    return dist[:, 1:].to(torch.float64).mean(dim=1).to(points.device)  # [S]


def surface_limits(points: np.ndarray, contacts: np.ndarray, options: dict | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The scorer's check for a caller without a ``GraspScorer`` call (a GUI filtering grasps before
    scoring them): each contact's distance ``[C]`` to the cloud ``points`` ``(N, 3)`` and its limit
    ``[C]`` (``SURFACE_TOLERANCE`` x the local spacing), both in the input units. The ratio does not
    depend on units, so the verdicts are those of ``GraspScorer.score`` with a surface-oriented
    model of preprocessing ``options`` (``grasp_equi.graph.cloud_options(config)``; default: the
    older models' settings): the same deduplicated, normalised (and thinned) cloud and reference
    points, without the sampling, normals and signs that the check does not need."""
    from grasp_equi.graph import normalised_cloud
    from grasp_equi.orientation import reference_indices

    options = options or {}
    points64 = torch.as_tensor(np.asarray(points), dtype=torch.float64)  # [N, 3]
    local, _, center, scale, _ = normalised_cloud(points64, None, options.get("max_points", 0))  # [U, 3]
    index = NeighbourIndex(local)
    ref = local[reference_indices(local)]  # [S, 3] where every model measures the spacing (graph.spacing_picks)
    reference = SurfaceOrientation(ref, torch.zeros_like(ref), reference_spacing(ref, index))  # spacing only
    queries = (torch.as_tensor(np.asarray(contacts), dtype=torch.float64) - center) / scale  # [C, 3]
    gap, spacing = surface_gaps(queries, index, reference)  # normalised units
    return gap.numpy() * float(scale), SURFACE_TOLERANCE * spacing.numpy() * float(scale)  # [C], [C]


def off_surface_reasons(gap: np.ndarray, spacing: np.ndarray, counts: np.ndarray, scale: float
                        ) -> list[str | None]:
    """One entry per grasp: None when every contact touches the cloud, else a readable reason that
    starts with ``REASON_OFF_SURFACE``. ``gap``/``spacing`` ``[C]`` in normalised units, ``counts``
    ``[G]`` contacts per grasp (contiguous), ``scale`` the object radius in input units."""
    far = gap > SURFACE_TOLERANCE * spacing  # [C]
    reasons: list[str | None] = [None] * len(counts)
    if not far.any():
        return reasons
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])  # [G]
    for g in np.flatnonzero(np.add.reduceat(far, first) if len(counts) else []):
        c = first[g] + int(np.argmax(far[first[g]:first[g] + counts[g]]))
        reasons[g] = (f"{REASON_OFF_SURFACE}: contact {c - first[g]} lies {gap[c] * scale:.4g} from the nearest "
                      f"cloud point, more than {SURFACE_TOLERANCE:g} x the local point spacing "
                      f"({spacing[c] * scale:.3g}): it does not touch the surface the cloud shows")
    return reasons


def reason_key(reason: str) -> str:
    """The counter name of a reason (``"off_surface"`` for ``"off_surface: contact 1 lies ..."``)."""
    return reason.split(":", 1)[0]
