"""GraspPlanner: proposals on procedural objects, collision freedom, contacts on the cloud,
determinism, invariance of the ranking to rigid motions and ``score_poses`` (the CLI: test_planner_cli.py)."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from scipy.spatial import cKDTree

from conftest import box_cloud as _box_cloud, mesh_cloud as _cloud
from grasp_equi.data.clouds import complete_cloud
from grasp_equi.data.objects import make_object
from grasp_equi.geometry import random_rotation
from grasp_equi.gripper import quaternion_to_matrix
from grasp_equi.planner import GraspPlanner, PlannerConfig, antipodal_pairs, rank
from grasp_equi.poses import COLLISION, NO_CONTACT, SCORED, GripperBody, as_frames, in_collision, score_poses, to_pose7
from grasp_equi.scorer import GraspScorer

SMALL = PlannerConfig(num_seeds=96, pool_size=1024, approach_angles=6, top_k=5)


@pytest.fixture(scope="module")
def scorer():
    return GraspScorer.from_checkpoint(device="cpu")


@pytest.fixture(scope="module")
def planner(scorer):
    return GraspPlanner(scorer, GripperBody(), SMALL)


def _check_proposals(ranked, points, body):
    """Collision-free, contacts on the cloud, widths within the opening, sorted best first."""
    assert len(ranked) >= 1
    positions, rotations = as_frames(ranked.poses)
    assert not in_collision(points, positions, rotations, body).any()
    dist, _ = cKDTree(points).query(ranked.contacts.reshape(-1, 3))
    assert dist.max() < 0.005, dist.max()  # a contact is its patch's mean: within the cloud's ~3-4 mm spacing
    assert (ranked.widths > 0).all() and (ranked.widths <= body.jaw.max_width).all()
    assert np.all(np.diff(ranked.scores) <= 0)
    # the contacts lie between the pads: on the closing axis, inside the pad's depth
    local = np.einsum("gki,gij->gkj", ranked.contacts - positions[:, None], rotations)  # [k, 2, 3]
    assert (np.abs(local[..., 1]) <= body.jaw.max_width / 2 + 1e-9).all()
    assert ((local[..., 2] <= 1e-9) & (local[..., 2] >= -body.jaw.finger_depth - 1e-9)).all()


@pytest.mark.parametrize("family", ["box", "cylinder", "mug"])
def test_proposals_are_collision_free_and_touch_the_cloud(planner, family):
    rng = np.random.default_rng({"box": 1, "cylinder": 2, "mug": 3}[family])
    obj = make_object(family, rng)
    points, _ = complete_cloud(obj, 3000, rng)
    ranked = planner.propose(points)
    _check_proposals(ranked, points, planner.body)
    assert ranked.counts["scored"] >= len(ranked)
    assert ranked.counts["candidates"] == ranked.counts["pairs"] * SMALL.approach_angles * len(SMALL.depths)


def test_best_box_grasp_closes_across_the_narrow_side(planner):
    points = _box_cloud()
    ranked = planner.propose(points)
    closing = quaternion_to_matrix(ranked.poses[:1, 3:])[0][:, 1]  # the y axis in the box frame
    assert abs(closing[0]) > 0.95, closing  # box extents (0.04, 0.09, 0.12): x is narrow
    assert abs(ranked.widths[0] - 0.04) < 0.004


def test_deterministic_per_seed(scorer):
    points = _box_cloud(2000)
    a = GraspPlanner(scorer, config=SMALL).propose(points)
    b = GraspPlanner(scorer, config=SMALL).propose(points)
    np.testing.assert_array_equal(a.poses, b.poses)
    np.testing.assert_array_equal(a.scores, b.scores)


def _assert_same_ranking_moved(a, b, rot, trans):
    """``b`` is ``a`` moved by ``x -> rot x + trans``; rows may swap only between near-ties."""
    assert len(a) == len(b)
    pos_a, rot_a = as_frames(a.poses)
    pos_b, rot_b = as_frames(b.poses)
    moved_pos, moved_rot = pos_a @ rot.T + trans, np.einsum("ij,gjk->gik", rot, rot_a)
    np.testing.assert_allclose(b.scores, a.scores, atol=1e-4)
    for i in range(len(a)):
        same = np.abs(moved_pos[i] - pos_b[i]).max() < 1e-6 and np.abs(moved_rot[i] - rot_b[i]).max() < 1e-5
        if not same:  # only allowed where the scores tie within float noise
            twin = np.flatnonzero(np.abs(b.scores - a.scores[i]) < 1e-5)
            assert len(twin) > 1, f"rank {i} moved differently and has no tie"


def test_ranking_is_invariant_to_rigid_motions(scorer):
    rng = np.random.default_rng(7)
    points = _cloud(make_object("superquadric", rng).mesh, 2500)
    points = points + rng.normal(scale=2e-4, size=points.shape)  # off any grid: no exact ties
    planner = GraspPlanner(scorer, config=SMALL)
    base = planner.propose(points)
    for trial in range(2):
        rot, trans = random_rotation(rng), rng.uniform(-2, 2, size=3)
        _assert_same_ranking_moved(base, planner.propose(points @ rot.T + trans), rot, trans)


def test_given_normals_are_used(planner):
    rng = np.random.default_rng(2)
    obj = make_object("cylinder", rng)
    points, normals = complete_cloud(obj, 3000, rng)
    ranked = planner.propose(points, normals)
    _check_proposals(ranked, points, planner.body)


def test_object_wider_than_the_gripper_gets_no_proposals(planner):
    points = _cloud(trimesh.creation.box(extents=[0.15, 0.15, 0.15]), 3000)
    ranked = planner.propose(points)
    assert len(ranked) == 0 and ranked.poses.shape == (0, 7) and ranked.contacts.shape == (0, 2, 3)


def test_bad_input_is_a_value_error(planner):
    with pytest.raises(ValueError, match="points"):
        planner.propose(np.full((10, 3), np.nan))
    with pytest.raises(ValueError, match="top_k"):
        planner.propose(_box_cloud(500), top_k=0)
    with pytest.raises(ValueError, match="num_seeds"):
        PlannerConfig(num_seeds=0)


def test_the_ranking_answer_is_checked_up_front_and_used(scorer):
    """``output`` is checked when the planner is made: a model without P(held) once gave an empty list
    (no candidate left to score, so the bad choice was never looked at) instead of an error."""
    plain = GraspScorer.untrained(seed=0, device="cpu", num_nodes=96)  # P(force closure) only
    with pytest.raises(ValueError, match="no output 'held'"):
        GraspPlanner(plain, GripperBody(), SMALL, output="held")
    for bad in ("", "robust", 1):
        with pytest.raises(ValueError, match="no output"):
            GraspPlanner(scorer, GripperBody(), SMALL, output=bad)
    points = _box_cloud(800)
    ranked = GraspPlanner(scorer, GripperBody(), SMALL, output="force_closure").propose(points)
    assert len(ranked) > 0
    np.testing.assert_allclose(ranked.scores, scorer.score(points, ranked.contacts, output="force_closure"),
                               atol=1e-5)


def test_antipodal_pairs_on_two_facing_planes():
    # two parallel walls 3 cm apart: every pair must go straight across
    grid = np.stack(np.meshgrid(np.linspace(0, 0.02, 5), np.linspace(0, 0.02, 5)), -1).reshape(-1, 2)
    left = np.column_stack([np.zeros(len(grid)), grid])
    right = left + [0.03, 0, 0]
    pts = np.concatenate([left, right])
    normals = np.concatenate([np.tile([-1.0, 0, 0], (len(grid), 1)), np.tile([1.0, 0, 0], (len(grid), 1))])
    pairs = antipodal_pairs(pts, normals, len(pts), 0.08, 0.5)
    d = pts[pairs[:, 1]] - pts[pairs[:, 0]]
    assert len(pairs) == len(grid)  # each pair found once, from either end
    np.testing.assert_allclose(np.abs(d[:, 0]), 0.03)
    np.testing.assert_allclose(d[:, 1:], 0, atol=1e-12)
    assert len(antipodal_pairs(pts, normals, len(pts), 0.02, 0.5)) == 0  # too wide for the jaws


def test_rank_suppresses_duplicates_and_breaks_ties_by_index():
    contacts = np.array([[[0, 0, 0], [0.03, 0, 0]]] * 3, dtype=float)
    contacts[2] += [0, 0.05, 0]
    approach = np.tile([0.0, 0, 1], (3, 1))
    keep = rank(np.array([0.5, 0.5, 0.5]), contacts, approach, 5, 0.005, 20)
    assert keep.tolist() == [0, 2]  # 1 duplicates 0 (swapped order counts too)
    keep = rank(np.array([0.2, 0.9, 0.5]), contacts[[0, 2, 1]] * [1, 1, 1], approach, 1, 0.005, 20)
    assert keep.tolist() == [1]


def test_score_poses_keeps_every_index_with_a_reason(scorer):
    points = _box_cloud(2000)
    ident = np.eye(3)
    across = np.array([[0, 1, 0], [1, 0, 0], [0, 0, -1.0]]).T  # columns x, y, z: close along box x, approach -z
    poses = np.stack([np.eye(4)] * 3)
    poses[0, :3, :3], poses[0, :3, 3] = across, [0, 0, 0.045]  # from above, tips 1.5 cm below the top
    poses[1, :3, :3], poses[1, :3, 3] = ident, [0, 0, 0]  # pads inside the box
    poses[2, :3, :3], poses[2, :3, 3] = ident, [0.5, 0, 0]  # far away: nothing to close on
    result = score_poses(points, poses, GripperBody(), scorer)
    assert result.reasons.tolist() == [SCORED, COLLISION, NO_CONTACT]
    assert 0 <= result.scores[0] <= 1 and np.isnan(result.scores[1:]).all()
    assert abs(result.widths[0] - 0.04) < 0.003
    seven = score_poses(points, to_pose7(poses[:, :3, 3], poses[:, :3, :3]), None, scorer)
    np.testing.assert_allclose(seven.scores, result.scores, atol=1e-6)
    with pytest.raises(ValueError, match="shape"):
        score_poses(points, np.zeros((2, 5)), None, scorer)
    with pytest.raises(ValueError, match="rotation"):
        score_poses(points, np.stack([np.diag([1.0, 1, -1, 1])]), None, scorer)
    plain = GraspScorer.untrained(seed=0, device="cpu", num_nodes=96)  # P(force closure) only
    with pytest.raises(ValueError, match="no output 'held'"):  # once: all-NaN scores, no error, for nothing scored
        score_poses(points, poses[2:], None, plain, output="held")
    by_fc = score_poses(points, poses, GripperBody(), scorer, output="force_closure")
    np.testing.assert_allclose(by_fc.scores[0], scorer.score(points, result.contacts[:1], output="force_closure")[0],
                               atol=1e-6)



def test_score_poses_refuses_a_cloud_in_other_units_even_when_no_pose_touches_it(scorer):
    """A cloud in millimetres is refused by its size, as ``score`` refuses it, whether or not a pose closes on it.
    It once came back as one "no_contact" (or "collision") per pose, exit 0, with no word about units: the size
    was only checked by the scorer, which ran only when a pose touched the cloud."""
    mm = _box_cloud(2000) * 1000.0
    poses = np.stack([np.eye(4)] * 2)
    poses[1, :3, 3] = [0.5, 0, 0]
    for given in (scorer, None):
        with pytest.raises(ValueError, match="are the units metres"):
            score_poses(mm, poses, GripperBody(), given)

def test_bench_propose_record_counts_and_times(scorer):
    from grasp_equi.bench.propose import STEPS, measure_propose, propose_table

    record = measure_propose(scorer, n_points=3000, repeats=1, warmup=0)
    counts = record["counts"]
    assert counts["candidates"] >= counts["collision_free"] >= counts["scored"] == record["n_grasps"] >= 1
    assert set(record["step_ms"]) == set(STEPS) and record["total_ms_median"] >= sum(record["step_ms"].values())
    assert record["scoring_only_ms"] > 0
    table = propose_table([record])
    assert "propose total" in table and f"{counts['scored']:,}" in table


def _table_scene(rng):
    """A 40 x 40 cm table (z = 0, 3 mm grid + noise), a 4 x 9 x 12 cm box standing on it and a
    6 cm ball 15 cm away: ``(points, box_mask)``."""
    grid = np.arange(-0.2, 0.2, 0.004)
    table = np.stack(np.meshgrid(grid, grid), -1).reshape(-1, 2)
    table = np.column_stack([table, rng.normal(scale=5e-4, size=len(table))])
    box = _cloud(trimesh.creation.box(extents=[0.04, 0.09, 0.12]), 4000) + [0, 0, 0.06]
    box = box[box[:, 2] > 0.002]  # the bottom face touches the table: the camera never sees it
    ball = trimesh.creation.icosphere(radius=0.03).sample(1500) + [0.15, 0.0, 0.03]
    pts = np.concatenate([table, box, ball])
    return pts, np.r_[np.zeros(len(table), bool), np.ones(len(box), bool), np.zeros(len(ball), bool)]


def test_scene_segmentation_keeps_the_object_and_the_planner_avoids_the_table(planner):
    from grasp_equi.scene import segment_object

    rng = np.random.default_rng(5)
    pts, is_box = _table_scene(rng)
    seg = segment_object(pts, near=[0.0, 0.0, 0.06])
    kept = np.zeros(len(pts), bool)
    kept[seg.object_idx] = True
    assert (kept & is_box).sum() >= 0.97 * is_box.sum() and (kept & ~is_box).sum() <= 0.01 * kept.sum()
    assert seg.plane is not None and abs(abs(seg.plane[2]) - 1) < 1e-3 and seg.num_clusters >= 2
    ball = segment_object(pts, near=[0.15, 0.0, 0.03])  # the other object, by its request point
    assert np.linalg.norm(pts[ball.object_idx].mean(axis=0) - [0.15, 0, 0.03]) < 0.01
    boxed = segment_object(pts, box=[[-0.05, -0.06, -0.01], [0.05, 0.06, 0.2]])
    assert set(boxed.object_idx) <= set(np.flatnonzero(is_box | (np.abs(pts[:, 2]) < 0.01)))
    table = pts[seg.plane_idx]
    ranked = planner.propose(pts[seg.object_idx], obstacles=table)
    assert len(ranked) >= 1
    positions, rotations = as_frames(ranked.poses)
    assert not in_collision(pts, positions, rotations, planner.body).any()  # table and ball included
    assert np.all(ranked.contacts[..., 2] > 0.002)  # contacts on the box, never on the table


def test_scene_without_a_plane_is_one_object():
    from grasp_equi.scene import segment_object

    pts = _box_cloud(2000)
    seg = segment_object(pts)
    assert seg.plane is None and len(seg.object_idx) == len(pts) and len(seg.plane_idx) == 0
    with pytest.raises(ValueError, match="no object left"):
        segment_object(pts, box=[[1, 1, 1], [2, 2, 2]])


@pytest.mark.parametrize("k", [3, 4, 5])
def test_finger_proposals_touch_the_cloud_and_keep_the_hand_clear(planner, k):
    from dataclasses import replace

    from grasp_equi.fingers import finger_offsets, propose_fingers

    points = _box_cloud(2500)
    ranked = propose_fingers(planner, points, k, top_k=3)
    assert len(ranked) >= 1 and ranked.contacts.shape[1:] == (k, 3) and np.all(np.diff(ranked.scores) <= 0)
    # on the box's surface (a contact is its patch's mean: a sparse patch on two faces of an edge
    # can sit a few mm from every cloud point, but not off the box)
    c = np.abs(ranked.contacts.reshape(-1, 3))
    half = np.array([0.02, 0.045, 0.06])
    gap = np.where((c <= half).all(axis=1), (half - c).min(axis=1), np.linalg.norm(np.maximum(c - half, 0), axis=1))
    assert gap.max() < 0.0025, gap.max()
    positions, rotations = as_frames(ranked.poses)
    jaw = planner.body.jaw
    hand = replace(planner.body, jaw=replace(jaw, finger_width=float(np.ptp(finger_offsets(k, 0.02))) + 0.01))
    assert not in_collision(points, positions, rotations, hand).any()
    local = np.einsum("gki,gij->gkj", ranked.contacts - positions[:, None], rotations)  # [n, k, 3] hand frame
    assert (local[:, 0, 1] > 0).all() and (local[:, 1:, 1] < 0).all()  # thumb on +y, fingers opposite
    np.testing.assert_allclose(np.abs(local[:, 0, 1] - local[:, 1:, 1].mean(axis=1)), ranked.widths, atol=1e-9)
    np.testing.assert_allclose(local[:, 1:, 0], np.broadcast_to(finger_offsets(k, 0.02), local[:, 1:, 0].shape),
                               atol=0.0101)  # each fingertip within its pad (1 cm wide) of its line


def test_finger_proposals_are_invariant_and_check_k(scorer):
    from grasp_equi.fingers import propose_fingers

    rng = np.random.default_rng(8)
    points = _cloud(make_object("cylinder", np.random.default_rng(2)).mesh, 2500)
    points = points + rng.normal(scale=2e-4, size=points.shape)
    planner = GraspPlanner(scorer, config=SMALL)
    base = propose_fingers(planner, points, 3)
    rot, trans = random_rotation(rng), rng.uniform(-1, 1, size=3)
    _assert_same_ranking_moved(base, propose_fingers(planner, points @ rot.T + trans, 3), rot, trans)
    with pytest.raises(ValueError, match="3..5"):
        propose_fingers(planner, points, 6)
    by_fc = propose_fingers(GraspPlanner(scorer, config=SMALL, output="force_closure"), points, 3)  # once: P(held)
    assert len(by_fc) > 0
    np.testing.assert_allclose(by_fc.scores, scorer.score(points, by_fc.contacts, output="force_closure"), atol=1e-5)


def test_pose_formats_and_odd_inputs():
    rng = np.random.default_rng(3)
    rot = np.stack([random_rotation(rng) for _ in range(4)])
    pos = rng.normal(size=(4, 3))
    seven = to_pose7(pos, rot)
    p7, r7 = as_frames(seven)
    np.testing.assert_allclose(r7, rot, atol=1e-12)
    np.testing.assert_allclose(p7, pos)
    matrices = np.tile(np.eye(4), (4, 1, 1))
    matrices[:, :3, :3], matrices[:, :3, 3] = rot, pos
    np.testing.assert_allclose(as_frames(matrices)[1], rot)
    assert as_frames(seven[0])[0].shape == (1, 3) and as_frames(matrices[0])[1].shape == (1, 3, 3)  # one pose
    assert as_frames(np.zeros((0, 7)))[1].shape == (0, 3, 3)
    unnormalised = seven.copy()
    unnormalised[:, 3:] *= 7.0  # any quaternion length is fine
    np.testing.assert_allclose(as_frames(unnormalised)[1], rot, atol=1e-12)
    for bad, reason in [(np.zeros((2, 7)), "quaternion"), (np.full((1, 7), np.nan), "NaN"),
                        (np.ones((3, 6)), "shape"), ([[1, 2], [3]], "numeric")]:
        with pytest.raises(ValueError, match=reason):
            as_frames(bad)
    skewed = matrices.copy()
    skewed[1, 3, 0] = 0.5
    with pytest.raises(ValueError, match="pose 1: not a rigid transform"):
        as_frames(skewed)


def test_a_cloud_encoded_from_a_subset_serves_the_full_cloud(scorer):
    """The node encodes a fixed subset (sample_points) and proposes on the full cloud."""
    points = _box_cloud(3000)
    subset = points[np.sort(np.random.default_rng(0).choice(len(points), 1000, replace=False))]
    planner = GraspPlanner(scorer, config=SMALL)
    ranked = planner.propose(points, encoded=scorer.encode(subset))
    _check_proposals(ranked, points, planner.body)
