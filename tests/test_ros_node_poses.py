"""grasp_node over real DDS, parallel-jaw poses: `grasp_poses` requests closed like the API's jaws, and
`propose_cloud` proposals (free space, and a scene cloud with its table). The node's fixtures: ros_node_fixtures."""

from __future__ import annotations

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")

from ros_node_fixtures import TIMEOUT, api, as_f32, checkpoint, client, counts, node_log  # noqa: E402,F401
from ros_support import set_parameters  # noqa: E402
from visualization_msgs.msg import Marker  # noqa: E402

from grasp_equi.gripper import JawGeometry, close_jaws  # noqa: E402
from grasp_equi.poses import COLLISION, NO_CONTACT, SCORED, GripperBody, as_frames, in_collision  # noqa: E402

pytestmark = pytest.mark.ros


def test_grasp_poses_close_jaws_and_match_api(client, api):
    rng = np.random.default_rng(7)
    half = np.array([0.02, 0.03, 0.02])
    pts = rng.uniform(-1, 1, size=(4000, 3)) * half  # box surface (see test_gripper.py)
    face = rng.integers(0, 3, size=4000)
    pts[np.arange(4000), face] = rng.choice([-1.0, 1.0], size=4000) * half[face]
    # 0: from below, palm clear of the box; 1: misses; 2: palm clear; 3: from inside, palm in the box
    positions = np.array([[0.0, 0.0, -0.012], [0.5, 0.5, 0.5], [0.004, 0.0, 0.0], [0.0, 0.0, 0.012]])
    quats = np.array([[0.0, 0.0, 0.0, 1.0]] * 4)
    before = counts(client, poses_in_collision=0)
    key = client.request_poses(pts, positions, quats, frame="box")
    result = client.wait_result(key, TIMEOUT)
    assert result is not None and result.msg.header.frame_id == "box"
    ids, scores, reasons = result.per_pose()
    assert ids.tolist() == [0, 1, 2, 3]  # every input index comes back ...
    assert reasons.tolist() == [SCORED, NO_CONTACT, SCORED, COLLISION]  # ... with why it was left out
    assert np.isnan(scores[[1, 3]]).all() and result.p_force_closure is None
    contacts, valid = close_jaws(as_f32(pts), positions, quats, JawGeometry())
    assert valid.tolist() == [True, False, True, True]
    scored_rows = np.isin(result.grasp_id, [0, 2])
    np.testing.assert_allclose(result.points[scored_rows], as_f32(contacts[[0, 2]].reshape(-1, 3)), atol=1e-6)
    np.testing.assert_allclose(scores[[0, 2]], api.score(as_f32(pts), contacts[[0, 2]]), atol=1e-6)
    np.testing.assert_allclose(result.width[scored_rows], 0.06, atol=1e-3)  # closing along y: the 6 cm side
    ranked = client.wait_ranked(key, TIMEOUT)  # the scored poses, best first, header copied
    assert ranked is not None and ranked.header.frame_id == "box" and len(ranked.poses) == 2
    best = int(np.argmax(scores[[0, 2]])) * 2
    assert abs(ranked.poses[0].position.x - positions[best, 0]) < 1e-9
    after = counts(client, poses_in_collision=before["poses_in_collision"] + 1)
    assert after["poses_without_contact"] >= before["poses_without_contact"] + 1


def test_propose_cloud_publishes_ranked_poses(client):
    rng = np.random.default_rng(11)
    half = np.array([0.02, 0.045, 0.06])  # 4 x 9 x 12 cm box: only the 4 cm side fits the jaws
    pts = rng.uniform(-1, 1, size=(3000, 3)) * half
    face = rng.integers(0, 3, size=3000)
    pts[np.arange(3000), face] = rng.choice([-1.0, 1.0], size=3000) * half[face]
    pts += [0.3, -0.2, 0.8]  # away from the origin: poses are in the cloud's frame
    key = client.request_proposals(pts, frame="camera")
    ranked = client.wait_ranked(key, 3 * TIMEOUT)
    assert ranked is not None, "no ranked_poses answer"
    assert ranked.header.frame_id == "camera" and 1 <= len(ranked.poses) <= 5
    result = client.wait_result(key, TIMEOUT)
    assert result is not None and result.msg.header.frame_id == "camera"
    ids, scores, reasons = result.per_pose()
    assert ids.tolist() == list(range(len(ranked.poses))) and (reasons == 0).all()
    assert np.all(np.diff(scores) <= 0)  # best first
    # across the 4 cm side, the closing line within the friction cone (mu 0.5: 26.6 degrees) of the faces' normals
    assert np.all((result.width > 0.038) & (result.width < 0.04 / np.cos(np.arctan(0.5)) + 2e-3)), result.width
    poses = np.array([[p.position.x, p.position.y, p.position.z, p.orientation.x, p.orientation.y,
                       p.orientation.z, p.orientation.w] for p in ranked.poses])
    positions, rotations = as_frames(poses)
    assert not in_collision(as_f32(pts), positions, rotations, GripperBody()).any()
    assert np.all(np.abs(rotations[:, 0, 1]) > np.cos(np.arctan(0.5)) - 0.02)  # closing along the box's x
    markers = client.markers.get(key)
    assert markers is not None
    grippers = [m for m in markers.markers if m.ns == "grasp_equi/grippers"]
    assert len(grippers) == 3 * min(len(ranked.poses), 3) and all(m.type == Marker.CUBE for m in grippers)
    assert counts(client, proposals=len(ranked.poses))["proposals"] >= len(ranked.poses)


def test_propose_on_a_scene_cloud_avoids_the_table(client):
    rng = np.random.default_rng(12)
    grid = np.arange(-0.15, 0.15, 0.005)
    table = np.stack(np.meshgrid(grid, grid), -1).reshape(-1, 2)
    table = np.column_stack([table, rng.normal(scale=5e-4, size=len(table))])
    half = np.array([0.02, 0.045, 0.06])
    box = rng.uniform(-1, 1, size=(3000, 3)) * half
    face = rng.integers(0, 3, size=3000)
    box[np.arange(3000), face] = rng.choice([-1.0, 1.0], size=3000) * half[face]
    box = box[box[:, 2] > -0.058] + [0, 0, 0.06]  # standing on the table, bottom face unseen
    scene = np.concatenate([table, box])
    assert all(r.successful for r in set_parameters(client.node, "grasp_stability", {"scene.segment": True}))
    try:
        key = client.request_proposals(scene, frame="table")
        ranked = client.wait_ranked(key, 3 * TIMEOUT)
    finally:
        set_parameters(client.node, "grasp_stability", {"scene.segment": False})
    assert ranked is not None and len(ranked.poses) >= 1
    poses = np.array([[p.position.x, p.position.y, p.position.z, p.orientation.x, p.orientation.y,
                       p.orientation.z, p.orientation.w] for p in ranked.poses])
    positions, rotations = as_frames(poses)
    assert not in_collision(as_f32(scene), positions, rotations, GripperBody()).any()
    result = client.wait_result(key, TIMEOUT)
    assert result is not None and (result.points[:, 2] > 0.003).all()  # contacts on the box, not the table
