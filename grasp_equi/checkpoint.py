"""Checkpoint files: safetensors weights with the model config as JSON metadata.

Nothing in a checkpoint is ever executed: safetensors holds raw tensors only, and a pickle
file (``torch.save``'s format, which can run code on load) is refused before it is parsed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from grasp_equi.fileio import save_tensors
from grasp_equi.model import FORMAT_VERSION, ModelConfig
from grasp_equi.model.config import ConfigError

META_FORMAT = "grasp_equi_format"
META_CONFIG = "grasp_equi_config"
META_INFO = "grasp_equi_info"
# sha256 of the config JSON and every tensor: an edited config (say `radius`, which no tensor
# shape reveals) no longer matches the weights it was trained with. Files written before it
# existed (the shipped weights among them) have none and are checked by schema and shapes only.
META_FINGERPRINT = "grasp_equi_fingerprint"
MAX_INFO_CHARS = 1_000_000  # the free-form info JSON
MAX_INFO_DEPTH = 16

# A zip (torch.save >= 1.6) or a raw pickle stream (protocol 2+ starts with 0x80).
_PICKLE_MAGIC = (b"PK\x03\x04", b"\x80")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the problem."""


def fingerprint(config_json: str, tensors: dict[str, torch.Tensor]) -> str:
    """sha256 hex of the config JSON text and each tensor's name, dtype, shape and bytes."""
    h = hashlib.sha256(config_json.encode())
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"|{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_checkpoint(path, model: torch.nn.Module, config: ModelConfig, info: dict | None = None) -> Path:
    """Write ``model``'s weights and ``config`` to ``path`` (a ``.safetensors`` file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {name: t.detach().cpu().contiguous() for name, t in model.state_dict().items()}
    config_json = json.dumps(config.to_dict())
    metadata = {META_FORMAT: str(FORMAT_VERSION), META_CONFIG: config_json,
                META_FINGERPRINT: fingerprint(config_json, tensors)}
    if info:
        metadata[META_INFO] = json.dumps(info)
    save_tensors(tensors, path, metadata=metadata)
    return path


def _refuse_pickle(path: Path) -> None:
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


def read_header(path) -> tuple[ModelConfig, dict, dict[str, tuple[int, ...]], dict[str, str]]:
    """``(config, info, tensor shapes, metadata)`` from the file's header only: no tensor is read.

    The config is checked against ``ModelConfig``'s schema (types and ranges of every key).
    Raises ``CheckpointError`` naming the file (and the key) on any problem.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    _refuse_pickle(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            shapes = {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"checkpoint {path}: not a readable safetensors file ({err})") from None
    if metadata.get(META_FORMAT) != str(FORMAT_VERSION):
        raise CheckpointError(
            f"checkpoint {path}: format version {str(metadata.get(META_FORMAT))[:40]!r}, expected {FORMAT_VERSION} "
            "(missing metadata means it was not written by grasp_equi)"
        )
    if META_CONFIG not in metadata:
        raise CheckpointError(f"checkpoint {path}: metadata has no {META_CONFIG!r}")
    try:
        config = ModelConfig.from_dict(json.loads(metadata[META_CONFIG]))
    except ConfigError as err:
        raise CheckpointError(f"checkpoint {path}: model config key {err.key!r} {err.problem}") from None
    except (json.JSONDecodeError, RecursionError, TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint {path}: key {META_CONFIG!r}: bad model config ({err})") from None
    return config, _read_info(path, metadata.get(META_INFO, "{}")), shapes, metadata


def _read_info(path: Path, text: str) -> dict:
    """The free-form info dict, bounded in size and nesting (a deep one breaks json and printing)."""
    if len(text) > MAX_INFO_CHARS:
        raise CheckpointError(f"checkpoint {path}: key {META_INFO!r}: {len(text)} characters, "
                              f"more than {MAX_INFO_CHARS}")
    try:
        info = json.loads(text)
    except (json.JSONDecodeError, RecursionError, ValueError) as err:
        raise CheckpointError(f"checkpoint {path}: key {META_INFO!r}: not JSON ({err})") from None
    stack = [(info, 1)]  # nesting depth, measured without recursion
    while stack:
        value, depth = stack.pop()
        if depth > MAX_INFO_DEPTH:
            raise CheckpointError(f"checkpoint {path}: key {META_INFO!r}: nested more than {MAX_INFO_DEPTH} deep")
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        stack.extend((child, depth + 1) for child in children)
    if not isinstance(info, dict):
        raise CheckpointError(f"checkpoint {path}: key {META_INFO!r}: must be a JSON object")
    return info


def read_checkpoint(path) -> tuple[dict[str, torch.Tensor], ModelConfig, dict]:
    """Return ``(state_dict, config, info)``; raise ``CheckpointError`` on any problem (the
    config is validated before any tensor is read; tensors must be finite and match the
    fingerprint when the file has one)."""
    config, info, _, metadata = read_header(path)
    return _read_tensors(Path(path), metadata), config, info


def _read_tensors(path: Path, metadata: dict[str, str]) -> dict[str, torch.Tensor]:
    try:
        with safe_open(str(path), framework="pt") as f:
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"checkpoint {path}: tensors cannot be read ({err})") from None
    for name, t in tensors.items():
        if not (t.is_floating_point() or t.dtype in (torch.int64, torch.int32, torch.bool)):
            raise CheckpointError(f"checkpoint {path}: tensor {name!r} has dtype {t.dtype}")
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise CheckpointError(f"checkpoint {path}: tensor {name!r} has NaN/inf weights")
    expected = metadata.get(META_FINGERPRINT)
    if expected is not None and fingerprint(metadata[META_CONFIG], tensors) != expected:
        raise CheckpointError(
            f"checkpoint {path}: key {META_FINGERPRINT!r}: the config or weights were changed after the file "
            "was written (the model config no longer matches the weights it was trained with)")
    return tensors


def load_weights(path, model: torch.nn.Module, state: dict[str, torch.Tensor] | None = None) -> None:
    """Load ``state`` (read from ``path`` when None) strictly into ``model``. Shapes are compared
    with the file's header before any tensor is read; a missing, extra or mis-shaped tensor,
    a NaN/inf weight or a fingerprint mismatch is a ``CheckpointError``."""
    path = Path(path)
    expected = model.state_dict()
    if state is None:
        _, _, shapes, metadata = read_header(path)
    else:
        shapes, metadata = {k: tuple(v.shape) for k, v in state.items()}, None
    missing = sorted(set(expected) - set(shapes))
    unexpected = sorted(set(shapes) - set(expected))
    wrong = sorted(k for k in set(expected) & set(shapes) if tuple(expected[k].shape) != shapes[k])
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"checkpoint {path}: does not match its config (missing {missing[:3]}, unexpected "
            f"{unexpected[:3]}, wrong shape {wrong[:3]})"
        )
    if state is None:
        state = _read_tensors(path, metadata)
    model.load_state_dict(state)
