"""``TrainSettings``: optimisation hyper-parameters (standard library only, so the CLI reads
their defaults without loading torch)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainSettings:
    """Optimisation hyper-parameters (saved in every checkpoint's info)."""

    # Defaults = the shipped model's run (model card), so `make train` reproduces it.
    steps: int = 3000  # optimiser steps (upper bound; early stopping / max_minutes may end sooner)
    lr: float = 3e-3
    min_lr_fraction: float = 0.05  # cosine decays to lr * this
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    batch_clouds: int = 16  # clouds per step (each encoded once)
    grasps_per_cloud: int = 64  # grasps drawn per cloud per step
    eval_every: int = 100  # steps between validations
    patience: int = 8  # validations without improvement before stopping
    max_minutes: float | None = None  # wall-clock budget; the cosine schedule follows it
    augment_rotations: bool = False  # random rotation per cloud (for the non-equivariant baseline)
    val_max_clouds: int = 150
    val_grasps_per_cloud: int = 128
    grad_clip: float = 5.0
    seed: int = 0
