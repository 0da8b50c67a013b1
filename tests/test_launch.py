"""launch/grasp.launch.py for real: `ros2 launch grasp_equi grasp.launch.py ...` of the
colcon-installed package (one build per session), as a subprocess in its own process group.

Each launch argument has a test here: `demo` and the default model in
test_demo_publishes_scored_grasps_and_ctrl_c_ends_all_cleanly, `model` and `params_file` in
test_model_and_params_file_arguments, `device` in the demo test (cpu),
test_fatal_node_error_ends_the_whole_launch_with_an_error (cuda without CUDA) and
test_device_argument_on_cuda (cuda with CUDA), `allow_untrained` in
test_allow_untrained_argument, `gui` in test_gui_argument_starts_the_live_view (`rviz` where RViz
is absent, as here: test_rviz_true_without_rviz2_skips_with_a_message). Set
GRASP_EQUI_SIGINT_TRIES=10 to repeat the Ctrl-C test ten times.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from ros_launch import STARTUP, clean_exit_problems, launch, require_ros2_cli, sourced_env

REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILE = REPO / "launch" / "grasp.launch.py"
EXPECTED_ARGS = {"model", "device", "params_file", "allow_untrained", "demo", "gui", "rviz"}
SIGINT_TRIES = int(os.environ.get("GRASP_EQUI_SIGINT_TRIES", "1"))
READY = r"ready: model (?P<model>.+) \((?P<trained>trained|UNTRAINED)\) on (?P<device>\S+), sync=(?P<sync>\w+), " \
        r"queue_size=(?P<queue>\d+)"


def _literal_strings(node: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def test_launch_file_declares_the_documented_arguments_and_executables():
    tree = ast.parse(LAUNCH_FILE.read_text())
    arguments = next(n for n in ast.walk(tree) if isinstance(n, ast.Assign)
                     and any(getattr(t, "id", "") == "ARGUMENTS" for t in n.targets))
    names = {elt.elts[0].value for elt in arguments.value.elts}
    assert names == EXPECTED_ARGS
    executables = {kw.value.value for n in ast.walk(tree) if isinstance(n, ast.Call)
                   for kw in n.keywords if kw.arg == "executable"}
    scripts = set(re.findall(r'"(\w+) = ', (REPO / "setup.py").read_text()))
    assert executables == {"grasp_node", "demo_source", "grasp_gui", "rviz2"}  # rviz2: RViz's own, when installed
    assert executables - {"rviz2"} <= scripts
    # every parameter the launch file sets is one the node declares
    from grasp_equi.ros.params import SPECS  # noqa: PLC0415 (needs rclpy)
    declared = {s.name for s in SPECS}
    set_by_launch = {s for s in _literal_strings(tree) if s in {"model_path", "device", "allow_untrained"}}
    assert set_by_launch <= declared and len(set_by_launch) == 3
    # the README's and docs' launch examples use only declared arguments
    for doc in (REPO / "README.md", REPO / "docs" / "ros.md"):
        for line in doc.read_text().splitlines():
            if "ros2 launch grasp_equi grasp.launch.py" in line:
                used = set(re.findall(r"(\w+):=", line))
                assert used <= EXPECTED_ARGS, line


def test_rviz_config_shows_the_node_topics():
    """The installed rviz/grasp.rviz is RViz 2 YAML showing the node's outputs in the demo's frame."""
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load((REPO / "rviz" / "grasp.rviz").read_text())
    manager = config["Visualization Manager"]
    topics = {d["Topic"]["Value"] for d in manager["Displays"] if "Topic" in d}
    assert topics == {"/cloud", "/propose_cloud", "/scored_grasps", "/markers", "/ranked_poses"}
    demo_frame = re.search(r'\("frame_id", "(\w+)"\)', (REPO / "grasp_equi/ros/demo_source.py").read_text())
    assert manager["Global Options"]["Fixed Frame"] == demo_frame.group(1)


def test_rviz_true_without_rviz2_skips_with_a_message():
    """rviz:=true where RViz 2 is absent (it is not on PyPI): one clear message, nothing started."""
    try:
        from launch import LaunchContext
        from launch.actions import LogInfo
    except ImportError:
        pytest.skip("ROS 2 `launch` is not installed")
    import importlib.util

    from ament_index_python.packages import PackageNotFoundError, get_package_prefix
    try:
        get_package_prefix("rviz2")
        pytest.skip("rviz2 is installed here")
    except (PackageNotFoundError, OSError):  # OSError: no AMENT_PREFIX_PATH at all
        pass
    spec = importlib.util.spec_from_file_location("grasp_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    context = LaunchContext()
    actions = module._rviz(context)
    assert len(actions) == 1 and isinstance(actions[0], LogInfo)
    text = "".join(part.perform(context) for part in actions[0].msg)
    assert "rviz2 is not installed" in text and "skipping RViz" in text


# ----------------------------------------------------------------------------- real launches
pytestmark = pytest.mark.ros


class Listener:
    """A private rclpy context in this process: scored_grasps messages and the ROS graph."""

    def __init__(self):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import PointCloud2

        from grasp_equi.ros.client import RELIABLE, decode_scored

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("launch_test_listener", context=self.context)
        self.results = []
        self.node.create_subscription(PointCloud2, "/scored_grasps",
                                      lambda msg: self.results.append(decode_scored(msg, 0.0)), RELIABLE)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def spin_until(self, condition, timeout: float) -> bool:
        import time

        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                return False
            self.executor.spin_once(timeout_sec=0.05)
        return True

    def subscribers(self, topic: str) -> set[str]:
        return {info.node_name for info in self.node.get_subscriptions_info_by_topic(topic)}

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()


@pytest.fixture(scope="module")
def ros(request):
    """(workspace, environment after `. install/setup.sh`) of the session's colcon build."""
    require_ros2_cli()
    ws = request.getfixturevalue("colcon_ws")
    return ws, sourced_env(ws / "install")


