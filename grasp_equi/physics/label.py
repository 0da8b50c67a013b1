"""P(held) for a generated dataset's grasps, from randomised MuJoCo close/lift/shake trials.

For every object of a dataset made by ``grasp-equi generate`` from the procedural families, the
mesh is rebuilt from the manifest's seed (the generator's own ``make_object`` call), and each
grasp runs ``trials`` times (K = 2: the parallel-jaw ``trial.GraspSimulator``; K = 3..5: the
``fingertips.FingertipSimulator`` hand), each trial under its own draw of:
friction mu ~ U(0.3, 1.0), object density x U(0.5, 2.0), grip force ~ U(20, 60) N per finger,
and contact noise (each contact moved by N(0, 1 mm) per axis). One draw of the physical
parameters per (object, trial index) is compiled once and runs all of that object's grasps.
P(held) = held / executed trials; NaN where no trial could be executed (the open gripper
collides, the grasp is too wide, a finger lands elsewhere), for K > 5 and
for an object MuJoCo cannot compile (reported by name, one line, in the summary's ``failed_objects``).

Output: ``DATA/physics/shard_XXXXX.npz`` per shard (``p_held`` [G] float32, ``executed`` and
``held`` [G] int8 counts), written atomically, so a stopped run resumes at the next unfinished
shard; ``DATA/physics/summary.json`` holds the settings and the throughput. Deterministic for a
seed whatever the number of workers (one random stream per shard and object).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from grasp_equi.data.shards import PHYSICS_DIR, SHARD_NAME, grasp_fingerprint, read_physics_labels
from grasp_equi.fileio import json_text

from .jaw import MAX_FINGERS

LABEL_VERSION = 3  # 2: K = 3..5 grasps with the fingertip hand; 3: its light-object and reset fixes
MU_RANGE = (0.3, 1.0)
DENSITY_SCALE = (0.5, 2.0)
GRIP_FORCE_RANGE = (20.0, 60.0)  # N per finger
CONTACT_NOISE = 0.001  # m, per axis


@dataclass(frozen=True)
class LabelSettings:
    trials: int = 4
    seed: int = 0

    def key(self) -> dict:
        return {"version": LABEL_VERSION, "trials": self.trials, "seed": self.seed, "mu": MU_RANGE,
                "density_scale": DENSITY_SCALE, "grip_force": GRIP_FORCE_RANGE, "contact_noise": CONTACT_NOISE}


def output_dir(data: Path) -> Path:
    return Path(data) / PHYSICS_DIR


def _object_index(object_id: str) -> int:
    """The generator's object index from an id like ``box-000123``."""
    try:
        return int(str(object_id).rsplit("-", 1)[1])
    except (IndexError, ValueError):
        raise ValueError(f"object id {object_id!r} is not a procedural object (family-index)") from None


def rebuild_object(family: str, object_id: str, dataset_seed: int):
    """The mesh object the generator made for ``object_id`` (its first random draws, same seed)."""
    from grasp_equi.data.objects import make_object

    index = _object_index(object_id)
    return make_object(family, np.random.default_rng([dataset_seed, index]), name=f"{family}-{index:06d}")


def draw_conditions(rng: np.random.Generator, base_mass: float):
    """One trial's physical parameters: ``(JawSpec, mass)``."""
    from .jaw import JawSpec

    spec = replace(JawSpec(), mu=float(rng.uniform(*MU_RANGE)), grip_force=float(rng.uniform(*GRIP_FORCE_RANGE)))
    return spec, base_mass * float(rng.uniform(*DENSITY_SCALE))


