"""``grasp-equi train``: train a grasp stability model on a generated dataset.

Splits are by family (``DATA/splits.json``): the model learns on the train families, early
stopping watches the val families, and the test families are only touched by ``evaluate``
(and by ``--publish``, which evaluates the best checkpoint there and writes the model card).

An existing run folder is never replaced silently: ``--resume`` continues it, ``--force`` starts
over in it; likewise ``--publish`` refuses to replace published weights without ``--force``.
torch is imported only when the command runs, so ``--help`` is fast.

Multi-GPU: launch the same command with ``torchrun --nproc_per_node=N -m grasp_equi.train ...``;
each process trains on its own shard of the clouds under DDP and rank 0 validates and writes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

from grasp_equi.cli_types import device, nonneg_float, nonneg_int, positive_float, positive_int, unit_fraction
from grasp_equi.training.settings import TrainSettings

# Files a run folder holds (``--force`` removes these before a new run; the cloud cache stays).
RUN_FILES = ("best.safetensors", "last.safetensors", "resume.safetensors", "metrics.csv", "summary.json")

# The shipped model's hyper-parameters (``make train`` uses these defaults). Smaller than
# ``ModelConfig``'s defaults so that it trains in hours on a 2-core CPU: M = 128 nodes and a
# 0.4 radius (~11 neighbours per node instead of ~38) cut a training step ~10x.
SHIPPED_MODEL = dict(num_nodes=128, irreps_hidden="24x0e + 6x1o + 2x2e", radius=0.4, avg_neighbors=8.0,
                     contact_normals=True, contact_normal_sign="centroid", normal_orientation="harmonic",
                     head="invariant", contact_normal_source="reference")
# The PointNet baseline shares M, the radius and the training budget.
BASELINE_MODEL = dict(architecture="pointnet", num_nodes=128, radius=0.4, baseline_width=64)


def _parse_override(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--set expects KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = TrainSettings()
    parser.add_argument("--data", required=True, type=Path, help="dataset directory (from `grasp-equi generate`)")
    parser.add_argument("--out", required=True, type=Path, help="run directory (checkpoints, metrics.csv)")
    parser.add_argument("--device", type=device, default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1 ...")
    parser.add_argument("--architecture", choices=["equivariant", "pointnet"], default="equivariant",
                        help="equivariant (shipped) or the non-equivariant PointNet baseline")
    parser.add_argument("--set", dest="overrides", action="append", default=[], type=_parse_override,
                        metavar="KEY=VALUE", help="model config override, e.g. --set num_nodes=256 (repeatable)")
    parser.add_argument("--steps", type=positive_int, default=d.steps, help="maximum optimiser steps")
    parser.add_argument("--epochs", type=positive_float, help="train for this many passes over the clouds (sets --steps)")
    parser.add_argument("--max-minutes", type=float, default=d.max_minutes,
                        help="wall-clock budget; the cosine schedule is stretched to end on it")
    parser.add_argument("--lr", type=positive_float, default=d.lr)
    parser.add_argument("--weight-decay", type=nonneg_float, default=d.weight_decay)
    parser.add_argument("--warmup", type=nonneg_int, default=d.warmup_steps, help="linear warm-up steps")
    parser.add_argument("--batch", type=positive_int, default=d.batch_clouds, help="clouds per step")
    parser.add_argument("--grasps-per-cloud", type=positive_int, default=d.grasps_per_cloud)
    parser.add_argument("--eval-every", type=positive_int, default=d.eval_every, help="steps between validations")
    parser.add_argument("--patience", type=positive_int, default=d.patience, help="validations without improvement")
    parser.add_argument("--val-clouds", type=positive_int, default=d.val_max_clouds, help="validation clouds used")
    parser.add_argument("--augment-rotations", action="store_true",
                        help="random rotation per cloud and step (for the non-equivariant baseline)")
    parser.add_argument("--fraction", type=unit_fraction, default=1.0,
                        help="train on this fraction of the training objects (data-efficiency study)")
    parser.add_argument("--seed", type=nonneg_int, default=d.seed)
    parser.add_argument("--threads", type=positive_int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--cache", type=Path, help="preprocessed-cloud cache file (default: RUN/prepared_*.safetensors)")
    parser.add_argument("--resume", action="store_true", help="continue RUN from its last checkpoint")
    parser.add_argument("--init", type=Path, metavar="WEIGHTS",
                        help="start from these weights (fine-tuning, e.g. the shipped model on your own "
                             "objects); the model settings come from the file, --set may change only its "
                             "preprocessing (e.g. --set cloud_points=2048)")
    parser.add_argument("--force", action="store_true",
                        help="replace what is there: start over in an existing RUN folder (unless --resume) "
                        "and replace weights already in --publish DIR")
    parser.add_argument("--publish", type=Path, metavar="DIR",
                        help="after training: copy the best checkpoint to DIR, evaluate it on the test "
                             "families and (re)write DIR/MODEL_CARD.md")
    parser.add_argument("--publish-name", help="file name in DIR (default grasp_equi.safetensors, "
                                               "baseline.safetensors for --architecture pointnet)")
    parser.add_argument("--publish-clouds", type=positive_int,
                        help="evaluate at most this many held-out clouds when publishing (default: all)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def model_config(args):
    """The ``ModelConfig`` of this run: the shipped (or baseline) one with the ``--set`` overrides.

    Raises ValueError naming ``--set`` for an unknown key or a value of the wrong type."""
    from grasp_equi.model.config import ModelConfig

    _check_overrides(args.overrides)
    if args.init is not None:
        return _init_config(args)
    base = dict(SHIPPED_MODEL if args.architecture == "equivariant" else BASELINE_MODEL)
    base.update(dict(args.overrides))
    base["architecture"] = args.architecture
    try:
        return ModelConfig.from_dict({**ModelConfig().to_dict(), **base})
    except (TypeError, ValueError) as err:
        raise ValueError(f"bad --set override: {err}") from None


def _check_overrides(overrides) -> None:
    """ValueError naming ``--set`` for an unknown key or a value of the wrong type."""
    from grasp_equi.model.config import ModelConfig

    fields = {f.name: type(f.default) for f in dataclasses.fields(ModelConfig)}
    for key, value in overrides:
        want = fields.get(key)
        if want is None:
            raise ValueError(f"--set {key}: unknown model setting (known: {', '.join(sorted(fields))})")
        ok = isinstance(value, want) and not (want is not bool and isinstance(value, bool))
        ok = ok or (want is float and isinstance(value, int) and not isinstance(value, bool))
        if not ok:
            raise ValueError(f"--set {key}={value!r}: expected {'an' if want is int else 'a'} {want.__name__}")


def _init_config(args):
    """The ``ModelConfig`` stored in ``--init``'s header (no tensor is read here), with ``--set`` overrides
    of its preprocessing (``PREPROCESSING_KEYS``: they change no tensor, so the weights still load)."""
    from grasp_equi.checkpoint import read_header
    from grasp_equi.model.config import PREPROCESSING_KEYS

    shaped = sorted(key for key, _ in args.overrides if key not in PREPROCESSING_KEYS)
    if shaped:
        raise ValueError(f"--init: the network's settings come from the weights file; --set {shaped[0]} would "
                         f"change its tensors (with --init, --set takes only {', '.join(PREPROCESSING_KEYS)})")
    if args.resume:
        raise ValueError("--init starts a new run from weights; --resume continues a run: use one")
    if not args.init.is_file():
        raise FileNotFoundError(f"--init {args.init}: no such file")
    config = read_header(args.init)[0]
    if config.architecture != args.architecture:
        raise ValueError(f"--init {args.init}: a {config.architecture} model, but --architecture "
                         f"{args.architecture}")
    try:
        return dataclasses.replace(config, **dict(args.overrides))
    except (TypeError, ValueError) as err:
        raise ValueError(f"bad --set override: {err}") from None


def check_outputs(args) -> None:
    """Refuse to replace an earlier run or published weights without ``--resume``/``--force``.

    Raises ValueError naming the folder/file and the flag that would allow it."""
    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out}: exists and is not a folder")
    earlier = [name for name in RUN_FILES if (args.out / name).exists()]
    if earlier and not (args.resume or args.force):
        raise ValueError(f"--out {args.out} already holds a run ({', '.join(earlier)}); "
                         "--resume continues it, --force starts over, or choose a new --out")
    if args.publish and not args.force:
        target = args.publish / publish_name(args)
        if target.exists():
            raise ValueError(f"--publish {args.publish}: {target.name} already there; --force replaces it")


def publish_name(args) -> str:
    return args.publish_name or ("baseline.safetensors" if args.architecture == "pointnet"
                                 else "grasp_equi.safetensors")


def settings_from(args, num_train_clouds: int, world: int) -> TrainSettings:
    steps = args.steps
    if args.epochs is not None:
        per_epoch = max(1, -(-num_train_clouds // (args.batch * world)))
        steps = max(1, int(round(args.epochs * per_epoch)))
    return TrainSettings(
        steps=steps, lr=args.lr, weight_decay=args.weight_decay, warmup_steps=min(args.warmup, max(1, steps // 10)),
        batch_clouds=args.batch, grasps_per_cloud=args.grasps_per_cloud, eval_every=args.eval_every,
        patience=args.patience, max_minutes=args.max_minutes, augment_rotations=args.augment_rotations,
        val_max_clouds=args.val_clouds, seed=args.seed,
    )


def _init_distributed(device_arg: str):
    import torch
    import torch.distributed as dist

    from grasp_equi.scorer import resolve_device
    from grasp_equi.training.loop import DistContext

    """Single process, or one rank of a ``torchrun`` job (NCCL on GPUs, Gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(), resolve_device(device_arg)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and not str(device_arg).startswith("cpu")
    device = torch.device("cuda", local) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if use_cuda else "gloo")
    return DistContext(rank, world), device


