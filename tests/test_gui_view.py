"""The GUI as a newcomer uses it, driven for real under Xvfb (pytest-qt): the best grasp is
selected and listed first after every update, grasps off the object disappear with their
reason, the top-N slider, legend and hover labels, the K = 2 gripper drawing, titles that
follow the options, the object list after opening a file, and a bad ``--weights``."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph.opengl")

from test_gui import BASELINE, CLOUD_POINTS, EQUIVARIANT, SAMPLE, load_scored_sample, tiny_slots, wait_scored  # noqa: E402

from grasp_equi_gui.gripper3d import gripper_frame, side_view_angles  # noqa: E402

pytestmark = pytest.mark.gui


def _window(qtbot, **kwargs):
    from grasp_equi_gui.window import MainWindow

    win = MainWindow(tiny_slots(), **kwargs)
    win.cloud_points = CLOUD_POINTS
    win.controls.grasps.count.setValue(8)
    win.rng = np.random.default_rng(0)
    qtbot.addWidget(win)
    win.resize(1300, 800)
    win.show()
    qtbot.waitExposed(win)
    return win


@pytest.fixture
def window(qtbot):
    win = _window(qtbot)
    yield win
    win.live.stop()
    win.controller.shutdown()


def _best(scene) -> int:
    return int(np.argmax(scene.scores[scene.primary_key()]))


def test_best_grasp_is_selected_and_listed_first_after_every_update(qtbot, window):
    scene, table = window.scene, window.table
    load_scored_sample(qtbot, window)
    assert scene.selected == _best(scene) and table.row_grasps[0] == scene.selected
    assert [i.row() for i in table.selectedIndexes()][0] == 0  # the best row is the highlighted one
    assert window.sample_grasps()  # new grasps: the best of those, once scored
    wait_scored(qtbot, window)
    assert scene.selected == _best(scene)
    table.selectRow(3)  # the user's choice survives a new pose
    chosen = table.row_grasps[3]
    window.set_pose(40, 10, 0)
    qtbot.waitUntil(lambda: scene.euler_deg == (40.0, 10.0, 0.0), timeout=5000)
    wait_scored(qtbot, window)
    assert scene.selected == chosen and scene.user_selected


def test_live_grasps_select_the_nodes_best(qtbot, window):
    from grasp_equi_gui.ros_live import LiveGrasps
    from grasp_equi_gui.scene import SceneObject

    rng = np.random.default_rng(2)
    points = rng.normal(size=(200, 3)) * 0.03
    window.scene.set_object(SceneObject("live: camera", points))
    scores = np.array([0.002, 0.4, 0.91, 0.3])
    grasps = [points[rng.choice(200, 2)] for _ in scores]
    window.live._show_grasps(LiveGrasps(np.arange(4), grasps, scores, "camera", (1, 0), ["grasp #9: collision"]))
    assert window.scene.selected == 2 and window.table.row_grasps[0] == 2
    assert "grasp #9: collision" in window.selection_label.text()


def test_grasps_off_the_object_disappear_with_their_reason(qtbot, window, tmp_path):
    load_scored_sample(qtbot, window)
    pts = window.scene.object.points
    grasps = np.stack([pts[[0, 10]], pts[[5, 50]], pts[[7, 70]], pts[[1, 2]] + 2.0, pts[[3, 4]] - 3.0])  # [5, 2, 3]
    np.save(tmp_path / "mixed.npy", grasps)
    assert window.load_grasps(str(tmp_path / "mixed.npy"))
    scene = window.scene
    assert len(scene.grasps) == 3 and len(scene.rejected) == 2
    assert scene.rejected[0].startswith("grasp #3: a contact is") and "removed" in scene.rejected[0]
    wait_scored(qtbot, window)  # the rest is scored: nothing stays "scoring…"
    assert "scoring" not in window.table.item(0, 2).text()
    assert "grasp #4" in window.selection_label.text() and "removed" in window.status_label.text()


def test_top_n_slider_limits_what_view_and_list_show(qtbot, window):
    window.controls.grasps.count.setValue(20)
    load_scored_sample(qtbot, window)
    scene, panel, table = window.scene, window.controls.show_panel, window.table
    g = len(scene.grasps)
    assert panel.top.maximum() == g and panel.top.value() == min(10, g) and table.rowCount() == min(10, g)
    k = len(scene.grasps[0])
    assert window.view.contact_item.pos.shape[0] == k * min(10, g)
    panel.top.setValue(3)
    assert scene.top_n == 3 and table.row_grasps == scene.ranking(EQUIVARIANT)[:3]
    assert window.view.contact_item.pos.shape[0] == 3 * k and panel.top_label.text() == "top 3"
    panel.top.setValue(g)
    assert scene.top_n is None and table.rowCount() == g and panel.top_label.text() == f"all {g}"


def test_colour_legend_uses_the_views_colours(window):
    from grasp_equi_gui.colors import SELECTED, hex_color, score_rgba

    style = window.controls.show_panel.bar.styleSheet()
    ends = score_rgba(np.array([0.0, 1.0]), 2)
    assert hex_color(ends[0]) in style and hex_color(ends[1]) in style
    assert hex_color(SELECTED) in window.controls.show_panel.keys.text()


def test_hovering_a_contact_shows_its_grasps_score(qtbot, window):
    from PySide6.QtCore import QEvent, QPointF, Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    load_scored_sample(qtbot, window)
    view, scene = window.view, window.scene
    best = scene.selected
    x, y = view.screen_positions(scene.world_grasps()[best])[0]
    assert 0 <= x <= view.width() and 0 <= y <= view.height()
    event = QMouseEvent(QEvent.Type.MouseMove, QPointF(x, y), view.mapToGlobal(QPointF(x, y)),
                        Qt.MouseButton.NoButton, Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(view, event)
    hovered = view.grasp_at(x, y)
    assert hovered is not None and view.hover_text == view.label(hovered)
    assert f"{scene.scores[EQUIVARIANT][hovered]:.4f}" in view.hover_text
    event = QMouseEvent(QEvent.Type.MouseMove, QPointF(2, 2), view.mapToGlobal(QPointF(2, 2)),
                        Qt.MouseButton.NoButton, Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(view, event)
    assert view.hover_text == ""


def test_the_selected_k2_grasp_is_drawn_as_a_parallel_jaw_gripper(qtbot, window):
    load_scored_sample(qtbot, window)
    view, scene = window.view, window.scene
    assert len(scene.grasps[0]) == 2
    assert view.selected_gripper.visible() and view.selected_gripper.pos.shape == (72, 3)
    grasp = scene.world_grasps()[scene.selected]
    origin, rot = gripper_frame(grasp, scene.world_points().mean(axis=0), 0.03)
    local = (grasp - origin) @ rot  # contacts in the gripper frame: on the closing line, between the pads
    width = np.linalg.norm(grasp[1] - grasp[0])
    np.testing.assert_allclose(local[:, 1], [-width / 2, width / 2], atol=1e-9)
    np.testing.assert_allclose(local[:, [0, 2]], [[0, -0.015], [0, -0.015]], atol=1e-9)
    assert rot[:, 2] @ (scene.world_points().mean(axis=0) - grasp.mean(axis=0)) > 0  # approaches the object
    assert window.sample_grasps(k=3)
    wait_scored(qtbot, window)
    assert not view.selected_gripper.visible()


def test_titles_follow_the_sweep_steps(qtbot):
    win = _window(qtbot, sweep_steps=12)
    try:
        assert win.controls.sweep.title() == "Invariance sweep (12 orientations)"
        assert "12 orientations" in win.plot.deviation_label.text()
        load_scored_sample(qtbot, win)
        with qtbot.waitSignal(win.controller.sweep_finished, timeout=240_000):
            win.start_sweep("z")
        assert win.scene.sweep.total_steps == 12 and len(win.scene.sweep.angles_deg) == 12
        assert "12/12 orientations" in win.plot.deviation_label.text()
    finally:
        win.controller.shutdown()


def test_object_list_shows_an_opened_file(qtbot, window, tmp_path):
    import trimesh

    combo = window.controls.object.family
    trimesh.creation.capsule(radius=0.02, height=0.06).export(tmp_path / "part.stl")
    assert window.open_file(str(tmp_path / "part.stl"))
    assert combo.currentIndex() == -1 and "part" in combo.placeholderText() and combo.currentText() == ""
    assert window.load_sample() is False and "sample family" in window.last_error.text()
    window.last_error.close()
    wait_scored(qtbot, window)
    assert window.load_sample(SAMPLE, seed=0) and combo.currentText() == SAMPLE


def test_default_camera_looks_across_the_long_axis(qtbot, window):
    for axis in np.eye(3):
        pts = np.random.default_rng(0).normal(size=(500, 3)) * 0.01 + np.outer(np.linspace(-1, 1, 500), axis) * 0.1
        e, a = np.radians(side_view_angles(pts))
        direction = np.array([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)])
        assert abs(direction @ axis) < 0.45, axis  # z-long objects: at most the 25-35 deg elevation shows
    load_scored_sample(qtbot, window)
    assert (window.view.opts["elevation"], window.view.opts["azimuth"]) == side_view_angles(window.scene.object.points)


def test_bad_weights_is_an_error_exit_not_a_silent_untrained_model(tmp_path):
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint")
    for path in (tmp_path / "nope.safetensors", tmp_path / "junk.safetensors"):
        proc = subprocess.run([sys.executable, "-m", "grasp_equi_gui.app", "--weights", str(path)],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("grasp-equi-gui: error: --weights") and path.name in lines[0]


def test_poses_the_node_left_out_are_listed_with_their_reason():
    pytest.importorskip("sensor_msgs")
    from std_msgs.msg import Header

    from grasp_equi.ros.codec import encode_cloud
    from grasp_equi_gui.ros_live import decode_scored

    xyz = np.arange(15, dtype=np.float32).reshape(5, 3) / 100  # pose 0: 2 contacts; 1: left out; 2: 2 contacts
    columns = {"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2],
               "grasp_id": np.array([0, 0, 1, 2, 2], dtype=np.uint32),
               "score": np.array([0.7, 0.7, np.nan, 0.2, 0.2], dtype=np.float32),
               "reason": np.array([0, 0, 2, 0, 0], dtype=np.uint8)}
    live = decode_scored(encode_cloud(Header(frame_id="cam"), columns, is_dense=False))
    assert list(live.grasp_ids) == [0, 2] and np.allclose(live.scores, [0.7, 0.2])
    assert live.rejected == ["grasp #1: collision: the gripper hits the object; removed"]


def test_table_lists_the_ensembles_sigma_per_grasp(qtbot, window):
    load_scored_sample(qtbot, window)
    table, scene = window.table, window.scene
    headers = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    column = headers.index("σ")
    sigma = scene.scores[EQUIVARIANT + "_std"]
    for row, grasp in enumerate(table.row_grasps):
        assert table.item(row, column).text() == f"{sigma[grasp]:.4f}"
    if BASELINE + "_std" in scene.scores:  # the baseline's ensemble has a column too
        assert headers[-1] == "baseline σ"
