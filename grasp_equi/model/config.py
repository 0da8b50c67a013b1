"""Model hyper-parameters, stored as JSON beside the weights in every checkpoint."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

FORMAT_VERSION = 1


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model and its preprocessing.

    Lengths (``radius``, ``pair_range``) are in normalised units: each cloud is centred on its
    centroid and divided by its characteristic radius (max distance of a point from the
    centroid), so the same model serves 2 cm and 15 cm objects.
    """

    architecture: str = "equivariant"  # "equivariant" | "pointnet" (the baseline)
    num_nodes: int = 256  # M, farthest-point samples per cloud
    normal_k: int = 16  # neighbours for PCA normals
    irreps_hidden: str = "32x0e + 8x1o + 4x2e"
    lmax: int = 2
    encoder_layers: int = 2
    pair_layers: int = 2
    radius: float = 0.5
    pair_range: float = 3.0
    num_radial: int = 8
    radial_hidden: int = 32
    avg_neighbors: float = 16.0
    readout_hidden: int = 64
    baseline_width: int = 64  # channels of the PointNet baseline (architecture "pointnet" only)
    # The head also sees each contact's own surface normal (PCA of the cloud's normal_k nearest
    # points): for K = 2 force closure hinges on the angle between it and the grasp line, which
    # the coarse M-node features only blur. Checkpoints without this key predate it (False).
    contact_normals: bool = True
    # Which way the contact normal points: "centroid" (away from the cloud's centroid, like the
    # node normals) or "grasp" (away from the centre of the grasp's contacts, i.e. out of the
    # material the fingers squeeze; right also on a torus' inner ring or inside a mug).
    contact_normal_sign: str = "grasp"
    # How PCA normals (nodes and contacts) get their sign: "centroid" (away from the cloud's
    # centroid: wrong wherever the surface faces it, a torus' inner ring, a mug's inside) or
    # "surface" (propagated over the surface, grasp_equi.orientation). Older checkpoints: "centroid".
    normal_orientation: str = "centroid"
    max_contact_distance: float = 1.0  # contacts farther than this (in object radii) from every cloud point are rejected;
    # generous because single-view clouds miss the back side that the far finger touches

    def __post_init__(self):
        if self.contact_normal_sign not in ("centroid", "grasp"):
            raise ValueError(f"contact_normal_sign must be 'centroid' or 'grasp'; got {self.contact_normal_sign!r}")
        if self.normal_orientation not in ("centroid", "surface"):
            raise ValueError(f"normal_orientation must be 'centroid' or 'surface'; got {self.normal_orientation!r}")

    @property
    def uses_contact_normals(self) -> bool:
        """Whether batches for this model need ``keys.CONTACT_NORMAL`` (the baseline ignores them)."""
        return self.contact_normals and self.architecture == "equivariant"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model config keys {unknown}")
        data = {"contact_normals": False, "contact_normal_sign": "centroid", "normal_orientation": "centroid",
                **data}  # older checkpoints
        return cls(**data)
