"""MuJoCo grasp trials (real simulation, no mocks) and the ``validate-physics`` command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh
from scipy.spatial import ConvexHull

pytest.importorskip("mujoco")

from grasp_equi.cli import main  # noqa: E402
from grasp_equi.physics.pieces import convex_pieces  # noqa: E402
from grasp_equi.physics.scene import JawSpec  # noqa: E402
from grasp_equi.physics.trial import GraspSimulator  # noqa: E402

BOX = (0.05, 0.04, 0.06)
BAR = (0.20, 0.03, 0.03)
# 180 g (hardwood / nylon). Gripped 9 cm off centre its weight twists the jaws with 0.16 N m,
# below the two fingertips' torsional friction (2 x mu x 5 mm x 40 N = 0.2 N m): it survives
# the lift; the shake's +-15 deg at 3 Hz adds ~0.1 N m of inertia and gravity swing, which it
# cannot. (A 126 g bar keeps a margin and is held; a 210 g one already turns during the lift.)
BAR_DENSITY = 1000.0  # kg/m^3


def _box_sim(extents, density=700.0) -> GraspSimulator:
    mesh = trimesh.creation.box(extents=extents)
    return GraspSimulator(mesh, mass=density * float(np.prod(extents)))


@pytest.fixture(scope="module")
def box_sim():
    return _box_sim(BOX)


@pytest.fixture(scope="module")
def bar_sim():
    return _box_sim(BAR, BAR_DENSITY)


@pytest.mark.parametrize("pads", ["fingertips", "flat"])
def test_box_gripped_through_its_centre_is_held(box_sim, pads):
    half = BOX[0] / 2
    sim = box_sim if pads == "fingertips" else GraspSimulator(
        trimesh.creation.box(extents=BOX), mass=700.0 * float(np.prod(BOX)), spec=JawSpec(pad_radius=0.0))
    result = sim.trial(np.array([[half, 0, 0], [-half, 0, 0]]))
    assert result.status == "held" and result.held is True
    assert result.slip < 0.005  # it barely moved in the hand
    # the jaws pressed on the two faces that were grasped, with outward normals ±x
    assert np.allclose(np.abs(result.jaw_contacts[:, 0]), half, atol=0.001)
    assert np.allclose(result.jaw_normals, [[1, 0, 0], [-1, 0, 0]], atol=0.05)


def test_bar_gripped_off_centre_falls_during_the_shake_but_not_at_its_centre(bar_sim):
    half = BAR[1] / 2
    centre = bar_sim.trial(np.array([[0.0, half, 0], [0.0, -half, 0]]))
    assert centre.held is True
    off = bar_sim.trial(np.array([[0.09, half, 0], [0.09, -half, 0]]))
    assert off.status == "dropped" and off.held is False
    assert off.lost_in == "shake"  # it survived the lift: the shake's extra load broke the grasp
    assert off.slip > 0.02


@pytest.mark.parametrize("tilt_deg, held", [(0.0, True), (12.0, True), (20.0, True), (35.0, False)])
def test_a_sphere_is_held_inside_the_friction_cone_and_lost_outside(tilt_deg, held):
    """Coulomb friction, not MuJoCo's soft-contact creep, decides: mu = 0.5 is a 26.6 deg cone.

    The contacts are on a 4 cm sphere, tilted off the diameter so each normal makes
    ``tilt_deg`` with the closing line. Without the noslip solver the sphere crept out of
    the jaws during the shake even at 12 deg.
    """
    radius = 0.02
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=radius)
    sim = GraspSimulator(sphere, mass=500.0 * float(sphere.volume))
    tilt = np.radians(tilt_deg)
    # two points on the sphere whose chord makes ``tilt`` with both radial normals
    a = radius * np.array([np.cos(tilt), np.sin(tilt), 0.0])
    b = radius * np.array([-np.cos(tilt), np.sin(tilt), 0.0])
    result = sim.trial(np.array([a, b]))
    assert result.held is held, (result.status, result.lost_in, result.slip_rotation_deg)


def test_fingers_closing_beside_the_object_hold_nothing(box_sim):
    beside = box_sim.trial(np.array([[0.0, 0.05, 0.035], [0.0, 0.05, -0.035]]))  # next to the +y face
    assert beside.status == "missed" and beside.held is False


def test_unplaceable_grasps_are_reported_apart_from_failures():
    plate = _box_sim((0.06, 0.3, 0.3))  # every approach to its face centres hits the plate
    collided = plate.trial(np.array([[0.03, 0, 0], [-0.03, 0, 0]]))
    assert collided.status == "collision" and collided.held is None
    too_wide = plate.trial(np.array([[0.0, 0.06, 0], [0.0, -0.06, 0]]))
    assert too_wide.status == "too_wide" and too_wide.held is None


def test_same_grasp_same_outcome(bar_sim):
    grasp = np.array([[0.05, BAR[1] / 2, 0.002], [0.05, -BAR[1] / 2, 0.002]])
    first, second = bar_sim.trial(grasp), bar_sim.trial(grasp)
    assert first.status == second.status
    assert first.slip == second.slip and np.array_equal(first.jaw_contacts, second.jaw_contacts)


def test_bad_contacts_are_refused(box_sim):
    with pytest.raises(ValueError, match="2 finite contacts"):
        box_sim.trial(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="2 finite contacts"):
        box_sim.trial(np.array([[np.nan, 0, 0], [0, 0, 0]]))
    with pytest.raises(ValueError, match="mass"):
        GraspSimulator(trimesh.creation.box(extents=BOX), mass=0.0)


def _inside(vertices: np.ndarray, points: np.ndarray, tol: float = 1e-6) -> np.ndarray:
    """Which ``points`` lie inside the convex hull of ``vertices`` (facet half-spaces)."""
    eq = ConvexHull(vertices).equations  # [F, 4]: n . x + d <= 0 inside
    return (points @ eq[:, :3].T + eq[:, 3] <= tol).all(axis=1)


def test_non_convex_objects_collide_as_their_surface_not_their_hull():
    torus = trimesh.creation.torus(major_radius=0.04, minor_radius=0.012, major_sections=32, minor_sections=12)
    pieces = convex_pieces(torus)
    assert len(pieces) > 10
    # the hole stays empty (a single hull would fill it) ...
    assert not any(_inside(p, np.zeros((1, 3)))[0] for p in pieces)
    # ... every point of the surface lies on or inside some piece ...
    surface, _ = trimesh.sample.sample_surface(torus, 300, seed=0)
    covered = np.zeros(len(surface), dtype=bool)
    for p in pieces:
        covered |= _inside(p, surface, tol=1e-5)
    assert covered.all()
    # ... and no piece reaches more than 1 mm outside the surface (checked on its vertices)
    outside = np.concatenate(pieces)
    radial = np.linalg.norm(outside[:, :2], axis=1) - 0.04
    tube = np.sqrt(radial**2 + outside[:, 2] ** 2) - 0.012  # signed distance to the torus
    assert tube.max() < 0.001
    assert len(convex_pieces(trimesh.creation.box(extents=BOX))) == 1


def test_degenerate_faces_get_no_slab_and_the_scene_compiles():
    """Regression (label-physics stopped on it): a generated T-shape has zero-area faces (collinear
    vertices); their flat slab made MuJoCo refuse the whole scene ("coplanar vertices")."""
    from grasp_equi.physics.label import rebuild_object

    obj = rebuild_object("t_shape", "t_shape-000011", 0)  # data/default's object 11 (seed 0)
    assert (np.asarray(obj.mesh.area_faces) < 1e-14).any()  # the case: degenerate faces present
    pieces = convex_pieces(obj.mesh)
    assert all(ConvexHull(p).volume > 0 for p in pieces)
    GraspSimulator(obj.mesh, mass=0.1, pieces=pieces)  # compiles


@pytest.fixture(scope="module")
def hand_box():
    from grasp_equi.physics.fingertips import FingertipSimulator

    return FingertipSimulator(trimesh.creation.box(extents=BOX), mass=700.0 * float(np.prod(BOX)))


@pytest.mark.parametrize("contacts", [
    [[0.025, 0.0, 0.0], [-0.025, 0.01, 0.0], [-0.025, -0.01, 0.0]],
    [[0.025, 0.01, 0.0], [0.025, -0.01, 0.0], [-0.025, 0.01, 0.0], [-0.025, -0.01, 0.0]],
    [[0.025, 0.0, 0.01], [0.025, 0.0, -0.01], [-0.025, 0.01, 0.0], [-0.025, -0.01, 0.0], [0.0, 0.02, 0.0]],
], ids=["K3", "K4", "K5"])
def test_fingertips_on_opposite_faces_hold_a_box(hand_box, contacts):
    result = hand_box.trial(np.array(contacts))
    assert result.status == "held" and result.held and result.drift < 0.006 and result.slip < 0.005


def test_fingertips_hold_a_light_small_cube():
    """Regression: MuJoCo's contact stiffness scales with mass; 40 N fingertips sank 1-2 cm into a 3 g, 2 cm
    cube (off_target) while jaws held it. Light objects are simulated at MIN_MASS."""
    from grasp_equi.physics.fingertips import FingertipSimulator

    sim = FingertipSimulator(trimesh.creation.box(extents=[0.02] * 3), mass=350.0 * 0.02 ** 3)
    result = sim.trial(np.array([[0.01, 0.0, 0.0], [-0.01, 0.0025, 0.0], [-0.01, -0.0025, 0.0]]))
    assert result.status == "held" and result.drift < 0.003


def test_fingertips_outside_the_friction_cone_lose_a_sphere():
    """Three fingertips on a ring of a sphere close towards the ring's centre: 20 degrees off the surface
    normal (inside mu = 0.5's 26.6 degree cone) they hold it; 40 degrees off, it squirts out."""
    from grasp_equi.physics.fingertips import FingertipSimulator

    sim = FingertipSimulator(trimesh.creation.icosphere(subdivisions=3, radius=0.03), mass=0.1)

    def ring(polar_deg):
        t, a = np.deg2rad(polar_deg), 2 * np.pi * np.arange(3) / 3
        return 0.03 * np.stack([np.sin(t) * np.cos(a), np.sin(t) * np.sin(a), np.full(3, np.cos(t))], axis=1)

    assert sim.trial(ring(70)).held
    assert sim.trial(ring(50)).held is False


def test_fingertip_trial_is_deterministic_and_refuses_bad_contacts(hand_box):
    contacts = np.array([[0.025, 0.0, 0.0], [-0.025, 0.01, 0.0], [-0.025, -0.01, 0.0]])
    a = hand_box.trial(contacts)
    five = np.array([[0.025, 0.0, 0.01], [0.025, 0.0, -0.01], [-0.025, 0.01, 0.0], [-0.025, -0.01, 0.0],
                     [0.0, 0.02, 0.0]])
    hand_box.trial(five)  # regression: a K = 5 trial left its mounts turned, and the next K = 3 trial moved
    b = hand_box.trial(contacts)
    assert (a.status, a.slip, a.drift) == (b.status, b.slip, b.drift)
    assert hand_box.trial(np.array([[0.1, 0.0, 0.0], [-0.1, 0.0, 0.0], [0.0, 0.02, 0.0]])).status == "too_wide"
    for bad in (contacts[:1], np.zeros((6, 3)), np.full((3, 3), np.nan), np.zeros((3, 2))):
        with pytest.raises(ValueError, match="fingertip trial"):
            hand_box.trial(bad)


def _validate(tmp_path, name, *extra):
    out = tmp_path / f"{name}.json"
    code = main(["validate-physics", "--families", "box", "cylinder", "--objects", "1", "--grasps-per-object", "4",
                 "--seed", "3", "--json", str(out), "--plot", str(tmp_path / f"{name}.png"), *extra])
    assert code == 0
    return json.loads(out.read_text())


def test_validate_command_is_reproducible_and_reports_agreement(tmp_path, capsys):
    one = _validate(tmp_path, "one")
    two = _validate(tmp_path, "two", "--workers", "2")  # parallel workers: same outcomes, same order
    assert [t["status"] for t in one["trials"]] == [t["status"] for t in two["trials"]]
    assert [t["slip"] for t in one["trials"]] == [t["slip"] for t in two["trials"]]
    assert len(one["trials"]) == 8 and set(one["per_family"]) == {"box", "cylinder"}
    overall = one["overall"]
    counted = [t for t in one["trials"] if t["held"] is not None]
    assert overall["trials"] == len(counted)
    stable = np.array([t["label"] >= 0.5 for t in counted])
    held = np.array([t["held"] for t in counted])
    assert overall["accuracy"] == pytest.approx(float((stable == held).mean()))
    assert (tmp_path / "one.png").stat().st_size > 10_000
    out = capsys.readouterr().out
    assert "kappa" in out
    # the training-family-calibrated criterion is reported beside the dataset's label
    calibrated = one["calibrated_labels"]
    assert calibrated["criterion"]["mu"] == 0.6 and calibrated["overall"]["trials"] == len(counted)
    cal_stable = np.array([t["calibrated_stable"] for t in counted])
    assert calibrated["overall"]["accuracy"] == pytest.approx(float((cal_stable == held).mean()))
    assert "calibrated label" in out


def test_validate_reports_each_k_with_its_hand(tmp_path, capsys):
    """``--k 2 3``: K = 2 trials run the jaws, K = 3 the fingertip hand; a section per K, the K = 2 trials
    the same as a K = 2-only run (their random stream is unchanged)."""
    both = _validate(tmp_path, "both", "--k", "2", "3")
    only_two = _validate(tmp_path, "two_only")
    assert set(both["per_k"]) == {"2", "3"}
    three = [t for t in both["trials"] if t["k"] == 3]
    assert len(three) == 8 and all(len(t["contacts"]) == 3 for t in three)
    assert both["per_k"]["3"]["trials"] == sum(t["held"] is not None for t in three)
    assert [t["status"] for t in both["trials"] if t["k"] == 2] == [t["status"] for t in only_two["trials"]]
    assert all(np.isnan(t["jaw_label"]) if t["jaw_label"] is not None else True for t in three)
    assert "K = 3" in capsys.readouterr().out


def _row(contacts, normals, mass=0.1):
    return {"contacts": np.asarray(contacts, float).tolist(), "normals": np.asarray(normals, float).tolist(),
            "center": [0.0, 0.0, 0.0], "radius": 0.05, "mass": mass}


def test_calibrated_criterion_needs_closure_margin_and_a_light_enough_load():
    from grasp_equi.physics.calibrate import CALIBRATED, criterion_stable

    x = np.array([1.0, 0.0, 0.0])
    centred = _row([0.03 * x, -0.03 * x], [x, -x])  # antipodal through the centre of mass
    tilt = np.radians(35.0)  # each normal 35 deg off the closing line: outside the mu = 0.6 cone (31 deg)
    n = np.array([np.cos(tilt), np.sin(tilt), 0.0])
    tilted = _row([0.03 * x, -0.03 * x], [n, -n])
    # 1 kg held 4 cm from the centre of mass: m g d / F = 9.8 mm at 40 N, above the 5 mm limit
    heavy_off_axis = _row([[0.03, 0.04, 0], [-0.03, 0.04, 0]], [x, -x], mass=1.0)
    light_off_axis = _row([[0.03, 0.04, 0], [-0.03, 0.04, 0]], [x, -x], mass=0.1)
    stable = criterion_stable([centred, tilted, heavy_off_axis, light_off_axis], CALIBRATED, grip_force=40.0,
                              samples=24, rng=np.random.default_rng(0))
    assert stable.tolist() == [True, False, False, True]


def test_validate_scores_with_given_weights(tmp_path):
    import torch

    from grasp_equi.checkpoint import save_checkpoint
    from grasp_equi.model import ModelConfig, build_model

    from conftest import SMALL_MODEL

    config = ModelConfig(**SMALL_MODEL)
    torch.manual_seed(0)
    weights = save_checkpoint(tmp_path / "w.safetensors", build_model(config), config)
    report = _validate(tmp_path, "w", "--weights", str(weights), "--device", "cpu", "--cloud-points", "512")
    scores = np.array([t["score"] for t in report["trials"]])
    assert np.isfinite(scores).all() and ((scores >= 0) & (scores <= 1)).all()
    assert "model_auc" in report["overall"] and report["model_skipped"] is None


@pytest.mark.parametrize("argv, message", [
    (["--families", "teapot"], "--families: unknown"),
    (["--weights", "/nonexistent.safetensors"], "no such file"),
    (["--meshes", "/nonexistent_dir"], "no such folder"),
])
def test_validate_refuses_bad_input_with_a_message(argv, message, capsys):
    assert main(["validate-physics", *argv]) == 1
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--objects", "0"], "argument --objects: must be >= 1"),
    (["--grip-force", "-3"], "argument --grip-force: must be > 0"),
])
def test_validate_refuses_bad_numbers_as_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["validate-physics", *argv])
    assert exc.value.code == 2 and message in capsys.readouterr().err
