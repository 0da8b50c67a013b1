"""Checkpoint files: safetensors weights with the model config as JSON metadata.

Nothing in a checkpoint is ever executed: safetensors holds raw tensors only, and a pickle
file (``torch.save``'s format, which can run code on load) is refused before it is parsed.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from grasp_equi.fileio import save_tensors
from grasp_equi.model import FORMAT_VERSION, ModelConfig

META_FORMAT = "grasp_equi_format"
META_CONFIG = "grasp_equi_config"
META_INFO = "grasp_equi_info"

# A zip (torch.save >= 1.6) or a raw pickle stream (protocol 2+ starts with 0x80).
_PICKLE_MAGIC = (b"PK\x03\x04", b"\x80")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the problem."""


def save_checkpoint(path, model: torch.nn.Module, config: ModelConfig, info: dict | None = None) -> Path:
    """Write ``model``'s weights and ``config`` to ``path`` (a ``.safetensors`` file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {name: t.detach().cpu().contiguous() for name, t in model.state_dict().items()}
    metadata = {META_FORMAT: str(FORMAT_VERSION), META_CONFIG: json.dumps(config.to_dict())}
    if info:
        metadata[META_INFO] = json.dumps(info)
    save_tensors(tensors, path, metadata=metadata)
    return path


def read_checkpoint(path) -> tuple[dict[str, torch.Tensor], ModelConfig, dict]:
    """Return ``(state_dict, config, info)``; raise ``CheckpointError`` on any problem."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    with path.open("rb") as f:
        head = f.read(9)
    # A safetensors file starts with its JSON header's length (u64, little endian) and then "{";
    # that length's first byte can be 0x80 too, so only a file that is not safetensors-shaped
    # is judged by the pickle magic.
    header_len = int.from_bytes(head[:8], "little") if len(head) == 9 else -1
    safetensors_shaped = head[8:9] == b"{" and 0 < header_len <= path.stat().st_size - 8
    if not safetensors_shaped and head.startswith(_PICKLE_MAGIC):
        raise CheckpointError(
            f"checkpoint {path}: looks like a pickle/torch.save file; refused because loading it "
            "could execute code. Convert it to safetensors (grasp_equi.checkpoint.save_checkpoint)."
        )
    try:
        tensors = load_file(str(path))
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"checkpoint {path}: not a readable safetensors file ({err})") from None
    if metadata.get(META_FORMAT) != str(FORMAT_VERSION):
        raise CheckpointError(
            f"checkpoint {path}: format version {metadata.get(META_FORMAT)!r}, expected {FORMAT_VERSION} "
            "(missing metadata means it was not written by grasp_equi)"
        )
    try:
        config = ModelConfig.from_dict(json.loads(metadata[META_CONFIG]))
        info = json.loads(metadata.get(META_INFO, "{}"))
    except (KeyError, json.JSONDecodeError, TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint {path}: bad model config ({err})") from None
    return tensors, config, info


def load_weights(path, model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load ``state`` strictly; a missing, extra or mis-shaped tensor is a ``CheckpointError``."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"checkpoint {path}: does not match its config (missing {missing[:3]}, unexpected "
            f"{unexpected[:3]}, wrong shape {wrong[:3]})"
        )
    model.load_state_dict(state)
