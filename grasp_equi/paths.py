"""Where the package keeps its files (no heavy imports, so the CLI can name them in ``--help``)."""

from pathlib import Path

WEIGHTS_DIR = Path(__file__).parent / "weights"
SHIPPED_WEIGHTS = WEIGHTS_DIR / "grasp_equi.safetensors"
