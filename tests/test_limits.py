"""Hostile and odd input to the core (no ROS): limits before allocation, checkpoints, files,
implausible objects, gripper collisions. Each case is one the issue found with a fuzz campaign."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
import tracemalloc
import zipfile

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from conftest import SMALL_MODEL, ellipsoid_cloud, random_grasps
from grasp_equi import GraspScorer
from grasp_equi.checkpoint import (META_CONFIG, META_FINGERPRINT, META_FORMAT, CheckpointError, read_checkpoint,
                                   save_checkpoint)
from grasp_equi.files import FileFormatError
from grasp_equi.gripper import JawGeometry, quaternion_to_matrix
from grasp_equi.limits import Limits
from grasp_equi.model import ModelConfig, build_model
from grasp_equi.poses import COLLISION, NO_CONTACT, SCORED, GripperBody, close_and_check
from grasp_equi.score_cmd import load_cloud, load_grasps
from grasp_equi.scorer import SHIPPED_WEIGHTS


# ----------------------------------------------------------------------------- resource limits
def _peak(fn):
    """(exception, peak traced bytes, seconds) of ``fn()``, which must raise."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        fn()
    except ValueError as err:
        return err, tracemalloc.get_traced_memory()[1], time.perf_counter() - start
    finally:
        tracemalloc.stop()
    raise AssertionError("no ValueError")


def test_k_above_limit_is_refused_before_any_work(small_scorer, rng):
    points, _ = ellipsoid_cloud(2000, rng=rng)
    contacts = random_grasps(points, 1, 1000, rng)  # the K = 1,000 file of the issue (6.85 GB before)
    err, peak, _ = _peak(lambda: small_scorer.score(points, contacts))
    assert "max_contacts_per_grasp=16" in str(err) and "1000 contacts" in str(err)
    assert peak < 1_000_000  # refused from the shape: nothing allocated
    with pytest.raises(ValueError, match="grasp 1 has 17 contacts"):  # list input, mixed K
        small_scorer.score(points, [contacts[0, :2], contacts[0, :17]])
    ok = small_scorer.score(points, contacts[:, :16])  # K = 16 is allowed
    assert ok.shape == (1,) and np.isfinite(ok).all()


def test_grasp_count_and_points_limits_are_parameters(rng):
    scorer = GraspScorer.untrained(seed=0, device="cpu", limits=Limits(max_grasps=3, max_points=500), **SMALL_MODEL)
    points, _ = ellipsoid_cloud(400, rng=rng)
    with pytest.raises(ValueError, match="4 grasps in one request, more than max_grasps=3"):
        scorer.score(points, random_grasps(points, 4, 2, rng))
    with pytest.raises(ValueError, match="more than max_points=500"):
        scorer.score(ellipsoid_cloud(501, rng=rng)[0], random_grasps(points, 1, 2, rng))
    assert scorer.score(points, random_grasps(points, 3, 2, rng)).shape == (3,)
    for bad in (dict(max_contacts_per_grasp=1), dict(max_points=0), dict(min_object_radius=2.0),
                dict(max_file_bytes=float("nan"))):
        with pytest.raises(ValueError, match="limit|min_object_radius"):
            Limits(**bad)


# ----------------------------------------------------------------------------- object size
@pytest.mark.parametrize("scale, word", [(1e6 / 0.05, "outside"), (3e38 / 0.05, "overflow|outside"),
                                         (1e-5 / 0.05, "outside")])
def test_implausible_object_sizes_are_refused_with_the_measured_radius(small_scorer, rng, scale, word):
    points, _ = ellipsoid_cloud(500, rng=rng)
    with pytest.raises(ValueError, match=word) as info:
        small_scorer.score(points * scale, random_grasps(points * scale, 2, 2, rng))
    if "overflow" not in str(info.value):
        assert "object radius" in str(info.value) and "m" in str(info.value)


