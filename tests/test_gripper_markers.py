"""Gripper drawings: the body's boxes at a pose, and the CUBE markers built from them."""

from __future__ import annotations

import numpy as np
import pytest

from grasp_equi.geometry import random_rotation
from grasp_equi.gripper import matrix_to_quaternion
from grasp_equi.poses import GripperBody, body_boxes, in_collision

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")

from std_msgs.msg import Header  # noqa: E402
from visualization_msgs.msg import Marker  # noqa: E402

from grasp_equi.ros.gripper_markers import BEST_COLOR, NAMESPACE, gripper_markers  # noqa: E402


def test_body_boxes_in_the_gripper_frame():
    body = GripperBody()
    jaw = body.jaw
    centres, sizes = body_boxes(np.zeros(3), np.eye(3), 0.05, body)
    np.testing.assert_allclose(sizes[0], [jaw.finger_width, body.finger_thickness, jaw.finger_depth])
    np.testing.assert_allclose(sizes[2], [jaw.finger_width, 0.05 + 2 * body.finger_thickness, body.palm_depth])
    np.testing.assert_allclose(centres[0], [0, 0.025 + body.finger_thickness / 2, -jaw.finger_depth / 2])
    np.testing.assert_allclose(centres[1], [0, -0.025 - body.finger_thickness / 2, -jaw.finger_depth / 2])
    np.testing.assert_allclose(centres[2], [0, 0, -jaw.finger_depth - body.palm_depth / 2])
    # a width beyond the opening is drawn fully open, never wider
    wide, _ = body_boxes(np.zeros(3), np.eye(3), 1.0, body)
    np.testing.assert_allclose(wide[0, 1], jaw.max_width / 2 + body.finger_thickness / 2)


def test_body_boxes_move_with_the_pose_and_match_the_collision_check():
    rng = np.random.default_rng(0)
    body = GripperBody()
    rot, pos = random_rotation(rng), rng.normal(size=3)
    centres, sizes = body_boxes(pos, rot, body.jaw.max_width, body)
    local, _ = body_boxes(np.zeros(3), np.eye(3), body.jaw.max_width, body)
    np.testing.assert_allclose(centres, local @ rot.T + pos, atol=1e-12)
    # a point at each open box's centre collides; one midway between the pads does not
    for centre in centres:
        assert in_collision(centre[None], pos[None], rot[None], body)[0]
    between = pos + rot @ np.array([0, 0, -body.jaw.finger_depth / 2])
    assert not in_collision(np.stack([between, between + 1e-3]), pos[None], rot[None], body)[0]


def test_gripper_markers_best_first_top_n_only():
    rng = np.random.default_rng(1)
    body = GripperBody()
    rotations = np.stack([random_rotation(rng) for _ in range(4)])
    positions = rng.normal(size=(4, 3))
    scores = np.array([0.2, 0.9, np.nan, 0.5])  # NaN: a pose left out, never drawn
    widths = np.array([0.03, 0.04, np.nan, 0.05])
    header = Header(frame_id="camera")
    markers = gripper_markers(header, positions, rotations, widths, scores, body, top_n=2)
    assert len(markers) == 6 and all(m.type == Marker.CUBE and m.ns == NAMESPACE for m in markers)
    assert [m.id for m in markers] == list(range(6)) and all(m.header.frame_id == "camera" for m in markers)
    assert markers[0].color == BEST_COLOR  # the best (index 1) is highlighted ...
    assert markers[3].color != BEST_COLOR and markers[3].color.a < 1  # ... the next translucent
    centres, sizes = body_boxes(positions[1], rotations[1], widths[1], body)
    quat = matrix_to_quaternion(rotations[1][None])[0]
    for part in range(3):
        m = markers[part]
        np.testing.assert_allclose([m.pose.position.x, m.pose.position.y, m.pose.position.z], centres[part])
        np.testing.assert_allclose([m.scale.x, m.scale.y, m.scale.z], sizes[part])
        np.testing.assert_allclose([m.pose.orientation.x, m.pose.orientation.y, m.pose.orientation.z,
                                    m.pose.orientation.w], quat)
    second = body_boxes(positions[3], rotations[3], widths[3], body)[0]
    np.testing.assert_allclose(markers[5].pose.position.x, second[2, 0])
    assert gripper_markers(header, positions, rotations, widths, scores, body, top_n=0) == []
    assert len(gripper_markers(header, positions, rotations, widths, scores, body, top_n=10)) == 9
