"""grasp_node over real DDS: a node process and this test process on their own ROS_DOMAIN_ID.

The node runs a small untrained model saved as a real checkpoint (the real loading path;
fixtures in ros_node_fixtures.py); results are compared with the Python API on the same input.
Gripper poses and proposals: test_ros_node_poses.py.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")

from conftest import ellipsoid_cloud, random_grasps  # noqa: E402
from ros_node_fixtures import TIMEOUT, api, as_f32, checkpoint, client, counts, node_log, quiet_counts  # noqa: E402,F401
from ros_support import set_parameters  # noqa: E402
from sensor_msgs.msg import PointField  # noqa: E402
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from visualization_msgs.msg import Marker  # noqa: E402

from grasp_equi.ros import codec  # noqa: E402
from grasp_equi.ros.client import ScoreClient, now_stamp  # noqa: E402

pytestmark = pytest.mark.ros


def test_round_trip_matches_python_api(client, api, rng):
    points, normals = ellipsoid_cloud(3000, rng=rng)
    grasps = list(random_grasps(points, 6, 2, rng)) + list(random_grasps(points, 3, 4, rng))  # mixed K
    key = client.request(points, grasps, normals, frame="camera_optical")
    result = client.wait_result(key, TIMEOUT)
    assert result is not None
    assert result.msg.header.frame_id == "camera_optical"
    assert (result.msg.header.stamp.sec, result.msg.header.stamp.nanosec) == key
    ids, scores = result.per_grasp()
    assert ids.tolist() == list(range(9))
    expected, spread = api.score(as_f32(points), [as_f32(g) for g in grasps], as_f32(normals), return_std=True)
    np.testing.assert_allclose(scores, expected, atol=1e-6)
    _, first = np.unique(result.grasp_id, return_index=True)
    np.testing.assert_allclose(result.score_std[first], spread, atol=1e-6)  # the ensemble's spread per grasp
    assert np.nanmax(spread) > 1e-4
    np.testing.assert_allclose(result.points, as_f32(np.concatenate(grasps)))  # contacts echoed, in order
    markers = client.markers.get(key) or (client.spin_until(lambda: key in client.markers, TIMEOUT)
                                          and client.markers[key])
    assert markers.markers[0].action == Marker.DELETEALL
    assert all(m.header.frame_id == "camera_optical" for m in markers.markers)
    spheres = [m for m in markers.markers if m.type == Marker.SPHERE_LIST][0]
    assert len(spheres.points) == 6 * 2 + 3 * 4
    counts(client, scored=1)
    assert "small.safetensors" in client.diagnostics["model"] and client.diagnostics["device"] == "cpu"
    assert result.p_force_closure is None and result.p_held is None  # one answer: no per-output fields
    assert client.diagnostics["score_output"] == client.diagnostics["outputs"] == "force_closure"


def test_grasp_off_the_surface_is_published_nan_and_counted(client, api, rng):
    """One grasp with a contact 20 mm inside the object: NaN in scored_grasps, the others scored."""
    points, normals = ellipsoid_cloud(2000, rng=rng)
    grasps = list(random_grasps(points, 3, 2, rng))
    grasps.insert(1, np.array([points[0], [0.0, 0.0, 0.0]]))  # the centre of a 5 x 3 x 2 cm ellipsoid
    before = int(client.diagnostics.get("grasps_off_surface", 0))
    key = client.request(points, grasps, normals)
    result = client.wait_result(key, TIMEOUT)
    ids, scores = result.per_grasp()
    assert ids.tolist() == [0, 1, 2, 3] and np.isnan(scores[1]) and np.isfinite(scores[[0, 2, 3]]).all()
    expected, spread = api.score(as_f32(points), [as_f32(g) for g in grasps], as_f32(normals), return_std=True)
    np.testing.assert_allclose(scores, expected, atol=1e-6)
    _, first = np.unique(result.grasp_id, return_index=True)
    np.testing.assert_allclose(result.score_std[first], spread, atol=1e-6)  # the ensemble's spread per grasp
    assert np.nanmax(spread) > 1e-4  # NaN in the same place
    assert counts(client, grasps_off_surface=before + 1)["grasps_off_surface"] == before + 1


def test_stray_points_are_left_out_and_counted(client, api, rng):
    """Two flying pixels 0.5 m from a 5 cm object: scored as without them, counted in /diagnostics."""
    points, normals = ellipsoid_cloud(2000, rng=rng)
    grasps = list(random_grasps(points, 3, 2, rng))
    stray = np.array([[0.5, 0.0, 0.0], [0.0, -0.5, 0.1]])
    before = int(client.diagnostics.get("stray_points_left_out", 0))
    key = client.request(np.concatenate([points, stray]), grasps, np.concatenate([normals, [[1.0, 0, 0]] * 2]))
    _, scores = client.wait_result(key, TIMEOUT).per_grasp()
    np.testing.assert_allclose(scores, api.score(as_f32(points), [as_f32(g) for g in grasps], as_f32(normals)),
                               atol=1e-6)
    assert counts(client, stray_points_left_out=before + 2)["stray_points_left_out"] == before + 2


def test_best_effort_publishers_are_served_too(client, api, rng):
    """Camera drivers often publish best-effort; a reliable-only subscription would never match them."""
    best_effort = QoSProfile(depth=5, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.BEST_EFFORT)
    sensor_client = ScoreClient(client.node, best_effort)
    assert sensor_client.spin_until(lambda: sensor_client.pub_cloud.get_subscription_count() > 0
                                    and sensor_client.pub_contacts.get_subscription_count() > 0, TIMEOUT)
    points, _ = ellipsoid_cloud(2000, rng=rng)
    grasps = random_grasps(points, 4, 2, rng)
    # Best effort may lose the first messages while discovery completes on the reader side,
    # so publish like a sensor stream: a fresh stamp every 0.5 s until one is answered.
    keys = []
    answered = lambda: [k for k in keys if k in sensor_client.results]  # noqa: E731
    for _ in range(int(TIMEOUT / 0.5)):
        keys.append(sensor_client.request(points, grasps, frame="camera"))
        if sensor_client.spin_until(lambda: bool(answered()), 0.5):
            break
    assert answered(), "no best-effort request was answered"
    result = sensor_client.results[answered()[0]]
    np.testing.assert_allclose(result.per_grasp()[1], api.score(as_f32(points), as_f32(grasps)), atol=1e-6)


def test_empty_request_gets_an_empty_answer(client, rng):
    points, _ = ellipsoid_cloud(500, rng=rng)
    key = client.request(points, [], frame="obj")
    result = client.wait_result(key, TIMEOUT)
    assert result is not None and result.msg.header.frame_id == "obj" and len(result.score) == 0


def test_request_before_its_cloud_waits_for_it(client, api, rng):
    points, _ = ellipsoid_cloud(1500, rng=rng)
    grasps = random_grasps(points, 4, 2, rng)
    stamp = now_stamp()
    key = client.request(None, grasps, stamp=stamp)
    client.spin_until(lambda: False, 0.2)
    client.publish_cloud(points, stamp=stamp)
    result = client.wait_result(key, TIMEOUT)
    assert result is not None
    np.testing.assert_allclose(result.per_grasp()[1], api.score(as_f32(points), as_f32(grasps)), atol=1e-6)


def test_latest_policy_and_runtime_parameters(client, api, rng):
    node = client.node
    results = set_parameters(node, "grasp_stability", {"sync": "latest"})
    assert results[0].successful
    before = quiet_counts(client)
    first, _ = ellipsoid_cloud(1000, rng=rng)
    second, _ = ellipsoid_cloud(1200, axes=(0.04, 0.04, 0.01), rng=rng)
    client.publish_cloud(first, frame="table")
    client.publish_cloud(second, frame="table")
    counts(client, clouds=before["clouds"] + 2)
    grasps = random_grasps(second, 3, 2, rng)
    key = client.request(None, grasps, frame="table")  # a stamp no cloud has
    result = client.wait_result(key, TIMEOUT)
    assert result is not None and result.msg.header.frame_id == "table"
    np.testing.assert_allclose(result.per_grasp()[1], api.score(as_f32(second), as_f32(grasps)), atol=1e-6)
    client.request(None, grasps, frame="elsewhere")  # no cloud in that frame: unmatched after sync_timeout
    assert counts(client, unmatched=before["unmatched"] + 1)["unmatched"] == before["unmatched"] + 1

    # parameters declared with ranges/choices/read-only are refused with a reason
    refused = {"sync": "sometimes", "queue_size": 0, "gripper.max_width": 5.0, "model_path": "/x.safetensors",
               "sample_points": 2, "no_such_parameter": 1, "score_output": "held"}  # a model without P(held)
    for name, value in refused.items():
        (res,) = set_parameters(node, "grasp_stability", {name: value})
        assert not res.successful and res.reason, name
    assert set_parameters(node, "grasp_stability", {"sync": "exact", "queue_size": 4})[0].successful


def test_sample_points_scores_a_fixed_subset(client, api, rng):
    assert set_parameters(client.node, "grasp_stability", {"sample_points": 300})[0].successful
    try:
        points, _ = ellipsoid_cloud(1000, rng=rng)
        grasps = random_grasps(points, 3, 2, rng)
        key = client.request(points, grasps, frame="obj")
        result = client.wait_result(key, TIMEOUT)
    finally:
        set_parameters(client.node, "grasp_stability", {"sample_points": 0})
    keep = np.sort(np.random.default_rng(0).choice(1000, 300, replace=False))  # the documented subset
    np.testing.assert_allclose(result.per_grasp()[1], api.score(as_f32(points)[keep], as_f32(grasps)), atol=1e-6)


def _malformed_contacts(rng, points):
    """(name, expected reason in the log, message factory) for every malformed request."""
    good = random_grasps(points, 2, 2, rng)

    def msg(header, mutate=None, contacts=good):
        m = codec.contacts_message(header, contacts)
        if mutate:
            mutate(m)
        return m
    nan = good.copy()
    nan[1, 0, 2] = np.nan
    return [
        ("missing grasp_id", "missing field", lambda h: msg(h, lambda m: setattr(m, "fields", m.fields[:3]))),
        ("mistyped x", "expected one of",
         lambda h: msg(h, lambda m: setattr(m.fields[0], "datatype", PointField.INT8))),
        ("NaN contact", "non-finite", lambda h: msg(h, contacts=nan)),
        ("truncated", "truncated", lambda h: msg(h, lambda m: setattr(m, "data", m.data[:-3]))),
        ("lying size", "more than max_points", lambda h: msg(h, lambda m: setattr(m, "height", 10**8))),
        ("one contact", "has 1 contact", lambda h: msg(h, contacts=[good[0], good[1][:1]])),
        ("K above the limit", "more than max_contacts_per_grasp=16",
         lambda h: msg(h, contacts=random_grasps(points, 1, 17, rng))),
        ("overlapping fields", "overlap", lambda h: msg(h, lambda m: setattr(m.fields[2], "offset", 0))),
        ("NaN contact normals", "normal(s) are non-finite",
         lambda h: codec.contacts_message(h, good, np.full((4, 3), np.nan))),
    ]


def test_malformed_messages_are_logged_counted_and_survived(client, node_log, api, rng):
    proc, log = node_log
    points, _ = ellipsoid_cloud(1000, rng=rng)
    before = quiet_counts(client)
    cases = _malformed_contacts(rng, points)
    for _, _, factory in cases:
        header = client.publish_cloud(points, frame="obj")
        client.pub_contacts.publish(factory(header))
        client.spin_until(lambda: False, 0.05)  # paced like a real client, not a burst
    # header problems: empty frame, frame mismatch for the same stamp
    header = client.publish_cloud(points, frame="obj")
    client.pub_contacts.publish(codec.contacts_message(Header(stamp=header.stamp, frame_id=""),
                                                       random_grasps(points, 1, 2, rng)))
    client.pub_contacts.publish(codec.contacts_message(Header(stamp=header.stamp, frame_id="other"),
                                                       random_grasps(points, 1, 2, rng)))
    client.spin_until(lambda: False, 0.05)
    # a dense cloud with NaN and a PoseArray with a zero quaternion
    bad_cloud = points.copy()
    bad_cloud[5] = np.nan
    client.publish_cloud(bad_cloud, frame="obj")
    client.request_poses(None, np.zeros((1, 3)), np.zeros((1, 4)), frame="obj")
    # a cloud of 1e6 m: refused with its measured size, and its request hears why
    client.request(points * 2e7, random_grasps(points * 2e7, 1, 2, rng), frame="obj")
    client.spin_until(lambda: False, 0.05)
    expected_reasons = [reason for _, reason, _ in cases] + [
        "frame_id is empty", "frame mismatch", "is_dense=true but", "quaternion", "outside the plausible range",
        "arrived but was rejected"]

    valid = random_grasps(points, 3, 2, rng)
    key = client.request(points, valid, frame="obj")
    result = client.wait_result(key, TIMEOUT)
    assert result is not None, "the node must keep serving after malformed input"
    np.testing.assert_allclose(result.per_grasp()[1], api.score(as_f32(points), as_f32(valid)), atol=1e-6)
    after = counts(client, invalid=before["invalid"] + len(expected_reasons))
    assert after["invalid"] - before["invalid"] == len(expected_reasons)
    assert proc.poll() is None
    text = log.read_text()
    for reason in expected_reasons:
        assert re.search(re.escape(reason), text), f"reason {reason!r} not logged:\n{text[-3000:]}"


def test_full_queue_drops_oldest_and_counts(client, rng):
    set_parameters(client.node, "grasp_stability", {"queue_size": 1})
    before = quiet_counts(client)  # earlier tests' stragglers must not count here
    keys = []
    for i in range(20):  # distinct clouds: each needs its own encoder pass
        points, _ = ellipsoid_cloud(8000, axes=(0.05 + 0.001 * i, 0.03, 0.02), rng=rng)
        keys.append(client.request(points, random_grasps(points, 16, 2, rng)))
    # Requests are subscribed best-effort (so best-effort planners are served too): under a
    # burst of 8k-point clouds on a busy machine DDS may lose one; the node must account for
    # every request it did receive.
    def settled(d):
        received = int(d["requests"]) - before["requests"]
        handled = sum(int(d[k]) - before[k] for k in ("scored", "dropped", "unmatched"))
        return received >= 18 and handled == received and d["queue"].startswith("0/")

    after = {k: int(v) for k, v in client.wait_diagnostics(settled, 60).items() if v.isdigit()}
    delta = {k: after[k] - before[k] for k in ("requests", "scored", "dropped", "unmatched", "invalid")}
    assert 18 <= delta["requests"] <= 20 and delta["invalid"] == 0, delta
    assert delta["scored"] + delta["dropped"] + delta["unmatched"] == delta["requests"]
    assert delta["dropped"] > 0, delta  # 20 encoder passes cannot all fit a queue of 1
    client.spin_until(lambda: sum(k in client.results for k in keys) >= delta["scored"], TIMEOUT)
    assert sum(k in client.results for k in keys) == delta["scored"]
    set_parameters(client.node, "grasp_stability", {"queue_size": 2})
