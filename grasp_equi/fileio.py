"""File-writing helpers shared by everything that saves tensors or JSON reports.

``safetensors.torch.save_file`` creates its file with mode 0600 whatever the umask; files
this project writes (checkpoints, training state, caches) should be readable like any other
file the user makes, so ``save_tensors`` applies the usual ``0666 & ~umask`` (0644 with the
common umask 022).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np


def umask_mode() -> int:
    """``0o666`` minus the process umask: the mode ``open(path, "w")`` would give a new file."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def save_tensors(tensors: dict, path, metadata: dict | None = None) -> Path:
    """``safetensors.torch.save_file`` with the usual file mode; returns ``path``. Written to a temporary
    file beside ``path`` and renamed, so an interrupted save never leaves half a file where the previous
    one was (e.g. weights replaced in place with ``--force``).

    Raises OSError when the file cannot be written (the message names it)."""
    from safetensors.torch import save_file

    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        save_file(tensors, str(tmp), metadata=metadata)
        os.chmod(tmp, umask_mode())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def json_safe(value):
    """A copy of ``value`` that strict JSON can hold: numpy scalars and arrays become Python numbers and lists,
    NaN and ±inf become ``None`` (``null``; ``json.dumps`` would write ``NaN``, which JSON readers refuse)."""
    if isinstance(value, dict):  # keys as Python values: json.dumps spells them (3 -> "3", None -> "null")
        return {json_safe(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.generic):  # other numpy scalars (strings, dates): their Python value
        return json_safe(value.item())
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def json_text(value, indent: int | None = 2) -> str:
    """Strict JSON for a report (``json_safe``), never ``NaN``: missing figures read as ``null``."""
    return json.dumps(json_safe(value), indent=indent, allow_nan=False)


PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def check_outputs(outputs: dict, force: bool, plots: tuple[str, ...] = ()) -> None:
    """Refuse, before any work, output files that would fail late or lose something: ``outputs`` maps an
    option name to its path (or None). Raises ``ValueError`` (two options naming one file, a plot option in
    ``plots`` whose suffix matplotlib would not write as an image), ``IsADirectoryError``/``NotADirectoryError``
    (a folder as the file, a file as a folder above it) and ``FileExistsError`` (an existing file without
    ``force``)."""
    seen: dict[Path, str] = {}
    for option, path in outputs.items():
        if path is None:
            continue
        path = Path(path)
        key = path.resolve()
        if key in seen:
            raise ValueError(f"{option} {path} is the same file as {seen[key]}; give each its own")
        seen[key] = option
        if option in plots and path.suffix.lower() not in PLOT_SUFFIXES:
            raise ValueError(f"{option} {path}: a plot is written as {'/'.join(PLOT_SUFFIXES)}; got {path.suffix!r}")
        if path.is_dir():
            raise IsADirectoryError(f"{option} {path} is a folder; give a file name")
        parent = next((p for p in path.parents if p.exists()), None)
        if parent is not None and not parent.is_dir():
            raise NotADirectoryError(f"{option} {path}: {parent} is a file, not a folder")
        if path.exists() and not force:
            raise FileExistsError(f"{option} {path} exists; pass --force to replace it")
