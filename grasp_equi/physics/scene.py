"""MuJoCo scene for one object and a parallel-jaw gripper (MJCF built as a string, no files).

- The object is ONE free body made of convex mesh pieces (``pieces.convex_pieces``) with the
  mass and inertia of the solid mesh, Coulomb friction ``mu`` with soft-finger torsion
  (``mu * patch_radius``, condim 4, the analytic labels' contact model) and elliptic cones.
- The gripper is a palm and two box fingers on slide joints, each driven by a position
  actuator whose force is limited to ``grip_force`` (the target is "fully closed", so a finger
  pressing on the object pushes with exactly the limit). The hand is a free body welded to a
  mocap body that the trial moves; gravity compensation keeps its own weight off the weld.

Hand frame (same contract as ``grasp_equi.gripper``): +z approach, fingers close along ±y,
origin midway between the fingertips. Finger +y ("left") touches the grasp's first contact.
With pads (the default, "fingertips"), each finger touches through a 5 mm rubber fingertip
that the trial places at the contact's depth, i.e. the point contact with a soft patch that
the labels model. The finger boxes then only carry the pads: they count for placing the open
gripper (no overlap with the object) but do not collide while closing, because the grasp
samplers guarantee a free line between the contacts, not a free finger-sized slab; with
``pad_radius=0`` ("flat") the boxes themselves are the jaws, and settle where the geometry
lets them (docs/design.md: flat jaws drift from the sampled points).
The fingers close independently (so each finds its side while the object is held in place),
then an equality constraint gears them together like a real parallel gripper's linkage, so
an object with a weight component along the closing axis cannot slide the pair sideways.
"""

from __future__ import annotations


import numpy as np
import trimesh

from grasp_equi.physics.jaw import JawSpec  # noqa: F401  (re-exported)


# Stiff but stable contacts at a 2 ms step: ~0.3 mm penetration at 40 N, no chatter.
SOLREF = "0.008 1"
SOLIMP = "0.95 0.99 0.001"


def object_inertial(mesh: trimesh.Trimesh, mass: float) -> tuple[np.ndarray, np.ndarray]:
    """Centre of mass ``(3,)`` and inertia ``(3, 3)`` about it of ``mesh`` as a uniform solid of ``mass``.

    Open meshes use their convex hull's solid (the best available guess of their volume).
    """
    solid = mesh if (mesh.is_watertight and mesh.volume > 0) else mesh.convex_hull
    density = mass / solid.volume
    return np.asarray(solid.center_mass, dtype=np.float64), np.asarray(solid.moment_inertia) * density


def _floats(values) -> str:
    return " ".join(f"{v:.9g}" for v in np.ravel(values))


def contact_friction(spec: JawSpec) -> str:
    """MJCF ``friction`` of every contact: Coulomb mu, soft-finger torsion mu * patch_radius, rolling ~0."""
    return f"{spec.mu:.6g} {spec.mu * spec.patch_radius:.6g} 0.0001"


def object_mjcf(pieces: list[np.ndarray], mass: float, com: np.ndarray, inertia: np.ndarray,
                spec: JawSpec) -> tuple[str, str]:
    """``(assets, body)``: the object's convex pieces as mesh assets and its free body (the solid mesh's
    mass and inertia), MJCF shared by the jaw and the fingertip scenes."""
    friction = contact_friction(spec)
    assets = "\n".join(f'    <mesh name="piece{i}" vertex="{_floats(p)}"/>' for i, p in enumerate(pieces))
    geoms = "\n".join(f'      <geom name="piece{i}" type="mesh" mesh="piece{i}" friction="{friction}" '
                      f'condim="4" solref="{SOLREF}" solimp="{SOLIMP}" rgba="0.8 0.6 0.3 1"/>'
                      for i in range(len(pieces)))
    full = [inertia[0, 0], inertia[1, 1], inertia[2, 2], inertia[0, 1], inertia[0, 2], inertia[1, 2]]
    body = f"""    <body name="object">
      <freejoint name="object"/>
      <inertial pos="{_floats(com)}" mass="{mass:.9g}" fullinertia="{_floats(full)}"/>
{geoms}
    </body>"""
    return assets, body


