"""Grasp-quality labels: canonical force-closure cases, rigid-motion invariance, Nguyen agreement."""

from __future__ import annotations

import numpy as np
import pytest

from grasp_equi.geometry import random_rotation, rotation_about_axis
from grasp_equi.quality import ferrari_canny, label_grasps, robust_force_closure

BOX_HALF = np.array([0.03, 0.04, 0.015])  # a 6 x 8 x 3 cm box centred at the origin
ORIGIN = np.zeros(3)
BOX_RADIUS = float(np.linalg.norm(BOX_HALF))


def test_antipodal_pair_through_box_centre_is_force_closure(rng):
    contacts = np.array([[BOX_HALF[0], 0, 0], [-BOX_HALF[0], 0, 0]])
    normals = np.array([[1.0, 0, 0], [-1.0, 0, 0]])
    assert ferrari_canny(contacts, normals, ORIGIN, BOX_RADIUS) > 0.01
    assert robust_force_closure(contacts, normals, ORIGIN, BOX_RADIUS, rng=rng) >= 0.9


def test_two_contacts_on_one_face_are_not_force_closure(rng):
    contacts = np.array([[BOX_HALF[0], 0.01, 0], [BOX_HALF[0], -0.01, 0.005]])
    normals = np.array([[1.0, 0, 0], [1.0, 0, 0]])
    assert ferrari_canny(contacts, normals, ORIGIN, BOX_RADIUS) == 0.0
    assert robust_force_closure(contacts, normals, ORIGIN, BOX_RADIUS, rng=rng) == 0.0


def test_pair_whose_line_leaves_the_friction_cone_is_not_force_closure(rng):
    # opposite faces, but the contacts are offset so the line makes 45 deg with the normals (> atan 0.5 = 26.6 deg)
    contacts = np.array([[BOX_HALF[0], 0.03, 0], [-BOX_HALF[0], -0.03, 0]])
    normals = np.array([[1.0, 0, 0], [-1.0, 0, 0]])
    assert ferrari_canny(contacts, normals, ORIGIN, BOX_RADIUS) == 0.0
    assert robust_force_closure(contacts, normals, ORIGIN, BOX_RADIUS, rng=rng) < 0.5
    # the same offset inside the cone (14 deg) holds
    inside = np.array([[BOX_HALF[0], 0.0075, 0], [-BOX_HALF[0], -0.0075, 0]])
    assert ferrari_canny(inside, normals, ORIGIN, BOX_RADIUS) > 0


def test_three_fingers_at_120_degrees_around_a_cylinder_are_force_closure(rng):
    angles = np.deg2rad([0.0, 120.0, 240.0])
    radial = np.stack([np.cos(angles), np.sin(angles), np.zeros(3)], axis=1)  # outward normals
    contacts = 0.025 * radial + np.array([0, 0, 0.01])  # 2.5 cm radius, a bit above the centre
    radius = float(np.hypot(0.025, 0.05))  # 10 cm tall cylinder
    assert ferrari_canny(contacts, radial, ORIGIN, radius) > 0.01
    assert robust_force_closure(contacts, radial, ORIGIN, radius, rng=rng) >= 0.9


def test_two_hard_contacts_are_never_6d_force_closure(rng):
    # torque about the line through two point contacts cannot be resisted: always 0 with soft=False
    for _ in range(40):
        d = rng.normal(size=3)
        d /= np.linalg.norm(d)
        tilt = rotation_about_axis(rng.normal(size=3), rng.uniform(0, 0.3))
        contacts = np.stack([0.03 * d, -0.03 * d]) + rng.normal(scale=0.002, size=(2, 3))
        normals = np.stack([tilt @ d, -(tilt.T @ d)])
        assert ferrari_canny(contacts, normals, ORIGIN, 0.05, soft=False) == 0.0
        assert robust_force_closure(contacts, normals, ORIGIN, 0.05, soft=False, samples=6, rng=rng) == 0.0
    # while the same perfectly antipodal pair with soft fingers is in force closure
    assert ferrari_canny(np.stack([0.03 * d, -0.03 * d]), np.stack([d, -d]), ORIGIN, 0.05) > 0


