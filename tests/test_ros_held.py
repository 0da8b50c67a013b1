"""grasp_node with a model that answers both P(held) and P(force closure), over real DDS.

The model is the tiny one ``tests/test_held.py`` builds: an untrained small network whose P(held)
readouts ``grasp-equi fit-held`` fits on real MuJoCo trial outcomes. Every published answer is
compared with ``GraspScorer.score(..., output=...)`` on the same (float32 wire) input.
"""

from __future__ import annotations

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")
pytest.importorskip("mujoco")

from conftest import SMALL_MODEL, ellipsoid_cloud, fitted_held_checkpoints, random_grasps  # noqa: E402
from ros_support import node_command, set_parameters, start, stop, wait_for_log  # noqa: E402
from visualization_msgs.msg import Marker  # noqa: E402

from grasp_equi import GraspScorer, keys  # noqa: E402
from grasp_equi.gripper import close_jaws, JawGeometry  # noqa: E402
from grasp_equi.poses import NO_CONTACT, SCORED  # noqa: E402
from grasp_equi.ros.client import ScoreClient  # noqa: E402

pytestmark = pytest.mark.ros
TIMEOUT = 30.0  # generous bound for one answer on a loaded 2-core machine
HELD, FC = keys.OUTPUT_HELD, keys.OUTPUT_FORCE_CLOSURE


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """``(base checkpoint: force closure only, checkpoint with P(held) readouts)``, as in test_held.py."""
    return fitted_held_checkpoints(tmp_path_factory.mktemp("held"))[1:]


@pytest.fixture(scope="module")
def api(models):
    scorer = GraspScorer.from_checkpoint(models[1], device="cpu")
    assert scorer.outputs == (HELD, FC)
    return scorer


@pytest.fixture(scope="module")
def node_log(models, tmp_path_factory):
    log = tmp_path_factory.mktemp("node") / "node.log"
    proc = start(node_command("-p", f"model_path:={models[1]}", "-p", "device:=cpu", "-p", "log_throttle:=0.0",
                              "-p", "diagnostics_period:=0.2", "-p", "propose.top_k:=4",
                              "-p", "propose.num_seeds:=64"), log)
    yield proc, log
    assert stop(proc) == 0, log.read_text()


@pytest.fixture(scope="module")
def client(node_log):
    rclpy.init()
    node = rclpy.create_node("grasp_equi_held_test_client")
    client = ScoreClient(node)
    assert client.wait_ready(90), f"node not ready:\n{node_log[1].read_text()}"
    yield client
    node.destroy_node()
    rclpy.shutdown()


