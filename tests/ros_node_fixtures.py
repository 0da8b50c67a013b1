"""The grasp_node fixtures of the DDS tests (test_ros_node*.py): a small untrained model saved as a real
checkpoint, the node process on its own ROS_DOMAIN_ID, a client, and waits on its /diagnostics counters.
Each test module that imports them starts its own node (module scope)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import rclpy

from conftest import SMALL_MODEL, with_test_ensemble
from ros_support import node_command, start, stop

from grasp_equi import GraspScorer
from grasp_equi.checkpoint import save_checkpoint
from grasp_equi.ros.client import ScoreClient

TIMEOUT = 30.0  # generous bound for one answer on a loaded 2-core machine


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A small untrained network with a 3-member (unfitted, seeded) ensemble: every answer carries score_std."""
    model, config = with_test_ensemble(GraspScorer.untrained(seed=3, device="cpu", **SMALL_MODEL), seed=5)
    return save_checkpoint(tmp_path_factory.mktemp("model") / "small.safetensors", model, config)


@pytest.fixture(scope="module")
def api(checkpoint):
    return GraspScorer.from_checkpoint(checkpoint, device="cpu")


@pytest.fixture(scope="module")
def node_log(checkpoint, tmp_path_factory):
    log = tmp_path_factory.mktemp("node") / "node.log"
    proc = start(node_command("-p", f"model_path:={checkpoint}", "-p", "device:=cpu", "-p", "sync_timeout:=0.5",
                              "-p", "log_throttle:=0.0", "-p", "diagnostics_period:=0.2",
                              "-p", "propose.top_k:=5", "-p", "propose.num_seeds:=64", "-p", "markers.top_n:=3"), log)
    yield proc, log
    assert stop(proc) == 0, log.read_text()


@pytest.fixture(scope="module")
def client(node_log):
    rclpy.init()
    node = rclpy.create_node("grasp_equi_test_client")
    client = ScoreClient(node)
    proc, log = node_log
    assert client.wait_ready(90), f"node not ready:\n{log.read_text()}"
    yield client
    node.destroy_node()
    rclpy.shutdown()


def as_f32(a):
    """What the node sees after the float32 wire format."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def counts(client, **expect_at_least) -> dict[str, int]:
    """Diagnostics counters once each named counter reached the given value."""
    values = client.wait_diagnostics(
        lambda d: all(int(d.get(k, -1)) >= v for k, v in expect_at_least.items()), TIMEOUT)
    return {k: int(v) for k, v in values.items() if v.lstrip("-").isdigit()}


def quiet_counts(client, still: float = 1.5) -> dict[str, int]:
    """Counters once the node is idle: empty queue and nothing changed for ``still`` seconds
    (longer than sync_timeout, so no request is still waiting for its cloud)."""
    last, since = None, None
    deadline = time.monotonic() + 2 * TIMEOUT
    while time.monotonic() < deadline:
        client.spin_until(lambda: False, 0.2)
        d = dict(client.diagnostics)
        now = {k: v for k, v in d.items() if k in ("requests", "scored", "dropped", "unmatched", "invalid", "queue")}
        if now != last:
            last, since = now, time.monotonic()
        elif d.get("queue", "").startswith("0/") and time.monotonic() - since >= still:
            return {k: int(v) for k, v in d.items() if v.lstrip("-").isdigit()}
    raise TimeoutError("the node never went idle")
