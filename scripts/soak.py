#!/usr/bin/env python3
"""Soak test of grasp_node (``make soak``): requests at 30 Hz for 10 minutes.

Every ``--window`` seconds it records the node's resident memory, how many requests were
scored / dropped (the bounded queue at work) and the median end-to-end latency of the
results in that window. At the end it compares the first and the last windows: memory and
latency must not grow beyond noise, and the queue must stay bounded. Not a unit test.

    .venv/bin/python scripts/soak.py                     # 30 Hz, 10 min, N=5000, G=64
    .venv/bin/python scripts/soak.py --minutes 1 --rate 10
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rclpy

from grasp_equi import GraspScorer
from grasp_equi.checkpoint import save_checkpoint
from grasp_equi.ros.client import ScoreClient
from grasp_equi.ros.procs import rss_mb, spawn, tail, terminate


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", type=float, default=30.0, help="requests per second (default 30)")
    p.add_argument("--minutes", type=float, default=10.0, help="duration (default 10)")
    p.add_argument("--points", type=int, default=5000, help="cloud size N (default 5000)")
    p.add_argument("--grasps", type=int, default=64, help="grasps per request G (default 64)")
    p.add_argument("--window", type=float, default=60.0, help="seconds per report line (default 60)")
    p.add_argument("--model", default="", help="checkpoint; default: an untrained model of the default size")
    p.add_argument("--device", default="auto")
    p.add_argument("--queue-size", type=int, default=2)
    return p.parse_args()


def main() -> int:
    args = parse_args()
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(30, 200)))
    logs = Path(tempfile.mkdtemp(prefix="grasp_equi_soak_"))
    model = args.model
    if not model:
        scorer = GraspScorer.untrained(seed=0, device="cpu")
        model = str(save_checkpoint(logs / "untrained_default.safetensors", scorer.model, scorer.config))
    proc = spawn("grasp_equi.ros.node", ["-p", f"model_path:={model}", "-p", f"device:={args.device}",
                                         "-p", f"queue_size:={args.queue_size}"], logs / "grasp_node.log")
    rclpy.init()
    node = rclpy.create_node("grasp_equi_soak")
    client = ScoreClient(node)
    rng = np.random.default_rng(0)
    d = rng.normal(size=(args.points, 3))
    points = d / np.linalg.norm(d, axis=1, keepdims=True) * np.array([0.05, 0.03, 0.02])  # [N, 3]
    contacts = points[rng.choice(args.points, size=(args.grasps, 2))]  # [G, 2, 3]
    rows = []
    try:
        if not client.wait_ready(180):
            print(f"grasp_node did not start:\n{tail(logs / 'grasp_node.log')}")
            return 1
        print(f"soak: {args.rate} Hz for {args.minutes} min, N={args.points}, G={args.grasps}, "
              f"queue_size={args.queue_size}, ROS_DOMAIN_ID={os.environ['ROS_DOMAIN_ID']} (logs in {logs})")
        print(f"{'t [s]':>6} {'sent':>6} {'scored':>7} {'dropped':>8} {'queue':>6} {'RSS MiB':>8} "
              f"{'p50 ms':>8} {'p90 ms':>8}", flush=True)
        sent, start = {}, time.monotonic()
        period, end = 1.0 / args.rate, start + 60 * args.minutes + 0.5  # + the last report
        next_send, next_report, seen = start, start + args.window, 0
        while time.monotonic() < end:
            now = time.monotonic()
            if now >= next_send:
                sent[client.request(points, contacts)] = now
                next_send += period
            if now >= next_report:
                keys = list(client.arrivals)[seen:]
                seen += len(keys)
                lat = np.array([(client.arrivals[k] - (k[0] + k[1] * 1e-9)) * 1e3 for k in keys])
                diag = client.diagnostics
                row = (now - start, len(sent), int(diag.get("scored", 0)), int(diag.get("dropped", 0)),
                       diag.get("queue", "?"), rss_mb(proc.pid), *(np.percentile(lat, [50, 90]) if len(lat)
                                                                   else (np.nan, np.nan)))
                rows.append(row)
                print(f"{row[0]:6.0f} {row[1]:6d} {row[2]:7d} {row[3]:8d} {row[4]:>6} {row[5]:8.1f} "
                      f"{row[6]:8.1f} {row[7]:8.1f}", flush=True)
                next_report += args.window
            if proc.poll() is not None:
                print(f"grasp_node died:\n{tail(logs / 'grasp_node.log')}")
                return 1
            rclpy.spin_once(node, timeout_sec=max(0.0, min(next_send, next_report) - time.monotonic()))
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        terminate(proc)
    return verdict(rows)


def verdict(rows) -> int:
    if len(rows) < 2:
        print("too short to judge drift")
        return 0
    first, last = rows[0], rows[-1]
    mem_growth = last[5] - first[5]
    lat_ratio = last[6] / first[6] if first[6] > 0 else float("nan")
    bounded = all(str(r[4]).split("/")[0].isdigit() and int(str(r[4]).split("/")[0]) <= int(str(r[4]).split("/")[1])
                  for r in rows if "/" in str(r[4]))
    print(f"memory: {first[5]:.1f} -> {last[5]:.1f} MiB ({mem_growth:+.1f} MiB); median latency: {first[6]:.0f} -> "
          f"{last[6]:.0f} ms (x{lat_ratio:.2f}); queue bounded: {bounded}")
    ok = bounded and mem_growth < max(50.0, 0.1 * first[5]) and (np.isnan(lat_ratio) or lat_ratio < 1.5)
    print("PASS: no growth beyond noise" if ok else "FAIL: drift beyond noise")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
