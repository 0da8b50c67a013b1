"""Helpers for the tests that run the colcon-installed package through `ros2 launch` and the
`ros2` CLI, as a user does after `colcon build` and `. install/setup.sh`.

ROS 2's launch, launch_ros and ros2cli are not on PyPI. CI installs them into the venv from
``../shared/ros2-cli`` (``.ci/run``); there these tests must run, so with ``CI`` set and that
folder present a missing ``launch_ros`` is a failure, not a skip.

Every process is started in its own process group (as a terminal runs a command) and is
always ended by the caller (SIGINT to the group, then SIGKILL); every wait has a timeout.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_ROS2_CLI = REPO.parent / "shared" / "ros2-cli"
VENV_BIN = Path(sys.executable).parent
STARTUP = 120.0  # s: the node imports torch + e3nn and warms up; generous on a loaded 2-core machine
STOP = 45.0  # s: SIGINT to exit (the launch file gives each process 20 s before SIGTERM)


def require_ros2_cli() -> None:
    """Skip without launch_ros / ros2cli, except in CI with the shared wheels (then fail)."""
    try:
        import launch_ros.actions  # noqa: F401
        import ros2cli  # noqa: F401
    except ImportError as err:
        if os.environ.get("CI") and SHARED_ROS2_CLI.is_dir():
            pytest.fail(f"CI: {err}; {SHARED_ROS2_CLI}/install.sh .venv should have installed ROS 2 launch "
                        "and the ros2 CLI (.ci/run does)")
        pytest.skip(f"ROS 2 launch / ros2 CLI not installed ({err}); on a ROS 2 machine source it first")
    if not (VENV_BIN / "ros2").is_file():
        pytest.fail(f"ros2cli imports but {VENV_BIN / 'ros2'} is missing")


def sourced_env(install: Path) -> dict[str, str]:
    """The environment after ``. install/setup.sh`` (run by sh, as a user does), venv on PATH."""
    env = dict(os.environ, PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    out = subprocess.run(["sh", "-c", f". '{install}/setup.sh' && env -0"], env=env, capture_output=True,
                         timeout=60, check=True).stdout
    sourced = dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)
    sourced.update(PYTHONUNBUFFERED="1", RCUTILS_LOGGING_BUFFERED_STREAM="0", OMP_NUM_THREADS="1")
    return sourced


class Proc:
    """A command in its own process group, output (stdout + stderr) to ``log``."""

    def __init__(self, cmd: list[str], log: Path, env: dict[str, str], cwd: Path):
        self.cmd, self.log = cmd, log
        with open(log, "wb") as out:  # the child keeps its own handle
            self.popen = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                          start_new_session=True)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float = STARTUP) -> bool:
        """True once the regex ``pattern`` is in the log; False on timeout or an exit without it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(pattern, self.text()):
                return True
            if self.popen.poll() is not None:
                time.sleep(0.2)  # let the last lines land
                return bool(re.search(pattern, self.text()))
            time.sleep(0.1)
        return False

    def wait(self, timeout: float) -> int | None:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def interrupt(self, timeout: float = STOP) -> int | None:
        """Ctrl-C in a terminal: SIGINT to the whole process group; the exit code, None on timeout."""
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
        return self.wait(timeout)

    def group_alive(self) -> list[int]:
        """Pids still in this command's process group (children left behind)."""
        alive = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == self.popen.pid and fields[0] != "Z":  # pgrp; ignore zombies
                alive.append(int(stat.parent.name))
        return alive

    def kill(self) -> None:
        """SIGKILL whatever is left of the group (clean-up after a failed test)."""
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.wait(5)


def ros2_command(*args: str) -> list[str]:
    """``ros2 ARGS...`` (the venv's ros2)."""
    return [str(VENV_BIN / "ros2"), *args]


def launch(ws: Path, env: dict[str, str], log: Path, *arguments: str) -> Proc:
    """``ros2 launch grasp_equi grasp.launch.py ARG:=VALUE ...`` in the workspace."""
    return Proc(ros2_command("launch", "grasp_equi", "grasp.launch.py", *arguments), log, env, ws)


def ros2(ws: Path, env: dict[str, str], *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    """One ``ros2 ...`` command to completion."""
    return subprocess.run(ros2_command(*args), cwd=ws, env=env, capture_output=True, text=True, timeout=timeout)


def clean_exit_problems(proc: Proc, code: int | None, processes: tuple[str, ...]) -> list[str]:
    """What is wrong with a launch that should have ended cleanly on SIGINT (empty: nothing)."""
    text = proc.text()
    problems = []
    if code != 0:
        problems.append(f"exit code {code}")
    if "Traceback" in text or "KeyboardInterrupt" in text:
        problems.append("a traceback in the output")
    if "process has died" in text or "Caught exception" in text:
        problems.append("a process died")
    for name in processes:
        if not re.search(rf"\[{name}-\d+\]: process has finished cleanly", text):
            problems.append(f"{name} did not finish cleanly")
    if proc.group_alive():
        problems.append(f"processes left behind: {proc.group_alive()}")
    return problems
