"""``GraspPlanner``: from an object cloud alone to ranked, collision-free parallel-jaw poses.

Steps (all in the cloud's frame, metres):
1. the scorer prepares and encodes the cloud once (its normals, neighbour search and encoder
   output are reused below and for scoring);
2. a seeded random pool of cloud points gets outward normals (the scorer's own estimate and
   sign rule; given normals when the user passes them);
3. antipodal pairs: each seed point takes the pool point that is most antipodal to it (the
   line joining them inside both friction cones, ``atan(mu)``) within ``max_width``;
4. ``approach_angles`` gripper poses per pair, turned about the closing line: +z approach,
   fingers along ±y, origin midway between the fingertips, the pair at mid-pad depth and at a
   fifth of the pad from the tips (``depths``); angle 0 approaches toward the cloud's centroid;
5. poses whose open pads or palm intersect the cloud are rejected
   (``grasp_equi.poses.in_collision``); the jaws of the rest are closed onto the cloud
   (``grasp_equi.gripper.close_jaws``) to find the contacts they actually touch;
6. every survivor is scored in one batched call on the encoded cloud; the best ``top_k``
   (near-duplicates suppressed) are returned, best first.

Every choice depends on point indices, distances and dot products only, so the result is
deterministic per seed and moves rigidly with the cloud: the same poses, moved (up to ties
within float precision; the ranking breaks exact score ties by candidate index).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from grasp_equi.geometry import NeighbourIndex
from grasp_equi.graph import contact_normals, normalise_contacts
from grasp_equi.poses import MIN_WIDTH, SCORED, GripperBody, close_and_check, in_collision, to_pose7
from grasp_equi.validation import check_cloud

MAX_CANDIDATES = 20_000  # poses per cloud (pairs x approach angles x depths): bounds memory and time


@dataclass(frozen=True)
class PlannerConfig:
    """Sampling and ranking settings (lengths in metres, angles in degrees)."""

    num_seeds: int = 256  # seed points, each proposing its most antipodal partner
    pool_size: int = 2048  # cloud points the partners are chosen from (they get normals)
    approach_angles: int = 8  # poses per pair, evenly turned about the closing line
    depths: tuple[float, ...] = (0.5, 0.2)  # where the pair meets the pads, as fractions of finger_depth from the tips
    max_closed: int = 128  # collision-free poses whose jaws are closed and scored (evenly spaced subset beyond)
    mu: float = 0.5  # friction coefficient: the line must lie within atan(mu) of both inward normals
    top_k: int = 10
    nms_distance: float = 0.005  # proposals whose contacts are this close ...
    nms_angle: float = 20.0  # ... and approaches this aligned are duplicates of a better one
    seed: int = 0

    def __post_init__(self):
        for name in ("num_seeds", "pool_size", "approach_angles", "top_k", "max_closed"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"planner {name} must be >= 1; got {getattr(self, name)}")
        count = self.num_seeds * self.approach_angles * len(self.depths)
        if count > MAX_CANDIDATES:
            raise ValueError(f"num_seeds x approach_angles x depths = {count} candidates, more than {MAX_CANDIDATES}")
        if not self.depths or not all(0 <= d <= 1 for d in self.depths):
            raise ValueError(f"planner depths must be fractions of the finger depth in [0, 1]; got {self.depths}")
        if not 0 < self.mu < 10:
            raise ValueError(f"planner mu must be in (0, 10); got {self.mu}")


@dataclass
class Proposals:
    """Ranked proposals, best first (``k`` rows), plus how many candidates each step kept."""

    poses: np.ndarray  # (k, 7) x, y, z, qx, qy, qz, qw in the cloud's frame
    contacts: np.ndarray  # (k, 2, 3) where the closed jaws touch (+y pad first)
    widths: np.ndarray  # (k,) jaw opening at the contacts, metres
    scores: np.ndarray  # (k,) P(stable)
    counts: dict[str, int] = field(default_factory=dict)  # pairs, candidates, collision_free, scored
    timings: dict[str, float] = field(default_factory=dict)  # ms per step

    def __len__(self) -> int:
        return len(self.scores)

    def save(self, path, overwrite: bool = False) -> Path:
        """Write ``poses``, ``scores``, ``contacts``, ``widths`` to an ``.npz``; ``FileExistsError``
        when ``path`` exists and ``overwrite`` is False."""
        path = Path(path)
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists; pass --force to overwrite it")
        with open(path, "wb") as handle:  # np.savez would append ".npz" to other names
            np.savez(handle, poses=self.poses, scores=self.scores, contacts=self.contacts, widths=self.widths)
        return path


class GraspPlanner:
    """Proposes ranked parallel-jaw grasps on a cloud; see the module docstring.

    >>> planner = GraspPlanner(GraspScorer.from_checkpoint())
    >>> ranked = planner.propose(points)        # (N, 3) -> Proposals, best first
    """

    def __init__(self, scorer=None, body: GripperBody | None = None, config: PlannerConfig | None = None,
                 output: str | None = None):
        """``output``: the scorer's answer that ranks (``keys.OUTPUTS``; None: the model's default);
        ``ValueError`` for one the scorer lacks."""
        if scorer is None:
            from grasp_equi.scorer import GraspScorer

            scorer = GraspScorer.from_checkpoint()
        scorer._check_output(output, False)  # ValueError for an answer the model lacks, before any work
        self.scorer = scorer
        self.body = body or GripperBody()
        self.config = config or PlannerConfig()
        self.output = output

    def propose(self, points, normals=None, top_k: int | None = None, encoded=None, obstacles=None) -> Proposals:
        """Top ``top_k`` (default ``config.top_k``) proposals on ``points`` ``(N, 3)``; ``normals``
        ``(N, 3)`` outward, estimated when None. ``encoded``: the scorer's ``encode`` of this cloud
        (or of a subset of it) when the caller has it already. ``obstacles`` ``(M, 3)``: scene points
        the gripper must not touch but never grasps (``grasp_equi.scene``: the table). ``ValueError``
        on a bad cloud."""
        cfg, timings = self.config, {}
        top_k = cfg.top_k if top_k is None else int(top_k)
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1; got {top_k}")
        pts, nrm = check_cloud(points, normals)
        encoded, positions, rotations, num_pairs = self.candidate_frames(pts, nrm, encoded, timings)
        start = time.perf_counter()
        solid = pts if obstacles is None else np.concatenate([pts, np.asarray(obstacles, np.float64).reshape(-1, 3)])
        free = np.flatnonzero(~in_collision(solid, positions, rotations, self.body))  # [F]
        num_free = len(free)
        if num_free > cfg.max_closed:  # an evenly spaced subset by candidate index: bounded time, still invariant
            free = free[np.linspace(0, num_free - 1, cfg.max_closed).round().astype(np.int64)]
        contacts, widths, reasons = close_and_check(pts, positions[free], rotations[free], self.body,
                                                    check_collisions=False)  # [F, 2, 3], [F], [F]
        timings["collide_close"] = _ms(start)
        ok = free[reasons == SCORED]  # [S] candidate indices
        contacts, widths = _scatter(contacts, widths, free, len(positions))
        start = time.perf_counter()
        scores = self.scorer.score_encoded(encoded, contacts[ok], output=self.output) if len(ok) else np.zeros(0, np.float32)
        timings["score"] = _ms(start)
        judged = np.isfinite(scores)  # NaN: the scorer found a contact off the surface (never ranked)
        ok, scores = ok[judged], scores[judged]
        counts = {"pairs": num_pairs, "candidates": len(positions), "collision_free": num_free, "scored": len(ok)}
        keep = rank(scores, contacts[ok], rotations[ok][:, :, 2], top_k, cfg.nms_distance, cfg.nms_angle)
        chosen = ok[keep]
        return Proposals(to_pose7(positions[chosen], rotations[chosen]), contacts[chosen], widths[chosen],
                         scores[keep].astype(np.float32), counts, timings)

    def candidate_frames(self, pts: np.ndarray, nrm: np.ndarray | None, encoded, timings: dict):
        """Steps 1-4 on a validated cloud: ``(encoded, positions [C, 3], rotations [C, 3, 3], pairs)``;
        adds the "encode" and "sample" times (ms) to ``timings``."""
        cfg = self.config
        start = time.perf_counter()
        encoded = self.scorer.encode(pts, nrm) if encoded is None else encoded
        timings["encode"] = _ms(start)
        start = time.perf_counter()
        pool = np.random.default_rng(cfg.seed).permutation(len(pts))[:cfg.pool_size]  # [P] by index only
        pool_normals = self._pool_normals(encoded, pts, nrm, pool)  # [P, 3]
        pairs = antipodal_pairs(pts[pool], pool_normals, min(cfg.num_seeds, len(pool)), self.body.jaw.max_width,
                                cfg.mu)  # [Q, 2] indices into pool
        positions, rotations = approach_poses(pts[pool[pairs[:, 0]]], pts[pool[pairs[:, 1]]],
                                              pts.mean(axis=0), _farthest(pts), cfg.approach_angles,
                                              self.body.jaw.finger_depth, cfg.depths)  # [C, 3], [C, 3, 3]
        timings["sample"] = _ms(start)
        return encoded, positions, rotations, len(pairs)

    def _pool_normals(self, encoded, pts: np.ndarray, nrm: np.ndarray | None, pool: np.ndarray) -> np.ndarray:
        """Outward unit normals ``[P, 3]`` at the pool points (given ones, else the scorer's estimate)."""
        if nrm is not None:
            given = nrm[pool]
            return given / np.linalg.norm(given, axis=1, keepdims=True)
        cloud = encoded.cloud  # may be of a subset of pts (the node's sample_points): only its frame is used
        local = normalise_contacts(torch.as_tensor(pts[pool], device=encoded.points.device), cloud)  # [P, 3]
        index = cloud.index or NeighbourIndex(normalise_contacts(encoded.points, cloud))
        normals = contact_normals(local, index, self.scorer.config.normal_k, cloud.orientation)  # [P, 3]
        return normals.detach().cpu().double().numpy()


def antipodal_pairs(pool_pts: np.ndarray, pool_normals: np.ndarray, num_seeds: int, max_width: float,
                    mu: float) -> np.ndarray:
    """Index pairs ``[Q, 2]`` into the pool: for each of the first ``num_seeds`` pool points, the
    partner whose joining line lies deepest inside both friction cones (half-angle ``atan(mu)``)
    at a distance in ``[MIN_WIDTH, max_width]``; seeds without one are skipped, a pair found
    from both ends is kept once (first seed wins). Ties go to the lower index."""
    seeds = pool_pts[:num_seeds]  # [S, 3]
    diff = pool_pts[None] - seeds[:, None]  # [S, P, 3]
    dist = np.linalg.norm(diff, axis=-1)  # [S, P]
    unit = diff / np.maximum(dist, 1e-12)[..., None]  # [S, P, 3]
    cos_seed = -(unit * pool_normals[:num_seeds, None]).sum(-1)  # [S, P] line vs the seed's inward normal
    cos_partner = (unit * pool_normals[None]).sum(-1)  # [S, P] line vs the partner's inward normal (reversed)
    quality = np.minimum(cos_seed, cos_partner)  # [S, P]
    valid = (dist >= MIN_WIDTH) & (dist <= max_width) & (quality >= np.cos(np.arctan(mu)))
    quality = np.where(valid, quality, -np.inf)
    best = quality.argmax(axis=1)  # [S] first maximum: ties to the lower index
    found = np.isfinite(quality[np.arange(len(seeds)), best])
    seen, pairs = set(), []
    for i in np.flatnonzero(found):
        key = (min(i, best[i]), max(i, best[i]))
        if key not in seen:
            seen.add(key)
            pairs.append((i, best[i]))
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


def approach_poses(first: np.ndarray, second: np.ndarray, centroid: np.ndarray, far: np.ndarray,
                   num_angles: int, finger_depth: float,
                   depths: tuple[float, ...] = (0.5,)) -> tuple[np.ndarray, np.ndarray]:
    """Gripper frames for contact pairs ``first``/``second`` ``[Q, 3]``: positions ``[Q*A*D, 3]`` and
    rotations ``[Q*A*D, 3, 3]`` (columns x, y, z), ``A = num_angles`` approaches times
    ``D = len(depths)`` depths per pair (pair-major, then angle, then depth).

    y runs from ``first`` to ``second``; z (the approach) is turned about y by ``2 pi a / A``
    from the direction toward ``centroid`` (when the line passes through it: away from ``far``,
    the cloud point farthest from the centroid); the origin sits ``depth x finger_depth``
    beyond the pair's midpoint along z for each ``depth`` (0.5: the pair meets the pads at
    mid-depth; smaller: nearer the fingertips, leaving room for an object that is thick behind
    the pair before the palm).
    """
    if len(first) == 0:
        return np.zeros((0, 3)), np.zeros((0, 3, 3))
    mid = (first + second) / 2  # [Q, 3]
    y = second - first
    y /= np.linalg.norm(y, axis=1, keepdims=True)  # [Q, 3]
    ref = _perpendicular(centroid - mid, y)  # [Q, 3]
    weak = np.linalg.norm(ref, axis=1) < 1e-6 * max(float(np.linalg.norm(first - centroid, axis=1).max()), 1e-9)
    if weak.any():  # the line passes through the centroid: use a fixed-by-geometry fallback
        ref[weak] = _perpendicular(mid[weak] - far, y[weak])
        still = np.linalg.norm(ref, axis=1) < 1e-12
        helper = np.where(np.abs(y[:, :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]])
        ref[still] = _perpendicular(helper[still], y[still])
    e1 = ref / np.linalg.norm(ref, axis=1, keepdims=True)  # [Q, 3]
    e2 = np.cross(y, e1)  # [Q, 3]
    angles = 2 * np.pi * np.arange(num_angles) / num_angles  # [A]
    z = (np.cos(angles)[None, :, None] * e1[:, None] + np.sin(angles)[None, :, None] * e2[:, None])  # [Q, A, 3]
    y_all = np.broadcast_to(y[:, None], z.shape)  # [Q, A, 3]
    x = np.cross(y_all, z)  # [Q, A, 3] right-handed: x = y cross z
    frac = np.asarray(depths, dtype=np.float64)  # [D]
    rot = np.repeat(np.stack([x, y_all, z], axis=-1).reshape(-1, 3, 3), len(frac), axis=0)  # [Q*A*D, 3, 3]
    origin = mid[:, None, None] + z[:, :, None] * (finger_depth * frac)[None, None, :, None]  # [Q, A, D, 3]
    return origin.reshape(-1, 3), rot


def rank(scores: np.ndarray, contacts: np.ndarray, approach: np.ndarray, top_k: int, nms_distance: float,
         nms_angle: float) -> np.ndarray:
    """Indices of the best ``top_k`` of ``scores`` ``[S]``, best first, skipping near-duplicates:
    a candidate whose two contacts ``[S, 2, 3]`` (either order) lie within ``nms_distance`` of a
    better one's and whose approach ``[S, 3]`` is within ``nms_angle`` degrees of it."""
    order = np.lexsort((np.arange(len(scores)), -np.asarray(scores, dtype=np.float64)))  # score desc, index asc
    cos_limit = np.cos(np.radians(nms_angle))
    kept: list[int] = []
    for i in order:
        if len(kept) >= top_k:
            break
        if kept:
            other = contacts[kept]  # [k, 2, 3]
            same = np.linalg.norm(other - contacts[i], axis=-1).max(axis=1)  # [k]
            swapped = np.linalg.norm(other - contacts[i][::-1], axis=-1).max(axis=1)  # [k]
            close = np.minimum(same, swapped) < nms_distance
            aligned = approach[kept] @ approach[i] > cos_limit
            if (close & aligned).any():
                continue
        kept.append(int(i))
    return np.asarray(kept, dtype=np.int64)


def _perpendicular(v: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """The part of each ``v`` ``[Q, 3]`` perpendicular to the unit ``axis`` ``[Q, 3]``."""
    return v - (v * axis).sum(axis=1, keepdims=True) * axis


def _scatter(contacts: np.ndarray, widths: np.ndarray, rows: np.ndarray, total: int):
    """``contacts`` ``[F, 2, 3]`` and ``widths`` ``[F]`` of candidates ``rows`` placed in NaN arrays of ``total`` rows."""
    all_contacts, all_widths = np.full((total, 2, 3), np.nan), np.full(total, np.nan)
    all_contacts[rows], all_widths[rows] = contacts, widths
    return all_contacts, all_widths


def _farthest(pts: np.ndarray) -> np.ndarray:
    """The cloud point farthest from the centroid ``(3,)`` (first on ties)."""
    return pts[np.argmax(((pts - pts.mean(axis=0)) ** 2).sum(axis=1))]


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1e3
