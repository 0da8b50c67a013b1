"""``GraspScorer``: the public API (checkpoint loading, device choice, batched scoring)."""

from __future__ import annotations

import numbers
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from grasp_equi import keys
from grasp_equi.checkpoint import CheckpointError, load_weights, read_header
from grasp_equi.contacts import off_surface_reasons, reference_spacing, surface_gaps
from grasp_equi.geometry import NeighbourIndex
from grasp_equi.limits import Limits
from grasp_equi.graph import (PreparedCloud, as_grasp_list, cloud_options, collate, collate_grasps, contact_normals,
                              normalise_contacts, prepare_cloud)
from grasp_equi.model import ModelConfig, build_model
from grasp_equi.paths import SHIPPED_WEIGHTS, WEIGHTS_DIR  # noqa: F401  (re-exported)
from grasp_equi.validation import check_cloud, check_grasps


# One CPU thread per scoring call by default. The stages are small tensors (a 20k-point cloud, a few
# thousand grasps) where a second thread saves little on a quiet machine, and on a busy one torch's
# OpenMP workers spin-wait for a core another process holds: one call went from ~0.2 s to 11 s with
# 2 threads beside a CPU-bound process on a 2-core machine (``grasp-equi bench --contention``).
DEFAULT_THREADS = 1


def max_threads() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one): the most threads a
    scoring call may ask for."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


@contextmanager
def cpu_threads(threads: int | None):
    """Run the block with ``threads`` torch CPU threads (None: unchanged), restoring the previous setting.

    ``torch.set_num_threads`` is process-wide for reading and per Python thread for OpenMP: calls
    that overlap in several Python threads may leave one of those threads at ``threads`` after
    its call (scores are not affected)."""
    before = torch.get_num_threads()
    if threads is None or threads == before:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a ``torch.device``
    of those types. ``ValueError`` for anything else (mps, meta, ...), for CUDA on a machine without
    it and for a CUDA index the machine does not have: the scorer runs on CPU and CUDA only."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device {device!r} is not a device (use auto, cpu, cuda or cuda:N): {err}") from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device {device!r}: the scorer runs on cpu or cuda, not {dev.type}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return dev


@dataclass
class EncodedCloud:
    """A cloud after preprocessing and the encoder; score any number of grasps against it."""

    cloud: PreparedCloud
    node_feats: torch.Tensor  # [M, hidden.dim]
    points: torch.Tensor  # [N, 3] float64, the validated input points, input frame


