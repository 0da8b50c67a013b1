"""Helpers for the DDS tests: start real node processes, talk to their parameter services.

Every child process is started in its own process group and always terminated (SIGINT,
then SIGKILL) by the caller's fixture; every wait has a timeout.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import rclpy
from rcl_interfaces.srv import SetParameters
from rclpy.parameter import Parameter

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def node_command(*ros_args: str, console_script: bool = False) -> list[str]:
    """``grasp_node --ros-args ...`` (the installed console script, or ``python -m``)."""
    exe = VENV_BIN / "grasp_node"
    base = [str(exe)] if console_script and exe.exists() else [sys.executable, "-m", "grasp_equi.ros.node"]
    return base + ["--ros-args", *ros_args]


def start(cmd: list[str], log: Path) -> subprocess.Popen:
    """Start ``cmd`` with stdout+stderr to ``log`` (unbuffered, so tests can read the log)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", RCUTILS_LOGGING_BUFFERED_STREAM="0")
    with open(log, "wb") as handle:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=REPO,
                                start_new_session=True)


def stop(proc: subprocess.Popen, timeout: float = 15.0) -> int:
    """SIGINT, wait, then SIGKILL the process group; returns the exit code."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    return proc.returncode


def wait_for_log(log: Path, text: str, proc: subprocess.Popen, timeout: float) -> bool:
    """True once ``text`` appears in ``log``; False on timeout or when the process exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return True
        if proc.poll() is not None:
            return text in log.read_text(errors="replace")
        time.sleep(0.1)
    return False


def set_parameters(node, target: str, values: dict, timeout: float = 10.0):
    """Call ``/<target>/set_parameters``; returns the list of ``SetParametersResult``."""
    client = node.create_client(SetParameters, f"/{target}/set_parameters")
    try:
        if not client.wait_for_service(timeout_sec=timeout):
            raise TimeoutError(f"/{target}/set_parameters not available")
        request = SetParameters.Request(parameters=[Parameter(k, value=v).to_parameter_msg()
                                                    for k, v in values.items()])
        future = client.call_async(request)
        rclpy.spin_until_future_complete(node, future, timeout_sec=timeout)
        if not future.done():
            raise TimeoutError("set_parameters did not answer")
        return future.result().results
    finally:
        node.destroy_client(client)


@contextmanager
def publishers(name: str, topics: dict):
    """A throwaway rclpy node ``name`` in its own context with one publisher per ``{topic: msg type}``;
    yields ``{topic: publisher}`` and always destroys the node and shuts the context down."""
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node(name, context=context)
    try:
        yield {topic: node.create_publisher(msg_type, topic, 10) for topic, msg_type in topics.items()}
    finally:
        node.destroy_node()
        context.try_shutdown()
