"""The training loop: AdamW, class-balanced soft-target BCE, warmup + cosine schedule,
validation AUC with early stopping, metrics CSV, checkpoints and resume.

Run-directory layout (``RUN/``): ``best.safetensors`` (best validation AUC),
``last.safetensors`` + ``resume.safetensors`` (to continue), ``metrics.csv``,
``summary.json``. Works unchanged on CPU, one GPU, or several under ``torchrun`` (DDP; every
rank trains on its own shard of the clouds, rank 0 validates and writes files).
"""

from __future__ import annotations

import csv
import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from grasp_equi import keys
from grasp_equi.checkpoint import load_weights, read_checkpoint, save_checkpoint
from grasp_equi.fileio import json_text
from grasp_equi.model import ModelConfig
from grasp_equi.training import metrics
from grasp_equi.training.dataset import CloudRecord, class_weights, describe, make_batch, random_rotations
from grasp_equi.training.settings import TrainSettings  # noqa: F401  (re-exported)
from grasp_equi.training.state import load_training_state, save_training_state

CSV_FIELDS = ["step", "epoch", "elapsed_s", "lr", "train_loss", "train_auc", "val_loss", "val_auc",
              "val_brier", "best_val_auc"]


@dataclass
class DistContext:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def _batches(records: Sequence[CloudRecord], settings: TrainSettings, seed: int, start_epoch: int,
             start_pos: int) -> Iterator[tuple[int, int, list]]:
    """Endless ``(epoch, position, picks)``; an epoch visits every cloud once in random order.

    Reproducible from ``(seed, epoch, position)`` so a resumed run continues the same stream.
    """
    usable = np.array([i for i, r in enumerate(records) if r.num_grasps > 0])
    if len(usable) == 0:
        raise ValueError("no training clouds with grasps")
    epoch, pos = start_epoch, start_pos
    while True:
        rng = np.random.default_rng([seed, epoch])
        order = usable[rng.permutation(len(usable))]
        grasp_rng = np.random.default_rng([seed, epoch, 1])
        choices = [grasp_rng.permutation(records[i].num_grasps)[:settings.grasps_per_cloud] for i in order]
        while pos < len(order):
            hi = min(pos + settings.batch_clouds, len(order))
            yield epoch, hi, [(int(order[j]), choices[j]) for j in range(pos, hi)]
            pos = hi
        epoch, pos = epoch + 1, 0


def validation_picks(records: Sequence[CloudRecord], max_clouds: int, grasps_per_cloud: int,
                     seed: int = 0) -> list[tuple[int, np.ndarray]]:
    """A fixed, seeded subset of validation clouds and grasps (same at every evaluation)."""
    rng = np.random.default_rng([seed, 7])
    usable = [i for i, r in enumerate(records) if r.num_grasps > 0]
    chosen = sorted(rng.permutation(usable)[:max_clouds].tolist()) if usable else []
    return [(i, np.sort(rng.permutation(records[i].num_grasps)[:grasps_per_cloud])) for i in chosen]


