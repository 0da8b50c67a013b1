"""Resumable training state as safetensors + JSON metadata (no pickle anywhere).

``resume.safetensors`` holds the optimizer's tensors (``opt/<param index>/<name>``), the
torch RNG state, and as metadata the loop counters and the numpy RNG state. The model's
weights live in the neighbouring ``last.safetensors`` (an ordinary checkpoint).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open

from grasp_equi.fileio import save_tensors


def save_training_state(path, optimizer: torch.optim.Optimizer, loop_state: dict) -> None:
    """Atomically write the optimizer state and ``loop_state`` (JSON-serialisable) to ``path``."""
    state = optimizer.state_dict()
    tensors = {"torch_rng": torch.get_rng_state()}
    for idx, slots in state["state"].items():
        for name, value in slots.items():
            tensors[f"opt/{idx}/{name}"] = torch.as_tensor(value).detach().cpu().contiguous()
    meta = {"param_groups": json.dumps(state["param_groups"]), "loop": json.dumps(loop_state)}
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    save_tensors(tensors, tmp, metadata=meta)
    tmp.replace(path)


def load_training_state(path, optimizer: torch.optim.Optimizer) -> dict:
    """Restore the optimizer (and torch RNG) from ``path``; return the loop state."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        tensors = {name: f.get_tensor(name) for name in f.keys()}
    if "loop" not in meta or "param_groups" not in meta:
        raise ValueError(f"{path}: not a grasp_equi training state file")
    slots: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith("opt/"):
            _, idx, slot = name.split("/", 2)
            slots.setdefault(int(idx), {})[slot] = value
    optimizer.load_state_dict({"state": slots, "param_groups": json.loads(meta["param_groups"])})
    torch.set_rng_state(tensors["torch_rng"])
    return json.loads(meta["loop"])
