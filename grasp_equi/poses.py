"""Parallel-jaw gripper poses: conversions, the gripper's body for collision checks, scoring poses.

Pose conventions (the ``grasp_poses`` contract): +z is the approach direction, the fingers
close along ±y, the origin lies midway between the fingertips. A pose is given either as
``(G, 7)`` rows ``x, y, z, qx, qy, qz, qw`` (metres, the cloud's frame; ROS quaternion order)
or as ``(G, 4, 4)`` homogeneous matrices.

The gripper's body (``GripperBody``) in its own frame, for the collision check:
- two finger pads ``finger_width`` (x) by ``finger_thickness`` (y) by ``finger_depth`` (z),
  their inner faces ``max_width`` apart when open (``|y|`` in ``[max_width / 2,
  max_width / 2 + finger_thickness]``, ``z`` in ``[-finger_depth, 0]``);
- a palm ``palm_depth`` thick behind the pads (``z`` in ``[-finger_depth - palm_depth,
  -finger_depth]``) spanning both pads.
A pose is *in collision* when a cloud point lies inside the open pads or the palm, grown by
``clearance`` on every side. Points between the open pads are what the jaws close on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from grasp_equi.gripper import JawGeometry, close_jaws, matrix_to_quaternion, quaternion_to_matrix
from grasp_equi.limits import Limits

# Why a pose got no score (codes are stable: they travel in the node's ``reason`` field).
REASONS = {0: "scored", 1: "no_contact", 2: "collision", 3: "off_surface"}
SCORED, NO_CONTACT, COLLISION, OFF_SURFACE = 0, 1, 2, 3  # off_surface: the scorer could not judge it (NaN)
MIN_WIDTH = 0.002  # metres: jaws closing to a narrower gap hold nothing


@dataclass(frozen=True)
class GripperBody:
    """The jaws (``jaw``) plus the solid parts a collision check needs, in metres."""

    jaw: JawGeometry = field(default_factory=JawGeometry)
    finger_thickness: float = 0.008  # pad thickness along y, outside the opening
    palm_depth: float = 0.02  # palm thickness along z, behind the pads
    clearance: float = 0.001  # cloud points closer than this to the body count as collisions

    def __post_init__(self):
        for name in ("finger_thickness", "palm_depth"):
            value = getattr(self, name)
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"gripper {name} must be a positive number of metres; got {value}")
        if not np.isfinite(self.clearance) or self.clearance < 0:
            raise ValueError(f"gripper clearance must be >= 0 metres; got {self.clearance}")

    def boxes(self, width: float | None = None) -> np.ndarray:
        """The body as axis-aligned boxes in the gripper frame ``(3, 2, 3)``: (left pad, right pad,
        palm) x (min corner, max corner); pads ``width`` apart (default: fully open)."""
        jaw = self.jaw
        half = (jaw.max_width if width is None else width) / 2
        outer = half + self.finger_thickness
        fx = jaw.finger_width / 2
        return np.array([
            [[-fx, half, -jaw.finger_depth], [fx, outer, 0.0]],
            [[-fx, -outer, -jaw.finger_depth], [fx, -half, 0.0]],
            [[-fx, -outer, -jaw.finger_depth - self.palm_depth], [fx, outer, -jaw.finger_depth]],
        ])


def body_boxes(position: np.ndarray, rotation: np.ndarray, width: float, body: GripperBody):
    """The gripper body at one pose, pads ``width`` apart (e.g. closed on its contacts), as three
    oriented boxes (left pad, right pad, palm): ``(centres (3, 3), sizes (3, 3))``; each box's
    axes are the gripper's (``rotation``'s columns), centres in the cloud's frame (metres)."""
    boxes = body.boxes(min(max(float(width), 0.0), body.jaw.max_width))  # [3, 2, 3]
    centres = (boxes[:, 0] + boxes[:, 1]) / 2 @ np.asarray(rotation).T + np.asarray(position)  # [3, 3]
    return centres, boxes[:, 1] - boxes[:, 0]


