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

from grasp_equi.geometry import NeighbourIndex, unique_points

# A contact farther than this many local point spacings from every cloud point is off the surface.
# Measured on held-out generated clouds: contacts on complete clouds lie within 2.3 spacings (99.9th
# percentile); on single views those beyond are on the occluded side, where the cloud has no evidence.
SURFACE_TOLERANCE = 4.0
SPACING_NEIGHBOURS = 4  # the local spacing is the mean distance from the nearest point to its 4 neighbours

REASON_OFF_SURFACE = "off_surface"


def surface_gaps(contacts: torch.Tensor, index: NeighbourIndex) -> tuple[torch.Tensor, torch.Tensor]:
    """Distance ``[C]`` from each contact to the nearest cloud point and the local point spacing ``[C]``
    there (mean distance from that point to its ``SPACING_NEIGHBOURS`` nearest other points).

    ``contacts`` ``[C, 3]`` and ``index`` share one frame (any units; the scorer uses the cloud's
    normalised frame in float64). Both values are continuous functions of the inputs, so a
    contact's verdict only flips where its ratio crosses ``SURFACE_TOLERANCE`` itself.
    """
    gap, nearest = index.query_with_distances(contacts.to(index.cloud.dtype), 1)  # [C, 1] x2
    around, _ = index.query_with_distances(index.cloud[nearest[:, 0]], SPACING_NEIGHBOURS + 1)  # [C, 5]
    return gap[:, 0], around[:, 1:].mean(dim=1)  # [C], [C]


def surface_limits(points: np.ndarray, contacts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The scorer's check for a caller without a ``GraspScorer`` call (a GUI filtering grasps before
    scoring them): each contact's distance ``[C]`` to the cloud ``points`` ``(N, 3)`` and its limit
    ``[C]`` (``SURFACE_TOLERANCE`` x the local spacing), both in the input units. The ratio does not
    depend on units, so the verdicts are those of ``GraspScorer.score``."""
    cloud = unique_points(torch.as_tensor(np.asarray(points), dtype=torch.float64))[0]  # [U, 3]
    gap, spacing = surface_gaps(torch.as_tensor(np.asarray(contacts), dtype=torch.float64), NeighbourIndex(cloud))
    return gap.numpy(), SURFACE_TOLERANCE * spacing.numpy()  # [C], [C]


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
