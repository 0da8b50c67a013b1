#!/usr/bin/env python3
"""Bounded DDS fuzz campaign against grasp_node (``make fuzz``).

Starts the real node (shipped weights when present, else an untrained model) on its own
ROS_DOMAIN_ID and sends at least ``--messages`` messages of every hostile kind in
``scripts/fuzz_kinds.py`` (malformed and implausible clouds, contacts and gripper poses),
each with its own stamp, with a valid probe (cloud + contacts) after every cycle of kinds
whose scores must equal the Python API's. At the end it prints the counts and compares the
node's ``/diagnostics`` counters with what was sent. Exit code 1 on any crash, traceback,
scored garbage (a score for a message that must be refused, or a non-finite score),
wrong probe, or a counter that differs from what was sent by more than the messages DDS lost
(inputs are subscribed best-effort; losses are counted and printed).

    .venv/bin/python scripts/fuzz_node.py                    # >= 10,000 messages
    .venv/bin/python scripts/fuzz_node.py --messages 500     # a quick run
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from std_msgs.msg import Header

sys.path.insert(0, str(Path(__file__).parent))
from fuzz_kinds import MAX_GRASPS, all_kinds, ellipsoid  # noqa: E402

from grasp_equi import GraspScorer  # noqa: E402
from grasp_equi.checkpoint import save_checkpoint  # noqa: E402
from grasp_equi.ros import codec  # noqa: E402
from grasp_equi.ros.client import ScoreClient  # noqa: E402
from grasp_equi.ros.procs import rss_mb, spawn, tail, terminate  # noqa: E402
from grasp_equi.ros.requests import stamp_key  # noqa: E402
from grasp_equi.scorer import SHIPPED_WEIGHTS  # noqa: E402

COUNTED = ("clouds", "requests", "scored", "invalid", "unmatched", "dropped", "poses_in_collision",
           "poses_without_contact", "grasps_off_surface")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=10_000, help="at least this many messages (default 10000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=60.0, help="s to wait for one probe's answer")
    return p.parse_args()


class Campaign:
    """Sends the kinds, tracks what each stamp must produce, checks the answers."""

    def __init__(self, client: ScoreClient, api: GraspScorer, seed: int):
        self.client, self.api = client, api
        self.rng = np.random.default_rng(seed)
        self.kinds = all_kinds(self.rng)
        self.cheap = [k for k in self.kinds if not k.worker]  # refused in the DDS callback
        self.costly = [k for k in self.kinds if k.worker]  # need an encoder pass: a few per cycle
        self.expect: dict[tuple[int, int], str] = {}  # stamp -> "refused" | "scored" | kind name of probe
        self.sent = Counter()  # per topic
        self.want = Counter()  # expected diagnostics deltas
        self.per_kind = Counter()
        self.probes: dict[tuple[int, int], np.ndarray] = {}  # stamp -> expected scores
        self._sec = 1_000_000

    def stamp(self) -> Time:
        self._sec += 1
        return Time(sec=self._sec, nanosec=int(self.rng.integers(0, 10**9)))

    def publish(self, topic: str, msg) -> None:
        pub = {"cloud": self.client.pub_cloud, "contacts": self.client.pub_contacts,
               "grasp_poses": self.client.pub_poses, "propose_cloud": self.client.pub_propose}[topic]
        pub.publish(msg)
        self.sent[topic] += 1
        rclpy.spin_once(self.client.node, timeout_sec=0.0)
        time.sleep(0.006)  # paced like busy sensors, not a flood of one burst
        if self.total() % 20 == 0:  # and a breath now and then: the node's readers keep 5-20 messages
            self.client.spin_until(lambda: False, 0.05)

    def send_kind(self, kind) -> None:
        header = Header(frame_id="obj", stamp=self.stamp())
        messages = kind.make(header)
        for topic, msg in messages:
            self.publish(topic, msg)
        self.expect[stamp_key(header)] = kind.expect
        self.per_kind[kind.name] += 1
        clouds = sum(t == "cloud" for t, _ in messages)  # propose_cloud messages count as requests
        self.want["clouds"] += clouds
        self.want["requests"] += len(messages) - clouds
        self.want["invalid"] += (kind.expect == "refused") + kind.extra_invalid
        self.want["scored"] += kind.expect in ("scored", "unjudged")
        self.want["grasps_off_surface"] += kind.off_surface
        self.want["poses_in_collision"] += kind.collide
        self.want["poses_without_contact"] += kind.miss

    def send_probe(self) -> tuple[int, int]:
        points = ellipsoid(int(self.rng.integers(200, 800)), self.rng,
                           axes=self.rng.uniform(0.02, 0.08, size=3))
        grasps = points[self.rng.choice(len(points), size=(int(self.rng.integers(1, 9)), 2))]
        header = Header(frame_id="probe", stamp=self.stamp())
        self.publish("cloud", codec.cloud_message(header, points))
        self.publish("contacts", codec.contacts_message(header, grasps))
        key = stamp_key(header)
        f32 = lambda a: np.asarray(a, np.float32).astype(np.float64)  # noqa: E731 (the wire format)
        self.probes[key] = self.api.score(f32(points), f32(grasps))
        self.expect[key] = "scored"
        self.want.update(clouds=1, requests=1, scored=1)
        return key

    def total(self) -> int:
        return sum(self.sent.values())


def _garbage(result, unjudged: bool) -> bool:
    """A score outside [0, 1], or NaN without a reason (pose answers mark left-out poses NaN + a
    reason field; contacts off the surface are NaN and counted in ``grasps_off_surface``)."""
    score = result.score
    explained = np.full(len(score), unjudged) if result.reason is None else result.reason != 0
    finite = np.isfinite(score)
    return bool((~finite & ~explained).any() or ((score[finite] < 0) | (score[finite] > 1)).any()
                or (finite & explained).any())


def check(campaign: Campaign, diag: dict[str, int], log_text: str, alive: bool) -> tuple[dict, list[str]]:
    """The counts to print and the list of failures."""
    results = campaign.client.results
    garbage = [k for k, r in results.items() if campaign.expect.get(k) not in ("scored", "unjudged")
               or _garbage(r, campaign.expect[k] == "unjudged")]
    wrong = [k for k, s in campaign.probes.items()
             if k in results and not np.allclose(results[k].per_grasp()[1], s, atol=1e-6, rtol=0, equal_nan=True)]
    unanswered = [k for k, e in campaign.expect.items() if e == "scored" and k not in results]
    tracebacks = log_text.count("Traceback") + log_text.count("internal error")
    got = dict(diag)
    want = {name: campaign.want[name] for name in COUNTED}
    # Inputs are subscribed best-effort (camera drivers are): on a loaded machine DDS may lose a
    # message before the node sees it. The node counts what it receives, so a loss shows as
    # fewer clouds/requests counted; every other counter may then be short by at most that many.
    lost = (want["clouds"] - got["clouds"]) + (want["requests"] - got["requests"])
    counts = {"messages": campaign.total(), "kinds": len(campaign.kinds), "probes": len(campaign.probes),
              "crashes": int(not alive), "tracebacks": tracebacks, "scored_garbage": len(garbage),
              "wrong_probes": len(wrong), "unanswered_valid": len(unanswered), "lost_in_dds": lost}
    failures = [f"{k} = {v}" for k, v in counts.items()
                if k in ("crashes", "tracebacks", "scored_garbage", "wrong_probes") and v]
    if got["clouds"] > want["clouds"] or got["requests"] > want["requests"]:
        failures.append("the node counted more messages than were sent")
    if len(unanswered) > lost:
        failures.append(f"{len(unanswered)} valid requests unanswered, only {lost} messages lost")
    for n in ("scored", "invalid", "poses_in_collision", "poses_without_contact", "grasps_off_surface"):
        if not want[n] - lost <= got[n] <= want[n]:
            failures.append(f"diagnostics {n}: node counted {got[n]}, expected {want[n]} ({lost} lost)")
    for n in ("unmatched", "dropped"):
        if got[n] > (lost if n == "unmatched" else 0):
            failures.append(f"diagnostics {n}: {got[n]}")
    return {**counts, "node_counters": got, "expected_counters": want}, failures


def warm_up(campaign: Campaign, timeout: float) -> dict[str, int]:
    """Probe until one is answered (best-effort readers may miss messages while discovery
    completes), then wait past sync_timeout; returns the counters the campaign starts from."""
    client = campaign.client
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        key = campaign.send_probe()
        if client.wait_result(key, 2.0) is not None:
            break
    for kind in campaign.kinds:  # once each, uncounted: first-time code paths (lazy imports) run now
        campaign.send_kind(kind)
        client.spin_until(lambda: False, 0.05)
    client.wait_result(campaign.send_probe(), timeout)
    client.spin_until(lambda: False, 3.0)
    campaign.want.clear()
    campaign.expect.clear()
    campaign.probes.clear()
    campaign.sent.clear()
    client.results.clear()
    return {name: int(client.diagnostics.get(name, 0)) for name in COUNTED}


def wait_quiet(client: ScoreClient, want: Counter, baseline: dict[str, int], timeout: float) -> dict[str, int]:
    """Counter deltas since ``baseline`` once every expected message is handled and the queue is empty."""
    def delta(d):
        return {n: int(d.get(n, 0)) - baseline[n] for n in COUNTED}

    def settled(d):
        got = delta(d)
        handled = sum(got[k] for k in ("scored", "invalid", "unmatched", "dropped"))
        return (got["clouds"] >= want["clouds"] and got["requests"] >= want["requests"]
                and handled >= want["scored"] + want["invalid"] and d.get("queue", "").startswith("0/"))
    client.wait_diagnostics(settled, timeout)
    client.spin_until(lambda: False, 2.5)  # past sync_timeout and one more diagnostics period
    return delta(client.diagnostics)


def run(args, logs: Path) -> int:
    model = str(SHIPPED_WEIGHTS) if SHIPPED_WEIGHTS.is_file() else str(save_checkpoint(
        logs / "untrained.safetensors", *(lambda s: (s.model, s.config))(GraspScorer.untrained(device="cpu"))))
    api = GraspScorer.from_checkpoint(model, device="cpu")
    log = logs / "grasp_node.log"
    proc = spawn("grasp_equi.ros.node", ["-p", f"model_path:={model}", "-p", "device:=cpu", "-p", "queue_size:=64",
                                         "-p", "cloud_buffer:=100", "-p", f"max_grasps:={MAX_GRASPS}",
                                         "-p", "diagnostics_period:=0.5", "-p", "sync_timeout:=1.0"], log)
    rclpy.init()
    node = rclpy.create_node("grasp_equi_fuzz")
    client = ScoreClient(node)
    campaign = Campaign(client, api, args.seed)
    start = time.monotonic()
    try:
        if not client.wait_ready(180):
            print(f"grasp_node did not start:\n{tail(log)}")
            return 1
        print(f"fuzz: >= {args.messages} messages, {len(campaign.kinds)} kinds + probes, "
              f"ROS_DOMAIN_ID={os.environ['ROS_DOMAIN_ID']} (node log: {log})", flush=True)
        baseline = warm_up(campaign, args.timeout)
        cycle = 0
        while campaign.total() < args.messages and proc.poll() is None:
            # every cheap kind (refused in the callback, shuffled), then two kinds that reach the
            # scoring thread and a probe; waiting for the probe paces the campaign at the node's speed
            for kind in random.Random(cycle).sample(campaign.cheap, len(campaign.cheap)):
                campaign.send_kind(kind)
            for j in range(2):
                campaign.send_kind(campaign.costly[(2 * cycle + j) % len(campaign.costly)])
            client.wait_result(campaign.send_probe(), args.timeout)
            cycle += 1
        diag = wait_quiet(client, campaign.want, baseline, args.timeout)
        alive = proc.poll() is None
        rss = rss_mb(proc.pid)
    finally:
        terminate(proc)
        node.destroy_node()
        rclpy.try_shutdown()
    counts, failures = check(campaign, diag, log.read_text(errors="replace"), alive)
    seconds = time.monotonic() - start
    print(f"sent {counts['messages']} messages ({dict(campaign.sent)}) of {counts['kinds']} kinds + "
          f"{counts['probes']} valid probes in {seconds:.0f} s; node RSS at the end {rss:.0f} MiB")
    for name in ("crashes", "tracebacks", "scored_garbage", "wrong_probes", "unanswered_valid", "lost_in_dds"):
        print(f"  {name:24s} {counts[name]}")
    print("  diagnostics (node / expected): " + ", ".join(
        f"{n} {counts['node_counters'][n]}/{counts['expected_counters'][n]}" for n in COUNTED))
    if failures:
        print("FAILED: " + "; ".join(failures))
        print(tail(log, 30))
        return 1
    print("OK: 0 crashes, 0 tracebacks, 0 scored garbage")
    return 0


def main() -> int:
    args = parse_args()
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(30, 200)))
    logs = Path(tempfile.mkdtemp(prefix="grasp_equi_fuzz_"))
    return run(args, logs)


if __name__ == "__main__":
    sys.exit(main())
