"""``grasp-equi bench --scaling/--compare/--contention`` and the scorer's thread default, on the real pipeline."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest
import torch

from conftest import SMALL_MODEL, ellipsoid_cloud, random_grasps
from grasp_equi import GraspScorer
from grasp_equi.cli import main
from grasp_equi.scorer import DEFAULT_THREADS, cpu_threads


def test_scorer_runs_with_its_threads_and_restores_torchs_setting(rng):
    points, _ = ellipsoid_cloud(800, rng=rng)
    seen = []
    scorer = GraspScorer.untrained(seed=0, device="cpu", threads=1, **SMALL_MODEL)
    handle = scorer.model.encoder.register_forward_hook(lambda *a: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        scorer.score(points, random_grasps(points, 4, 2, rng))
        assert seen == [1] and torch.get_num_threads() == 2  # 1 inside the call, the caller's setting after
    finally:
        handle.remove()
        torch.set_num_threads(before)
    assert DEFAULT_THREADS == 1 and GraspScorer.untrained(seed=0, device="cpu", **SMALL_MODEL).threads == 1
    with cpu_threads(None):
        assert torch.get_num_threads() == before  # None leaves torch alone
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="threads"):
            GraspScorer.untrained(seed=0, device="cpu", threads=bad, **SMALL_MODEL)


def test_competitor_burns_a_core_and_is_stopped():
    from grasp_equi.bench.contention import start_competitor

    proc = start_competitor()
    try:
        time.sleep(1.0)
        with open(f"/proc/{proc.pid}/stat") as f:
            user_ticks = int(f.read().rsplit(")", 1)[1].split()[11])  # utime, in clock ticks
        assert user_ticks / os.sysconf("SC_CLK_TCK") > 0.3  # it really computes (not sleeping)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert proc.poll() is not None


def test_contention_records_both_thread_settings():
    from grasp_equi.bench.contention import contention_table, measure_contention

    records = measure_contention(lambda threads: GraspScorer.untrained(seed=0, device="cpu", threads=threads,
                                                                       **SMALL_MODEL),
                                 n_points=1_500, n_grasps=8, repeats=2, budget_s=1.0)
    assert records[0]["threads"] == DEFAULT_THREADS
    assert len(records) == (2 if (os.cpu_count() or 1) > 1 else 1)
    for r in records:
        assert r["quiet_ms_median"] > 0 and r["busy_ms_median"] > 0
        assert r["slowdown"] == pytest.approx(r["busy_ms_median"] / r["quiet_ms_median"])
    assert "slowdown" in contention_table(records) and "library default" in contention_table(records)


def test_scaling_compares_two_checkpoints_in_one_run(tmp_path, capsys):
    """Two heads, one run: both models timed per G, a slope per model, FLOPs per grasp, a plot."""
    from grasp_equi.checkpoint import save_checkpoint

    paths = {}
    for head in ("invariant", "convolution"):
        scorer = GraspScorer.untrained(seed=0, device="cpu", head=head, **SMALL_MODEL)
        paths[head] = tmp_path / f"{head}.safetensors"
        save_checkpoint(paths[head], scorer.model, scorer.config, {})
    out = tmp_path / "scaling.json"
    code = main(["bench", "--scaling", "--weights", str(paths["invariant"]), "--compare", str(paths["convolution"]),
                 "--n-points", "1500", "--n-grasps", "8,600,1200", "--json", str(out)])
    assert code == 0
    records = json.loads(out.read_text())
    rows = [r for r in records if r["mode"] == "scaling"]
    summaries = {r["model"]: r for r in records if r["mode"] == "scaling_summary"}
    assert len(rows) == 6 and len(summaries) == 2
    flops = {name: s["head_flops_per_grasp"] for name, s in summaries.items()}
    assert all(f > 1e3 for f in flops.values())
    # the invariant head does less arithmetic per grasp than the tensor-product head
    assert flops["invariant.safetensors"] < flops["convolution.safetensors"]
    assert all(s["ms_per_1000_grasps"] is not None for s in summaries.values())
    text = capsys.readouterr().out
    assert "ms per 1,000 grasps" in text and "convolution.safetensors" in text
    assert (tmp_path / "scaling_scaling.png").stat().st_size > 5_000


def test_compare_without_scaling_is_refused(capsys):
    assert main(["bench", "--compare", "x.safetensors"]) == 1
    assert "--compare goes with --scaling" in capsys.readouterr().err


def test_scores_do_not_depend_on_the_thread_count(rng):
    points, _ = ellipsoid_cloud(1500, rng=rng)
    grasps = random_grasps(points, 20, 3, rng)
    one = GraspScorer.untrained(seed=2, device="cpu", threads=1, **SMALL_MODEL).score(points, grasps)
    two = GraspScorer.untrained(seed=2, device="cpu", threads=2, **SMALL_MODEL).score(points, grasps)
    np.testing.assert_allclose(one, two, atol=1e-6)


def test_threads_accept_numpy_integers():
    assert GraspScorer.untrained(seed=0, device="cpu", threads=np.int64(2), **SMALL_MODEL).threads == 2


def test_studies_refuse_options_they_would_ignore(capsys):
    assert main(["bench", "--scaling", "--precision", "bf16"]) == 1
    assert "drop --compile, --precision" in capsys.readouterr().err
