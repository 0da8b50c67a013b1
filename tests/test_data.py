"""Training-data generation: objects, clouds, grasp samplers, `grasp-equi generate` end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh

from grasp_equi.cli import main
from grasp_equi.data.clouds import complete_cloud, partial_cloud
from grasp_equi.data.grasps import project_to_surface, sample_antipodal, sample_multifinger, sample_random
from grasp_equi.data.objects import FAMILIES, load_mesh_object, make_object
from grasp_equi.data.shards import load_dataset, load_manifest, load_splits


def _surface_distance(obj, points):
    closest, _ = project_to_surface(obj, points)
    return np.linalg.norm(closest - points, axis=1)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_makes_a_watertight_object_of_2_to_15_cm(family):
    obj = make_object(family, np.random.default_rng(5))
    extent = np.ptp(obj.mesh.vertices, axis=0).max()
    assert obj.mesh.is_watertight and obj.watertight
    assert 0.0199 <= extent <= 0.1501
    np.testing.assert_allclose(obj.center, obj.mesh.center_mass, atol=1e-9)
    far = np.linalg.norm(obj.mesh.vertices - obj.center, axis=1).max()
    assert obj.radius == pytest.approx(far) and obj.mass > 0 and obj.family == family


def test_families_and_splits_hold_out_whole_families():
    from grasp_equi.data.objects import DEFAULT_SPLITS

    assert len(FAMILIES) >= 12
    assert set(DEFAULT_SPLITS["train"]).isdisjoint(DEFAULT_SPLITS["val"] + DEFAULT_SPLITS["test"])
    assert sorted(sum(DEFAULT_SPLITS.values(), [])) == sorted(FAMILIES)
    with pytest.raises(ValueError, match="unknown object family"):
        make_object("banana", np.random.default_rng(0))


def test_clouds_lie_on_the_surface_and_partial_views_face_the_camera():
    rng = np.random.default_rng(2)
    obj = make_object("mug", rng)
    pts, nrm = complete_cloud(obj, 1500, rng)
    assert pts.shape == nrm.shape == (1500, 3)
    assert _surface_distance(obj, pts).max() < 2e-5  # open3d works in float32
    np.testing.assert_allclose(np.linalg.norm(nrm, axis=1), 1, atol=1e-6)
    pts, nrm, cam = partial_cloud(obj, rng, noise=0.001, dropout=0.2)
    assert 200 < len(pts) and pts.shape == nrm.shape
    assert 0.3 - obj.radius <= np.linalg.norm(cam - obj.center) <= 1.0 + obj.radius
    assert np.median(_surface_distance(obj, pts)) < 0.002  # depth noise sigma 1 mm
    assert ((nrm * (cam - pts)).sum(axis=1) > 0).all()  # only surfaces that face the camera are seen
    clean, _, _ = partial_cloud(obj, np.random.default_rng(9), noise=0.0, dropout=0.0)
    assert _surface_distance(obj, clean).max() < 2e-5


def test_antipodal_grasps_touch_the_surface_within_the_gripper_width():
    rng = np.random.default_rng(3)
    obj = make_object("bottle", rng)
    contacts, normals = sample_antipodal(obj, 50, rng, max_width=0.085)
    assert contacts.shape == normals.shape == (50, 2, 3)
    assert _surface_distance(obj, contacts.reshape(-1, 3)).max() < 2e-5
    assert (np.linalg.norm(contacts[:, 0] - contacts[:, 1], axis=1) <= 0.085 + 1e-9).all()
    # outward normals: each contact's normal points away from the other jaw's side
    axis = contacts[:, 1] - contacts[:, 0]
    assert ((normals[:, 0] * axis).sum(axis=1) < 0).all() and ((normals[:, 1] * axis).sum(axis=1) > 0).all()
    for k in (3, 5):
        c, n = sample_multifinger(obj, k, 20, rng)
        assert c.shape == n.shape == (20, k, 3)
        assert _surface_distance(obj, c.reshape(-1, 3)).max() < 2e-5
        c, n = sample_random(obj, k, 10, rng)
        assert c.shape == (10, k, 3)


def _generate(tmp_path, *extra):
    return main(["generate", "--out", str(tmp_path), "--views", "2", "--grasps-per-view", "8",
                 "--points", "400", "--samples", "8", "--objects-per-shard", "2", "--quiet", *extra])


def test_generate_writes_shards_and_manifest_that_load_back(tmp_path, capsys):
    out = tmp_path / "ds"
    assert _generate(out, "--families", "box", "cylinder", "torus", "--objects", "3", "--seed", "4") == 0
    assert len(list(out.glob("shard_*.npz"))) == 2
    samples = load_dataset(out)
    assert len(samples) == 6 and {s.family for s in samples} == {"box", "cylinder", "torus"}
    assert sum(s.partial for s in samples) == 3  # 2 views: one partial, one complete per object
    for s in samples:
        assert s.points.dtype == np.float32 and s.points.ndim == 2 and s.points.shape[1] == 3
        assert s.normals.shape == s.points.shape and 64 <= len(s.points) <= 400
        g = len(s.grasps)
        assert g > 0 and s.labels.shape == s.epsilon.shape == s.num_contacts.shape == (g,)
        assert all(c.shape == (k, 3) and c.dtype == np.float32 for c, k in zip(s.grasps, s.num_contacts))
        assert ((0 <= s.labels) & (s.labels <= 1)).all() and (s.epsilon >= 0).all()
    manifest = load_manifest(out)
    assert manifest["totals"]["grasps"] == sum(len(s.grasps) for s in samples) == 3 * 2 * 8
    assert set(manifest["per_family"]) == {"box", "cylinder", "torus"} and "K=2" in manifest["per_k"]
    assert manifest["seed"] == 4 and manifest["throughput"]["grasps_per_min_per_core"] > 0
    assert load_splits(out)["train"] == ["box", "cylinder"] and load_splits(out)["test"] == ["torus"]
    assert len(load_dataset(out, families=["torus"])) == 2
    # resumable and deterministic: --resume skips finished shards; a removed shard comes back identical
    (out / "shard_00001.npz").rename(tmp_path / "first.npz")
    capsys.readouterr()
    assert _generate(out, "--families", "box", "cylinder", "torus", "--objects", "3", "--seed", "4") == 1
    assert "--resume continues it" in capsys.readouterr().err  # never touched without a flag
    assert not (out / "shard_00001.npz").exists()
    assert _generate(out, "--families", "box", "cylinder", "torus", "--objects", "3", "--seed", "4", "--resume") == 0
    assert "1 done, 1 objects to go" in capsys.readouterr().out
    _assert_same_shard(tmp_path / "first.npz", out / "shard_00001.npz")
    # other settings into the same folder are refused, not mixed; --force starts over
    assert _generate(out, "--families", "box", "cylinder", "torus", "--objects", "3", "--seed", "5", "--resume") == 1
    assert "--force deletes them" in capsys.readouterr().err
    assert _generate(out, "--families", "box", "--objects", "1", "--seed", "5", "--force") == 0
    assert sorted(p.name for p in out.glob("shard_*.npz")) == ["shard_00000.npz"]
    assert load_manifest(out)["seed"] == 5
    # only partial views: the candidates with a contact none of them shows are not stored, and the line says so
    capsys.readouterr()
    views = tmp_path / "partial"
    assert _generate(views, "--families", "box", "--objects", "2", "--views", "1", "--partial-fraction", "1") == 0
    totals = load_manifest(views)["totals"]
    unused = totals["labelled_candidates"] - totals["grasps"]
    assert unused > 0 and f"({unused} of {totals['labelled_candidates']} candidates had a contact no view showed)" \
        in capsys.readouterr().out


def _assert_same_shard(path_a, path_b):
    a, b = np.load(path_a), np.load(path_b)
    assert a.files == b.files
    for key in a.files:
        if key != "meta":  # meta holds timings
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_generate_output_does_not_depend_on_worker_count(tmp_path):
    args = ("--families", "l_shape", "sphere", "--objects", "2", "--objects-per-shard", "1")
    assert _generate(tmp_path / "one", *args, "--workers", "1") == 0
    assert _generate(tmp_path / "two", *args, "--workers", "2") == 0
    for name in ("shard_00000.npz", "shard_00001.npz"):
        _assert_same_shard(tmp_path / "one" / name, tmp_path / "two" / name)


def test_broken_meshes_are_skipped_and_reported_not_fatal(tmp_path, capsys):
    meshes = tmp_path / "meshes"
    (meshes / "tools").mkdir(parents=True)
    trimesh.creation.box(extents=(4, 3, 2)).export(meshes / "tools" / "block.stl")  # centimetres
    trimesh.creation.icosphere(radius=2.5).export(meshes / "ball.obj")
    (meshes / "nan.obj").write_text("v 0 0 0\nv 1 nan 0\nv 0 1 0\nf 1 2 3\n")
    (meshes / "empty.ply").write_text("")
    (meshes / "flat.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 1 1 0\nf 1 2 3\nf 2 4 3\n")
    out = tmp_path / "ds"
    assert _generate(out, "--meshes", str(meshes), "--units", "cm") == 0
    manifest = load_manifest(out)
    reasons = {item["path"].rsplit("/", 1)[-1]: item["reason"] for item in manifest["skipped"]}
    assert set(reasons) == {"nan.obj", "empty.ply", "flat.obj"}
    assert "NaN" in reasons["nan.obj"] and "zero volume" in reasons["flat.obj"]
    err = capsys.readouterr().err  # each skip is logged with its reason as it happens
    assert "skipped" in err and "nan.obj: 1 vertices are NaN/inf" in err
    samples = load_dataset(out)
    assert {s.family for s in samples} == {"mesh", "tools"} and manifest["totals"]["objects"] == 2
    radius = {s.family: s.radius for s in samples}
    assert radius["tools"] == pytest.approx(np.linalg.norm([0.02, 0.015, 0.01]), rel=1e-4)  # cm -> m


def test_a_run_that_skips_every_mesh_says_why_and_leaves_nothing_behind(tmp_path, capsys):
    """Wrong --units: every mesh is out of range. One error line, exit 1, no folder to block the rerun."""
    meshes = tmp_path / "meshes"
    meshes.mkdir()
    trimesh.creation.box(extents=(40, 30, 20)).export(meshes / "block.stl")  # millimetres
    out = tmp_path / "ds"
    assert _generate(out, "--meshes", str(meshes), "--units", "m") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("grasp-equi generate: error: every object was skipped") and "--units" in err[-1]
    assert not out.exists()
    assert _generate(out, "--meshes", str(meshes), "--units", "mm") == 0  # the corrected rerun is not blocked


def test_load_mesh_object_says_why_a_mesh_is_unusable(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        load_mesh_object(tmp_path / "missing.obj")
    bad = tmp_path / "open.obj"
    bad.write_text("v 0 0 0\nv 0.05 0 0\nv 0 0.05 0\nv 0 0 0.05\nf 1 2 3\nf 1 2 4\n")
    with pytest.raises(ValueError, match="not watertight"):
        load_mesh_object(bad, require_watertight=True)
    big = tmp_path / "big.stl"
    trimesh.creation.box(extents=(40, 30, 20)).export(big)  # 40 m in metres: wrong units
    with pytest.raises(ValueError, match="--units"):
        load_mesh_object(big)
    assert load_mesh_object(big, units="mm").radius == pytest.approx(np.linalg.norm([0.02, 0.015, 0.01]))
    small = tmp_path / "small.stl"
    trimesh.creation.box(extents=(0.06, 0.04, 0.1)).export(small)  # metres, loaded as millimetres: 60 um
    with pytest.raises(ValueError, match="--units"):  # once "small.stl: zero volume" (an absolute 1 mm^3 floor)
        load_mesh_object(small, units="mm")
    assert load_mesh_object(small).radius == pytest.approx(np.linalg.norm([0.03, 0.02, 0.05]))
