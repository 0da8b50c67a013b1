"""Invariance on the inputs that break rounding-dependent preprocessing (shipped weights, real path).

Grids, symmetric meshes, repeated points and organised depth views put many distances exactly
on a tie; any discrete choice there (an FPS argmax, a k-NN boundary, a sign vote) flips once
rounding moves the values. ``grasp_equi.adversarial`` builds one cloud of each kind; the
hypothesis test below builds new ones and keeps searching.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grasp_equi import GraspScorer
from grasp_equi.adversarial import (Case, adversarial_family, box_surface_grid, cylinder_vertices, flat_patch_grid,
                                    icosphere, invariance_error, mirrored_grasps, plate_grid, rigid_motions)
from grasp_equi.geometry import random_rotation
from grasp_equi.limits import Limits
from grasp_equi.scorer import SHIPPED_WEIGHTS

TOL = 1e-5  # float32 network: the promise of the README

pytestmark = pytest.mark.skipif(not SHIPPED_WEIGHTS.is_file(), reason="no shipped weights")


@pytest.fixture(scope="module")
def shipped():
    return GraspScorer.from_checkpoint(device="cpu")


@pytest.mark.parametrize("case", adversarial_family(), ids=lambda c: c.name)
def test_adversarial_family_is_invariant(shipped, case):
    """Rotations, reflections, an exact 90 degree turn and a translation of 100 m: the default answer,
    P(held), and its spread σ over the held readouts (measured 6e-6 and 7e-7 at worst: duplicates_x20)."""
    assert shipped.outputs[0] == "held"

    def held_and_sigma(points, contacts):
        return np.concatenate(shipped.score(points, contacts, return_std=True))  # [2 G]: P(held), then σ

    assert invariance_error(held_and_sigma, case, rigid_motions(count=4)) <= TOL


def test_untrained_centroid_rule_is_invariant_too():
    """The centroid sign rule (untrained default, the baseline's inputs) on the tie-heaviest clouds."""
    scorer = GraspScorer.untrained(seed=3, device="cpu")
    for case in adversarial_family()[:4]:
        assert invariance_error(scorer.score, case, rigid_motions(count=2)) <= TOL, case.name


def test_repeated_points_change_nothing(shipped):
    """Merged frames: every point twice or twenty times scores like the cloud itself."""
    base = box_surface_grid(step=0.006)
    contacts = mirrored_grasps(base, 8)
    expected = shipped.score(base, contacts)
    for copies in (2, 20):
        np.testing.assert_allclose(shipped.score(np.repeat(base, copies, axis=0), contacts), expected, atol=TOL)
        np.testing.assert_allclose(shipped.score(np.tile(base, (copies, 1)), contacts), expected, atol=TOL)


def test_noisy_cloud_is_invariant_to_point_order(shipped):
    """Without exact ties the order of the points does not matter (with ties, see GraspScorer.score)."""
    rng = np.random.default_rng(5)
    points = box_surface_grid() + rng.normal(scale=3e-4, size=(1552, 3))
    contacts = mirrored_grasps(points, 10, 3)
    perm = rng.permutation(len(points))
    np.testing.assert_allclose(shipped.score(points[perm], contacts), shipped.score(points, contacts), atol=TOL)


def test_contacts_in_other_units_or_inside_get_a_reason(shipped):
    """User reports: a cloud in millimetres with contacts in metres; contacts 1-3 cm inside a box."""
    box = box_surface_grid(step=0.003)
    with pytest.raises(ValueError, match="object radius .* are the units metres"):  # the default limits
        shipped.score(box * 1000.0, mirrored_grasps(box, 3))
    lenient = copy.copy(shipped)  # with the size check widened, the contacts themselves get a reason
    lenient.limits = Limits(max_object_radius=1000.0)
    mixed_units, reasons = lenient.score(box * 1000.0, mirrored_grasps(box, 3), return_reasons=True)
    assert np.isnan(mixed_units).all() and all(r.startswith("off_surface") for r in reasons)
    inside = np.array([[[0.0, 0.0, 0.01], [0.0, 0.0, -0.01]], [[0.0, 0.0, 0.05], [0.0, 0.0, -0.05]]])
    scores, reasons = shipped.score(box, inside, return_reasons=True)
    assert np.isnan(scores[0]) and "does not touch" in reasons[0]
    assert np.isfinite(scores[1]) and reasons[1] is None  # the top and bottom faces: a real grasp


# ----------------------------------------------------------------------------- hypothesis search
@st.composite
def tied_clouds(draw) -> np.ndarray:
    """Clouds full of exact ties: grids, symmetric mesh vertices, and those with repeated points."""
    kind = draw(st.sampled_from(["box", "patch", "plate", "ico", "cylinder"]))
    if kind == "box":
        size = [draw(st.integers(4, 14)) * 0.005 for _ in range(3)]
        points = box_surface_grid(size, step=draw(st.sampled_from([0.004, 0.005, 0.008])))
    elif kind == "patch":
        points = flat_patch_grid(draw(st.integers(5, 30)), draw(st.integers(5, 30)), draw(st.sampled_from([0.002, 0.003])))
    elif kind == "plate":
        points = plate_grid(draw(st.sampled_from([0.002, 0.003, 0.006])), draw(st.integers(5, 20)), draw(st.integers(5, 20)))
    elif kind == "ico":
        points = icosphere(draw(st.integers(1, 3)), radius=draw(st.sampled_from([0.02, 0.05])))
    else:
        points = cylinder_vertices(draw(st.integers(6, 40)), draw(st.integers(2, 12)))
    copies = draw(st.sampled_from([1, 1, 2, 5, 20]))
    return np.repeat(points, copies, axis=0) if draw(st.booleans()) else np.tile(points, (copies, 1))


@st.composite
def rigid_motion(draw) -> tuple[np.ndarray, np.ndarray]:
    seed = draw(st.integers(0, 2**32 - 1))
    rot = random_rotation(np.random.default_rng(seed), reflect=draw(st.booleans()))
    shift = np.array([draw(st.floats(-100.0, 100.0, allow_nan=False)) for _ in range(3)])
    return rot, shift


# Derandomized: CI runs the same 20 examples every time (float32 rounding of the network alone reaches
# ~7e-6 on some inputs, so a fresh random search could flake at the bound); run it with more examples
# and derandomize=False to search further. Each breaking input found is kept as a regression below.
@settings(max_examples=20, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(points=tied_clouds(), motion=rigid_motion(), k=st.sampled_from([2, 3]), seed=st.integers(0, 100))
def test_hypothesis_search_for_breaking_inputs(shipped, points, motion, k, seed):
    case = Case("hypothesis", points, mirrored_grasps(points, 6, k, seed))
    assert invariance_error(shipped.score, case, [motion]) <= TOL


def test_regression_ring_seen_edge_on(shipped):
    """Found by the search: a cylinder with 3 rings has a middle ring whose PCA normals are the axis, so
    its patch's sum of n . p is rounding noise over rounding noise (was 0.0996; floor in the vote)."""
    points = cylinder_vertices(28, 3)
    case = Case("ring", points, mirrored_grasps(points, 6, 3, 59))
    motion = (random_rotation(np.random.default_rng(7)), np.array([-72.6, 3.3e-72, 3.6e-151]))
    assert invariance_error(shipped.score, case, [motion]) <= TOL