@torch.no_grad()
def predict(model: torch.nn.Module, records: Sequence[CloudRecord], picks: Sequence, device,
            rotations: torch.Tensor | None = None, batch_clouds: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and labels for ``picks`` (eval mode; optional per-cloud rotations)."""
    was_training = model.training
    model.eval()
    probs, labels = [], []
    for lo in range(0, len(picks), batch_clouds):
        rot = None if rotations is None else rotations[lo:lo + batch_clouds]
        batch = make_batch(records, picks[lo:lo + batch_clouds], rot, device)
        probs.append(torch.sigmoid(model(batch)).cpu())
        labels.append(batch[keys.GRASP_LABEL].cpu())
    model.train(was_training)
    if not probs:
        return np.zeros(0), np.zeros(0)
    return torch.cat(probs).double().numpy(), torch.cat(labels).double().numpy()


def weighted_bce(logits: torch.Tensor, labels: torch.Tensor, weights: tuple[float, float]) -> torch.Tensor:
    """Soft-target BCE, each grasp weighted by its (hard) class so both classes count equally."""
    w = torch.where(labels >= metrics.STABLE_THRESHOLD, weights[0], weights[1])  # [G]
    loss = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")  # [G]
    return (w * loss).sum() / w.sum()


def _lr_factor(step: int, progress: float, settings: TrainSettings) -> float:
    if step < settings.warmup_steps:
        return (step + 1) / settings.warmup_steps
    cos = 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    return settings.min_lr_fraction + (1.0 - settings.min_lr_fraction) * cos


def fit(model: torch.nn.Module, config: ModelConfig, settings: TrainSettings, train: Sequence[CloudRecord],
        val: Sequence[CloudRecord], run_dir, device, resume: bool = False, ctx: DistContext | None = None,
        extra_info: dict | None = None, progress: bool = True) -> dict:
    """Train ``model`` (possibly DDP-wrapped) and return the run summary (also in ``summary.json``)."""
    ctx = ctx or DistContext()
    run_dir = Path(run_dir)
    core = model.module if hasattr(model, "module") else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    weights = class_weights(train)
    loop = {"step": 0, "epoch": 0, "pos": 0, "elapsed_s": 0.0, "best_val_auc": -1.0, "best_step": 0,
            "bad_evals": 0, "stopped": None}
    resume_file = run_dir / "resume.safetensors"
    if resume:
        if not resume_file.is_file():
            raise FileNotFoundError(f"--resume: no {resume_file}")
        state, _, _ = read_checkpoint(run_dir / "last.safetensors")
        load_weights(run_dir / "last.safetensors", core, state)
        loop.update(load_training_state(resume_file, optimizer))
        loop["stopped"] = None  # a resumed run may have been given more steps or time
        if loop.get("val_clouds") != len(val):  # the dataset grew: old validation scores are not comparable
            loop.update(best_val_auc=-1.0, bad_evals=0)
    loop["val_clouds"] = len(val)
    torch.manual_seed(settings.seed + 1000 * ctx.rank + loop["step"])
    aug_rng = np.random.default_rng([settings.seed, ctx.rank, loop["step"], 3])
    val_picks = validation_picks(val, settings.val_max_clouds, settings.val_grasps_per_cloud, settings.seed)
    info_base = {"settings": dataclasses.asdict(settings), "train_data": describe(train),
                 "val_data": describe(val), **(extra_info or {})}

    csv_path = run_dir / "metrics.csv"
    if ctx.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if not (resume and csv_path.is_file()):
            with csv_path.open("w", newline="") as f:
                csv.writer(f).writerow(CSV_FIELDS)

    def checkpoint(name: str, val_auc: float) -> None:
        info = {**info_base, "step": loop["step"], "val_auc": val_auc, "train_seconds": loop["elapsed_s"]}
        save_checkpoint(run_dir / name, core, config, info)

    max_seconds = settings.max_minutes * 60.0 if settings.max_minutes else None
    stream = _batches(train, settings, settings.seed + 7919 * ctx.rank, loop["epoch"], loop["pos"])
    bar = tqdm(total=settings.steps, initial=loop["step"], desc="train", unit="step",
               disable=not (progress and ctx.main), dynamic_ncols=True)
    window_loss, window_probs, window_labels = [], [], []
    start, elapsed0 = time.perf_counter(), loop["elapsed_s"]
    model.train()
    while loop["stopped"] is None:
        elapsed = elapsed0 + time.perf_counter() - start
        progress_frac = loop["step"] / settings.steps
        if max_seconds:
            progress_frac = max(progress_frac, elapsed / max_seconds)
        progress_t = torch.tensor([progress_frac], device=device)
        if ctx.world > 1:  # every rank follows the slowest clock, so schedules and stops agree
            dist.all_reduce(progress_t, op=dist.ReduceOp.MAX)
        if loop["step"] >= settings.steps or float(progress_t) >= 1.0:
            loop["stopped"] = "steps" if loop["step"] >= settings.steps else "time"
            break
        lr = settings.lr * _lr_factor(loop["step"], float(progress_t), settings)
        for group in optimizer.param_groups:
            group["lr"] = lr

        epoch, pos, picks = next(stream)
        rot = random_rotations(len(picks), aug_rng) if settings.augment_rotations else None
        batch = make_batch(train, picks, rot, device)
        logits = model(batch)  # [G]
        loss = weighted_bce(logits, batch[keys.GRASP_LABEL], weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        optimizer.step()
        loop.update(step=loop["step"] + 1, epoch=epoch, pos=pos)
        window_loss.append(loss.item())
        window_probs.append(torch.sigmoid(logits.detach()).cpu())
        window_labels.append(batch[keys.GRASP_LABEL].cpu())
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(window_loss[-20:]):.3f}", lr=f"{lr:.1e}", best=f"{loop['best_val_auc']:.3f}")

        if loop["step"] % settings.eval_every == 0 or loop["step"] >= settings.steps:
            loop["elapsed_s"] = elapsed0 + time.perf_counter() - start
            stop = torch.zeros(1, device=device)
            if ctx.main:
                probs, labels = predict(core, val, val_picks, device)
                val_stats = metrics.summary(probs, labels)
                lab_t = torch.as_tensor(labels)
                val_loss = float(weighted_bce(torch.logit(torch.as_tensor(probs).clamp(1e-6, 1 - 1e-6)),
                                              lab_t, weights)) if len(labels) else float("nan")
                tp = torch.cat(window_probs).double().numpy()
                tl = torch.cat(window_labels).double().numpy()
                val_auc = val_stats["auc"] if not math.isnan(val_stats["auc"]) else -1.0
                if val_auc > loop["best_val_auc"] + 1e-4:
                    loop.update(best_val_auc=val_auc, best_step=loop["step"], bad_evals=0)
                    checkpoint("best.safetensors", val_auc)
                else:
                    loop["bad_evals"] += 1
                row = [loop["step"], epoch, round(loop["elapsed_s"], 1), f"{lr:.3e}",
                       f"{np.mean(window_loss):.5f}", f"{metrics.auc(tp, tl >= 0.5):.5f}", f"{val_loss:.5f}",
                       f"{val_stats['auc']:.5f}", f"{val_stats['brier']:.5f}", f"{loop['best_val_auc']:.5f}"]
                with csv_path.open("a", newline="") as f:
                    csv.writer(f).writerow(row)
                tqdm.write(" ".join(f"{k}={v}" for k, v in zip(CSV_FIELDS, row)))
                if loop["bad_evals"] >= settings.patience:
                    stop[0] = 1.0
                checkpoint("last.safetensors", val_auc)
                save_training_state(resume_file, optimizer, loop)
            if ctx.world > 1:
                dist.broadcast(stop, src=0)
            if float(stop) > 0:
                loop["stopped"] = "early"
            window_loss, window_probs, window_labels = [], [], []
    bar.close()
    loop["elapsed_s"] = elapsed0 + time.perf_counter() - start
    summary = {"steps": loop["step"], "stopped": loop["stopped"], "best_val_auc": loop["best_val_auc"],
               "best_step": loop["best_step"], "train_seconds": round(loop["elapsed_s"], 1),
               "device": str(device), "world_size": ctx.world}
    if ctx.main:
        if loop["best_step"] == 0:  # never validated (tiny run): the final weights are the best we have
            checkpoint("best.safetensors", -1.0)
        checkpoint("last.safetensors", loop["best_val_auc"])
        save_training_state(resume_file, optimizer, loop)
        (run_dir / "summary.json").write_text(json_text(summary) + "\n")
    return summary
