"""Live view of the grasp node: subscribe to ``cloud`` and ``scored_grasps`` (Qt-free).

rclpy runs in its own context and a background spin thread; decoded messages are handed to
plain callbacks (the window turns them into queued Qt signals). Decoding uses the node's
own PointCloud2 codec (``grasp_equi.ros.codec``), so the GUI reads exactly what the node
writes. rclpy is imported only when live mode starts: the window works without ROS.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np

MAX_POINTS = 2_000_000
CLOUD_TOPIC = "cloud"
SCORED_TOPIC = "scored_grasps"


@dataclass
class LiveCloud:
    points: np.ndarray  # [N, 3]
    normals: np.ndarray | None  # [N, 3]
    frame_id: str
    stamp: tuple[int, int]  # (sec, nanosec)


@dataclass
class LiveGrasps:
    grasp_ids: np.ndarray  # [G]
    grasps: list[np.ndarray]  # G x [K_i, 3]
    scores: np.ndarray  # [G] the node's score (its model's default answer)
    frame_id: str
    stamp: tuple[int, int]
    rejected: list[str] = None  # grasps the node left out (NaN score), one reason each
    answers: dict[str, np.ndarray] = None  # output name (grasp_equi.keys.OUTPUTS) -> [G], models with several

    def __post_init__(self):
        self.rejected = list(self.rejected or [])
        self.answers = dict(self.answers or {})


REASON_NAMES = {1: "no contact: the jaws close on nothing", 2: "collision: the gripper hits the object"}


def decode_scored(msg) -> LiveGrasps:
    """Group a ``scored_grasps`` message (x, y, z, grasp_id, score[, reason][, p_held, p_force_closure])
    into grasps and scores (and each named answer, ``answers``); grasps the node left out (NaN score,
    non-zero ``reason``) become ``rejected`` lines."""
    from grasp_equi import keys
    from grasp_equi.ros.codec import FLOAT_TYPES, INT_TYPES, read_fields
    from grasp_equi.ros.outputs import field_name

    required = {"x": FLOAT_TYPES, "y": FLOAT_TYPES, "z": FLOAT_TYPES, "grasp_id": INT_TYPES, "score": FLOAT_TYPES}
    named = {field_name(o): o for o in keys.OUTPUTS}
    fields = read_fields(msg, required, {"reason": INT_TYPES, **{f: FLOAT_TYPES for f in named}}, MAX_POINTS)
    points = np.stack([fields[n].astype(np.float64) for n in "xyz"], axis=1)  # [C, 3]
    if not np.isfinite(points).all():
        raise ValueError("scored_grasps has non-finite contact coordinates")
    ids, inverse = np.unique(fields["grasp_id"].astype(np.int64), return_inverse=True)
    order = np.argsort(inverse, kind="stable")  # contacts of one grasp keep message order
    counts = np.bincount(inverse, minlength=len(ids))  # [G]
    grasps = np.split(points[order], np.cumsum(counts)[:-1]) if len(ids) else []
    first = order[np.cumsum(counts) - counts]  # [G] each grasp's first contact in the message
    scores = fields["score"].astype(np.float64)[first]  # [G] (every contact of a grasp carries it)
    reasons = fields["reason"].astype(np.int64)[first] if "reason" in fields else np.zeros(len(ids), np.int64)
    left_out = ~np.isfinite(scores) | (reasons != 0)  # [G]
    rejected = [f"grasp #{int(ids[i])}: {REASON_NAMES.get(int(reasons[i]), 'not scored')}; removed"
                for i in np.flatnonzero(left_out)]
    keep = np.flatnonzero(~left_out)
    answers = {o: fields[f].astype(np.float64)[first][keep] for f, o in named.items() if f in fields}
    return LiveGrasps(ids[keep], [grasps[i] for i in keep], scores[keep], msg.header.frame_id, _stamp(msg),
                      rejected, answers)


def decode_cloud_msg(msg) -> LiveCloud:
    from grasp_equi.ros.codec import decode_cloud

    cloud = decode_cloud(msg, MAX_POINTS)
    return LiveCloud(cloud.points, cloud.normals, msg.header.frame_id, _stamp(msg))


def _stamp(msg) -> tuple[int, int]:
    return int(msg.header.stamp.sec), int(msg.header.stamp.nanosec)


class LiveSubscriber:
    """Subscribes to the node's topics in a private rclpy context; ``stop()`` tears it down.

    ``on_cloud(LiveCloud)``, ``on_grasps(LiveGrasps)`` and ``on_error(str)`` are called from
    the spin thread.
    """

    def __init__(self, on_cloud: Callable[[LiveCloud], None], on_grasps: Callable[[LiveGrasps], None],
                 on_error: Callable[[str], None], cloud_topic: str = CLOUD_TOPIC,
                 scored_topic: str = SCORED_TOPIC, domain_id: int | None = None):
        self.on_cloud, self.on_grasps, self.on_error = on_cloud, on_grasps, on_error
        self.cloud_topic, self.scored_topic, self.domain_id = cloud_topic, scored_topic, domain_id
        self._context = self._node = self._executor = self._thread = None

    def start(self) -> None:
        """Create the node and start spinning; ``RuntimeError`` (with the reason) when ROS is unusable."""
        try:
            import rclpy
            from rclpy.executors import SingleThreadedExecutor
            from rclpy.qos import qos_profile_sensor_data
            from sensor_msgs.msg import PointCloud2
        except ImportError as err:
            raise RuntimeError(f"ROS 2 (rclpy, sensor_msgs) is not available: {err}") from None
        self._context = rclpy.Context()
        rclpy.init(context=self._context, domain_id=self.domain_id)
        self._node = rclpy.create_node("grasp_equi_gui", context=self._context)
        # best effort matches both reliable and best-effort publishers (what RViz does)
        self._node.create_subscription(PointCloud2, self.cloud_topic, self._cloud_cb, qos_profile_sensor_data)
        self._node.create_subscription(PointCloud2, self.scored_topic, self._scored_cb, qos_profile_sensor_data)
        self._executor = SingleThreadedExecutor(context=self._context)
        self._executor.add_node(self._node)
        self._thread = threading.Thread(target=self._spin, name="grasp_equi_gui_ros", daemon=True)
        self._thread.start()

    def topics(self) -> tuple[str, str]:
        """Fully resolved topic names (with the node's namespace)."""
        if self._node is None:
            return self.cloud_topic, self.scored_topic
        return (self._node.resolve_topic_name(self.cloud_topic), self._node.resolve_topic_name(self.scored_topic))

    def _spin(self) -> None:
        try:
            while self._context is not None and self._context.ok():
                self._executor.spin_once(timeout_sec=0.1)
        except Exception as err:  # noqa: BLE001  shutdown races end the loop quietly
            if self._context is not None and self._context.ok():
                self.on_error(f"ROS spin stopped: {err}")

    def _cloud_cb(self, msg) -> None:
        try:
            self.on_cloud(decode_cloud_msg(msg))
        except ValueError as err:
            self.on_error(f"cloud message dropped: {err}")

    def _scored_cb(self, msg) -> None:
        try:
            self.on_grasps(decode_scored(msg))
        except ValueError as err:
            self.on_error(f"scored_grasps message dropped: {err}")

    def stop(self) -> None:
        context, self._context = self._context, None
        if context is None:
            return
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self._executor.shutdown(timeout_sec=1.0)
        self._node.destroy_node()
        context.try_shutdown()
        self._node = self._executor = self._thread = None
