"""End-to-end invariance of GraspScorer.score, through the real preprocessing."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import SMALL_MODEL, ellipsoid_cloud, random_grasps, torus_cloud
from grasp_equi import GraspScorer
from grasp_equi.geometry import random_rotation

TOL = 1e-4


@pytest.fixture(scope="module")
def default_scorer():
    # The full-size default model: invariance must hold for what ships, not only a toy.
    return GraspScorer.untrained(seed=3, device="cpu")


def _moved(points, contacts, rng, reflect=False, shift=5.0):
    rot = random_rotation(rng, reflect=reflect)
    t = rng.uniform(-shift, shift, size=3)
    return points @ rot.T + t, contacts @ rot.T + t


@pytest.mark.parametrize("n_points", [300, 3000])
@pytest.mark.parametrize("reflect", [False, True])
def test_rigid_motion_does_not_change_scores(default_scorer, rng, n_points, reflect):
    points, _ = ellipsoid_cloud(n_points, rng=rng, noise=5e-4)
    contacts = random_grasps(points, 24, 2, rng)
    base = default_scorer.score(points, contacts)
    for _ in range(3):
        p2, c2 = _moved(points, contacts, rng, reflect=reflect)
        assert np.abs(default_scorer.score(p2, c2) - base).max() < TOL


def test_translation_of_several_metres(small_scorer, rng):
    points, _ = ellipsoid_cloud(800, rng=rng)
    contacts = random_grasps(points, 16, 3, rng)
    base = small_scorer.score(points, contacts)
    for shift in ([8.0, -6.0, 3.0], [-20.0, 15.0, 9.0]):
        assert np.abs(small_scorer.score(points + shift, contacts + shift) - base).max() < TOL


def test_point_order_and_contact_order_do_not_matter(small_scorer, rng):
    points, normals = ellipsoid_cloud(1500, rng=rng)
    contacts = random_grasps(points, 20, 4, rng)
    base = small_scorer.score(points, contacts)
    perm = rng.permutation(len(points))
    assert np.abs(small_scorer.score(points[perm], contacts) - base).max() < TOL
    shuffled = np.stack([g[rng.permutation(4)] for g in contacts])
    assert np.abs(small_scorer.score(points, shuffled) - base).max() < TOL
    # with given normals too
    base_n = small_scorer.score(points, contacts, normals)
    assert np.abs(small_scorer.score(points[perm], shuffled, normals[perm]) - base_n).max() < TOL


def test_given_normals_rotate_with_the_cloud(small_scorer, rng):
    points, normals = ellipsoid_cloud(600, rng=rng)
    contacts = random_grasps(points, 12, 2, rng)
    base = small_scorer.score(points, contacts, normals)
    rot = random_rotation(rng)
    moved = small_scorer.score(points @ rot.T + 1.0, contacts @ rot.T + 1.0, normals @ rot.T)
    assert np.abs(moved - base).max() < TOL


def test_mixed_contact_counts_in_one_call(small_scorer, rng):
    points, _ = ellipsoid_cloud(700, rng=rng)
    grasps = [random_grasps(points, 1, k, rng)[0] for k in (2, 5, 3, 2, 4)]
    together = small_scorer.score(points, grasps)
    alone = np.array([small_scorer.score(points, g[None])[0] for g in grasps])
    assert together.shape == (5,)
    assert np.abs(together - alone).max() < 1e-5
    rot = random_rotation(rng)
    moved = small_scorer.score(points @ rot.T - 2.0, [g @ rot.T - 2.0 for g in grasps])
    assert np.abs(moved - together).max() < TOL


def test_scores_are_not_trivially_invariant(small_scorer, rng):
    """Distinct grasps get distinct scores even untrained, and moving a contact changes its score."""
    points, _ = ellipsoid_cloud(900, rng=rng)
    contacts = random_grasps(points, 32, 2, rng)
    scores = small_scorer.score(points, contacts)
    assert np.all((scores > 0) & (scores < 1))
    assert scores.std() > 1e-3
    assert len(np.unique(np.round(scores, 6))) > 28
    # Rotating only the contacts (not the cloud) is a different grasp: the score must change.
    rot = random_rotation(rng)
    moved_contacts = contacts @ rot.T
    near = np.abs(np.linalg.norm(moved_contacts, axis=2) - 0.03) < 0.05  # keep them near the object
    assert near.all()
    changed = small_scorer.score(points, moved_contacts)  # NaN where a moved contact left the surface
    assert np.isfinite(changed).sum() >= 8
    assert np.nanmax(np.abs(changed - scores)) > 1e-3


@pytest.mark.parametrize("reflect", [False, True])
def test_surface_oriented_normals_keep_scores_invariant(rng, reflect):
    """With normals oriented over the surface (what ships), on a torus whose inner ring the
    propagation has to reach: rigid motions and point order leave every score unchanged."""
    scorer = GraspScorer.untrained(seed=5, device="cpu", normal_orientation="surface", **SMALL_MODEL)
    points, _ = torus_cloud(2500, rng)
    contacts = random_grasps(points, 24, 2, rng)
    base = scorer.score(points, contacts)
    p2, c2 = _moved(points, contacts, rng, reflect=reflect)
    assert np.abs(scorer.score(p2, c2) - base).max() < TOL
    perm = rng.permutation(len(points))
    assert np.abs(scorer.score(points[perm], contacts) - base).max() < TOL
    # and the orientation matters: the centroid rule flips the inner ring, so scores differ
    centroid = GraspScorer.untrained(seed=5, device="cpu", normal_orientation="centroid", **SMALL_MODEL)
    assert np.abs(centroid.score(points, contacts) - base).max() > 1e-3
