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
