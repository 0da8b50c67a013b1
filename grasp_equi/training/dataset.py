"""Labelled clouds -> graph batches for training and validation.

The expensive per-cloud preprocessing (centring/scaling, farthest-point sampling, normal
estimation) runs once per cloud and is cached (in memory, optionally on disk as
safetensors); a training step only gathers grasps and collates. Normals are *estimated*
(``normals=None``), exactly as ``GraspScorer`` does at inference time, so the network never
trains on cleaner inputs than it will see.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from safetensors import safe_open
from tqdm import tqdm

from grasp_equi import keys
from grasp_equi.fileio import save_tensors
from grasp_equi.geometry import NeighbourIndex
from grasp_equi.graph import (PREPROCESS_VERSION, PreparedCloud, cloud_options, collate, contact_normals,
                              normalise_contacts, normalised_cloud, prepare_cloud, surface_orientation)
from grasp_equi.orientation import VERSION as ORIENTATION_VERSION
from grasp_equi.orientation import NUM_REFERENCE, SURFACE_RULES


@dataclass
class CloudRecord:
    """One preprocessed cloud with all its grasps (contacts in the cloud's normalised frame)."""

    cloud: PreparedCloud
    contacts: torch.Tensor  # [C, 3] float32, all grasps' contacts back to back
    contact_normals: torch.Tensor  # [C, 3] float32, the cloud's estimated outward normal at each contact
    num_contacts: np.ndarray  # [G] int64, K of each grasp
    offsets: np.ndarray  # [G + 1] int64, grasp g's contacts are contacts[offsets[g]:offsets[g+1]]
    labels: np.ndarray  # [G] float32, robust P(force closure)
    family: str
    object_id: str
    partial: bool
    p_held: np.ndarray | None = None  # [G] float32 P(held) from physics trials, NaN where not simulated

    @property
    def num_grasps(self) -> int:
        return len(self.labels)


def _fingerprint(samples: Sequence, options: dict) -> str:
    """Cheap identity of a sample list + preprocessing settings (``cloud_options``; guards a disk cache)."""
    orientation = options["orientation"]
    tag = f"/p{PREPROCESS_VERSION}/{orientation}" + ("" if orientation == "centroid" else f"-v{ORIENTATION_VERSION}")
    settings = "/".join(f"{key}={options[key]}" for key in sorted(options))
    h = hashlib.sha1(f"{settings}/{len(samples)}{tag}".encode())
    for s in samples:
        pts = np.ascontiguousarray(s.points, dtype=np.float32)
        h.update(f"{s.object_id}/{s.partial}/{pts.shape[0]}".encode())
        h.update(pts[:8].tobytes())
    return h.hexdigest()


def _prepared_cloud(sample, cached: PreparedCloud | None, options: dict):
    """``(cloud, index, orientation)`` of one sample: the cached cloud with its neighbour search
    and orientation rebuilt (the cache holds tensors only), or a fresh ``prepare_cloud``'s
    (``options``: ``cloud_options``)."""
    pts = torch.as_tensor(np.asarray(sample.points, dtype=np.float64))  # [N, 3]
    if cached is None:
        cloud = prepare_cloud(pts, None, **options)
        return cloud, cloud.index, cloud.orientation
    local_points = normalised_cloud(pts, None, options["max_points"])[0]  # [U, 3], prepare_cloud's frame
    index = NeighbourIndex(local_points)
    # the same (deterministic) orientation prepare_cloud built for the node normals
    orientation = options["orientation"]
    oriented = (surface_orientation(local_points, index, options["normal_k"], orientation,
                                    options["reference_sampling"], options["num_references"])
                if orientation in SURFACE_RULES else None)
    return cached, index, oriented


def _save_cache(path: Path, clouds: list[PreparedCloud], fingerprint: str) -> None:
    sizes = torch.tensor([c.node_pos.shape[0] for c in clouds])
    tensors = {
        "node_pos": torch.cat([c.node_pos for c in clouds]).contiguous(),  # [sum M, 3]
        "node_normal": torch.cat([c.node_normal for c in clouds]).contiguous(),  # [sum M, 3]
        "node_axis": torch.cat([c.axis() for c in clouds]).contiguous(),  # [sum M, 3]
        "sizes": sizes,  # [B]
        "center": torch.stack([c.center for c in clouds]),  # [B, 3] float64
        "scale": torch.stack([c.scale for c in clouds]),  # [B] float64
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # concurrent runs sharing a cache never collide
    save_tensors(tensors, tmp, metadata={"fingerprint": fingerprint})
    tmp.replace(path)


def _load_cache(path: Path, fingerprint: str) -> list[PreparedCloud] | None:
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            if (f.metadata() or {}).get("fingerprint") != fingerprint:
                return None
            t = {name: f.get_tensor(name) for name in f.keys()}
    except Exception:  # a corrupt cache is simply rebuilt
        return None
    pos = torch.split(t["node_pos"], t["sizes"].tolist())
    nrm = torch.split(t["node_normal"], t["sizes"].tolist())
    axis = torch.split(t["node_axis"], t["sizes"].tolist())
    return [PreparedCloud(p, n, c, s, node_axis=a) for p, n, a, c, s in zip(pos, nrm, axis, t["center"], t["scale"])]


def prepare_records(samples: Sequence, num_nodes: int, normal_k: int = 16, cache: Path | None = None,
                    progress: bool = True, orientation: str = "centroid",
                    contact_normal_source: str = "pca", **cloud_settings) -> list[CloudRecord]:
    """Preprocess every ``CloudSample`` once (or read the result from ``cache``).

    ``orientation`` is ``ModelConfig.normal_orientation`` (how normals get their sign),
    ``contact_normal_source`` its ``contact_normal_source`` (the contact normals are recomputed
    on every call, only the clouds are cached); ``cloud_settings`` the rest of ``prepare_cloud``'s
    options (``max_points``, ``reference_sampling``, ``num_references``; defaults: older models')."""
    if not samples:
        return []
    options = {"num_nodes": num_nodes, "normal_k": normal_k, "orientation": orientation, "max_points": 0,
               "reference_sampling": "radius_ranks", "num_references": NUM_REFERENCE, **cloud_settings}
    fingerprint = _fingerprint(samples, options)
    cached = _load_cache(Path(cache), fingerprint) if cache else None
    records = []
    for i, s in enumerate(tqdm(samples, desc="preprocess clouds", disable=not progress, unit="cloud")):
        cloud, index, oriented = _prepared_cloud(s, None if cached is None else cached[i], options)
        # thousands of clouds: no search trees or orientations held in memory beyond this one
        cloud.index, cloud.orientation, cloud.local, cloud.node_index = None, None, None, None
        grasps = [np.asarray(g, dtype=np.float64) for g in s.grasps]
        counts = np.array([len(g) for g in grasps], dtype=np.int64)  # [G]
        flat = torch.as_tensor(np.concatenate(grasps)) if grasps else torch.zeros(0, 3, dtype=torch.float64)
        local = normalise_contacts(flat, cloud, torch.float64)  # [C, 3], float64 like the scorer's search
        normals = contact_normals(local, index, normal_k, oriented, contact_normal_source)  # [C, 3]
        local = local.to(torch.float32)
        records.append(CloudRecord(
            cloud=cloud, contacts=local, contact_normals=normals,
            num_contacts=counts,
            offsets=np.concatenate([[0], np.cumsum(counts)]),
            labels=np.asarray(s.labels, dtype=np.float32), family=str(s.family),
            object_id=str(s.object_id), partial=bool(s.partial),
            p_held=None if getattr(s, "p_held", None) is None else np.asarray(s.p_held, dtype=np.float32),
        ))
    if cache and cached is None:
        _save_cache(Path(cache), [r.cloud for r in records], fingerprint)
    return records


def prepare_records_for(samples: Sequence, config, progress: bool = True, cache: Path | None = None) -> list[CloudRecord]:
    """``prepare_records`` with the preprocessing a model of ``ModelConfig`` ``config`` was trained with
    (``cache``: as in ``prepare_records``)."""
    options = cloud_options(config)
    return prepare_records(samples, options.pop("num_nodes"), options.pop("normal_k"), cache, progress,
                           contact_normal_source=config.contact_normal_source, **options)


def _rotate(cloud: PreparedCloud, contacts: torch.Tensor, normals: torch.Tensor, rot: torch.Tensor):
    """Rotate a prepared cloud, its contacts and their normals about the centroid (the origin)."""
    # Preprocessing commutes with rotations (invariant FPS start, rotation-equivariant normal signs),
    # so rotating the prepared tensors equals preprocessing a rotated input cloud.
    return (PreparedCloud(cloud.node_pos @ rot.T, cloud.node_normal @ rot.T, cloud.center, cloud.scale,
                          node_axis=None if cloud.node_axis is None else cloud.node_axis @ rot.T),
            contacts @ rot.T, normals @ rot.T)


def random_rotations(count: int, rng: np.random.Generator) -> torch.Tensor:
    """``[count, 3, 3]`` uniformly random proper rotations (QR of Gaussian matrices)."""
    q, r = np.linalg.qr(rng.normal(size=(count, 3, 3)))
    q = q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]  # unique, Haar-distributed
    q[np.linalg.det(q) < 0, :, 0] *= -1  # proper rotations only
    return torch.as_tensor(q, dtype=torch.float32)


def make_batch(records: Sequence[CloudRecord], picks: Sequence[tuple[int, np.ndarray]],
               rotations: torch.Tensor | None = None, device: torch.device | str = "cpu"):
    """Collate ``picks`` = ``[(record index, grasp indices), ...]`` into ``(batch, labels [G])``.

    ``rotations`` ``[len(picks), 3, 3]`` optionally rotates each cloud with its grasps
    (augmentation for the non-equivariant baseline, or evaluation under rotation).
    """
    clouds, contacts, normals, labels = [], [], [], []
    for i, (rec_idx, grasp_idx) in enumerate(picks):
        rec = records[rec_idx]
        rows = torch.as_tensor(np.concatenate([np.arange(rec.offsets[g], rec.offsets[g + 1]) for g in grasp_idx]))
        c, n = rec.contacts[rows], rec.contact_normals[rows]  # [C_b, 3], [C_b, 3]
        cloud = rec.cloud
        if rotations is not None:
            cloud, c, n = _rotate(cloud, c, n, rotations[i])
        clouds.append(cloud)
        sizes = rec.num_contacts[grasp_idx].tolist()
        contacts.append(list(torch.split(c, sizes)))
        normals.append(list(torch.split(n, sizes)))
        labels.append(torch.as_tensor(rec.labels[grasp_idx]))
    batch = collate(clouds, contacts, normals)
    batch[keys.GRASP_LABEL] = torch.cat(labels)  # [G]
    return {k: v.to(device) for k, v in batch.items()}


def class_weights(records: Sequence[CloudRecord], threshold: float = 0.5) -> tuple[float, float]:
    """``(w_stable, w_unstable)`` so both classes weigh half of the loss in expectation."""
    return label_weights(np.concatenate([r.labels for r in records]) if records else np.zeros(0), threshold)


def label_weights(labels: np.ndarray, threshold: float = 0.5) -> tuple[float, float]:
    """``class_weights`` for an array of labels ``[G]``."""
    labels = np.asarray(labels)
    frac = float((labels >= threshold).mean()) if len(labels) else 0.5
    frac = min(max(frac, 0.02), 0.98)  # a degenerate split must not explode the weights
    return 0.5 / frac, 0.5 / (1.0 - frac)


def describe(records: Sequence[CloudRecord]) -> dict:
    """Counts for logs and the model card."""
    labels = np.concatenate([r.labels for r in records]) if records else np.zeros(0)
    ks = np.concatenate([r.num_contacts for r in records]) if records else np.zeros(0)
    return {
        "clouds": len(records),
        "partial_clouds": int(sum(r.partial for r in records)),
        "grasps": int(len(labels)),
        "stable_fraction": float((labels >= 0.5).mean()) if len(labels) else None,
        "grasps_per_k": {int(k): int((ks == k).sum()) for k in np.unique(ks)},
        "families": sorted({r.family for r in records}),
    }
