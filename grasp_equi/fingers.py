"""K-finger (K = 3..5) fingertip proposals: a thumb opposing K - 1 fingers, found like the jaw poses.

The hand frame is the parallel-jaw one (+z approach, closing along ±y, origin between the
fingertips). The thumb closes along the hand's y axis from +y; the K - 1 fingers close from -y
along parallel lines ``spacing`` apart across x, centred on the thumb's line. Each fingertip's
contact is the first cloud point its line's narrow pad (``fingertip_width``) touches
(``grasp_equi.gripper.close_jaws`` on a shifted, narrow jaw). Candidates are the planner's
antipodal approach frames; a candidate is rejected when the hand's body (palm and finger
pads spread over the fingers' span) holds cloud points or when any fingertip closes on
nothing; the survivors are scored in one batched call and ranked like the jaw proposals.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from grasp_equi.gripper import close_jaws, matrix_to_quaternion
from grasp_equi.planner import GraspPlanner, Proposals, _ms, rank
from grasp_equi.poses import GripperBody, in_collision, to_pose7
from grasp_equi.validation import check_cloud

MIN_FINGERS, MAX_FINGERS = 3, 5


def finger_offsets(k: int, spacing: float) -> np.ndarray:
    """x offsets ``(k - 1,)`` of the fingers opposing the thumb, centred on 0 (metres)."""
    return (np.arange(k - 1) - (k - 2) / 2) * spacing


def propose_fingers(planner: GraspPlanner, points, k: int, normals=None, top_k: int | None = None,
                    spacing: float = 0.02, fingertip_width: float = 0.01, obstacles=None) -> Proposals:
    """Top ``top_k`` K-finger proposals on ``points`` ``(N, 3)``: ``contacts`` ``(n, k, 3)`` (thumb
    first), hand ``poses`` ``(n, 7)``, ``widths`` ``(n,)`` (thumb to the fingers' mean, along y),
    ``scores`` ``(n,)``, best first. ``ValueError`` for K outside 3..5 or a bad cloud."""
    if not MIN_FINGERS <= int(k) <= MAX_FINGERS:
        raise ValueError(f"k must be {MIN_FINGERS}..{MAX_FINGERS} fingers; got {k}")
    if not (spacing > 0 and fingertip_width > 0):
        raise ValueError("spacing and fingertip_width must be positive metres")
    cfg, timings = planner.config, {}
    top_k = cfg.top_k if top_k is None else int(top_k)
    pts, nrm = check_cloud(points, normals)
    encoded, positions, rotations, num_pairs = planner.candidate_frames(pts, nrm, None, timings)
    start = time.perf_counter()
    offsets = finger_offsets(k, spacing)  # [k - 1]
    jaw = planner.body.jaw
    hand = replace(planner.body, jaw=replace(jaw, finger_width=float(np.ptp(offsets)) + fingertip_width))
    solid = pts if obstacles is None else np.concatenate([pts, np.asarray(obstacles, dtype=np.float64).reshape(-1, 3)])
    free = np.flatnonzero(~in_collision(solid, positions, rotations, hand)) if len(positions) else np.zeros(0, int)
    contacts, ok = _fingertips(pts, positions[free], rotations[free], replace(jaw, finger_width=fingertip_width),
                               offsets)  # [F, k, 3], [F]
    timings["collide_close"] = _ms(start)
    chosen = free[ok]
    contacts = contacts[ok]
    start = time.perf_counter()
    scores = planner.scorer.score_encoded(encoded, contacts, output=planner.output) if len(chosen) \
        else np.zeros(0, np.float32)  # ranked by the planner's answer
    timings["score"] = _ms(start)
    judged = np.isfinite(scores)  # NaN: a contact off the surface (never ranked)
    chosen, contacts, scores = chosen[judged], contacts[judged], scores[judged]
    keep = rank(scores, contacts, rotations[chosen][:, :, 2], top_k, cfg.nms_distance, cfg.nms_angle)
    rot = rotations[chosen[keep]]
    widths = np.einsum("gi,gi->g", contacts[keep, 0] - contacts[keep, 1:].mean(axis=1), rot[:, :, 1])
    counts = {"pairs": num_pairs, "candidates": len(positions), "collision_free": len(free), "scored": len(chosen)}
    return Proposals(to_pose7(positions[chosen[keep]], rot), contacts[keep], np.abs(widths),
                     scores[keep].astype(np.float32), counts, timings)


def _fingertips(points: np.ndarray, positions: np.ndarray, rotations: np.ndarray, tip, offsets: np.ndarray):
    """Thumb (+y, on the hand's line) and finger (-y, at ``offsets`` along x) contacts ``[F, k, 3]``
    and whether all of them touch something ``[F]``."""
    quats = matrix_to_quaternion(rotations) if len(rotations) else np.zeros((0, 4))
    thumb, ok = close_jaws(points, positions, quats, tip)  # [F, 2, 3]
    tips = [thumb[:, 0]]
    for off in offsets:
        shifted = positions + off * rotations[:, :, 0]  # [F, 3] along the hand's x axis
        pair, valid = close_jaws(points, shifted, quats, tip)
        tips.append(pair[:, 1])
        ok &= valid
    contacts = np.stack(tips, axis=1)  # [F, k, 3]
    gaps = np.linalg.norm(contacts[:, :, None] - contacts[:, None], axis=-1)  # [F, k, k]
    off_diag = ~np.eye(contacts.shape[1], dtype=bool)
    ok &= np.nan_to_num(gaps[:, off_diag], nan=0.0).min(axis=1) >= 0.005 if len(contacts) else ok
    return contacts, ok
