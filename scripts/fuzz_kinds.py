"""The kinds of hostile and odd messages ``scripts/fuzz_node.py`` sends to grasp_node.

Each kind makes, for a given header, the messages to publish (topic, message) and what the
node must do with the *last* one: ``refused`` (counted invalid, never scored), ``scored``
(answered on ``scored_grasps``). ``extra_invalid`` counts earlier messages of the kind that
must be refused too (a bad cloud before its request); ``collide``/``miss`` count poses the
node must report as ``poses_in_collision``/``poses_without_contact``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from geometry_msgs.msg import PoseArray
from sensor_msgs.msg import PointField
from std_msgs.msg import Header

from grasp_equi.ros import codec
from grasp_equi.ros.answers import pose_array

MAX_GRASPS = 500  # the campaign runs the node with max_grasps:=500, so "too many" stays small


@dataclass
class Kind:
    name: str
    make: Callable[[Header], list[tuple[str, object]]]
    expect: str  # "refused" | "scored" | "unjudged" (answered, every grasp NaN: counted grasps_off_surface)
    extra_invalid: int = 0
    collide: int = 0
    miss: int = 0
    worker: bool = False  # reaches the scoring thread (an encoder pass): sent sparingly
    off_surface: int = 0  # grasps the node must publish NaN (contacts off the object's surface)

    def __post_init__(self):
        self.worker = self.worker or self.expect in ("scored", "unjudged")


def ellipsoid(n: int, rng, axes=(0.05, 0.03, 0.02)) -> np.ndarray:
    d = rng.normal(size=(n, 3))
    return d / np.linalg.norm(d, axis=1, keepdims=True) * np.asarray(axes)  # [n, 3]


def box(half=(0.02, 0.03, 0.02), n=1500, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pts = rng.uniform(-1, 1, size=(n, 3)) * half
    face = rng.integers(0, 3, size=n)
    pts[np.arange(n), face] = rng.choice([-1.0, 1.0], size=n) * np.asarray(half)[face]
    return pts


def poses(header: Header, positions, quats) -> PoseArray:
    return pose_array(header, np.hstack([np.reshape(positions, (-1, 3)), np.reshape(quats, (-1, 4))]))


def _mutated(build, mutate):
    def make(header):
        msg = build(header)
        mutate(msg)
        return msg
    return make


def cloud_kinds(points: np.ndarray) -> list[Kind]:
    """Malformed or implausible object clouds (alone): each must be refused."""
    good = lambda h: codec.cloud_message(h, points)  # noqa: E731
    nan_dense = points.copy()
    nan_dense[3] = np.nan
    normals = np.tile([0.0, 0.0, 1.0], (len(points), 1))
    cases = {
        "cloud: xyz all at offset 0": lambda m: [setattr(f, "offset", 0) for f in m.fields],
        "cloud: field beyond point_step": lambda m: setattr(m.fields[2], "offset", m.point_step - 1),
        "cloud: duplicate field": lambda m: setattr(m.fields[1], "name", "x"),
        "cloud: missing z": lambda m: setattr(m, "fields", m.fields[:2]),
        "cloud: x typed INT8": lambda m: setattr(m.fields[0], "datatype", PointField.INT8),
        "cloud: unknown datatype": lambda m: setattr(m.fields[0], "datatype", 42),
        "cloud: count 3": lambda m: setattr(m.fields[2], "count", 3),
        "cloud: truncated": lambda m: setattr(m, "data", m.data[:-5]),
        "cloud: lying height": lambda m: setattr(m, "height", 10**8),
        "cloud: row_step too small": lambda m: setattr(m, "row_step", 1),
        "cloud: point_step 0": lambda m: setattr(m, "point_step", 0),
        "cloud: empty frame": lambda m: setattr(m, "header", Header(stamp=m.header.stamp, frame_id="")),
    }
    kinds = [Kind(name, (lambda mk: lambda h: [("cloud", mk(h))])(_mutated(good, mutate)), "refused")
             for name, mutate in cases.items()]

    def nan_cloud(h, pts=nan_dense, dense=True):
        msg = codec.cloud_message(h, pts)
        msg.is_dense = dense
        return msg
    all_nan = np.full_like(points, np.nan)
    partial = {**codec.xyz_columns(points), "normal_x": normals[:, 0].astype(np.float32)}
    kinds += [
        Kind("cloud: NaN point, is_dense", lambda h: [("cloud", nan_cloud(h))], "refused"),
        Kind("cloud: all NaN", lambda h: [("cloud", nan_cloud(h, all_nan, False))], "refused"),
        Kind("cloud: partial normals", lambda h: [("cloud", codec.encode_cloud(h, partial))], "refused"),
        Kind("cloud: non-unit normals", lambda h: [("cloud", codec.cloud_message(h, points, 3 * normals))],
             "refused"),
        Kind("cloud: NaN normals", lambda h: [("cloud", codec.cloud_message(h, points, normals * np.nan))],
             "refused"),
        Kind("cloud: 1e6 m object", lambda h: [("cloud", codec.cloud_message(h, points * 2e7))], "refused"),
        Kind("cloud: 3e38 m object", lambda h: [("cloud", codec.cloud_message(h, points * 6e39))], "refused"),
        Kind("cloud: 1e-5 m object", lambda h: [("cloud", codec.cloud_message(h, points * 2e-4))], "refused"),
        Kind("cloud: two spots 1 cm apart", lambda h: [("cloud", codec.cloud_message(
            h, np.repeat([[0.0, 0, 0], [0.01, 0, 0]], 150, axis=0)))], "refused"),
        Kind("cloud: 3 points", lambda h: [("cloud", codec.cloud_message(h, points[:3]))], "refused"),
        Kind("cloud: one location", lambda h: [("cloud", codec.cloud_message(h, np.zeros((50, 3))))], "refused"),
    ]
    return kinds


def contact_kinds(points: np.ndarray, rng) -> list[Kind]:
    """Requests on a valid cloud of the same stamp (published first): refused unless noted."""
    grasps = points[rng.choice(len(points), size=(4, 2))]  # [4, 2, 3]
    flat = grasps.reshape(-1, 3)

    def on_cloud(build):
        return lambda h: [("cloud", codec.cloud_message(h, points)), ("contacts", build(h))]

    def cols(h, **over):
        c = {**codec.xyz_columns(flat), "grasp_id": np.repeat(np.arange(4), 2).astype(np.uint32), **over}
        return codec.encode_cloud(h, c)
    unit = np.tile([0.0, 1.0, 0.0], (len(flat), 1))
    msg = lambda contacts, normals=None: (lambda h: codec.contacts_message(h, contacts, normals))  # noqa: E731
    nan = grasps.copy()
    nan[2, 1, 0] = np.nan
    mutations = {
        "contacts: overlapping fields": lambda m: setattr(m.fields[1], "offset", 0),
        "contacts: field beyond point_step": lambda m: setattr(m.fields[3], "offset", m.point_step - 2),
        "contacts: missing grasp_id": lambda m: setattr(m, "fields", m.fields[:3]),
        "contacts: truncated": lambda m: setattr(m, "data", m.data[:-1]),
        "contacts: lying width": lambda m: setattr(m, "width", 10**9),
        "contacts: empty frame": lambda m: setattr(m, "header", Header(stamp=m.header.stamp, frame_id="")),
    }
    kinds = [Kind(n, on_cloud(_mutated(msg(grasps), mu)), "refused") for n, mu in mutations.items()]
    kinds += [
        Kind("contacts: K=1000", on_cloud(msg(points[rng.choice(len(points), size=(1, 1000))])), "refused"),
        Kind("contacts: K=17", on_cloud(msg(points[rng.choice(len(points), size=(2, 17))])), "refused"),
        Kind("contacts: too many grasps", on_cloud(msg(points[rng.choice(len(points), size=(MAX_GRASPS + 1, 2))])),
             "refused"),
        Kind("contacts: one-contact grasp", on_cloud(msg([grasps[0], grasps[1][:1]])), "refused"),
        Kind("contacts: NaN contact", on_cloud(msg(nan)), "refused"),
        Kind("contacts: NaN normals", on_cloud(msg(grasps, unit * np.nan)), "refused"),
        Kind("contacts: non-unit normals", on_cloud(msg(grasps, unit * 2)), "refused"),
        Kind("contacts: partial normals", on_cloud(lambda h: cols(h, normal_x=unit[:, 0].astype(np.float32))),
             "refused"),
        Kind("contacts: fractional float grasp_id", on_cloud(lambda h: cols(h, grasp_id=np.arange(8) / 2.0)),
             "refused"),
        Kind("contacts: negative grasp_id", on_cloud(lambda h: cols(h, grasp_id=-np.arange(8, dtype=np.int32))),
             "refused"),
        Kind("contacts: 1 m off the object", on_cloud(msg(grasps + 1.0)), "unjudged", off_surface=len(grasps)),
        Kind("contacts: frame mismatch", lambda h: [("cloud", codec.cloud_message(h, points)), ("contacts", (
            codec.contacts_message(Header(stamp=h.stamp, frame_id="elsewhere"), grasps)))], "refused"),
        Kind("contacts: its cloud was rejected", lambda h: [("cloud", codec.cloud_message(h, points * 2e7)),
                                                            ("contacts", codec.contacts_message(h, grasps))],
             "refused", extra_invalid=1),
        # odd but valid: must be scored
        Kind("contacts: float64 whole grasp_id", on_cloud(lambda h: cols(h, grasp_id=np.repeat(np.arange(4.0), 2))),
             "scored"),
        Kind("contacts: int8 grasp_id + unit normals", on_cloud(lambda h: cols(
            h, grasp_id=np.repeat(np.arange(4), 2).astype(np.int8), **codec.normal_columns(unit))), "scored"),
        Kind("contacts: K=16", on_cloud(msg(points[rng.choice(len(points), size=(2, 16))])), "scored"),
        Kind("contacts: empty request", on_cloud(msg([])), "scored"),
    ]
    return kinds


def pose_kinds() -> list[Kind]:
    """Gripper poses on box clouds of the same stamp."""
    small, wide = box(), box((0.06, 0.06, 0.06), n=3000)
    ident = [[0.0, 0.0, 0.0, 1.0]]
    down = [[1.0, 0.0, 0.0, 0.0]]

    def on(points, positions, quats):
        return lambda h: [("cloud", codec.cloud_message(h, points)), ("grasp_poses", poses(h, positions, quats))]
    many = np.zeros((MAX_GRASPS + 1, 3))
    return [
        Kind("poses: zero quaternion", on(small, [[0, 0, 0]], [[0, 0, 0, 0]]), "refused"),
        Kind("poses: NaN position", on(small, [[np.nan, 0, 0]], ident), "refused"),
        Kind("poses: NaN quaternion", on(small, [[0, 0, 0]], [[np.nan, 0, 0, 1]]), "refused"),
        Kind("poses: too many", on(small, many, ident * len(many)), "refused"),
        Kind("poses: object wider than the opening", on(wide, [[0, 0, 0.05]], down), "scored", collide=1),
        Kind("poses: palm inside the object", on(small, [[0, 0, 0.012]], ident), "scored", collide=1),
        Kind("poses: nothing between the jaws", on(small, [[0.5, 0.5, 0.5]], ident), "scored", miss=1),
        Kind("poses: valid", on(small, [[0, 0, 0], [0.004, 0, 0]], ident * 2), "scored"),
    ]


def propose_kinds(points: np.ndarray) -> list[Kind]:
    """Bad clouds on ``propose_cloud`` (refused before the planner runs)."""
    def bad(h, pts):
        return [("propose_cloud", codec.cloud_message(h, pts))]

    def overlapping(h):
        msg = codec.cloud_message(h, points)
        for f in msg.fields:
            f.offset = 0
        return [("propose_cloud", msg)]
    return [
        Kind("propose: 1e6 m object", lambda h: bad(h, points * 2e7), "refused"),
        Kind("propose: two spots", lambda h: bad(h, np.repeat([[0.0, 0, 0], [0.01, 0, 0]], 150, axis=0)), "refused"),
        Kind("propose: xyz all at offset 0", overlapping, "refused"),
    ]


def all_kinds(rng) -> list[Kind]:
    points = ellipsoid(400, rng)
    return cloud_kinds(points) + contact_kinds(points, rng) + pose_kinds() + propose_kinds(points)