def as_frames(poses) -> tuple[np.ndarray, np.ndarray]:
    """Positions ``(G, 3)`` and rotations ``(G, 3, 3)`` from ``(G, 7)`` or ``(G, 4, 4)`` poses.

    A single ``(7,)`` or ``(4, 4)`` pose counts as ``G = 1``. Raises ``ValueError`` for other
    shapes, NaN/inf, zero quaternions, matrices whose 3x3 block is not a rotation
    (|R^T R - I| > 1e-4 or det < 0) or whose last row is not (0, 0, 0, 1).
    """
    try:
        arr = np.asarray(poses, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"poses must be a numeric (G, 7) or (G, 4, 4) array: {err}") from None
    if arr.shape in ((7,), (4, 4)):
        arr = arr[None]
    if not np.isfinite(arr).all():
        bad = int(np.argmax(~np.isfinite(arr.reshape(len(arr), -1)).all(axis=1))) if arr.ndim > 1 else 0
        raise ValueError(f"pose {bad} has NaN/inf values")
    if arr.ndim == 2 and arr.shape[1] == 7:
        return arr[:, :3].copy(), quaternion_to_matrix(arr[:, 3:]) if len(arr) else np.zeros((0, 3, 3))
    if arr.ndim == 3 and arr.shape[1:] == (4, 4):
        rot = arr[:, :3, :3]
        err = np.abs(np.einsum("gji,gjk->gik", rot, rot) - np.eye(3)).max(axis=(1, 2)) if len(arr) else np.zeros(0)
        bad = (err > 1e-4) | (np.linalg.det(rot) < 0) if len(arr) else np.zeros(0, bool)
        bad |= np.abs(arr[:, 3] - [0.0, 0.0, 0.0, 1.0]).max(axis=1) > 1e-6 if len(arr) else bad
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"pose {i}: not a rigid transform (the 3x3 block must be a rotation: |R^T R - I| "
                             f"{err[i]:.1e}, tolerance 1e-4, det {np.linalg.det(rot[i]):+.3f}; the last row 0 0 0 1)")
        return arr[:, :3, 3].copy(), rot.copy()
    raise ValueError(f"poses must have shape (G, 7) (x, y, z, qx, qy, qz, qw) or (G, 4, 4); got {arr.shape}")


