"""Which network the node scores with: ``model_path``, the shipped weights, or (only when
``allow_untrained`` is set) a random untrained model."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from grasp_equi.checkpoint import CheckpointError
from grasp_equi.ros.params import Settings
from grasp_equi.scorer import SHIPPED_WEIGHTS, GraspScorer


def load_scorer(settings: Settings, logger) -> tuple[GraspScorer, str, bool]:
    """``(scorer, label for logs/diagnostics, trained?)``; raises ``CheckpointError`` (with
    what to do) when the weights cannot be used."""
    threads = settings.cpu_threads or None  # 0: torch's own setting, left alone
    if settings.model_path:
        path = Path(settings.model_path).expanduser()
        scorer = GraspScorer.from_checkpoint(path, device=settings.device, threads=threads)
        return scorer, f"{scorer.name} ({path})", True
    if SHIPPED_WEIGHTS.is_file():
        scorer = GraspScorer.from_checkpoint(None, device=settings.device, threads=threads)
        return scorer, f"{scorer.name} (shipped)", True
    if not settings.allow_untrained:
        raise CheckpointError(
            f"no shipped weights at {SHIPPED_WEIGHTS} and no model_path given. Train them (`make train`), "
            "pass -p model_path:=/path/to/model.safetensors, or -p allow_untrained:=true to run with a random "
            "untrained model (scores are then meaningless)")
    logger.warning(f"no shipped weights at {SHIPPED_WEIGHTS}: scoring with an UNTRAINED random model "
                   "(allow_untrained=true); scores are meaningless")
    scorer = GraspScorer.untrained(seed=0, device=settings.device, threads=threads)
    return scorer, scorer.name, False


def warm_up(scorer: GraspScorer) -> None:
    """One small scoring pass so the first real request does not pay for lazy initialisation."""
    rng = np.random.default_rng(0)
    d = rng.normal(size=(512, 3))
    points = 0.05 * d / np.linalg.norm(d, axis=1, keepdims=True)  # [512, 3] sphere of 5 cm
    scorer.score(points, points[:4].reshape(2, 2, 3))
    scorer.timings = {}
