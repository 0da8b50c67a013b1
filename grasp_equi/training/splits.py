"""Reading a generated dataset split by family (``splits.json``): evaluation families are
never seen in training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SPLITS = ("train", "val", "test")


def split_families(data_dir) -> dict[str, list[str]]:
    """``{"train": [...], "val": [...], "test": [...]}`` from ``DATA/splits.json``."""
    path = Path(data_dir) / "splits.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no splits.json (generate the dataset with `grasp-equi generate`)")
    raw = json.loads(path.read_text())
    raw = raw.get("families", raw) if isinstance(raw, dict) else raw
    missing = [s for s in SPLITS if s not in raw]
    if missing:
        raise ValueError(f"{path}: missing splits {missing}; found keys {sorted(raw)}")
    splits = {s: sorted(str(f) for f in raw[s]) for s in SPLITS}
    overlap = set(splits["train"]) & (set(splits["val"]) | set(splits["test"]))
    if overlap:
        raise ValueError(f"{path}: families {sorted(overlap)} are in train and in val/test")
    return splits


def load_split(data_dir, split: str, families: list[str] | None = None) -> list:
    """``CloudSample`` list of one split (or of explicit ``families``)."""
    from grasp_equi.data.shards import load_dataset  # open3d-free, but only needed here

    if families is None:
        if split == "all":
            return list(load_dataset(Path(data_dir)))
        families = split_families(data_dir)[split]
    return list(load_dataset(Path(data_dir), families=families))


def subsample_objects(samples: list, fraction: float, seed: int = 0) -> list:
    """Keep a random ``fraction`` of the *objects* (all views of a kept object stay together),
    stratified by family so every training family remains represented. Works on anything with
    ``family`` and ``object_id`` (``CloudSample``, ``CloudRecord``)."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if fraction == 1.0:
        return list(samples)
    rng = np.random.default_rng([seed, 11])
    keep: set[str] = set()
    for family in sorted({s.family for s in samples}):
        objects = sorted({s.object_id for s in samples if s.family == family})
        count = max(1, int(round(fraction * len(objects))))
        keep.update(rng.permutation(objects)[:count].tolist())
    return [s for s in samples if s.object_id in keep]
