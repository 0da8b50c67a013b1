"""Public API contract: input validation and checkpoint safety."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from conftest import SMALL_MODEL, ellipsoid_cloud, random_grasps
from grasp_equi import CheckpointError, GraspScorer
from grasp_equi.checkpoint import save_checkpoint
from grasp_equi.model import ModelConfig, build_model
from grasp_equi.scorer import SHIPPED_WEIGHTS

POINTS, NORMALS = ellipsoid_cloud(400, rng=np.random.default_rng(0))
GOOD = POINTS[[[0, 1], [2, 3]]]


def _nan_cloud():
    p = POINTS.copy()
    p[7, 1] = np.nan
    return p


@pytest.mark.parametrize(
    "points, contacts, normals, message",
    [
        (np.zeros((0, 3)), GOOD, None, "empty"),
        (POINTS[:, :2], GOOD, None, r"shape \(N, 3\)"),
        (POINTS[:3], GOOD, None, "at least 4"),
        (_nan_cloud(), GOOD, None, "non-finite"),
        (np.where(np.isfinite(POINTS), POINTS, 0) * 0 + 1.0, GOOD, None, "no extent"),
        (POINTS, POINTS[[[0]]], None, "K >= 2"),
        (POINTS, POINTS[:4], None, r"\(G, K, 3\)"),
        (POINTS, np.full((1, 2, 3), np.inf), None, "non-finite"),
        (POINTS, GOOD, NORMALS[:10], "same shape"),
        (POINTS, GOOD, np.zeros_like(NORMALS), "zero-length"),
        ("not an array", GOOD, None, "numeric array"),
    ],
)
def test_invalid_input_raises_value_error(small_scorer, points, contacts, normals, message):
    with pytest.raises(ValueError, match=message):
        small_scorer.score(points, contacts, normals)


def test_zero_grasps_gives_empty_result(small_scorer):
    assert small_scorer.score(POINTS, np.zeros((0, 2, 3))).shape == (0,)


def test_checkpoint_round_trip(tmp_path, rng):
    config = ModelConfig(**SMALL_MODEL)
    torch.manual_seed(5)
    model = build_model(config)
    path = save_checkpoint(tmp_path / "m.safetensors", model, config, info={"note": "test"})
    loaded = GraspScorer.from_checkpoint(path, device="cpu")
    direct = GraspScorer(model, config, device="cpu")
    contacts = random_grasps(POINTS, 10, 2, rng)
    assert np.abs(loaded.score(POINTS, contacts) - direct.score(POINTS, contacts)).max() < 1e-6
    assert loaded.config == config and loaded.info == {"note": "test"}


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_checkpoint_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    for name, writer in [("torch.pt", lambda p: torch.save({"x": _Exploit(marker)}, p)),
                         ("raw.pkl", lambda p: p.write_bytes(pickle.dumps(_Exploit(marker))))]:
        path = tmp_path / name
        writer(path)
        with pytest.raises(CheckpointError, match="pickle"):
            GraspScorer.from_checkpoint(path, device="cpu")
    assert not marker.exists()


def test_bad_checkpoints_give_one_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        GraspScorer.from_checkpoint(tmp_path / "missing.safetensors")
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(CheckpointError, match="corrupt.safetensors"):
        GraspScorer.from_checkpoint(corrupt)
    # weights that do not fit their config
    config = ModelConfig(**SMALL_MODEL)
    path = save_checkpoint(tmp_path / "m.safetensors", build_model(ModelConfig()), config)
    with pytest.raises(CheckpointError, match="does not match"):
        GraspScorer.from_checkpoint(path)
    # a safetensors file written by something else (no grasp_equi metadata)
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(3)}, str(foreign))
    with pytest.raises(CheckpointError, match="format version"):
        GraspScorer.from_checkpoint(foreign)


@pytest.mark.skipif(SHIPPED_WEIGHTS.exists(), reason="shipped weights exist; tested in test_shipped_weights")
def test_missing_shipped_weights_say_how_to_get_them():
    with pytest.raises(CheckpointError, match="make train"):
        GraspScorer.from_checkpoint()


def test_cuda_request_without_cuda_is_clear():
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(ValueError, match="CUDA is not available"):
        GraspScorer.untrained(device="cuda")


def test_grasps_off_the_surface_score_nan_with_a_reason(small_scorer):
    """A grasp whose contact does not touch the cloud is not judged; the others still are."""
    far = GOOD + np.array([1.0, 0.0, 0.0])  # 1 m beside a 5 cm object
    mixed = np.concatenate([GOOD, far[:1], GOOD[:1]])
    scores, reasons = small_scorer.score(POINTS, mixed, return_reasons=True)
    assert small_scorer.reasons == reasons
    alone = small_scorer.score(POINTS, GOOD)
    assert np.isnan(scores[len(GOOD)]) and reasons[len(GOOD)].startswith("off_surface")
    assert np.allclose(scores[:len(GOOD)], alone, atol=1e-6) and scores[-1] == pytest.approx(alone[0], abs=1e-6)
    assert [r is None for r in reasons] == [True] * len(GOOD) + [False, True]
