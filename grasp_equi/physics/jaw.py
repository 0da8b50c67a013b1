"""``JawSpec``: the simulated parallel-jaw gripper's parameters (standard library only)."""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_FINGERS = 5  # fingertips of the K-contact hand (grasp_equi.physics.fingertips): K = 2..5 are simulated


@dataclass(frozen=True)
class JawSpec:
    """Gripper and contact parameters (metres, newtons, kilograms)."""

    opening: float = 0.105  # finger-to-finger gap when open (grasps up to 0.085 m wide, plus clearance)
    finger_length: float = 0.045  # along the approach axis, back from the tip
    finger_width: float = 0.02  # along hand x
    finger_thickness: float = 0.008  # along hand y
    palm_thickness: float = 0.02
    contact_depths: tuple = (0.015, 0.008, 0.025, 0.035)  # where along the pads the contacts may sit, tried in order
    grip_force: float = 40.0  # per finger
    close_speed: float = 0.15  # m/s per finger
    mu: float = 0.5  # Coulomb friction (labels use 0.5)
    patch_radius: float = 0.005  # soft-finger torsion arm, as in the analytic labels
    pad_radius: float = 0.005  # rubber fingertip on each finger's inner face (0 = flat box jaws)
    pad_height: float = 0.002  # how far the dome stands out of the finger's face
    clearance: float = 0.001  # the open gripper must stay this far from the object
    # MuJoCo's contacts are soft: under a steady tangential load they creep even well inside
    # the friction cone (spheres squeezed 10-15 deg off their normals slid out of the jaws in
    # half of the trials). The noslip post-solver removes that creep, so a contact slips only
    # where Coulomb friction says it must. 0 = MuJoCo's default soft friction.
    noslip_iterations: int = 10

    def __post_init__(self):
        for name in ("opening", "finger_length", "finger_width", "finger_thickness", "palm_thickness",
                     "grip_force", "mu", "patch_radius"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"gripper {name} must be positive; got {value}")
        if self.noslip_iterations < 0:
            raise ValueError(f"noslip_iterations must be >= 0; got {self.noslip_iterations}")
        if self.pad_radius < 0 or (self.pad_radius > 0 and not 0 < self.pad_height <= self.pad_radius):
            raise ValueError(f"pads need 0 < pad_height <= pad_radius; got {self.pad_height}, {self.pad_radius}")
        if not all(0 < d < self.finger_length for d in self.contact_depths):
            raise ValueError(f"contact depths must lie within the finger length; got {self.contact_depths}")
