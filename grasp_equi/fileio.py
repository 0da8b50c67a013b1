"""File-writing helpers shared by everything that saves tensors.

``safetensors.torch.save_file`` creates its file with mode 0600 whatever the umask; files
this project writes (checkpoints, training state, caches) should be readable like any other
file the user makes, so ``save_tensors`` applies the usual ``0666 & ~umask`` (0644 with the
common umask 022).
"""

from __future__ import annotations

import os
from pathlib import Path


def umask_mode() -> int:
    """``0o666`` minus the process umask: the mode ``open(path, "w")`` would give a new file."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def save_tensors(tensors: dict, path, metadata: dict | None = None) -> Path:
    """``safetensors.torch.save_file`` with the usual file mode; returns ``path``.

    Raises OSError when the file cannot be written (the message names it)."""
    from safetensors.torch import save_file

    path = Path(path)
    save_file(tensors, str(path), metadata=metadata)
    os.chmod(path, umask_mode())
    return path
