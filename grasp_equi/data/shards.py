"""The dataset on disk: ``shard_XXXXX.npz`` files (plain arrays, no pickles), a manifest and splits.

One shard holds several objects, each with several clouds (complete or partial views), each
cloud with its own labelled grasps. Ragged data is flattened with offsets:

=====================  ==========================  ==============================================
key                    shape / dtype               meaning
=====================  ==========================  ==============================================
points, normals        [P, 3] float32              all clouds' points and true outward normals
cloud_offsets          [C + 1] int64               cloud c is ``points[off[c]:off[c + 1]]``
cloud_partial          [C] bool                    single-view partial cloud (else complete)
cloud_object           [C] int32                   index into the object arrays
cloud_camera           [C, 3] float32              camera position (NaN for complete clouds)
object_id, object_family  [O] str                  unique id (``family-index``), family name
object_center          [O, 3] float32              centre of mass (wrench origin)
object_radius, object_mass  [O] float32            characteristic radius (m), mass (kg)
grasp_cloud            [G] int32                   cloud each grasp belongs to
grasp_offsets          [G + 1] int64               grasp g's contacts are ``contacts[off[g]:off[g + 1]]``
contacts, contact_normals  [sum K, 3] float32      true surface contacts and outward normals
labels                 [G] float32                 robust P(force closure), the training target
epsilon                [G] float32                 Ferrari-Canny epsilon of the nominal grasp
num_contacts           [G] int8                    K
grasp_source           [G] int8                    index into ``source_names`` (which sampler)
source_names           [S] str
meta                   [] str                      JSON: shard index, config hash, skipped meshes
=====================  ==========================  ==============================================
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SHARD_PATTERN = "shard_{:05d}.npz"
SHARD_NAME = re.compile(r"shard_\d{5,}\.npz")


@dataclass
class CloudSample:
    """One cloud with its labelled grasps, as the trainer consumes it."""

    points: np.ndarray  # (N, 3) float32
    normals: np.ndarray  # (N, 3) float32, true normals of the sampled points
    partial: bool
    family: str
    object_id: str
    grasps: list[np.ndarray]  # G arrays of (K, 3) float32 contacts
    labels: np.ndarray  # (G,) float32 robust P(force closure)
    epsilon: np.ndarray  # (G,) float32 Ferrari-Canny epsilon of the nominal grasp
    num_contacts: np.ndarray  # (G,) int
    contact_normals: list[np.ndarray] = field(default_factory=list)  # G arrays of (K, 3) true normals
    center: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))  # object centre of mass
    radius: float = 0.0  # object radius (m)
    camera: np.ndarray | None = None  # (3,) camera position of a partial view
    sources: list[str] = field(default_factory=list)  # sampler of each grasp
    # (G,) float32 P(held) from physics trials (``grasp-equi label-physics``); NaN where not simulated,
    # None when the shard has no physics labels
    p_held: np.ndarray | None = None


def shard_path(out_dir, index: int) -> Path:
    return Path(out_dir) / SHARD_PATTERN.format(index)


def write_shard(path, arrays: dict, meta: dict) -> None:
    """Write atomically (temp file + rename) so an interrupted run never leaves half a shard."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial")  # never matches the shard pattern readers look for
    with open(tmp, "wb") as handle:
        np.savez(handle, meta=np.array(json.dumps(meta)), **arrays)
    os.replace(tmp, path)


def read_shard(path) -> dict:
    """All arrays of a shard (``meta`` parsed from JSON); ``ValueError`` for a broken file."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except Exception as err:  # zip/format errors of a truncated or foreign file
        raise ValueError(f"{path}: not a readable shard ({type(err).__name__}: {err})") from None
    if "meta" not in arrays:
        raise ValueError(f"{path}: not a grasp_equi shard (no meta)")
    arrays["meta"] = json.loads(str(arrays["meta"]))
    return arrays


def shard_meta(path) -> dict | None:
    """A shard's metadata, or None when the file is missing or unreadable (to be redone)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return json.loads(str(data["meta"]))
    except Exception:
        return None


