"""Scoring a posed scene with every model, and the orientations of a sweep (Qt-free).

Each call runs the full public pipeline (``GraspScorer.score``: validation, sampling,
normals, encoder, head) on freshly rotated arrays: nothing is cached between poses, so a
flat line in the sweep plot is the network's invariance, not a stored number.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from grasp_equi import GraspScorer
from grasp_equi.geometry import random_rotation, rotation_about_axis
from grasp_equi_gui.models import ModelSlot

SWEEP_STEPS = 72  # 5 degree steps
AXES = {"x": np.array([1.0, 0.0, 0.0]), "y": np.array([0.0, 1.0, 0.0]), "z": np.array([0.0, 0.0, 1.0])}
RANDOM_AXES = "random axes"
SWEEP_MODES = (*AXES, RANDOM_AXES)


@dataclass(frozen=True)
class PosedScene:
    """Everything a scoring job needs, copied out of the scene (object frame + pose)."""

    points: np.ndarray  # [N, 3]
    normals: np.ndarray | None  # [N, 3]
    grasps: tuple[np.ndarray, ...]  # each [K, 3]
    center: np.ndarray  # [3] the pose rotates about this point
    rotation: np.ndarray  # [3, 3]
    version: int

    @classmethod
    def from_scene(cls, scene) -> "PosedScene":
        obj = scene.object
        return cls(obj.points.copy(), None if obj.normals is None else obj.normals.copy(),
                   tuple(g.copy() for g in scene.grasps), obj.center.copy(), scene.rotation.copy(), scene.version)


# Keys of a model's scores in the scene: scores[key] is its default answer (P(held) for models with
# P(held) readouts, else P(force closure)): it ranks and colours the grasps. scores[key + STD_SUFFIX]
# is that answer's spread σ (the P(held) readouts', or the ensemble's), and a model with several
# answers also gives each by name under output_key(key, output) (grasp_equi.keys.OUTPUTS).
STD_SUFFIX = "_std"
OUTPUT_SEPARATOR = ":"


def output_key(key: str, output: str) -> str:
    """Scene key of ``output`` (``"held"``, ``"force_closure"``) of the model (or node) ``key``."""
    return f"{key}{OUTPUT_SEPARATOR}{output}"


def has_spread(scorer: GraspScorer) -> bool:
    """True when ``scorer``'s default answer comes with a spread (two or more P(held) readouts, or an
    ensemble's: a single readout's spread is NaN everywhere)."""
    from grasp_equi.ros.outputs import has_spread as answer_has_spread  # no rclpy there

    return answer_has_spread(scorer, scorer.outputs[0])


def slot_keys(slot: ModelSlot) -> list[str]:
    """The scene keys ``score_at`` fills for ``slot`` (none when it is not available)."""
    if not slot.available:
        return []
    outputs = slot.scorer.outputs
    return ([slot.key] + ([slot.key + STD_SUFFIX] if has_spread(slot.scorer) else [])
            + ([output_key(slot.key, o) for o in outputs] if len(outputs) > 1 else []))


def score_model(scorer: GraspScorer, key: str, points: np.ndarray, grasps: list[np.ndarray],
                normals: np.ndarray | None) -> dict[str, np.ndarray]:
    """Every answer of one model (keys as ``slot_keys``), ``[G]`` each; the cloud is encoded once.
    ``ValueError`` for a bad cloud or grasps (``GraspScorer.score``)."""
    outputs = scorer.outputs
    if len(outputs) == 1:  # one answer: the plain public call
        if not has_spread(scorer):
            return {key: scorer.score(points, grasps, normals)}
        score, spread = scorer.score(points, grasps, normals, return_std=True)
        return {key: score, key + STD_SUFFIX: spread}
    encoded = scorer.encode(points, normals)
    out = {}
    for output in outputs:
        if output == outputs[0] and has_spread(scorer):
            out[key], out[key + STD_SUFFIX] = scorer.score_encoded(encoded, grasps, return_std=True, output=output)
            out[output_key(key, output)] = out[key]
        else:
            out[output_key(key, output)] = scorer.score_encoded(encoded, grasps, output=output)
    out.setdefault(key, out[output_key(key, outputs[0])])
    return out


def score_at(slots: list[ModelSlot], posed: PosedScene, rotation: np.ndarray) -> dict[str, np.ndarray]:
    """Rotate cloud, normals and contacts to ``rotation`` about the centroid and score them with every
    available model (``score_model``: its default answer, σ when it has one, each answer by name)."""
    c = posed.center
    points = (posed.points - c) @ rotation.T + c  # [N, 3]
    normals = None if posed.normals is None else posed.normals @ rotation.T  # [N, 3]
    grasps = [(g - c) @ rotation.T + c for g in posed.grasps]  # each [K, 3]
    out = {}
    for slot in (s for s in slots if s.available):
        out.update(score_model(slot.scorer, slot.key, points, grasps, normals))
    return out


def off_object(points: np.ndarray, grasps: list[np.ndarray], slots: list[ModelSlot]) -> list[tuple[int, str]]:
    """Grasps the scorers would not judge because a contact does not touch the cloud, with the reason.

    The scorer's own rule (``grasp_equi.contacts``: farther than 4 x the local point spacing from
    every cloud point). Rotation-invariant, so it is checked once per set of grasps, not per pose.
    Returns ``[(grasp index, reason)]``.
    """
    from grasp_equi.contacts import surface_limits
    from grasp_equi.graph import cloud_options

    available = [s for s in slots if s.available]
    if not grasps or not available or len(points) == 0:
        return []
    flat = np.concatenate([np.asarray(g, dtype=np.float64).reshape(-1, 3) for g in grasps])  # [C, 3]
    dist, limit = surface_limits(points, flat, cloud_options(available[0].scorer.config))  # [C], [C]
    owner = np.repeat(np.arange(len(grasps)), [len(g) for g in grasps])  # [C]
    out = []
    for i in np.unique(owner[dist > limit]):
        mine = np.flatnonzero(owner == i)
        worst = mine[np.argmax(dist[mine] - limit[mine])]
        out.append((int(i), f"grasp #{i}: a contact is {1000 * dist[worst]:.1f} mm from the object "
                            f"(limit {1000 * limit[worst]:.1f} mm); removed"))
    return out


def sweep_rotations(mode: str, steps: int = SWEEP_STEPS, seed: int = 0) -> list[tuple[float, np.ndarray]]:
    """``(angle_deg, R)`` for each sweep step, applied on top of the current pose.

    About a fixed axis: angles 0, 5, ..., 355 degrees. ``"random axes"``: the same angles,
    each about a fresh random axis, so the cloud visits unrelated orientations. Step 0 is
    always the identity (the pose the sweep starts from).
    """
    if mode not in SWEEP_MODES:
        raise ValueError(f"sweep mode must be one of {SWEEP_MODES}, got {mode!r}")
    if steps < 2:
        raise ValueError(f"a sweep needs at least 2 steps, got {steps}")
    rng = np.random.default_rng(seed)
    out = []
    for i in range(steps):
        angle = 360.0 * i / steps
        if mode in AXES:
            axis = AXES[mode]
        else:
            axis = random_rotation(rng)[:, 0]  # a uniformly random unit vector
        out.append((angle, np.eye(3) if i == 0 else rotation_about_axis(axis, np.radians(angle))))
    return out
