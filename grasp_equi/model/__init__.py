"""Networks that map a graph batch to one stability logit per grasp."""

from __future__ import annotations

from typing import Callable

import torch

from grasp_equi.model.config import FORMAT_VERSION, ModelConfig
from grasp_equi.model.network import GraspStabilityNet

# architecture name -> constructor; the baseline registers itself here (model/baseline.py).
ARCHITECTURES: dict[str, Callable[[ModelConfig], torch.nn.Module]] = {
    "equivariant": GraspStabilityNet,
}


def build_model(config: ModelConfig) -> torch.nn.Module:
    """Instantiate the network named by ``config.architecture``."""
    if config.architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {config.architecture!r}; known: {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[config.architecture](config)


__all__ = ["ARCHITECTURES", "FORMAT_VERSION", "GraspStabilityNet", "ModelConfig", "build_model"]