def as_f32(a):
    """What the node sees after the float32 wire format."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def per_grasp(result, name):
    return result.per_grasp_of(name)[1]


def test_contacts_answer_both_outputs(client, api, rng):
    points, normals = ellipsoid_cloud(2000, rng=rng)
    grasps = list(random_grasps(points, 6, 2, rng)) + list(random_grasps(points, 3, 3, rng))
    grasps.insert(2, np.array([points[0], [0.0, 0.0, 0.0]]))  # a contact inside the object: not judged
    key = client.request(points, grasps, normals, frame="camera")
    result = client.wait_result(key, TIMEOUT)
    assert result is not None and result.msg.header.frame_id == "camera"
    pts, grs, nrm = as_f32(points), [as_f32(g) for g in grasps], as_f32(normals)
    held, spread = api.score(pts, grs, nrm, return_std=True)  # the default output: P(held)
    fc = api.score(pts, grs, nrm, output=FC)
    np.testing.assert_allclose(per_grasp(result, "score"), held, atol=1e-6)
    np.testing.assert_allclose(per_grasp(result, "p_held"), held, atol=1e-6)
    np.testing.assert_allclose(per_grasp(result, "p_force_closure"), fc, atol=1e-6)
    np.testing.assert_allclose(per_grasp(result, "score_std"), spread, atol=1e-6)  # the held readouts' spread
    assert np.isnan(fc[2]) and np.isnan(per_grasp(result, "p_force_closure")[2])  # NaN where not scored
    assert np.nanmax(np.abs(fc - held)) > 1e-3 and np.nanmax(spread) > 0  # two different answers
    markers = client.markers.get(key) or (client.spin_until(lambda: key in client.markers, TIMEOUT)
                                          and client.markers[key])
    spheres = next(m for m in markers.markers if m.type == Marker.SPHERE_LIST)  # coloured by score: P(held)
    green = np.where(np.isnan(result.score), 0.5, np.minimum(1.0, 2 * result.score.astype(np.float64)))  # grey: NaN
    np.testing.assert_allclose([c.g for c in spheres.colors], green, atol=1e-6)
    values = client.wait_diagnostics(lambda d: "score_output" in d, TIMEOUT)
    assert values["score_output"] == HELD and values["outputs"] == f"{HELD},{FC}"


def test_pose_requests_answer_both_outputs(client, api):
    rng = np.random.default_rng(7)
    half = np.array([0.02, 0.03, 0.02])
    pts = rng.uniform(-1, 1, size=(3000, 3)) * half  # box surface
    face = rng.integers(0, 3, size=3000)
    pts[np.arange(3000), face] = rng.choice([-1.0, 1.0], size=3000) * half[face]
    positions = np.array([[0.0, 0.0, -0.012], [0.5, 0.5, 0.5], [0.004, 0.0, 0.0]])  # scored, misses, scored
    quats = np.array([[0.0, 0.0, 0.0, 1.0]] * 3)
    key = client.request_poses(pts, positions, quats, frame="box")
    result = client.wait_result(key, TIMEOUT)
    assert result is not None
    ids, scores, reasons = result.per_pose()
    assert ids.tolist() == [0, 1, 2] and reasons.tolist() == [SCORED, NO_CONTACT, SCORED]
    contacts, _ = close_jaws(as_f32(pts), positions, quats, JawGeometry())
    held, spread = api.score(as_f32(pts), contacts[[0, 2]], return_std=True)
    fc = api.score(as_f32(pts), contacts[[0, 2]], output=FC)
    for name, expected in (("score", held), ("p_held", held), ("p_force_closure", fc), ("score_std", spread)):
        values = per_grasp(result, name)
        np.testing.assert_allclose(values[[0, 2]], expected, atol=1e-6, err_msg=name)
        assert np.isnan(values[1]), name  # the pose left out has no answer


def test_proposals_carry_both_outputs(client, api):
    rng = np.random.default_rng(11)
    half = np.array([0.02, 0.045, 0.06])
    pts = rng.uniform(-1, 1, size=(2000, 3)) * half
    face = rng.integers(0, 3, size=2000)
    pts[np.arange(2000), face] = rng.choice([-1.0, 1.0], size=2000) * half[face]
    key = client.request_proposals(pts, frame="camera")
    result = client.wait_result(key, 3 * TIMEOUT)
    assert result is not None and len(result.score) >= 2
    _, scores = result.per_grasp()
    assert np.all(np.diff(scores) <= 0)  # ranked by score = P(held)
    np.testing.assert_array_equal(per_grasp(result, "p_held"), scores)
    contacts = result.points.reshape(-1, 2, 3)  # two rows per proposal, best first
    np.testing.assert_allclose(per_grasp(result, "p_force_closure"), api.score(as_f32(pts), contacts, output=FC),
                               atol=1e-5)
    np.testing.assert_allclose(scores, api.score(as_f32(pts), contacts), atol=1e-5)


def test_score_output_force_closure_swaps_what_score_carries(client, api, node_log, rng):
    assert "score = P(held) (the model answers held, force_closure)" in node_log[1].read_text()  # the ready line
    points, _ = ellipsoid_cloud(1500, rng=rng)
    grasps = random_grasps(points, 5, 2, rng)
    (res,) = set_parameters(client.node, "grasp_stability", {"score_output": FC})
    assert res.successful, res.reason
    try:
        key = client.request(points, grasps, frame="obj")
        result = client.wait_result(key, TIMEOUT)
        values = client.wait_diagnostics(lambda d: d.get("score_output") == FC, TIMEOUT)
    finally:
        set_parameters(client.node, "grasp_stability", {"score_output": ""})
    assert values["score_output"] == FC
    fc, held = api.score(as_f32(points), as_f32(grasps), output=FC), api.score(as_f32(points), as_f32(grasps))
    np.testing.assert_allclose(per_grasp(result, "score"), fc, atol=1e-6)
    np.testing.assert_allclose(per_grasp(result, "p_force_closure"), fc, atol=1e-6)
    np.testing.assert_allclose(per_grasp(result, "p_held"), held, atol=1e-6)
    assert result.score_std is None  # force closure has a spread only with an ensemble; this model has none
    markers = client.markers.get(key) or (client.spin_until(lambda: key in client.markers, TIMEOUT)
                                          and client.markers[key])
    spheres = next(m for m in markers.markers if m.type == Marker.SPHERE_LIST)  # coloured by score
    np.testing.assert_allclose([c.g for c in spheres.colors], np.minimum(1.0, 2 * np.repeat(fc, 2)), atol=1e-6)
    for bad, reason in (("robust", "must be one of"), (3, "")):
        (res,) = set_parameters(client.node, "grasp_stability", {"score_output": bad})
        assert not res.successful and reason in res.reason, bad
    assert client.wait_diagnostics(lambda d: d.get("score_output") == HELD, TIMEOUT)["score_output"] == HELD


def test_a_single_readout_publishes_no_score_std(api, rng):
    """``fit-held --members 1`` (or a 1-member ensemble): no spread, so ``scored_grasps`` has no ``score_std``
    field (it once had one of NaN for every row, which reads as "not scored"); the answers themselves stay."""
    from grasp_equi.ros.outputs import STD_FIELD, has_spread, score_all
    from conftest import with_test_held

    single = GraspScorer(*with_test_held(GraspScorer.untrained(seed=0, device="cpu", **SMALL_MODEL), members=1),
                         device="cpu", name="held-1")
    assert has_spread(api, HELD) and not has_spread(single, HELD) and not has_spread(single, FC)
    points, _ = ellipsoid_cloud(800, rng=rng)
    grasps = random_grasps(points, 6, 2, rng)
    answers = score_all(single, single.encode(points), grasps, HELD)
    columns = answers.columns(np.arange(6))
    assert STD_FIELD not in columns and set(columns) == {"score", "p_held", "p_force_closure"}
    np.testing.assert_array_equal(columns["score"], single.score(points, grasps))
    assert STD_FIELD in score_all(api, api.encode(points), grasps, HELD).columns(np.arange(6))


def test_a_model_without_held_readouts_refuses_score_output_held_at_start_up(models, tmp_path):
    log = tmp_path / "node.log"
    proc = start(node_command("-p", f"model_path:={models[0]}", "-p", "device:=cpu", "-p", "score_output:=held"),
                 log)
    try:
        proc.wait(90)
    finally:
        stop(proc)
    text = log.read_text()
    assert proc.returncode == 2, text
    assert "score_output 'held' is not available" in text and "fit-held" in text, text
    assert "Traceback" not in text
    assert wait_for_log(log, "error:", proc, 1)
