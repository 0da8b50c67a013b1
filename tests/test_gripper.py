"""Jaw closing (``grasp_poses`` -> contacts), ROS-free."""

from __future__ import annotations

import numpy as np
import pytest

from grasp_equi.geometry import random_rotation
from grasp_equi.gripper import JawGeometry, close_jaws, matrix_to_quaternion, quaternion_to_matrix


def box_surface(half=(0.02, 0.03, 0.02), n=4000, rng=None) -> np.ndarray:
    """Points on the surface of an axis-aligned box centred at the origin."""
    rng = np.random.default_rng(0) if rng is None else rng
    pts = rng.uniform(-1, 1, size=(n, 3)) * half
    face = rng.integers(0, 3, size=n)
    sign = rng.choice([-1.0, 1.0], size=n)
    pts[np.arange(n), face] = sign * np.asarray(half)[face]
    return pts


IDENTITY = np.array([[0.0, 0.0, 0.0, 1.0]])


def test_quaternion_roundtrip(rng):
    for _ in range(20):
        rot = random_rotation(rng)
        np.testing.assert_allclose(quaternion_to_matrix(matrix_to_quaternion(rot))[0], rot, atol=1e-9)
    for angle in (np.pi, np.pi - 1e-9):  # traces near -1: the branch a naive formula gets wrong
        for axis in np.eye(3):
            rot = 2 * np.outer(axis, axis) * (1 - np.cos(angle)) / 2 + np.cos(angle) * np.eye(3)
            rot += np.sin(angle) * np.cross(np.eye(3), axis)
            np.testing.assert_allclose(quaternion_to_matrix(matrix_to_quaternion(rot))[0], rot, atol=1e-7)
    np.testing.assert_allclose(quaternion_to_matrix(IDENTITY * 3.0)[0], np.eye(3))  # normalised


def test_jaws_close_on_the_box_sides():
    pts = box_surface()
    # origin 1 cm inside the top face, approaching along +z: pads sweep z in [-0.02, 0.01] of the box
    contacts, valid = close_jaws(pts, [[0.0, 0.0, 0.01]], IDENTITY, JawGeometry(0.08, 0.03, 0.02))
    assert valid.tolist() == [True]
    # the +y pad touches the +y face (patch centre within the 2 mm contact tolerance)
    np.testing.assert_allclose(contacts[0, :, 1], [0.03, -0.03], atol=0.002)
    assert np.all(np.abs(contacts[0, :, 0]) <= 0.01) and np.all(contacts[0, :, 2] <= 0.01)
    # contacts lie on the object (within a couple of mm of a cloud point)
    assert all(np.min(np.linalg.norm(pts - c, axis=1)) < 0.003 for c in contacts[0])


def test_jaws_move_rigidly_with_cloud_and_pose(rng):
    pts = box_surface(rng=rng)
    pos = np.array([[0.0, 0.0, 0.012], [0.005, -0.002, 0.003]])  # pad ends off the box faces
    rots = [np.eye(3), random_rotation(rng)]
    quats = matrix_to_quaternion(np.stack(rots))
    base, valid = close_jaws(pts, pos, quats, JawGeometry())
    assert valid.all()
    rot, trans = random_rotation(rng), rng.normal(size=3)
    moved_pts = pts @ rot.T + trans
    moved_quats = matrix_to_quaternion(np.stack([rot @ r for r in rots]))
    moved, valid2 = close_jaws(moved_pts, pos @ rot.T + trans, moved_quats, JawGeometry())
    assert valid2.all()
    np.testing.assert_allclose(moved, base @ rot.T + trans, atol=1e-9)


def test_no_object_between_the_pads_is_invalid():
    pts = box_surface()
    far = np.array([[0.5, 0.5, 0.5]])
    contacts, valid = close_jaws(pts, far, IDENTITY, JawGeometry())
    assert valid.tolist() == [False] and np.isnan(contacts).all()
    # a narrow opening entirely inside the box's empty interior touches nothing either
    contacts, valid = close_jaws(pts, [[0.0, 0.0, 0.0]], IDENTITY, JawGeometry(0.02, 0.005, 0.005))
    assert valid.tolist() == [False]


def test_bad_poses_are_rejected():
    pts = box_surface()
    with pytest.raises(ValueError, match="quaternion"):
        close_jaws(pts, [[0, 0, 0]], [[0, 0, 0, 0]], JawGeometry())
    with pytest.raises(ValueError, match="quaternion"):
        close_jaws(pts, [[0, 0, 0]], [[np.nan, 0, 0, 1]], JawGeometry())
    with pytest.raises(ValueError, match="NaN"):
        close_jaws(pts, [[np.nan, 0, 0]], IDENTITY, JawGeometry())
    with pytest.raises(ValueError, match="max_width"):
        JawGeometry(max_width=0.0)
