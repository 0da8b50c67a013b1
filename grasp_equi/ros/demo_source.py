"""``demo_source``: publishes the project's procedural sample objects as partial clouds with
candidate grasps, at ``rate`` Hz, ``count`` times, then exits.

Each object is one of the data pipeline's families (``grasp_equi.data.objects``), seen by a
simulated depth camera (``grasp_equi.data.clouds.partial_cloud``), with antipodal candidate
grasps (``grasp_equi.data.grasps.sample_antipodal``). Where those need packages a robot may
lack (trimesh, open3d), a built-in ellipsoid stands in, so the demo always runs.
Alongside each request it publishes a JSON line on ``demo/objects`` (stamp, name, sizes),
which ``grasp-equi run`` uses to label its output.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass

import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from grasp_equi.gripper import matrix_to_quaternion
from grasp_equi.ros.client import ScoreClient, now_stamp
from grasp_equi.ros.interrupt import exits_quietly_on_interrupt, ignore_sigint

INFO_TOPIC = "demo/objects"
# latched: a listener that matches after the first object went out (discovery takes a moment) still gets it
INFO_QOS = QoSProfile(depth=50, history=HistoryPolicy.KEEP_LAST, durability=DurabilityPolicy.TRANSIENT_LOCAL)


@dataclass
class DemoObject:
    name: str
    family: str
    points: np.ndarray  # [N, 3] partial cloud
    contacts: np.ndarray  # [G, 2, 3] candidate grasps
    camera: np.ndarray  # (3,) camera position (for the gripper approach direction)


def _near_cloud(points: np.ndarray, contacts: np.ndarray, limit: float) -> np.ndarray:
    """``(G,)`` True where both contacts lie within ``limit`` of a cloud point (the scorer
    rejects contacts that do not touch the object)."""
    flat = contacts.reshape(-1, 3)  # [2G, 3]
    d2 = ((flat[:, None, :] - points[None, ::4, :]) ** 2).sum(-1).min(axis=1)  # [2G] (every 4th point: enough)
    return (np.sqrt(d2) < limit).reshape(len(contacts), -1).all(axis=1)


def make_demo_object(index: int, rng: np.random.Generator, num_grasps: int, num_points: int) -> DemoObject:
    """Object ``index`` (cycling through the families) as a partial view with grasps."""
    try:
        from grasp_equi.data.clouds import partial_cloud
        from grasp_equi.data.grasps import sample_antipodal
        from grasp_equi.data.objects import FAMILIES, make_object
    except ImportError:  # trimesh/open3d missing: a plain ellipsoid keeps the demo going
        return _fallback_object(index, rng, num_grasps, num_points)
    family = FAMILIES[index % len(FAMILIES)]
    try:
        obj = make_object(family, rng, name=f"{family}_{index:03d}")
        points, _, camera = partial_cloud(obj, rng, resolution=160)
    except ValueError:  # a degenerate random solid: show an ellipsoid instead of stopping the demo
        return _fallback_object(index, rng, num_grasps, num_points)
    if num_points and len(points) > num_points:
        points = points[rng.choice(len(points), num_points, replace=False)]
    contacts, _ = sample_antipodal(obj, 4 * num_grasps, rng)
    radius = float(np.linalg.norm(points - points.mean(0), axis=1).max())
    contacts = contacts[_near_cloud(points, contacts, 0.3 * radius)][:num_grasps]
    return DemoObject(obj.name, family, points, contacts, camera)


def _fallback_object(index: int, rng: np.random.Generator, num_grasps: int, num_points: int) -> DemoObject:
    axes = rng.uniform(0.015, 0.06, size=3)
    d = rng.normal(size=(max(num_points, 2000) * 2, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    camera = np.array([0.0, 0.0, 0.6])
    points = (d * axes)[d[:, 2] > -0.2][: max(num_points, 2000)]  # the camera sees the top part
    pairs = rng.integers(0, len(points), size=(num_grasps, 2))
    return DemoObject(f"ellipsoid_{index:03d}", "ellipsoid", points, points[pairs], camera)


def gripper_poses(contacts: np.ndarray, camera: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Parallel-jaw poses ``(positions (G, 3), quats_xyzw (G, 4))`` for contact pairs: origin at
    the midpoint, fingers closing along the pair (+y), approaching from the camera's side (+z)."""
    centre = contacts.mean(axis=1)  # [G, 3]
    y = contacts[:, 0] - contacts[:, 1]
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    towards = centre - camera  # approach direction: from the camera into the object
    z = towards - (towards * y).sum(1, keepdims=True) * y
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    x = np.cross(y, z)
    rot = np.stack([x, y, z], axis=2)  # [G, 3, 3] columns = gripper axes
    return centre, matrix_to_quaternion(rot)


