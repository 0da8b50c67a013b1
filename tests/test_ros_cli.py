"""The colcon-installed package through the `ros2` CLI, as a user drives it after
`colcon build` and `. install/setup.sh`: `ros2 run grasp_equi grasp_node`, `ros2 param
describe` of every parameter, `ros2 topic echo --once /scored_grasps` of the demo's scores."""

from __future__ import annotations

import re

import pytest
from ros_launch import STARTUP, Proc, clean_exit_problems, require_ros2_cli, ros2, ros2_command, sourced_env

pytestmark = pytest.mark.ros
DISCOVERY = ["--no-daemon", "--spin-time", "5"]  # no background daemon left behind; slow discovery on 2 cores
ROS_TYPES = {bool: "boolean", int: "integer", float: "double", str: "string"}


@pytest.fixture(scope="module")
def ros(request):
    require_ros2_cli()
    ws = request.getfixturevalue("colcon_ws")
    return ws, sourced_env(ws / "install")


@pytest.fixture(scope="module")
def node(ros, tmp_path_factory):
    """`ros2 run grasp_equi grasp_node` (shipped weights, CPU); Ctrl-C must end it with 0."""
    ws, env = ros
    log = tmp_path_factory.mktemp("ros2_run") / "grasp_node.log"
    proc = Proc(ros2_command("run", "grasp_equi", "grasp_node", "--ros-args", "-p", "device:=cpu"), log, env, ws)
    try:
        assert proc.wait_for(r"ready: model \S+ \(shipped\) \(trained\) on cpu"), proc.text()
        yield proc
        code = proc.interrupt()
        problems = clean_exit_problems(proc, code, ())
        assert not problems, f"{problems}\n{proc.text()}"
    finally:
        proc.kill()


def _describe_blocks(text: str) -> dict[str, str]:
    """`ros2 param describe` output split per parameter: {name: its block}."""
    parts = re.split(r"^Parameter name: ", text, flags=re.M)[1:]
    return {part.split("\n", 1)[0].strip(): part for part in parts}


def test_ros2_param_describe_shows_every_parameter_as_declared(ros, node):
    from grasp_equi.ros.params import SPECS, choices_text

    ws, env = ros
    done = ros2(ws, env, "param", "describe", *DISCOVERY, "/grasp_stability", *(s.name for s in SPECS))
    assert done.returncode == 0, done.stdout + done.stderr
    blocks = _describe_blocks(done.stdout)
    assert set(blocks) == {s.name for s in SPECS}, done.stdout
    for spec in SPECS:
        block = blocks[spec.name]
        assert f"Type: {ROS_TYPES[type(spec.default)]}" in block, block
        assert " ".join(spec.description.split()) in " ".join(block.split()), block
        assert ("Read only: true" in block) == spec.read_only, block
        if spec.value_range is not None:
            lo, hi = spec.value_range
            assert re.search(rf"Min value: {lo}(\.0)?\b", block), block
            assert re.search(rf"Max value: {hi}(\.0)?\b", block), block
        if spec.choices:
            assert choices_text(spec.choices) in block, block


def test_ros2_topic_echo_once_prints_the_demos_scored_grasps(ros, node, tmp_path):
    """`ros2 run grasp_equi demo_source` publishes; `ros2 topic echo --once` prints one scored
    message: the demo's frame and the `score` field next to `grasp_id`. Ctrl-C stops the demo
    (exit code 0) once the echo has its message."""
    ws, env = ros
    echo = Proc(ros2_command("topic", "echo", "--once", *DISCOVERY, "/scored_grasps", "sensor_msgs/msg/PointCloud2"),
                tmp_path / "echo.log", env, ws)
    demo = None
    try:
        demo = Proc(ros2_command("run", "grasp_equi", "demo_source", "--ros-args", "-p", "count:=20", "-p",
                                 "rate:=1.0", "-p", "grasps:=4"), tmp_path / "demo.log", env, ws)
        assert echo.wait(STARTUP) == 0, echo.text() + demo.text()
        text = echo.text()
        assert "frame_id: world" in text and re.search(r"name: score\b", text) and "name: grasp_id" in text, text
        problems = clean_exit_problems(demo, demo.interrupt(), ())
        assert not problems, f"{problems}\n{demo.text()}"
    finally:
        for proc in (echo, demo):
            if proc is not None:
                proc.kill()