def label_object(mesh, mass: float, contacts: list[np.ndarray], settings: LabelSettings,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(executed [G], held [G])`` trial counts for ``contacts`` (each ``(K, 3)``, mesh frame) on one object:
    K = 2 with the parallel-jaw gripper, K = 3..5 with the fingertip hand."""
    from .fingertips import FingertipSimulator
    from .pieces import convex_pieces
    from .trial import GraspSimulator

    pieces = convex_pieces(mesh)  # decomposed once, shared by every variant
    executed = np.zeros(len(contacts), dtype=np.int8)
    held = np.zeros(len(contacts), dtype=np.int8)
    needs_hand = any(len(c) != 2 for c in contacts)
    for _ in range(settings.trials):
        spec, variant_mass = draw_conditions(rng, mass)
        jaws = GraspSimulator(mesh, variant_mass, spec, pieces=pieces) if any(len(c) == 2 for c in contacts) else None
        hand = FingertipSimulator(mesh, variant_mass, spec, pieces=pieces) if needs_hand else None
        for g, grasp in enumerate(contacts):
            noisy = grasp + rng.normal(scale=CONTACT_NOISE, size=grasp.shape)  # [K, 3]
            try:
                result = (jaws if len(grasp) == 2 else hand).trial(noisy)
            except ValueError:  # contacts that define no closing direction: this trial is not executed
                continue
            if result.held is not None:
                executed[g] += 1
                held[g] += int(result.held)
    return executed, held


def label_shard(shard: Path, out: Path, dataset_seed: int, settings: LabelSettings) -> dict:
    """Label one shard's grasps (K = 2..5) and write ``out`` atomically; returns counts and timings."""
    from grasp_equi.data.shards import read_shard
    from grasp_equi.physics.validate import FALLBACK_DENSITY

    start_cpu, start = time.process_time(), time.perf_counter()
    data = read_shard(shard)
    num_grasps = len(data["grasp_cloud"])
    executed = np.zeros(num_grasps, dtype=np.int8)
    held = np.zeros(num_grasps, dtype=np.int8)
    grasp_object = data["cloud_object"][data["grasp_cloud"]]  # [G]
    simulated = (data["num_contacts"] >= 2) & (data["num_contacts"] <= MAX_FINGERS)  # [G]: every K the hands take
    shard_index = int(data["meta"]["shard"])  # the generator's shard number: one random stream per shard
    trials, failed = 0, []
    for o, (object_id, family) in enumerate(zip(data["object_id"], data["object_family"])):
        rows = np.flatnonzero((grasp_object == o) & simulated)  # [g]
        if len(rows) == 0:
            continue
        obj = rebuild_object(str(family), str(object_id), dataset_seed)
        mass = float(obj.mass) if obj.mass > 0 else float(FALLBACK_DENSITY * obj.mesh.convex_hull.volume)
        offsets = data["grasp_offsets"]
        contacts = [data["contacts"][offsets[r]:offsets[r + 1]].astype(np.float64) for r in rows]  # each [K, 3]
        rng = np.random.default_rng([settings.seed, shard_index, o])
        try:
            executed[rows], held[rows] = label_object(obj.mesh, mass, contacts, settings, rng)
        except (ValueError, RuntimeError) as err:  # MuJoCo refused the scene: this object stays unlabelled
            failed.append(f"{object_id}: {str(err).splitlines()[0]}")
            continue
        trials += len(rows) * settings.trials
    with np.errstate(invalid="ignore", divide="ignore"):
        p_held = np.where(executed > 0, held / np.maximum(executed, 1), np.nan).astype(np.float32)
    p_held[~simulated] = np.nan
    tmp = out.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, p_held=p_held, executed=executed, held=held, meta=np.array(json.dumps(settings.key())),
             shard_sha=np.array(grasp_fingerprint(data)))
    os.replace(tmp, out)
    return {"shard": shard.name, "grasps": int(simulated.sum()), "trials": trials, "failed_objects": failed,
            "cpu_s": time.process_time() - start_cpu, "wall_s": time.perf_counter() - start}


def _state(out: Path, settings: LabelSettings, shard: Path | None = None) -> str:
    """What a label file is worth for its shard (default: the shard of that name beside its ``physics``
    folder): ``"done"`` (same settings, made for this version of the shard; files from before the shard
    fingerprint was recorded are matched by settings alone), ``"stale"`` (other settings or another version
    of the shard: only ``--force`` replaces it) or ``"unreadable"`` (missing, truncated, foreign: nothing to
    lose, the shard is labelled again)."""
    from grasp_equi.data.shards import read_shard

    shard = shard if shard is not None else out.parent.parent / out.name
    try:
        with np.load(out, allow_pickle=False) as f:
            meta = json.loads(str(f["meta"]))
            made_for = str(f["shard_sha"]) if "shard_sha" in f.files else None
            rates = "p_held" in f.files
    except Exception:  # BadZipFile, EOFError, KeyError, ...
        return "unreadable"
    if not rates:  # foreign
        return "unreadable"
    if meta != json.loads(json.dumps(settings.key())):
        return "stale"
    try:
        fits = made_for is None or not shard.is_file() or made_for == grasp_fingerprint(read_shard(shard))
    except Exception:  # an unreadable shard: load_dataset names it; its labels cannot be checked
        return "stale"
    return "done" if fits else "stale"


