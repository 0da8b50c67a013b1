"""Last-layer ensemble: `grasp-equi fit-ensemble` end to end, sigma's invariance, determinism, refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import SMALL_MODEL
from grasp_equi import GraspScorer
from grasp_equi.checkpoint import save_checkpoint
from grasp_equi.cli import main


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """``(data dir, base checkpoint, ensemble checkpoint)``: a tiny dataset, an untrained small network and
    a 3-member ensemble fitted on it (the trunk stays as it is)."""
    root = tmp_path_factory.mktemp("ensemble")
    data = root / "ds"
    assert main(["generate", "--out", str(data), "--families", "box", "capsule", "torus", "--objects", "3",
                 "--views", "2", "--grasps-per-view", "8", "--points", "400", "--samples", "4",
                 "--objects-per-shard", "1", "--quiet"]) == 0
    scorer = GraspScorer.untrained(seed=0, device="cpu", **SMALL_MODEL)
    base = root / "base.safetensors"
    save_checkpoint(base, scorer.model, scorer.config, {"note": "untrained test network"})
    out = root / "ens.safetensors"
    assert main(["fit-ensemble", "--weights", str(base), "--data", str(data), "--out", str(out), "--members", "3",
                 "--epochs", "3", "--quiet"]) == 0
    return data, base, out


def test_ensemble_scores_with_mean_and_spread_and_keeps_the_network(fitted, rng):
    from conftest import ellipsoid_cloud, random_grasps

    _, base, out = fitted
    plain, ens = GraspScorer.from_checkpoint(base, device="cpu"), GraspScorer.from_checkpoint(out, device="cpu")
    assert ens.config.ensemble_members == 3 and ens.info["ensemble"]["members"] == 3
    for name, tensor in plain.model.state_dict().items():  # the network itself is unchanged
        torch.testing.assert_close(ens.model.state_dict()[name], tensor)
    points, _ = ellipsoid_cloud(1500, rng=rng)
    grasps = random_grasps(points, 40, 2, rng)
    mean, std = ens.score(points, grasps, return_std=True)
    assert mean.shape == std.shape == (40,) and np.isfinite(std).all() and std.max() > 1e-4
    assert ((mean >= 0) & (mean <= 1)).all() and (std <= 0.5).all()
    np.testing.assert_allclose(ens.score(points, grasps), mean)  # score() is the members' mean
    with pytest.raises(ValueError, match="no ensemble"):
        plain.score(points, grasps, return_std=True)
    scores, spread, reasons = ens.score(points, grasps, return_std=True, return_reasons=True)
    assert reasons == [None] * 40


def test_sigma_is_invariant_on_the_adversarial_family(fitted):
    from grasp_equi.adversarial import adversarial_family, invariance_error, rigid_motions

    ens = GraspScorer.from_checkpoint(fitted[2], device="cpu")
    motions = rigid_motions()
    for case in adversarial_family()[:6]:  # grids, plate, icosphere, cylinder, cube: the tie-heaviest clouds
        assert invariance_error(lambda p, c: ens.score(p, c, return_std=True)[1], case, motions) <= 1e-5, case.name
        assert invariance_error(ens.score, case, motions) <= 1e-5, case.name


def test_baseline_ensemble_sigma_moves_with_the_pose(fitted, tmp_path):
    """The contrast the GUI's sweep shows: a PointNet ensemble's spread is not invariant (its features are
    raw coordinates), while it fits and scores like the equivariant one."""
    from grasp_equi.adversarial import adversarial_family, invariance_error, rigid_motions

    data = fitted[0]
    baseline = GraspScorer.untrained(seed=0, device="cpu", architecture="pointnet", num_nodes=64, radius=0.4,
                                     baseline_width=16)
    base, out = tmp_path / "pointnet.safetensors", tmp_path / "pointnet_ens.safetensors"
    save_checkpoint(base, baseline.model, baseline.config, {"note": "untrained baseline"})
    assert main(["fit-ensemble", "--weights", str(base), "--data", str(data), "--out", str(out), "--members", "3",
                 "--epochs", "3", "--quiet"]) == 0
    ens = GraspScorer.from_checkpoint(out, device="cpu")
    assert ens.config.architecture == "pointnet" and ens.config.ensemble_members == 3
    case = next(c for c in adversarial_family() if c.name == "noisy_box")  # no ties, so any change is the baseline's own
    assert invariance_error(lambda p, c: ens.score(p, c, return_std=True)[1], case, rigid_motions()) > 1e-3


def test_same_seed_same_ensemble_and_no_silent_overwrite(fitted, tmp_path, capsys):
    data, base, out = fitted
    again = tmp_path / "again.safetensors"
    assert main(["fit-ensemble", "--weights", str(base), "--data", str(data), "--out", str(again), "--members", "3",
                 "--epochs", "3", "--quiet"]) == 0
    a = GraspScorer.from_checkpoint(out, device="cpu").model.state_dict()
    b = GraspScorer.from_checkpoint(again, device="cpu").model.state_dict()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0)
    capsys.readouterr()
    assert main(["fit-ensemble", "--weights", str(base), "--data", str(data), "--out", str(again),
                 "--members", "3", "--quiet"]) == 1
    assert "exists; pass --force" in capsys.readouterr().err


def test_active_learning_script_runs_every_strategy(fitted, tmp_path):
    """scripts/active_learning.py end to end on the tiny dataset: curves for every strategy, the labeller
    really called, rotated copies of labelled clouds with the same sigma as the originals."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    data, base, _ = fitted
    pointnet = GraspScorer.untrained(seed=0, device="cpu", architecture="pointnet", num_nodes=64, radius=0.4,
                                     baseline_width=16)
    baseline = save_checkpoint(tmp_path / "pointnet.safetensors", pointnet.model, pointnet.config, {})
    script = Path(__file__).resolve().parents[1] / "scripts" / "active_learning.py"
    done = subprocess.run([sys.executable, str(script), "--weights", str(base), "--data", str(data), "--out",
                           str(tmp_path), "--seeds", "1", "--start", "6", "--batch", "6", "--rounds", "1",
                           "--members", "3", "--epochs", "2", "--pool-clouds", "4", "--test-clouds", "2",
                           "--rotated-clouds", "1", "--baseline-weights", str(baseline)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((tmp_path / "active_learning.json").read_text())
    assert sorted(result["curves"]) == ["diverse", "random", "sigma"]
    for strategy in ("sigma", "diverse", "random"):
        (curve,) = result["curves"][strategy]
        assert [n for n, _ in curve] == [6, 12]
    assert result["labeller_calls"] >= 12
    from grasp_equi.training.ensemble import KNOWN_RADIUS

    equivariant, pointnet = result["rotated_copies"]["equivariant"], result["rotated_copies"]["baseline"]
    assert equivariant["max_abs_sigma_change_vs_original"] <= 1e-5
    # the invariant features recognise every copy as labelled: none is picked, all rank last
    assert equivariant["max_feature_distance_to_a_labelled_grasp"] < 1e-3 * KNOWN_RADIUS
    assert equivariant["copies_in_next_batch"] == 0 and equivariant["min_rank_by_acquisition"] >= 0.5
    # the baseline's features move with the pose: its copies look new
    assert pointnet["max_feature_distance_to_a_labelled_grasp"] > KNOWN_RADIUS
    assert (tmp_path / "active_learning.png").stat().st_size > 5_000


def test_acquisition_fades_known_grasps_and_does_not_depend_on_the_other_candidates():
    from grasp_equi.training.ensemble import KNOWN_RADIUS, acquisition_scores

    labelled = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    sigma = torch.tensor([0.2, 0.2, 0.2])
    features = torch.tensor([[1.0, 0.0], [1.0, 0.5 * KNOWN_RADIUS], [5.0, 5.0]])  # a copy, a near one, a new one
    scores = acquisition_scores(sigma, features, labelled)
    assert scores[0] == 0.0 and 0.0 < scores[1] < 0.2 and scores[2] == pytest.approx(0.2)
    # the same candidate alone scores the same (the scale comes from the labelled set)
    assert acquisition_scores(sigma[1:2], features[1:2], labelled)[0] == scores[1]
    assert torch.equal(acquisition_scores(sigma, features, labelled[:0]), sigma)  # nothing labelled yet
    with pytest.raises(ValueError, match="acquisition_scores"):
        acquisition_scores(sigma, features, labelled[0])


def test_batched_readouts_equal_each_member_on_its_own():
    """``ReadoutEnsemble.forward`` (LayerNorm once, affine folded into one matrix product for all members) is
    the same function as running each member on the rows (``member_logits``), for any weights."""
    from grasp_equi.model.ensemble import ReadoutEnsemble

    torch.manual_seed(0)
    ensemble = ReadoutEnsemble(40, 16, 5)
    with torch.no_grad():
        for weight in ensemble.parameters():
            weight.add_(torch.randn_like(weight) * 0.5)  # non-trivial LayerNorm affine and biases
        rows = torch.randn(300, 40) * 3 + 1
        rows[7] = rows[3]  # repeated rows
        batched = ensemble(rows)
        one_by_one = ensemble.member_logits(rows[None].expand(5, -1, -1))
    assert batched.shape == (5, 300)
    torch.testing.assert_close(batched, one_by_one, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(batched[:, 7], batched[:, 3], rtol=0, atol=0)


def test_diverse_batch_spreads_the_picks_and_skips_copies_of_labelled_grasps():
    """Two tight clusters of equally uncertain grasps (exact ties) and exact copies of a labelled grasp:
    ranking by score alone takes the first cluster whole, the diverse batch takes one of each cluster
    and never a copy; ties resolve to the lower index, so the result is the same on every call."""
    from grasp_equi.training.ensemble import diverse_batch

    labelled = torch.tensor([[0.0, 0.0]], dtype=torch.float64)  # [1, 2]
    cluster_a = torch.tensor([[1.0, 0.0]] * 4, dtype=torch.float64)  # [4, 2] exact duplicates
    cluster_b = torch.tensor([[0.0, 1.0]] * 4, dtype=torch.float64)
    copies = labelled.repeat(3, 1)  # [3, 2] the labelled grasp again (a moved copy: invariant features)
    features = torch.cat([cluster_a, cluster_b, copies])  # [11, 2]
    scores = torch.full((11,), 0.3, dtype=torch.float64)  # [11] all tied
    picks = diverse_batch(scores, features, labelled, batch=2)
    assert list(picks) == [0, 4]
    assert list(diverse_batch(scores, features, labelled, batch=2)) == list(picks)
    assert not set(diverse_batch(scores, features, labelled, batch=8, candidates=2)[:2]) & {8, 9, 10}
    # a higher score wins over an equally new grasp
    scores[5] = 0.4
    assert list(diverse_batch(scores, features, labelled, batch=2)) == [5, 0]
    with pytest.raises(ValueError, match="diverse_batch"):
        diverse_batch(scores, features, labelled, batch=0)
    for bad in (float("nan"), float("inf")):  # a NaN would win every comparison: refused, not picked
        broken = scores.clone()
        broken[3] = bad
        with pytest.raises(ValueError, match="finite"):
            diverse_batch(broken, features, labelled, batch=2)
    assert list(diverse_batch(scores.numpy(), features.float().numpy(), labelled.int(), batch=2)) == [5, 0]
    # nothing labelled yet: the first pick is the highest score
    assert diverse_batch(scores, features, labelled[:0], batch=1)[0] == 5
