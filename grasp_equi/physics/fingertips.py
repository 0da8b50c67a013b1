"""A K-fingertip hand (K = 2..5) in MuJoCo: close, lift, shake, as the parallel-jaw trial does.

Each fingertip is a 5 mm rubber sphere (the jaws' pads: the labels' soft point contact) on its
own prismatic joint, closing from outside the object towards the centre of the grasp's contacts
through its sampled contact, pushed by a position actuator whose force is limited to
``grip_force`` (the jaw trial's randomised grip). The fingers' mounts are placed per trial
(``model.body_pos``/``body_quat``), so one compiled scene per object serves every grasp; unused
fingers rest at the hand's origin with their contacts off. Objects lighter than ``MIN_MASS`` are
simulated at that mass (MuJoCo's contact stiffness scales with mass). The hand is welded to a mocap body, as the jaws' is.

Timeline (``FingertipSimulator.trial``), the jaw trial's (``grasp_equi.physics.trial``):
1. place each open fingertip ``OPEN_OFFSETS`` behind its contact on its closing line; every
   fingertip must clear the object (else ``collision``: the grasp could not be executed);
2. gravity off, the object held in place: close at ``close_speed`` until each finger pushes with
   ``grip_force``; every fingertip must touch within ``OFF_TARGET`` of its contact (else
   ``missed`` / ``off_target``); then each finger holds its position (a stiff servo preloaded
   with ``grip_force`` that may push back up to ``HOLD_STIFFNESS`` times that, as a hand holding
   a posture; force-limited alone, K fingertips are a neutral equilibrium that drifts) and the
   object is let go: unbalanced
   forces turn it (``rotated``: more than ``MAX_CLOSE_ROTATION``);
3. gravity on, lift 10 cm, shake (±1.5 cm along x, y, z at 3 Hz, then ±15° about each axis);
4. held = every fingertip still touches and the object slipped less than ``MAX_SLIP`` /
   ``MAX_SLIP_ROTATION`` relative to the hand.
Deterministic: a fresh ``MjData`` state per trial, no random numbers.
"""

from __future__ import annotations

import mujoco
import numpy as np

from .hand import OFF_TARGET, HandSimulator, TrialResult, _quat_wxyz
from .jaw import MAX_FINGERS
from .scene import SOLIMP, SOLREF, JawSpec, contact_friction, object_mjcf

OPEN_OFFSETS = (0.015, 0.025, 0.04)  # m behind the contact where an open fingertip starts, tried in order
TRAVEL = 0.03  # m a fingertip may move past its contact while closing (then it has missed)
CLOSE_TIME = 0.5
HOLD_STIFFNESS = 3.0  # while holding, a servo may push up to this many times grip_force back
HOLD_KP = 4000.0  # N/m of a holding servo: stable at a 2 ms step with a 50 g fingertip (omega dt ~ 0.6)
TIP_MASS = 0.05  # kg
# MuJoCo's soft contacts and welds scale their stiffness with the bodies' mass: 40 N fingertips sank
# 1-2 cm into a 3 g object. (A fixed stiffness instead is unstable at a 2 ms step for such a body.)
# Lighter objects are simulated at this mass: their weight is far below any grip (20 N) either way.
MIN_MASS = 0.03  # kg
MAX_REACH = 0.06  # m from the grasp centre to a contact: a 12 cm hand span (the jaws open 10.5 cm)


