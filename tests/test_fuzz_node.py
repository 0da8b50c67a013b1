"""A short run of the DDS fuzz campaign (``make fuzz`` runs >= 10,000 messages): the real node,
every kind refused in the callback at least once, probes compared with the Python API."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys

import pytest

pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")
from ros_support import REPO  # noqa: E402

pytestmark = pytest.mark.ros


def test_short_fuzz_campaign_finds_no_crash_traceback_or_garbage():
    env = dict(os.environ, ROS_DOMAIN_ID=str(random.SystemRandom().randint(20, 220)), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "fuzz_node.py"), "--messages", "150"],
                          capture_output=True, text=True, timeout=600, cwd=REPO, env=env)
    out = proc.stdout
    assert proc.returncode == 0, out[-4000:] + proc.stderr[-2000:]
    for name in ("crashes", "tracebacks", "scored_garbage", "wrong_probes"):
        assert re.search(rf"^\s+{name}\s+0$", out, re.M), out
    sent = int(re.search(r"^sent (\d+) messages", out, re.M).group(1))
    assert sent >= 150
