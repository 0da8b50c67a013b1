"""``grasp-equi score``: score grasps stored in files, print one probability per grasp."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from grasp_equi.cli_types import device
from grasp_equi.propose_cmd import add_gripper_arguments


def load_npy(path, what: str) -> np.ndarray:
    """``np.load`` that names the file in every error (FileNotFoundError / ValueError)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} file {path}: no such file")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        reason = "" if "pickle" in str(err) else f" ({' '.join(str(err).split())})"
        raise ValueError(f"{what} file {path}: not a readable .npy/.npz array{reason}") from None


def load_cloud(path) -> tuple[np.ndarray, np.ndarray | None]:
    """Points (and normals when present) from ``.npy`` ``(N,3|6)``, ``.npz`` (points[, normals])
    or, when open3d is installed, ``.ply``/``.pcd``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"cloud file {path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        arr = load_npy(path, "cloud")
        if arr.ndim != 2 or arr.shape[1] not in (3, 6):
            raise ValueError(f"cloud file {path}: expected an (N, 3) or (N, 6) array, got {arr.shape}")
        return arr[:, :3], (arr[:, 3:] if arr.shape[1] == 6 else None)
    if suffix == ".npz":
        data = load_npy(path, "cloud")
        if not isinstance(data, np.lib.npyio.NpzFile) or "points" not in data:
            raise ValueError(f"cloud file {path}: no 'points' array")
        return data["points"], (data["normals"] if "normals" in data else None)
    if suffix in (".ply", ".pcd", ".xyz"):
        import open3d as o3d

        pcd = o3d.io.read_point_cloud(str(path))
        if len(pcd.points) == 0:
            raise ValueError(f"cloud file {path}: no points could be read")
        normals = np.asarray(pcd.normals) if pcd.has_normals() else None
        return np.asarray(pcd.points), normals
    raise ValueError(f"cloud file {path}: unsupported format {suffix!r} (use .npy, .npz, .ply, .pcd)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cloud", required=True, help="object cloud file (.npy (N,3|6), .npz, .ply, .pcd)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--grasps", help=".npy array of contacts, shape (G, K, 3), metres")
    which.add_argument("--poses", help=".npy parallel-jaw gripper poses, (G, 7) x y z qx qy qz qw or (G, 4, 4); "
                       "the jaws are closed onto the cloud (see `grasp-equi propose --help` for the gripper)")
    p.add_argument("--weights", default=None, help="checkpoint (.safetensors); default: shipped weights")
    p.add_argument("--device", type=device, default="auto", help="auto | cpu | cuda[:i]")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of one line per grasp")
    add_gripper_arguments(p)


def run(args) -> int:
    from grasp_equi import GraspScorer

    points, normals = load_cloud(args.cloud)
    if args.poses is not None:
        from grasp_equi.propose_cmd import score_pose_file

        return score_pose_file(args, points, normals)
    contacts = load_npy(args.grasps, "grasps")
    if not isinstance(contacts, np.ndarray):
        raise ValueError(f"grasps file {args.grasps}: expected one (G, K, 3) array, found an .npz archive")
    scorer = GraspScorer.from_checkpoint(args.weights, device=args.device)
    try:
        scores = scorer.score(points, contacts, normals)
    except ValueError as err:
        raise ValueError(f"--cloud {args.cloud} with --grasps {args.grasps}: {err}") from None
    if args.json:
        print(json.dumps([round(float(s), 6) for s in scores]))
    else:
        for i, s in enumerate(scores):
            print(f"{i}\t{s:.4f}")
    return 0
