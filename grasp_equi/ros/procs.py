"""Child ROS processes for the demo runner and the scripts: start, read memory, stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


def spawn(module: str, ros_args: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    """``python -m module --ros-args ...`` in its own process group, output to ``log``."""
    cmd = [sys.executable, "-m", module, "--ros-args", *ros_args]
    env = dict(os.environ if env is None else env, PYTHONUNBUFFERED="1")
    with open(log, "wb") as out:  # the child keeps its own handle
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def terminate(proc: subprocess.Popen | None, timeout: float = 10.0) -> None:
    """SIGINT the process group, then SIGKILL if it does not exit within ``timeout``."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
    except ProcessLookupError:
        pass


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` in MiB (Linux /proc), NaN when unavailable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def tail(log: Path, lines: int = 15) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
