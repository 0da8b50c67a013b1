"""The body of ``grasp-equi run`` (arguments in ``grasp_equi.ros.run``): node + demo source as
two processes, one line per scored message, a summary, exit.

``ros2 launch`` is not installable from PyPI, so this starts ``grasp_node`` and
``demo_source`` itself (the same executables the launch file starts), listens to
``scored_grasps`` and ``/diagnostics`` and prints what came back. On a ROS 2 install,
``ros2 launch grasp_equi grasp.launch.py demo:=true`` runs the same pair.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import String

from grasp_equi.ros.client import RELIABLE, decode_scored
from grasp_equi.ros.demo_source import INFO_QOS, INFO_TOPIC
from grasp_equi.ros.diagnostics import diagnostic_values
from grasp_equi.ros.procs import spawn, tail, terminate
from grasp_equi.ros.requests import stamp_key
from grasp_equi.paths import SHIPPED_WEIGHTS


class Listener:
    """Collects ``scored_grasps``, the demo's object list and the node's diagnostics."""

    def __init__(self, node):
        self.node = node
        self.objects: dict[tuple[int, int], dict] = {}
        self.results: list[tuple[dict, object, float]] = []
        self.diagnostics: dict[str, str] = {}
        self.pending: dict[tuple[int, int], tuple[object, float]] = {}  # scored before their object's name came
        node.create_subscription(PointCloud2, "scored_grasps", self._on_scored, RELIABLE)
        node.create_subscription(String, INFO_TOPIC, self._on_info, INFO_QOS)
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, RELIABLE)

    def _on_info(self, msg: String) -> None:
        info = json.loads(msg.data)
        key = tuple(info["stamp"])
        self.objects[key] = info
        if key in self.pending:
            self._report(info, *self.pending.pop(key))

    def _on_diag(self, msg: DiagnosticArray) -> None:
        self.diagnostics = diagnostic_values(msg) or self.diagnostics

    def _on_scored(self, msg: PointCloud2) -> None:
        received = time.time()
        key = stamp_key(msg.header)
        latency_ms = (received - (key[0] + key[1] * 1e-9)) * 1e3
        result = decode_scored(msg, received)
        if key in self.objects:
            self._report(self.objects[key], result, latency_ms)
        else:  # the object's name is still on its way: print the line when it comes (or at the end)
            self.pending[key] = (result, latency_ms)

    def flush(self) -> None:
        """Report results whose object name never came."""
        for result, latency_ms in self.pending.values():
            self._report({"name": "?", "family": "?", "index": len(self.results) + 1, "count": "?"}, result, latency_ms)
        self.pending.clear()

    def scored(self) -> int:
        return len(self.results) + len(self.pending)

    def _report(self, info: dict, result, latency_ms: float) -> None:
        self.results.append((info, result, latency_ms))
        ids, scores = result.per_grasp()
        ids, scores = ids[np.isfinite(scores)], scores[np.isfinite(scores)]  # poses left out have NaN scores
        best = f"best {scores.max():.3f} (grasp {ids[scores.argmax()]:>3})" if len(scores) else "no grasp scored"
        print(f"[{info['index']:>3}/{info['count']}] {info['name']:<18} grasps {len(ids):>4}   {best}   "
              f"latency {latency_ms:7.0f} ms", flush=True)


def run(args) -> int:
    """Start both processes, print what comes back; 0 when every message was scored.

    rclpy's own SIGINT/SIGTERM handlers are disabled: the signal reaches Python as
    ``KeyboardInterrupt`` (SIGTERM through ``grasp_equi.cli``), and ``finally`` stops both children.
    """
    env = dict(os.environ)
    domain = args.domain_id if args.domain_id is not None else int(env.get("ROS_DOMAIN_ID") or random.randint(30, 200))
    env["ROS_DOMAIN_ID"] = os.environ["ROS_DOMAIN_ID"] = str(domain)
    node_args = ["-p", f"device:={args.device}", "-p", f"queue_size:={min(64, max(2, args.count))}"]
    if args.model:
        node_args += ["-p", f"model_path:={Path(args.model).resolve()}"]
        model_note = args.model
    elif SHIPPED_WEIGHTS.is_file():
        model_note = f"shipped weights ({SHIPPED_WEIGHTS.name})"
    else:
        node_args += ["-p", "allow_untrained:=true"]
        model_note = "UNTRAINED random model"
        print(f"WARNING: no shipped weights at {SHIPPED_WEIGHTS}; scores below come from an UNTRAINED model "
              "(train with `make train`, or pass --model)", flush=True)
    demo_args = ["-p", f"count:={args.count}", "-p", f"rate:={float(args.rate)}", "-p", f"grasps:={args.grasps}",
                 "-p", f"points:={args.points}", "-p", f"seed:={args.seed}", "-p", f"input:={args.input}"]
    logs = Path(tempfile.mkdtemp(prefix="grasp_equi_run_"))
    print(f"grasp_equi demo: ROS_DOMAIN_ID={domain}, model: {model_note}, score = {_answer(args.model)}, "
          f"{args.count} objects at {args.rate} Hz, {args.grasps} grasps each (logs in {logs})", flush=True)

    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    listener_node = rclpy.create_node("grasp_equi_run")
    listener = Listener(listener_node)
    node = spawn("grasp_equi.ros.node", node_args, logs / "grasp_node.log", env)
    demo = None
    deadline = time.monotonic() + args.timeout
    try:
        while listener_node.count_subscribers("contacts") == 0 and listener_node.count_subscribers("grasp_poses") == 0 \
                and listener_node.count_subscribers("propose_cloud") == 0:
            if node.poll() is not None:
                print(f"grasp_node exited with code {node.returncode}:\n{tail(logs / 'grasp_node.log')}")
                return node.returncode or 1
            if time.monotonic() > deadline:
                print("grasp_node did not come up in time")
                return 1
            rclpy.spin_once(listener_node, timeout_sec=0.1)
        demo = spawn("grasp_equi.ros.demo_source", demo_args, logs / "demo_source.log", env)
        demo_done_at = None
        while listener.scored() < args.count and time.monotonic() < deadline:
            rclpy.spin_once(listener_node, timeout_sec=0.1)
            if demo_done_at is None and demo.poll() is not None:
                demo_done_at = time.monotonic()
                if demo.returncode != 0:
                    print(f"demo_source exited with code {demo.returncode}:\n{tail(logs / 'demo_source.log')}")
                    return 1
            if node.poll() is not None:
                print(f"grasp_node stopped unexpectedly:\n{tail(logs / 'grasp_node.log')}")
                return 1
            counts = listener.diagnostics
            settled = counts and int(counts.get("scored", 0)) + int(counts.get("dropped", 0)) + int(
                counts.get("invalid", 0)) + int(counts.get("unmatched", 0)) >= args.count
            if demo_done_at is not None and settled and time.monotonic() - demo_done_at > 2.0:
                break  # everything the node received is accounted for
        end = time.monotonic() + 1.5  # one more diagnostics message for the summary
        while time.monotonic() < end:
            rclpy.spin_once(listener_node, timeout_sec=0.1)
        listener.flush()
        return _summary(listener, args.count, model_note)
    finally:
        for proc in (demo, node):
            if proc is not None:
                terminate(proc)
        listener_node.destroy_node()
        rclpy.try_shutdown()


def _summary(listener: Listener, count: int, model_note: str) -> int:
    results = listener.results
    diag = listener.diagnostics
    print("-" * 78)
    if not results:
        print(f"no scored messages received (of {count}); node diagnostics: {diag}")
        return 1
    latency = np.array([r[2] for r in results])
    best = np.array([np.nanmax(r[1].score) for r in results if np.isfinite(r[1].score).any()])  # NaN: left out
    grasps = sum(len(r[1].per_grasp()[0]) for r in results)
    mean_best = best.mean() if len(best) else float("nan")
    print(f"scored {len(results)}/{count} messages, {grasps} grasps; mean best score {mean_best:.3f}; "
          f"end-to-end latency median {np.median(latency):.0f} ms, max {latency.max():.0f} ms")
    if diag:
        print(f"node: model {diag.get('model')} on {diag.get('device')}, latency p50 {diag.get('latency_p50_ms')} ms; "
              f"dropped {diag.get('dropped')}, invalid {diag.get('invalid')}, unmatched {diag.get('unmatched')}")
    if "UNTRAINED" in model_note:
        print("note: scores are from an UNTRAINED model")
    return 0 if len(results) == count else 1


def _answer(model: str | None) -> str:
    """What the node's ``score`` means for ``model`` (None: the shipped weights), from the checkpoint header."""
    from grasp_equi.checkpoint import read_header

    try:
        config = read_header(Path(model) if model else SHIPPED_WEIGHTS)[0]
    except Exception:  # unreadable or missing: the node reports it itself
        return "P(stable)"
    return "P(held)" if config.held_members else "P(force closure)"
