"""Shared fixtures: small real models and clouds made in the test (no downloads, no mocks)."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

# Each test session talks on its own DDS domain so parallel runs never hear each other.
os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(20, 220)))

REPO = Path(__file__).resolve().parents[1]
# what colcon needs to build the package (a copy: the repository itself is never built in)
PACKAGE_FILES = ["package.xml", "setup.py", "setup.cfg", "requirements.txt", "README.md", "resource", "grasp_equi",
                 "launch", "config", "grasp_equi_gui", "rviz"]
VENV_PATH = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
COLCON = shutil.which("colcon", path=VENV_PATH)

SMALL_MODEL = dict(num_nodes=96, irreps_hidden="16x0e + 4x1o + 2x2e", radial_hidden=16, readout_hidden=32)


def ellipsoid_cloud(n: int, axes=(0.05, 0.03, 0.02), rng=None, noise: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Points on an ellipsoid surface (metres) and their outward normals."""
    rng = np.random.default_rng(0) if rng is None else rng
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    axes = np.asarray(axes)
    pts = d * axes  # [n, 3]
    normals = pts / axes**2
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    if noise:
        pts = pts + rng.normal(scale=noise, size=pts.shape)
    return pts, normals


def torus_cloud(n: int, rng, major: float = 0.04, minor: float = 0.012) -> tuple[np.ndarray, np.ndarray]:
    """Points on a torus about z (area-uniform by rejection) and their outward normals."""
    u, v = rng.uniform(0, 2 * np.pi, size=(2, 4 * n))
    keep = rng.uniform(size=4 * n) < (major + minor * np.cos(v)) / (major + minor)
    u, v = u[keep][:n], v[keep][:n]
    normals = np.stack([np.cos(v) * np.cos(u), np.cos(v) * np.sin(u), np.sin(v)], axis=1)
    ring = np.stack([major * np.cos(u), major * np.sin(u), np.zeros_like(u)], axis=1)
    return ring + minor * normals, normals


def random_grasps(points: np.ndarray, num_grasps: int, k: int, rng) -> np.ndarray:
    """``(G, K, 3)`` contacts picked among the cloud's points."""
    idx = rng.choice(len(points), size=(num_grasps, k), replace=True)
    return points[idx]


@pytest.fixture(scope="session")
def small_scorer():
    from grasp_equi import GraspScorer

    return GraspScorer.untrained(seed=0, device="cpu", **SMALL_MODEL)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def colcon_ws(tmp_path_factory) -> Path:
    """A colcon workspace holding a copy of this package, built once per test session (the
    colcon, launch and ros2 CLI tests share it); ``install/setup.sh`` is inside."""
    if COLCON is None:
        pytest.skip("colcon not installed (pip install colcon-core colcon-ros colcon-python-setup-py "
                    "colcon-package-selection)")
    ws = tmp_path_factory.mktemp("colcon_ws")
    src = ws / "src" / "grasp_equi"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "weights_tmp")
    for name in PACKAGE_FILES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=ignore)
        elif path.exists():
            src.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, src / name)
    proc = subprocess.run([COLCON, "build", "--event-handlers", "console_direct-"], cwd=ws,
                          env=dict(os.environ, PATH=VENV_PATH), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return ws


def with_test_ensemble(scorer, members: int = 3, seed: int = 0):
    """``(model, config)``: ``scorer``'s network plus a seeded, unfitted ensemble of ``members`` readouts
    (every answer then carries a spread; its values are arbitrary but deterministic)."""
    import torch

    from grasp_equi.model.ensemble import ReadoutEnsemble
    from grasp_equi.training.ensemble import with_ensemble

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        ensemble = ReadoutEnsemble(scorer.model.pooled_dim, scorer.config.readout_hidden, members)
    return with_ensemble(scorer.model, scorer.config, ensemble)


def fitted_held_checkpoints(root: Path) -> tuple[Path, Path, Path]:
    """``(dataset, base checkpoint, checkpoint with P(held))`` made for real under ``root``: a tiny generated
    dataset, ``label-physics`` (one MuJoCo trial per grasp), an untrained ``SMALL_MODEL`` network and
    ``fit-held`` with 3 readouts on it (~10 s)."""
    from grasp_equi import GraspScorer
    from grasp_equi.checkpoint import save_checkpoint
    from grasp_equi.cli import main

    data = root / "ds"
    assert main(["generate", "--out", str(data), "--families", "box", "capsule", "sphere", "--objects", "3",
                 "--views", "1", "--grasps-per-view", "8", "--points", "400", "--samples", "4",
                 "--objects-per-shard", "1", "--k-mix", "2:0.7,3:0.3", "--quiet"]) == 0
    assert main(["label-physics", "--data", str(data), "--trials", "1", "--quiet"]) == 0
    scorer = GraspScorer.untrained(seed=0, device="cpu", **SMALL_MODEL)
    base = save_checkpoint(root / "base.safetensors", scorer.model, scorer.config, {"note": "untrained test network"})
    held = root / "held.safetensors"
    assert main(["fit-held", "--weights", str(base), "--data", str(data), "--out", str(held), "--members", "3",
                 "--epochs", "3", "--quiet"]) == 0
    return data, base, held


def with_test_held(scorer, members: int = 3, seed: int = 0):
    """``(model, config)``: ``scorer``'s network plus seeded, unfitted P(held) readouts (``members``), so it
    answers both P(held) (its default) and P(force closure); values arbitrary but deterministic."""
    import torch

    from grasp_equi.model.ensemble import ReadoutEnsemble
    from grasp_equi.training.ensemble import with_readouts

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        readouts = ReadoutEnsemble(scorer.model.pooled_dim, scorer.config.readout_hidden, members)
    return with_readouts(scorer.model, scorer.config, "held", readouts)


def mesh_cloud(mesh, n=3000, seed=0):
    """``(n, 3)`` complete cloud of a trimesh ``mesh`` (the generator's own sampling)."""
    from grasp_equi.data.clouds import complete_cloud
    from grasp_equi.data.objects import _finish

    obj = _finish(mesh, "test", "test", 1000.0)
    points, _ = complete_cloud(obj, n, np.random.default_rng(seed))
    return points


def box_cloud(n=3000):
    """``(n, 3)`` cloud of a 4 x 9 x 12 cm box."""
    import trimesh

    # 4 x 9 x 12 cm: only the 4 cm side fits the 8 cm opening. (With a 4 x 7 x 12 cm box the
    # shipped model ranks the 7 cm grasps first, 0.978 vs 0.962: both are force closure.)
    return mesh_cloud(trimesh.creation.box(extents=[0.04, 0.09, 0.12]), n)
