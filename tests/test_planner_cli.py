"""``grasp-equi propose`` and ``grasp-equi score`` as a user runs them: a subprocess each, files in, lines out."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from conftest import box_cloud as _box_cloud


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "grasp_equi.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_cli_propose_writes_npz_and_never_overwrites(tmp_path):
    cloud = tmp_path / "box.npy"
    np.save(cloud, _box_cloud(2000))
    out = tmp_path / "ranked.npz"
    args = ("propose", "--cloud", str(cloud), "--top", "3", "--out", str(out), "--seeds", "64", "--device", "cpu")
    done = _cli(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    data = np.load(out)
    assert data["poses"].shape == (3, 7) and data["contacts"].shape == (3, 2, 3)
    assert data["scores"].shape == (3,) and data["widths"].shape == (3,)
    assert np.all(np.diff(data["scores"]) <= 0)
    assert "rank\tscore" in done.stdout
    before = out.read_bytes()
    again = _cli(*args, cwd=tmp_path)
    assert again.returncode == 1 and "exists" in again.stderr and len(again.stderr.strip().splitlines()) == 1
    assert out.read_bytes() == before
    missing = _cli("propose", "--cloud", str(tmp_path / "nope.npy"), cwd=tmp_path)
    assert missing.returncode == 1 and len(missing.stderr.strip().splitlines()) == 1
    lonely = _cli("propose", "--cloud", str(cloud), "--near", "0,0,0", "--device", "cpu", cwd=tmp_path)
    assert lonely.returncode == 1 and "--scene" in lonely.stderr and len(lonely.stderr.strip().splitlines()) == 1
    poses_file = tmp_path / "poses.npy"
    np.save(poses_file, data["poses"])
    scored = _cli("score", "--cloud", str(cloud), "--poses", str(poses_file), "--device", "cpu", cwd=tmp_path)
    assert scored.returncode == 0, scored.stderr
    lines = scored.stdout.strip().splitlines()
    assert len(lines) == 3 and all(line.endswith("scored") for line in lines)
    np.testing.assert_allclose([float(line.split("\t")[1]) for line in lines], data["scores"], atol=2e-4)
    in_mm = tmp_path / "mm"
    in_mm.mkdir()
    np.save(in_mm / "box.npy", _box_cloud(2000) * 1000.0)
    poses_mm = data["poses"].copy()
    poses_mm[:, :3] *= 1000.0
    np.save(in_mm / "poses.npy", poses_mm)
    scored_mm = _cli("score", "--cloud", str(in_mm / "box.npy"), "--poses", str(in_mm / "poses.npy"), "--units", "mm",
                     "--device", "cpu", cwd=tmp_path)
    assert scored_mm.returncode == 0, scored_mm.stderr
    np.testing.assert_allclose([float(line.split("\t")[1]) for line in scored_mm.stdout.strip().splitlines()],
                               data["scores"], atol=2e-4)


def test_cli_score_answers_by_name_with_reasons_and_propose_reads_a_cloud_in_mm(tmp_path):
    """``score --output`` picks the answer (the shipped weights have both), ``--json`` writes null for a grasp
    it could not judge and the text lines give its reason; ``propose --units mm`` scales a cloud file too."""
    import json

    from grasp_equi import GraspScorer

    points = _box_cloud(2000)
    cloud, grasps = tmp_path / "box.npy", tmp_path / "grasps.npy"
    np.save(cloud, points)
    pairs = np.stack([points[:4], points[100:104]], axis=1)  # [4, 2, 3] on the surface
    inside = np.zeros((1, 2, 3)) + [[0.0, 0.0, 0.0], [0.001, 0.0, 0.0]]  # both contacts at the box's centre
    np.save(grasps, np.concatenate([pairs, inside]))
    scorer = GraspScorer.from_checkpoint(device="cpu")
    for output in scorer.outputs:
        done = _cli("score", "--cloud", str(cloud), "--grasps", str(grasps), "--output", output, "--json",
                    "--device", "cpu", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        got = json.loads(done.stdout)
        expected = scorer.score(points, np.concatenate([pairs, inside]), output=output)
        assert got[-1] is None and np.isnan(expected[-1])
        np.testing.assert_allclose(got[:4], expected[:4], atol=2e-6)
    text = _cli("score", "--cloud", str(cloud), "--grasps", str(grasps), "--device", "cpu", cwd=tmp_path)
    assert text.stdout.strip().splitlines()[-1].split("\t")[2].startswith("off_surface")
    mm = tmp_path / "box_mm.npy"
    np.save(mm, points * 1000.0)
    ranked = _cli("propose", "--cloud", str(mm), "--units", "mm", "--top", "2", "--seeds", "32", "--device", "cpu",
                  cwd=tmp_path)
    assert ranked.returncode == 0, ranked.stderr
    np.save(tmp_path / "grasps_mm.npy", np.concatenate([pairs, inside]) * 1000.0)
    in_mm = _cli("score", "--cloud", str(mm), "--grasps", str(tmp_path / "grasps_mm.npy"), "--units", "mm", "--json",
                 "--output", output, "--device", "cpu", cwd=tmp_path)  # the same scores as the same arrays in metres
    assert in_mm.returncode == 0, in_mm.stderr
    np.testing.assert_allclose(json.loads(in_mm.stdout)[:4], expected[:4], atol=2e-5)
    unscaled = _cli("score", "--cloud", str(mm), "--grasps", str(tmp_path / "grasps_mm.npy"), "--device", "cpu",
                    cwd=tmp_path)
    assert unscaled.returncode == 1 and "--units mm" in unscaled.stderr and len(unscaled.stderr.splitlines()) == 1


def test_cli_propose_refuses_a_folder_as_out_before_any_work(tmp_path):
    """``--out`` naming a folder: one line saying so, with or without ``--force``. It once said "exists; pass
    --force to overwrite it", and with --force failed after the whole proposal with "[Errno 21] Is a directory"."""
    cloud, folder = tmp_path / "box.npy", tmp_path / "a_folder"
    np.save(cloud, _box_cloud(2000))
    folder.mkdir()
    for force in ((), ("--force",)):
        done = _cli("propose", "--cloud", str(cloud), "--out", str(folder), *force, "--seeds", "32", "--device", "cpu",
                    cwd=tmp_path)
        assert done.returncode == 1 and done.stdout == "" and "is a folder" in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and "Errno" not in done.stderr and folder.is_dir()


