"""``grasp-equi-gui`` / ``grasp_gui``: the desktop app's command line.

    grasp-equi-gui [--object PATH] [--ros] [--screenshot PATH] [--weights PATH] ...

``--screenshot`` renders the default scene (a sample object, its scored grasps and a sweep),
saves a PNG and exits: used by the tests and for the README's picture.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback

from grasp_equi_gui.scoring import SWEEP_MODES, SWEEP_STEPS

SCREENSHOT_SIZE = (1500, 900)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="grasp-equi-gui", description="Desktop app of grasp_equi: turn an object "
                                "any way you like and watch the equivariant grasp score hold while a "
                                "non-equivariant baseline's wanders.")
    p.add_argument("--object", metavar="PATH", help="mesh or cloud to open (OBJ/STL/PLY/PCD/XYZ/NPY/NPZ)")
    p.add_argument("--sample", default=None, help="built-in sample family to show first (default: bottle)")
    p.add_argument("--seed", type=int, default=0, help="sample object seed")
    p.add_argument("--ros", action="store_true", help="live view: subscribe to the node's cloud + scored_grasps")
    p.add_argument("--weights", metavar="PATH", help="equivariant checkpoint (default: shipped weights)")
    p.add_argument("--baseline-weights", metavar="PATH",
                   help="baseline checkpoint (default: grasp_equi/weights/baseline.safetensors)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:i]")
    p.add_argument("--grasps", type=int, default=24, help="candidate grasps sampled on the first object")
    p.add_argument("--screenshot", metavar="PATH", help="render the default scene with a sweep, save PNG, exit")
    p.add_argument("--sweep-axis", default="y", choices=SWEEP_MODES, help="sweep used by --screenshot")
    p.add_argument("--sweep-steps", type=int, default=SWEEP_STEPS, help="orientations in the sweep (default 72)")
    p.add_argument("--screenshot-step", type=int, default=None,
                   help="take the screenshot after this many sweep steps (default: all; fewer = mid-sweep)")
    p.add_argument("--timeout", type=float, default=900.0, help="--screenshot gives up after this many seconds")
    return p


def _has_display() -> bool:
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    return bool(platform and platform != "xcb") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def configure_qt() -> None:
    """Settings Qt takes only before the QApplication exists.

    pyqtgraph compiles its GL shaders once per process; without shared contexts a second
    GLViewWidget (another window, a test's fresh window) gets "invalid value" from glUseProgram.
    """
    from PySide6.QtCore import QCoreApplication, Qt

    if QCoreApplication.instance() is None:
        QCoreApplication.setAttribute(Qt.ApplicationAttribute.AA_ShareOpenGLContexts)


def _install_excepthook(app) -> None:
    """An unexpected error in a slot becomes a dialog and one stderr line, never a dead window."""
    from PySide6.QtWidgets import QMessageBox

    def hook(exc_type, exc, tb):
        print(f"grasp-equi-gui: {exc_type.__name__}: {exc}", file=sys.stderr)
        if os.environ.get("GRASP_EQUI_DEBUG"):
            traceback.print_exception(exc_type, exc, tb)
        window = app.activeWindow()
        if window is not None:
            QMessageBox.warning(window, "Unexpected error", f"{exc_type.__name__}: {exc}")

    sys.excepthook = hook


def check_weights(args) -> str | None:
    """The error line for a ``--weights``/``--baseline-weights`` that cannot be loaded, else None.

    Only the checkpoint's header is read (no network is built), so a bad path fails in
    milliseconds, before any window opens; the default (shipped) weights are not checked here:
    without them the window runs a labelled untrained model."""
    from grasp_equi.checkpoint import read_checkpoint

    for option, path in (("--weights", args.weights), ("--baseline-weights", args.baseline_weights)):
        if path is None:
            continue
        try:
            read_checkpoint(path)
        except (ValueError, OSError) as err:  # CheckpointError is a ValueError
            return f"{option} {path}: {' '.join(str(err).split())}"
    return None


def _quit_on_signals(app) -> None:
    """SIGINT (Ctrl-C) and SIGTERM (``ros2 launch`` stopping) close the window and the app
    (exit code 0).

    Python runs signal handlers only between bytecodes, and Qt's event loop runs none while it
    waits, so a 200 ms timer hands control back to Python (without it a Ctrl-C lands as a
    KeyboardInterrupt inside some paint slot, or waits for the next mouse move)."""
    from PySide6.QtCore import QTimer

    def close_and_quit() -> None:
        app.closeAllWindows()  # the window's closeEvent ends the live view's ROS context in order
        app.quit()

    def on_signal(*_) -> None:
        # The first signal starts closing; later ones (ros2 launch sends SIGINT after the terminal's
        # Ctrl-C reached the whole group) are ignored, or one landing after app.exec() returned
        # ends the process as a KeyboardInterrupt (exit -2) instead of 0.
        for other in (signal.SIGINT, signal.SIGTERM):
            signal.signal(other, signal.SIG_IGN)
        QTimer.singleShot(0, close_and_quit)

    for sig in (signal.SIGINT, signal.SIGTERM):  # queued: also quits when it lands before app.exec()
        signal.signal(sig, on_signal)
    timer = QTimer(app)
    timer.timeout.connect(lambda: None)
    timer.start(200)


def make_window(args):
    """Load the models and build the window (no event loop)."""
    from grasp_equi_gui.models import load_baseline, load_equivariant
    from grasp_equi_gui.window import MainWindow

    equivariant, warn_e = load_equivariant(args.weights, args.device)
    baseline, warn_b = load_baseline(args.baseline_weights, args.device)
    return MainWindow([equivariant, baseline], [w for w in (warn_e, warn_b) if w], sweep_steps=args.sweep_steps)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--ros-args" in argv:  # `ros2 run grasp_equi grasp_gui --ros-args ...`: ROS arguments are not ours
        argv = argv[:argv.index("--ros-args")]
    args = build_parser().parse_args(argv)
    if args.sweep_steps < 2:
        print("grasp-equi-gui: --sweep-steps must be at least 2", file=sys.stderr)
        return 2
    try:
        from grasp_equi.scorer import resolve_device

        resolve_device(args.device)
    except (ValueError, RuntimeError) as err:
        print(f"grasp-equi-gui: --device: {err}", file=sys.stderr)
        return 2
    problem = check_weights(args)
    if problem:
        print(f"grasp-equi-gui: error: {problem}", file=sys.stderr)
        return 1
    if not _has_display():
        print("grasp-equi-gui: no display (DISPLAY is not set). Run it on a desktop, or headless as "
              "`xvfb-run -a grasp-equi-gui ...`", file=sys.stderr)
        return 2
    from PySide6.QtWidgets import QApplication

    configure_qt()
    app = QApplication.instance() or QApplication(["grasp-equi-gui"])
    _install_excepthook(app)
    _quit_on_signals(app)
    window = make_window(args)
    if args.screenshot:
        from grasp_equi_gui.screenshot import ScreenshotRun

        run = ScreenshotRun(window, args)
        window.resize(*SCREENSHOT_SIZE)
        window.show()
        run.start()
        app.exec()
        return run.exit_code
    window.resize(*SCREENSHOT_SIZE)
    window.controls.grasps.count.setValue(args.grasps)
    window.show()
    app.processEvents()
    if not window.view.isValid():
        from grasp_equi_gui.screenshot import NO_OPENGL

        window.show_error(f"The 3D view cannot draw: {NO_OPENGL}.", title="No OpenGL")
    if args.ros:
        window.live.start()
    elif args.object:
        window.open_file(args.object)
    else:
        window.load_sample(args.sample, args.seed)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
