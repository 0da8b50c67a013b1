"""``grasp_node``: the ``grasp_stability`` ROS 2 node (topics and rules in docs/ros.md and docs/design.md).

Callbacks (executor thread) decode and validate messages, match requests to clouds and
enqueue jobs; one worker thread runs the network and publishes. Any message that cannot be
scored is logged (throttled, with its reason), counted in ``/diagnostics`` and dropped; the
node keeps serving. A grasp the model cannot judge (a contact off the surface the cloud shows)
is published with a NaN score and counted per reason (``grasps_off_surface``).
"""

from __future__ import annotations

import re
import sys
import time
import traceback

import numpy as np
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseArray
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2
from visualization_msgs.msg import MarkerArray

from grasp_equi.checkpoint import CheckpointError
from grasp_equi.contacts import reason_key
from grasp_equi.gripper import quaternion_to_matrix
from grasp_equi.planner import GraspPlanner
from grasp_equi.poses import COLLISION, NO_CONTACT, OFF_SURFACE, SCORED, close_and_check
from grasp_equi.scene import segment_object
from grasp_equi.ros import codec
from grasp_equi.ros.answers import pose_array, pose_columns, ranked_columns, ranked_pose_array
from grasp_equi.ros.diagnostics import Stats, Throttle, diagnostic_array
from grasp_equi.ros.gripper_markers import gripper_markers
from grasp_equi.ros.interrupt import exits_quietly_on_interrupt, ignore_sigint
from grasp_equi.ros.markers import grasp_markers
from grasp_equi.ros.model import load_scorer, warm_up
from grasp_equi.ros.outputs import Answers, has_spread, named_fields, resolve_output, score_all
from grasp_equi.ros.params import Settings, declare_all, output_check, read_settings
from grasp_equi.ros.requests import CloudEntry, CloudStore, PendingRequests, Request, describe_stamp
from grasp_equi.ros.worker import DropOldestQueue, Worker
from grasp_equi.validation import check_cloud

NODE_NAME = "grasp_stability"
# Best-effort subscriptions match both reliable and best-effort publishers (a reliable
# subscription would refuse best-effort camera drivers); outputs are reliable, which every
# subscriber accepts.
CLOUD_QOS = QoSProfile(depth=5, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.BEST_EFFORT)
REQUEST_QOS = QoSProfile(depth=20, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.BEST_EFFORT)
OUTPUT_QOS = QoSProfile(depth=50, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)