class GraspScorer:
    """Scores grasps with a trained (or untrained) network.

    >>> scorer = GraspScorer.from_checkpoint()          # shipped weights, device "auto"
    >>> p = scorer.score(points, contacts)               # (N,3), (G,K,3) -> (G,) in [0, 1]

    On the CPU each call runs with ``threads`` torch threads (default ``DEFAULT_THREADS`` = 1;
    None leaves torch's setting alone) and restores the caller's setting afterwards.
    """

    def __init__(self, model: torch.nn.Module, config: ModelConfig, device="auto", name: str = "untrained",
                 info: dict | None = None, grasp_chunk: int | None = None, limits: Limits | None = None,
                 threads: int | None = DEFAULT_THREADS):
        self.device = resolve_device(device)
        # torch CPU threads while scoring (None: leave torch's setting alone). See DEFAULT_THREADS.
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, numbers.Integral)
                                    or threads < 1):
            raise ValueError(f"threads must be a positive integer or None; got {threads!r}")
        if threads is not None and threads > max_threads():  # thousands of OpenMP workers can crash the process
            raise ValueError(f"threads={threads} is more than this machine's {max_threads()} CPUs")
        self.threads = None if threads is None else int(threads)
        self.limits = limits or Limits()  # input sizes and plausible object radii (grasp_equi.limits)
        self.model = model.to(self.device).eval()
        self.config = config
        self.name = name
        self.info = info or {}
        # Grasps per head pass. Each contact gathers ~40 object nodes, so a pass holds about
        # 80 x 440 floats per grasp: 4096 grasps = ~1.9 GB of host memory and cache misses on a
        # CPU (256 there is as fast or faster, with ~0.6 GB peak); a GPU wants big batches.
        # The invariant head holds ~3k floats per grasp: 2,048 grasps per pass is ~25 MB.
        cpu_chunk = 2048 if config.head == "invariant" and config.architecture == "equivariant" else 256
        self.grasp_chunk = grasp_chunk or (4096 if self.device.type == "cuda" else cpu_chunk)
        self.timings: dict[str, float] = {}  # ms per stage of the last score() call
        self.stray_points = 0  # points of the last encoded cloud left out as stray (grasp_equi.outliers)
        self.reasons: list[str | None] = []  # per grasp of the last call: why it was not scored (None: scored)
        # the "sample" stage split into "sampling" (normalise + FPS) and "normals" (kNN + PCA)
        self.sample_timings: dict[str, float] = {}

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_checkpoint(cls, path=None, device="auto", limits: Limits | None = None,
                        threads: int | None = DEFAULT_THREADS) -> "GraspScorer":
        """Load a ``.safetensors`` checkpoint; ``None`` = the shipped weights. Raises
        ``CheckpointError`` (naming the file and the key) for anything unusable."""
        path = Path(path) if path is not None else SHIPPED_WEIGHTS
        if not path.is_file() and path == SHIPPED_WEIGHTS:
            raise CheckpointError(f"no shipped weights at {path}: train them with `make train` or pass a path")
        config, info, _, _ = read_header(path)  # schema-checked config; no tensor read yet
        try:
            model = build_model(config)
        except (ValueError, RuntimeError, AssertionError) as err:
            raise CheckpointError(f"checkpoint {path}: its model config cannot be built ({err})") from None
        load_weights(path, model)  # shapes checked against the header, then finite weights read
        return cls(model, config, device, name=path.name, info=info, limits=limits, threads=threads)

    @classmethod
    def untrained(cls, seed: int = 0, device="auto", limits: Limits | None = None, threads: int | None = DEFAULT_THREADS,
                  **config_overrides) -> "GraspScorer":
        """Randomly initialised network (for tests and benchmarks)."""
        config = ModelConfig(**config_overrides)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = build_model(config)
        return cls(model, config, device, name=f"untrained(seed={seed})", limits=limits, threads=threads)

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
        """Validate, sample, estimate normals and run the encoder once for this cloud.
        ``ValueError`` for a bad cloud, one over ``limits.max_points`` or outside the plausible
        object size (the message gives the measured radius)."""
        pts, nrm = check_cloud(points, normals)
        self.limits.check_points(len(pts), "points")
        self.limits.check_object_size(pts)
        self.sample_timings = {}
        with cpu_threads(self.threads if self.device.type == "cpu" else None):
            return self._encode(pts, nrm)

    def _encode(self, pts: np.ndarray, nrm: np.ndarray | None) -> EncodedCloud:
        with self._stage("sample"):
            pts_t = torch.as_tensor(pts, device=self.device)  # [N, 3] float64
            nrm_t = None if nrm is None else torch.as_tensor(nrm, device=self.device)
            cloud = prepare_cloud(pts_t, nrm_t, stage=lambda name: self._stage(name, self.sample_timings),
                                  **cloud_options(self.config))
            self.stray_points = cloud.stray_points
        with self._stage("encoder"):
            batch = collate([cloud], [[]])
            node_feats = self.model.encode(batch)
        return EncodedCloud(cloud, node_feats, pts_t)

    @property
    def outputs(self) -> tuple[str, ...]:
        """What this model can answer (``keys.OUTPUTS`` names), its default first: ``"held"`` (P(held),
        from physics trials) when it has those readouts, then ``"force_closure"``."""
        held = (keys.OUTPUT_HELD,) if getattr(self.model, "held", None) is not None else ()
        return held + (keys.OUTPUT_FORCE_CLOSURE,)

    def _check_output(self, output: str | None, return_std: bool) -> str:
        """The output to compute (``None``: the default); ``ValueError`` for one this model lacks."""
        output = self.outputs[0] if output is None else output
        if output not in self.outputs:
            raise ValueError(f"{self.name} has no output {output!r}; it answers {list(self.outputs)}"
                             + (" (fit P(held) with `grasp-equi fit-held`)" if output == keys.OUTPUT_HELD
                                and self.config.architecture == "equivariant" else ""))
        if return_std and output == keys.OUTPUT_FORCE_CLOSURE and getattr(self.model, "ensemble", None) is None:
            raise ValueError(f"{self.name} has no ensemble, so no spread for P(force closure): load a checkpoint "
                             "with one (the shipped grasp_equi/weights/ensembles/grasp_equi_ensemble.safetensors) "
                             "or fit one with `grasp-equi fit-ensemble`")
        return output

    @torch.no_grad()
    def score_encoded(self, encoded: EncodedCloud, contacts, return_reasons: bool = False, return_std: bool = False,
                      output: str | None = None):
        """P ``(G,)`` for each grasp on an already-encoded cloud (see ``score``)."""
        output = self._check_output(output, return_std)
        grasps = _validated_grasps(contacts, self.limits)
        scores = np.full(len(grasps.counts), np.nan, dtype=np.float32)  # [G]
        spread = np.full(len(grasps.counts), np.nan, dtype=np.float32)  # [G]
        reasons: list[str | None] = [None] * len(grasps.counts)
        if len(grasps.counts):
            with cpu_threads(self.threads if self.device.type == "cpu" else None), self._stage("graph"):
                local, normals, judged, reasons = self._prepare_contacts(encoded, grasps)
            with cpu_threads(self.threads if self.device.type == "cpu" else None), self._stage("head"):
                if judged.any():
                    scores[judged], spread[judged] = self._head(encoded, local, normals, grasps.counts[judged],
                                                                output)
        self.reasons = reasons
        out = (scores, spread) if return_std else (scores,)
        out += (reasons,) if return_reasons else ()
        return out if len(out) > 1 else scores

    def score(self, points, contacts, normals=None, return_reasons: bool = False, return_std: bool = False,
              output: str | None = None):
        """P ``(G,)`` float32 for ``contacts`` ``(G, K, 3)`` (or a list of ``(K_i, 3)``, metres)
        on ``points`` ``(N, 3)``; ``normals`` ``(N, 3)`` outward, estimated when None.

        ``output`` (``keys.OUTPUTS``; ``None``: ``self.outputs[0]``): ``"held"``, P(the object stays in
        the hand through close, lift and shake), learned from physics trials, the default of models
        that have it (the shipped one); ``"force_closure"``, P(robust force closure), the analytic
        label. ``ValueError`` for an output the model lacks.

        A grasp the model cannot judge (a contact that does not touch the surface the cloud shows:
        inside the object, on the hidden side of a single view, in other units) scores NaN; its
        reason (a string starting with ``"off_surface"``) is in ``reasons``, returned as
        ``(scores, reasons)`` with ``return_reasons=True`` and kept in ``self.reasons`` (None for
        judged grasps). Raises ``ValueError`` for malformed input (shapes, NaN/inf, K < 2, an
        empty or single-point cloud).

        A checkpoint with a last-layer ensemble (``ModelConfig.ensemble_members``) scores force
        closure with the mean of its members' probabilities, P(held) always is the mean of its
        ``held_members`` readouts; ``return_std=True`` also returns their spread σ ``(G,)``
        (``(scores, std)``, or ``(scores, std, reasons)``), invariant like the scores. ``ValueError``
        for ``return_std`` on force closure without an ensemble.

        Invariance: the same arrays moved rigidly (rotation, reflection, translation) score the
        same to float32 rounding, for any cloud, including grids, symmetric meshes and repeated
        points (see ``prepare_cloud``). Reordering the points changes nothing for clouds without
        exact distance ties; with ties it may pick other, equivalent nodes.
        """
        self.timings = {}
        self._check_output(output, return_std)  # bad arguments and grasps fail before the cloud is encoded
        grasps = _validated_grasps(contacts, self.limits)
        return self.score_encoded(self.encode(points, normals), grasps, return_reasons, return_std, output)

    def _prepare_contacts(self, encoded: EncodedCloud, grasps: "_Grasps"):
        """``(local [c, 3] float32, normals [c, 3] | None, judged [G] bool, reasons)`` for the grasps whose
        contacts touch the cloud (``grasp_equi.contacts``); the rest get a reason and no score."""
        flat = torch.as_tensor(grasps.flat, device=self.device)  # [C, 3] float64
        local64 = normalise_contacts(flat, encoded.cloud, torch.float64)  # [C, 3]
        index, orientation = _index(encoded), encoded.cloud.orientation
        if orientation is not None and orientation.spacing is None:  # built from given normals: no PCA query
            orientation.spacing = reference_spacing(orientation.spacing_points, index)
        # one query of the reference points serves the spacing and (reference source) the normals
        around = orientation.neighbours(local64) if orientation is not None and orientation.spacing is not None \
            else None
        gap, spacing = surface_gaps(local64, index, orientation, around)  # [C], [C]
        reasons = off_surface_reasons(gap.cpu().numpy(), spacing.cpu().numpy(), grasps.counts,
                                      float(encoded.cloud.scale))
        judged = np.array([r is None for r in reasons], dtype=bool)  # [G]
        rows = torch.as_tensor(np.repeat(judged, grasps.counts), device=self.device)  # [C]
        normals = None
        if self.config.uses_contact_normals and self.config.contact_normal_source == "reference" and around is not None:
            normals = orientation.normals_at(local64, around)[rows].to(torch.float32)  # [c, 3]
        elif self.config.uses_contact_normals:
            normals = contact_normals(local64[rows], index, self.config.normal_k, orientation,
                                      self.config.contact_normal_source)  # [c, 3]
        local64 = local64[rows]  # [c, 3]
        return local64.to(torch.float32), normals, judged, reasons

    def _head(self, encoded: EncodedCloud, local: torch.Tensor, normals: torch.Tensor | None,
              counts: np.ndarray, output: str) -> tuple[np.ndarray, np.ndarray]:
        """``(P [g], spread [g])`` of ``output`` for contacts ``local`` ``[c, 3]`` (grasps of ``counts``), in
        chunks: the readouts' mean probability and their standard deviation (NaN for a single readout)."""
        counts_t = torch.as_tensor(counts, device=self.device)  # [g]
        offsets = np.concatenate([[0], np.cumsum(counts)])  # [g + 1]
        logits = self._logits_of(output)
        probs = []
        for lo in range(0, len(counts), self.grasp_chunk):
            hi = min(lo + self.grasp_chunk, len(counts))
            rows = slice(offsets[lo], offsets[hi])
            batch = collate_grasps(encoded.cloud, local[rows], counts_t[lo:hi],
                                   None if normals is None else normals[rows])
            probs.append(torch.sigmoid(logits(batch, encoded.node_feats)))  # [M, g_chunk]
        p = torch.cat(probs, dim=1).double()  # [M, g]
        spread = p.std(dim=0, unbiased=False) if len(p) > 1 else torch.full_like(p[0], float("nan"))
        return p.mean(dim=0).float().cpu().numpy(), spread.float().cpu().numpy()

    def _logits_of(self, output: str):
        """``(batch, node_feats) -> logits [M, g]`` of the readouts that answer ``output``."""
        if output == keys.OUTPUT_HELD:
            return self.model.held_logits
        if getattr(self.model, "ensemble", None) is not None:
            return self.model.ensemble_logits
        return lambda batch, node_feats: self.model.score_grasps(batch, node_feats)[None]  # [1, g]