@pytest.fixture
def listener():
    pytest.importorskip("rclpy")
    lis = Listener()
    yield lis
    lis.close()


@contextmanager
def launched(ros, log: Path, *arguments: str):
    """A running `ros2 launch`; whatever the test leaves running is killed afterwards."""
    ws, env = ros
    proc = launch(ws, env, log, *arguments)
    try:
        yield proc
    finally:
        proc.kill()


def ready(proc) -> re.Match:
    assert proc.wait_for(READY), proc.text()
    return re.search(READY, proc.text())


def assert_ends_cleanly(proc, processes=("grasp_node",)) -> None:
    code = proc.interrupt()
    problems = clean_exit_problems(proc, code, processes)
    assert not problems, f"{problems}\n{proc.text()}"


def test_demo_publishes_scored_grasps_and_ctrl_c_ends_all_cleanly(ros, listener, tmp_path):
    """`demo:=true`: grasp_node (shipped weights) + demo_source; real scores arrive."""
    with launched(ros, tmp_path / "launch.log", "demo:=true", "device:=cpu") as proc:
        match = ready(proc)
        assert match["model"].endswith("(shipped)") and match["trained"] == "trained", match[0]
        assert listener.spin_until(lambda: len(listener.results) >= 2, STARTUP), proc.text()
        for result in listener.results:
            scores = result.score[np.isfinite(result.score)]  # NaN: a contact off the surface (counted by the node)
            assert result.msg.header.frame_id == "world" and len(scores) > 0
            assert np.all((scores >= 0) & (scores <= 1)) and scores.std() > 0
        assert "[demo_source-2]: process started" in proc.text()
        assert_ends_cleanly(proc, ("grasp_node", "demo_source"))


@pytest.mark.parametrize("try_", range(SIGINT_TRIES))
def test_ctrl_c_ends_the_launch_with_exit_code_0(ros, listener, tmp_path, try_):
    """Ctrl-C (SIGINT to the process group: launch and every child get it) while starting,
    while idle, or while scoring: exit code 0, every process finished cleanly, no traceback."""
    with launched(ros, tmp_path / "launch.log", "demo:=true", "device:=cpu") as proc:
        moment = ("ready", "scoring")[try_ % 2]  # the demo test interrupts while scoring too
        ready(proc)
        if moment == "scoring":
            assert listener.spin_until(lambda: len(listener.results) >= 1, STARTUP), proc.text()
        assert_ends_cleanly(proc, ("grasp_node", "demo_source"))


def test_fatal_node_error_ends_the_whole_launch_with_an_error(ros, tmp_path):
    """A fatal grasp_node error while demo_source waits for it (`device:=cuda` without CUDA:
    exit 2; on a CUDA machine a missing `model`: exit 1) stops demo_source too, and
    `ros2 launch` exits non-zero, without a traceback. This is also the `device` argument's
    test where there is no CUDA."""
    import torch

    if torch.cuda.is_available():
        fatal, code, reason = f"model:={tmp_path / 'missing.safetensors'}", 1, "missing.safetensors"
    else:
        fatal, code, reason = "device:=cuda", 2, "CUDA is not available"
    with launched(ros, tmp_path / "launch.log", "demo:=true", fatal) as proc:
        exit_code = proc.wait(STARTUP)
        text = proc.text()
        assert exit_code not in (None, 0), text
        assert re.search(rf"\[grasp_node-1\]: process has died .*exit code {code}", text), text
        assert f"grasp_node-1 exited with code {code}; stopping the launch" in text, text
        assert reason in text and "Traceback" not in text, text
        assert re.search(r"\[demo_source-2\]: process has finished cleanly", text), text
        assert not proc.group_alive(), text


