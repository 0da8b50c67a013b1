"""What the two simulated hands share: the object's scene set-up, the trial's outcome, and its last phases.

``HandSimulator`` is the base of the parallel jaws (``trial.GraspSimulator``, K = 2) and the
fingertip hand (``fingertips.FingertipSimulator``, K = 2..5). Each subclass brings its MJCF, how it
places and closes its fingers and how it reads their contacts; the base compiles the scene once per
object and runs what follows the closing, identically for both hands:

1. let the object go (the ``hold`` weld off): unbalanced finger forces turn it, and a grasp
   whose object turned more than ``MAX_CLOSE_ROTATION`` is ``rotated`` (not held); one that
   lost a finger's touch ``missed``;
2. gravity on, lift ``LIFT`` (10 cm, a smoothstep over ``LIFT_TIME``), then shake: ±1.5 cm at
   3 Hz along world x, y, z, then ±15° about each hand axis;
3. held = every finger still touches the object and it moved less than ``MAX_SLIP`` / turned less
   than ``MAX_SLIP_ROTATION`` relative to the hand since the release.

Both scenes share the names this module looks up: bodies ``object`` and ``hand`` (free joints of
the same names), the mocap body that the hand is welded to (mocap 0) and the equality ``hold``
that pins the object while the fingers close.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

import mujoco
import numpy as np

from .pieces import convex_pieces
from .scene import JawSpec, object_inertial

MAX_CLOSE_ROTATION = np.deg2rad(10.0)  # rad the object may turn when let go after closing
MAX_SLIP = 0.02  # metres of object-centre motion relative to the hand
MAX_SLIP_ROTATION = np.deg2rad(25.0)  # rad of object rotation relative to the hand
LIFT = 0.10  # m
SHAKE_AMPLITUDE = 0.015  # m
SHAKE_ANGLE = np.deg2rad(15.0)  # rad
SHAKE_HZ = 3.0
SHAKE_CYCLES = 2
RELEASE_TIME, SETTLE_TIME, LIFT_TIME, HOLD_TIME = 0.15, 0.1, 0.4, 0.1  # seconds
OFF_TARGET = 0.006  # metres
EXCLUDED = ("collision", "too_wide", "off_target")  # the labelled grasp could not be executed


@dataclass
class TrialResult:
    """Outcome of one trial. ``held`` is None for excluded trials (see ``EXCLUDED``)."""

    status: str  # held | dropped | missed | rotated | collision | too_wide | off_target
    held: bool | None
    lost_in: str = ""  # phase where the grasp failed: close | lift | shake
    approach: np.ndarray = field(default_factory=lambda: np.full(3, np.nan))  # world approach direction
    close_rotation_deg: float = float("nan")
    drift: float = float("nan")  # m: max distance of a jaw's centre of pressure from its sampled contact
    jaw_contacts: np.ndarray = field(default_factory=lambda: np.full((2, 3), np.nan))  # where the jaws closed
    jaw_normals: np.ndarray = field(default_factory=lambda: np.full((2, 3), np.nan))  # outward, mesh frame
    slip: float = float("nan")
    slip_rotation_deg: float = float("nan")


def _quat_wxyz(rot: np.ndarray) -> np.ndarray:
    """Unit quaternion ``(4,)`` (w, x, y, z) of the rotation matrix ``rot`` ``(3, 3)``."""
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, np.ascontiguousarray(rot).ravel())
    return quat


def _angle(rot: np.ndarray) -> float:
    """Rotation angle (rad, in [0, pi]) of the rotation matrix ``rot`` ``(3, 3)``."""
    return float(np.arccos(np.clip((np.trace(rot) - 1) / 2, -1.0, 1.0)))


def _axis_rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rotation matrix ``(3, 3)`` of ``angle`` rad about the unit ``axis`` ``(3,)``."""
    quat = np.zeros(4)
    mujoco.mju_axisAngle2Quat(quat, axis, angle)
    rot = np.zeros(9)
    mujoco.mju_quat2Mat(rot, quat)
    return rot.reshape(3, 3)


