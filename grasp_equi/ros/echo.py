"""``python -m grasp_equi.ros.echo``: a plain echo node, the latency floor for ``grasp_node``.

It subscribes to ``cloud`` and ``contacts`` with the node's QoS, pairs them by stamp like
``sync: exact`` and republishes the contacts message unchanged on ``scored_grasps``: the
same DDS traffic and rclpy overhead as the real node, with no decoding or inference.
"""

from __future__ import annotations

import sys
from collections import OrderedDict

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from sensor_msgs.msg import PointCloud2

from grasp_equi.ros.node import CLOUD_QOS, OUTPUT_QOS, REQUEST_QOS
from grasp_equi.ros.requests import stamp_key


class EchoNode(Node):
    def __init__(self):
        super().__init__("grasp_echo")
        self.clouds: OrderedDict = OrderedDict()  # stamp -> True (recent clouds)
        self.waiting: dict = {}  # stamp -> contacts message that arrived before its cloud
        self.pub = self.create_publisher(PointCloud2, "scored_grasps", OUTPUT_QOS)
        self.create_subscription(PointCloud2, "cloud", self._on_cloud, CLOUD_QOS)
        self.create_subscription(PointCloud2, "contacts", self._on_contacts, REQUEST_QOS)

    def _on_cloud(self, msg: PointCloud2) -> None:
        key = stamp_key(msg.header)
        self.clouds[key] = True
        while len(self.clouds) > 10:
            self.clouds.popitem(last=False)
        if key in self.waiting:
            self.pub.publish(self.waiting.pop(key))

    def _on_contacts(self, msg: PointCloud2) -> None:
        key = stamp_key(msg.header)
        if key in self.clouds:
            self.pub.publish(msg)
        elif len(self.waiting) < 100:
            self.waiting[key] = msg


def main(args=None) -> int:
    rclpy.init(args=args)
    node = EchoNode()
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