def test_device_argument_on_cuda(ros, tmp_path):
    """`device:=cuda` on a CUDA machine: the node runs on the GPU (`device:=cpu` is in the demo
    test, `device:=cuda` without CUDA in the fatal-error test)."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA here: test_fatal_node_error_ends_the_whole_launch_with_an_error covers device:=cuda")
    with launched(ros, tmp_path / "launch.log", "device:=cuda") as proc:
        assert ready(proc)["device"].startswith("cuda"), proc.text()
        assert_ends_cleanly(proc)


def test_model_and_params_file_arguments(ros, tmp_path):
    """`model:=PATH` loads that checkpoint; `params_file:=YAML` sets the node's parameters;
    without demo/gui only grasp_node starts."""
    from conftest import SMALL_MODEL

    from grasp_equi import GraspScorer
    from grasp_equi.checkpoint import save_checkpoint

    scorer = GraspScorer.untrained(seed=5, device="cpu", **SMALL_MODEL)
    model = save_checkpoint(tmp_path / "custom_model.safetensors", scorer.model, scorer.config)
    params = tmp_path / "params.yaml"
    params.write_text("grasp_stability:\n  ros__parameters:\n    sync: latest\n    queue_size: 7\n")
    with launched(ros, tmp_path / "launch.log", f"model:={model}", f"params_file:={params}", "device:=cpu") as proc:
        match = ready(proc)
        assert str(model) in match["model"] and match["trained"] == "trained", match[0]
        assert (match["device"], match["sync"], match["queue"]) == ("cpu", "latest", "7"), match[0]
        assert "demo_source" not in proc.text() and "grasp_gui" not in proc.text()
        assert_ends_cleanly(proc)


@contextmanager
def shipped_weights_removed(ws: Path):
    """Move the install tree's shipped weights aside (the session's build; restored after)."""
    site = next((ws / "install" / "grasp_equi" / "lib").glob("python3*/site-packages"))
    weights = site / "grasp_equi" / "weights" / "grasp_equi.safetensors"
    aside = weights.with_suffix(".aside")
    shutil.move(weights, aside)
    try:
        yield
    finally:
        shutil.move(aside, weights)


def test_allow_untrained_argument(ros, tmp_path):
    """Without shipped weights the launch fails and names allow_untrained; with
    `allow_untrained:=true` the node runs an UNTRAINED model."""
    ws, _ = ros
    with shipped_weights_removed(ws):
        with launched(ros, tmp_path / "refused.log", "device:=cpu") as proc:
            code = proc.wait(STARTUP)
            assert code not in (None, 0) and "allow_untrained" in proc.text(), proc.text()
            assert "grasp_node-1 exited with code 1" in proc.text(), proc.text()
        with launched(ros, tmp_path / "untrained.log", "device:=cpu", "allow_untrained:=true") as proc:
            assert ready(proc)["trained"] == "UNTRAINED", proc.text()
            assert_ends_cleanly(proc)


@pytest.mark.gui
def test_gui_argument_starts_the_live_view(ros, listener, tmp_path):
    """`gui:=true` (under Xvfb): grasp_gui subscribes to the node's cloud and scored_grasps
    while the demo's scores flow; Ctrl-C closes it with the rest."""
    if not os.environ.get("DISPLAY"):
        pytest.skip("no DISPLAY (the suite runs under pytest-xvfb)")
    with launched(ros, tmp_path / "launch.log", "gui:=true", "demo:=true", "device:=cpu") as proc:
        ready(proc)
        gui_listens = lambda: {"grasp_equi_gui"} <= listener.subscribers("/scored_grasps") & listener.subscribers(
            "/cloud")  # noqa: E731
        assert listener.spin_until(gui_listens, STARTUP), proc.text()
        assert listener.spin_until(lambda: len(listener.results) >= 1, STARTUP), proc.text()
        assert re.search(r"\[grasp_gui-3\]: process started", proc.text())
        assert_ends_cleanly(proc, ("grasp_node", "demo_source", "grasp_gui"))
