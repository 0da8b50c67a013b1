"""``grasp-equi bench`` and the CPU fast paths of the scoring pipeline.

The fast paths (numpy FPS, k-d tree neighbours, node pre-check of contact distances) must
give the same answers as the plain torch versions used on the GPU; the benchmark must run
through the real CLI, write its records, and work on a box without ROS/Qt/open3d.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from conftest import ellipsoid_cloud, random_grasps
from grasp_equi import cuda_fps
from grasp_equi.cli import main
from grasp_equi.geometry import _fps_torch, exact_cdist, farthest_point_sampling, nearest_neighbours
from grasp_equi.graph import collate, collate_grasps, prepare_cloud

# A small model and one thread keep these runs to seconds on a busy 2-core machine.
FAST = ["--threads", "1", "--budget", "0",
        "--model-config", "num_nodes=64,irreps_hidden=8x0e+2x1o+1x2e,radial_hidden=8,readout_hidden=16"]


@pytest.mark.parametrize("n", [50, 3000])
def test_numpy_fps_picks_the_same_points_as_the_torch_loop(rng, n):
    points = torch.as_tensor(ellipsoid_cloud(n, rng=rng, noise=1e-3)[0] / 0.05, dtype=torch.float32)
    fast = farthest_point_sampling(points, 40)  # CPU tensor -> numpy path
    start = torch.argmax(((points - points.mean(0)) ** 2).sum(1))
    assert torch.equal(fast, _fps_torch(points, start, 40))
    assert len(set(fast.tolist())) == 40


def test_padding_for_cuda_graph_buckets_does_not_change_the_picks(rng):
    """cuda_fps pads clouds with copies of the start point; the eager loop must pick the same."""
    points = torch.as_tensor(rng.normal(size=(3001, 3)), dtype=torch.float32)
    start = torch.argmax(((points - points.mean(0)) ** 2).sum(1))
    padded = cuda_fps.pad_with_start(points, start, cuda_fps.bucket_size(len(points)))
    assert len(padded) > len(points)
    assert torch.equal(_fps_torch(points, start, 64), _fps_torch(padded, start, 64))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_graph_fps_equals_the_eager_loop(rng):
    for n in (5000, 20000, 20001):  # two sizes share a bucket: one graph replayed with other data
        points = torch.as_tensor(rng.normal(size=(n, 3)), dtype=torch.float32, device="cuda")
        start = torch.argmax(((points - points.mean(0)) ** 2).sum(1))
        replayed = cuda_fps.sample(points, start, 256, _fps_torch)
        assert torch.equal(replayed, _fps_torch(points, start, 256))


def test_kdtree_neighbours_equal_the_exact_distance_matrix(rng):
    cloud = torch.as_tensor(rng.normal(size=(2000, 3)), dtype=torch.float32)
    queries = cloud[:64]
    fast = nearest_neighbours(queries, cloud, 16)
    exact = exact_cdist(queries, cloud).topk(16, dim=1, largest=False).indices
    assert torch.equal(fast.sort(dim=1).values, exact.sort(dim=1).values)


def test_flat_grasp_batch_equals_collate(rng):
    points = torch.as_tensor(ellipsoid_cloud(500, rng=rng)[0])
    cloud = prepare_cloud(points, None, 32)
    grasps = [torch.as_tensor(rng.normal(size=(k, 3)), dtype=torch.float32) for k in (2, 3, 2, 5)]
    reference = collate([cloud], [grasps])
    flat = collate_grasps(cloud, torch.cat(grasps), torch.tensor([2, 3, 2, 5]))
    assert reference.keys() == flat.keys()
    for key, value in reference.items():
        assert torch.equal(value, flat[key]), key


def test_contact_check_reports_the_exact_distance(small_scorer, rng):
    """A far contact's reason carries its exact distance to the cloud (k-d tree, not a node bound)."""
    points, _ = ellipsoid_cloud(5000, rng=rng)
    contacts = random_grasps(points, 6, 2, rng)
    assert np.isfinite(small_scorer.score(points, contacts)).all()
    far = contacts.copy()
    far[4, 1] = points[0] * 3.0  # 2 object radii out
    exact = np.linalg.norm(points - far[4, 1], axis=1).min()
    scores, reasons = small_scorer.score(points, far, return_reasons=True)
    assert np.isnan(scores[4]) and np.isfinite(np.delete(scores, 4)).all()
    reported = float(re.search(r"contact 1 lies (\S+) from", reasons[4]).group(1))
    assert reported == pytest.approx(exact, rel=1e-3)


