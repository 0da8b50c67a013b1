"""``grasp-equi score``: score grasps stored in files, print one probability per grasp.

Files are read with ``grasp_equi.files``: shapes, dtypes and sizes are checked against the
limits (options below, docs/limits.md) from the headers, before any data is read.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from grasp_equi import limits as L
from grasp_equi.cli_types import device, positive_float, positive_int
from grasp_equi.data.units import UNITS
from grasp_equi.cloud_headers import check_cloud_file, check_points_read, ply_header
from grasp_equi.files import FileFormatError, load_npy, load_npz
from grasp_equi.limits import Limits, ObjectSizeError
from grasp_equi.propose_cmd import add_gripper_arguments


def _cloud_shape(limits: Limits, columns: tuple[int, ...]):
    def check(shape: tuple[int, ...]) -> None:
        if len(shape) != 2 or shape[1] not in columns:
            want = " or ".join(f"(N, {c})" for c in columns)
            raise ValueError(f"expected an {want} array, got shape {shape}")
        limits.check_points(shape[0])
    return check


def _exists(path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} file {path}: no such file")
    return path


def ply_face_count(path) -> int:
    """Faces a PLY file declares in its header (``element face N``; 0 for a point cloud). Reads the
    header line by line up to ``end_header`` (at most 1 MiB); ``FileFormatError`` when there is none."""
    return ply_header(path).faces


def load_cloud(path, limits: Limits | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Points (and normals when present) from ``.npy`` ``(N,3|6)``, ``.npz`` (points[, normals])
    or, when open3d is installed, ``.ply``/``.pcd``/``.xyz``. Sizes are checked against
    ``limits`` before the data is read; ``FileNotFoundError``/``ValueError`` name the file."""
    limits = limits or Limits()
    path = _exists(path, "cloud")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        arr = load_npy(path, "cloud file", limits, _cloud_shape(limits, (3, 6)))
        return arr[:, :3], (arr[:, 3:] if arr.shape[1] == 6 else None)
    if suffix == ".npz":
        data = load_npz(path, "cloud file", ("points", "normals"), ("points",), limits,
                        lambda name: _cloud_shape(limits, (3,)))
        return data["points"], data.get("normals")
    if suffix in (".ply", ".pcd", ".xyz"):
        if path.stat().st_size > limits.max_file_bytes:
            raise FileFormatError(f"cloud file {path}: {path.stat().st_size} bytes, more than "
                                  f"max_file_bytes={limits.max_file_bytes}")
        header = check_cloud_file(path, limits)  # declared count and data present, before open3d allocates
        if header is not None and header.faces:  # open3d would keep only the mesh's corners
            raise FileFormatError(f"cloud file {path}: a mesh ({header.faces} faces), not a point cloud; give a "
                                  f"cloud sampled from its surface (grasp-equi propose samples meshes itself)")
        import open3d as o3d

        with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
            pcd = o3d.io.read_point_cloud(str(path))
        if len(pcd.points) == 0:
            raise ValueError(f"cloud file {path}: no points could be read")
        check_points_read(path, header, len(pcd.points))
        normals = np.asarray(pcd.normals) if pcd.has_normals() else None
        return np.asarray(pcd.points), normals
    raise ValueError(f"cloud file {path}: unsupported format {suffix!r} (use .npy, .npz, .ply, .pcd)")


def load_grasps(path, limits: Limits | None = None) -> np.ndarray:
    """Contacts ``(G, K, 3)`` from an ``.npy`` file; G and K are checked against ``limits``
    from the header, before the data is read."""
    limits = limits or Limits()
    path = _exists(path, "grasps")

    def check(shape: tuple[int, ...]) -> None:
        if len(shape) != 3 or shape[2] != 3:
            raise ValueError(f"expected a (G, K, 3) array, got shape {shape}")
        limits.check_grasp_sizes(np.full(min(shape[0], limits.max_grasps + 1), shape[1]))
    return load_npy(path, "grasps file", limits, check)


