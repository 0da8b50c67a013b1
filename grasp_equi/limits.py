"""Resource and plausibility limits on user input, in one place (defaults, checks, messages).

Every limit is checked on sizes that are known *before* the data is allocated or processed:
a request's grasp count and contacts per grasp, a cloud's point count, a file's (decompressed)
size. With K bounded, a request's memory is linear in its number of grasps and contacts (the
head builds K x (K - 1) contact pairs per grasp). The node exposes each limit as a parameter,
``grasp-equi score`` as an option; see docs/limits.md.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

MAX_CONTACTS_PER_GRASP = 16  # K: multi-finger hands have <= 5; the head's cost grows with K^2
MAX_GRASPS = 100_000  # G per request (the head runs in chunks, so memory is linear in G)
MAX_POINTS = 1_000_000  # N per cloud
MAX_FILE_BYTES = 256 * 2**20  # decompressed bytes of one array read from a file
MIN_OBJECT_RADIUS = 0.005  # m, characteristic radius (max distance of a point from the centroid)
MAX_OBJECT_RADIUS = 1.0  # m
# A cloud whose second principal extent is below this fraction of its radius is a line (or
# two spots), not an object: nothing can be grasped on it.
MIN_THICKNESS_RATIO = 1e-3


class ObjectSizeError(ValueError):
    """A cloud whose size is outside the plausible object range (often a cloud not in metres)."""


@dataclass(frozen=True)
class Limits:
    """Input limits; every field must be positive (radii in metres, sizes in counts/bytes)."""

    max_contacts_per_grasp: int = MAX_CONTACTS_PER_GRASP
    max_grasps: int = MAX_GRASPS
    max_points: int = MAX_POINTS
    max_file_bytes: int = MAX_FILE_BYTES
    min_object_radius: float = MIN_OBJECT_RADIUS
    max_object_radius: float = MAX_OBJECT_RADIUS

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            # ints are finite however large (np.isfinite refuses one beyond int64 with a TypeError)
            finite = isinstance(value, int) or isinstance(value, float) and math.isfinite(value)
            if isinstance(value, bool) or not finite or value <= 0:
                raise ValueError(f"limit {f.name} must be a positive number; got {value!r}")
        if self.max_contacts_per_grasp < 2:
            raise ValueError(f"limit max_contacts_per_grasp must be >= 2; got {self.max_contacts_per_grasp}")
        if self.min_object_radius >= self.max_object_radius:
            raise ValueError(f"min_object_radius {self.min_object_radius} must be below "
                             f"max_object_radius {self.max_object_radius}")

    def check_points(self, num_points: int, what: str = "cloud") -> None:
        """``ValueError`` if a cloud of ``num_points`` points is too large (call before decoding)."""
        if num_points > self.max_points:
            raise ValueError(f"{what} has {num_points} points, more than max_points={self.max_points}")

    def check_grasp_sizes(self, counts, ids=None) -> None:
        """``counts`` ``(G,)``: contacts of each grasp (``ids`` ``(G,)``: their grasp_id, for the
        message); ``ValueError`` above the limits."""
        counts = np.asarray(counts)
        if len(counts) > self.max_grasps:
            raise ValueError(f"{len(counts)} grasps in one request, more than max_grasps={self.max_grasps}")
        too_many = np.flatnonzero(counts > self.max_contacts_per_grasp)
        if len(too_many):
            i = int(too_many[0])
            name = f"grasp {i}" if ids is None else f"grasp_id {int(ids[i])}"
            raise ValueError(f"{name} has {int(counts[i])} contacts, more than max_contacts_per_grasp="
                             f"{self.max_contacts_per_grasp} (memory grows with K^2)")

    def check_file_bytes(self, num_bytes: int, what: str) -> None:
        if num_bytes > self.max_file_bytes:
            raise ValueError(f"{what}: {num_bytes} bytes of data, more than max_file_bytes={self.max_file_bytes} "
                             f"({self.max_file_bytes / 2**20:.0f} MiB)")

    def check_object_size(self, points: np.ndarray) -> float:
        """The characteristic radius (m) of ``points`` ``(N, 3)`` (finite, N >= 1); ``ValueError``
        when it is outside ``[min_object_radius, max_object_radius]`` or the cloud is a line."""
        centred = points - np.ascontiguousarray(points.T).mean(axis=1)  # [N, 3] (a contiguous mean: ~20x faster)
        radius = float(np.sqrt(np.einsum("ij,ij->i", centred, centred).max()))
        if not np.isfinite(radius):
            raise ValueError("the cloud's extent overflows float64: coordinates are not metres on an object")
        if radius < self.min_object_radius or radius > self.max_object_radius:
            raise ObjectSizeError(
                f"object radius {radius:.4g} m (max distance of a point from the centroid) is outside the "
                f"plausible range [{self.min_object_radius:g}, {self.max_object_radius:g}] m; are the units metres? "
                "(change min_object_radius/max_object_radius if this object is real)")
        # principal extents: a rotation-invariant measure (no decision on raw coordinates)
        scaled = centred / radius  # [N, 3]
        second = float(np.sqrt(max(np.linalg.eigvalsh(scaled.T @ scaled / len(points))[1], 0.0)))
        if second < MIN_THICKNESS_RATIO:
            raise ValueError(f"the cloud is a line or a few spots, not an object surface (second principal "
                             f"extent {second * radius:.3g} m for a radius of {radius:.4g} m)")
        return radius