def _log(ctx, msg: str) -> None:
    if ctx.main:
        print(msg, flush=True)


def run(args) -> int:
    """Train (and publish); 0 on success. Errors: ValueError/FileNotFoundError naming the option."""
    check_outputs(args)
    if not args.data.is_dir():
        raise FileNotFoundError(f"--data {args.data}: no such folder")
    config = model_config(args)
    import torch
    import torch.distributed as dist

    from grasp_equi.model import build_model
    from grasp_equi.training.dataset import describe, prepare_records_for
    from grasp_equi.training.loop import fit
    from grasp_equi.training.splits import load_split, subsample_objects

    if args.force and not args.resume:
        for name in RUN_FILES:
            (args.out / name).unlink(missing_ok=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    ctx, device = _init_distributed(args.device)
    train_samples = subsample_objects(load_split(args.data, "train"), args.fraction, args.seed)
    val_samples = load_split(args.data, "val")
    if not train_samples or not val_samples:
        raise ValueError(f"{args.data}: empty train or val split ({len(train_samples)} / {len(val_samples)} clouds)")
    cache = args.cache or args.out / f"prepared_M{config.num_nodes}_k{config.normal_k}.safetensors"
    progress = not args.quiet
    t0 = time.perf_counter()
    # under DDP every rank preprocesses (and caches) only its own shard of the clouds
    shard_name = "_train.safetensors" if ctx.world == 1 else f"_train_rank{ctx.rank}of{ctx.world}.safetensors"
    train = prepare_records_for(train_samples[ctx.rank::ctx.world], config, progress and ctx.main,
                                cache.with_name(cache.stem + shard_name))
    val = prepare_records_for(val_samples, config, progress and ctx.main,  # validation runs on rank 0 only
                              cache.with_name(cache.stem + "_val.safetensors")) if ctx.main else []
    _log(ctx, f"preprocessed {len(train)} train (this rank) / {len(val)} val clouds in {time.perf_counter() - t0:.0f} s; "
              f"train: {json.dumps(describe(train))}")
    settings = settings_from(args, len(train_samples), ctx.world)

    torch.manual_seed(args.seed)
    model = build_model(config)
    if args.init is not None and not args.resume:
        from grasp_equi.checkpoint import load_weights

        load_weights(args.init, model)
    model = model.to(device)
    _log(ctx, f"{config.architecture} model, {sum(p.numel() for p in model.parameters())} parameters, "
              f"device {device}, world size {ctx.world}; {json.dumps(dataclasses.asdict(settings))}")
    if ctx.world > 1:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    extra = {"command": _command_line(), "data_dir": str(args.data), "fraction": args.fraction,
             "init": str(args.init) if args.init else None,
             "hardware": _hardware(device, ctx.world), "torch": torch.__version__}
    summary = fit(model, config, settings, train, val, args.out, device, resume=args.resume, ctx=ctx,
                  extra_info=extra, progress=progress)
    _log(ctx, f"done: {json.dumps(summary)}")
    if ctx.world > 1:
        dist.destroy_process_group()
    if args.publish and ctx.main:
        from grasp_equi.training.publish import publish

        publish(args.out / "best.safetensors", args.publish / publish_name(args), args.data, device=str(device),
                progress=progress, max_clouds=args.publish_clouds)
    return 0


def _command_line() -> str:
    """How this run was started, for the model card."""
    prog = "grasp-equi" if Path(sys.argv[0]).name == "grasp-equi" else "python -m grasp_equi.train"
    return " ".join([prog] + [shlex.quote(a) for a in sys.argv[1:]])


def _hardware(device, world: int) -> str:
    import torch

    if device.type == "cuda":
        return f"{world} x {torch.cuda.get_device_name(device)}"
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, " \
           f"{torch.get_num_threads()} torch threads) x {world} process(es)"


def main(argv=None) -> int:  # ``python -m grasp_equi.train`` (e.g. under torchrun)
    parser = argparse.ArgumentParser(prog="grasp-equi train", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
