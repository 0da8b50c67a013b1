"""``grasp-equi propose``: ranked parallel-jaw gripper poses for a cloud or mesh file.

Also holds ``score --poses`` (poses in, one score per pose out) and the gripper options both
share. Only the standard library and numpy are imported at module level; torch/e3nn load in
``run``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from grasp_equi.cli_types import device
from grasp_equi.fileio import check_outputs
from grasp_equi.limits import Limits

MESH_SUFFIXES = (".obj", ".stl", ".glb", ".gltf", ".off")
COLUMNS = "rank\tscore\twidth_m\tx\ty\tz\tqx\tqy\tqz\tqw"


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number; got {text}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1; got {text}")
    return value


def _floats(count: int):
    def parse(text: str) -> list[float]:
        try:
            values = [float(v) for v in text.split(",")]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {count} comma-separated numbers") from None
        if len(values) != count or not all(v == v and abs(v) != float("inf") for v in values):
            raise argparse.ArgumentTypeError(f"expected {count} comma-separated finite numbers; got {text!r}")
        return values
    return parse


def add_gripper_arguments(p: argparse.ArgumentParser) -> None:
    """The parallel-jaw gripper's dimensions (metres), shared by ``propose`` and ``score --poses``."""
    g = p.add_argument_group("gripper (metres)")
    g.add_argument("--max-width", type=_positive, default=0.08, help="jaw opening (default 0.08)")
    g.add_argument("--finger-depth", type=_positive, default=0.03, help="pad length along the approach (0.03)")
    g.add_argument("--finger-width", type=_positive, default=0.02, help="pad width across the closing line (0.02)")
    g.add_argument("--finger-thickness", type=_positive, default=0.008, help="pad thickness outside the opening (0.008)")
    g.add_argument("--palm-depth", type=_positive, default=0.02, help="palm thickness behind the pads (0.02)")


def gripper_from_args(args):
    from grasp_equi.gripper import JawGeometry
    from grasp_equi.poses import GripperBody

    jaw = JawGeometry(max_width=args.max_width, finger_depth=args.finger_depth, finger_width=args.finger_width)
    return GripperBody(jaw=jaw, finger_thickness=args.finger_thickness, palm_depth=args.palm_depth)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cloud", required=True,
                   help="object cloud (.npy (N,3|6), .npz, .ply, .pcd) or mesh (.obj, .stl, ...; sampled)")
    p.add_argument("--top", type=_count, default=10, help="how many ranked poses to return (default 10)")
    p.add_argument("--out", help="save poses (k,7), scores (k,), contacts (k,2,3), widths (k,) to this .npz")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (same seed, same proposals)")
    p.add_argument("--fingers", type=int, choices=(2, 3, 4, 5), default=2,
                   help="2 = parallel jaws (default); 3-5 = a thumb opposing K-1 fingers 2 cm apart "
                        "(contacts (k, K, 3); widths = thumb to the fingers)")
    p.add_argument("--seeds", type=_count, default=256, help="seed points for antipodal pairs (default 256)")
    p.add_argument("--angles", type=_count, default=8, help="approach angles about each closing line (default 8)")
    p.add_argument("--mesh-points", type=_count, default=20000, help="points sampled from a mesh --cloud")
    p.add_argument("--units", default="m", choices=("m", "cm", "mm", "in"),
                   help="units of the --cloud file, mesh or point cloud (default m); poses are printed in metres")
    p.add_argument("--weights", default=None, help="checkpoint (.safetensors); default: shipped weights")
    p.add_argument("--device", type=device, default="auto", help="auto | cpu | cuda[:i]")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    scene = p.add_argument_group("scene clouds (an object on a table)")
    scene.add_argument("--scene", action="store_true",
                       help="remove the dominant support plane and keep one object cluster first; the plane "
                            "still counts for collisions (see docs/proposals.md)")
    scene.add_argument("--near", type=_floats(3), metavar="X,Y,Z", help="with --scene: keep the cluster nearest this point")
    scene.add_argument("--box", type=_floats(6), metavar="X0,Y0,Z0,X1,Y1,Z1",
                       help="with --scene: keep the largest cluster inside this box (cloud frame, metres)")
    add_gripper_arguments(p)