def load_poses(path, limits: Limits | None = None) -> np.ndarray:
    """Gripper poses ``(G, 7)`` or ``(G, 4, 4)`` from an ``.npy`` file, G checked against ``limits``."""
    limits = limits or Limits()
    path = _exists(path, "poses")

    def check(shape: tuple[int, ...]) -> None:
        if not (len(shape) == 2 and shape[1] == 7 or len(shape) == 3 and shape[1:] == (4, 4)):
            raise ValueError(f"expected a (G, 7) or (G, 4, 4) array, got shape {shape}")
        if shape[0] > limits.max_grasps:
            raise ValueError(f"{shape[0]} poses, more than max_grasps={limits.max_grasps}")
    return load_npy(path, "poses file", limits, check)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cloud", required=True, help="object cloud file (.npy (N,3|6), .npz, .ply, .pcd)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--grasps", help=".npy array of contacts, shape (G, K, 3), metres")
    which.add_argument("--poses", help=".npy parallel-jaw gripper poses, (G, 7) x y z qx qy qz qw or (G, 4, 4); "
                       "the jaws are closed onto the cloud (see `grasp-equi propose --help` for the gripper)")
    p.add_argument("--units", default="m", choices=tuple(UNITS),
                   help="units of the cloud, the contacts and the poses' positions (default m); the gripper "
                        "options stay in metres")
    p.add_argument("--weights", default=None, help="checkpoint (.safetensors); default: shipped weights")
    p.add_argument("--device", type=device, default="auto", help="auto | cpu | cuda[:i]")
    p.add_argument("--output", choices=("held", "force_closure"), default=None,
                   help="which answer: P(held) or P(force closure) (default: the model's first, P(held) for the "
                        "shipped weights)")
    p.add_argument("--json", action="store_true",
                   help="print a JSON list instead of one line per grasp (null: a grasp that could not be judged)")
    add_gripper_arguments(p)
    add_limit_arguments(p)


def add_limit_arguments(p: argparse.ArgumentParser) -> None:
    """The ``Limits`` options (checked before anything is allocated); argparse refuses a value that is not a
    positive, finite number with the option's name (exit 2)."""
    g = p.add_argument_group("limits (checked before anything is allocated; docs/limits.md)")
    g.add_argument("--max-points", type=positive_int, default=L.MAX_POINTS,
                   help="points per cloud (default %(default)s)")
    g.add_argument("--max-grasps", type=positive_int, default=L.MAX_GRASPS,
                   help="grasps per file (default %(default)s)")
    g.add_argument("--max-contacts-per-grasp", type=positive_int, default=L.MAX_CONTACTS_PER_GRASP,
                   help="K, contacts per grasp; memory grows with K^2 (default %(default)s)")
    g.add_argument("--max-file-mb", type=positive_float, default=L.MAX_FILE_BYTES / 2**20,
                   help="MiB of (decompressed) array data per file (default %(default)g)")
    g.add_argument("--min-object-radius", type=positive_float, default=L.MIN_OBJECT_RADIUS,
                   help="m, smallest plausible characteristic radius (max distance of a point from the "
                        "centroid) (default %(default)g)")
    g.add_argument("--max-object-radius", type=positive_float, default=L.MAX_OBJECT_RADIUS,
                   help="m, largest plausible characteristic radius (default %(default)g)")


def limits_from_args(args) -> Limits:
    """``Limits`` from the options above (``--max-file-mb`` rounded up to whole bytes); ``ValueError`` for
    radii out of order or K < 2."""
    return Limits(max_contacts_per_grasp=args.max_contacts_per_grasp, max_grasps=args.max_grasps,
                  max_points=args.max_points,
                  max_file_bytes=math.ceil(min(args.max_file_mb * 2**20, sys.float_info.max)),
                  min_object_radius=args.min_object_radius, max_object_radius=args.max_object_radius)


def run(args) -> int:
    limits = limits_from_args(args)
    scale = UNITS[args.units]  # metres per file unit
    points, normals = load_cloud(args.cloud, limits)
    points = points * scale
    if args.poses is not None:
        from grasp_equi.propose_cmd import score_pose_file

        return score_pose_file(args, points, normals, _poses_in_metres(load_poses(args.poses, limits), scale), limits)
    contacts = load_grasps(args.grasps, limits) * scale  # refused here, before torch is even imported
    from grasp_equi import GraspScorer

    scorer = GraspScorer.from_checkpoint(args.weights, device=args.device, limits=limits)
    try:
        scores, reasons = scorer.score(points, contacts, normals, return_reasons=True, output=args.output)
    except ValueError as err:
        hint = " Or give the file's units: --units mm|cm|in." if isinstance(err, ObjectSizeError) else ""
        raise ValueError(f"--cloud {args.cloud} with --grasps {args.grasps}: {err}{hint}") from None
    if scorer.stray_points:
        print(f"note: {scorer.stray_points} stray point(s) far outside the object were left out of {args.cloud} "
              f"(flying pixels or a leaky segmentation?)", file=sys.stderr)
    if args.json:
        print(json.dumps([round(float(s), 6) if np.isfinite(s) else None for s in scores]))
    else:
        for i, (s, why) in enumerate(zip(scores, reasons)):
            print(f"{i}\t{s:.4f}" + (f"\t{why}" if why else ""))
    return 0


def _poses_in_metres(poses: np.ndarray, scale: float) -> np.ndarray:
    """Poses ``(G, 7)`` or ``(G, 4, 4)`` with their positions multiplied by ``scale`` (rotations unchanged)."""
    poses = np.array(poses, dtype=np.float64)
    if poses.ndim == 2:
        poses[:, :3] *= scale
    else:
        poses[:, :3, 3] *= scale
    return poses
