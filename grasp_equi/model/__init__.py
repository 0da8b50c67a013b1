"""Networks that map a graph batch to one stability logit per grasp."""

from __future__ import annotations

from typing import Callable

import torch

from grasp_equi.model.config import FORMAT_VERSION, ModelConfig
from grasp_equi.model.baseline import PointNetBaseline
from grasp_equi.model.network import GraspStabilityNet

# architecture name -> constructor.
ARCHITECTURES: dict[str, Callable[[ModelConfig], torch.nn.Module]] = {
    "equivariant": GraspStabilityNet,
    "pointnet": PointNetBaseline,
}


def build_model(config: ModelConfig) -> torch.nn.Module:
    """Instantiate the network named by ``config.architecture``."""
    if config.architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {config.architecture!r}; known: {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[config.architecture](config)


__all__ = ["ARCHITECTURES", "FORMAT_VERSION", "GraspStabilityNet", "ModelConfig", "PointNetBaseline", "build_model"]