def load_points(path: str, mesh_points: int, units: str, seed: int):
    """``(points, normals | None)`` from a cloud file, or area-uniform samples of a mesh file (a PLY
    with faces is a mesh)."""
    from grasp_equi.score_cmd import load_cloud, ply_face_count

    suffix = Path(path).suffix.lower()
    is_mesh = suffix in MESH_SUFFIXES or (suffix == ".ply" and Path(path).is_file() and ply_face_count(path) > 0)
    if not is_mesh:
        from grasp_equi.data.units import UNITS

        points, normals = load_cloud(path)
        return points * UNITS[units], normals
    from grasp_equi.data.clouds import complete_cloud
    from grasp_equi.data.objects import load_mesh_object

    obj = load_mesh_object(path, units=units, centre=False)  # poses in the file's frame, like a cloud's
    points, _ = complete_cloud(obj, mesh_points, np.random.default_rng(seed))
    return points, None  # the mesh's face normals are not what a camera gives: estimate them


def run(args) -> int:
    out = Path(args.out) if args.out else None
    check_outputs({"--out": out}, args.force)  # fail before any work
    Limits().check_points(args.mesh_points, "--mesh-points")  # a mesh's samples are a cloud: same bound
    if out is not None and not out.parent.is_dir():  # np.savez does not make folders
        raise ValueError(f"--out {out}: directory {out.parent} does not exist")
    from grasp_equi.planner import GraspPlanner, PlannerConfig
    from grasp_equi.scorer import GraspScorer

    body = gripper_from_args(args)
    config = PlannerConfig(num_seeds=args.seeds, approach_angles=args.angles, top_k=args.top, seed=args.seed)
    points, normals = load_points(args.cloud, args.mesh_points, args.units, args.seed)
    planner = GraspPlanner(GraspScorer.from_checkpoint(args.weights, device=args.device), body, config)
    obstacles = None
    if args.scene:
        from grasp_equi.scene import segment_object

        seg = segment_object(points, near=args.near, box=args.box)
        if not args.json:
            print(f"# scene: {len(seg.plane_idx)} support-plane points removed, object cluster "
                  f"{len(seg.object_idx)} points of {len(points)} ({seg.num_clusters} clusters)")
        solid = np.ones(len(points), dtype=bool)
        solid[seg.object_idx] = False
        points, normals, obstacles = points[seg.object_idx], None if normals is None else normals[seg.object_idx], \
            points[solid]
    elif args.near is not None or args.box is not None:
        raise ValueError("--near and --box select an object in a scene: add --scene")
    if args.fingers == 2:
        ranked = planner.propose(points, normals, obstacles=obstacles)
    else:
        from grasp_equi.fingers import propose_fingers

        ranked = propose_fingers(planner, points, args.fingers, normals, obstacles=obstacles)
    if out is not None:
        ranked.save(out, overwrite=True)
    if args.json:
        print(json.dumps({"poses": ranked.poses.round(6).tolist(), "scores": ranked.scores.round(6).tolist(),
                          "widths": ranked.widths.round(6).tolist(), "counts": ranked.counts}))
        return 0
    print(f"# {len(ranked)} of {ranked.counts['scored']} scored candidates ({ranked.counts['candidates']} "
          f"poses from {ranked.counts['pairs']} antipodal pairs, {ranked.counts['collision_free']} collision-free)")
    print(COLUMNS)
    for i, (pose, score, width) in enumerate(zip(ranked.poses, ranked.scores, ranked.widths)):
        print(f"{i}\t{score:.4f}\t{width:.4f}\t" + "\t".join(f"{v:.5f}" for v in pose))
    if out is not None:
        print(f"# saved {out}")
    return 0


def score_pose_file(args, points, normals, poses, limits=None) -> int:
    """``grasp-equi score --poses FILE``: one line per pose (index, score or '-', reason);
    ``poses`` as read by ``score_cmd.load_poses``."""
    from grasp_equi.poses import score_poses
    from grasp_equi.scorer import GraspScorer

    scorer = GraspScorer.from_checkpoint(args.weights, device=args.device, limits=limits)
    result = score_poses(points, poses, gripper_from_args(args), scorer, normals, output=getattr(args, "output", None))
    if args.json:
        print(json.dumps([None if np.isnan(s) else round(float(s), 6) for s in result.scores]))
        return 0
    for i, (score, reason) in enumerate(zip(result.scores, result.reason_names())):
        print(f"{i}\t{'-' if np.isnan(score) else f'{score:.4f}'}\t{reason}")
    return 0
