"""``grasp-equi run`` (what ``make run`` calls): node + demo source as two processes, one
line per scored message, a summary, exit.

``ros2 launch`` is not installable from PyPI, so this starts ``grasp_node`` and
``demo_source`` itself (the same executables the launch file starts), listens to
``scored_grasps`` and ``/diagnostics`` and prints what came back. On a ROS 2 install,
``ros2 launch grasp_equi grasp.launch.py demo:=true`` runs the same pair. This module only
defines the arguments; rclpy is imported by ``grasp_equi.ros.demo_run`` when the command runs.
"""

from __future__ import annotations

from grasp_equi.cli_types import device, nonneg_int, positive_float, positive_int


def add_arguments(parser) -> None:
    parser.add_argument("--count", type=positive_int, default=8, help="objects the demo source publishes (default 8)")
    parser.add_argument("--rate", type=positive_float, default=1.0, help="requests per second (default 1)")
    parser.add_argument("--grasps", type=positive_int, default=32, help="candidate grasps per object (default 32)")
    parser.add_argument("--points", type=nonneg_int, default=0, help="subsample each partial cloud to this many (0 = all)")
    parser.add_argument("--input", choices=("contacts", "poses", "propose"), default="contacts",
                        help="send grasps as contact points or as gripper poses, or send the cloud alone and let "
                             "the node propose ranked gripper poses (default contacts)")
    parser.add_argument("--model", default="", help="checkpoint (.safetensors); default: the shipped weights")
    parser.add_argument("--device", type=device, default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    parser.add_argument("--seed", type=nonneg_int, default=0, help="demo objects' random seed")
    parser.add_argument("--domain-id", type=nonneg_int, default=None,
                        help="ROS_DOMAIN_ID (default: $ROS_DOMAIN_ID, else a random one so the demo stays private)")
    parser.add_argument("--timeout", type=positive_float, default=300.0, help="give up after this many seconds")


def run(args) -> int:
    """Check what argparse cannot, then start the demo (``grasp_equi.ros.demo_run.run``)."""
    from pathlib import Path

    if args.domain_id is not None and args.domain_id > 232:
        raise ValueError(f"--domain-id must be 0..232; got {args.domain_id}")
    if args.model and not Path(args.model).is_file():
        raise FileNotFoundError(f"--model {args.model}: no such file")
    from grasp_equi.ros.demo_run import run as run_demo

    return run_demo(args)