def test_two_spots_and_lines_are_not_objects(small_scorer):
    spots = np.repeat([[0.0, 0.0, 0.0], [0.01, 0.0, 0.0]], 150, axis=0)  # 300 points on two spots 1 cm apart
    with pytest.raises(ValueError, match="line or a few spots"):
        small_scorer.score(spots, spots[[0, 299]][None])
    line = np.linspace(0, 0.1, 300)[:, None] * np.ones(3)  # x = y = z: what overlapping fields decode to
    with pytest.raises(ValueError, match="line or a few spots"):
        small_scorer.score(line, line[[0, 299]][None])


def test_all_nan_cloud_says_so(small_scorer):
    with pytest.raises(ValueError, match="all 10 points are non-finite"):
        small_scorer.score(np.full((10, 3), np.nan), np.zeros((1, 2, 3)))


@pytest.mark.parametrize("dtype", [bool, complex, "U3", "datetime64[s]", object])
def test_non_numeric_arrays_are_not_coordinates(small_scorer, dtype):
    points = np.ones((10, 3)).astype(dtype) if dtype is not object else np.full((10, 3), None)
    with pytest.raises(ValueError, match="numeric"):
        small_scorer.score(points, np.zeros((1, 2, 3)))


# ----------------------------------------------------------------------------- checkpoints
def _with_metadata(tmp_path, name, edit) -> str:
    """A copy of a small valid checkpoint whose metadata ``edit(dict)`` changed."""
    config = ModelConfig(**SMALL_MODEL)
    src = save_checkpoint(tmp_path / "src.safetensors", build_model(config), config)
    tensors, _, _ = read_checkpoint(src)
    metadata = {META_FORMAT: "1", META_CONFIG: json.dumps(config.to_dict())}
    edit(metadata)
    save_file(tensors, str(tmp_path / name), metadata=metadata)
    return str(tmp_path / name)


def _config_edit(**changes):
    def edit(meta):
        meta[META_CONFIG] = json.dumps({**json.loads(meta[META_CONFIG]), **changes})
    return edit


@pytest.mark.parametrize("changes, key", [
    (dict(irreps_hidden="100000000x0e"), "irreps_hidden"),  # 12.8 GB before
    (dict(radial_hidden=2_000_000_000), "radial_hidden"),  # 64 GB before
    (dict(num_nodes="abc"), "num_nodes"),
    (dict(num_nodes=0), "num_nodes"),
    (dict(radius=float("nan")), "radius"),
    (dict(architecture="transformer"), "architecture"),
    (dict(contact_normals="yes"), "contact_normals"),
    (dict(surprise=1), "surprise"),
])
def test_bad_config_values_name_file_and_key_before_any_tensor(tmp_path, changes, key):
    path = _with_metadata(tmp_path, "bad.safetensors", _config_edit(**changes))
    err, peak, _ = _peak(lambda: GraspScorer.from_checkpoint(path, device="cpu"))
    assert isinstance(err, CheckpointError) and "bad.safetensors" in str(err) and repr(key) in str(err), err
    assert peak < 5_000_000  # refused from the header, before the model or its tensors exist


def test_deep_info_and_tensor_mismatch_are_checkpoint_errors(tmp_path):
    deep = _with_metadata(tmp_path, "deep.safetensors", lambda m: m.update(grasp_equi_info="[" * 5000 + "]" * 5000))
    with pytest.raises(CheckpointError, match="deep.safetensors.*grasp_equi_info"):
        GraspScorer.from_checkpoint(deep, device="cpu")
    other = _with_metadata(tmp_path, "shape.safetensors", _config_edit(readout_hidden=31))  # tensors say 32
    with pytest.raises(CheckpointError, match="shape.safetensors: does not match its config"):
        GraspScorer.from_checkpoint(other, device="cpu")


