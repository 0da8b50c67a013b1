"""``--screenshot``: drive the window through the default scene, save a PNG, quit.

Sequence, all on the event loop (the worker thread scores): load the object, sample grasps,
wait for their scores, select the best grasp, sweep, and grab the window once the sweep has
reached the requested step. With ``--ros``: subscribe and grab once the node's scored grasps
are shown. Any error ends the run with exit code 1 and a one-line reason.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PySide6.QtCore import QCoreApplication, QObject, QTimer

from grasp_equi_gui.models import EQUIVARIANT

NO_OPENGL = ("the 3D view has no OpenGL context (QT_QPA_PLATFORM=offscreen has no OpenGL); "
             "run it under `xvfb-run -a` or on a desktop")


class ScreenshotRun(QObject):
    def __init__(self, window, args):
        super().__init__(window)
        self.window, self.args = window, args
        self.path = Path(args.screenshot)
        self.exit_code = 1
        self._stage = "start"
        self._finished = False

    def start(self) -> None:
        w = self.window
        w.controller.error.connect(self._fail)
        w.controller.sweep_progress.connect(self._on_progress)
        w.controller.sweep_finished.connect(self._on_sweep_finished)
        w.scene.scores_changed.connect(self._on_scores)
        w.controls.grasps.count.setValue(self.args.grasps)
        w.rng = np.random.default_rng(self.args.seed)  # the same picture every time
        QTimer.singleShot(int(self.args.timeout * 1000), lambda: self._fail(f"timed out at stage {self._stage!r}"))
        QTimer.singleShot(0, self._load)

    def _load(self) -> None:
        w = self.window
        if self.args.ros:  # live: wait for the node's scored grasps, then grab
            self._stage = "live"
            if not w.live.start():
                self._fail(w.last_error.text() if w.last_error else "live mode could not start")
            return
        self._stage = "load"
        if w.last_error is not None and w.last_error.isVisible():  # e.g. unreadable --weights
            w.last_error.close()
        ok = w.open_file(self.args.object) if self.args.object else w.load_sample(self.args.sample, self.args.seed)
        if not ok:
            self._fail(w.last_error.text() if w.last_error else "could not load the object")
            return
        self._stage = "score"

    def _on_scores(self) -> None:
        scene = self.window.scene
        if not scene.scores or self.window.controller.sweeping:
            return
        if self._stage == "live" and "node" in scene.scores and scene.object is not None:
            self._stage = "grab"
            QTimer.singleShot(300, self._grab)
            return
        if self._stage == "rescore":  # the full sweep is done and the start pose re-scored
            self._stage = "grab"
            QTimer.singleShot(0, self._grab)
            return
        if self._stage != "score":
            return
        self._stage = "sweep"
        key = EQUIVARIANT if EQUIVARIANT in scene.scores else next(iter(scene.scores))
        scene.select(scene.ranking(key)[0])
        QTimer.singleShot(0, lambda: self.window.start_sweep(self.args.sweep_axis, self.args.sweep_steps))

    def _on_progress(self, done: int, total: int) -> None:
        wanted = self.args.screenshot_step or total
        if self._stage == "sweep" and done >= wanted and wanted < total:  # mid-sweep picture
            self._stage = "grab"
            QTimer.singleShot(0, self._grab)

    def _on_sweep_finished(self, cancelled: bool) -> None:
        if self._stage == "sweep" and not cancelled:
            self._stage = "rescore"  # grab once the start pose has its scores again

    def _grab(self) -> None:
        QCoreApplication.processEvents()
        if not self.window.view.isValid():
            self._fail(NO_OPENGL)
            return
        self.window.view.update()
        QCoreApplication.processEvents()
        image = self.window.grab().toImage()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if image.isNull() or not image.save(str(self.path), "PNG"):
            self._fail(f"could not write {self.path}")
            return
        print(f"screenshot: {self.path} ({image.width()}x{image.height()})")
        sweep, grasp = self.window.scene.sweep, self.window.scene.selected
        if sweep is not None and grasp is not None and sweep.angles_deg:  # the numbers the picture shows
            devs = ", ".join(f"{k} {sweep.max_deviation(k, grasp):.2g}" for k in sweep.scores)
            print(f"sweep about {sweep.axis_label}: grasp #{grasp}, {len(sweep.angles_deg)}/{sweep.total_steps} "
                  f"orientations, max deviation {devs}")
        self._finish(0)

    def _fail(self, message: str) -> None:
        if self._finished:
            return
        print(f"grasp-equi-gui --screenshot failed: {message.splitlines()[0] if message else '?'}", file=sys.stderr)
        self._finish(1)

    def _finish(self, code: int) -> None:
        self._finished = True
        self.exit_code = code
        self.window.controller.cancel_sweep()
        self.window.close()
        QCoreApplication.quit()
