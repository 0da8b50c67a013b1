"""Score -> colour (red = unstable, green = stable), shared by the 3D view and the grasp list."""

from __future__ import annotations

import numpy as np

UNSCORED = (0.6, 0.6, 0.6, 1.0)  # grey while a grasp waits for its score
SELECTED = (0.2, 0.85, 1.0, 1.0)  # the highlighted grasp: cyan, outside the red-green scale


def score_rgba(scores: np.ndarray | None, count: int) -> np.ndarray:
    """``[count, 4]`` RGBA in 0..1: red at 0 through yellow to green at 1; grey when unscored."""
    if scores is None or len(scores) != count:
        return np.tile(np.array(UNSCORED), (count, 1))
    s = np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0)[:, None]  # [G, 1]
    red = np.array([0.9, 0.15, 0.1])
    yellow = np.array([0.95, 0.85, 0.1])
    green = np.array([0.1, 0.8, 0.2])
    low = red + (yellow - red) * np.clip(2 * s, 0, 1)
    rgb = np.where(s < 0.5, low, yellow + (green - yellow) * np.clip(2 * s - 1, 0, 1))  # [G, 3]
    return np.concatenate([rgb, np.ones((count, 1))], axis=1)


def hex_color(rgba) -> str:
    r, g, b = (int(round(255 * c)) for c in rgba[:3])
    return f"#{r:02x}{g:02x}{b:02x}"
