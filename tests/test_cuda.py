"""GPU path: same scores as the CPU and the same invariance (skipped without CUDA)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import ellipsoid_cloud, random_grasps
from grasp_equi import GraspScorer
from grasp_equi.geometry import random_rotation

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]


def test_cuda_matches_cpu_and_is_invariant():
    rng = np.random.default_rng(0)
    points, _ = ellipsoid_cloud(20000, rng=rng, noise=5e-4)
    contacts = random_grasps(points, 512, 2, rng)
    cpu = GraspScorer.untrained(seed=0, device="cpu")
    gpu = GraspScorer.untrained(seed=0, device="cuda")
    p_cpu, p_gpu = cpu.score(points, contacts), gpu.score(points, contacts)
    assert np.abs(p_cpu - p_gpu).max() < 1e-4
    rot = random_rotation(rng)
    moved = gpu.score(points @ rot.T + 3.0, contacts @ rot.T + 3.0)
    assert np.abs(moved - p_gpu).max() < 1e-4
