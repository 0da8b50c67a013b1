"""Scoring off the GUI thread: single-pose jobs, sweeps, and the controller that queues them.

One worker thread (a private ``QThreadPool`` of size 1) runs one job at a time. Requests
that arrive while it is busy are coalesced: only the latest state is scored next, and a
result computed for an older scene version is dropped by ``Scene.set_scores``.
"""

from __future__ import annotations

import os
import threading
import traceback

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from grasp_equi_gui.models import ModelSlot
from grasp_equi_gui.scene import Scene
from grasp_equi_gui.scoring import SWEEP_STEPS, PosedScene, score_at, sweep_rotations


class _JobSignals(QObject):
    progress = Signal(object)  # sweep: (step index, angle_deg, rotation, scores)
    finished = Signal(object)  # score: (version, scores); sweep: cancelled flag
    failed = Signal(str)


def _describe(err: Exception) -> str:
    """The dialog text: the scorer's ValueError says what was wrong; anything else is named."""
    if os.environ.get("GRASP_EQUI_DEBUG"):
        traceback.print_exc()
    return str(err) if isinstance(err, ValueError) else f"{type(err).__name__}: {err}"


class _ScoreJob(QRunnable):
    def __init__(self, slots: list[ModelSlot], posed: PosedScene, signals: _JobSignals):
        super().__init__()
        self.slots, self.posed, self.signals = slots, posed, signals

    def run(self) -> None:
        try:
            scores = score_at(self.slots, self.posed, self.posed.rotation)
        except Exception as err:  # noqa: BLE001  reported in a message box, never raised into Qt
            self.signals.failed.emit(_describe(err))
            return
        self.signals.finished.emit((self.posed.version, scores))


class _SweepJob(QRunnable):
    def __init__(self, slots: list[ModelSlot], posed: PosedScene, mode: str, steps: int, seed: int,
                 cancel: threading.Event, signals: _JobSignals):
        super().__init__()
        self.slots, self.posed, self.mode, self.steps, self.seed = slots, posed, mode, steps, seed
        self.cancel, self.signals = cancel, signals

    def run(self) -> None:
        try:
            for i, (angle, turn) in enumerate(sweep_rotations(self.mode, self.steps, self.seed)):
                if self.cancel.is_set():
                    break
                rotation = turn @ self.posed.rotation  # [3, 3] the sweep turns the current pose
                self.signals.progress.emit((i, angle, rotation, score_at(self.slots, self.posed, rotation)))
        except Exception as err:  # noqa: BLE001
            self.signals.failed.emit(_describe(err))
            return
        self.signals.finished.emit(self.cancel.is_set())


class ScoringController(QObject):
    """Keeps the scene's scores current and runs sweeps, one job at a time off the GUI thread."""

    busy_changed = Signal(bool)
    sweep_progress = Signal(int, int)  # steps done, total
    sweep_finished = Signal(bool)  # cancelled
    error = Signal(str)

    def __init__(self, scene: Scene, slots: list[ModelSlot], parent=None):
        super().__init__(parent)
        self.scene, self.slots = scene, slots
        self.enabled = True  # False in live mode: scores come from the node
        self.sweeping = False
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._busy = False
        self._pending_score = False
        self._signals: _JobSignals | None = None  # keep the current job's signal object alive
        self._cancel = threading.Event()
        self._sweep_start = None
        self._pending_sweep: tuple | None = None
        self._suppress_rescore = False
        scene.scores_changed.connect(self._on_scores_changed)

    @property
    def busy(self) -> bool:
        return self._busy

    def _set_busy(self, busy: bool) -> None:
        if busy != self._busy:
            self._busy = busy
            self.busy_changed.emit(busy)

    def _on_scores_changed(self) -> None:
        if (not self.scene.scores and self.scene.grasps and self.enabled and not self.sweeping
                and not self._suppress_rescore):
            self.request_score()

    # ------------------------------------------------------------------ single pose
    def request_score(self) -> None:
        """Score the scene as it is when the worker is next free."""
        if self.scene.object is None or not self.scene.grasps:
            return
        if self._busy:
            self._pending_score = True
            return
        self._pending_score = False
        signals = self._new_signals()
        signals.finished.connect(self._on_score_done)
        self._set_busy(True)
        self._pool.start(_ScoreJob(self.slots, PosedScene.from_scene(self.scene), signals))

    def _on_score_done(self, result) -> None:
        version, scores = result
        self.scene.set_scores(scores, version)  # ignored when the scene moved on meanwhile
        self._job_ended()

    # ------------------------------------------------------------------ sweep
    def start_sweep(self, mode: str, steps: int = SWEEP_STEPS, seed: int = 0) -> None:
        """Turn object and grasps through ``steps`` orientations, re-scoring at each.

        Starts as soon as the worker is free (a running single-pose job finishes first).
        """
        if self.scene.object is None or not self.scene.grasps:
            self.error.emit("Sample or load grasps before sweeping.")
            return
        if self.sweeping:
            return
        if self._busy:
            self._pending_sweep = (mode, steps, seed)
            return
        self._pending_sweep = None
        self._pending_score = False
        self.sweeping = True
        self._cancel = threading.Event()
        posed = PosedScene.from_scene(self.scene)
        self._sweep_start = (posed.rotation, self.scene.euler_deg)
        self.scene.start_sweep(mode, steps)
        signals = self._new_signals()
        signals.progress.connect(self._on_sweep_step)
        signals.finished.connect(self._on_sweep_done)
        self._set_busy(True)
        self.sweep_progress.emit(0, steps)
        self._pool.start(_SweepJob(self.slots, posed, mode, steps, seed, self._cancel, signals))

    def cancel_sweep(self) -> None:
        """Stop a running sweep after its current orientation (or drop one still waiting)."""
        self._pending_sweep = None
        self._cancel.set()

    def _on_sweep_step(self, step) -> None:
        i, angle, rotation, scores = step
        self.scene.add_sweep_step(angle, rotation, scores)
        self.sweep_progress.emit(i + 1, self.scene.sweep.total_steps)

    def _on_sweep_done(self, cancelled: bool) -> None:
        self.sweeping = False
        self._set_busy(False)
        self._restore_start_pose(rescore=True)  # back where it started, re-scored there
        self.sweep_finished.emit(bool(cancelled))

    def _restore_start_pose(self, rescore: bool) -> None:
        rotation, euler = self._sweep_start
        self._suppress_rescore = not rescore
        try:
            self.scene.set_rotation(rotation, euler)
        finally:
            self._suppress_rescore = False

    # ------------------------------------------------------------------ plumbing
    def _new_signals(self) -> _JobSignals:
        self._signals = _JobSignals()
        self._signals.failed.connect(self._on_failed)
        return self._signals

    def _on_failed(self, message: str) -> None:
        was_sweeping = self.sweeping
        self.sweeping = False
        self._pending_score = False
        self._pending_sweep = None
        self._set_busy(False)
        if was_sweeping:
            self._restore_start_pose(rescore=False)  # the same data would fail again
        self.error.emit(message)

    def _job_ended(self) -> None:
        self._set_busy(False)
        if self._pending_sweep is not None:
            self.start_sweep(*self._pending_sweep)
        elif self._pending_score:
            self.request_score()

    def shutdown(self) -> None:
        """Stop a sweep and wait for the worker (called when the window closes)."""
        self._cancel.set()
        self._pool.waitForDone(30_000)