def _done(out: Path, settings: LabelSettings, shard: Path | None = None) -> bool:
    return _state(out, settings, shard) == "done"


def stale_shards(data: Path, settings: LabelSettings) -> list[str]:
    """Names of shards labelled with other settings or for another version of the shard (``--force``
    replaces them); an unreadable label file holds nothing to lose and is simply redone."""
    out_dir = output_dir(data)
    if not out_dir.is_dir():
        return []
    return sorted(p.name for p in out_dir.glob("shard_*.npz")
                  if SHARD_NAME.fullmatch(p.name) and _state(p, settings) == "stale")


def reuse_labels(source: Path, data: Path, settings: LabelSettings) -> tuple[int, int]:
    """Copy the label files of ``source`` (a ``physics`` folder, e.g. shipped with the repository) into
    ``data``'s where that shard has none yet and the file fits it (same settings, the shard's grasp
    fingerprint); never replaces a file. Returns ``(copied, not fitting)``. Each copy is atomic."""
    import shutil

    out_dir = output_dir(data)
    out_dir.mkdir(exist_ok=True)
    copied = unfit = 0
    for src in sorted(p for p in Path(source).glob("shard_*.npz") if SHARD_NAME.fullmatch(p.name)):
        target, shard = out_dir / src.name, Path(data) / src.name
        if target.exists():
            continue
        if not shard.is_file() or not _done(src, settings, shard):
            unfit += 1
            continue
        tmp = target.with_suffix(f".{os.getpid()}.tmp.npz")
        shutil.copyfile(src, tmp)
        os.replace(tmp, target)
        copied += 1
    return copied, unfit


def _job(args) -> dict:
    return label_shard(*args)


def label_dataset(data: Path, settings: LabelSettings, workers: int = 1, max_shards: int | None = None,
                  progress: bool = True) -> dict:
    """Label every unfinished shard of ``data`` (see the module docstring); returns the summary."""
    from tqdm import tqdm

    from grasp_equi.data.shards import SHARD_NAME, load_manifest

    manifest = load_manifest(data)
    arguments = manifest.get("arguments", "")
    if "'meshes': None" not in str(arguments) and "\"meshes\": null" not in str(arguments):
        raise ValueError(f"{data}: made from mesh files; label-physics rebuilds procedural objects only")
    out_dir = output_dir(data)
    out_dir.mkdir(exist_ok=True)
    shards = sorted(p for p in Path(data).iterdir() if SHARD_NAME.fullmatch(p.name))[:max_shards]
    todo = [s for s in shards if not _done(out_dir / s.name, settings)]
    jobs = [(s, out_dir / s.name, int(manifest["seed"]), settings) for s in todo]
    rows, start = [], time.perf_counter()
    bar = tqdm(total=len(jobs), desc="physics labels", unit="shard", disable=not progress)
    if workers == 1:
        results = map(_job, jobs)
    else:
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
        results = pool.map(_job, jobs)
    try:
        for row in results:
            rows.append(row)
            for line in row["failed_objects"]:  # one line each; their grasps stay NaN
                tqdm.write(f"{row['shard']}: not labelled: {line}")
            cpu_min = sum(r["cpu_s"] for r in rows) / 60
            bar.set_postfix(trials=sum(r["trials"] for r in rows),
                            per_cpu_min=f"{sum(r['trials'] for r in rows) / max(cpu_min, 1e-9):.0f}")
            bar.update(1)
    finally:
        bar.close()
        if workers != 1:
            pool.shutdown()
    summary = {"settings": settings.key(), "shards": len(shards), "labelled_now": len(rows),
               "kept": len(shards) - len(todo), "trials_now": sum(r["trials"] for r in rows),
               "cpu_minutes_now": sum(r["cpu_s"] for r in rows) / 60, "wall_s_now": time.perf_counter() - start,
               "workers": workers, "failed_objects": [f"{r['shard']}: {x}" for r in rows for x in r["failed_objects"]]}
    summary["trials_per_cpu_minute"] = summary["trials_now"] / max(summary["cpu_minutes_now"], 1e-9) if rows else None
    (out_dir / "summary.json").write_text(json_text(summary) + "\n")
    return summary


def load_p_held(data: Path, shard_name: str) -> np.ndarray | None:
    """``p_held`` [G] of one shard, or None when it is not labelled."""
    return read_physics_labels(Path(data) / shard_name)


__all__ = ["LabelSettings", "label_dataset", "label_shard", "load_p_held", "rebuild_object"]