class HandSimulator:
    """One object's scene with a hand, compiled once (``_mjcf``); a subclass's ``trial(contacts)`` runs a grasp.

    ``mass`` in kg (positive, else ValueError), simulated at no less than ``min_mass``; ``pieces``: the
    object's convex pieces (``pieces.convex_pieces(mesh)`` when None); ``timestep`` in seconds.
    """

    min_mass = 0.0  # kg: lighter objects are simulated at this mass

    def __init__(self, mesh, mass: float, spec: JawSpec | None = None, pieces: list[np.ndarray] | None = None,
                 timestep: float = 0.002):
        self.spec = spec or JawSpec()
        if not (np.isfinite(mass) and mass > 0):
            raise ValueError(f"object mass must be positive; got {mass}")
        self.pieces = convex_pieces(mesh) if pieces is None else pieces
        mass = max(mass, self.min_mass)
        com, inertia = object_inertial(mesh, mass)
        self.model = mujoco.MjModel.from_xml_string(self._mjcf(mass, com, inertia, timestep))
        self.data = mujoco.MjData(self.model)
        m = self.model
        self.object_body = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "object")
        self.hand_body = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "hand")
        self.object_geoms = set(np.flatnonzero(m.geom_bodyid == self.object_body).tolist())
        self.object_qpos = m.jnt_qposadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, "object")]
        self.hand_qpos = m.jnt_qposadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, "hand")]
        self.hold = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_EQUALITY, "hold")
        self.gravity = m.opt.gravity.copy()  # (3,) m/s^2, restored after every trial

    def _mjcf(self, mass: float, com: np.ndarray, inertia: np.ndarray, timestep: float) -> str:
        """MJCF text of the scene: ``self.pieces`` of ``mass`` kg, ``com`` ``(3,)``, ``inertia`` ``(3, 3)``."""
        raise NotImplementedError

    # ------------------------------------------------------------------ state helpers
    def _reset_state(self, position: np.ndarray, quat: np.ndarray) -> None:
        """Fresh ``MjData``: object at its mesh frame and held there, hand (and its mocap target) at
        ``position`` ``(3,)`` m with orientation ``quat`` ``(4,)`` (w, x, y, z), controls zero."""
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)  # also resets eq_active to the MJCF's (e.g. the jaws' couple: off)
        d.qpos[self.object_qpos:self.object_qpos + 7] = [0, 0, 0, 1, 0, 0, 0]  # mesh frame = world
        d.qpos[self.hand_qpos:self.hand_qpos + 3] = position
        d.qpos[self.hand_qpos + 3:self.hand_qpos + 7] = quat
        d.mocap_pos[0], d.mocap_quat[0] = position, quat
        d.ctrl[:] = 0.0
        d.eq_active[self.hold] = 1
        mujoco.mj_forward(m, d)

    def _step(self, seconds: float, mocap: Callable | None = None) -> None:
        """Advance ``seconds``; ``mocap(t)`` -> (position (3,), quat (4,)) moves the hand's target at each step."""
        m, d = self.model, self.data
        for k in range(int(round(seconds / m.opt.timestep))):
            if mocap is not None:
                d.mocap_pos[0], d.mocap_quat[0] = mocap((k + 1) * m.opt.timestep)
            mujoco.mj_step(m, d)

    def _pose(self, body: int) -> tuple[np.ndarray, np.ndarray]:
        """World position ``(3,)`` and rotation ``(3, 3)`` of ``body`` (copies)."""
        return self.data.xpos[body].copy(), self.data.xmat[body].reshape(3, 3).copy()

    def _object_in_hand(self) -> tuple[np.ndarray, np.ndarray]:
        """Object centre of mass ``(3,)`` and rotation ``(3, 3)`` in the hand's frame."""
        hp, hr = self._pose(self.hand_body)
        op, orot = self._pose(self.object_body)
        return hr.T @ (self.data.xipos[self.object_body] - hp), hr.T @ orot

    @contextmanager
    def _weightless(self) -> Iterator[None]:
        """Gravity off inside (the fingers close on a floating object); the scene's gravity back on exit."""
        self.model.opt.gravity[:] = 0.0
        try:
            yield
        finally:
            self.model.opt.gravity[:] = self.gravity

    # ------------------------------------------------------------------ after the closing
    def _release_lift_shake(self, result: TrialResult, touching: Callable[[], bool],
                            rot: np.ndarray | None = None) -> TrialResult:
        """Let the closed grasp go, lift, shake (module docstring, steps 1-3); fills and returns ``result``.

        ``touching()``: every finger touches the object now. ``rot`` ``(3, 3)``: the hand's orientation,
        whose axes the shake turns about (None: the hand is aligned with the world, quaternion (1, 0, 0, 0)).
        """
        m, d = self.model, self.data
        d.eq_active[self.hold] = 0  # let go: unbalanced finger forces now move the object
        self._step(RELEASE_TIME)
        _, obj_rot = self._pose(self.object_body)
        result.close_rotation_deg = float(np.rad2deg(_angle(obj_rot)))
        if not touching():
            result.status, result.lost_in = "missed", "close"
            return result
        if _angle(obj_rot) > MAX_CLOSE_ROTATION:
            result.status, result.lost_in = "rotated", "close"
            return result
        ref_pos, ref_rot = self._object_in_hand()
        m.opt.gravity[:] = self.gravity
        self._step(SETTLE_TIME)
        start = d.mocap_pos[0].copy()  # (3,) m
        quat0 = d.mocap_quat[0].copy()  # (4,)

        def lift(t):  # smoothstep from start to LIFT above it over LIFT_TIME
            s = min(t / LIFT_TIME, 1.0)
            return start + np.array([0, 0, LIFT * (3 * s * s - 2 * s ** 3)]), quat0

        self._step(LIFT_TIME + HOLD_TIME, lift)
        if not self._still_held(result, touching, ref_pos, ref_rot):
            result.lost_in = "lift"
            return result
        self._shake(start + np.array([0, 0, LIFT]), rot)
        self._step(HOLD_TIME)
        if not self._still_held(result, touching, ref_pos, ref_rot):
            result.lost_in = "shake"
            return result
        result.status, result.held = "held", True
        return result

    def _still_held(self, result: TrialResult, touching: Callable[[], bool], ref_pos: np.ndarray,
                    ref_rot: np.ndarray) -> bool:
        """Record the slip since ``ref_pos`` ``(3,)`` / ``ref_rot`` ``(3, 3)`` (hand frame); True while held."""
        pos, rot = self._object_in_hand()
        result.slip = float(np.linalg.norm(pos - ref_pos))
        result.slip_rotation_deg = float(np.rad2deg(_angle(ref_rot.T @ rot)))
        return touching() and result.slip < MAX_SLIP and np.deg2rad(result.slip_rotation_deg) < MAX_SLIP_ROTATION

    def _shake(self, centre: np.ndarray, rot: np.ndarray | None = None) -> None:
        """±SHAKE_AMPLITUDE along world x, y, z around ``centre`` ``(3,)``, then ±SHAKE_ANGLE about each hand
        axis (the columns of ``rot`` ``(3, 3)``; None: the world axes, the hand unrotated), at SHAKE_HZ."""
        duration = SHAKE_CYCLES / SHAKE_HZ
        quat0 = np.array([1.0, 0, 0, 0]) if rot is None else _quat_wxyz(rot)
        axes = np.eye(3) if rot is None else rot.T  # [3, 3]: one axis per row

        def wave(t):  # two cycles under a sin^2 window: starts and ends at rest
            return np.sin(2 * np.pi * SHAKE_HZ * t) * np.sin(np.pi * t / duration) ** 2

        def turned(axis: np.ndarray, angle: float) -> np.ndarray:
            turn = _axis_rotation(axis, angle)
            return _quat_wxyz(turn if rot is None else turn @ rot)

        for axis in np.eye(3):
            self._step(duration, lambda t, a=axis: (centre + SHAKE_AMPLITUDE * wave(t) * a, quat0))
        for axis in axes:
            self._step(duration, lambda t, a=axis: (centre, turned(a, SHAKE_ANGLE * wave(t))))