def samples_from_shard(arrays: dict, families=None, p_held: np.ndarray | None = None) -> list[CloudSample]:
    """Split one shard's flat arrays into ``CloudSample`` objects (optionally only ``families``);
    ``p_held`` ``[G]``: the shard's physics labels (``read_physics_labels``), if any."""
    keep = None if families is None else set(families)
    cloud_off, grasp_off = arrays["cloud_offsets"], arrays["grasp_offsets"]
    grasp_cloud = arrays["grasp_cloud"]
    order = np.argsort(grasp_cloud, kind="stable")
    bounds = np.searchsorted(grasp_cloud[order], np.arange(len(cloud_off)))  # [C + 1]
    source_names = [str(s) for s in arrays["source_names"]]
    samples = []
    for c in range(len(cloud_off) - 1):
        obj = int(arrays["cloud_object"][c])
        family = str(arrays["object_family"][obj])
        if keep is not None and family not in keep:
            continue
        g_idx = order[bounds[c]:bounds[c + 1]]  # grasps of this cloud
        grasps = [arrays["contacts"][grasp_off[g]:grasp_off[g + 1]] for g in g_idx]
        g_normals = [arrays["contact_normals"][grasp_off[g]:grasp_off[g + 1]] for g in g_idx]
        camera = arrays["cloud_camera"][c]
        samples.append(CloudSample(
            points=arrays["points"][cloud_off[c]:cloud_off[c + 1]],
            normals=arrays["normals"][cloud_off[c]:cloud_off[c + 1]],
            partial=bool(arrays["cloud_partial"][c]),
            family=family,
            object_id=str(arrays["object_id"][obj]),
            grasps=grasps,
            labels=arrays["labels"][g_idx],
            epsilon=arrays["epsilon"][g_idx],
            num_contacts=arrays["num_contacts"][g_idx].astype(np.int64),
            contact_normals=g_normals,
            center=arrays["object_center"][obj],
            radius=float(arrays["object_radius"][obj]),
            camera=None if not np.isfinite(camera).all() else camera,
            sources=[source_names[s] for s in arrays["grasp_source"][g_idx]],
            p_held=None if p_held is None else p_held[g_idx],
        ))
    return samples


PHYSICS_DIR = "physics"  # DATA/physics/shard_XXXXX.npz: P(held) per grasp of DATA/shard_XXXXX.npz


def grasp_fingerprint(arrays: dict) -> str:
    """SHA-1 of a shard's grasps (``grasp_offsets`` and ``contacts``): which version of the shard a physics
    label file was made for (a regenerated shard with as many grasps has other contacts)."""
    digest = hashlib.sha1()
    for key in ("grasp_offsets", "contacts"):
        digest.update(np.ascontiguousarray(arrays[key]).tobytes())
    return digest.hexdigest()


def read_physics_labels(shard: Path, fingerprint: str | None = None) -> np.ndarray | None:
    """``p_held`` ``[G]`` float32 of one shard (NaN where no trial ran), or None when it is not labelled
    (or its label file is unreadable: a run that stopped mid-write, to be redone; or foreign: not one
    row per grasp, not real numbers, or a rate outside [0, 1]; or, given the shard's ``grasp_fingerprint``, made for
    another version of the shard: label files record it since label version 3's second release)."""
    path = Path(shard).parent / PHYSICS_DIR / Path(shard).name
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            stored = f["p_held"]
            made_for = str(f["shard_sha"]) if "shard_sha" in f.files else None
    except Exception:  # truncated or foreign file: treat as unlabelled
        return None
    if stored.dtype.kind not in "fiu":  # text, complex, bool: not rates (float32 would parse or truncate them)
        return None
    p_held = stored.astype(np.float32)
    if fingerprint is not None and made_for is not None and made_for != fingerprint:
        return None
    rates = p_held[~np.isnan(p_held)] if p_held.ndim == 1 else None
    if rates is None or not ((rates >= 0.0) & (rates <= 1.0)).all():  # not a fraction of trials (inf too)
        return None
    return p_held


def unusable_physics_labels(data_dir) -> list[str]:
    """Names of the shards of ``data_dir`` whose physics label file exists but is not used: unreadable,
    foreign (``read_physics_labels``), or labels of an older version of the shard (another grasp count,
    or other grasps)."""
    names = []
    for path in shard_files(data_dir):
        if not (path.parent / PHYSICS_DIR / path.name).is_file():
            continue
        try:
            with np.load(path, allow_pickle=False) as f:
                arrays = {key: f[key] for key in ("labels", "grasp_offsets", "contacts")}
        except Exception:  # an unreadable shard: load_dataset names it
            continue
        p_held = read_physics_labels(path, grasp_fingerprint(arrays))
        if p_held is None or len(p_held) != len(arrays["labels"]):
            names.append(path.name)
    return names


