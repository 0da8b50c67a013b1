"""``grasp-equi generate``: procedural families or a folder of meshes -> a labelled, sharded dataset.

Objects are split into shards of ``--objects-per-shard``; a shard is written (atomically) when
all of its objects are done, so an interrupted run resumes where it stopped (finished shards
are skipped). Objects run in parallel over ``--workers`` processes and each is seeded from
``(seed, object index)``, so the output does not depend on the worker count. At the end the
manifest (counts, positive rate per family and K, throughput, skipped meshes) is rebuilt from
all shards on disk. Heavy imports happen inside ``run`` so ``grasp-equi --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import shutil
from pathlib import Path

from grasp_equi.cli_types import nonneg_float, nonneg_int, positive_float, positive_int, unit_fraction
from grasp_equi.data.units import UNITS

DEFAULT_OUT = "data/default"
# 160 objects per family: the shipped model's data. Objects are seeded by index, so objects 0..1199
# equal the first 1,200-object datasets' and a larger run into the same folder resumes a smaller one.
DEFAULT_OBJECTS = 2400


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_argument_group("objects")
    src.add_argument("--families", nargs="+", metavar="NAME",
                     help="procedural families to use (default: all built-in families)")
    src.add_argument("--meshes", metavar="DIR", help="folder of meshes (OBJ/STL/PLY/GLB/OFF, searched recursively; "
                     "sub-folder names become family names) instead of procedural families")
    src.add_argument("--units", default="m", choices=sorted(UNITS), help="units of --meshes files")
    src.add_argument("--objects", type=positive_int, default=None,
                     help=f"number of objects (default: {DEFAULT_OBJECTS} procedural, or every mesh in --meshes)")
    data = parser.add_argument_group("clouds and grasps")
    data.add_argument("--views", type=positive_int, default=4, help="clouds per object (default 4)")
    data.add_argument("--partial-fraction", type=unit_fraction, default=0.75,
                      help="fraction of views that are single-view partial clouds (default 0.75; >= 1 complete)")
    data.add_argument("--grasps-per-view", type=positive_int, default=24, help="labelled grasps per cloud (default 24)")
    data.add_argument("--points", type=positive_int, default=2048, help="max points stored per cloud (default 2048)")
    data.add_argument("--k-mix", default="2:0.6,3:0.15,4:0.13,5:0.12",
                      help="fraction of grasps with each contact count K (default 2:0.6,3:0.15,4:0.13,5:0.12)")
    data.add_argument("--max-width", type=positive_float, default=0.085, help="parallel-jaw max opening, m (default 0.085)")
    data.add_argument("--noise", type=nonneg_float, default=0.001, help="depth noise sigma of partial views, m")
    data.add_argument("--dropout", type=unit_fraction, default=0.1, help="fraction of partial-view points dropped")
    lab = parser.add_argument_group("labels")
    lab.add_argument("--mu", type=positive_float, default=0.5, help="friction coefficient (default 0.5)")
    lab.add_argument("--samples", type=positive_int, default=24, help="perturbations per robust label (default 24)")
    lab.add_argument("--sigma", type=nonneg_float, default=0.003, help="contact position noise, m (default 0.003)")
    lab.add_argument("--mu-sigma", type=nonneg_float, default=0.1, help="friction noise (default 0.1)")
    run_group = parser.add_argument_group("run")
    run_group.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    run_group.add_argument("--workers", type=positive_int, default=1, help="worker processes (default 1)")
    run_group.add_argument("--seed", type=nonneg_int, default=0, help="random seed (default 0)")
    run_group.add_argument("--objects-per-shard", type=positive_int, default=16, help="objects per shard file (default 16)")
    run_group.add_argument("--resume", action="store_true", help="continue the run in --out (a new one if there is none)")
    run_group.add_argument("--force", action="store_true", help="delete the dataset already in --out and start over")
    run_group.add_argument("--quiet", action="store_true", help="no progress bar")


def _parse_k_mix(text: str) -> dict[int, float]:
    mix = {}
    try:
        for part in text.split(","):
            k, frac = part.split(":")
            mix[int(k)] = float(frac)
    except ValueError:
        raise ValueError(f"--k-mix must look like 2:0.6,3:0.2,5:0.2; got {text!r}") from None
    if not mix or min(mix) < 2 or min(mix.values()) < 0 or sum(mix.values()) <= 0:
        raise ValueError(f"--k-mix needs K >= 2 and non-negative fractions; got {text!r}")
    return mix


def plan_tasks(args) -> list[tuple[int, str, str | None]]:
    """``(object index, family, mesh path or None)`` for every object of the dataset."""
    from grasp_equi.data.objects import FAMILIES, MESH_SUFFIXES

    if args.meshes:
        root = Path(args.meshes)
        if not root.is_dir():
            raise FileNotFoundError(f"--meshes {root}: no such folder")
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in MESH_SUFFIXES)
        if not files:
            raise ValueError(f"--meshes {root}: no mesh files ({', '.join(MESH_SUFFIXES)})")
        files = files[: args.objects] if args.objects else files
        fams = [p.parent.relative_to(root).as_posix().replace("/", "_") or "mesh" for p in files]
        return [(i, fam if fam != "." else "mesh", str(p)) for i, (fam, p) in enumerate(zip(fams, files))]
    families = args.families or list(FAMILIES)
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise ValueError(f"--families: unknown {unknown}; choose from {', '.join(FAMILIES)}")
    count = DEFAULT_OBJECTS if args.objects is None else args.objects
    return [(i, families[i % len(families)], None) for i in range(count)]


def make_splits(families: list[str], seed: int) -> dict:
    """Held-out families: the built-in default split, or (mesh folders) one val + one test family."""
    from grasp_equi.data.objects import DEFAULT_SPLITS, FAMILIES

    fams = sorted(set(families))
    if set(fams) <= set(FAMILIES):
        return {s: [f for f in DEFAULT_SPLITS[s] if f in fams] for s in ("train", "val", "test")}
    if len(fams) < 3:
        return {"train": fams, "val": [], "test": []}
    import numpy as np

    order = np.random.default_rng(seed).permutation(len(fams))
    test, val = fams[order[0]], fams[order[1]]
    return {"train": [f for f in fams if f not in (test, val)], "val": [val], "test": [test]}


def _task(job):
    """Pool entry point: one object, timed (seconds of this worker's time)."""
    from grasp_equi.data.worker import build_object

    index, family, mesh, cfg = job
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        record = build_object(index, family, mesh, cfg)
    except Exception as err:  # one bad object must not end a long run: skip it, say why
        record = {"index": index, "skipped": f"{type(err).__name__}: {err}", "path": mesh or f"{family}-{index}"}
    record["seconds"] = time.perf_counter() - start
    record["cpu_seconds"] = time.process_time() - cpu_start  # all threads of this worker
    return record


def _prepare_out(out: Path, resume: bool, force: bool) -> bool:
    """Check ``--out`` against ``--resume``/``--force``; True when this run creates the folder.

    Raises ValueError naming the folder and the flag that would let the run use it."""
    from grasp_equi.data.shards import SHARD_PATTERN

    if resume and force:
        raise ValueError("--resume and --force contradict each other: continue the run or start over, not both")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: exists and is not a folder")
    if not out.exists():
        return True  # (--resume with nothing to continue starts a new run)
    earlier = sorted(out.glob(SHARD_PATTERN.replace("{:05d}", "*").replace("{}", "*"))) + \
        [p for p in (out / "manifest.json", out / "splits.json") if p.exists()]
    if earlier and not (resume or force):
        raise ValueError(f"--out {out} already holds a dataset ({len(earlier)} files); --resume continues it, "
                         "--force deletes it and starts over, or choose a new --out")
    if force:
        for path in earlier + sorted(out.glob(".shard_*.partial")):
            path.unlink()
    return False


def run(args) -> int:
    """Generate the dataset into ``--out``; 0 on success. A failure in a folder this run created
    removes the folder (an interrupted run keeps it for ``--resume``)."""
    out = Path(args.out)
    created = _prepare_out(out, args.resume, args.force)
    try:
        return _generate(args, out)
    except Exception:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise


def _generate(args, out: Path) -> int:
    from tqdm import tqdm

    from grasp_equi.data.labels import SOURCES
    from grasp_equi.data.manifest import build_manifest
    from grasp_equi.data.shards import pack_shard, shard_meta, shard_path, write_shard
    from grasp_equi.data.worker import GenerateConfig

    cfg = GenerateConfig(seed=args.seed, views=args.views, grasps_per_view=args.grasps_per_view, points=args.points,
                         partial_fraction=args.partial_fraction, k_mix=_parse_k_mix(args.k_mix),
                         max_width=args.max_width, mu=args.mu, samples=args.samples, sigma=args.sigma,
                         mu_sigma=args.mu_sigma, noise=args.noise, dropout=args.dropout, units=args.units)
    tasks = plan_tasks(args)
    out.mkdir(parents=True, exist_ok=True)
    (out / "splits.json").write_text(json.dumps(make_splits([t[1] for t in tasks], args.seed), indent=2) + "\n")
    per = args.objects_per_shard
    shards = [tasks[i:i + per] for i in range(0, len(tasks), per)]
    digest = cfg.digest()
    pending = []
    for s, shard_tasks in enumerate(shards):
        meta = shard_meta(shard_path(out, s))
        if meta is None:
            pending.append(s)
        elif meta.get("config") != digest or meta.get("objects") != [t[0] for t in shard_tasks]:
            raise ValueError(f"--out {out} holds shards made with other settings ({shard_path(out, s).name}); "
                             "--force deletes them and starts over, or choose a new --out")
    jobs = [(*t, cfg) for s in pending for t in shards[s]]
    print(f"grasp-equi generate: {len(tasks)} objects in {len(shards)} shards, {len(shards) - len(pending)} done, "
          f"{len(jobs)} objects to go, {args.workers} worker(s) -> {out}", flush=True)
    start = time.perf_counter()
    waiting = {s: {} for s in pending}
    shard_of = {t[0]: s for s in pending for t in shards[s]}
    labelled = 0
    bar = tqdm(total=len(jobs), unit="obj", disable=args.quiet, smoothing=0.05)

    def finish(record):
        nonlocal labelled
        s = shard_of[record["index"]]
        waiting[s][record["index"]] = record
        labelled += record.get("labelled", 0)
        bar.update(1)
        bar.set_postfix(grasps=labelled, per_min=int(labelled / max(time.perf_counter() - start, 1e-9) * 60))
        if len(waiting[s]) == len(shards[s]):
            records = [waiting[s][t[0]] for t in shards[s]]
            skipped = [{"path": r["path"], "reason": r["skipped"]} for r in records if "skipped" in r]
            for item in skipped:
                tqdm.write(f"skipped {item['path']}: {item['reason']}", file=sys.stderr)
            meta = {"shard": s, "config": digest, "objects": [t[0] for t in shards[s]], "skipped": skipped,
                    "seconds": float(sum(r["seconds"] for r in records)),
                    "cpu_seconds": float(sum(r["cpu_seconds"] for r in records)),
                    "labelled": int(sum(r.get("labelled", 0) for r in records))}
            write_shard(shard_path(out, s), pack_shard(records, SOURCES), meta)
            del waiting[s]

    if args.workers == 1:
        for job in jobs:
            finish(_task(job))
    else:
        import multiprocessing as mp

        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, "1")  # one core per worker process
        with mp.get_context("spawn").Pool(args.workers) as pool:
            for record in pool.imap_unordered(_task, jobs, chunksize=1):
                finish(record)
    bar.close()
    wall = time.perf_counter() - start
    manifest = build_manifest(out, cfg, tasks, run_seconds=wall, workers=args.workers, args=vars(args))
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    totals = manifest["totals"]
    if not totals["objects"]:
        first = manifest["skipped"][0] if manifest["skipped"] else {"path": "?", "reason": "?"}
        raise ValueError(f"every object was skipped ({len(manifest['skipped'])}), e.g. {first['path']}: "
                         f"{first['reason']}" + (" (check --units)" if args.meshes else ""))
    unused = totals["labelled_candidates"] - totals["grasps"]  # a partial view keeps only grasps it shows
    kept = f" ({unused} of {totals['labelled_candidates']} candidates had a contact no view showed)" if unused > 0 else ""
    print(f"done in {wall:.0f} s: {totals['grasps']} grasps{kept} on {totals['clouds']} clouds of {totals['objects']} "
          f"objects, {100 * totals['positive_rate']:.1f} % stable, {manifest['throughput']['grasps_per_min_per_core']:.0f} "
          f"labelled grasps/min/core, {len(manifest['skipped'])} meshes skipped -> {out / 'manifest.json'}")
    return 0
