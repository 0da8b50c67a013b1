"""``grasp-equi bench --ros``: end-to-end latency over ROS 2 next to the transport floor.

Starts ``grasp_node`` and the echo node (``grasp_equi.ros.echo``, in namespace ``/echo``)
as child processes on one DDS domain, then, for each configuration, alternately publishes
the same pre-encoded ``cloud`` + ``contacts`` pair (fresh stamp each time) to both and
times publish -> ``scored_grasps`` arrival. Node latency minus echo latency is what the node
adds over bare transport; the issue's target is that this stays within 20 % of the Python
API's own latency for the same cloud and grasps.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from pathlib import Path

import numpy as np

from grasp_equi.bench.measure import make_workload

MAX_ROS_GRASPS = 512  # DDS transfers of 4000-grasp requests are measured by the API grid instead
STARTUP_TIMEOUT_S = 120.0
REPLY_TIMEOUT_S = 10.0
MAX_LOST = 3  # best-effort subscriptions may drop a message (e.g. right after discovery): resend


class _Target:
    """Publishers/subscriber for one server (the node or the echo) in namespace ``ns``."""

    def __init__(self, rclpy, node, ns: str):
        from sensor_msgs.msg import PointCloud2

        from grasp_equi.ros.client import RELIABLE
        from grasp_equi.ros.requests import stamp_key

        self.rclpy, self.node, self.stamp_key = rclpy, node, stamp_key
        self.pub_cloud = node.create_publisher(PointCloud2, f"{ns}/cloud", RELIABLE)
        self.pub_contacts = node.create_publisher(PointCloud2, f"{ns}/contacts", RELIABLE)
        self.arrived: dict[tuple[int, int], float] = {}
        self.diagnostics: dict[str, str] = {}  # the node's latest /diagnostics key/values
        node.create_subscription(PointCloud2, f"{ns}/scored_grasps", self._on_reply, RELIABLE)
        if not ns:
            from diagnostic_msgs.msg import DiagnosticArray

            from grasp_equi.ros.diagnostics import diagnostic_values

            node.create_subscription(DiagnosticArray, "/diagnostics",
                                     lambda msg: self.diagnostics.update(diagnostic_values(msg)), RELIABLE)

    def _on_reply(self, msg) -> None:
        self.arrived[self.stamp_key(msg.header)] = time.perf_counter()

    def ready(self) -> bool:
        return self.pub_cloud.get_subscription_count() > 0 and self.pub_contacts.get_subscription_count() > 0

    def round_trip(self, cloud_msg, contacts_msg) -> float | None:
        """Publish with a fresh stamp; milliseconds until the reply arrives (None on timeout)."""
        from grasp_equi.ros.client import now_stamp

        stamp = now_stamp()
        cloud_msg.header.stamp = stamp
        contacts_msg.header.stamp = stamp
        key = self.stamp_key(cloud_msg.header)
        start = time.perf_counter()
        self.pub_cloud.publish(cloud_msg)
        self.pub_contacts.publish(contacts_msg)
        deadline = start + REPLY_TIMEOUT_S
        while key not in self.arrived and time.perf_counter() < deadline:
            self.rclpy.spin_once(self.node, timeout_sec=0.05)  # returns as soon as a reply arrives
        return (self.arrived.pop(key) - start) * 1e3 if key in self.arrived else None


def _spin_until(rclpy, node, condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        rclpy.spin_once(node, timeout_sec=0.05)
    return True


def measure_ros(args, scorers: dict, api_records: list[dict] | None = None) -> list[dict]:
    """One record per (device, N, G) with G <= MAX_ROS_GRASPS: node and echo round trips.

    ``scorers`` maps device -> the GraspScorer the API grid timed; the node loads the same
    model (saved to a temporary checkpoint), so the two are comparable.
    """
    try:
        import rclpy
        from std_msgs.msg import Header

        from grasp_equi.ros import codec
    except ImportError as err:
        raise ValueError(f"--ros needs rclpy and the ROS 2 message packages ({err})") from None
    from grasp_equi.bench import _devices, _grid

    os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(30, 200)))
    grid = [(n, g) for n, g in _grid(args) if g <= MAX_ROS_GRASPS]
    api = {(r["device"], r["n_points"], r["n_grasps"]): r for r in (api_records or [])
           if r.get("mode", "api") == "api" and r.get("precision", "fp32") == "fp32"}
    records = []
    for device in _devices(args.device):
        records += _measure_device(rclpy, Header, codec, args, scorers[device], grid, api)
    return records


def _measure_device(rclpy, header_type, codec, args, scorer, grid, api) -> list[dict]:
    from grasp_equi.checkpoint import save_checkpoint
    from grasp_equi.ros.procs import spawn, terminate

    device = scorer.device.type
    logs = Path(tempfile.mkdtemp(prefix="grasp_bench_ros_"))
    weights = save_checkpoint(logs / "bench_model.safetensors", scorer.model, scorer.config)
    node_args = ["-p", f"device:={device}", "-p", f"model_path:={weights}", "-p", "queue_size:=4"]
    env = dict(os.environ)
    if args.threads:  # the node's torch uses as many threads as the API run it is compared with
        env["OMP_NUM_THREADS"] = str(args.threads)
    procs = [spawn("grasp_equi.ros.node", node_args, logs / "node.log", env),
             spawn("grasp_equi.ros.echo", ["-r", "__ns:=/echo"], logs / "echo.log")]
    rclpy.init()
    client = rclpy.create_node("grasp_bench_client")
    try:
        node, echo = _Target(rclpy, client, ""), _Target(rclpy, client, "/echo")
        if not _spin_until(rclpy, client, lambda: node.ready() and echo.ready(), STARTUP_TIMEOUT_S):
            raise ValueError(f"grasp_node / echo did not come up within {STARTUP_TIMEOUT_S:.0f} s "
                             f"(logs in {logs})")
        records = []
        for n_points, n_grasps in grid:
            work = make_workload(n_points, n_grasps, k=args.k)
            header = header_type(frame_id="object")
            cloud_msg, contacts_msg = codec.cloud_message(header, work.points), codec.contacts_message(
                header, work.contacts)
            times, lost = {"node": [], "echo": []}, {"node": 0, "echo": 0}
            for i in range(2 + (4 if args.quick else 10)):  # 2 warm-ups, then alternate node/echo
                for name, target in (("node", node), ("echo", echo)):
                    ms = target.round_trip(cloud_msg, contacts_msg)
                    while ms is None:
                        lost[name] += 1
                        if lost[name] > MAX_LOST:
                            raise ValueError(f"no scored_grasps from the {name} {lost[name]} times (waited "
                                             f"{REPLY_TIMEOUT_S:.0f} s each; N={n_points}, G={n_grasps}; logs in {logs})")
                        ms = target.round_trip(cloud_msg, contacts_msg)
                    if i >= 2:
                        times[name].append(ms)
            node_ms, echo_ms = float(np.median(times["node"])), float(np.median(times["echo"]))
            node.diagnostics.clear()  # the node's own stage split of its last request (published each second)
            _spin_until(rclpy, client, lambda: bool(node.diagnostics), 3.0)
            inside = {k[5:-3]: float(v) for k, v in node.diagnostics.items()
                      if k.startswith("last_") and k.endswith("_ms")}
            record = {"mode": "ros", "device": device, "precision": "fp32", "n_points": n_points,
                      "n_grasps": n_grasps, "k": args.k, "repeats": len(times["node"]),
                      "stage_ms": {"ros_node": node_ms, "ros_echo": echo_ms},
                      "total_ms_median": node_ms, "echo_ms_median": echo_ms,
                      "total_ms_p10": float(np.percentile(times["node"], 10)),
                      "total_ms_p90": float(np.percentile(times["node"], 90)),
                      "node_stage_ms": inside, "lost_requests": lost}
            api_record = api.get((device, n_points, n_grasps))
            if api_record:
                # node = API + echo + overhead; target: overhead <= 20 % of the API latency
                record["api_ms_median"] = api_record["total_ms_median"]
                record["node_overhead_vs_api"] = (node_ms - echo_ms) / api_record["total_ms_median"] - 1.0
            records.append(record)
        return records
    finally:
        client.destroy_node()
        rclpy.try_shutdown()
        for proc in procs:
            terminate(proc)
