"""Training and evaluation, for real: a tiny e3nn model trains on labelled clouds made here
(robust force-closure labels from ``grasp_equi.quality``), its loss falls and its AUC rises;
checkpoints round-trip; ``grasp-equi train``/``evaluate`` run end to end on a generated
dataset and write their files."""

from __future__ import annotations

import csv
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from conftest import SMALL_MODEL, ellipsoid_cloud, random_grasps, torus_cloud
from grasp_equi import GraspScorer
from grasp_equi.model import ModelConfig, build_model
from grasp_equi.quality import label_grasps
from grasp_equi.training import metrics
from grasp_equi.training.dataset import class_weights, make_batch, prepare_records, random_rotations
from grasp_equi.training.loop import TrainSettings, fit, predict, validation_picks, weighted_bce

TINY = {**SMALL_MODEL, "num_nodes": 64, "avg_neighbors": 8.0}


def labelled_ellipsoids(count: int, rng, family: str, points: int = 400, grasps: int = 32) -> list:
    """Clouds of random ellipsoids with K=2 and K=3 grasps labelled by robust force closure.

    Half of the K=2 grasps pair a point with one of the most opposed normals, so stable and
    unstable grasps both occur (random pairs are almost never in force closure).
    """
    samples = []
    for i in range(count):
        pts, nrm = ellipsoid_cloud(points, axes=rng.uniform(0.02, 0.06, size=3), rng=rng)
        radius = float(np.linalg.norm(pts, axis=1).max())
        contacts, labels = [], []
        for k in (2, 3):
            idx = rng.integers(0, points, size=(grasps // 2, k))
            if k == 2:
                for j in range(grasps // 4):
                    opposed = np.argsort(nrm @ nrm[idx[j, 0]])  # most opposed normals first
                    idx[j, 1] = opposed[rng.integers(0, 40)]
            lab, _ = label_grasps(pts[idx], nrm[idx], np.zeros(3), radius, samples=8, rng=rng)
            contacts += list(pts[idx])
            labels.append(lab)
        samples.append(SimpleNamespace(points=pts.astype(np.float32), normals=nrm.astype(np.float32),
                                       partial=False, family=family, object_id=f"{family}_{i}",
                                       grasps=contacts, labels=np.concatenate(labels)))
    return samples


def val_loss_and_auc(model, records, picks, weights):
    probs, labels = predict(model, records, picks, "cpu")
    logits = torch.logit(torch.as_tensor(probs).clamp(1e-6, 1 - 1e-6))
    return float(weighted_bce(logits, torch.as_tensor(labels), weights)), metrics.auc(probs, labels >= 0.5)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small graphs gain nothing from intra-op threads, and on a busy 2-core machine the
    spinning OpenMP workers make a run several times slower."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def toy_records():
    rng = np.random.default_rng(0)
    config = ModelConfig(**TINY)
    train = prepare_records(labelled_ellipsoids(24, rng, "train_family"), config.num_nodes, progress=False)
    val_samples = labelled_ellipsoids(8, rng, "val_family")
    val = prepare_records(val_samples, config.num_nodes, progress=False)
    return config, train, val, val_samples


@pytest.fixture(scope="module")
def trained(toy_records, tmp_path_factory):
    """One real training run shared by the tests below (~5 s on 2 cores)."""
    config, train, val, val_samples = toy_records
    torch.manual_seed(0)
    model = build_model(config)
    picks = validation_picks(val, 100, 100)
    weights = class_weights(train)
    before = val_loss_and_auc(model, val, picks, weights)
    run = tmp_path_factory.mktemp("run")
    settings = TrainSettings(steps=60, batch_clouds=4, grasps_per_cloud=32, eval_every=20, warmup_steps=5, lr=3e-3)
    summary = fit(model, config, settings, train, val, run, "cpu", progress=False)
    after = val_loss_and_auc(model, val, picks, weights)
    return SimpleNamespace(model=model, config=config, run=run, summary=summary, before=before, after=after,
                           val=val, picks=picks, samples=val_samples)


def test_training_lowers_loss_and_raises_auc(trained):
    (loss0, auc0), (loss1, auc1) = trained.before, trained.after
    assert loss1 < loss0 - 0.02, (loss0, loss1)
    assert auc1 > 0.7 and auc1 > auc0 + 0.1, (auc0, auc1)
    assert trained.summary["steps"] == 60 and trained.summary["best_val_auc"] == pytest.approx(auc1, abs=0.05)
    rows = list(csv.DictReader((trained.run / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows] == [20, 40, 60]
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])


def test_checkpoint_round_trip_gives_same_scores(trained, rng):
    """best.safetensors (saved at the last, best validation) scores like the in-memory model."""
    assert trained.summary["best_step"] == 60
    loaded = GraspScorer.from_checkpoint(trained.run / "best.safetensors", device="cpu")
    in_memory = GraspScorer(trained.model, trained.config, device="cpu")
    pts, _ = ellipsoid_cloud(500, rng=rng)
    contacts = [pts[rng.integers(0, 500, size=k)] for k in (2, 3, 4, 5, 2)]
    np.testing.assert_allclose(loaded.score(pts, contacts), in_memory.score(pts, contacts), atol=1e-6)
    assert loaded.info["step"] == 60 and loaded.info["train_data"]["clouds"] == 24


def test_resume_continues_where_it_stopped(toy_records, tmp_path):
    _, train, val, _ = toy_records
    config = ModelConfig(architecture="pointnet", num_nodes=64, baseline_width=16)  # the loop is model-agnostic
    settings = TrainSettings(steps=10, batch_clouds=4, grasps_per_cloud=16, eval_every=5, warmup_steps=2)
    torch.manual_seed(0)
    fit(build_model(config), config, settings, train, val, tmp_path, "cpu", progress=False)
    longer = TrainSettings(**{**settings.__dict__, "steps": 15})
    summary = fit(build_model(config), config, longer, train, val, tmp_path, "cpu", resume=True, progress=False)
    assert summary["steps"] == 15
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows] == [5, 10, 15]
    assert GraspScorer.from_checkpoint(tmp_path / "last.safetensors").info["step"] == 15


def test_rotation_augmentation_rotates_cloud_and_contacts_together(toy_records):
    _, train, _, _ = toy_records
    picks = [(0, np.arange(4)), (1, np.arange(3))]
    rot = random_rotations(2, np.random.default_rng(3))
    plain, turned = make_batch(train, picks), make_batch(train, picks, rot)
    np.testing.assert_allclose(torch.linalg.det(rot).numpy(), 1.0, atol=1e-5)
    n0 = train[0].cloud.node_pos.shape[0]
    torch.testing.assert_close(turned["node_pos"][:n0], plain["node_pos"][:n0] @ rot[0].T)
    torch.testing.assert_close(turned["contact_pos"][:8], plain["contact_pos"][:8] @ rot[0].T)
    torch.testing.assert_close(turned["contact_normal"][:8], plain["contact_normal"][:8] @ rot[0].T)
    torch.testing.assert_close(turned["grasp_label"], plain["grasp_label"])


def test_training_batches_score_like_the_scorer(trained):
    """Training sees exactly what GraspScorer computes at inference (nodes, normals, contact normals)."""
    rec = trained.val[0]
    picks = [(0, np.arange(rec.num_grasps))]
    with torch.no_grad():
        from_batch = torch.sigmoid(trained.model(make_batch(trained.val, picks))).numpy()
    sample = trained.samples[0]
    scorer = GraspScorer(trained.model, trained.config, device="cpu")
    np.testing.assert_allclose(scorer.score(sample.points, sample.grasps), from_batch, atol=1e-5)


def test_surface_oriented_training_batches_score_like_the_scorer(rng, tmp_path):
    """With normals oriented over the surface, the prepared records (fresh and from the disk cache)
    still hold exactly what GraspScorer computes at inference; the cache never serves one
    orientation's normals to the other."""
    samples = []
    for i in range(2):
        pts, _ = torus_cloud(1500, rng)
        grasps = list(random_grasps(pts, 16, 2, rng)) + list(random_grasps(pts, 8, 3, rng))
        samples.append(SimpleNamespace(points=pts.astype(np.float32), partial=False, family="torus",
                                       object_id=f"torus_{i}", grasps=grasps, labels=rng.uniform(size=24)))
    config = ModelConfig(**{**TINY, "normal_orientation": "surface"})
    torch.manual_seed(0)
    model = build_model(config).eval()
    cache = tmp_path / "prepared.safetensors"
    fresh = prepare_records(samples, config.num_nodes, cache=cache, progress=False, orientation="surface")
    cached = prepare_records(samples, config.num_nodes, cache=cache, progress=False, orientation="surface")
    scorer = GraspScorer(model, config, device="cpu")
    for records in (fresh, cached):
        with torch.no_grad():
            from_batch = torch.sigmoid(model(make_batch(records, [(1, np.arange(24))]))).numpy()
        np.testing.assert_allclose(scorer.score(samples[1].points, samples[1].grasps), from_batch, atol=1e-5)
    by_centroid = prepare_records(samples, config.num_nodes, cache=cache, progress=False)
    flipped = (by_centroid[0].cloud.node_normal * fresh[0].cloud.node_normal).sum(dim=1) < 0  # [M]
    assert flipped.any()  # the inner ring: a shared cache would have hidden this


def test_pointnet_baseline_trains_and_is_not_invariant(toy_records, rng, tmp_path):
    """The baseline learns too, but (unlike the e3nn model) its score moves when the object turns."""
    _, train, val, _ = toy_records
    config = ModelConfig(architecture="pointnet", num_nodes=64, baseline_width=32)
    torch.manual_seed(0)
    model = build_model(config)
    settings = TrainSettings(steps=100, batch_clouds=4, grasps_per_cloud=32, eval_every=100, warmup_steps=5, lr=1e-2)
    fit(model, config, settings, train, val, tmp_path, "cpu", progress=False)
    picks = validation_picks(val, 100, 100)
    probs, labels = predict(model, val, picks, "cpu")
    assert metrics.auc(probs, labels >= 0.5) > 0.6
    rotated, _ = predict(model, val, picks, "cpu", rotations=random_rotations(len(picks), rng))
    assert np.abs(rotated - probs).max() > 1e-3


def test_metrics_match_definitions():
    scores = np.array([0.1, 0.4, 0.35, 0.8])
    stable = np.array([0, 0, 1, 1], dtype=bool)
    assert metrics.auc(scores, stable) == pytest.approx(0.75)  # 3 of 4 pos/neg pairs ordered
    assert metrics.auc(np.array([0.5, 0.5]), np.array([True, False])) == pytest.approx(0.5)  # ties count half
    assert np.isnan(metrics.auc(scores, np.ones(4, dtype=bool)))
    groups = np.array([0, 0, 1, 1])
    assert metrics.top_k_precision(scores, stable, groups, 1) == pytest.approx(0.5)  # cloud 0 top is 0.4 (unstable)
    s = metrics.summary(scores, stable.astype(float), groups)
    assert s["brier"] == pytest.approx(np.mean((scores - stable) ** 2))
    assert s["accuracy"] == pytest.approx(0.75)


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    """A real generated dataset (the data pipeline's own generator): 2 training families,
    1 validation family, 1 held-out test family."""
    from grasp_equi.cli import main

    out = tmp_path_factory.mktemp("data")
    assert main(["generate", "--out", str(out), "--families", "box", "sphere", "capsule", "mug",
                 "--objects", "8", "--views", "2", "--grasps-per-view", "12", "--workers", "1", "--quiet"]) == 0
    splits = json.loads((out / "splits.json").read_text())
    assert splits["test"] == ["mug"] and splits["val"] == ["capsule"]
    return out


def test_cli_train_publish_and_evaluate(tiny_dataset, tmp_path, capsys):
    """``grasp-equi train --publish`` and ``grasp-equi evaluate`` end to end: files, card, JSON, PNG."""
    from grasp_equi.cli import main

    run, weights = tmp_path / "run", tmp_path / "weights"
    overrides = [a for key, value in TINY.items() for a in ("--set", f"{key}={json.dumps(value)}")]
    assert main(["train", "--data", str(tiny_dataset), "--out", str(run), "--steps", "4", "--eval-every", "2",
                 "--batch", "2", "--quiet", "--publish", str(weights), *overrides]) == 0
    assert {"best.safetensors", "last.safetensors", "resume.safetensors", "metrics.csv",
            "summary.json"} <= {p.name for p in run.iterdir()}
    card = (weights / "MODEL_CARD.md").read_text()
    assert "Held-out test families** (never seen in training): mug" in card and "| complete | 2 |" in card
    published = GraspScorer.from_checkpoint(weights / "grasp_equi.safetensors")
    assert published.info["heldout"]["families"] == ["mug"]
    assert published.info["heldout"]["invariance"]["max_abs"] < 1e-4

    out_json = tmp_path / "eval" / "metrics.json"
    assert main(["evaluate", "--weights", str(weights / "grasp_equi.safetensors"), "--data", str(tiny_dataset),
                 "--json", str(out_json), "--quiet"]) == 0
    result = json.loads(out_json.read_text())
    assert result["families"] == ["mug"] and result["clouds"] == 2 * 2  # 2 mugs x 2 views
    assert 0.0 <= result["overall"]["auc"] <= 1.0 and set(result["by_view"]) <= {"complete", "partial"}
    assert set(result["by_k"]) <= {"2", "3", "4", "5"} and result["invariance"]["max_abs"] < 1e-4
    png = out_json.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert "AUC" in capsys.readouterr().out
    assert main(["evaluate", "--weights", str(weights / "grasp_equi.safetensors"), "--data", str(tiny_dataset),
                 "--families", "torus", "--json", str(tmp_path / "none.json"), "--quiet"]) == 1
    err = capsys.readouterr().err  # a family the data has not: one line that lists those it has
    assert "no clouds in families ['torus']; its families: box, capsule, mug, sphere" in err and len(err.splitlines()) == 1


def test_cli_train_init_fine_tunes_given_weights(tiny_dataset, tmp_path, capsys):
    """``--init``: a new run starts from the file's weights and settings (fine-tuning); --set is refused."""
    from grasp_equi.cli import main

    overrides = [a for key, value in TINY.items() for a in ("--set", f"{key}={json.dumps(value)}")]
    base = ["--data", str(tiny_dataset), "--steps", "2", "--eval-every", "2", "--batch", "2", "--quiet"]
    assert main(["train", *base, "--out", str(tmp_path / "first"), *overrides]) == 0
    start = tmp_path / "first" / "last.safetensors"
    # a learning rate of ~0 keeps the weights: the fine-tuned run scores like its starting point
    assert main(["train", *base, "--out", str(tmp_path / "tuned"), "--init", str(start), "--lr", "1e-12"]) == 0
    before = GraspScorer.from_checkpoint(start)
    after = GraspScorer.from_checkpoint(tmp_path / "tuned" / "last.safetensors")
    assert after.config == before.config and after.info["init"] == str(start)
    for name, tensor in before.model.state_dict().items():
        torch.testing.assert_close(after.model.state_dict()[name], tensor, rtol=1e-6, atol=1e-9)
    assert main(["train", *base, "--out", str(tmp_path / "x"), "--init", str(start), "--set", "num_nodes=8"]) == 1
    assert "--init" in capsys.readouterr().err
    assert main(["train", *base, "--out", str(tmp_path / "y"), "--init", str(tmp_path / "none.safetensors")]) == 1
    assert "none.safetensors" in capsys.readouterr().err
    # the preprocessing may change (no tensor does): the new run keeps the weights and takes the new setting
    assert main(["train", *base, "--out", str(tmp_path / "thin"), "--init", str(start), "--lr", "1e-12",
                 "--set", "cloud_points=64", "--set", 'reference_sampling="farthest_point"']) == 0
    thin = GraspScorer.from_checkpoint(tmp_path / "thin" / "last.safetensors")
    assert (thin.config.cloud_points, thin.config.reference_sampling) == (64, "farthest_point")
    assert thin.config.num_nodes == before.config.num_nodes


def test_cli_reports_bad_input(tmp_path, capsys):
    from grasp_equi.cli import main

    assert main(["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "run")]) == 1
    assert "--data" in capsys.readouterr().err
    assert main(["evaluate", "--weights", str(tmp_path / "none.safetensors"), "--data", str(tmp_path),
                 "--json", str(tmp_path / "x.json")]) == 1
    assert "none.safetensors" in capsys.readouterr().err


def test_checkpoint_whose_header_length_starts_with_0x80_loads(tmp_path):
    """Regression: a safetensors header length with low byte 0x80 looks like the pickle magic;
    such a checkpoint (one in 256 of them; a trained baseline hit it) must still load."""
    from grasp_equi.checkpoint import read_checkpoint, save_checkpoint

    config = ModelConfig(architecture="pointnet", num_nodes=32, baseline_width=8)
    model = build_model(config)
    for pad in range(300):
        path = save_checkpoint(tmp_path / "odd.safetensors", model, config, {"pad": "x" * pad})
        if path.read_bytes()[0] == 0x80:
            break
    else:
        pytest.fail("no padding gave a header length with low byte 0x80")
    state, loaded, info = read_checkpoint(path)
    assert loaded == config and len(info["pad"]) == pad and set(state) == set(model.state_dict())
    pickled = tmp_path / "model.pt"
    torch.save(model.state_dict(), pickled)
    with pytest.raises(ValueError, match="pickle"):
        read_checkpoint(pickled)
