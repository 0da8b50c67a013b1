"""The desktop GUI, driven for real: a Qt window under Xvfb (pytest-xvfb), real e3nn
networks scoring in the worker thread, real files, and real rclpy/DDS for live mode.

Models are untrained and tiny so the suite stays fast; invariance does not need training.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph.opengl")

from grasp_equi import GraspScorer  # noqa: E402
from grasp_equi.checkpoint import save_checkpoint  # noqa: E402
from grasp_equi_gui.models import BASELINE, EQUIVARIANT, ModelSlot, baseline_registered, load_equivariant  # noqa: E402
from grasp_equi_gui.app import configure_qt  # noqa: E402
from grasp_equi_gui.scene import Scene, SceneObject  # noqa: E402

configure_qt()  # before pytest-qt creates the QApplication: one GL context family for all windows

pytestmark = pytest.mark.gui

TINY = dict(num_nodes=64, irreps_hidden="8x0e + 2x1o + 2x2e", radial_hidden=16, readout_hidden=16,
            encoder_layers=1, pair_layers=1)
TINY_BASELINE = dict(architecture="pointnet", num_nodes=64, baseline_width=16, readout_hidden=16, pair_layers=1)
SAMPLE, CLOUD_POINTS, NUM_GRASPS = "box", 600, 8
SCORE_TIMEOUT_MS = 120_000
REPO = Path(__file__).resolve().parents[1]


def tiny_slots() -> list[ModelSlot]:
    """An untrained tiny equivariant network and the baseline, each with a 3-member (seeded, unfitted) ensemble."""
    from conftest import with_test_ensemble

    plain = GraspScorer.untrained(seed=0, device="cpu", **TINY)
    equi = GraspScorer(*with_test_ensemble(plain), device="cpu", name=plain.name)
    slots = [ModelSlot(EQUIVARIANT, equi, "equivariant: UNTRAINED model (test)", trained=False)]
    if baseline_registered():
        base_plain = GraspScorer.untrained(seed=0, device="cpu", **TINY_BASELINE)
        base = GraspScorer(*with_test_ensemble(base_plain), device="cpu", name=base_plain.name)
        slots.append(ModelSlot(BASELINE, base, "baseline: UNTRAINED model (test)", trained=False))
    else:
        slots.append(ModelSlot(BASELINE, None, "baseline: not available", trained=False))
    return slots


@pytest.fixture
def window(qtbot):
    from grasp_equi_gui.window import MainWindow

    win = MainWindow(tiny_slots())
    win.cloud_points = CLOUD_POINTS
    win.controls.grasps.count.setValue(NUM_GRASPS)
    win.rng = np.random.default_rng(0)
    qtbot.addWidget(win)
    win.resize(1300, 800)
    win.show()
    qtbot.waitExposed(win)
    yield win
    win.live.stop()
    win.controller.shutdown()


def wait_scored(qtbot, win) -> None:
    """Until the worker is idle and the scene holds scores for the current pose."""
    qtbot.waitUntil(lambda: bool(win.scene.scores) and not win.controller.busy, timeout=SCORE_TIMEOUT_MS)


def load_scored_sample(qtbot, win) -> None:
    assert win.load_sample(SAMPLE, seed=0)
    wait_scored(qtbot, win)


# ---------------------------------------------------------------------------- rotation
def test_rotation_sliders_keep_equivariant_score_and_move_baseline(qtbot, window):
    load_scored_sample(qtbot, window)
    before = {k: v.copy() for k, v in window.scene.scores.items()}
    version = window.scene.version
    sliders = window.controls.pose.sliders
    for name, value in (("roll", 70), ("pitch", -40), ("yaw", 125)):
        sliders[name].setValue(value)  # each move re-scores; the last pose wins
    qtbot.waitUntil(lambda: window.scene.euler_deg == (70.0, -40.0, 125.0), timeout=5000)
    wait_scored(qtbot, window)
    assert window.scene.version > version  # the pose really changed and was re-scored
    assert not np.allclose(window.scene.world_points(), window.scene.object.points)  # the OBJECT turned
    after = window.scene.scores
    equi_change = np.abs(after[EQUIVARIANT] - before[EQUIVARIANT]).max()
    assert equi_change < 1e-4, f"equivariant score moved by {equi_change}"
    if BASELINE not in after:
        pytest.skip("baseline (grasp_equi.model.baseline) not available")
    base_change = np.abs(after[BASELINE] - before[BASELINE]).max()
    assert base_change > 1e-4, f"baseline score unchanged under rotation ({base_change})"


def test_random_pose_rescores_with_the_real_pipeline(qtbot, window):
    load_scored_sample(qtbot, window)
    before = window.scene.scores[EQUIVARIANT].copy()
    window.controls.pose.random_pose.click()
    qtbot.waitUntil(lambda: window.scene.euler_deg != (0.0, 0.0, 0.0), timeout=5000)
    wait_scored(qtbot, window)
    assert window.controls.pose.euler() == pytest.approx(window.scene.euler_deg)
    np.testing.assert_allclose(window.scene.scores[EQUIVARIANT], before, atol=1e-4)


def test_sweep_fills_plot_with_72_points_per_model(qtbot, window):
    load_scored_sample(qtbot, window)
    window.scene.select(window.scene.ranking(EQUIVARIANT)[0])
    with qtbot.waitSignal(window.controller.sweep_finished, timeout=4 * SCORE_TIMEOUT_MS) as finished:
        window.start_sweep("random axes")
        qtbot.waitUntil(lambda: window.progress.isVisible(), timeout=5000)  # progress shows during the sweep
        assert window.controller.sweeping and not window.controls.pose.isEnabled()
    assert finished.args == [False]
    sweep = window.scene.sweep
    assert sweep.angles_deg == pytest.approx(np.arange(72) * 5.0)
    grasp = window.scene.selected
    for key in window.plot.curves:
        angles, scores = window.plot.curve_data(key)
        assert len(angles) == len(scores) == 72
        np.testing.assert_allclose(scores, sweep.series(key, grasp))
    assert sweep.max_deviation(EQUIVARIANT, grasp) < 1e-4
    assert f"{sweep.max_deviation(EQUIVARIANT, grasp):.2e}" in window.plot.deviation_label.text()
    sigma = EQUIVARIANT + "_std"  # the ensemble's spread is drawn too, and stays flat as well
    assert sigma in window.plot.curves and sweep.series(sigma, grasp).max() > 1e-4
    assert sweep.max_deviation(sigma, grasp) < 1e-5
    if BASELINE in window.plot.curves:
        # every orientation was scored afresh: the non-equivariant net gives different numbers, and so
        # does its ensemble's spread (drawn beside the equivariant one's flat line)
        assert len(np.unique(sweep.series(BASELINE, grasp))) > 36
        assert BASELINE + "_std" in window.plot.curves
        assert len(np.unique(sweep.series(BASELINE + "_std", grasp))) > 36
    wait_scored(qtbot, window)  # back at the start pose, re-scored there
    assert np.allclose(window.scene.rotation, np.eye(3))


def test_stopping_a_sweep_restores_the_start_pose(qtbot, window):
    load_scored_sample(qtbot, window)
    window.set_pose(30, 0, 0)
    wait_scored(qtbot, window)
    start = window.scene.rotation.copy()
    window.start_sweep("x")
    qtbot.waitUntil(lambda: len(window.scene.sweep.angles_deg) >= 3, timeout=SCORE_TIMEOUT_MS)
    with qtbot.waitSignal(window.controller.sweep_finished, timeout=SCORE_TIMEOUT_MS) as finished:
        window.controls.sweep.stop.click()
    assert finished.args == [True]
    assert 3 <= len(window.scene.sweep.angles_deg) < 72
    wait_scored(qtbot, window)
    np.testing.assert_allclose(window.scene.rotation, start)
    assert window.controls.pose.isEnabled() and window.controls.pose.euler() == (30.0, 0.0, 0.0)


# ---------------------------------------------------------------------------- grasps
def test_grasp_list_is_sorted_and_selection_highlights(qtbot, window):
    load_scored_sample(qtbot, window)
    table, scene = window.table, window.scene
    shown = [float(table.item(r, 2).text()) for r in range(table.rowCount())]
    assert shown == sorted(shown, reverse=True) and len(shown) == len(scene.grasps)
    table.selectRow(3)
    chosen = table.row_grasps[3]
    assert scene.selected == chosen
    np.testing.assert_allclose(window.view.selected_contacts.pos, scene.world_grasps()[chosen])
    assert f"grasp #{chosen}" in window.selection_label.text()


@pytest.mark.parametrize("k", [3, 5])
def test_multifinger_grasps_are_scored(qtbot, window, k):
    assert window.load_sample(SAMPLE, seed=1)
    wait_scored(qtbot, window)
    assert window.sample_grasps(k=k, count=4)
    wait_scored(qtbot, window)
    assert all(len(g) == k for g in window.scene.grasps)
    assert window.scene.scores[EQUIVARIANT].shape == (len(window.scene.grasps),)


# ---------------------------------------------------------------------------- files
def _write_files(tmp_path: Path) -> dict[str, Path]:
    import open3d as o3d
    import trimesh

    mesh = trimesh.creation.capsule(radius=0.02, height=0.05)
    paths = {}
    for suffix in ("obj", "stl", "ply"):
        paths[suffix] = tmp_path / f"capsule.{suffix}"
        mesh.export(paths[suffix])
    cloud = mesh.sample(500)
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(cloud))
    for suffix in ("pcd", "cloud.ply"):  # a PLY without faces is a cloud
        paths[suffix] = tmp_path / f"capsule.{suffix}"
        o3d.io.write_point_cloud(str(paths[suffix]), pcd)
    paths["npy"] = tmp_path / "capsule.npy"
    np.save(paths["npy"], cloud)
    return paths


def test_open_mesh_and_cloud_files(qtbot, window, tmp_path):
    for suffix, path in _write_files(tmp_path).items():
        assert window.open_file(str(path)), suffix
        obj = window.scene.object
        assert obj.name.startswith("capsule") and len(obj.points) >= 500
        assert (obj.mesh_faces is not None) == (suffix in ("obj", "stl", "ply"))
        assert 0.02 < obj.radius < 0.06  # metres, as written
    wait_scored(qtbot, window)


@pytest.mark.parametrize("name, content", [
    ("broken.obj", b"v 1 2\nf 1 2 3 4 5\n\x00\xff garbage"),
    ("broken.stl", b"solid x\nfacet normal nan\n\x00\x01\x02"),
    ("broken.pcd", b"# .PCD v0.7\nFIELDS x y\nDATA ascii\n1 2\n"),
    ("broken.ply", b"ply\nformat ascii 1.0\nelement vertex 999\nend_header\n1 2 3\n"),
    ("cloud.npy", b"\x93NUMPY not really"),
])
def test_corrupt_file_shows_dialog_and_window_stays_usable(qtbot, window, tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    assert window.open_file(str(path)) is False
    box = window.last_error
    assert box is not None and box.isVisible()
    assert name in box.text()
    assert "Traceback" not in box.text()
    box.close()
    load_scored_sample(qtbot, window)  # still works afterwards
    assert window.scene.object.name.startswith(SAMPLE)


def test_bad_grasps_file_and_contacts_off_the_object_show_dialogs(qtbot, window, tmp_path):
    load_scored_sample(qtbot, window)
    bad = tmp_path / "grasps.npy"
    np.save(bad, np.zeros((4, 3)))
    assert window.load_grasps(str(bad)) is False and "(G, K>=2, 3)" in window.last_error.text()
    window.last_error.close()
    far = tmp_path / "far.npy"
    np.save(far, np.full((2, 2, 3), 5.0) + np.arange(3))  # metres away from the object
    assert window.load_grasps(str(far)) is False  # refused before scoring, never "scoring…" forever
    assert "from the object" in window.last_error.text() and "removed" in window.last_error.text()
    window.last_error.close()
    assert window.sample_grasps()
    wait_scored(qtbot, window)


def test_missing_weights_fall_back_to_a_labelled_untrained_model(tmp_path):
    slot, warning = load_equivariant(tmp_path / "nope.safetensors", device="cpu")
    assert slot.available and not slot.trained and "UNTRAINED" in slot.label
    assert "nope.safetensors" in warning


# ---------------------------------------------------------------------------- screenshot
def _assert_not_blank(image, min_colors: int = 200) -> None:
    from PySide6.QtGui import QImage

    image = image.convertToFormat(QImage.Format.Format_RGB32)
    arr = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())
    pixels = arr[:, :4 * image.width()].reshape(image.height(), image.width(), 4)[..., :3]
    colors = np.unique(pixels.reshape(-1, 3)[::7], axis=0)
    assert len(colors) >= min_colors, f"only {len(colors)} distinct colours: blank?"


def test_screenshot_shows_the_scene(qtbot, window):
    load_scored_sample(qtbot, window)
    qtbot.wait(200)
    view = window.view.grabFramebuffer()
    assert not view.isNull()
    _assert_not_blank(view, min_colors=20)  # cloud + coloured grasps on the dark background
    background = np.array([24, 26, 32])
    from PySide6.QtGui import QImage

    img = view.convertToFormat(QImage.Format.Format_RGB888)
    rgb = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.bytesPerLine())[:, :3 * img.width()]
    rgb = rgb.reshape(img.height(), img.width(), 3).astype(int)
    drawn = (np.abs(rgb - background).sum(axis=2) > 30).mean()
    assert drawn > 0.005, f"only {drawn:.2%} of the 3D view differs from the background"
    _assert_not_blank(window.grab().toImage())


def test_screenshot_cli_writes_png(tmp_path):
    from PySide6.QtGui import QImage

    from grasp_equi.model import ModelConfig, build_model

    weights = save_checkpoint(tmp_path / "tiny.safetensors", build_model(ModelConfig(**TINY)), ModelConfig(**TINY))
    out = tmp_path / "shot.png"
    cmd = [sys.executable, "-m", "grasp_equi_gui.app", "--screenshot", str(out), "--weights", str(weights), "--device", "cpu",
           "--sample", SAMPLE, "--grasps", "6", "--sweep-steps", "4"]
    if baseline_registered():
        cfg = ModelConfig(**TINY_BASELINE)
        cmd += ["--baseline-weights", str(save_checkpoint(tmp_path / "base.safetensors", build_model(cfg), cfg))]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    image = QImage(str(out))
    assert not image.isNull() and image.width() >= 1000
    _assert_not_blank(image)


# ---------------------------------------------------------------------------- scene model (Qt-free)
def test_scene_drops_scores_of_an_older_pose():
    scene = Scene()
    pts = np.random.default_rng(0).normal(size=(50, 3))
    scene.set_object(SceneObject("blob", pts))
    scene.set_grasps([pts[:2], pts[2:4]])
    old = scene.version
    scene.set_euler(10, 0, 0)
    assert scene.set_scores({EQUIVARIANT: np.array([0.1, 0.2])}, old) is False and not scene.scores
    assert scene.set_scores({EQUIVARIANT: np.array([0.1, 0.2])}, scene.version)
    assert scene.ranking(EQUIVARIANT) == [1, 0]


# ---------------------------------------------------------------------------- live mode
@pytest.mark.ros
def test_live_mode_shows_cloud_and_scores_from_dds(qtbot, window):
    pytest.importorskip("rclpy")
    from ros_support import publishers
    from sensor_msgs.msg import PointCloud2
    from std_msgs.msg import Header

    from grasp_equi.ros.codec import cloud_message, encode_cloud

    assert window.live.start()
    assert not window.controls.pose.isEnabled()  # live: the node scores, the sliders are off
    rng = np.random.default_rng(3)
    points = rng.normal(size=(300, 3)) * [0.04, 0.03, 0.02]
    contacts = points[rng.choice(300, size=(5, 3))]  # 5 grasps of K=3
    scores = np.array([0.12, 0.93, 0.55, 0.31, 0.78], dtype=np.float32)
    flat = contacts.reshape(-1, 3).astype(np.float32)
    columns = {"x": flat[:, 0], "y": flat[:, 1], "z": flat[:, 2],
               "grasp_id": np.repeat(np.arange(5, dtype=np.uint32), 3), "score": np.repeat(scores, 3)}
    with publishers("gui_test_publisher", {"cloud": PointCloud2, "scored_grasps": PointCloud2}) as pub:
        header = Header(frame_id="camera")
        header.stamp.sec = 7

        def shown() -> bool:
            pub["cloud"].publish(cloud_message(header, points))
            pub["scored_grasps"].publish(encode_cloud(header, columns))
            scene = window.scene
            return scene.object is not None and len(scene.grasps) == 5 and "node" in scene.scores

        qtbot.waitUntil(shown, timeout=30_000)
    scene = window.scene
    assert scene.object.name == "live: camera"
    np.testing.assert_allclose(scene.object.points, points.astype(np.float32), atol=1e-7)
    np.testing.assert_allclose(scene.scores["node"], scores, atol=1e-7)
    for g in range(5):
        np.testing.assert_allclose(scene.grasps[g], contacts[g].astype(np.float32), atol=1e-7)
    assert window.view.cloud_item.pos.shape == (300, 3)
    assert [window.table.row_grasps[r] for r in range(5)] == list(np.argsort(-scores))
    assert scene.selected == int(np.argmax(scores))  # the node's best grasp is the one highlighted
    assert window.table.horizontalHeaderItem(2).text() == "node"
    assert "cloud(s)" in window.controls.live.status.text()
    window.live.stop()
    assert window.controls.pose.isEnabled()


def test_scored_grasps_are_grouped_by_grasp_id_in_any_order():
    pytest.importorskip("sensor_msgs")
    from std_msgs.msg import Header

    from grasp_equi.ros.codec import encode_cloud
    from grasp_equi_gui.ros_live import decode_scored

    xyz = np.arange(15, dtype=np.float32).reshape(5, 3)
    ids = np.array([7, 2, 7, 2, 2], dtype=np.uint32)  # interleaved, not sorted
    score = np.array([0.9, 0.1, 0.9, 0.1, 0.1], dtype=np.float32)
    msg = encode_cloud(Header(frame_id="f"), {"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2],
                                              "grasp_id": ids, "score": score})
    live = decode_scored(msg)
    assert live.grasp_ids.tolist() == [2, 7] and live.frame_id == "f"
    np.testing.assert_allclose(live.grasps[0], xyz[[1, 3, 4]])
    np.testing.assert_allclose(live.grasps[1], xyz[[0, 2]])
    np.testing.assert_allclose(live.scores, [0.1, 0.9])
    msg.fields = msg.fields[:3]  # no grasp_id / score: a clear error, not garbage
    with pytest.raises(ValueError, match="grasp_id"):
        decode_scored(msg)
