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
from grasp_equi.graph import PreparedCloud, as_grasp_list, collate, normalise_contacts, prepare_cloud
from grasp_equi.model import ModelConfig, build_model
from grasp_equi.validation import check_cloud, check_contacts_near_cloud, check_grasps

WEIGHTS_DIR = Path(__file__).parent / "weights"
SHIPPED_WEIGHTS = WEIGHTS_DIR / "grasp_equi.safetensors"


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
                 info: dict | None = None, grasp_chunk: int = 4096):
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.config = config
        self.name = name
        self.info = info or {}
        self.grasp_chunk = grasp_chunk
        self.timings: dict[str, float] = {}  # ms per stage of the last score() call

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

    # ---------------------------------------------------------------- scoring
    @contextmanager
    def _stage(self, name: str):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        start = time.perf_counter()
        yield
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.timings[name] = self.timings.get(name, 0.0) + (time.perf_counter() - start) * 1e3

    @torch.no_grad()
    def encode(self, points, normals=None) -> EncodedCloud:
        """Validate, sample, estimate normals and run the encoder once for this cloud."""
        pts, nrm = check_cloud(points, normals)
        with self._stage("sample"):
            pts_t = torch.as_tensor(pts, device=self.device)  # [N, 3] float64
            nrm_t = None if nrm is None else torch.as_tensor(nrm, device=self.device)
            cloud = prepare_cloud(pts_t, nrm_t, self.config.num_nodes, self.config.normal_k)
        with self._stage("encoder"):
            batch = collate([cloud], [[]])
            node_feats = self.model.encode(batch)
        return EncodedCloud(cloud, node_feats, pts_t)

    @torch.no_grad()
    def score_encoded(self, encoded: EncodedCloud, contacts) -> np.ndarray:
        """P(stable) for each grasp on an already-encoded cloud."""
        grasps = check_grasps(as_grasp_list(contacts))
        if not grasps:
            return np.zeros(0, dtype=np.float32)
        with self._stage("graph"):
            flat = torch.as_tensor(np.concatenate(grasps), device=self.device)  # [C, 3] float64
            local = normalise_contacts(flat, encoded.cloud)  # [C, 3]
            pts_local = normalise_contacts(encoded.points, encoded.cloud)  # [N, 3]
            min_dist = _nearest_distance(local, pts_local) * float(encoded.cloud.scale)  # [C]
            check_contacts_near_cloud(min_dist.cpu().numpy(), float(encoded.cloud.scale),
                                      self.config.max_contact_distance, [len(g) for g in grasps])
        logits = []
        with self._stage("head"):
            counts = [len(g) for g in grasps]
            offsets = np.concatenate([[0], np.cumsum(counts)])
            for lo in range(0, len(grasps), self.grasp_chunk):
                hi = min(lo + self.grasp_chunk, len(grasps))
                chunk = list(torch.split(local[offsets[lo]:offsets[hi]], counts[lo:hi]))
                batch = collate([encoded.cloud], [chunk])
                logits.append(self.model.score_grasps(batch, encoded.node_feats))
        return torch.sigmoid(torch.cat(logits)).float().cpu().numpy()  # [G]

    def score(self, points, contacts, normals=None) -> np.ndarray:
        """P(stable) ``(G,)`` for ``contacts`` ``(G, K, 3)`` (or a list of ``(K_i, 3)``) on
        ``points`` ``(N, 3)``; ``normals`` ``(N, 3)`` outward, estimated when None."""
        self.timings = {}
        grasps = check_grasps(as_grasp_list(contacts))
        return self.score_encoded(self.encode(points, normals), grasps)


def _nearest_distance(queries: torch.Tensor, cloud: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Distance from each query ``[Q, 3]`` to its nearest point in ``cloud`` ``[N, 3]``."""
    out = [exact_cdist(queries[i:i + chunk], cloud).min(dim=1).values for i in range(0, len(queries), chunk)]
    return torch.cat(out) if out else torch.zeros(0, device=queries.device)  # [Q]
