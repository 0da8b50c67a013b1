"""Model hyper-parameters, stored as JSON beside the weights in every checkpoint."""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass

FORMAT_VERSION = 1

# The schema every config is checked against before a model is built (so a checkpoint's
# metadata cannot ask for gigabytes): key -> (type, lowest, highest) or a tuple of choices.
# The ranges are generous (the shipped model is well inside) but bound every tensor size.
CHOICES = {
    "architecture": ("equivariant", "pointnet"),
    "contact_normal_sign": ("centroid", "grasp"),
    "normal_orientation": ("centroid", "surface", "harmonic"),
    "head": ("invariant", "convolution"),
    "contact_normal_source": ("pca", "reference"),
    "reference_sampling": ("radius_ranks", "farthest_point"),
}
RANGES: dict[str, tuple[type, float, float]] = {
    "num_nodes": (int, 4, 4096),
    "normal_k": (int, 3, 128),
    "lmax": (int, 0, 4),
    "encoder_layers": (int, 0, 8),
    "pair_layers": (int, 0, 8),
    "radius": (float, 1e-3, 10.0),
    "pair_range": (float, 1e-3, 100.0),
    "num_radial": (int, 1, 64),
    "radial_hidden": (int, 1, 1024),
    "avg_neighbors": (float, 1e-3, 1e4),
    "readout_hidden": (int, 1, 4096),
    "baseline_width": (int, 1, 4096),
    "ensemble_members": (int, 0, 64),
    "held_members": (int, 0, 64),
    "max_contact_distance": (float, 1e-3, 100.0),
    "cloud_points": (int, 0, 1 << 24),
    "num_references": (int, 4, 8192),
}
# Settings of the preprocessing only (how clouds become nodes, normals and contact normals): changing one
# changes no tensor of the network, so fine-tuning (``grasp-equi train --init ... --set KEY=VALUE``) may.
PREPROCESSING_KEYS = ("normal_k", "contact_normal_sign", "normal_orientation", "contact_normal_source", "cloud_points",
                      "reference_sampling", "num_references")
MAX_IRREPS_CHANNELS = 1024  # sum of multiplicities in irreps_hidden
_IRREPS = re.compile(r"^\s*(\d{1,12})x(\d)([eo])\s*$")


def _check_irreps(value, lmax: int) -> str:
    """``"32x0e + 8x1o"``-style text with bounded channels and l <= lmax, checked by hand
    (so no e3nn object is built from an unchecked string)."""
    if not isinstance(value, str) or len(value) > 256:
        raise ValueError("must be a string like '32x0e + 8x1o + 4x2e' (at most 256 characters)")
    terms = [_IRREPS.match(t) for t in value.split("+")]
    if not terms or not all(terms):
        raise ValueError(f"{value!r} is not a sum of terms like '32x0e'")
    channels = sum(int(t.group(1)) for t in terms)
    if not 1 <= channels <= MAX_IRREPS_CHANNELS:
        raise ValueError(f"{value!r} has {channels} channels; allowed 1..{MAX_IRREPS_CHANNELS}")
    if not any(t.group(2) == "0" and t.group(3) == "e" and int(t.group(1)) > 0 for t in terms):
        raise ValueError(f"{value!r} has no scalar (0e) channel for the readout")
    if max(int(t.group(2)) for t in terms) > lmax:
        raise ValueError(f"{value!r} has an l above lmax={lmax}")
    return value


