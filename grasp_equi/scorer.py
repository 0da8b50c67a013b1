"""``GraspScorer``: the public API (checkpoint loading, device choice, batched scoring)."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from grasp_equi import keys
from grasp_equi.checkpoint import CheckpointError, load_weights, read_checkpoint
from grasp_equi.geometry import exact_cdist
from grasp_equi.graph import (PreparedCloud, as_grasp_list, collate, collate_grasps, contact_normals,
                              normalise_contacts, prepare_cloud)
from grasp_equi.model import ModelConfig, build_model
from grasp_equi.paths import SHIPPED_WEIGHTS, WEIGHTS_DIR  # noqa: F401  (re-exported)
from grasp_equi.validation import check_cloud, check_contacts_near_cloud, check_grasps


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else is passed to torch."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    return dev


@dataclass
class EncodedCloud:
    """A cloud after preprocessing and the encoder; score any number of grasps against it."""

    cloud: PreparedCloud
    node_feats: torch.Tensor  # [M, hidden.dim]
    points: torch.Tensor  # [N, 3] float64, input frame (for the contact-distance check)


class GraspScorer:
    """Scores grasps with a trained (or untrained) network.

    >>> scorer = GraspScorer.from_checkpoint()          # shipped weights, device "auto"
    >>> p = scorer.score(points, contacts)               # (N,3), (G,K,3) -> (G,) in [0, 1]
    """

    def __init__(self, model: torch.nn.Module, config: ModelConfig, device="auto", name: str = "untrained",
                 info: dict | None = None, grasp_chunk: int | None = None):
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.config = config
        self.name = name
        self.info = info or {}
        # Grasps per head pass. Each contact gathers ~40 object nodes, so a pass holds about
        # 80 x 440 floats per grasp: 4096 grasps = ~1.9 GB of host memory and cache misses on a
        # CPU (256 there is as fast or faster, with ~0.6 GB peak); a GPU wants big batches.
        self.grasp_chunk = grasp_chunk or (4096 if self.device.type == "cuda" else 256)
        self.timings: dict[str, float] = {}  # ms per stage of the last score() call
        # the "sample" stage split into "sampling" (normalise + FPS) and "normals" (kNN + PCA)
        self.sample_timings: dict[str, float] = {}

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_checkpoint(cls, path=None, device="auto") -> "GraspScorer":
        """Load a ``.safetensors`` checkpoint; ``None`` = the shipped weights."""
        path = Path(path) if path is not None else SHIPPED_WEIGHTS
        if not path.is_file() and path == SHIPPED_WEIGHTS:
            raise CheckpointError(f"no shipped weights at {path}: train them with `make train` or pass a path")
        state, config, info = read_checkpoint(path)
        model = build_model(config)
        load_weights(path, model, state)
        return cls(model, config, device, name=path.name, info=info)

    @classmethod
    def untrained(cls, seed: int = 0, device="auto", **config_overrides) -> "GraspScorer":
        """Randomly initialised network (for tests and benchmarks)."""
        config = ModelConfig(**config_overrides)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = build_model(config)
        return cls(model, config, device, name=f"untrained(seed={seed})")

    def compile(self) -> "GraspScorer":
        """Opt in to ``torch.compile`` of the tensor-product kernels (see ``model/compile.py``):
        10-30 % less CPU time per call after a first call that compiles for tens of seconds."""
        from grasp_equi.model.compile import compile_tensor_products

        compile_tensor_products(self.model)
        return self

    # ---------------------------------------------------------------- scoring
    @contextmanager
    def _stage(self, name: str, into: dict[str, float] | None = None):
        """Add the block's wall time (ms, GPU work included) to ``into[name]`` (default: timings)."""
        into = self.timings if into is None else into
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        start = time.perf_counter()
        yield
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        into[name] = into.get(name, 0.0) + (time.perf_counter() - start) * 1e3

    @torch.no_grad()
    def encode(self, points, normals=None) -> EncodedCloud:
        """Validate, sample, estimate normals and run the encoder once for this cloud."""
        pts, nrm = check_cloud(points, normals)
        self.sample_timings = {}
        with self._stage("sample"):
            pts_t = torch.as_tensor(pts, device=self.device)  # [N, 3] float64
            nrm_t = None if nrm is None else torch.as_tensor(nrm, device=self.device)
            cloud = prepare_cloud(pts_t, nrm_t, self.config.num_nodes, self.config.normal_k,
                                  stage=lambda name: self._stage(name, self.sample_timings),
                                  orientation=self.config.normal_orientation)
        with self._stage("encoder"):
            batch = collate([cloud], [[]])
            node_feats = self.model.encode(batch)
        return EncodedCloud(cloud, node_feats, pts_t)

    @torch.no_grad()
    def score_encoded(self, encoded: EncodedCloud, contacts) -> np.ndarray:
        """P(stable) for each grasp on an already-encoded cloud."""
        grasps = _validated_grasps(contacts)
        if not len(grasps.counts):
            return np.zeros(0, dtype=np.float32)
        with self._stage("graph"):
            flat = torch.as_tensor(grasps.flat, device=self.device)  # [C, 3] float64
            local = normalise_contacts(flat, encoded.cloud)  # [C, 3]
            min_dist = _contact_distances(local, encoded, self.config.max_contact_distance)  # [C]
            check_contacts_near_cloud(min_dist, float(encoded.cloud.scale),
                                      self.config.max_contact_distance, grasps.counts)
            normals = (contact_normals(local, _index(encoded), self.config.normal_k, encoded.cloud.orientation)
                       if self.config.uses_contact_normals else None)  # [C, 3] or None
        logits = []
        with self._stage("head"):
            counts = torch.as_tensor(grasps.counts, device=self.device)  # [G]
            offsets = np.concatenate([[0], np.cumsum(grasps.counts)])  # [G + 1]
            for lo in range(0, len(grasps.counts), self.grasp_chunk):
                hi = min(lo + self.grasp_chunk, len(grasps.counts))
                rows = slice(offsets[lo], offsets[hi])
                batch = collate_grasps(encoded.cloud, local[rows], counts[lo:hi],
                                       None if normals is None else normals[rows])
                logits.append(self.model.score_grasps(batch, encoded.node_feats))
        return torch.sigmoid(torch.cat(logits)).float().cpu().numpy()  # [G]

    def score(self, points, contacts, normals=None) -> np.ndarray:
        """P(stable) ``(G,)`` for ``contacts`` ``(G, K, 3)`` (or a list of ``(K_i, 3)``) on
        ``points`` ``(N, 3)``; ``normals`` ``(N, 3)`` outward, estimated when None."""
        self.timings = {}
        grasps = _validated_grasps(contacts)  # bad grasps fail before the cloud is encoded
        return self.score_encoded(self.encode(points, normals), grasps)