def build_mjcf(pieces: list[np.ndarray], mass: float, com: np.ndarray, inertia: np.ndarray,
               spec: JawSpec, timestep: float = 0.002) -> str:
    """MJCF text of the scene. The object body frame is the mesh frame (pieces as given)."""
    friction = contact_friction(spec)
    assets, object_body = object_mjcf(pieces, mass, com, inertia, spec)
    half_open = spec.opening / 2
    face = half_open + (spec.pad_height if spec.pad_radius > 0 else 0.0)  # inner face of each finger box
    fx, fy, fz = spec.finger_width / 2, spec.finger_thickness / 2, spec.finger_length / 2
    palm_half_y = face + spec.finger_thickness
    palm_z = -spec.finger_length - spec.palm_thickness / 2
    kp = spec.grip_force / 0.002  # saturates at grip_force once the finger is 2 mm short of its target
    damping = 2 * np.sqrt(kp * 0.03)  # critical for a 30 g finger
    # with pads, only the pads (and the palm) touch things: the boxes just carry them
    touch = ' contype="0" conaffinity="0"' if spec.pad_radius > 0 else ""
    finger = ('<geom name="{name}" type="box" size="{fx} {fy} {fz}" pos="0 {y} {z}" friction="{friction}" '
              'condim="4" solref="{solref}" solimp="{solimp}" mass="0.03" rgba="0.3 0.3 0.35 1"' + touch + '/>')
    left = finger.format(solref=SOLREF, solimp=SOLIMP, name="finger_left", fx=fx, fy=fy, fz=fz, y=face + fy, z=-fz,
                         friction=friction)
    right = finger.format(solref=SOLREF, solimp=SOLIMP, name="finger_right", fx=fx, fy=fy, fz=fz, y=-face - fy,
                          z=-fz, friction=friction)
    if spec.pad_radius > 0:  # the trial moves each pad along z to where the grasp's contact sits
        pad = ('<geom name="{name}" type="sphere" size="{r}" pos="0 {y} {z}" friction="{friction}" condim="4" '
               'solref="{solref}" solimp="{solimp}" mass="0.005" rgba="0.2 0.2 0.2 1"/>')
        centre = half_open + spec.pad_radius
        left += "\n        " + pad.format(name="pad_left", r=spec.pad_radius, y=centre, z=-spec.contact_depths[0],
                                         friction=friction, solref=SOLREF, solimp=SOLIMP)
        right += "\n        " + pad.format(name="pad_right", r=spec.pad_radius, y=-centre, z=-spec.contact_depths[0],
                                          friction=friction, solref=SOLREF, solimp=SOLIMP)
    return f"""<mujoco model="grasp_trial">
  <compiler angle="radian" autolimits="true"/>
  <!-- a mug or torus is hundreds of convex pieces: the default arena (~14 MB) overflowed while
       checking the open gripper for collisions, and MuJoCo then drops contacts silently -->
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
      <geom name="palm" type="box" size="{fx * 1.5} {palm_half_y} {spec.palm_thickness / 2}" pos="0 0 {palm_z}"
            mass="0.4" rgba="0.3 0.3 0.35 1"/>
      <body name="finger_left" gravcomp="1">
        <joint name="finger_left" type="slide" axis="0 -1 0" range="0 {half_open}" damping="{damping:.6g}"/>
        {left}
      </body>
      <body name="finger_right" gravcomp="1">
        <joint name="finger_right" type="slide" axis="0 1 0" range="0 {half_open}" damping="{damping:.6g}"/>
        {right}
      </body>
    </body>
  </worldbody>
  <equality>
    <weld body1="target" body2="hand" solref="0.01 1"/>
    <weld name="hold" body1="object" solref="0.004 1"/>
    <!-- a parallel gripper's fingers are geared together: once both touch, they move as one -->
    <joint name="couple" joint1="finger_left" joint2="finger_right" polycoef="0 1 0 0 0" active="false"/>
  </equality>
  <contact>
    <exclude body1="hand" body2="finger_left"/>
    <exclude body1="hand" body2="finger_right"/>
  </contact>
  <actuator>
    <position name="finger_left" joint="finger_left" kp="{kp:.6g}" ctrlrange="0 {half_open}"
              forcerange="{-spec.grip_force} {spec.grip_force}"/>
    <position name="finger_right" joint="finger_right" kp="{kp:.6g}" ctrlrange="0 {half_open}"
              forcerange="{-spec.grip_force} {spec.grip_force}"/>
  </actuator>
</mujoco>
"""


def hand_frames(contacts: np.ndarray, spec: JawSpec, num_angles: int = 16) -> list[tuple]:
    """Candidate hand poses ``[(position (3,), rotation (3, 3) columns = hand x, y, z, contact depth)]``.

    The fingers close along the line between the contacts (+y toward ``contacts[0]``); the
    approach direction turns around that line in ``num_angles`` steps, ordered from "from
    above" (approach along world -z) to "from below", and for each the contacts may sit at
    any of ``spec.contact_depths`` behind the fingertips, so a trial takes the most natural
    pose whose open gripper does not collide.
    """
    c0, c1 = np.asarray(contacts, dtype=np.float64)
    axis = c0 - c1
    width = float(np.linalg.norm(axis))
    if width < 1e-6:
        raise ValueError("the two contacts coincide: no closing direction")
    y = axis / width
    helper = np.array([0.0, 0.0, 1.0]) if abs(y[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    u = np.cross(y, helper)
    u /= np.linalg.norm(u)
    v = np.cross(y, u)
    mid = (c0 + c1) / 2
    rotations = []
    for theta in 2 * np.pi * np.arange(num_angles) / num_angles:
        z = np.cos(theta) * u + np.sin(theta) * v  # approach, perpendicular to the closing line
        rotations.append(np.stack([np.cross(y, z), y, z], axis=1))  # columns x, y, z (right-handed)
    rotations.sort(key=lambda r: float(r[2, 2]))  # most downward approach first (stable sort)
    return [(mid + rot[:, 2] * depth, rot, depth) for rot in rotations for depth in spec.contact_depths]
