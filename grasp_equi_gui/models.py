"""Which scorers the window compares, and how each is labelled (Qt-free).

The equivariant model is the shipped checkpoint (or ``--weights``); when there is none the
window still works with an untrained network and says so in plain sight. The baseline is
the non-equivariant "pointnet" architecture, loaded the same way when it exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from grasp_equi import GraspScorer
from grasp_equi.scorer import WEIGHTS_DIR

EQUIVARIANT = "equivariant"
BASELINE = "baseline"
BASELINE_WEIGHTS = WEIGHTS_DIR / "baseline.safetensors"
BASELINE_ARCHITECTURE = "pointnet"


@dataclass
class ModelSlot:
    """One model shown in the window."""

    key: str  # EQUIVARIANT | BASELINE: the key of its scores in the scene
    scorer: GraspScorer | None  # None: not available
    label: str  # what the window shows about it
    trained: bool

    @property
    def available(self) -> bool:
        return self.scorer is not None


def _untrained(key: str, seed: int, device: str, why: str, **overrides) -> ModelSlot:
    scorer = GraspScorer.untrained(seed=seed, device=device, **overrides)
    return ModelSlot(key, scorer, f"{key}: UNTRAINED model ({why})", trained=False)


def load_equivariant(weights: str | Path | None = None, device: str = "auto",
                     untrained_overrides: dict | None = None) -> tuple[ModelSlot, str | None]:
    """The equivariant scorer and a warning to show (None when all is well).

    ``weights`` None means the shipped checkpoint; when it is missing or unreadable the
    slot holds ``GraspScorer.untrained(seed=0)`` labelled as such.
    """
    try:
        scorer = GraspScorer.from_checkpoint(weights, device=device)
    except (ValueError, OSError) as err:  # CheckpointError is a ValueError
        warning = None if weights is None else f"Could not load the equivariant weights:\n{err}"
        why = "no shipped weights" if weights is None else "weights not loadable"
        return _untrained(EQUIVARIANT, 0, device, why, **(untrained_overrides or {})), warning
    return ModelSlot(EQUIVARIANT, scorer, f"{EQUIVARIANT}: {scorer.name}", trained=True), None


def baseline_registered() -> bool:
    """True when the non-equivariant architecture is importable and registered."""
    try:
        import grasp_equi.model.baseline  # noqa: F401  (registers "pointnet" on import)
    except ImportError:
        pass
    from grasp_equi.model import ARCHITECTURES

    return BASELINE_ARCHITECTURE in ARCHITECTURES


def load_baseline(weights: str | Path | None = None, device: str = "auto",
                  untrained_overrides: dict | None = None) -> tuple[ModelSlot, str | None]:
    """The baseline scorer (or an unavailable slot) and a warning to show, if any."""
    path = Path(weights) if weights is not None else BASELINE_WEIGHTS
    registered = baseline_registered()
    if path.is_file() and registered:
        try:
            scorer = GraspScorer.from_checkpoint(path, device=device)
            return ModelSlot(BASELINE, scorer, f"{BASELINE}: {scorer.name}", trained=True), None
        except (ValueError, OSError) as err:
            warning = f"Could not load the baseline weights:\n{err}"
    else:
        warning = None if weights is None else f"Baseline weights {path}: not available"
    if registered:
        overrides = {**(untrained_overrides or {}), "architecture": BASELINE_ARCHITECTURE}
        return _untrained(BASELINE, 0, device, "no baseline weights", **overrides), warning
    return ModelSlot(BASELINE, None, "baseline: not available (grasp_equi.model.baseline is missing)",
                     trained=False), warning
