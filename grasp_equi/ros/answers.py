"""Answers to gripper-pose requests and proposals: ``scored_grasps`` columns and ``ranked_poses``.

``scored_grasps`` for a ``grasp_poses`` request keeps every input pose's index (``grasp_id``):
a scored pose gives two rows (its contacts, +y pad first) with ``score`` and ``width`` (and the other
answers, ``grasp_equi.ros.outputs``); a pose left out gives one row at the pose's position with its
answers and ``width`` NaN and a non-zero
``reason`` (``grasp_equi.poses.REASONS``: 1 = no_contact, 2 = collision, 3 = off_surface: the
scorer could not judge it). For proposals
``grasp_id`` is the rank (0 = best) and every row has reason 0.
"""

from __future__ import annotations

import numpy as np
from geometry_msgs.msg import Pose, PoseArray

from grasp_equi.poses import SCORED, to_pose7
from grasp_equi.ros import codec
from grasp_equi.ros.outputs import SCORE_FIELD, Answers


def pose_columns(positions: np.ndarray, contacts: np.ndarray, widths: np.ndarray, reasons: np.ndarray,
                 answers: Answers) -> dict[str, np.ndarray]:
    """Columns for ``P`` input poses: ``positions`` ``(P, 3)``, ``contacts`` ``(P, 2, 3)``, ``widths`` and
    ``reasons`` ``(P,)``, and the ``answers`` ``(P,)`` each (``score``, ``score_std`` when the model gives a
    spread, ``p_<output>`` when it has several outputs; NaN where left out); rows in pose order."""
    rows, ids, width, reason = [], [], [], []
    for i in range(len(positions)):
        scored = reasons[i] == SCORED
        pts = contacts[i] if scored else positions[i][None]  # [2 or 1, 3]
        rows.append(pts)
        ids += [i] * len(pts)
        width += [widths[i] if scored else np.nan] * len(pts)
        reason += [int(reasons[i])] * len(pts)
    flat = np.concatenate(rows) if rows else np.zeros((0, 3))
    owner = np.asarray(ids, dtype=np.int64)  # [C] pose of each row
    scored = np.asarray(reasons)[owner] == SCORED if len(owner) else np.zeros(0, dtype=bool)  # [C]
    values = {name: np.where(scored, column, np.nan).astype(np.float32)
              for name, column in answers.columns(owner).items()}
    return {**codec.xyz_columns(flat), "grasp_id": owner.astype(np.uint32), SCORE_FIELD: values.pop(SCORE_FIELD),
            "width": np.asarray(width, dtype=np.float32), "reason": np.asarray(reason, dtype=np.uint8), **values}


def ranked_columns(contacts: np.ndarray, widths: np.ndarray, answers: Answers) -> dict[str, np.ndarray]:
    """Columns for ``k`` ranked proposals (best first): two contact rows each, ``grasp_id`` = rank,
    ``answers`` ``(k,)`` each (``score``: the ranking's)."""
    k = len(answers.score)
    rank = np.repeat(np.arange(k), 2)  # [2k]
    values = answers.columns(rank)
    return {**codec.xyz_columns(np.asarray(contacts).reshape(-1, 3)), "grasp_id": rank.astype(np.uint32),
            SCORE_FIELD: values.pop(SCORE_FIELD), "width": np.repeat(np.asarray(widths, dtype=np.float32), 2),
            "reason": np.zeros(2 * k, dtype=np.uint8), **values}


def pose_array(header, poses7: np.ndarray) -> PoseArray:
    """A ``PoseArray`` (header copied) from ``(k, 7)`` rows ``x, y, z, qx, qy, qz, qw``, in order."""
    msg = PoseArray(header=header)
    for row in np.asarray(poses7, dtype=np.float64).reshape(-1, 7):
        pose = Pose()
        pose.position.x, pose.position.y, pose.position.z = (float(v) for v in row[:3])
        pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = (float(v) for v in row[3:])
        msg.poses.append(pose)
    return msg


def ranked_pose_array(header, positions: np.ndarray, rotations: np.ndarray, scores: np.ndarray) -> PoseArray:
    """The scored poses (finite ``scores``) best first; exact ties keep input order."""
    scores = np.asarray(scores, dtype=np.float64)
    order = [int(i) for i in np.lexsort((np.arange(len(scores)), -np.nan_to_num(scores, nan=-np.inf)))
             if np.isfinite(scores[i])]
    return pose_array(header, to_pose7(positions[order], rotations[order]))
