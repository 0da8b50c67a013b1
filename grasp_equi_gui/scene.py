"""The GUI's Qt-free scene model: object, grasps, pose, scores and the sweep record.

Widgets only read this model and listen to its signals; workers only write scores into it.
Nothing here imports Qt (napari's model/view split), so the logic is testable without a
display. All geometry is held in the OBJECT frame; the current pose (a rotation about the
object's centroid) is applied on the way out by the ``world_*`` accessors, so the data the
scorer sees is exactly the data the view draws.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from grasp_equi.geometry import rotation_from_euler

# Which scores rank and colour the grasps: the first present wins (the node's in live view).
PRIMARY_KEYS = ("node", "equivariant", "baseline")


class Signal:
    """A minimal observer list: ``connect(fn)``, ``emit(*args)`` calls every ``fn(*args)``."""

    def __init__(self) -> None:
        self._slots: list[Callable[..., Any]] = []

    def connect(self, slot: Callable[..., Any]) -> None:
        self._slots.append(slot)

    def disconnect(self, slot: Callable[..., Any]) -> None:
        self._slots.remove(slot)

    def emit(self, *args: Any) -> None:
        for slot in list(self._slots):
            slot(*args)


@dataclass
class SceneObject:
    """An object to grasp, in its own frame (metres)."""

    name: str
    points: np.ndarray  # [N, 3]
    normals: np.ndarray | None = None  # [N, 3] outward, or None (the scorer estimates them)
    mesh_vertices: np.ndarray | None = None  # [V, 3]
    mesh_faces: np.ndarray | None = None  # [F, 3] int
    source: Any = None  # what grasp samplers need (e.g. grasp_equi.data.objects.ObjectInfo)

    @property
    def center(self) -> np.ndarray:
        return self.points.mean(axis=0)  # [3]

    @property
    def radius(self) -> float:
        return float(np.linalg.norm(self.points - self.center, axis=1).max())


@dataclass
class SweepRecord:
    """Scores of every grasp at each orientation of a sweep, per model."""

    axis_label: str
    total_steps: int
    angles_deg: list[float] = field(default_factory=list)
    scores: dict[str, list[np.ndarray]] = field(default_factory=dict)  # model -> steps x [G]

    def series(self, model: str, grasp: int) -> np.ndarray:
        """The score of one grasp at each completed step, ``[steps]``."""
        return np.array([step[grasp] for step in self.scores.get(model, [])], dtype=np.float64)

    def max_deviation(self, model: str, grasp: int) -> float:
        """Largest ``|score(angle) - score(first angle)|`` of one grasp (0 before two steps)."""
        s = self.series(model, grasp)
        return float(np.abs(s - s[0]).max()) if len(s) else 0.0

    @property
    def done(self) -> bool:
        return len(self.angles_deg) >= self.total_steps


class Scene:
    """State of the window: what is shown, how it is turned, and how it scored.

    Every change that makes scores stale (new object, new grasps, new pose) bumps
    ``version``; a scoring job records the version it started from and ``set_scores``
    drops results from an older version, so a slow job can never paint old scores on a
    new pose.

    Selection: until the user picks a grasp (``select(i, by_user=True)``), the best-scored
    grasp is selected after every update (new grasps, new scores); sweep steps leave the
    selection alone, since the plot follows it. ``top_n`` limits the grasps shown to the
    N best (the selected one always stays visible); ``rejected`` holds one line per grasp
    that was removed before scoring, with its reason.
    """

    def __init__(self) -> None:
        self.object: SceneObject | None = None
        self.grasps: list[np.ndarray] = []  # each [K, 3], object frame
        self.rotation = np.eye(3)  # [3, 3] object -> world, about the object's centroid
        self.euler_deg = (0.0, 0.0, 0.0)  # roll, pitch, yaw that produced ``rotation`` (if any)
        self.scores: dict[str, np.ndarray] = {}  # model name -> [G] at the current pose
        self.selected: int | None = None
        self.user_selected = False  # True once the user picked a grasp for these grasps
        self.top_n: int | None = None  # show only the N best grasps (None = all)
        self.rejected: list[str] = []  # grasps removed before scoring, one reason each
        self.sweep: SweepRecord | None = None
        self.version = 0
        self.object_changed = Signal()
        self.grasps_changed = Signal()
        self.pose_changed = Signal()
        self.scores_changed = Signal()
        self.selection_changed = Signal()
        self.sweep_changed = Signal()
        self.filter_changed = Signal()

    # ------------------------------------------------------------------ mutation
    def set_object(self, obj: SceneObject) -> None:
        """Show a new object; its grasps, scores, pose and sweep are reset."""
        self.object = obj
        self.grasps, self.scores, self.selected, self.sweep = [], {}, None, None
        self.user_selected, self.rejected = False, []
        self.rotation, self.euler_deg = np.eye(3), (0.0, 0.0, 0.0)
        self.version += 1
        self.object_changed.emit()
        self.grasps_changed.emit()
        self.pose_changed.emit()
        self.scores_changed.emit()
        self.sweep_changed.emit()

    def set_grasps(self, grasps: list[np.ndarray], scores: dict[str, np.ndarray] | None = None,
                   rejected: list[str] = (), keep_user_selection: bool = False) -> None:
        """Replace the candidate grasps (object frame); optional scores that come with them and
        the reasons of grasps removed beforehand. The best grasp is selected (the first while
        unscored); with ``keep_user_selection`` a grasp the user picked stays picked."""
        keep = keep_user_selection and self.user_selected and self.selected is not None \
            and self.selected < len(grasps)
        self.grasps = [np.asarray(g, dtype=np.float64) for g in grasps]
        self.scores = {k: np.asarray(v, dtype=np.float64) for k, v in (scores or {}).items()}
        self.rejected = list(rejected)
        self.user_selected = bool(keep)
        self.selected = self.selected if keep else self.best()
        self.sweep = None
        self.version += 1
        self.grasps_changed.emit()
        self.scores_changed.emit()
        self.selection_changed.emit()
        self.sweep_changed.emit()

    def set_rotation(self, rotation: np.ndarray, euler_deg: tuple[float, float, float] | None = None) -> None:
        """Turn the object (and its grasps) to ``rotation``; current scores become stale."""
        self.rotation = np.asarray(rotation, dtype=np.float64)
        self.euler_deg = euler_deg if euler_deg is not None else self.euler_deg
        self.scores = {}
        self.version += 1
        self.pose_changed.emit()
        self.scores_changed.emit()

    def set_euler(self, roll: float, pitch: float, yaw: float) -> None:
        """Pose from roll/pitch/yaw in degrees (intrinsic Z-Y-X, as in ``geometry``)."""
        rot = rotation_from_euler(*np.radians([roll, pitch, yaw]))
        self.set_rotation(rot, (float(roll), float(pitch), float(yaw)))

    def set_scores(self, scores: dict[str, np.ndarray], version: int) -> bool:
        """Store scores computed for ``version``; returns False (and ignores them) if stale."""
        if version != self.version:
            return False
        self.scores = {k: np.asarray(v, dtype=np.float64) for k, v in scores.items()}
        self.scores_changed.emit()
        if not self.user_selected:  # sweep steps (add_sweep_step) never move the selection
            self._set_selected(self.best())
        return True

    def select(self, grasp: int | None, by_user: bool = True) -> None:
        """Select grasp ``grasp`` (``ValueError`` when out of range); a user's choice is kept
        through later re-scoring, ``by_user=False`` leaves the automatic best-first choice on."""
        if grasp is not None and not 0 <= grasp < len(self.grasps):
            raise ValueError(f"grasp {grasp} out of range (0..{len(self.grasps) - 1})")
        self.user_selected = by_user and grasp is not None
        self._set_selected(grasp)

    def _set_selected(self, grasp: int | None) -> None:
        if grasp != self.selected:
            self.selected = grasp
            self.selection_changed.emit()
            self.sweep_changed.emit()  # the plot follows the selected grasp

    def set_top_n(self, n: int | None) -> None:
        """Show only the ``n`` best grasps (``None`` or >= the grasp count: all)."""
        n = None if n is None or n < 1 else int(n)
        if n != self.top_n:
            self.top_n = n
            self.filter_changed.emit()

    # ------------------------------------------------------------------ sweeps
    def start_sweep(self, axis_label: str, total_steps: int) -> None:
        self.sweep = SweepRecord(axis_label, total_steps)
        self.sweep_changed.emit()

    def add_sweep_step(self, angle_deg: float, rotation: np.ndarray, scores: dict[str, np.ndarray]) -> None:
        """One orientation of a sweep: the object is shown there with the scores computed there."""
        if self.sweep is None:
            raise ValueError("add_sweep_step called without start_sweep")
        self.rotation = np.asarray(rotation, dtype=np.float64)
        self.version += 1
        self.scores = {k: np.asarray(v, dtype=np.float64) for k, v in scores.items()}
        self.sweep.angles_deg.append(float(angle_deg))
        for name, value in self.scores.items():
            self.sweep.scores.setdefault(name, []).append(value)
        self.pose_changed.emit()
        self.scores_changed.emit()
        self.sweep_changed.emit()

    # ------------------------------------------------------------------ read access
    def _to_world(self, pts: np.ndarray) -> np.ndarray:
        center = self.object.center  # [3]
        return (np.asarray(pts) - center) @ self.rotation.T + center

    def world_points(self) -> np.ndarray:
        return self._to_world(self.object.points)  # [N, 3]

    def world_normals(self) -> np.ndarray | None:
        n = self.object.normals
        return None if n is None else np.asarray(n) @ self.rotation.T  # [N, 3]

    def world_mesh_vertices(self) -> np.ndarray | None:
        v = self.object.mesh_vertices
        return None if v is None else self._to_world(v)  # [V, 3]

    def world_grasps(self) -> list[np.ndarray]:
        return [self._to_world(g) for g in self.grasps]  # each [K, 3]

    def primary_key(self) -> str | None:
        """The scores that rank and colour the grasps (node, else equivariant, else baseline)."""
        return next((k for k in PRIMARY_KEYS if k in self.scores and len(self.scores[k]) == len(self.grasps)),
                    None)

    def best(self) -> int | None:
        """The best-scored grasp (the first when unscored; None without grasps)."""
        key = self.primary_key()
        return (self.ranking(key)[0] if key else 0) if self.grasps else None

    def visible(self) -> list[int]:
        """Grasp indices shown, best first: the ``top_n`` best plus the selected grasp."""
        key = self.primary_key()
        order = self.ranking(key) if key else list(range(len(self.grasps)))
        shown = order if self.top_n is None else order[:self.top_n]
        if self.selected is not None and self.selected not in shown:
            shown = shown + [self.selected]
        return shown

    def ranking(self, model: str) -> list[int]:
        """Grasp indices, best score of ``model`` first (index order when unscored)."""
        s = self.scores.get(model)
        if s is None or len(s) != len(self.grasps):
            return list(range(len(self.grasps)))
        return [int(i) for i in np.argsort(-s, kind="stable")]
