"""`colcon build` of a copy of this package produces the ROS 2 install tree."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def install_tree(colcon_ws) -> Path:
    return colcon_ws / "install" / "grasp_equi"


def test_install_tree_has_executables_launch_config_and_index(install_tree):
    lib = install_tree / "lib" / "grasp_equi"
    for exe in ("grasp_node", "demo_source", "grasp_gui"):
        assert (lib / exe).is_file() and os.access(lib / exe, os.X_OK), exe
    share = install_tree / "share"
    assert (share / "grasp_equi" / "launch" / "grasp.launch.py").is_file()
    assert (share / "grasp_equi" / "config" / "grasp.yaml").is_file()
    assert (share / "grasp_equi" / "rviz" / "grasp.rviz").is_file()
    assert (share / "grasp_equi" / "package.xml").is_file()
    assert (share / "ament_index" / "resource_index" / "packages" / "grasp_equi").is_file()


def test_installed_grasp_node_runs_from_the_install_tree(install_tree):
    """The installed executable imports grasp_equi from the install tree and validates parameters."""
    site = next((install_tree / "lib").glob("python3*/site-packages"))
    env = dict(os.environ, PYTHONPATH=str(site))
    where = subprocess.run([sys.executable, "-c", "import grasp_equi.ros.node as n; print(n.__file__)"],
                           env=env, cwd=install_tree, capture_output=True, text=True, timeout=120)
    assert where.stdout.strip().startswith(str(install_tree)), where.stdout + where.stderr
    proc = subprocess.run([str(install_tree / "lib" / "grasp_equi" / "grasp_node"), "--ros-args", "-p",
                           "max_point:=1"], env=env, cwd=install_tree, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "unknown parameter" in proc.stderr, proc.stdout + proc.stderr


def test_package_xml_names_what_the_ros_code_imports_and_no_test_tools_at_run_time():
    """A rosdep user gets every ROS package the node, demo, GUI live view and launch file
    import; pytest and hypothesis are test dependencies only."""
    import re
    import xml.etree.ElementTree as ET

    root = ET.parse(REPO / "package.xml").getroot()
    run = {e.text for e in root.findall("exec_depend")}
    test = {e.text for e in root.findall("test_depend")}
    assert {"python3-pytest", "python3-hypothesis"} <= test and not run & {"python3-pytest", "python3-hypothesis"}
    sources = [*(REPO / "grasp_equi" / "ros").glob("*.py"), *(REPO / "grasp_equi_gui").glob("*.py"),
               REPO / "launch" / "grasp.launch.py"]
    imported = set()
    for path in sources:
        imported |= set(re.findall(r"^\s*(?:from|import) (\w+)\.(?:msg|srv|actions|substitutions|conditions)\b",
                                   path.read_text(), flags=re.M))
        imported |= set(re.findall(r"^\s*(?:from|import) (rclpy|launch|launch_ros)\b", path.read_text(), flags=re.M))
    assert {"rclpy", "sensor_msgs", "launch", "launch_ros"} <= imported, imported
    assert imported <= run, imported - run