class GraspNode(Node):
    """Scores grasps on object clouds; see the module docstring."""

    def __init__(self, **node_kwargs):
        super().__init__(NODE_NAME, **node_kwargs)
        declare_all(self)  # ValueError on a bad or unknown parameter
        self.settings: Settings = read_settings(self)
        self._apply_cpu_threads()
        self.scorer, self.model_label, self.trained = load_scorer(self.settings, self.get_logger())
        output = self._output(self.settings)  # ValueError (exit 2) when the model lacks score_output's choice
        self.add_on_set_parameters_callback(output_check(self.scorer.outputs, self.scorer.name, self.get_logger()))
        warm_up(self.scorer)
        self.scorer.limits = self.settings.limits  # after the warm-up: its 5 cm sphere must not be refused
        self.stats = Stats()
        self.throttle = Throttle(self.settings.log_throttle)
        self.store = CloudStore(self.settings.cloud_buffer)
        self.pending = PendingRequests()
        self.jobs: DropOldestQueue[tuple[Request, CloudEntry]] = DropOldestQueue(self.settings.queue_size)
        self._diag_previous: dict[str, int] = {}
        self.add_post_set_parameters_callback(self._on_parameters_set)

        self.pub_scored = self.create_publisher(PointCloud2, "scored_grasps", OUTPUT_QOS)
        self.pub_markers = self.create_publisher(MarkerArray, "markers", OUTPUT_QOS)
        self.pub_ranked = self.create_publisher(PoseArray, "ranked_poses", OUTPUT_QOS)
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", OUTPUT_QOS)
        self.worker = Worker(self.jobs, self._score, on_start=self._apply_cpu_threads)
        self.worker.start()
        self.create_timer(self.settings.diagnostics_period, self._publish_diagnostics)
        self.create_timer(0.1, self._expire_pending)
        # Subscriptions last: once a publisher sees them matched, the node is ready to serve.
        self.create_subscription(PointCloud2, "cloud", self._on_cloud, CLOUD_QOS)
        self.create_subscription(PointCloud2, "contacts", self._on_contacts, REQUEST_QOS)
        self.create_subscription(PoseArray, "grasp_poses", self._on_poses, REQUEST_QOS)
        self.create_subscription(PointCloud2, "propose_cloud", self._on_propose, CLOUD_QOS)
        self.get_logger().info(
            f"ready: model {self.model_label} ({'trained' if self.trained else 'UNTRAINED'}) on "
            f"{self.scorer.device}, sync={self.settings.sync}, queue_size={self.settings.queue_size}, "
            f"score = P({output.replace('_', ' ')}) (the model answers {', '.join(self.scorer.outputs)})")

    # ------------------------------------------------------------------ bookkeeping
    def _output(self, settings: Settings) -> str:
        """The output ``score`` carries (``keys.OUTPUTS``); ``ValueError`` if the model lacks the choice."""
        return resolve_output(settings.score_output, self.scorer.outputs, self.scorer.name)

    def _on_parameters_set(self, _params) -> None:
        self.settings = read_settings(self)
        self.throttle.period = self.settings.log_throttle
        self.store.resize(self.settings.cloud_buffer)
        self.scorer.limits = self.settings.limits
        for _ in self.jobs.resize(self.settings.queue_size):
            self.stats.count("dropped")

    def _reject(self, topic: str, reason: str, header=None, counter: str = "invalid") -> None:
        """Count (as ``counter``), log (throttled per kind of reason) and drop a message."""
        if counter == "invalid":
            self.stats.invalid(f"{topic}: {reason}")
        else:
            self.stats.count(counter)
        suppressed = self.throttle(topic + ":" + re.sub(r"[-\d.]+", "#", reason))
        if suppressed is None:
            return
        where = "" if header is None else f" (stamp {describe_stamp((header.stamp.sec, header.stamp.nanosec))}, " \
                                          f"frame {header.frame_id!r})"
        more = f" [{suppressed} similar messages suppressed]" if suppressed else ""
        self.get_logger().warning(f"dropped {topic} message{where}: {reason}{more}")

    def _check_frame(self, header) -> None:
        if not header.frame_id:
            raise ValueError("header.frame_id is empty: results could not be placed in any frame")

    def _decode_object_cloud(self, msg: PointCloud2):
        """The decoded object cloud of ``msg`` (``cloud`` or ``propose_cloud``); ``ValueError`` with the
        reason when its frame, fields, values or size make it unusable."""
        self._check_frame(msg.header)
        decoded = codec.decode_cloud(msg, self.settings.max_points)
        points, _ = check_cloud(decoded.points, decoded.normals)
        self.settings.limits.check_object_size(points)
        return decoded

    # ------------------------------------------------------------------ callbacks (executor thread)
    def _on_cloud(self, msg: PointCloud2) -> None:
        self.stats.count("clouds")
        try:
            decoded = self._decode_object_cloud(msg)
        except ValueError as err:
            self._reject("cloud", str(err), msg.header)
            self.store.reject(msg.header, str(err))  # requests for it fail now, with this reason
            self._flush_pending()
            return
        self.store.add(CloudEntry(msg.header, decoded.points, decoded.normals))
        self._flush_pending()

    def _flush_pending(self) -> None:
        """Enqueue waiting requests whose cloud has arrived; drop those that can never match."""
        matched, failed = self.pending.take_matched(self.store, self.settings.sync)
        for request, reason in failed:
            self._reject(request.kind, reason, request.header)
        for request, cloud in matched:
            self._enqueue(request, cloud)

    def _on_contacts(self, msg: PointCloud2) -> None:
        received = time.monotonic()
        self.stats.count("requests")
        try:
            self._check_frame(msg.header)
            decoded = codec.decode_contacts(msg, self.settings.max_points)
            ids, grasps = decoded.grasps(self.settings.limits)
        except ValueError as err:
            self._reject("contacts", str(err), msg.header)
            return
        columns = {**codec.xyz_columns(decoded.points), "grasp_id": decoded.grasp_id.astype(np.uint32)}
        if decoded.normals is not None:
            columns.update(codec.normal_columns(decoded.normals))
        request = Request("contacts", msg.header, received, grasp_ids=ids, grasps=grasps, columns=columns,
                          contact_grasp=np.searchsorted(ids, decoded.grasp_id))
        request.stage_ms["decode"] = (time.monotonic() - received) * 1e3
        self._dispatch(request)

    def _on_poses(self, msg: PoseArray) -> None:
        received = time.monotonic()
        self.stats.count("requests")
        if len(msg.poses) > self.settings.max_grasps:
            self._reject("grasp_poses", f"{len(msg.poses)} poses, more than max_grasps={self.settings.max_grasps}",
                         msg.header)
            return
        positions = np.array([[p.position.x, p.position.y, p.position.z] for p in msg.poses]).reshape(-1, 3)
        quats = np.array([[p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w]
                          for p in msg.poses]).reshape(-1, 4)
        try:
            self._check_frame(msg.header)
            if not np.isfinite(positions).all():
                raise ValueError("a pose position is NaN/inf")
            quaternion_to_matrix(quats)  # raises on zero/NaN orientations
        except ValueError as err:
            self._reject("grasp_poses", str(err), msg.header)
            return
        request = Request("poses", msg.header, received, positions=positions, quats=quats)
        request.stage_ms["decode"] = (time.monotonic() - received) * 1e3
        self._dispatch(request)

    def _on_propose(self, msg: PointCloud2) -> None:
        """A cloud alone: propose ranked gripper poses on it (no matching: the cloud is the request)."""
        received = time.monotonic()
        self.stats.count("requests")
        try:
            decoded = self._decode_object_cloud(msg)
        except ValueError as err:
            self._reject("propose_cloud", str(err), msg.header)
            return
        request = Request("propose", msg.header, received)
        request.stage_ms["decode"] = (time.monotonic() - received) * 1e3
        self._enqueue(request, CloudEntry(msg.header, decoded.points, decoded.normals))

    def _dispatch(self, request: Request) -> None:
        try:
            cloud = self.store.match(request, self.settings.sync)
        except ValueError as err:
            self._reject(request.kind, str(err), request.header)
            return
        if cloud is not None:
            self._enqueue(request, cloud)
            return
        evicted = self.pending.add(request)
        if evicted is not None:
            self._reject(evicted.kind, "too many requests waiting for their cloud", evicted.header, "unmatched")

    def _enqueue(self, request: Request, cloud: CloudEntry) -> None:
        dropped = self.jobs.put((request, cloud))
        if dropped is not None:
            self.stats.count("dropped")
            suppressed = self.throttle("queue-full")
            if suppressed is not None:
                self.get_logger().warning(
                    f"scoring queue full (queue_size={self.jobs.capacity}): dropped the oldest request; "
                    f"requests arrive faster than the device scores them [{suppressed} similar suppressed]")

    def _expire_pending(self) -> None:
        for request in self.pending.take_expired(self.settings.sync_timeout):
            reason = self.store.why_unmatched(request, self.settings.sync)
            self._reject(request.kind, f"no matching cloud within {self.settings.sync_timeout} s: {reason}",
                         request.header, "unmatched")

    def _publish_diagnostics(self) -> None:
        array, self._diag_previous = diagnostic_array(
            self.get_clock().now().to_msg(), self.stats, str(self.scorer.device), self.model_label, self.trained,
            len(self.jobs), self.jobs.capacity, self._diag_previous,
            {"score_output": self._output(self.settings), "outputs": ",".join(self.scorer.outputs)})
        self.pub_diag.publish(array)

    def _apply_cpu_threads(self) -> None:
        """On 2-4 core robot CPUs, torch's default of one OpenMP thread per core contends with
        the DDS and executor threads: measured here, N=20k G=64 took 44 ms with 2 threads and
        34 ms with 1. Called in the main thread and again in the worker (per-thread setting)."""
        if self.settings.cpu_threads > 0:
            torch.set_num_threads(self.settings.cpu_threads)

    # ------------------------------------------------------------------ worker thread
    def _score(self, job: tuple[Request, CloudEntry]) -> None:
        request, cloud = job
        settings = self.settings
        try:
            self.scorer.timings = {}
            scene = request.kind == "propose" and settings.scene is not None  # encodes its object cluster itself
            encoded = None if scene else self._encoded(cloud, settings)
            answer = {"propose": self._answer_propose, "poses": self._answer_poses,
                      "contacts": self._answer_contacts}[request.kind]
            start = time.monotonic()
            scored, markers, ranked = answer(request, cloud, encoded, settings)
            stages = {**request.stage_ms, **self.scorer.timings, "encode": (time.monotonic() - start) * 1e3}
            self.pub_scored.publish(scored)
            self.pub_markers.publish(markers)
            if ranked is not None:
                self.pub_ranked.publish(ranked)
            self.stats.scored((time.monotonic() - request.received) * 1e3, stages)
        except ValueError as err:
            self._reject(request.kind, str(err), request.header)
        except Exception as err:  # never let one message kill the worker
            if not self.context.ok():
                return  # SIGINT shut the context down mid-job: the result has nowhere to go
            self.get_logger().error(f"internal error while scoring: {err}\n{traceback.format_exc()}")
            self.stats.invalid(f"internal error: {err}")

    def _count_unjudged(self, reasons: list[str | None]) -> None:
        """Grasps published with a NaN score, counted per reason (``grasps_off_surface``) and logged."""
        for reason in filter(None, reasons):
            self.stats.count(f"grasps_{reason_key(reason)}")
            if self.throttle("unjudged:" + reason_key(reason)) is not None:
                self.get_logger().warning(f"grasp published with a NaN score: {reason}")

    def _count_stray(self, stray: int) -> None:  # points the scorer left out (grasp_equi.outliers)
        if stray:
            self.stats.count("stray_points_left_out", stray)
            if self.throttle("stray") is not None:
                self.get_logger().warning(f"{stray} stray point(s) far outside the object left out of a cloud")

    def _encoded(self, cloud: CloudEntry, settings: Settings):
        """The encoder output for ``cloud`` (computed once, reused by every request on it)."""
        if cloud.encoded is None or cloud.encoded_for != settings.sample_points:
            points, normals = cloud.points, cloud.normals
            if settings.sample_points and len(points) > settings.sample_points:
                # a fixed random subset: chosen by index only, so it commutes with any rigid motion
                keep = np.sort(np.random.default_rng(0).choice(len(points), settings.sample_points, replace=False))
                points, normals = points[keep], None if normals is None else normals[keep]
            cloud.encoded = self.scorer.encode(points, normals)
            cloud.encoded_for = settings.sample_points
            self._count_stray(cloud.encoded.cloud.stray_points)
        return cloud.encoded

    def _answer_contacts(self, request: Request, cloud: CloudEntry, encoded, settings: Settings):
        """``scored_grasps`` (the input's fields + score) and markers for a contacts request."""
        grasps, output = request.grasps, self._output(settings)
        answers = score_all(self.scorer, encoded, grasps, output) if grasps else self._no_answers(0, output)  # [G]
        self._count_unjudged(self.scorer.reasons if grasps else [])
        columns = {**request.columns, **answers.columns(request.contact_grasp)}
        out = codec.encode_cloud(request.header, columns)
        return out, grasp_markers(request.header, grasps, answers.score, request.grasp_ids, settings.marker_size), None

    def _no_answers(self, size: int, output: str) -> Answers:
        """All-NaN answers for ``size`` grasps, with the fields this model's answers carry."""
        return Answers.empty(size, has_spread(self.scorer, output), named_fields(self.scorer))

    def _answer_poses(self, request: Request, cloud: CloudEntry, encoded, settings: Settings):
        """Close the jaws of every pose, score the ones that hold something, keep every index."""
        rotations = quaternion_to_matrix(request.quats)  # [P, 3, 3]
        contacts, widths, reasons = close_and_check(cloud.points, request.positions, rotations, settings.body,
                                                    settings.check_collisions)  # [P, 2, 3], [P], [P]
        self.stats.count("poses_without_contact", int((reasons == NO_CONTACT).sum()))
        self.stats.count("poses_in_collision", int((reasons == COLLISION).sum()))
        ids, output = np.flatnonzero(reasons == SCORED), self._output(settings)  # [G] pose indices
        answers = self._no_answers(len(reasons), output)  # [P] each, NaN where left out
        scores = answers.score  # [P]
        if len(ids):
            answers.put(ids, score_all(self.scorer, encoded, contacts[ids], output))
            self._count_unjudged(self.scorer.reasons)
            reasons[ids[~np.isfinite(scores[ids])]] = OFF_SURFACE  # one row at the pose, score NaN, reason 3
            ids = ids[np.isfinite(scores[ids])]
        header = request.header
        out = codec.encode_cloud(header, pose_columns(request.positions, contacts, widths, reasons, answers),
                                 is_dense=bool(len(ids) == len(reasons)))
        markers = grasp_markers(header, [contacts[i] for i in ids], scores[ids], ids, settings.marker_size)
        markers.markers += gripper_markers(header, request.positions[ids], rotations[ids], widths[ids], scores[ids],
                                           settings.body, settings.markers_top_n)
        return out, markers, ranked_pose_array(header, request.positions, rotations, scores)

    def _answer_propose(self, request: Request, cloud: CloudEntry, encoded, settings: Settings):
        """Ranked proposals on the cloud: ``ranked_poses`` best first, their contacts in ``scored_grasps``."""
        output = self._output(settings)
        planner = GraspPlanner(self.scorer, settings.body, settings.planner, output=output)  # ranks by `score`
        if settings.scene is None:
            ranked = planner.propose(cloud.points, cloud.normals, encoded=encoded)
        else:  # a scene: the object cluster is proposed on, the rest (the table) only blocks the gripper
            seg = segment_object(cloud.points, config=settings.scene)
            solid = np.ones(len(cloud.points), dtype=bool)
            solid[seg.object_idx] = False
            normals = None if cloud.normals is None else cloud.normals[seg.object_idx]
            encoded = self.scorer.encode(cloud.points[seg.object_idx], normals)
            ranked = planner.propose(cloud.points[seg.object_idx], normals, encoded=encoded,
                                     obstacles=cloud.points[solid])
        self.stats.count("proposals", len(ranked))
        for step, ms in ranked.timings.items():
            self.scorer.timings[f"propose_{step}"] = ms
        header = request.header
        answers = score_all(self.scorer, encoded, ranked.contacts, output, known=ranked.scores)  # [k] each
        out = codec.encode_cloud(header, ranked_columns(ranked.contacts, ranked.widths, answers))
        rotations = quaternion_to_matrix(ranked.poses[:, 3:]) if len(ranked) else np.zeros((0, 3, 3))
        markers = grasp_markers(header, list(ranked.contacts), ranked.scores, np.arange(len(ranked)),
                                settings.marker_size)
        markers.markers += gripper_markers(header, ranked.poses[:, :3], rotations, ranked.widths, ranked.scores,
                                           settings.body, settings.markers_top_n)
        return out, markers, pose_array(header, ranked.poses)

    def stop(self) -> None:
        self.worker.stop()


@exits_quietly_on_interrupt
def main(args: list[str] | None = None) -> int:
    """Console script ``grasp_node``; returns 2 for a bad parameter, 1 for a missing model, 0
    when stopped by SIGINT (also when it arrives twice, as under ``ros2 launch``)."""
    rclpy.init(args=args)
    node = None
    try:
        node = GraspNode()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except CheckpointError as err:
        print(f"[{NODE_NAME}] error: {err}", file=sys.stderr, flush=True)
        return 1
    except ValueError as err:
        print(f"[{NODE_NAME}] error: {err}", file=sys.stderr, flush=True)
        return 2
    finally:
        ignore_sigint()  # a second SIGINT must not interrupt the clean-up below
        if node is not None:
            node.stop()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