def build_mjcf(pieces: list[np.ndarray], mass: float, com: np.ndarray, inertia: np.ndarray, spec: JawSpec,
               timestep: float = 0.002) -> str:
    """MJCF text: the object (as the jaw scene's) and a hand of ``MAX_FINGERS`` fingertips on slide joints."""
    friction = contact_friction(spec)
    assets, object_body = object_mjcf(pieces, mass, com, inertia, spec)
    kp = spec.grip_force / 0.002  # saturates at grip_force 2 mm short of the target
    damping = 2 * np.sqrt(HOLD_KP * TIP_MASS)  # critical while holding
    radius = spec.pad_radius if spec.pad_radius > 0 else 0.005
    fingers, actuators, excludes = [], [], []
    for k in range(MAX_FINGERS):
        fingers.append(f"""      <body name="mount{k}">
        <body name="tip{k}" gravcomp="1">
          <joint name="tip{k}" type="slide" axis="0 0 1" range="0 {TRAVEL + OPEN_OFFSETS[-1]}" damping="{damping:.6g}"/>
          <geom name="tip{k}" type="sphere" size="{radius}" friction="{friction}" condim="4" solref="{SOLREF}"
                solimp="{SOLIMP}" mass="{TIP_MASS}"/>
        </body>
      </body>""")
        actuators.append(f'    <position name="tip{k}" joint="tip{k}" kp="{kp:.6g}" '
                         f'ctrlrange="0 {TRAVEL + OPEN_OFFSETS[-1]}" forcerange="{-spec.grip_force} {spec.grip_force}"/>')
        excludes += [f'    <exclude body1="tip{k}" body2="tip{j}"/>' for j in range(k)]
    return f"""<mujoco model="fingertip_trial">
  <compiler angle="radian" autolimits="true"/>
  <size memory="256M"/>
  <option timestep="{timestep}" integrator="implicitfast" cone="elliptic" impratio="10"
          noslip_iterations="{spec.noslip_iterations}" gravity="0 0 -9.81"/>
  <asset>
{assets}
  </asset>
  <worldbody>
{object_body}
    <body name="target" mocap="true"/>
    <body name="hand" gravcomp="1">
      <freejoint name="hand"/>
      <inertial pos="0 0 0" mass="0.4" diaginertia="0.001 0.001 0.001"/>
{chr(10).join(fingers)}
    </body>
  </worldbody>
  <equality>
    <weld body1="target" body2="hand" solref="0.01 1"/>
    <weld name="hold" body1="object" solref="0.004 1"/>
  </equality>
  <contact>
{chr(10).join(excludes)}
  </contact>
  <actuator>
{chr(10).join(actuators)}
  </actuator>
</mujoco>
"""


def _frame_towards(direction: np.ndarray) -> np.ndarray:
    """A rotation whose z column is ``direction`` (unit)."""
    helper = np.array([1.0, 0.0, 0.0]) if abs(direction[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    x = np.cross(helper, direction)
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(direction, x), direction], axis=1)