def _ellipsoid_grasps(rng, k, g=12, axes=(0.04, 0.03, 0.02)):
    """Half spread evenly around a random axis (mostly stable), half random (mostly not)."""
    axes = np.asarray(axes)
    d = rng.normal(size=(g, k, 3))
    axis = rng.normal(size=(g // 2, 3))
    v = np.cross(axis, rng.normal(size=(g // 2, 3)))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    w = np.cross(axis / np.linalg.norm(axis, axis=1, keepdims=True), v)
    angles = 2 * np.pi * np.arange(k) / k + rng.normal(scale=0.2, size=(g // 2, k))
    d[: g // 2] = np.cos(angles)[..., None] * v[:, None] + np.sin(angles)[..., None] * w[:, None]
    pts = d / np.sqrt(((d / axes) ** 2).sum(axis=-1, keepdims=True))  # ray from the centre to the surface
    normals = pts / axes**2
    return pts, normals / np.linalg.norm(normals, axis=-1, keepdims=True)


@pytest.mark.parametrize("k", [2, 3, 4, 5])
@pytest.mark.parametrize("reflect", [False, True])
def test_labels_invariant_under_rigid_motion(k, reflect):
    rng = np.random.default_rng(10 + k)
    contacts, normals = _ellipsoid_grasps(rng, k)
    center = np.array([0.001, -0.002, 0.0005])
    rot = random_rotation(rng, reflect=reflect)
    shift = rng.normal(size=3)
    moved_c, moved_n, moved_o = contacts @ rot.T + shift, normals @ rot.T, center @ rot.T + shift
    lab, eps = label_grasps(contacts, normals, center, 0.05, samples=16, rng=np.random.default_rng(3))
    lab_m, eps_m = label_grasps(moved_c, moved_n, moved_o, 0.05, samples=16, rng=np.random.default_rng(3))
    np.testing.assert_allclose(eps_m, eps, atol=1e-6)
    if not reflect:  # a mirror flips the handedness of the tangent frames the noise is drawn in:
        np.testing.assert_array_equal(lab_m, lab)  # the robust label is then equal only in distribution
    assert (eps > 0).any() and (eps == 0).any()  # both classes: not a vacuous comparison
    assert (lab > 0.5).any() and (lab < 0.5).any()


def _nguyen_margin(c, n, mu):
    """Signed margin (rad) of the Nguyen antipodal test: the line between the contacts must
    lie inside both friction cones; positive = inside by that angle."""
    line = (c[1] - c[0]) / np.linalg.norm(c[1] - c[0])
    a0 = np.arccos(np.clip(np.dot(-n[0], line), -1, 1))
    a1 = np.arccos(np.clip(np.dot(-n[1], -line), -1, 1))
    return np.arctan(mu) - max(a0, a1)


def test_k2_decision_agrees_with_nguyen_antipodal_test():
    rng = np.random.default_rng(7)
    mu = 0.5
    # The 8-edge pyramid is inscribed in the cone: its inner half-angle is atan(mu cos 22.5 deg).
    band = np.arctan(mu) - np.arctan(mu * np.cos(np.pi / 8))
    agree, tested, positives = 0, 0, 0
    for _ in range(300):
        d = rng.normal(size=3)
        d /= np.linalg.norm(d)
        tilt = rotation_about_axis(rng.normal(size=3), rng.uniform(0, 0.8))
        # symmetric pair about the centre: c1 = -c0, n1 = -n0
        n0 = tilt @ d
        c = np.stack([0.03 * d, -0.03 * d])
        n = np.stack([n0, -n0])
        margin = _nguyen_margin(c, n, mu)
        if -0.01 < margin < band + 0.01:  # too close to the (polyhedral vs circular) cone edge to call
            continue
        tested += 1
        closed = ferrari_canny(c, n, ORIGIN, 0.05, mu=mu) > 0
        positives += closed
        agree += closed == (margin > 0)
    assert tested > 200 and 30 < positives < tested - 30
    assert agree == tested


def test_bad_input_is_a_value_error():
    with pytest.raises(ValueError, match="K >= 2"):
        ferrari_canny(np.zeros((1, 3)), np.ones((1, 3)), ORIGIN, 0.05)
    with pytest.raises(ValueError, match="finite"):
        ferrari_canny(np.array([[0, 0, np.nan], [1, 0, 0]]), np.ones((2, 3)), ORIGIN, 0.05)
    with pytest.raises(ValueError, match="radius"):
        ferrari_canny(np.eye(3)[:2], np.eye(3)[:2], ORIGIN, 0.0)