@dataclass
class _Grasps:
    """Validated grasps, flat: contacts ``flat`` ``[C, 3]`` float64 and K of each grasp ``counts`` ``[G]``."""

    flat: np.ndarray
    counts: np.ndarray


def _validated_grasps(contacts) -> _Grasps:
    """Validate ``(G, K, 3)`` arrays in one vectorised pass (same messages as ``check_grasps``,
    which a Python loop over thousands of grasps would make the slowest stage on a GPU);
    lists of ``(K_i, 3)`` arrays go through ``check_grasps``."""
    if isinstance(contacts, _Grasps):
        return contacts
    if torch.is_tensor(contacts):
        contacts = contacts.detach().cpu().numpy()
    if isinstance(contacts, np.ndarray) and contacts.ndim == 3 and contacts.dtype.kind in "fiu":
        num_grasps, k, dim = contacts.shape
        if num_grasps and dim != 3:
            raise ValueError(f"grasp 0 must have shape (K, 3); got {(k, dim)}")
        if num_grasps and k < 2:
            raise ValueError(f"grasp 0 has {k} contact(s); a grasp needs K >= 2")
        arr = contacts.astype(np.float64, copy=False)
        bad = ~np.isfinite(arr).all(axis=(1, 2))  # [G]
        if bad.any():
            raise ValueError(f"grasp {int(np.argmax(bad))} has non-finite (NaN/inf) contact coordinates")
        return _Grasps(arr.reshape(-1, 3), np.full(num_grasps, k, dtype=np.int64))
    grasps = check_grasps(as_grasp_list(contacts))
    flat = np.concatenate(grasps) if grasps else np.zeros((0, 3))
    return _Grasps(flat, np.array([len(g) for g in grasps], dtype=np.int64))


def _index(encoded: EncodedCloud):
    """The neighbour search over the normalised cloud (built by ``prepare_cloud``; rebuilt if absent)."""
    if encoded.cloud.index is None:
        from grasp_equi.geometry import NeighbourIndex

        encoded.cloud.index = NeighbourIndex(normalise_contacts(encoded.points, encoded.cloud))  # [N, 3]
    return encoded.cloud.index


def _contact_distances(local: torch.Tensor, encoded: EncodedCloud, limit: float) -> np.ndarray:
    """Each contact's distance to the cloud (input units) where it matters for the limit check.

    ``local`` ``[C, 3]`` are contacts in the cloud's normalised frame. The sampled nodes are
    cloud points (computed bit for bit like the cloud's own normalised points), so the
    distance to the nearest node is an upper bound: a contact within ``limit`` of a node
    passes without looking at the N points. Only the rest (normally none) get the exact
    O(N) search, so the check costs ``C x M`` instead of ``C x N`` distances. Returned
    values are exact for contacts beyond the limit, upper bounds below it.
    """
    scale = float(encoded.cloud.scale)
    min_dist = _nearest_distance(local, encoded.cloud.node_pos) * scale  # [C] upper bounds
    unsure = torch.nonzero(min_dist > limit * scale, as_tuple=True)[0]  # [c_u]
    if unsure.numel():
        pts_local = normalise_contacts(encoded.points, encoded.cloud)  # [N, 3]
        min_dist[unsure] = _nearest_distance(local[unsure], pts_local) * scale
    return min_dist.cpu().numpy()


def _nearest_distance(queries: torch.Tensor, cloud: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Distance from each query ``[Q, 3]`` to its nearest point in ``cloud`` ``[N, 3]``."""
    out = [exact_cdist(queries[i:i + chunk], cloud).min(dim=1).values for i in range(0, len(queries), chunk)]
    return torch.cat(out) if out else torch.zeros(0, device=queries.device)  # [Q]
