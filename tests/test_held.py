"""The second answer, P(held): physics labels read with the dataset, `grasp-equi fit-held` end to end on real
MuJoCo trials, the scorer's ``output`` choice, invariance of both outputs, refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import fitted_held_checkpoints
from grasp_equi import GraspScorer, keys
from grasp_equi.checkpoint import save_checkpoint
from grasp_equi.cli import main

pytest.importorskip("mujoco")


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """``(data dir, base checkpoint, checkpoint with P(held))`` on a tiny physics-labelled dataset."""
    return fitted_held_checkpoints(tmp_path_factory.mktemp("held"))


def test_dataset_carries_the_physics_labels_of_each_grasp(fitted):
    from grasp_equi.data.shards import load_dataset, read_physics_labels, shard_files

    data = fitted[0]
    samples = load_dataset(data)
    assert all(s.p_held is not None and s.p_held.shape == s.labels.shape for s in samples)
    simulated = np.concatenate([s.p_held for s in samples])
    assert np.isfinite(simulated).any() and set(np.unique(simulated[np.isfinite(simulated)])) <= {0.0, 1.0}
    shard = shard_files(data)[0]
    np.testing.assert_array_equal(read_physics_labels(shard), np.load(data / "physics" / shard.name)["p_held"])
    label_file = data / "physics" / shard.name
    original = label_file.read_bytes()
    label_file.write_bytes(b"truncated")  # a broken label file counts as unlabelled
    try:
        assert read_physics_labels(shard) is None
        assert any(s.p_held is None for s in load_dataset(data))
    finally:
        label_file.write_bytes(original)


def test_held_is_the_default_answer_and_force_closure_stays_the_networks(fitted, rng):
    from conftest import ellipsoid_cloud, random_grasps

    _, base, out = fitted
    plain, held = GraspScorer.from_checkpoint(base, device="cpu"), GraspScorer.from_checkpoint(out, device="cpu")
    assert held.outputs == (keys.OUTPUT_HELD, keys.OUTPUT_FORCE_CLOSURE) and plain.outputs == (
        keys.OUTPUT_FORCE_CLOSURE,)
    assert held.config.held_members == 3 and held.info["held"]["train_grasps"] > 0
    for name, tensor in plain.model.state_dict().items():  # the network itself is unchanged
        torch.testing.assert_close(held.model.state_dict()[name], tensor)
    points, _ = ellipsoid_cloud(1500, rng=rng)
    grasps = list(random_grasps(points, 30, 2, rng)) + list(random_grasps(points, 10, 4, rng))
    p_held, sigma = held.score(points, grasps, return_std=True)
    assert p_held.shape == sigma.shape == (40,) and np.isfinite(sigma).all() and sigma.max() > 0
    np.testing.assert_array_equal(held.score(points, grasps, output="held"), p_held)
    fc = held.score(points, grasps, output="force_closure")
    np.testing.assert_allclose(fc, plain.score(points, grasps), atol=1e-6)  # the analytic output is untouched
    assert np.abs(fc - p_held).max() > 1e-3  # two different answers
    with pytest.raises(ValueError, match="no output 'held'.*fit-held"):
        plain.score(points, grasps, output="held")
    with pytest.raises(ValueError, match="no output 'robust'"):
        held.score(points, grasps, output="robust")
    with pytest.raises(ValueError, match="no ensemble"):
        held.score(points, grasps, output="force_closure", return_std=True)


def test_both_outputs_and_sigma_are_invariant_on_the_adversarial_family(fitted):
    from grasp_equi.adversarial import adversarial_family, invariance_error, rigid_motions

    held = GraspScorer.from_checkpoint(fitted[2], device="cpu")
    motions = rigid_motions()
    for case in adversarial_family()[:6]:  # grids, plate, icosphere, cylinder, cube: the tie-heaviest clouds
        assert invariance_error(held.score, case, motions) <= 1e-5, case.name
        assert invariance_error(lambda p, c: held.score(p, c, return_std=True)[1], case, motions) <= 1e-5, case.name


def test_report_and_refusals(fitted, tmp_path, capsys):
    data, base, out = fitted
    info = GraspScorer.from_checkpoint(out, device="cpu").info["held"]
    for split in ("train", "val", "test"):
        section = info[split]
        if section["grasps"]:
            assert 0 <= section["held_ece"] <= 1 and set(section["per_k"]) <= {"2", "3"}
    assert info["train"]["grasps"] == info["train_grasps"]
    capsys.readouterr()
    assert main(["fit-held", "--weights", str(base), "--data", str(data), "--out", str(out), "--quiet"]) == 1
    assert "exists; pass --force" in capsys.readouterr().err
    unlabelled = tmp_path / "unlabelled"
    unlabelled.mkdir()
    assert main(["fit-held", "--weights", str(base), "--data", str(unlabelled), "--out", str(tmp_path / "x"),
                 "--quiet"]) == 1
    assert "no physics labels" in capsys.readouterr().err


def _strict_json(text: str):
    """Parse as a strict JSON reader does: ``NaN``/``Infinity`` are not JSON."""
    import json

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_reports_hold_missing_figures_as_null_not_nan():
    from grasp_equi.fileio import json_text

    report = {"auc": np.float32(np.nan), "ece": float("inf"), "per_k": {"2": np.array([0.5, np.nan])},
              "grasps": np.int64(3), "ok": np.bool_(True)}
    assert _strict_json(json_text(report)) == {"auc": None, "ece": None, "per_k": {"2": [0.5, None]}, "grasps": 3,
                                               "ok": True}
    from pathlib import Path  # numpy keys (a K as np.int64), numpy strings, 0-d arrays and paths too

    odd = {np.int64(3): np.float16(1.5), "name": np.str_("mug"), "size": np.array(2.0), "file": Path("/a/b.json")}
    assert _strict_json(json_text(odd)) == {"3": 1.5, "name": "mug", "size": 2.0, "file": "/a/b.json"}


def test_evaluate_scores_force_closure_against_its_label_and_held_against_the_trials(fitted, tmp_path, capsys):
    import json
    import shutil

    data, _, out = fitted
    report = tmp_path / "eval.json"
    assert main(["evaluate", "--weights", str(out), "--data", str(data), "--split", "all", "--json", str(report),
                 "--invariance-clouds", "0", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "invariance not measured" in printed and "P(held) vs physics trials" in printed
    result = _strict_json(report.read_text())
    held = result["held"]["overall"]
    assert held["grasps"] > 0 and 0 <= held["held_ece"] <= 1
    assert set(result["held"]["by_k"]) <= {"2", "3"} and result["overall"]["num_grasps"] > 0
    unlabelled = tmp_path / "unlabelled"  # the same data without trials: said so (once an empty line)
    shutil.copytree(data, unlabelled, ignore=shutil.ignore_patterns("physics"))
    before = report.read_bytes()  # an earlier report is kept unless --force
    assert main(["evaluate", "--weights", str(out), "--data", str(unlabelled), "--split", "all", "--json",
                 str(report), "--invariance-clouds", "0", "--quiet"]) == 1
    assert "exists; pass --force" in capsys.readouterr().err and report.read_bytes() == before
    assert main(["evaluate", "--weights", str(out), "--data", str(unlabelled), "--split", "all", "--json",
                 str(report), "--invariance-clouds", "0", "--quiet", "--force"]) == 0
    assert "P(held) vs physics trials: none here (no grasp of this data has trials" in capsys.readouterr().out
    assert json.loads(report.read_text())["held"]["overall"]["grasps"] == 0


def test_validate_physics_reports_both_answers_against_the_trials(fitted, tmp_path, capsys):
    import json

    report = tmp_path / "vp.json"
    assert main(["validate-physics", "--families", "box", "--objects", "1", "--grasps-per-object", "4", "--k", "2", "3",
                 "--weights", str(fitted[2]), "--device", "cpu", "--cloud-points", "512", "--json", str(report),
                 "--plot", str(tmp_path / "vp.png")]) == 0
    assert "P(held) AUC" in capsys.readouterr().out
    result = json.loads(report.read_text())
    scorer = GraspScorer.from_checkpoint(fitted[2], device="cpu")
    held = [t["held_score"] for t in result["trials"]]
    assert all(h is not None and 0 <= h <= 1 for h in held)
    assert [t["score"] for t in result["trials"]] != held  # P(force closure) and P(held) both reported
    assert {"held", "held_k2", "held_k3", "model"} <= set(result["reliability"])
    assert (tmp_path / "vp.png").stat().st_size > 0 and scorer.outputs[0] == "held"


def test_validate_physics_under_the_labels_randomised_conditions(tmp_path):
    """``--conditions randomised``: trials under label-physics' draws (own stream), the same grasps and
    labels as the fixed run; deterministic for a seed."""
    import json

    def run(name, *extra):
        out = tmp_path / f"{name}.json"
        assert main(["validate-physics", "--families", "box", "--objects", "2", "--grasps-per-object", "4",
                     "--json", str(out), *extra]) == 0
        return json.loads(out.read_text())

    fixed, randomised, again = run("fixed"), run("r1", "--conditions", "randomised"), run("r2", "--conditions",
                                                                                         "randomised")
    assert randomised["config"]["conditions"] == "randomised" and fixed["config"]["conditions"] == "fixed"
    assert [t["label"] for t in fixed["trials"]] == [t["label"] for t in randomised["trials"]]
    assert [t["slip"] for t in randomised["trials"]] == [t["slip"] for t in again["trials"]]
    assert [t["slip"] for t in randomised["trials"]] != [t["slip"] for t in fixed["trials"]]


def test_fit_held_refuses_labels_that_do_not_fit_a_baseline_and_a_folder(fitted, tmp_path, capsys):
    """Labels of an older version of a shard (another grasp count), rates outside [0, 1], no labelled train
    grasp, the PointNet baseline and a folder as --out: one line each, before any preprocessing. Stale
    labels once were dropped without a word ("no grasps with a held label"), rates of 7 were fitted as
    targets, and the baseline and a folder failed with a type's name after the whole fit."""
    import json
    import shutil

    from grasp_equi.checkpoint import META_CONFIG, META_FORMAT, CheckpointError
    from grasp_equi.data.shards import read_physics_labels, shard_files, unusable_physics_labels
    from grasp_equi.fileio import save_tensors

    data, base, _ = fitted

    def copy(name, edit, shards=None):
        out = tmp_path / name
        shutil.copytree(data, out)
        for shard in shard_files(out)[:shards]:
            path = out / "physics" / shard.name
            arrays = dict(np.load(path))
            arrays["p_held"] = edit(arrays["p_held"]).astype(np.float32)
            np.savez(path, **arrays)
        return out

    def fit(folder, weights=base, out=None):
        capsys.readouterr()
        rc = main(["fit-held", "--weights", str(weights), "--data", str(folder), "--out",
                   str(out or tmp_path / f"{folder.name}.safetensors"), "--epochs", "1", "--force", "--quiet"])
        return rc, capsys.readouterr().err

    stale = copy("stale", lambda p: np.append(p, 1.0))
    assert len(unusable_physics_labels(stale)) == len(shard_files(stale))
    rc, err = fit(stale)
    assert rc == 1 and "no physics-labelled grasps in the train split" in err and "do not fit them" in err \
        and "label-physics" in err and "Traceback" not in err, err
    foreign = copy("foreign", lambda p: np.where(np.isfinite(p), 7.0, p))
    assert read_physics_labels(shard_files(foreign)[0]) is None  # not a fraction of trials: unlabelled
    assert fit(foreign)[0] == 1
    flat = copy("flat", lambda p: np.stack([p, p], axis=1))  # [G, 2]: not one rate per grasp
    assert read_physics_labels(shard_files(flat)[0]) is None
    rc, err = fit(copy("nan", lambda p: np.full_like(p, np.nan)))
    assert rc == 1 and "no physics-labelled grasps in the train split" in err and "do not fit" not in err, err
    one_stale = copy("one_stale", lambda p: np.append(p, 1.0), shards=1)  # the rest still fits: a warning
    rc, err = fit(one_stale)
    assert rc == 0 and "warning: 1 shard(s) have physics labels that do not fit them" in err, err

    baseline = GraspScorer.untrained(seed=0, device="cpu", architecture="pointnet", num_nodes=96)
    weights = save_checkpoint(tmp_path / "baseline.safetensors", baseline.model, baseline.config)
    rc, err = fit(data, weights=weights)
    assert rc == 1 and "a 'pointnet' model; P(held) readouts need the 'equivariant' network" in err, err
    with pytest.raises(CheckpointError, match="'held_members' must be 0 for architecture 'pointnet'"):
        config = {**baseline.config.to_dict(), "held_members": 3}  # once loaded, claiming readouts it never built
        save_tensors(baseline.model.state_dict(), tmp_path / "claims.safetensors",
                     {META_FORMAT: "1", META_CONFIG: json.dumps(config)})
        GraspScorer.from_checkpoint(tmp_path / "claims.safetensors", device="cpu")
    folder = tmp_path / "a_folder"
    folder.mkdir()
    rc, err = fit(data, out=folder)
    assert rc == 1 and "is a folder" in err and folder.is_dir(), err



