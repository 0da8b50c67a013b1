"""Thinning dense clouds (``ModelConfig.cloud_points``) and farthest-point reference points: both must keep
the scoring path's guarantees (rigid-motion invariance to rounding, order-free picks without ties)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from conftest import ellipsoid_cloud
from grasp_equi import GraspScorer
from grasp_equi.adversarial import box_surface_grid, mirrored_grasps
from grasp_equi.geometry import random_rotation
from grasp_equi.graph import normalised_cloud, prepare_cloud
from grasp_equi.train import SHIPPED_MODEL

FAST = dict(max_points=2048, orientation="harmonic", reference_sampling="farthest_point", num_references=256)
# the shipped architecture with that preprocessing (ModelConfig's names)
FAST_MODEL = {**SHIPPED_MODEL, "cloud_points": 2048, "reference_sampling": "farthest_point", "num_references": 256,
              "contact_normal_source": "pca"}


def _moved(points: np.ndarray, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return points @ random_rotation(rng, reflect=True).T + rng.uniform(-50.0, 50.0, 3)


def _sorted_rows(a: np.ndarray) -> np.ndarray:
    return a[np.lexsort(a.T[::-1])]


def test_thinning_keeps_max_points_whatever_the_pose_and_order(rng):
    """A noisy 20k-point cloud (no ties) is thinned to the same points in any pose and any point order."""
    points = ellipsoid_cloud(20000, rng=rng)[0]
    local, _, _, _, _ = normalised_cloud(torch.as_tensor(points), None, 2048)
    assert local.shape == (2048, 3)
    moved, _, _, _, _ = normalised_cloud(torch.as_tensor(_moved(points)), None, 2048)
    # the same picks: their distances from the centroid (invariant) agree one by one, in rank order
    np.testing.assert_allclose(moved.norm(dim=1).numpy(), local.norm(dim=1).numpy(), rtol=0, atol=1e-12)
    perm = rng.permutation(len(points))
    shuffled, _, _, _, _ = normalised_cloud(torch.as_tensor(points[perm]), None, 2048)
    # the same points (the centroid moves by rounding with the summation order)
    np.testing.assert_allclose(_sorted_rows(shuffled.numpy()), _sorted_rows(local.numpy()), rtol=0, atol=1e-12)


def test_small_clouds_and_zero_are_not_thinned(rng):
    points = torch.as_tensor(ellipsoid_cloud(500, rng=rng)[0])
    assert normalised_cloud(points, None, 2048)[0].shape == (500, 3)
    assert normalised_cloud(points, None, 0)[0].shape == (500, 3)
    assert normalised_cloud(points, None, 100)[0].shape == (100, 3)


def test_nodes_are_the_first_farthest_point_references(rng):
    points = torch.as_tensor(ellipsoid_cloud(3000, rng=rng)[0])
    cloud = prepare_cloud(points, None, 128, **FAST)
    refs = cloud.orientation.points  # [256, 3] float64
    assert refs.shape == (256, 3) and cloud.local.shape == (2048, 3)
    np.testing.assert_array_equal(cloud.node_pos.numpy(), refs[:128].to(torch.float32).numpy())
    np.testing.assert_array_equal(cloud.node_normal.numpy(), cloud.orientation.normals[:128].to(torch.float32).numpy())
    # outward on an ellipsoid: every node normal points away from the centroid
    assert ((cloud.node_normal * cloud.node_pos).sum(dim=1) > 0).all()


@pytest.mark.parametrize("name, points", [
    ("grid_box_2mm", box_surface_grid(step=0.002)),  # ~6k points with exact ties in every distance
    ("grid_box_2mm_x3", np.repeat(box_surface_grid(step=0.002), 3, axis=0)),  # ... each point three times
])
def test_thinned_grid_scores_the_same_in_any_pose(name, points):
    """Thinning, farthest-point references and their normal signs on a tied grid: scores move by rounding only."""
    scorer = GraspScorer.untrained(seed=0, device="cpu", **FAST_MODEL)
    assert scorer.config.cloud_points == 2048 and len(np.unique(points, axis=0)) > 2048
    contacts = mirrored_grasps(np.unique(points, axis=0), 16, 2, seed=1)
    base = scorer.score(points, contacts)
    assert np.isfinite(base).sum() >= 12
    for seed in range(3):
        rng = np.random.default_rng(seed)
        rot, shift = random_rotation(rng, reflect=bool(seed % 2)), rng.uniform(-100.0, 100.0, 3)
        moved = scorer.score(points @ rot.T + shift, contacts @ rot.T + shift)
        np.testing.assert_array_equal(np.isnan(moved), np.isnan(base))
        assert np.nanmax(np.abs(moved - base)) <= 1e-5


def test_fast_preprocessing_changes_nothing_for_clouds_at_training_density(rng):
    """Clouds of at most cloud_points distinct points (the dataset's) are never thinned: the same nodes."""
    points = torch.as_tensor(ellipsoid_cloud(2048, rng=rng)[0])
    thin = prepare_cloud(points, None, 128, **FAST)
    whole = prepare_cloud(points, None, 128, **{**FAST, "max_points": 0})
    np.testing.assert_array_equal(thin.node_pos.numpy(), whole.node_pos.numpy())
    np.testing.assert_array_equal(thin.node_normal.numpy(), whole.node_normal.numpy())


def test_old_checkpoints_keep_their_preprocessing():
    """A config without the new keys (an older checkpoint's) neither thins nor samples references by FPS."""
    from grasp_equi.model.config import ModelConfig

    old = {k: v for k, v in ModelConfig(**FAST_MODEL).to_dict().items()
           if k not in ("cloud_points", "reference_sampling", "num_references")}
    config = ModelConfig.from_dict(old)
    assert (config.cloud_points, config.reference_sampling, config.num_references) == (0, "radius_ranks", 1024)
    assert dataclasses.replace(config, cloud_points=2048).cloud_points == 2048
