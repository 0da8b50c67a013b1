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
The scene set-up and everything after the closing (let go, lift, shake, the held test) are
``hand.HandSimulator``'s, shared with the fingertip hand; this module places and closes the jaws.
"""

from __future__ import annotations

import mujoco
import numpy as np

from .hand import (EXCLUDED, HOLD_TIME, LIFT, LIFT_TIME, MAX_CLOSE_ROTATION, MAX_SLIP,  # noqa: F401  (re-exported)
                   MAX_SLIP_ROTATION, OFF_TARGET, RELEASE_TIME, SETTLE_TIME, SHAKE_AMPLITUDE, SHAKE_ANGLE,
                   SHAKE_CYCLES, SHAKE_HZ, HandSimulator, TrialResult, _quat_wxyz)
from .scene import JawSpec, build_mjcf, hand_frames

CLOSE_TIME = 0.5  # seconds the jaws close for


class GraspSimulator(HandSimulator):
    """One object's scene with the parallel jaws, compiled once; ``trial(contacts)`` runs one grasp from a fresh
    state (``HandSimulator``: ``mass`` in kg, positive; ``timestep`` in seconds)."""

    def __init__(self, mesh, mass: float, spec: JawSpec | None = None, pieces: list[np.ndarray] | None = None,
                 timestep: float = 0.002):
        super().__init__(mesh, mass, spec, pieces, timestep)
        m = self.model
        geom = lambda name: mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, name)  # noqa: E731
        self.pads = tuple(g for g in (geom("pad_left"), geom("pad_right")) if g >= 0)
        # each finger touches through its box and (when it has one) its domed pad
        self.fingers = tuple({geom(f"finger_{s}")} | ({geom(f"pad_{s}")} if self.pads else set())
                             for s in ("left", "right"))
        self.finger_boxes = (geom("finger_left"), geom("finger_right"))
        self.gripper_geoms = (geom("palm"),) + self.finger_boxes + self.pads
        self.couple = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_EQUALITY, "couple")
        self.finger_qpos = [m.jnt_qposadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, n)]
                            for n in ("finger_left", "finger_right")]
        self._geom_near = self._near_filter()

    def _mjcf(self, mass: float, com: np.ndarray, inertia: np.ndarray, timestep: float) -> str:
        return build_mjcf(self.pieces, mass, com, inertia, self.spec, timestep)

    # ------------------------------------------------------------------ state helpers
    def _reset(self, position: np.ndarray, rot: np.ndarray, depth: float) -> None:
        """Fresh state with the open hand at ``position`` ``(3,)`` m, ``rot`` ``(3, 3)``, pads at ``depth`` m."""
        for pad in self.pads:
            self.model.geom_pos[pad, 2] = -depth  # the pad sits where the contact is
        self._reset_state(position, _quat_wxyz(rot))  # the fingers' couple starts off (MJCF active="false")

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
        with self._weightless():
            self._close()
            self._record_jaws(result, contacts)  # the object is still held where it was sampled
            if not np.isfinite(result.drift):
                result.status, result.lost_in = "missed", "close"
                return result
            if self.pads and result.drift > OFF_TARGET:  # flat jaws always settle elsewhere: see drift
                result.status, result.held = "off_target", None
                return result
            return self._release_lift_shake(result, lambda: all(self._finger_contacts()), rot)

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