INPUTS = ("contacts", "poses", "propose")  # contact points, gripper poses, or the cloud alone (propose_cloud)


class DemoSource(Node):
    """Publishes ``count`` objects at ``rate`` Hz on ``cloud`` + ``contacts`` (or ``grasp_poses``)."""

    def __init__(self):
        super().__init__("demo_source")
        p = {name: self.declare_parameter(name, default).value for name, default in (
            ("rate", 1.0), ("count", 8), ("grasps", 32), ("points", 0), ("seed", 0), ("frame_id", "world"),
            ("input", "contacts"), ("reliable", True), ("wait_for_node", 120.0))}
        if p["input"] not in INPUTS:
            raise ValueError(f"input must be one of {INPUTS}; got {p['input']!r}")
        if not (p["rate"] > 0 and p["count"] >= 0 and p["grasps"] >= 1):
            raise ValueError("rate must be > 0, count >= 0 and grasps >= 1")
        self.p = p
        reliability = ReliabilityPolicy.RELIABLE if p["reliable"] else ReliabilityPolicy.BEST_EFFORT
        qos = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST, reliability=reliability)
        self.client = ScoreClient(self, qos)
        self.info = self.create_publisher(String, INFO_TOPIC, INFO_QOS)

    def run(self) -> int:
        p, log = self.p, self.get_logger()
        rng = np.random.default_rng(p["seed"])
        objects = [make_demo_object(i, rng, p["grasps"], p["points"]) for i in range(p["count"])]
        log.info(f"{len(objects)} objects ready; waiting for grasp_stability")
        if not self.client.wait_ready(p["wait_for_node"]):
            log.error(f"grasp_stability did not appear within {p['wait_for_node']} s")
            return 1
        period = 1.0 / p["rate"]
        next_time = time.monotonic()
        for i, obj in enumerate(objects):
            self.client.spin_until(lambda: time.monotonic() >= next_time, period + 1)
            next_time += period
            stamp = now_stamp()
            info = {"stamp": [stamp.sec, stamp.nanosec], "index": i + 1, "count": len(objects), "name": obj.name,
                    "family": obj.family, "points": len(obj.points), "grasps": len(obj.contacts)}
            self.info.publish(String(data=json.dumps(info)))
            if p["input"] == "propose":  # the cloud alone: the node proposes and ranks gripper poses
                self.client.request_proposals(obj.points, frame=p["frame_id"], stamp=stamp)
            elif p["input"] == "poses":
                positions, quats = gripper_poses(obj.contacts, obj.camera)
                self.client.request_poses(obj.points, positions, quats, frame=p["frame_id"], stamp=stamp)
            else:
                self.client.request(obj.points, obj.contacts, frame=p["frame_id"], stamp=stamp)
            log.info(f"published {obj.name}: {len(obj.points)} points, {len(obj.contacts)} grasps")
        self.client.spin_until(lambda: False, 0.5)  # let the last messages leave before exiting
        return 0


@exits_quietly_on_interrupt
def main(args: list[str] | None = None) -> int:
    """Console script ``demo_source``: 0 when done or stopped by SIGINT, 1 when the node never
    appeared, 2 for a bad parameter."""
    rclpy.init(args=args)
    node = None
    try:
        node = DemoSource()
        return node.run()
    except (KeyboardInterrupt, ExternalShutdownException):
        return 0  # stopping a ROS process with SIGINT is the normal way to end it
    except ValueError as err:
        print(f"[demo_source] error: {err}", file=sys.stderr, flush=True)
        return 2
    except Exception:
        if rclpy.ok():
            raise
        return 0  # SIGINT shut the context down while a call was using it: stopping, not failing
    finally:
        ignore_sigint()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
