"""The GUI with a model that answers both P(held) and P(force closure): the Qt-free scoring layer
gives both (and σ), the grasp table shows a column for each (pytest-qt under Xvfb), the sweep
plot draws P(force closure) too, and live mode reads both answers from a ``scored_grasps`` message.

The P(held) readouts are seeded and unfitted (``conftest.with_test_held``): real networks, arbitrary values.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph.opengl")

from conftest import ellipsoid_cloud, random_grasps, with_test_held  # noqa: E402
from test_gui import BASELINE, CLOUD_POINTS, EQUIVARIANT, TINY, load_scored_sample, tiny_slots  # noqa: E402

from grasp_equi import GraspScorer, keys  # noqa: E402
from grasp_equi_gui.models import ModelSlot  # noqa: E402
from grasp_equi_gui.scoring import STD_SUFFIX, output_key, score_model, slot_keys  # noqa: E402

pytestmark = pytest.mark.gui
HELD, FC = keys.OUTPUT_HELD, keys.OUTPUT_FORCE_CLOSURE


def held_scorer() -> GraspScorer:
    plain = GraspScorer.untrained(seed=0, device="cpu", **TINY)
    return GraspScorer(*with_test_held(plain), device="cpu", name="tiny-held")


def held_slots() -> list[ModelSlot]:
    """The tiny equivariant network with P(held) readouts; the baseline as in test_gui."""
    return [ModelSlot(EQUIVARIANT, held_scorer(), "equivariant: UNTRAINED model with P(held) (test)", trained=False),
            *[s for s in tiny_slots() if s.key == BASELINE]]


# ---------------------------------------------------------------------------- scoring layer (Qt-free)
def test_scoring_layer_gives_both_answers_and_the_held_spread(rng):
    scorer = held_scorer()
    points, normals = ellipsoid_cloud(800, rng=rng)
    grasps = list(random_grasps(points, 5, 2, rng)) + list(random_grasps(points, 2, 4, rng))
    grasps.append(np.array([points[0], [0.0, 0.0, 0.0]]))  # off the surface: NaN in every answer
    out = score_model(scorer, EQUIVARIANT, points, grasps, normals)
    assert set(out) == set(slot_keys(ModelSlot(EQUIVARIANT, scorer, "", True))) == {
        EQUIVARIANT, EQUIVARIANT + STD_SUFFIX, output_key(EQUIVARIANT, HELD), output_key(EQUIVARIANT, FC)}
    held, spread = scorer.score(points, grasps, normals, return_std=True)
    fc = scorer.score(points, grasps, normals, output=FC)
    np.testing.assert_array_equal(out[EQUIVARIANT], held)  # the default answer ranks: P(held)
    np.testing.assert_array_equal(out[output_key(EQUIVARIANT, HELD)], held)
    np.testing.assert_array_equal(out[EQUIVARIANT + STD_SUFFIX], spread)
    np.testing.assert_array_equal(out[output_key(EQUIVARIANT, FC)], fc)
    assert np.isnan(fc[-1]) and np.nanmax(np.abs(fc - held)) > 1e-3
    plain = GraspScorer.untrained(seed=0, device="cpu", **TINY)  # one answer, no spread: one key, as before
    only = score_model(plain, EQUIVARIANT, points, grasps, normals)
    assert list(only) == [EQUIVARIANT]
    np.testing.assert_array_equal(only[EQUIVARIANT], fc)  # the same network's force-closure answer


def test_a_single_held_readout_gives_no_sigma_column(rng):
    """``fit-held --members 1``: P(held) has no spread (the scorer's σ is NaN for every grasp), so the scene
    has no σ key (it once had a column of NaN, as if no grasp had been scored)."""
    plain = GraspScorer.untrained(seed=0, device="cpu", **TINY)
    scorer = GraspScorer(*with_test_held(plain, members=1), device="cpu", name="tiny-held-1")
    points, normals = ellipsoid_cloud(600, rng=rng)
    grasps = list(random_grasps(points, 4, 2, rng))
    assert np.isnan(scorer.score(points, grasps, normals, return_std=True)[1]).all()
    out = score_model(scorer, EQUIVARIANT, points, grasps, normals)
    assert set(out) == set(slot_keys(ModelSlot(EQUIVARIANT, scorer, "", True))) == {
        EQUIVARIANT, output_key(EQUIVARIANT, HELD), output_key(EQUIVARIANT, FC)}
    np.testing.assert_array_equal(out[EQUIVARIANT], scorer.score(points, grasps, normals))


def test_live_grasps_read_both_answers_of_the_node():
    pytest.importorskip("sensor_msgs")
    from std_msgs.msg import Header

    from grasp_equi.ros import codec
    from grasp_equi.ros.outputs import Answers, field_name
    from grasp_equi_gui.ros_live import decode_scored

    held, fc = np.array([0.2, np.nan, 0.7], np.float32), np.array([0.6, np.nan, 0.1], np.float32)
    answers = Answers(held, np.zeros(3, np.float32), {field_name(HELD): held, field_name(FC): fc})
    rows = np.array([2, 2, 0, 0, 1, 1])  # grasp of each message row, not sorted
    xyz = np.arange(18, dtype=np.float32).reshape(6, 3)
    msg = codec.encode_cloud(Header(frame_id="f"), {**codec.xyz_columns(xyz), "grasp_id": rows.astype(np.uint32),
                                                    **answers.columns(rows)})
    live = decode_scored(msg)
    assert live.grasp_ids.tolist() == [0, 2] and live.rejected == ["grasp #1: not scored; removed"]
    np.testing.assert_allclose(live.scores, held[[0, 2]])
    assert set(live.answers) == {HELD, FC}
    np.testing.assert_allclose(live.answers[HELD], held[[0, 2]])
    np.testing.assert_allclose(live.answers[FC], fc[[0, 2]])


# ---------------------------------------------------------------------------- window (pytest-qt, Xvfb)
@pytest.fixture
def window(qtbot):
    from grasp_equi_gui.window import MainWindow

    win = MainWindow(held_slots())
    win.cloud_points = CLOUD_POINTS
    win.controls.grasps.count.setValue(8)
    win.rng = np.random.default_rng(0)
    qtbot.addWidget(win)
    win.resize(1300, 800)
    win.show()
    qtbot.waitExposed(win)
    yield win
    win.live.stop()
    win.controller.shutdown()


def _headers(table) -> list[str]:
    return [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]


def test_table_shows_p_held_and_p_force_closure_columns(qtbot, window):
    load_scored_sample(qtbot, window)
    table, scene = window.table, window.scene
    headers = _headers(table)
    assert headers[:4] == ["#", "K", "P(held)", "P(force closure)"] and "σ" in headers
    obj, scorer = scene.object, window.slots[0].scorer
    np.testing.assert_allclose(scene.rotation, np.eye(3), atol=1e-12)  # loaded in its own frame
    held, spread = scorer.score(obj.points, scene.grasps, obj.normals, return_std=True)
    fc = scorer.score(obj.points, scene.grasps, obj.normals, output=FC)
    for column, expected in ((2, held), (3, fc), (headers.index("σ"), spread)):
        for row, grasp in enumerate(table.row_grasps):
            assert table.item(row, column).text() == f"{expected[grasp]:.4f}", (headers[column], grasp)
    assert table.row_grasps[0] == int(np.nanargmax(held))  # ranked by the default answer, P(held)
    assert "P(force closure)" in table.item(0, 0).toolTip()
    assert output_key(EQUIVARIANT, FC) in window.plot.curves  # the sweep plot draws it too


@pytest.mark.ros
def test_live_mode_shows_the_nodes_two_answers(qtbot, window):
    pytest.importorskip("rclpy")
    from ros_support import publishers
    from sensor_msgs.msg import PointCloud2
    from std_msgs.msg import Header

    from grasp_equi.ros import codec
    from grasp_equi.ros.outputs import Answers, field_name

    assert window.live.start()
    rng = np.random.default_rng(4)
    points = rng.normal(size=(300, 3)) * [0.04, 0.03, 0.02]
    contacts = points[rng.choice(300, size=(3, 2))]  # 3 grasps of K=2
    held, fc = np.array([0.3, 0.9, 0.5], np.float32), np.array([0.8, 0.1, 0.4], np.float32)
    answers = Answers(held, None, {field_name(HELD): held, field_name(FC): fc})  # as the node writes them
    rows = np.repeat(np.arange(3), 2)
    columns = {**codec.xyz_columns(contacts.reshape(-1, 3)), "grasp_id": rows.astype(np.uint32),
               **answers.columns(rows)}
    try:
        with publishers("gui_held_test_publisher", {"cloud": PointCloud2, "scored_grasps": PointCloud2}) as pub:
            header = Header(frame_id="camera")
            header.stamp.sec = 8

            def shown() -> bool:
                pub["cloud"].publish(codec.cloud_message(header, points))
                pub["scored_grasps"].publish(codec.encode_cloud(header, columns))
                return len(window.scene.grasps) == 3 and output_key("node", FC) in window.scene.scores

            qtbot.waitUntil(shown, timeout=30_000)
    finally:
        window.live.stop()
    table = window.table
    assert _headers(table)[2:4] == ["node P(held)", "node P(force closure)"]
    assert table.row_grasps == [1, 2, 0]  # ranked by the node's score
    assert [table.item(r, 2).text() for r in range(3)] == [f"{held[g]:.4f}" for g in (1, 2, 0)]
    assert [table.item(r, 3).text() for r in range(3)] == [f"{fc[g]:.4f}" for g in (1, 2, 0)]
