"""ament_python package definition (works with colcon and with plain pip)."""

import os
from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "grasp_equi"
GUI = "grasp_equi_gui"  # the desktop app's import package (project-specific: no bare `gui`)
HERE = Path(__file__).parent


def core_requirements() -> list[str]:
    """The scoring path's dependencies, read from requirements.txt (the one list of pins).

    Only the lines above the "# data generation" marker: a robot needs torch, e3nn, numpy,
    scipy, safetensors and tqdm to score grasps; the rest are extras for data/GUI/tests.
    """
    lines = (HERE / "requirements.txt").read_text().splitlines()
    core = []
    for line in lines:
        if line.startswith("# data generation"):
            break
        if line and not line.startswith("#"):
            core.append(line.split("==")[0])
    return core


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*", GUI, f"{GUI}.*"]),
    package_data={PACKAGE: ["weights/*.safetensors", "weights/*.md", "weights/*.json", "weights/ensembles/*.safetensors"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
        (f"share/{PACKAGE}/rviz", glob("rviz/*.rviz")),
        (f"share/{PACKAGE}/weights", [f for f in glob(f"{PACKAGE}/weights/*") if os.path.isfile(f)]),
        (f"share/{PACKAGE}/weights/ensembles", glob(f"{PACKAGE}/weights/ensembles/*.safetensors")),
    ],
    install_requires=core_requirements(),
    zip_safe=True,
    maintainer="grasp_equi maintainers",
    maintainer_email="maintainers@grasp-equi.invalid",
    description="SE(3)-invariant grasp stability scoring as a ROS 2 node",
    license="Apache-2.0",
    python_requires=">=3.10",
    entry_points={
        "console_scripts": [
            "grasp-equi = grasp_equi.cli:main",
            "grasp-equi-gui = grasp_equi_gui.app:main",
            "grasp_node = grasp_equi.ros.node:main",
            "demo_source = grasp_equi.ros.demo_source:main",
            "grasp_gui = grasp_equi_gui.app:main",
        ],
    },
)
