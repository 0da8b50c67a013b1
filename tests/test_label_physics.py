"""``grasp-equi label-physics``: real MuJoCo trials on a tiny generated dataset; resume, determinism, refusals."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from grasp_equi.cli import main

pytest.importorskip("mujoco")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("physics") / "ds"
    assert main(["generate", "--out", str(out), "--families", "box", "sphere", "--objects", "2", "--views", "1",
                 "--grasps-per-view", "6", "--points", "300", "--samples", "4", "--objects-per-shard", "1",
                 "--k-mix", "2:0.7,3:0.3", "--partial-fraction", "0", "--quiet"]) == 0
    return out


def _labels(data):
    from grasp_equi.physics.label import output_dir

    return {p.name: dict(np.load(p)) for p in sorted(output_dir(data).glob("shard_*.npz"))}


def test_labels_every_grasp_with_jaws_or_fingertips_and_resumes(dataset, capsys):
    from grasp_equi.data.shards import read_shard

    assert main(["label-physics", "--data", str(dataset), "--trials", "1", "--quiet"]) == 0
    assert "2 shard(s) labelled now, 0 kept" in capsys.readouterr().out
    labels = _labels(dataset)
    assert len(labels) == 2
    executed_k = {2: 0, 3: 0}
    for name, arrays in labels.items():
        shard = read_shard(dataset / name)
        k = shard["num_contacts"]
        assert arrays["p_held"].shape == k.shape and (k == 2).any() and (k == 3).any()
        assert arrays["executed"].max() == 1 and (arrays["held"] <= arrays["executed"]).all()
        done = arrays["executed"] > 0
        np.testing.assert_array_equal(arrays["p_held"][done], arrays["held"][done])  # one trial: 0 or 1
        assert np.isnan(arrays["p_held"][~done]).all()
        for kk in executed_k:
            executed_k[kk] += int(arrays["executed"][k == kk].sum())
    assert executed_k[2] > 0 and executed_k[3] > 0  # the jaws ran K = 2, the fingertip hand K = 3
    assert main(["label-physics", "--data", str(dataset), "--trials", "1", "--quiet"]) == 0  # nothing left to do
    assert "0 shard(s) labelled now, 2 kept" in capsys.readouterr().out


def test_same_labels_with_two_workers_and_other_settings_need_force(dataset, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(dataset, copy, ignore=shutil.ignore_patterns("physics"))
    assert main(["label-physics", "--data", str(copy), "--trials", "1", "--workers", "2", "--quiet"]) == 0
    one = _labels(dataset) or None
    if one is None:  # this test ran alone: label the original with one worker first
        assert main(["label-physics", "--data", str(dataset), "--trials", "1", "--quiet"]) == 0
        one = _labels(dataset)
    two = _labels(copy)
    for name in one:
        np.testing.assert_array_equal(one[name]["held"], two[name]["held"])
        np.testing.assert_array_equal(one[name]["executed"], two[name]["executed"])
    capsys.readouterr()
    assert main(["label-physics", "--data", str(copy), "--trials", "2", "--quiet"]) == 1
    assert "labelled with other settings" in capsys.readouterr().err
    assert main(["label-physics", "--data", str(tmp_path / "none")]) == 1


def test_reuse_copies_only_fitting_label_files_and_a_truncated_file_is_redone(dataset, tmp_path, capsys):
    """``--reuse DIR`` (what ``make labels`` does with the shipped files): a fitting file is copied and kept,
    a file made for another version of its shard or with other settings is not copied (that shard is
    labelled here), a file already in the dataset is never replaced; a truncated label file (a copy cut
    short) is labelled again without --force instead of stopping the run."""
    if not _labels(dataset):
        assert main(["label-physics", "--data", str(dataset), "--trials", "1", "--quiet"]) == 0
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    (first, second) = sorted(_labels(dataset))
    shutil.copy(dataset / "physics" / first, shipped / first)
    shutil.copy(dataset / "physics" / first, shipped / second)  # made for another shard: its fingerprint differs
    (shipped / "shard_00000.99.tmp.npz").write_bytes(b"a writer's temporary file")
    copy = tmp_path / "copy"
    shutil.copytree(dataset, copy, ignore=shutil.ignore_patterns("physics"))
    capsys.readouterr()
    assert main(["label-physics", "--data", str(copy), "--trials", "1", "--reuse", str(shipped), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "1 label file(s) copied, 1 not for these shards or settings" in out and "1 shard(s) labelled now, 1 kept" in out
    assert (copy / "physics" / first).read_bytes() == (shipped / first).read_bytes()
    np.testing.assert_array_equal(_labels(copy)[second]["held"], _labels(dataset)[second]["held"])
    assert not (copy / "physics" / "shard_00000.99.tmp.npz").exists()
    # run again: the file that fits is there already, the other still does not fit; nothing is replaced
    before = {name: (copy / "physics" / name).read_bytes() for name in (first, second)}
    assert main(["label-physics", "--data", str(copy), "--trials", "1", "--reuse", str(shipped), "--quiet"]) == 0
    assert "0 label file(s) copied" in capsys.readouterr().out
    assert before == {name: (copy / "physics" / name).read_bytes() for name in (first, second)}
    # a truncated file is redone, no --force needed
    (copy / "physics" / first).write_bytes(before[first][:500])
    assert main(["label-physics", "--data", str(copy), "--trials", "1", "--quiet"]) == 0
    assert "1 shard(s) labelled now, 1 kept" in capsys.readouterr().out
    assert (copy / "physics" / first).read_bytes() != before[first][:500]
    assert main(["label-physics", "--data", str(copy), "--reuse", str(tmp_path / "nowhere")]) == 1


def test_shipped_default_labels_are_current_label_files():
    """labels/default/physics (what `make labels` copies into data/default) holds label files of the
    current labeller with the Makefile's settings: one rate per grasp, held <= executed <= trials, the
    shard fingerprint that keeps them off a regenerated shard. A labeller change that makes them stale
    fails here, so they are relabelled rather than silently ignored."""
    import json
    from pathlib import Path

    from grasp_equi.physics.label import LabelSettings

    folder = Path(__file__).resolve().parents[1] / "labels" / "default" / "physics"
    files = sorted(folder.glob("shard_[0-9][0-9][0-9][0-9][0-9].npz"))
    assert files, f"no shipped label files in {folder}"
    for path in files:
        with np.load(path, allow_pickle=False) as f:
            assert json.loads(str(f["meta"])) == json.loads(json.dumps(LabelSettings(trials=4).key())), path.name
            assert len(str(f["shard_sha"])) == 40, path.name
            p_held, executed, held = f["p_held"], f["executed"], f["held"]
        assert p_held.ndim == 1 and p_held.shape == executed.shape == held.shape and len(p_held) > 0
        assert ((held >= 0) & (held <= executed) & (executed <= 4)).all(), path.name
        ran = executed > 0
        np.testing.assert_allclose(p_held[ran], held[ran] / executed[ran], rtol=1e-6)
        assert np.isnan(p_held[~ran]).all() and ran.mean() > 0.5, path.name
