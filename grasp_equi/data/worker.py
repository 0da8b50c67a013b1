"""Everything generated for one object (runs in a worker process): clouds, grasps, labels.

Each object is seeded from ``(seed, object index)`` only, so a dataset is the same whatever
the number of workers, the order they finish in, or how often the run was resumed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from grasp_equi.data.clouds import complete_cloud, partial_cloud
from grasp_equi.data.labels import labelled_candidates
from grasp_equi.data.objects import load_mesh_object, make_object

MIN_VIEW_POINTS = 64  # a partial view with fewer points (a sliver seen edge-on) is redrawn


@dataclass
class GenerateConfig:
    """All settings that change the data; hashed so a resumed run cannot mix settings."""

    seed: int = 0
    views: int = 4
    grasps_per_view: int = 32
    points: int = 2048
    partial_fraction: float = 0.75
    k_mix: dict = field(default_factory=lambda: {2: 0.6, 3: 0.15, 4: 0.13, 5: 0.12})
    max_width: float = 0.085
    mu: float = 0.5
    samples: int = 24
    sigma: float = 0.003
    mu_sigma: float = 0.1
    noise: float = 0.001
    dropout: float = 0.1
    distance: tuple = (0.3, 1.0)
    resolution: int = 96
    max_contact_distance: float = 0.5  # x cloud radius, as the scorer enforces (0 = no filter)
    units: str = "m"

    def digest(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def k_counts(total: int, k_mix: dict) -> dict[int, int]:
    """Split ``total`` grasps over K by the mix fractions (largest remainders get the rest)."""
    ks = sorted(int(k) for k in k_mix)
    weights = np.array([float(k_mix[k] if k in k_mix else k_mix[str(k)]) for k in ks])
    raw = total * weights / weights.sum()
    counts = np.floor(raw).astype(int)
    for i in np.argsort(raw - counts)[::-1][: total - counts.sum()]:
        counts[i] += 1
    return dict(zip(ks, counts.tolist()))


def _views(obj, cfg: GenerateConfig, rng) -> list[tuple[np.ndarray, np.ndarray, bool, np.ndarray]]:
    """``(points, normals, partial, camera)`` per view: partial views first, then complete ones."""
    n_partial = int(round(cfg.views * cfg.partial_fraction))
    if cfg.views >= 2 and cfg.partial_fraction < 1:
        n_partial = min(n_partial, cfg.views - 1)  # keep at least one complete view
    views = []
    for _ in range(n_partial):
        for _attempt in range(5):
            pts, nrm, cam = partial_cloud(obj, rng, distance=cfg.distance, noise=cfg.noise, dropout=cfg.dropout,
                                          resolution=cfg.resolution)
            if len(pts) >= MIN_VIEW_POINTS:
                break
        else:  # the object hardly shows from anywhere (tiny or paper-thin): use a complete cloud
            n_partial -= 1
            continue
        if len(pts) > cfg.points:
            keep = rng.choice(len(pts), cfg.points, replace=False)
            pts, nrm = pts[keep], nrm[keep]
        views.append((pts, nrm, True, cam))
    for _ in range(cfg.views - n_partial):
        pts, nrm = complete_cloud(obj, cfg.points, rng)
        views.append((pts, nrm, False, np.full(3, np.nan)))
    return views


def _assign(pool_contacts: list[np.ndarray], views, cfg: GenerateConfig, rng) -> list[np.ndarray]:
    """Indices of pool grasps for each view: every partial view takes up to G grasps whose
    contacts all lie near its cloud (what the scorer accepts); complete views share the rest."""
    order = rng.permutation(len(pool_contacts))
    free = np.ones(len(pool_contacts), dtype=bool)
    chosen: list[np.ndarray] = []
    complete = [i for i, v in enumerate(views) if not v[2]]
    for i, (pts, _, partial, _) in enumerate(views):
        if not partial:
            chosen.append(np.zeros(0, np.int64))
            continue
        if cfg.max_contact_distance > 0:
            centred = pts - pts.mean(axis=0)
            limit = 0.8 * cfg.max_contact_distance * np.linalg.norm(centred, axis=1).max()  # 20 % margin
            tree = cKDTree(pts)
            ok = np.array([tree.query(pool_contacts[g])[0].max() <= limit if free[g] else False for g in order])
        else:
            ok = free[order]
        take = order[ok][: cfg.grasps_per_view]
        free[take] = False
        chosen.append(take)
    rest = order[free[order]]
    for j, i in enumerate(complete):
        chosen[i] = rest[j:: len(complete)]
    return chosen


def build_object(index: int, family: str | None, mesh_path: str | None, cfg: GenerateConfig) -> dict:
    """One object's record: arrays for the shard writer, or ``{"skipped": reason}``."""
    rng = np.random.default_rng([cfg.seed, index])
    if mesh_path is not None:
        try:
            obj = load_mesh_object(mesh_path, units=cfg.units)
        except ValueError as err:
            return {"index": index, "skipped": str(err), "path": str(mesh_path)}
        obj.family = family or "mesh"
        obj.name = f"{obj.family}-{Path(mesh_path).stem}"
    else:
        obj = make_object(family, rng, name=f"{family}-{index:06d}")
    views = _views(obj, cfg, rng)
    pool_c, pool_n, pool_s, pool_l, pool_e = [], [], [], [], []
    for k, count in k_counts(cfg.views * cfg.grasps_per_view, cfg.k_mix).items():
        if count == 0:
            continue
        c, n, s, lab, eps = labelled_candidates(obj, k, count, rng, max_width=cfg.max_width, mu=cfg.mu,
                                                samples=cfg.samples, sigma=cfg.sigma, mu_sigma=cfg.mu_sigma)
        pool_c.extend(c)
        pool_n.extend(n)
        pool_s.append(s)
        pool_l.append(lab)
        pool_e.append(eps)
    source, labels, eps = np.concatenate(pool_s), np.concatenate(pool_l), np.concatenate(pool_e)
    chosen = _assign(pool_c, views, cfg, rng)
    grasp_cloud = np.concatenate([np.full(len(ch), v, np.int32) for v, ch in enumerate(chosen)])
    picked = np.concatenate(chosen).astype(np.int64)
    return {
        "index": index,
        "object_id": obj.name,
        "family": obj.family,
        "center": obj.center.astype(np.float32),
        "radius": np.float32(obj.radius),
        "mass": np.float32(obj.mass),
        "clouds": [(p.astype(np.float32), n.astype(np.float32), partial, cam.astype(np.float32))
                   for p, n, partial, cam in views],
        "grasp_cloud": grasp_cloud,
        "contacts": [pool_c[g].astype(np.float32) for g in picked],
        "contact_normals": [pool_n[g].astype(np.float32) for g in picked],
        "labels": labels[picked],
        "epsilon": eps[picked],
        "source": source[picked],
        "labelled": len(pool_c),  # labelled candidates, including any no view could use
    }