def test_non_finite_weights_are_refused(tmp_path):
    config = ModelConfig(**SMALL_MODEL)
    model = build_model(config)
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = float("nan")
    path = save_checkpoint(tmp_path / "nan.safetensors", model, config)
    with pytest.raises(CheckpointError, match="nan.safetensors: tensor .* NaN/inf"):
        GraspScorer.from_checkpoint(path, device="cpu")
    points, _ = ellipsoid_cloud(200)
    np.save(tmp_path / "c.npy", points)
    np.save(tmp_path / "g.npy", points[:4].reshape(2, 2, 3))
    proc = subprocess.run([sys.executable, "-m", "grasp_equi.cli", "score", "--cloud", str(tmp_path / "c.npy"),
                           "--grasps", str(tmp_path / "g.npy"), "--weights", str(path), "--device", "cpu"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and proc.stdout == "" and proc.stderr.count("\n") == 1, proc.stderr
    assert "NaN/inf weights" in proc.stderr


def test_edited_radius_no_longer_matches_its_fingerprint(tmp_path):
    config = ModelConfig(**SMALL_MODEL)
    path = save_checkpoint(tmp_path / "m.safetensors", build_model(config), config)
    tensors, _, _ = read_checkpoint(path)
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
    metadata[META_CONFIG] = json.dumps({**json.loads(metadata[META_CONFIG]), "radius": 0.9})
    save_file(tensors, str(tmp_path / "edited.safetensors"), metadata=metadata)
    with pytest.raises(CheckpointError, match=f"edited.safetensors: key '{META_FINGERPRINT}'"):
        GraspScorer.from_checkpoint(tmp_path / "edited.safetensors", device="cpu")
    assert GraspScorer.from_checkpoint(path, device="cpu").config.radius == config.radius  # untouched file loads


@pytest.mark.skipif(not SHIPPED_WEIGHTS.is_file(), reason="no shipped weights")
def test_shipped_weights_still_load():
    assert GraspScorer.from_checkpoint(device="cpu").config.architecture == "equivariant"


# ----------------------------------------------------------------------------- files
def _npy_bytes(arr) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def write_zip_bomb(path, mib: int) -> None:
    """An .npz whose 'points' member inflates to ``mib`` MiB of zeros (about 1/1000 on disk)."""
    rows = mib * 2**20 // 24
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("points.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": (rows, 3)})
            zeros = bytes(2**20)
            for _ in range(mib):
                f.write(zeros)


def test_npz_zip_bomb_is_refused_before_decompressing(tmp_path):
    path = tmp_path / "bomb.npz"
    write_zip_bomb(path, 16)
    assert path.stat().st_size < 2**20
    limits = Limits(max_file_bytes=4 * 2**20)
    err, peak, seconds = _peak(lambda: load_cloud(path, limits))
    assert "max_file_bytes" in str(err) and "bomb.npz" in str(err) and "decompressed" in str(err)
    assert peak < 2_000_000 and seconds < 5  # generous: it reads only the zip directory
    assert load_cloud(path, Limits(max_file_bytes=32 * 2**20))[0].shape == (16 * 2**20 // 24, 3)  # within limits


@pytest.mark.parametrize("header, reason", [
    (b"{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000, 3), }", "max_points|bytes"),
    (b"{'descr': '<f8', 'fortran_order': False, 'shape': (10, 3), }", "holds only"),  # truncated data
    (b"{'descr': '<f8', 'fortran_order': False, 'shape': (10, 3", "malformed header"),
    (b"{'descr': '<f8', 'fortran_order': False, 'shape': (1, 3), 'x': \"\"\"", "malformed header"),
    (b"[1, 2, 3]", "malformed header"),
])
def test_npy_headers_are_checked_before_reading(tmp_path, header, reason):
    path = tmp_path / "c.npy"
    body = header.ljust(118) + b"\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body + bytes(24))
    err, peak, _ = _peak(lambda: load_cloud(path))
    assert isinstance(err, FileFormatError) and "c.npy" in str(err)
    assert any(r in str(err) for r in reason.split("|")), err
    assert peak < 1_000_000


@pytest.mark.parametrize("arr", [np.ones((5, 3), bool), np.ones((5, 3), complex), np.full((5, 3), "a"),
                                 np.zeros((5, 3), "datetime64[s]")])
def test_npy_non_numeric_dtypes_are_refused(tmp_path, arr):
    np.save(tmp_path / "c.npy", arr)
    with pytest.raises(FileFormatError, match="not a real number type"):
        load_cloud(tmp_path / "c.npy")


def test_grasp_file_limits_and_good_files_round_trip(tmp_path, rng):
    np.save(tmp_path / "g.npy", np.zeros((1, 1000, 3)))  # 48 KB, the file
    err, peak, seconds = _peak(lambda: load_grasps(tmp_path / "g.npy"))
    assert "max_contacts_per_grasp=16" in str(err) and peak < 1_000_000
    points, normals = ellipsoid_cloud(100, rng=rng)
    np.savez_compressed(tmp_path / "c.npz", points=points, normals=normals)
    got_points, got_normals = load_cloud(tmp_path / "c.npz")
    np.testing.assert_array_equal(got_points, points)
    np.testing.assert_array_equal(got_normals, normals)
    np.save(tmp_path / "f.npy", np.asfortranarray(np.hstack([points, normals]).astype(">f4")))
    got_points, got_normals = load_cloud(tmp_path / "f.npy")
    np.testing.assert_array_equal(got_points, points.astype(">f4"))


def test_cli_turns_hostile_files_into_one_line(tmp_path, rng):
    points, _ = ellipsoid_cloud(200, rng=rng)
    np.save(tmp_path / "c.npy", points)
    np.save(tmp_path / "g.npy", random_grasps(points, 1, 1000, rng))
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "grasp_equi.cli", "score", "--cloud", str(tmp_path / "c.npy"),
                           "--grasps", str(tmp_path / "g.npy"), "--device", "cpu"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "max_contacts_per_grasp=16" in proc.stderr, proc.stderr
    print(f"K=1000 file refused by the CLI in {time.perf_counter() - start:.2f} s (process start included)")



@pytest.mark.parametrize("option, value, reason", [("--max-file-mb", "inf", "is not a finite number"),
                                                    ("--max-file-mb", "nan", "is not a finite number"),
                                                    ("--max-object-radius", "inf", "is not a finite number"),
                                                    ("--max-points", "0", "must be >= 1")])
def test_cli_limit_options_are_refused_with_their_name(tmp_path, rng, capsys, option, value, reason):
    """A limit option that is not a positive, finite number: argparse's usage line naming the option (exit 2).
    ``--max-file-mb inf`` once failed with "OverflowError: cannot convert float infinity to integer (set
    GRASP_EQUI_DEBUG=1 ...)", nan with "cannot convert float NaN to integer", neither naming the option."""
    from grasp_equi.cli import main

    points, _ = ellipsoid_cloud(200, rng=rng)
    np.save(tmp_path / "c.npy", points)
    np.save(tmp_path / "g.npy", random_grasps(points, 2, 2, rng))
    with pytest.raises(SystemExit) as exit_:
        main(["score", "--cloud", str(tmp_path / "c.npy"), "--grasps", str(tmp_path / "g.npy"), option, value])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and f"argument {option}: " in err and reason in err and "Error:" not in err, err


def test_huge_limits_are_allowed(tmp_path, rng, capsys):
    """Limits far beyond int64 (``--max-file-mb 1e300``, ``Limits(max_points=10**30)``) mean "no limit": they
    once failed inside ``np.isfinite`` with a TypeError about ufunc casting rules."""
    from grasp_equi.cli import main

    assert Limits(max_points=10**30).max_points == 10**30
    points, _ = ellipsoid_cloud(200, rng=rng)
    np.save(tmp_path / "c.npy", points)
    np.save(tmp_path / "g.npy", random_grasps(points, 2, 2, rng))
    assert main(["score", "--cloud", str(tmp_path / "c.npy"), "--grasps", str(tmp_path / "g.npy"), "--device",
                 "cpu", "--max-file-mb", "1e308", "--max-points", str(10**30)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2

# ----------------------------------------------------------------------------- gripper collisions
def _box(half, n=6000, seed=0):
    rng = np.random.default_rng(seed)
    pts = rng.uniform(-1, 1, size=(n, 3)) * half
    face = rng.integers(0, 3, size=n)
    pts[np.arange(n), face] = rng.choice([-1.0, 1.0], size=n) * np.asarray(half)[face]
    return pts


def test_object_wider_than_the_opening_is_a_collision():
    """The issue's case: a 12 cm box, 8 cm jaws, top-down with the fingertips 1 cm under the top
    face; bare ``close_jaws`` finds "contacts" on the top face, the checked path refuses the pose."""
    pts = _box((0.06, 0.06, 0.06))
    top_down = np.array([[1.0, 0.0, 0.0, 0.0]])  # 180 deg about x: approach along -z
    tip_inside = np.array([[0.0, 0.0, 0.05]])
    rotations = quaternion_to_matrix(top_down)
    contacts, widths, reasons = close_and_check(pts, tip_inside, rotations, GripperBody())
    assert reasons.tolist() == [COLLISION] and np.isnan(contacts).all() and np.isnan(widths).all()
    wide = GripperBody(JawGeometry(max_width=0.16))  # jaws that open wider than the box grasp its sides
    _, widths, reasons = close_and_check(pts, tip_inside, rotations, wide)
    assert reasons.tolist() == [SCORED] and abs(widths[0] - 0.12) < 2e-3


def test_palm_inside_the_cloud_is_a_collision_and_a_clear_pose_is_not():
    pts = _box((0.02, 0.03, 0.02))
    ident = np.array([[0.0, 0.0, 0.0, 1.0]] * 3)
    # fingers 3 cm deep: fingertips 8 mm under the top face put the palm inside the box
    positions = np.array([[0.0, 0.0, 0.012], [0.0, 0.0, -0.012], [0.5, 0.5, 0.5]])
    _, _, reasons = close_and_check(pts, positions, quaternion_to_matrix(ident), GripperBody())
    assert reasons.tolist() == [COLLISION, SCORED, NO_CONTACT]


# ----------------------------------------------------------------------------- found by a break-it pass
def test_threads_beyond_the_machine_are_refused():
    """threads=100000 used to start that many OpenMP workers inside score() and crash the process."""
    from grasp_equi.scorer import max_threads

    with pytest.raises(ValueError, match="more than this machine's"):
        GraspScorer.untrained(device="cpu", threads=max_threads() + 1)
    assert GraspScorer.untrained(device="cpu", threads=max_threads()).threads == max_threads()


@pytest.mark.parametrize("device", ["mps", "meta", "gpu", None, "cuda:99"])
def test_devices_the_scorer_cannot_run_on_are_value_errors(device):
    """mps/meta/None used to surface as RuntimeError/TypeError (meta only at the first score())."""
    with pytest.raises(ValueError, match="device"):
        GraspScorer.untrained(device=device)


def _stl_box(path):
    import trimesh

    trimesh.creation.box((0.05, 0.04, 0.03)).export(path)


def test_mesh_points_are_bounded_before_sampling(tmp_path):
    _stl_box(tmp_path / "box.stl")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "grasp_equi.cli", "propose", "--cloud", str(tmp_path / "box.stl"),
                           "--mesh-points", "200000000", "--device", "cpu"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert "--mesh-points has 200000000 points, more than max_points" in proc.stderr
    assert time.perf_counter() - start < 60  # (it used to allocate 3.7 GB first)


def test_a_closed_pipe_ends_the_output_quietly(tmp_path, rng):
    """`grasp-equi score ... | head -1` printed 'error: [Errno 32] Broken pipe' and exited 1."""
    points, _ = ellipsoid_cloud(500, rng=rng)
    np.save(tmp_path / "c.npy", points)
    np.save(tmp_path / "g.npy", random_grasps(points, 3000, 2, rng))
    cmd = (f"{sys.executable} -m grasp_equi.cli score --cloud {tmp_path / 'c.npy'} --grasps {tmp_path / 'g.npy'} "
           f"--device cpu | head -1; exit ${{PIPESTATUS[0]}}")
    proc = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert proc.stdout.startswith("0\t")