def test_fit_held_names_a_missing_data_folder(tmp_path, capsys):
    """``--data`` that is no folder (a typo, a file): one line saying so. It once said "no physics labels (run
    grasp-equi label-physics --data TYPO first)", which sends the user to label a folder that does not exist."""
    from grasp_equi.scorer import SHIPPED_WEIGHTS

    a_file = tmp_path / "cloud.npy"
    np.save(a_file, np.zeros((4, 3)))
    for data in (tmp_path / "typo", a_file):
        capsys.readouterr()
        assert main(["fit-held", "--weights", str(SHIPPED_WEIGHTS), "--data", str(data), "--out",
                     str(tmp_path / "out.safetensors"), "--quiet"]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "no such folder" in err and "label-physics" not in err, err
    assert not (tmp_path / "out.safetensors").exists()


def test_physics_labels_that_are_not_real_numbers_are_not_read(tmp_path):
    """A label file whose ``p_held`` is text, complex or bool is foreign (None), like one with rates outside
    [0, 1]. Text such as "0.5" was once parsed into rates and complex rates lost their imaginary part (a
    warning only), both then used as training targets; real rates, int included, still read."""
    from grasp_equi.data.shards import PHYSICS_DIR, read_physics_labels

    shard = tmp_path / "shard_00000.npz"
    (tmp_path / PHYSICS_DIR).mkdir()

    def read(p_held):
        np.savez(tmp_path / PHYSICS_DIR / shard.name, p_held=p_held)
        return read_physics_labels(shard)

    for foreign in (np.array(["0.5", "1"]), np.array([0.5 + 1j, 1.0]), np.array([True, False])):
        assert read(foreign) is None, foreign.dtype
    np.testing.assert_array_equal(read(np.array([0.5, np.nan])), np.array([0.5, np.nan], np.float32))
    assert read(np.array([0, 1], np.int8)).dtype == np.float32

def test_labels_of_a_regenerated_shard_with_as_many_grasps_are_not_used(fitted, tmp_path, capsys):
    """A label file records which version of its shard it was made for (``grasp_fingerprint``): after the
    shard is rewritten with other contacts (same grasp count) its labels are left out, named, and
    label-physics asks for --force before replacing them."""
    import shutil

    from grasp_equi.data.shards import (load_dataset, read_shard, shard_files, unusable_physics_labels,
                                        write_shard)

    copy = tmp_path / "ds"
    shutil.copytree(fitted[0], copy)
    assert unusable_physics_labels(copy) == []
    shard = shard_files(copy)[0]
    arrays = read_shard(shard)
    meta = arrays.pop("meta")
    arrays["contacts"] = arrays["contacts"] + np.float32(1e-4)  # the same grasps, moved: another version
    write_shard(shard, arrays, meta)
    assert unusable_physics_labels(copy) == [shard.name]
    first = read_shard(shard)["object_id"]
    assert all(s.p_held is None for s in load_dataset(copy) if s.object_id in set(first.tolist()))
    capsys.readouterr()
    assert main(["label-physics", "--data", str(copy), "--trials", "1", "--quiet"]) == 1
    assert "another version of the shard" in capsys.readouterr().err