def test_a_ply_mesh_is_sampled_as_a_mesh_by_propose_and_refused_by_score(tmp_path):
    """A box saved as a PLY mesh (binary and ASCII): propose samples its surface as it does the same
    box in STL (not its 8 corners, which open3d's point reader would keep), score refuses it in one
    line instead of scoring against the corners; a vertex-only PLY stays a cloud."""
    import trimesh

    from grasp_equi.score_cmd import ply_face_count

    box = trimesh.creation.box(extents=(0.05, 0.03, 0.08))
    box.export(tmp_path / "box.stl")
    (tmp_path / "box_ascii.ply").write_bytes(trimesh.exchange.ply.export_ply(box, encoding="ascii"))
    box.export(tmp_path / "box.ply")  # binary
    trimesh.PointCloud(box.sample(1500, seed=0)).export(tmp_path / "points.ply")
    assert ply_face_count(tmp_path / "box.ply") == ply_face_count(tmp_path / "box_ascii.ply") == 12
    assert ply_face_count(tmp_path / "points.ply") == 0

    def best(name):
        done = _cli("propose", "--cloud", str(tmp_path / name), "--top", "1", "--seeds", "64", "--device", "cpu",
                    cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        return done.stdout

    from_stl = best("box.stl")
    for name in ("box.ply", "box_ascii.ply"):
        assert best(name).splitlines()[0] == from_stl.splitlines()[0]  # the same count of candidates
    np.save(tmp_path / "grasps.npy", np.array([[[0.025, 0.0, 0.0], [-0.025, 0.0, 0.0]]]))
    refused = _cli("score", "--cloud", str(tmp_path / "box.ply"), "--grasps", str(tmp_path / "grasps.npy"),
                   "--device", "cpu", cwd=tmp_path)
    assert refused.returncode == 1 and "mesh (12 faces)" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    cloud = _cli("score", "--cloud", str(tmp_path / "points.ply"), "--grasps", str(tmp_path / "grasps.npy"),
                 "--device", "cpu", cwd=tmp_path)
    assert cloud.returncode == 0, cloud.stderr


def test_propose_on_a_mesh_answers_in_the_files_frame(tmp_path):
    """A mesh far from its file's origin: the poses are where the object is in that frame (they were
    relative to the mesh's centre), the same as for the mesh at the origin moved by the same offset."""
    import trimesh

    offset = np.array([0.4, -0.3, 1.2])
    box = trimesh.creation.box(extents=(0.05, 0.03, 0.08))
    box.export(tmp_path / "box.stl")
    box.copy().apply_translation(offset).export(tmp_path / "moved.stl")

    def top(name):
        out = tmp_path / f"{name}.npz"
        done = _cli("propose", "--cloud", str(tmp_path / f"{name}.stl"), "--top", "3", "--seeds", "64", "--out",
                    str(out), "--device", "cpu", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        return np.load(out)

    at_origin, moved = top("box"), top("moved")
    np.testing.assert_allclose(moved["scores"], at_origin["scores"], atol=1e-4)
    np.testing.assert_allclose(moved["poses"][:, :3], at_origin["poses"][:, :3] + offset, atol=1e-4)
    np.testing.assert_allclose(moved["contacts"], at_origin["contacts"] + offset, atol=1e-4)


def test_ply_face_count_reads_the_header_line_by_line(tmp_path):
    """Regressions from a break-it pass: 'end_header' inside a comment, a signed count, CRLF, a header of
    comments longer than 64 kB; a header that never ends or a count that is no number is one clear error."""
    import pytest

    from grasp_equi.files import FileFormatError
    from grasp_equi.score_cmd import ply_face_count

    def count(text: bytes):
        path = tmp_path / "x.ply"
        path.write_bytes(text)
        return ply_face_count(path)

    assert count(b"ply\nformat ascii 1.0\ncomment end_header\nelement vertex 3\nelement face +12\nend_header\n") == 12
    assert count(b"ply\r\nformat ascii 1.0\r\n" + b"comment " + b"x" * 70 + b"\r\n" * 1 + b"comment c\n" * 9000
                 + b"element vertex 3\r\nproperty float x\r\nend_header\r\n") == 0
    with pytest.raises(FileFormatError, match="no end of header"):
        count(b"ply\nformat ascii 1.0\nelement face 3\n")
    with pytest.raises(FileFormatError, match="not a number"):
        count(b"ply\nelement face many\nend_header\n")
    with pytest.raises(FileFormatError, match="does not start with 'ply'"):
        count(b"")
