"""`colcon build` of a copy of this package produces the ROS 2 install tree."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE_FILES = ["package.xml", "setup.py", "setup.cfg", "requirements.txt", "README.md", "resource", "grasp_equi",
                 "launch", "config", "gui", "rviz"]
COLCON = shutil.which("colcon", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")

pytestmark = pytest.mark.skipif(COLCON is None, reason="colcon not installed (pip install colcon-core colcon-ros "
                                "colcon-python-setup-py colcon-package-selection)")


@pytest.fixture(scope="module")
def install_tree(tmp_path_factory) -> Path:
    """Build a copy of the package in a fresh workspace (never in the repository)."""
    ws = tmp_path_factory.mktemp("colcon_ws")
    src = ws / "src" / "grasp_equi"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "weights_tmp")
    for name in PACKAGE_FILES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=ignore)
        elif path.exists():
            src.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, src / name)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = subprocess.run([COLCON, "build", "--event-handlers", "console_direct-"], cwd=ws, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return ws / "install" / "grasp_equi"


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