class FingertipSimulator(HandSimulator):
    """One object's scene with a K-fingertip hand, compiled once; ``trial(contacts)`` runs one grasp
    (``HandSimulator``: ``mass`` in kg, positive, simulated at no less than ``MIN_MASS``; ``timestep`` in s)."""

    min_mass = MIN_MASS

    def __init__(self, mesh, mass: float, spec: JawSpec | None = None, pieces: list[np.ndarray] | None = None,
                 timestep: float = 0.002):
        super().__init__(mesh, mass, spec, pieces, timestep)
        m = self.model
        name = lambda kind, n: mujoco.mj_name2id(m, kind, n)  # noqa: E731
        self.mounts = [name(mujoco.mjtObj.mjOBJ_BODY, f"mount{k}") for k in range(MAX_FINGERS)]
        self.tips = [name(mujoco.mjtObj.mjOBJ_GEOM, f"tip{k}") for k in range(MAX_FINGERS)]
        self.tip_qpos = [m.jnt_qposadr[name(mujoco.mjtObj.mjOBJ_JOINT, f"tip{k}")] for k in range(MAX_FINGERS)]
        self.close_kp = float(m.actuator_gainprm[0, 0])

    def _mjcf(self, mass: float, com: np.ndarray, inertia: np.ndarray, timestep: float) -> str:
        return build_mjcf(self.pieces, mass, com, inertia, self.spec, timestep)

    def _place(self, contacts: np.ndarray, offset: float) -> np.ndarray:
        """Mount each used fingertip ``offset`` behind its contact, facing the grasp centre; the others sit at the
        hand's origin with their contacts off (far away, they made the hand's inertia, so how it follows the
        shake, depend on K). Returns the centre."""
        m = self.model
        centre = contacts.mean(axis=0)
        m.body_pos[self.mounts], m.body_quat[self.mounts] = 0.0, [1.0, 0.0, 0.0, 0.0]
        m.geom_contype[self.tips], m.geom_conaffinity[self.tips] = 0, 0
        m.geom_contype[self.tips[:len(contacts)]], m.geom_conaffinity[self.tips[:len(contacts)]] = 1, 1
        for k, contact in enumerate(contacts):
            inward = centre - contact
            inward /= np.linalg.norm(inward)
            m.body_pos[self.mounts[k]] = contact - centre - inward * (offset + self.spec.pad_radius)  # hand frame = world
            m.body_quat[self.mounts[k]] = _quat_wxyz(_frame_towards(inward))
        m.actuator_forcerange[:] = [-self.spec.grip_force, self.spec.grip_force]  # closing: force-limited
        m.actuator_gainprm[:, 0], m.actuator_biasprm[:, 1] = self.close_kp, -self.close_kp
        self._reset_state(centre, np.array([1.0, 0, 0, 0]))  # the hand unrotated: its frame is the world's
        return centre

    def _collides(self, num: int) -> bool:
        for k in range(num):
            for o in self.object_geoms:
                if mujoco.mj_geomDistance(self.model, self.data, self.tips[k], o, self.spec.clearance, None) \
                        < self.spec.clearance:
                    return True
        return False

    def _touches(self, num: int) -> list[list[tuple[np.ndarray, float]]]:
        """Per fingertip: (position, normal force) of each of its contacts with the object."""
        out: list[list] = [[] for _ in range(num)]
        force = np.zeros(6)
        for i in range(self.data.ncon):
            con = self.data.contact[i]
            pair = (int(con.geom1), int(con.geom2))
            for k in range(num):
                if self.tips[k] in pair and (pair[0] in self.object_geoms or pair[1] in self.object_geoms):
                    mujoco.mj_contactForce(self.model, self.data, i, force)
                    out[k].append((con.pos.copy(), float(abs(force[0]))))
        return out

    def trial(self, contacts: np.ndarray) -> TrialResult:
        """Grasp the object at ``contacts`` ``(K, 3)`` (mesh frame, 2 <= K <= 5) and report what happened."""
        contacts = np.asarray(contacts, dtype=np.float64)
        if contacts.ndim != 2 or contacts.shape[1] != 3 or not 2 <= len(contacts) <= MAX_FINGERS \
                or not np.isfinite(contacts).all():
            raise ValueError(f"a fingertip trial needs 2..{MAX_FINGERS} finite contacts (K, 3); got {contacts.shape}")
        if np.linalg.norm(contacts - contacts.mean(axis=0), axis=1).min() < 1e-6:
            raise ValueError("a contact sits at the grasp centre: no closing direction")
        num = len(contacts)
        if np.linalg.norm(contacts - contacts.mean(axis=0), axis=1).max() > MAX_REACH:
            return TrialResult("too_wide", None)
        for offset in OPEN_OFFSETS:
            centre = self._place(contacts, offset)
            if not self._collides(num):
                break
        else:
            return TrialResult("collision", None)
        result = TrialResult("dropped", False)
        m, d = self.model, self.data
        with self._weightless():
            goal = offset + TRAVEL
            for k in range(int(round(CLOSE_TIME / m.opt.timestep))):
                d.ctrl[:num] = min(self.spec.close_speed * (k + 1) * m.opt.timestep, goal)
                mujoco.mj_step(m, d)
            touches = self._touches(num)
            if not all(touches):
                result.status, result.lost_in = "missed", "close"
                return result
            pressed = np.array([sum(p * f for p, f in t) / max(sum(f for _, f in t), 1e-9) for t in touches])
            result.drift = float(np.linalg.norm(pressed - contacts, axis=1).max())
            if result.drift > OFF_TARGET:
                result.status, result.held = "off_target", None
                return result
            # hold the posture: a softer servo (HOLD_KP) whose target lies past where its fingertip stopped so
            # that it presses with grip_force, with room above that limit: pushed on, a fingertip pushes back
            m.actuator_forcerange[:num] = [-HOLD_STIFFNESS * self.spec.grip_force, HOLD_STIFFNESS * self.spec.grip_force]
            m.actuator_gainprm[:num, 0], m.actuator_biasprm[:num, 1] = HOLD_KP, -HOLD_KP
            d.ctrl[:num] = [d.qpos[self.tip_qpos[k]] + self.spec.grip_force / HOLD_KP for k in range(num)]
            return self._release_lift_shake(result, lambda: all(self._touches(num)))