def _records(path):
    records = json.loads(path.read_text())
    for r in records:
        assert {"device", "n_points", "n_grasps", "stage_ms", "total_ms_median"} <= set(r)
    return records


def test_bench_cli_writes_records_with_every_stage(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = main(["bench", "--device", "cpu", "--n-points", "3000", "--n-grasps", "1,16", *FAST,
                 "--json", str(out), "--plot", str(tmp_path / "bench.png")])
    assert code == 0
    records = _records(out)
    assert [(r["n_points"], r["n_grasps"]) for r in records] == [(3000, 1), (3000, 16)]
    for r in records:
        assert r["device"] == "cpu" and r["repeats"] >= 5
        assert {"sampling", "normals", "graph", "encoder", "head", "decode", "encode"} <= set(r["stage_ms"])
        assert r["total_ms_p10"] <= r["total_ms_median"] <= r["total_ms_p90"]
        # the stages the scorer times are parts of its end-to-end call
        inside = sum(r["stage_ms"][s] for s in ("sampling", "normals", "graph", "encoder", "head"))
        assert inside <= r["total_ms_median"] * 1.5
        assert r["invariance_max_abs"] < 1e-4
        assert max(r["adversarial_invariance"]["cpu"].values()) <= 1e-5  # grids, symmetric and repeated clouds
        assert r["host_peak_mb"] is None or r["host_peak_mb"] > 10
    assert (tmp_path / "bench.png").stat().st_size > 10_000
    out_text = capsys.readouterr().out
    assert "| cpu | 3,000 | 16 |" in out_text
    # the command line's start-up is part of the bench: every --help timed, in the JSON and printed
    from grasp_equi.cli import SUBCOMMANDS

    help_s = records[0]["cli_help_s"]
    assert set(help_s) == {"(top level)", *SUBCOMMANDS} and all(0 < t < 30 for t in help_s.values())
    assert "--help start-up (" in out_text and "1 s target" in out_text


def test_bench_runs_without_ros_qt_open3d(tmp_path):
    """A GPU box has torch/e3nn/numpy/scipy only: block the rest and run the CLI in a fresh process."""
    out = tmp_path / "bare.json"
    script = textwrap.dedent(f"""
        import sys
        for name in ("rclpy", "sensor_msgs", "std_msgs", "open3d", "trimesh", "PySide6", "pyqtgraph"):
            sys.modules[name] = None  # any import of these now raises ImportError
        from grasp_equi.cli import main
        code = main(["bench", "--device", "cpu", "--n-points", "2000", "--n-grasps", "4", *{FAST!r},
                     "--json", {str(out)!r}])
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("rclpy", "open3d", "trimesh", "PySide6")
                        and sys.modules[m] is not None)
        assert not loaded, loaded
        sys.exit(code)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "decode/encode stages left out" in done.stderr
    (record,) = _records(out)
    assert "decode" not in record["stage_ms"] and record["stage_ms"]["encoder"] > 0


@pytest.mark.parametrize("argv, message", [
    (["--device", "cuda"], "CUDA is not available"),
    (["--precision", "fp8"], "--precision takes"),
    (["--k", "1"], "--k must be >= 2"),
    (["--model-config", "num_nodes=8", "--weights", "x.safetensors"], "cannot be combined"),
])
def test_bench_bad_options_give_a_message(argv, message, capsys):
    if argv[:2] == ["--device", "cuda"] and torch.cuda.is_available():
        pytest.skip("CUDA present")
    assert main(["bench", *argv]) == 1
    assert message in capsys.readouterr().err
