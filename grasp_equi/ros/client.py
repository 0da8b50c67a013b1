"""A small client of ``grasp_node``: publish a cloud + request, collect results by stamp.

Used by the demo runner, the latency/soak scripts and the tests; handy for users too::

    client = ScoreClient(node)
    client.wait_ready(timeout=30)
    key = client.request(points, contacts, frame="object")
    result = client.wait_result(key, timeout=10)      # -> ScoredResult or None
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseArray
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from grasp_equi import keys
from grasp_equi.ros import codec
from grasp_equi.ros.answers import pose_array
from grasp_equi.ros.outputs import SCORE_FIELD, STD_FIELD, field_name
from grasp_equi.ros.diagnostics import diagnostic_values
from grasp_equi.ros.requests import stamp_key

# optional scored_grasps fields and their types (ScoredResult attributes of the same names)
OPTIONAL_FIELDS = {"width": codec.FLOAT_TYPES, "reason": codec.INT_TYPES, STD_FIELD: codec.FLOAT_TYPES,
                   **{field_name(o): codec.FLOAT_TYPES for o in keys.OUTPUTS}}
RELIABLE = QoSProfile(depth=50, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)


@dataclass
class ScoredResult:
    """One ``scored_grasps`` message, decoded."""

    msg: PointCloud2
    received: float  # time.time() on arrival
    points: np.ndarray  # [C, 3]
    grasp_id: np.ndarray  # [C]
    score: np.ndarray  # [C]
    width: np.ndarray | None = None  # [C] jaw opening (pose requests and proposals)
    reason: np.ndarray | None = None  # [C] 0 = scored, else why the pose was left out (grasp_equi.poses.REASONS)
    score_std: np.ndarray | None = None  # [C] the spread of `score` (held readouts', or an ensemble's)
    p_held: np.ndarray | None = None  # [C] P(held) (models with both answers; NaN where not scored)
    p_force_closure: np.ndarray | None = None  # [C] P(force closure) (models with both answers)

    def per_grasp(self) -> tuple[np.ndarray, np.ndarray]:
        """Sorted grasp ids ``(G,)`` and their scores ``(G,)``."""
        ids, first = np.unique(self.grasp_id, return_index=True)
        return ids, self.score[first]

    def per_grasp_of(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Sorted grasp ids ``(G,)`` and the field ``name`` (``"score"``, ``"p_held"``, ...) of each ``(G,)``;
        ``ValueError`` when the message has no such field."""
        values = getattr(self, name, None) if name in OPTIONAL_FIELDS or name == SCORE_FIELD else None
        if values is None:
            raise ValueError(f"scored_grasps has no field {name!r} (model without that answer?)")
        ids, first = np.unique(self.grasp_id, return_index=True)
        return ids, values[first]

    def per_pose(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pose indices ``(P,)`` with their scores (NaN = left out) and reason codes ``(P,)``."""
        ids, first = np.unique(self.grasp_id, return_index=True)
        reason = np.zeros(len(ids), np.uint8) if self.reason is None else self.reason[first]
        return ids, self.score[first], reason


def now_stamp() -> Time:
    ns = time.time_ns()
    return Time(sec=ns // 10**9, nanosec=ns % 10**9)


def decode_scored(msg: PointCloud2, received: float) -> ScoredResult:
    fields = codec.read_fields(msg, {**{n: codec.FLOAT_TYPES for n in codec.XYZ}, "grasp_id": codec.INT_TYPES,
                                     SCORE_FIELD: codec.FLOAT_TYPES}, OPTIONAL_FIELDS, max_points=10**8)
    points = np.stack([fields[n].astype(np.float64) for n in codec.XYZ], axis=1)
    return ScoredResult(msg, received, points, fields["grasp_id"].astype(np.int64), fields[SCORE_FIELD],
                        **{name: fields.get(name) for name in OPTIONAL_FIELDS})


class ScoreClient:
    """Publishers for ``cloud``/``contacts``/``grasp_poses``; subscribers for the outputs."""

    def __init__(self, node: Node, qos: QoSProfile = RELIABLE):
        self.node = node
        self.pub_cloud = node.create_publisher(PointCloud2, "cloud", qos)
        self.pub_contacts = node.create_publisher(PointCloud2, "contacts", qos)
        self.pub_poses = node.create_publisher(PoseArray, "grasp_poses", qos)
        self.pub_propose = node.create_publisher(PointCloud2, "propose_cloud", qos)
        self.ranked: dict[tuple[int, int], PoseArray] = {}
        self.results: dict[tuple[int, int], ScoredResult] = {}
        self.arrivals: dict[tuple[int, int], float] = {}  # time.time() of every scored_grasps message
        self.markers: dict[tuple[int, int], MarkerArray] = {}
        self.diagnostics: dict[str, str] = {}
        node.create_subscription(PointCloud2, "scored_grasps", self._on_scored, RELIABLE)
        node.create_subscription(MarkerArray, "markers", self._on_markers, RELIABLE)
        node.create_subscription(PoseArray, "ranked_poses", self._on_ranked, RELIABLE)
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, RELIABLE)

    def _on_scored(self, msg: PointCloud2) -> None:
        received = time.time()
        key = stamp_key(msg.header)
        self.arrivals[key] = received
        try:
            self.results[key] = decode_scored(msg, received)
        except ValueError as err:  # e.g. an echo node's output has no score field
            self.node.get_logger().debug(f"undecodable scored_grasps message: {err}")

    def _on_ranked(self, msg: PoseArray) -> None:
        self.ranked[stamp_key(msg.header)] = msg

    def _on_markers(self, msg: MarkerArray) -> None:
        if msg.markers:
            self.markers[stamp_key(msg.markers[0].header)] = msg

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        values = diagnostic_values(msg)
        if values:
            self.diagnostics = values

    # ------------------------------------------------------------------ waiting
    def spin_until(self, condition, timeout: float) -> bool:
        """Spin the client node until ``condition()`` is true or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                return False
            rclpy.spin_once(self.node, timeout_sec=0.02)
        return True

    def wait_ready(self, timeout: float) -> bool:
        """True once the node's subscriptions and ``scored_grasps`` publisher are matched."""
        return self.spin_until(lambda: (self.pub_cloud.get_subscription_count() > 0
                                        and self.pub_contacts.get_subscription_count() > 0
                                        and self.pub_poses.get_subscription_count() > 0
                                        and self.node.count_publishers("scored_grasps") > 0), timeout)

    def wait_result(self, key: tuple[int, int], timeout: float) -> ScoredResult | None:
        self.spin_until(lambda: key in self.results, timeout)
        return self.results.get(key)

    def wait_ranked(self, key: tuple[int, int], timeout: float) -> PoseArray | None:
        """The ``ranked_poses`` message with the request's stamp (None after ``timeout``)."""
        self.spin_until(lambda: key in self.ranked, timeout)
        return self.ranked.get(key)

    def wait_diagnostics(self, condition, timeout: float) -> dict[str, str]:
        """Latest diagnostics values once ``condition(values)`` holds (or after ``timeout``)."""
        self.spin_until(lambda: bool(self.diagnostics) and condition(self.diagnostics), timeout)
        return self.diagnostics

    # ------------------------------------------------------------------ publishing
    def header(self, frame: str = "object", stamp: Time | None = None) -> Header:
        return Header(frame_id=frame, stamp=stamp if stamp is not None else now_stamp())

    def publish_cloud(self, points: np.ndarray, normals: np.ndarray | None = None, frame: str = "object",
                      stamp: Time | None = None) -> Header:
        header = self.header(frame, stamp)
        self.pub_cloud.publish(codec.cloud_message(header, points, normals))
        return header

    def request(self, points: np.ndarray | None, contacts, normals: np.ndarray | None = None,
                frame: str = "object", stamp: Time | None = None) -> tuple[int, int]:
        """Publish the cloud (unless ``points`` is None) and the contacts with one stamp; return the key."""
        header = self.header(frame, stamp)
        if points is not None:
            self.pub_cloud.publish(codec.cloud_message(header, points, normals))
        self.pub_contacts.publish(codec.contacts_message(header, contacts))
        return stamp_key(header)

    def request_proposals(self, points: np.ndarray, normals: np.ndarray | None = None, frame: str = "object",
                          stamp: Time | None = None) -> tuple[int, int]:
        """Publish a cloud on ``propose_cloud``; the answer comes on ``ranked_poses`` and ``scored_grasps``."""
        header = self.header(frame, stamp)
        self.pub_propose.publish(codec.cloud_message(header, points, normals))
        return stamp_key(header)

    def request_poses(self, points: np.ndarray | None, positions: np.ndarray, quats_xyzw: np.ndarray,
                      frame: str = "object", stamp: Time | None = None) -> tuple[int, int]:
        """Publish the cloud (unless None) and a PoseArray of gripper poses with one stamp."""
        header = self.header(frame, stamp)
        if points is not None:
            self.pub_cloud.publish(codec.cloud_message(header, points))
        self.pub_poses.publish(pose_array(header, np.hstack([np.reshape(positions, (-1, 3)),
                                                             np.reshape(quats_xyzw, (-1, 4))])))
        return stamp_key(header)
