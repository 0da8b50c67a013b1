#!/usr/bin/env python3
"""End-to-end latency of grasp_node vs a plain echo node, measured in one run.

For each of ``--requests`` requests a fresh stamp is put on the same N-point cloud and G
contact pairs; the client publishes cloud + contacts and waits for ``scored_grasps``
(one request in flight, so nothing queues). Latency = arrival time - stamp (same clock).
The echo node (grasp_equi/ros/echo.py) does the same DDS traffic with no inference.

    .venv/bin/python scripts/ros_latency.py --points 20000 --grasps 64
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from pathlib import Path

import numpy as np
import rclpy

from grasp_equi import GraspScorer
from grasp_equi.checkpoint import save_checkpoint
from grasp_equi.scorer import SHIPPED_WEIGHTS
from grasp_equi.ros.client import ScoreClient
from grasp_equi.ros.procs import spawn, tail, terminate


def ellipsoid(n: int, rng) -> np.ndarray:
    d = rng.normal(size=(n, 3))
    return d / np.linalg.norm(d, axis=1, keepdims=True) * np.array([0.05, 0.03, 0.02])  # [n, 3]


def measure(client: ScoreClient, points, contacts, requests: int, warmup: int, timeout: float) -> np.ndarray:
    latencies = []
    # The node subscribes best-effort: a request published the moment the *publisher* sees the
    # subscription can still be lost while the reader side finishes discovery. Repeat the first
    # request until one is answered; every later one must be answered.
    for attempt in range(10):
        first = client.request(points, contacts)
        if client.spin_until(lambda: first in client.arrivals, min(timeout, 5.0)):
            break
    else:
        raise RuntimeError("no answer to 10 first requests: is the node running on this ROS_DOMAIN_ID?")
    for i in range(warmup + requests):
        key = client.request(points, contacts)
        if not client.spin_until(lambda: key in client.arrivals, timeout):
            raise RuntimeError(f"no answer to request {i} within {timeout} s")
        if i >= warmup:
            latencies.append((client.arrivals[key] - (key[0] + key[1] * 1e-9)) * 1e3)
    return np.array(latencies)


def run_target(name: str, module: str, ros_args: list[str], args, points, contacts, logs: Path) -> dict:
    log = logs / f"{name}.log"
    proc = spawn(module, ros_args, log)
    try:
        client_node = rclpy.create_node(f"latency_client_{name}")
        client = ScoreClient(client_node)
        ready = client.spin_until(lambda: client.pub_contacts.get_subscription_count() > 0
                                  and client.pub_cloud.get_subscription_count() > 0
                                  and client_node.count_publishers("scored_grasps") > 0, 180)
        if not ready:
            raise RuntimeError(f"{name} did not start:\n{tail(log)}")
        lat = measure(client, points, contacts, args.requests, args.warmup, args.timeout)
        diag = client.wait_diagnostics(lambda d: True, 3) if name == "grasp_node" else {}
        client_node.destroy_node()
        return {"median": float(np.median(lat)), "p90": float(np.percentile(lat, 90)), "diag": diag}
    finally:
        terminate(proc)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=20000)
    parser.add_argument("--grasps", type=int, default=64)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(30, 200)))
    logs = Path(tempfile.mkdtemp(prefix="grasp_equi_latency_"))
    if SHIPPED_WEIGHTS.is_file():  # what robots run
        model, model_name = SHIPPED_WEIGHTS, "shipped model"
    else:
        scorer = GraspScorer.untrained(seed=0, device="cpu")  # the default architecture, random weights
        model = save_checkpoint(logs / "untrained_default.safetensors", scorer.model, scorer.config)
        model_name = "untrained default model"
    rng = np.random.default_rng(0)
    points = ellipsoid(args.points, rng)
    contacts = points[rng.choice(args.points, size=(args.grasps, 2))]  # [G, 2, 3]
    rclpy.init()
    try:
        echo = run_target("echo", "grasp_equi.ros.echo", [], args, points, contacts, logs)
        node = run_target("grasp_node", "grasp_equi.ros.node", ["-p", f"model_path:={model}", "-p",
                          f"device:={args.device}"], args, points, contacts, logs)
    finally:
        rclpy.try_shutdown()
    print(f"N={args.points} points, G={args.grasps} grasps, {args.requests} requests (after {args.warmup} warm-up), "
          f"{model_name}, device {args.device}")
    print(f"  echo node : median {echo['median']:8.1f} ms   p90 {echo['p90']:8.1f} ms")
    print(f"  grasp_node: median {node['median']:8.1f} ms   p90 {node['p90']:8.1f} ms")
    d = node["diag"]
    stages = {k[5:-3]: v for k, v in d.items() if k.startswith("last_") and k.endswith("_ms")}
    print("  grasp_node stages of the last request (ms): " + ", ".join(f"{k} {v}" for k, v in stages.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
