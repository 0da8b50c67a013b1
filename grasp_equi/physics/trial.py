"""Close, lift, shake: one physical grasp trial in MuJoCo, and the "held" test.

Timeline (no table, gravity off until the jaws have closed, as in ACRONYM's floating-object
trials, so the trial judges the grasp and not a table or a fall before the jaws arrive):
1. place the open hand at the first collision-free approach around the closing line
   (open-gripper collisions are reported as ``collision``, never as a failed grasp);
2. close at ``close_speed`` until each finger pushes with ``grip_force``, the object held in
   place (as a table and its own inertia would), then let it go: if the jaws' forces are not
   in equilibrium the object squirts or turns. An object that turned more than
   ``MAX_CLOSE_ROTATION`` is ``rotated`` and counts as not held (the grasp that was labelled
   did not happen); if not both fingers touch it, the grasp ``missed`` (not held). Fingers
   that closed onto another part of the object (a jaw's centre of pressure more than
   ``OFF_TARGET`` from its sampled contact, e.g. a pad landing on a mug's handle) did not
   execute the labelled grasp either: ``off_target``, reported apart like collisions (with
   fingertip pads only; flat jaws always settle away from the sampled points, see ``drift``);
3. gravity on, lift 10 cm, then shake: ±1.5 cm at 3 Hz along world x, y, z, then ±15° about
   each hand axis;
4. held = the object rose with the hand, both fingers still touch it, and it moved less than
   ``MAX_SLIP`` / turned less than ``MAX_SLIP_ROTATION`` relative to the hand since closing.
Everything is deterministic: no random numbers, a fresh ``MjData`` state for every trial.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import mujoco
import numpy as np

from .scene import JawSpec, build_mjcf, hand_frames, object_inertial
from .pieces import convex_pieces

MAX_CLOSE_ROTATION = np.deg2rad(10.0)
MAX_SLIP = 0.02  # metres of object-centre motion relative to the hand
MAX_SLIP_ROTATION = np.deg2rad(25.0)
LIFT = 0.10
SHAKE_AMPLITUDE = 0.015
SHAKE_ANGLE = np.deg2rad(15.0)
SHAKE_HZ = 3.0
SHAKE_CYCLES = 2
CLOSE_TIME, RELEASE_TIME, SETTLE_TIME, LIFT_TIME, HOLD_TIME = 0.5, 0.15, 0.1, 0.4, 0.1
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
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, np.ascontiguousarray(rot).ravel())
    return quat


def _angle(rot: np.ndarray) -> float:
    return float(np.arccos(np.clip((np.trace(rot) - 1) / 2, -1.0, 1.0)))


def _axis_rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    quat = np.zeros(4)
    mujoco.mju_axisAngle2Quat(quat, axis, angle)
    rot = np.zeros(9)
    mujoco.mju_quat2Mat(rot, quat)
    return rot.reshape(3, 3)


class GraspSimulator:
    """One object's scene, compiled once; ``trial(contacts)`` runs one grasp from a fresh state."""

    def __init__(self, mesh, mass: float, spec: JawSpec | None = None, pieces: list[np.ndarray] | None = None,
                 timestep: float = 0.002):
        self.spec = spec or JawSpec()
        if not (np.isfinite(mass) and mass > 0):
            raise ValueError(f"object mass must be positive; got {mass}")
        self.pieces = convex_pieces(mesh) if pieces is None else pieces
        com, inertia = object_inertial(mesh, mass)
        self.model = mujoco.MjModel.from_xml_string(build_mjcf(self.pieces, mass, com, inertia, self.spec, timestep))
        self.data = mujoco.MjData(self.model)
        m = self.model
        body = lambda name: mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, name)  # noqa: E731
        geom = lambda name: mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, name)  # noqa: E731
        self.object_body, self.hand_body = body("object"), body("hand")
        self.object_geoms = set(np.flatnonzero(m.geom_bodyid == self.object_body).tolist())
        self.pads = tuple(g for g in (geom("pad_left"), geom("pad_right")) if g >= 0)
        # each finger touches through its box and (when it has one) its domed pad
        self.fingers = tuple({geom(f"finger_{s}")} | ({geom(f"pad_{s}")} if self.pads else set())
                             for s in ("left", "right"))
        self.finger_boxes = (geom("finger_left"), geom("finger_right"))
        self.gripper_geoms = (geom("palm"),) + self.finger_boxes + self.pads
        self.object_qpos = m.jnt_qposadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, "object")]
        self.hand_qpos = m.jnt_qposadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, "hand")]
        self.gravity = m.opt.gravity.copy()
        self.hold = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_EQUALITY, "hold")
        self.couple = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_EQUALITY, "couple")
        self.finger_qpos = [m.jnt_qposadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, n)]
                            for n in ("finger_left", "finger_right")]
        self._geom_near = self._near_filter()

    # ------------------------------------------------------------------ state helpers
    def _reset(self, position: np.ndarray, rot: np.ndarray, depth: float) -> None:
        m, d = self.model, self.data
        for pad in self.pads:
            m.geom_pos[pad, 2] = -depth  # the pad sits where the contact is
        mujoco.mj_resetData(m, d)
        d.qpos[self.object_qpos:self.object_qpos + 7] = [0, 0, 0, 1, 0, 0, 0]  # mesh frame = world
        d.qpos[self.hand_qpos:self.hand_qpos + 3] = position
        d.qpos[self.hand_qpos + 3:self.hand_qpos + 7] = _quat_wxyz(rot)
        d.mocap_pos[0], d.mocap_quat[0] = position, _quat_wxyz(rot)
        d.ctrl[:] = 0.0
        d.eq_active[self.hold] = 1
        d.eq_active[self.couple] = 0
        mujoco.mj_forward(m, d)

    def _near_filter(self):
        """Object geoms whose bounding sphere comes near a gripper geom (cheap pre-test for GJK)."""
        m = self.model
        objects = np.array(sorted(self.object_geoms))

        def near(g: int) -> np.ndarray:
            gap = np.linalg.norm(self.data.geom_xpos[objects] - self.data.geom_xpos[g], axis=1)
            return objects[gap <= m.geom_rbound[objects] + m.geom_rbound[g] + self.spec.clearance]
        return near

    def _collides(self) -> bool:
        for g in self.gripper_geoms:
            for o in self._geom_near(g):
                dist = mujoco.mj_geomDistance(self.model, self.data, g, o, self.spec.clearance, None)
                if dist < self.spec.clearance:
                    return True
        return False

    def _pose(self, body: int) -> tuple[np.ndarray, np.ndarray]:
        return self.data.xpos[body].copy(), self.data.xmat[body].reshape(3, 3).copy()

    def _object_in_hand(self) -> tuple[np.ndarray, np.ndarray]:
        hp, hr = self._pose(self.hand_body)
        op, orot = self._pose(self.object_body)
        return hr.T @ (self.data.xipos[self.object_body] - hp), hr.T @ orot

    def _finger_contacts(self) -> list[list[tuple[np.ndarray, np.ndarray, float]]]:
        """Per finger: (position, outward object normal, normal force) of each contact with the object."""
        out: list[list] = [[], []]
        force = np.zeros(6)
        for i in range(self.data.ncon):
            con = self.data.contact[i]
            pair = (int(con.geom1), int(con.geom2))
            for f, finger in enumerate(self.fingers):
                if (pair[0] in finger or pair[1] in finger) and (pair[0] in self.object_geoms
                                                                  or pair[1] in self.object_geoms):
                    mujoco.mj_contactForce(self.model, self.data, i, force)
                    normal = con.frame[:3].copy()  # from geom1 to geom2
                    if pair[0] in finger:
                        normal = -normal  # make it point from the object to the finger (outward)
                    out[f].append((con.pos.copy(), normal, float(abs(force[0]))))
        return out

    def _step(self, seconds: float, mocap=None) -> None:
        m, d = self.model, self.data
        for k in range(int(round(seconds / m.opt.timestep))):
            if mocap is not None:
                d.mocap_pos[0], d.mocap_quat[0] = mocap((k + 1) * m.opt.timestep)
            mujoco.mj_step(m, d)

    # ------------------------------------------------------------------ the trial
    def trial(self, contacts: np.ndarray) -> TrialResult:
        """Grasp the object at ``contacts`` ``(2, 3)`` (mesh frame) and report what happened."""
        contacts = np.asarray(contacts, dtype=np.float64)
        if contacts.shape != (2, 3) or not np.isfinite(contacts).all():
            raise ValueError(f"a jaw trial needs 2 finite contacts (2, 3); got shape {contacts.shape}")
        spec = self.spec
        if np.linalg.norm(contacts[0] - contacts[1]) > spec.opening - 2 * spec.clearance:
            return TrialResult("too_wide", None)
        for position, rot, depth in hand_frames(contacts, spec):
            self._reset(position, rot, depth)
            if not self._collides():
                break
        else:
            return TrialResult("collision", None)
        result = TrialResult("dropped", False, approach=rot[:, 2].copy())
        m, d = self.model, self.data
        m.opt.gravity[:] = 0.0
        try:
            self._close()
            self._record_jaws(result, contacts)  # the object is still held where it was sampled
            if not np.isfinite(result.drift):
                result.status, result.lost_in = "missed", "close"
                return result
            if self.pads and result.drift > OFF_TARGET:  # flat jaws always settle elsewhere: see drift
                result.status, result.held = "off_target", None
                return result
            d.eq_active[self.hold] = 0  # let go: unbalanced jaw forces now move the object
            self._step(RELEASE_TIME)
            _, obj_rot = self._pose(self.object_body)
            result.close_rotation_deg = float(np.rad2deg(_angle(obj_rot)))
            if not all(self._finger_contacts()):
                result.status, result.lost_in = "missed", "close"
                return result
            if _angle(obj_rot) > MAX_CLOSE_ROTATION:
                result.status, result.lost_in = "rotated", "close"
                return result
            ref_pos, ref_rot = self._object_in_hand()
            m.opt.gravity[:] = self.gravity
            self._step(SETTLE_TIME)
            start = d.mocap_pos[0].copy()
            quat0 = d.mocap_quat[0].copy()

            def lift(t):
                s = min(t / LIFT_TIME, 1.0)
                return start + np.array([0, 0, LIFT * (3 * s * s - 2 * s ** 3)]), quat0

            self._step(LIFT_TIME + HOLD_TIME, lift)
            if not self._still_held(result, ref_pos, ref_rot):
                result.lost_in = "lift"
                return result
            self._shake(start + np.array([0, 0, LIFT]), rot)
            self._step(HOLD_TIME)
            if not self._still_held(result, ref_pos, ref_rot):
                result.lost_in = "shake"
                return result
            result.status, result.held = "held", True
            return result
        finally:
            m.opt.gravity[:] = self.gravity

    def _close(self) -> None:
        """Move both finger targets inward at ``close_speed`` to fully closed, then wait."""
        full = self.spec.opening / 2
        m, d = self.model, self.data
        for k in range(int(round(CLOSE_TIME / m.opt.timestep))):
            d.ctrl[:] = min(self.spec.close_speed * (k + 1) * m.opt.timestep, full)
            mujoco.mj_step(m, d)
        left, right = (d.qpos[i] for i in self.finger_qpos)
        m.eq_data[self.couple, 0] = left - right  # q_left = (left - right) + q_right from now on
        d.eq_active[self.couple] = 1

    def _record_jaws(self, result: TrialResult, contacts: np.ndarray) -> None:
        """Where each jaw actually presses (force-weighted centre), in the object's mesh frame."""
        per_finger = self._finger_contacts()
        if not all(per_finger):
            return
        op, orot = self._pose(self.object_body)
        drifts = []
        for f, touches in enumerate(per_finger):
            pos = np.array([t[0] for t in touches])
            nrm = np.array([t[1] for t in touches])
            w = np.array([t[2] for t in touches]) + 1e-9
            centre = (pos * w[:, None]).sum(0) / w.sum()
            normal = (nrm * w[:, None]).sum(0)
            normal /= max(np.linalg.norm(normal), 1e-12)
            result.jaw_contacts[f] = orot.T @ (centre - op)
            result.jaw_normals[f] = orot.T @ normal
            drifts.append(np.linalg.norm(result.jaw_contacts[f] - contacts[f]))
        result.drift = float(max(drifts))

    def _still_held(self, result: TrialResult, ref_pos: np.ndarray, ref_rot: np.ndarray) -> bool:
        pos, rot = self._object_in_hand()
        result.slip = float(np.linalg.norm(pos - ref_pos))
        result.slip_rotation_deg = float(np.rad2deg(_angle(ref_rot.T @ rot)))
        touching = all(self._finger_contacts())
        return touching and result.slip < MAX_SLIP and np.deg2rad(result.slip_rotation_deg) < MAX_SLIP_ROTATION

    def _shake(self, centre: np.ndarray, rot: np.ndarray) -> None:
        """±SHAKE_AMPLITUDE along world x, y, z, then ±SHAKE_ANGLE about each hand axis, at SHAKE_HZ."""
        duration = SHAKE_CYCLES / SHAKE_HZ
        quat0 = _quat_wxyz(rot)

        def wave(t):  # two cycles under a sin^2 window: starts and ends at rest
            return np.sin(2 * np.pi * SHAKE_HZ * t) * np.sin(np.pi * t / duration) ** 2

        for axis in np.eye(3):
            self._step(duration, lambda t, a=axis: (centre + SHAKE_AMPLITUDE * wave(t) * a, quat0))
        for k in range(3):
            hand_axis = rot[:, k]
            self._step(duration, lambda t, a=hand_axis: (
                centre, _quat_wxyz(_axis_rotation(a, SHAKE_ANGLE * wave(t)) @ rot)))