@dataclass
class _Grasps:
    """Validated grasps, flat: contacts ``flat`` ``[C, 3]`` float64 and K of each grasp ``counts`` ``[G]``."""

    flat: np.ndarray
    counts: np.ndarray


def _validated_grasps(contacts, limits: Limits) -> _Grasps:
    """Validate ``(G, K, 3)`` arrays in one vectorised pass (same messages as ``check_grasps``,
    which a Python loop over thousands of grasps would make the slowest stage on a GPU);
    lists of ``(K_i, 3)`` arrays go through ``check_grasps``. G and each K are checked against
    ``limits`` from the shapes alone, before anything is converted or allocated."""
    if isinstance(contacts, _Grasps):
        limits.check_grasp_sizes(contacts.counts)
        return contacts
    if torch.is_tensor(contacts):
        contacts = contacts.detach().cpu().numpy()
    if isinstance(contacts, np.ndarray) and contacts.ndim == 3 and contacts.dtype.kind in "fiu":
        num_grasps, k, dim = contacts.shape
        limits.check_grasp_sizes(np.full(num_grasps, k))
        if num_grasps and dim != 3:
            raise ValueError(f"grasp 0 must have shape (K, 3); got {(k, dim)}")
        if num_grasps and k < 2:
            raise ValueError(f"grasp 0 has {k} contact(s); a grasp needs K >= 2")
        arr = contacts.astype(np.float64, copy=False)
        bad = ~np.isfinite(arr).all(axis=(1, 2))  # [G]
        if bad.any():
            raise ValueError(f"grasp {int(np.argmax(bad))} has non-finite (NaN/inf) contact coordinates")
        return _Grasps(arr.reshape(-1, 3), np.full(num_grasps, k, dtype=np.int64))
    listed = as_grasp_list(contacts)
    limits.check_grasp_sizes([len(g) if np.ndim(g) else 0 for g in listed])
    grasps = check_grasps(listed)
    flat = np.concatenate(grasps) if grasps else np.zeros((0, 3))
    return _Grasps(flat, np.array([len(g) for g in grasps], dtype=np.int64))


def _index(encoded: EncodedCloud) -> NeighbourIndex:
    """The neighbour search over the normalised, deduplicated cloud (built by ``prepare_cloud``
    when it estimated normals; built here on first use otherwise)."""
    if encoded.cloud.index is None:
        encoded.cloud.index = NeighbourIndex(encoded.cloud.local)  # over [U, 3] float64
    return encoded.cloud.index