def _check_value(key: str, value):
    """``value`` of ``key`` as its schema type; ``ValueError`` (without the key) when it does not fit."""
    if key in CHOICES:
        if not isinstance(value, str) or value not in CHOICES[key]:
            raise ValueError(f"must be one of {list(CHOICES[key])}; got {value!r}")
        return value
    if key == "contact_normals":
        if not isinstance(value, bool):
            raise ValueError(f"must be true or false; got {value!r}")
        return value
    kind, lo, hi = RANGES[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        raise ValueError(f"must be {'an integer' if kind is int else 'a number'}; got {value!r}")
    if not math.isfinite(value) or not lo <= value <= hi:
        raise ValueError(f"must be in [{lo:g}, {hi:g}]; got {value!r}")
    return kind(value)


class ConfigError(ValueError):
    """A model config value outside the schema; ``key`` names it."""

    def __init__(self, key: str, problem: str):
        super().__init__(f"model config {key!r} {problem}")
        self.key, self.problem = key, problem


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
    # "surface" (propagated over the surface, grasp_equi.orientation) or "harmonic" (the same evidence
    # in one least-squares solve, all torch: grasp_equi.orientation_solve). Older checkpoints: "centroid".
    normal_orientation: str = "centroid"
    # The grasp head: "invariant" (invariants of each contact's equivariant features, small MLPs per
    # grasp: ~5x cheaper per grasp; its MLP width is readout_hidden) or "convolution" (tensor-product
    # layers per grasp; older checkpoints; the only user of pair_layers and pair_range).
    head: str = "invariant"
    # Where contact normals come from: "pca" (PCA of the normal_k cloud points around the contact) or
    # "reference" (the weighted mean of the oriented normals at the nearest reference points of the
    # surface orientation: no k-NN search in the full cloud per contact, and the same patch size
    # whatever the cloud's density; needs normal_orientation "surface"). Older checkpoints: "pca".
    contact_normal_source: str = "pca"
    # Readouts of a last-layer ensemble on the head's pooled grasp features (0: none); with members,
    # GraspScorer.score(..., return_std=True) gives their mean and spread (grasp_equi.model.ensemble).
    ensemble_members: int = 0
    # Readouts of P(held) (the object stays in the hand through physics trials: grasp-equi label-physics)
    # on the same pooled features, trained by grasp-equi fit-held; 0: the model answers P(force closure)
    # only. With members, GraspScorer.score returns their mean P(held) by default (grasp_equi.model.ensemble).
    # The equivariant network only (the PointNet baseline builds none: another value is a ConfigError).
    held_members: int = 0
    # read from older checkpoints and validated, no longer used for scoring: whether a contact touches
    # the cloud is decided in local point spacings (grasp_equi.contacts)
    max_contact_distance: float = 1.0
    # Clouds with more distinct points than this are thinned to this many before sampling, by an
    # order-free, rotation-invariant subsample (``grasp_equi.graph.normalised_cloud``): the density the
    # model was trained at, and preprocessing that costs the same for 2k and 200k points. 0: never
    # (older checkpoints).
    cloud_points: int = 0
    # The reference points of the surface orientation ("surface"/"harmonic"): "radius_ranks" (1,024 points
    # spread by the rank of their distance from the centroid; older checkpoints) or "farthest_point" (the
    # first num_references farthest-point samples, evenly spread; the nodes are the first num_nodes of
    # them, so the node normals come with the references' at no extra cost).
    reference_sampling: str = "radius_ranks"
    num_references: int = 1024

    def __post_init__(self):
        """Check every value against the schema (``ConfigError`` names the key)."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            try:
                if f.name == "irreps_hidden":
                    lmax = self.lmax if isinstance(self.lmax, int) and not isinstance(self.lmax, bool) else 4
                    _check_irreps(value, lmax)
                else:
                    object.__setattr__(self, f.name, _check_value(f.name, value))
            except ValueError as err:
                raise ConfigError(f.name, str(err)) from None
        if self.contact_normal_source == "reference" and self.normal_orientation == "centroid":
            raise ConfigError("contact_normal_source", "'reference' needs normal_orientation 'surface' or 'harmonic'")
        if self.held_members and self.architecture != "equivariant":  # the baseline builds no P(held) readouts
            raise ConfigError("held_members", f"must be 0 for architecture {self.architecture!r} (P(held) readouts "
                                              "need the 'equivariant' network)")
        if self.head == "invariant" and self.architecture == "equivariant":
            wrong = sorted({t.strip().split("x")[1] for t in self.irreps_hidden.split("+")} - {"0e", "1o", "2e"})
            if wrong:
                raise ConfigError("irreps_hidden", f"the invariant head takes 0e, 1o and 2e features; got {wrong}")

    @property
    def uses_contact_normals(self) -> bool:
        """Whether batches for this model need ``keys.CONTACT_NORMAL`` (the baseline ignores them)."""
        return self.contact_normals and self.architecture == "equivariant"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        if not isinstance(data, dict):
            raise ValueError(f"model config must be a JSON object; got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(str(unknown[0]), f"is not a model config key (unknown keys {unknown[:5]})")
        data = {"contact_normals": False, "contact_normal_sign": "centroid", "normal_orientation": "centroid",
                "head": "convolution", "contact_normal_source": "pca", **data}  # older checkpoints
        return cls(**data)