def to_pose7(positions: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """``(G, 7)`` rows ``x, y, z, qx, qy, qz, qw`` from positions ``(G, 3)`` and rotations ``(G, 3, 3)``."""
    quats = matrix_to_quaternion(rotations) if len(rotations) else np.zeros((0, 4))
    return np.concatenate([np.asarray(positions, dtype=np.float64).reshape(-1, 3), quats], axis=1)


def in_collision(points: np.ndarray, positions: np.ndarray, rotations: np.ndarray, body: GripperBody,
                 chunk: int = 128, coarse_stride: int = 16) -> np.ndarray:
    """``(G,)`` bool: some of ``points`` ``(N, 3)`` lie inside the open gripper's pads or palm.

    ``positions`` ``(G, 3)``, ``rotations`` ``(G, 3, 3)`` (columns = gripper axes in the cloud
    frame). Two passes with the same test: every ``coarse_stride``-th point first (most poses
    that collide hit one of those), then all points for the poses still clear, so the answer
    is the full check's at a fraction of its ``G x N`` point transforms. Float32 torch relative
    to the cloud's centroid, ``chunk`` poses at a time (peak memory ~``chunk x N x 20`` bytes).
    """
    pts = np.asarray(points, dtype=np.float64)
    center = pts.mean(axis=0)  # [3] work near the origin: float32 keeps sub-micron precision
    rel = torch.as_tensor(pts - center, dtype=torch.float32)  # [N, 3]
    rot = torch.as_tensor(np.asarray(rotations, dtype=np.float64), dtype=torch.float32)  # [G, 3, 3]
    origin = torch.as_tensor(np.asarray(positions, dtype=np.float64) - center, dtype=torch.float32)  # [G, 3]
    offset = torch.einsum("gi,gij->gj", origin, rot)  # [G, 3] origin in each gripper frame
    hit = _hits(rel[::coarse_stride], rot, offset, body, chunk)  # [G] coarse pass
    clear = np.flatnonzero(~hit)
    if len(clear) and coarse_stride > 1:
        hit[clear] = _hits(rel, rot[clear], offset[clear], body, chunk)
    return hit


def _hits(rel: torch.Tensor, rot: torch.Tensor, offset: torch.Tensor, body: GripperBody, chunk: int) -> np.ndarray:
    """``[G]`` bool: some point ``rel`` ``[N, 3]`` inside the body at each pose (``rot`` ``[G, 3, 3]``,
    ``offset`` ``[G, 3]`` = the pose's origin in its own frame)."""
    jaw, c = body.jaw, body.clearance
    half_x = jaw.finger_width / 2 + c
    inner, outer = jaw.max_width / 2 - c, jaw.max_width / 2 + body.finger_thickness + c
    palm_lo, palm_hi, top = -jaw.finger_depth - body.palm_depth - c, -jaw.finger_depth + c, c
    hit = np.zeros(len(rot), dtype=bool)
    for start in range(0, len(rot), chunk):
        stop = start + chunk
        local = torch.matmul(rel, rot[start:stop]) - offset[start:stop, None]  # [c, N, 3] gripper frame
        x, y, z = local[..., 0].abs(), local[..., 1].abs(), local[..., 2]  # [c, N] each
        near = (x <= half_x) & (y <= outer) & (z >= palm_lo) & (z <= top)  # inside the body's bounding box
        gap = (y < inner) & (z > palm_hi)  # ... but between the open pads, where the jaws close
        hit[start:stop] = (near & ~gap).any(dim=1).numpy()
    return hit


def close_and_check(points: np.ndarray, positions: np.ndarray, rotations: np.ndarray, body: GripperBody,
                    check_collisions: bool = True, obstacles: np.ndarray | None = None):
    """Close every pose's jaws and check its body: ``(contacts (G, 2, 3), widths (G,), reason (G,))``.

    ``obstacles`` ``(M, 3)``: more points the body must not touch (e.g. the table under the
    object), never grasped.

    ``reason`` holds the codes of ``REASONS``; rows that are not ``SCORED`` have NaN contacts
    and widths. Width = the contacts' distance along the closing axis (metres).
    """
    num = len(positions)
    reason = np.full(num, SCORED, dtype=np.uint8)
    contacts, widths = np.full((num, 2, 3), np.nan), np.full(num, np.nan)
    if num == 0:
        return contacts, widths, reason
    solid = points if obstacles is None or not len(obstacles) else np.concatenate([points, obstacles])
    collide = (in_collision(solid, positions, rotations, body) if check_collisions
               else np.zeros(num, dtype=bool))  # [G]
    reason[collide] = COLLISION
    free = np.flatnonzero(~collide)
    if len(free):
        quats = matrix_to_quaternion(rotations[free])
        closed, valid = close_jaws(points, positions[free], quats, body.jaw)  # [F, 2, 3], [F]
        gap = np.einsum("fi,fi->f", closed[:, 0] - closed[:, 1], rotations[free][:, :, 1])  # [F] along +y
        valid &= np.abs(np.nan_to_num(gap)) >= MIN_WIDTH
        reason[free[~valid]] = NO_CONTACT
        contacts[free[valid]] = closed[valid]
        widths[free[valid]] = np.abs(gap[valid])
    return contacts, widths, reason


@dataclass
class PoseScores:
    """``score_poses`` result, one row per input pose (in input order)."""

    scores: np.ndarray  # (G,) P(stable); NaN where the pose was left out
    contacts: np.ndarray  # (G, 2, 3) where the jaws touch; NaN rows where left out
    widths: np.ndarray  # (G,) jaw opening at the contacts, metres; NaN where left out
    reasons: np.ndarray  # (G,) uint8 codes of REASONS (0 = scored)

    def reason_names(self) -> list[str]:
        return [REASONS[int(r)] for r in self.reasons]


def score_poses(points, poses, gripper: GripperBody | JawGeometry | None = None, scorer=None,
                normals=None, check_collisions: bool = True, output: str | None = None) -> PoseScores:
    """Score parallel-jaw gripper ``poses`` ``(G, 7)`` or ``(G, 4, 4)`` on ``points`` ``(N, 3)``.

    Each pose's jaws are closed onto the cloud (``grasp_equi.gripper.close_jaws``); poses whose
    open pads or palm intersect the cloud (``check_collisions``), or whose jaws close on
    nothing, are left out with a reason; the rest are scored in one batched call.
    ``scorer``: a ``GraspScorer`` (default: the shipped weights); ``output``: which of its answers
    (``GraspScorer.score``; None: its default). Bad input, or an ``output`` the scorer lacks (also when
    no pose is scored), or a cloud outside the plausible object size (``Limits``: the scorer's, else the
    defaults; other units), raises ``ValueError``.
    """
    from grasp_equi.scorer import GraspScorer
    from grasp_equi.validation import check_cloud

    pts, nrm = check_cloud(points, normals)
    if scorer is not None or output is not None:  # an answer the model lacks fails even when no pose is scored
        scorer = scorer or GraspScorer.from_checkpoint()
        scorer._check_output(output, False)
    # a cloud in other units fails even when no pose touches it (all would be "no_contact" or "collision")
    (scorer.limits if scorer is not None else Limits()).check_object_size(pts)
    body = gripper if isinstance(gripper, GripperBody) else GripperBody(jaw=gripper or JawGeometry())
    positions, rotations = as_frames(poses)
    contacts, widths, reasons = close_and_check(pts, positions, rotations, body, check_collisions)
    scores = np.full(len(positions), np.nan, dtype=np.float32)
    keep = np.flatnonzero(reasons == SCORED)
    if len(keep):
        scorer = scorer or GraspScorer.from_checkpoint()
        scores[keep] = scorer.score(pts, contacts[keep], nrm, output=output)
        reasons[keep[~np.isfinite(scores[keep])]] = OFF_SURFACE
    return PoseScores(scores, contacts, widths, reasons)
