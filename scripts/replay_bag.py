#!/usr/bin/env python3
"""Score the object clouds of a recorded bag, no ROS install needed.

Reads a rosbag2 (``.mcap`` or ``.db3``, the file or its folder) or a ROS 1 ``.bag`` with the
``rosbags`` library, decodes each ``sensor_msgs/PointCloud2`` on ``--cloud`` with the node's
own codec and scores it through ``GraspScorer``:

* with ``--contacts TOPIC`` (PointCloud2 with ``x, y, z, grasp_id``, like the node's
  ``contacts`` input) each contacts message is scored against the cloud with the same
  ``header.stamp`` (the node's ``sync: exact``);
* without it, ``GraspPlanner`` proposes parallel-jaw grasps on each cloud and ranks them.

Prints one line per scored message (stamp, frame, points, grasps, best score); ``--json FILE``
also writes every score. Exit codes: 0 done, 1 a bad bag/topic/file (one line on stderr).

    python scripts/replay_bag.py my_run.mcap --cloud /object/points --contacts /grasp_candidates
    python scripts/replay_bag.py rosbag2_2026_11_30/ --cloud /camera/object_cloud --top 5
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import OrderedDict
from pathlib import Path

BUFFER = 16  # clouds / contact messages kept waiting for their partner (bounded memory)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="replay_bag.py", description=__doc__.splitlines()[0])
    p.add_argument("bag", type=Path, help="rosbag2 folder, .mcap or .db3 file, or ROS 1 .bag")
    p.add_argument("--cloud", required=True, help="PointCloud2 topic of the object cloud")
    p.add_argument("--contacts", help="PointCloud2 topic of candidate contacts (x, y, z, grasp_id); "
                   "default: propose parallel-jaw grasps with GraspPlanner")
    p.add_argument("--top", type=int, default=5, help="proposals kept per cloud without --contacts (default 5)")
    p.add_argument("--max-points", type=int, default=1_000_000, help="refuse larger clouds (default 1e6)")
    p.add_argument("--weights", help="checkpoint (.safetensors); default: the shipped weights")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:i]")
    p.add_argument("--json", type=Path, help="write every message's scores to this file (refuses to overwrite)")
    args = p.parse_args(argv)
    if args.top < 1 or args.max_points < 1:
        p.error("--top and --max-points must be >= 1")
    return args


def open_reader(bag: Path):
    """A ``rosbags`` AnyReader for ``bag`` (standard message types from the Jazzy store)."""
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    if not bag.exists():
        raise FileNotFoundError(f"{bag}: no such bag")
    path = bag.parent if bag.is_file() and bag.suffix in (".mcap", ".db3") and (bag.parent / "metadata.yaml").is_file() \
        else bag
    return AnyReader([path], default_typestore=get_typestore(Stores.ROS2_JAZZY))


def stamp_of(msg) -> tuple[int, int]:
    return int(msg.header.stamp.sec), int(msg.header.stamp.nanosec)


def replay(args) -> list[dict]:
    """Score every cloud (or cloud + contacts pair) of the bag; one dict per scored message."""
    import numpy as np

    from grasp_equi import GraspPlanner, GraspScorer, PlannerConfig
    from grasp_equi.ros.codec import decode_cloud, decode_contacts

    scorer = GraspScorer.from_checkpoint(args.weights, device=args.device)
    planner = None if args.contacts else GraspPlanner(scorer, config=PlannerConfig(top_k=args.top))
    clouds, waiting, results = OrderedDict(), OrderedDict(), []
    with open_reader(args.bag) as reader:
        topics = {c.topic for c in reader.connections}
        for topic in filter(None, (args.cloud, args.contacts)):
            if topic not in topics:
                raise ValueError(f"{args.bag}: no topic {topic!r} (topics: {', '.join(sorted(topics))})")
        wanted = [c for c in reader.connections if c.topic in (args.cloud, args.contacts)]
        for conn, _, raw in reader.messages(connections=wanted):
            msg = reader.deserialize(raw, conn.msgtype)
            key = stamp_of(msg)
            try:
                if conn.topic == args.cloud:
                    cloud = decode_cloud(msg, args.max_points)
                    if planner is not None:
                        ranked = planner.propose(cloud.points, cloud.normals)
                        results.append(_record(msg, key, cloud.points, ranked.scores, poses=ranked.poses))
                        continue
                    _remember(clouds, key, (msg, cloud))
                    if key in waiting:
                        results.append(_score_pair(scorer, clouds[key], waiting.pop(key), np))
                else:
                    _remember(waiting, key, decode_contacts(msg, args.max_points))
                    if key in clouds:
                        results.append(_score_pair(scorer, clouds[key], waiting.pop(key), np))
            except ValueError as err:  # one bad message does not end the replay
                print(f"skipped {conn.topic} at {key[0]}.{key[1]:09d}: {err}", file=sys.stderr)
    return results


def _remember(table: OrderedDict, key, value) -> None:
    table[key] = value
    while len(table) > BUFFER:
        table.popitem(last=False)


def _score_pair(scorer, cloud_entry, contacts, np) -> dict:
    msg, cloud = cloud_entry
    ids, grasps = contacts.grasps()
    scores = scorer.score(cloud.points, grasps, cloud.normals) if grasps else np.zeros(0)
    return _record(msg, stamp_of(msg), cloud.points, scores, ids=ids)


def _record(msg, key, points, scores, ids=None, poses=None) -> dict:
    rec = {"stamp": f"{key[0]}.{key[1]:09d}", "frame_id": msg.header.frame_id, "points": int(len(points)),
           "scores": [round(float(s), 6) for s in scores]}
    if ids is not None:
        rec["grasp_ids"] = [int(i) for i in ids]
    if poses is not None:
        rec["poses"] = [[round(float(v), 6) for v in pose] for pose in poses]  # x y z qx qy qz qw
    return rec


def line(rec: dict) -> str:
    scores = rec["scores"]
    if not scores:
        return f"{rec['stamp']}  {rec['frame_id']:<16} points {rec['points']:>7}  no grasp"
    best = max(range(len(scores)), key=scores.__getitem__)
    which = f"grasp {rec['grasp_ids'][best]}" if "grasp_ids" in rec else f"pose {rec['poses'][best]}"
    return (f"{rec['stamp']}  {rec['frame_id']:<16} points {rec['points']:>7}  grasps {len(scores):>4}  "
            f"best {scores[best]:.3f} ({which})")


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.json is not None and args.json.exists():
        print(f"replay_bag.py: error: --json {args.json} exists; choose another name", file=sys.stderr)
        return 1
    try:
        results = replay(args)
    except Exception as err:  # noqa: BLE001 - bad bag, topic or checkpoint: one line, no traceback
        print(f"replay_bag.py: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 1
    for rec in results:
        print(line(rec))
    print(f"{len(results)} message(s) scored from {args.bag}")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
