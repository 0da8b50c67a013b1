"""``manifest.json`` of a dataset, rebuilt from every shard on disk (so resumed runs are complete)."""

from __future__ import annotations

import platform
from collections import defaultdict
from dataclasses import asdict

import numpy as np

from grasp_equi.data.shards import read_shard, shard_files

STABLE = 0.5  # a grasp is "stable" when its robust P(force closure) is at least this


def _versions() -> dict:
    import open3d
    import scipy
    import trimesh

    import grasp_equi

    return {"grasp_equi": grasp_equi.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
            "trimesh": trimesh.__version__, "open3d": open3d.__version__, "python": platform.python_version()}


def _rates(groups: dict) -> dict:
    return {key: {"grasps": int(len(v)), "positive_rate": round(float(np.mean(np.asarray(v) >= STABLE)), 4),
                  "mean_label": round(float(np.mean(v)), 4)}
            for key, v in sorted(groups.items()) if len(v)}


def build_manifest(out_dir, cfg, tasks, run_seconds: float, workers: int, args: dict) -> dict:
    """Counts, label statistics per family / K / sampler / view type, throughput, skipped meshes."""
    by_family, by_k, by_family_k, by_source, by_view = (defaultdict(list) for _ in range(5))
    objects = clouds = partial = points = labelled = 0
    seconds = cpu_seconds = 0.0
    skipped, shards = [], []
    for path in shard_files(out_dir):
        data = read_shard(path)
        meta = data["meta"]
        shards.append(path.name)
        skipped.extend(meta.get("skipped", []))
        seconds += meta.get("seconds", 0.0)
        cpu_seconds += meta.get("cpu_seconds", meta.get("seconds", 0.0))  # older shards: worker wall time
        labelled += meta.get("labelled", 0)
        objects += len(data["object_id"])
        clouds += len(data["cloud_partial"])
        partial += int(data["cloud_partial"].sum())
        points += len(data["points"])
        labels = data["labels"]
        family = data["object_family"][data["cloud_object"][data["grasp_cloud"]]]
        view = np.where(data["cloud_partial"][data["grasp_cloud"]], "partial", "complete")
        source = data["source_names"][data["grasp_source"]]
        for lab, fam, k, src, v in zip(labels.tolist(), family.tolist(), data["num_contacts"].tolist(),
                                       source.tolist(), view.tolist()):
            by_family[fam].append(lab)
            by_k[f"K={k}"].append(lab)
            by_family_k[f"{fam} K={k}"].append(lab)
            by_source[src].append(lab)
            by_view[v].append(lab)
    all_labels = [x for v in by_family.values() for x in v]
    return {
        "format": "grasp_equi shards v1 (see grasp_equi/data/shards.py)",
        "seed": cfg.seed,
        "config": {**asdict(cfg), "digest": cfg.digest()},
        "arguments": {k: v for k, v in args.items() if not k.startswith("_") and k != "command"},
        "versions": _versions(),
        "label": {"definition": "robust P(force closure) over perturbed contacts and friction (grasp_equi/quality.py)",
                  "stable_threshold": STABLE, "mu": cfg.mu, "samples": cfg.samples, "sigma_m": cfg.sigma,
                  "mu_sigma": cfg.mu_sigma, "friction_cone_edges": 8, "soft_finger_for_K2": True},
        "totals": {"planned_objects": len(tasks), "objects": objects, "clouds": clouds, "partial_clouds": partial,
                   "complete_clouds": clouds - partial, "points": points, "grasps": len(all_labels),
                   "labelled_candidates": labelled,
                   "positive_rate": round(float(np.mean(np.asarray(all_labels) >= STABLE)), 4) if all_labels else 0.0},
        "throughput": {"worker_seconds": round(seconds, 1), "cpu_seconds": round(cpu_seconds, 1),
                       # labelled grasps per CPU-minute: what one free core does, whatever the load
                       "grasps_per_min_per_core": round(labelled / max(cpu_seconds, 1e-9) * 60, 1),
                       # per minute of a worker's wall time: lower when the cores are shared
                       "grasps_per_worker_minute": round(labelled / max(seconds, 1e-9) * 60, 1),
                       "last_run_wall_seconds": round(run_seconds, 1), "last_run_workers": workers},
        "per_family": _rates(by_family),
        "per_k": _rates(by_k),
        "per_family_k": _rates(by_family_k),
        "per_source": _rates(by_source),
        "per_view": _rates(by_view),
        "skipped": skipped,
        "shards": shards,
    }