def shard_files(data_dir) -> list[Path]:
    return sorted(p for p in Path(data_dir).glob("shard_*.npz") if SHARD_NAME.fullmatch(p.name))


def load_dataset(data_dir, families=None) -> list[CloudSample]:
    """Every cloud of a generated dataset (``grasp-equi generate --out DIR``), in shard order.

    ``families``: keep only clouds of these families (e.g. ``load_splits(dir)["train"]``).
    Raises ``ValueError`` when the folder holds no shards or a shard is unreadable.
    """
    files = shard_files(data_dir)
    if not files:
        raise ValueError(f"{data_dir}: no shard_*.npz files (run `grasp-equi generate --out {data_dir}`)")
    samples = []
    for path in files:
        arrays = read_shard(path)
        p_held = read_physics_labels(path, grasp_fingerprint(arrays))
        if p_held is not None and len(p_held) != len(arrays["labels"]):
            p_held = None  # labels of an older version of this shard
        samples.extend(samples_from_shard(arrays, families, p_held))
    return samples


def load_splits(data_dir) -> dict:
    """``{"train": [...], "val": [...], "test": [...]}`` family names of a dataset."""
    path = Path(data_dir) / "splits.json"
    if not path.is_file():
        raise ValueError(f"{data_dir}: no splits.json")
    return json.loads(path.read_text())


def load_manifest(data_dir) -> dict:
    path = Path(data_dir) / "manifest.json"
    if not path.is_file():
        raise ValueError(f"{data_dir}: no manifest.json")
    return json.loads(path.read_text())


def pack_shard(records: list[dict], source_names) -> dict:
    """Flatten per-object records (``worker.build_object``) into one shard's arrays."""
    records = [r for r in records if "skipped" not in r]
    clouds = [(obj_i, c) for obj_i, r in enumerate(records) for c in r["clouds"]]
    cloud_base = np.cumsum([0] + [len(r["clouds"]) for r in records])[:-1]  # first cloud of each object
    contacts = [c for r in records for c in r["contacts"]]
    cloud_sizes = [len(c[1][0]) for c in clouds]

    def cat(items, shape, dtype):
        return np.concatenate(items).astype(dtype) if items else np.zeros(shape, dtype)

    return {
        "points": cat([c[1][0] for c in clouds], (0, 3), np.float32),
        "normals": cat([c[1][1] for c in clouds], (0, 3), np.float32),
        "cloud_offsets": np.concatenate([[0], np.cumsum(cloud_sizes)]).astype(np.int64),
        "cloud_partial": np.array([c[1][2] for c in clouds], dtype=bool),
        "cloud_object": np.array([c[0] for c in clouds], dtype=np.int32),
        "cloud_camera": cat([c[1][3][None] for c in clouds], (0, 3), np.float32),
        "object_id": np.array([r["object_id"] for r in records], dtype=str),
        "object_family": np.array([r["family"] for r in records], dtype=str),
        "object_center": cat([r["center"][None] for r in records], (0, 3), np.float32),
        "object_radius": np.array([r["radius"] for r in records], dtype=np.float32),
        "object_mass": np.array([r["mass"] for r in records], dtype=np.float32),
        "grasp_cloud": cat([r["grasp_cloud"] + base for r, base in zip(records, cloud_base)], (0,), np.int32),
        "grasp_offsets": np.concatenate([[0], np.cumsum([len(c) for c in contacts])]).astype(np.int64),
        "contacts": cat(contacts, (0, 3), np.float32),
        "contact_normals": cat([c for r in records for c in r["contact_normals"]], (0, 3), np.float32),
        "labels": cat([r["labels"] for r in records], (0,), np.float32),
        "epsilon": cat([r["epsilon"] for r in records], (0,), np.float32),
        "num_contacts": np.array([len(c) for c in contacts], dtype=np.int8),
        "grasp_source": cat([r["source"] for r in records], (0,), np.int8),
        "source_names": np.array(list(source_names), dtype=str),
    }
