"""sensor_msgs/PointCloud2 <-> numpy, with every size checked before the data is touched.

``sensor_msgs_py`` is not installable here, and it trusts the message: a cloud that claims
10^8 points with 100 bytes of data makes it allocate gigabytes or read past the buffer.
This codec builds a numpy structured dtype from the message's ``fields``, honours
``point_step``, ``row_step``, ``is_bigendian`` and ``height x width``, and raises
``ValueError`` (with the reason) for anything inconsistent *before* allocating.
Decoded arrays are float64 copies; the message buffer is only ever viewed, never copied whole.

Decoding is duck-typed (any object with PointCloud2's attributes, e.g. a message read from a
bag by the ``rosbags`` library) and needs no ROS install; only encoding imports sensor_msgs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class PointField:
    """sensor_msgs/PointField datatype codes (fixed by the message definition)."""

    INT8, UINT8, INT16, UINT16, INT32, UINT32, FLOAT32, FLOAT64 = range(1, 9)


# PointField.datatype -> numpy scalar type (byte order applied per message).
DATATYPES: dict[int, np.dtype] = {
    PointField.INT8: np.dtype(np.int8),
    PointField.UINT8: np.dtype(np.uint8),
    PointField.INT16: np.dtype(np.int16),
    PointField.UINT16: np.dtype(np.uint16),
    PointField.INT32: np.dtype(np.int32),
    PointField.UINT32: np.dtype(np.uint32),
    PointField.FLOAT32: np.dtype(np.float32),
    PointField.FLOAT64: np.dtype(np.float64),
}
TYPE_NAMES = {PointField.INT8: "INT8", PointField.UINT8: "UINT8", PointField.INT16: "INT16",
              PointField.UINT16: "UINT16", PointField.INT32: "INT32", PointField.UINT32: "UINT32",
              PointField.FLOAT32: "FLOAT32", PointField.FLOAT64: "FLOAT64"}
FLOAT_TYPES = (PointField.FLOAT32, PointField.FLOAT64)
INT_TYPES = (PointField.INT8, PointField.UINT8, PointField.INT16, PointField.UINT16,
             PointField.INT32, PointField.UINT32)
XYZ = ("x", "y", "z")
NORMALS = ("normal_x", "normal_y", "normal_z")
MAX_GRASP_ID = 2**32 - 1  # grasp ids are echoed as UINT32 in scored_grasps
NORMAL_LENGTH_TOLERANCE = 0.01  # |1 - |n|| allowed for a normal field before it is refused; then normalised


@dataclass
class DecodedCloud:
    """An object cloud: ``points`` ``(N, 3)``, optional ``normals`` ``(N, 3)`` (float64)."""

    points: np.ndarray
    normals: np.ndarray | None
    num_dropped: int  # non-finite points removed (only when the message says is_dense=false)


@dataclass
class DecodedContacts:
    """Contacts in message order: ``points`` ``(C, 3)``, ``grasp_id`` ``(C,)`` (int64)."""

    points: np.ndarray
    grasp_id: np.ndarray
    normals: np.ndarray | None

    def grasps(self, limits=None) -> tuple[np.ndarray, list[np.ndarray]]:
        """Group contacts by ``grasp_id``: sorted unique ids ``(G,)`` and ``G`` arrays ``(K_i, 3)``.
        With ``limits`` (``grasp_equi.limits.Limits``), G and each K are checked before grouping."""
        if len(self.grasp_id) == 0:
            return np.zeros(0, dtype=np.int64), []  # an empty request gets an empty answer
        ids, inverse = np.unique(self.grasp_id, return_inverse=True)
        order = np.argsort(inverse, kind="stable")  # contacts of one grasp keep message order
        counts = np.bincount(inverse, minlength=len(ids))  # [G]
        if limits is not None:
            limits.check_grasp_sizes(counts, ids)
        single = np.flatnonzero(counts < 2)
        if len(single):
            raise ValueError(f"grasp_id {int(ids[single[0]])} has {int(counts[single[0]])} contact; "
                             "a grasp needs at least 2 contacts")
        groups = np.split(self.points[order], np.cumsum(counts)[:-1])
        return ids, groups


def _point_count(msg: PointCloud2, max_points: int) -> int:
    """``height * width`` after checking every size field against the data length."""
    height, width = int(msg.height), int(msg.width)
    point_step, row_step = int(msg.point_step), int(msg.row_step)
    if height < 0 or width < 0 or point_step < 0 or row_step < 0:
        raise ValueError("negative height/width/point_step/row_step")
    num = height * width
    if num > max_points:
        raise ValueError(f"cloud has {height} x {width} = {num} points, more than max_points={max_points}")
    if num == 0:
        return 0
    if point_step == 0:
        raise ValueError("point_step is 0")
    if row_step < width * point_step:
        raise ValueError(f"row_step {row_step} < width {width} x point_step {point_step}")
    needed = (height - 1) * row_step + width * point_step
    if len(msg.data) < needed:
        raise ValueError(f"data is truncated: {len(msg.data)} bytes, the header needs {needed} "
                         f"({height} x {width} points, point_step {point_step}, row_step {row_step})")
    return num


def _field_table(msg: PointCloud2) -> dict[str, PointField]:
    """Fields by name; ``ValueError`` for a duplicate name, or for two fields of known type that
    overlap or one that reaches beyond ``point_step`` (x, y, z all at offset 0 would decode as a line)."""
    table: dict[str, PointField] = {}
    spans = []  # (start, end, name) of every field of a known type
    for field in msg.fields:
        if field.name in table:
            raise ValueError(f"field {field.name!r} appears twice")
        table[field.name] = field
        if field.datatype in DATATYPES and field.count > 0:
            end = int(field.offset) + DATATYPES[field.datatype].itemsize * int(field.count)
            if end > int(msg.point_step):
                raise ValueError(f"field {field.name!r} (offset {field.offset}, ends at byte {end}) "
                                 f"does not fit in point_step {msg.point_step}")
            spans.append((int(field.offset), end, field.name))
    spans.sort()
    for (_, end, name), (start, _, other) in zip(spans, spans[1:]):
        if start < end:
            raise ValueError(f"fields {name!r} and {other!r} overlap (bytes up to {end} and from {start})")
    return table


def _field_dtype(field: PointField, point_step: int, big_endian: bool, allowed: tuple[int, ...]) -> np.dtype:
    if field.datatype not in DATATYPES:
        raise ValueError(f"field {field.name!r} has unknown datatype {field.datatype}")
    if field.datatype not in allowed:
        names = [TYPE_NAMES[code] for code in allowed]
        raise ValueError(f"field {field.name!r} is {TYPE_NAMES[field.datatype]}; expected one of {names}")
    if field.count != 1:
        raise ValueError(f"field {field.name!r} has count {field.count}; expected 1")
    dtype = DATATYPES[field.datatype].newbyteorder(">" if big_endian else "<")
    if field.offset + dtype.itemsize > point_step:
        raise ValueError(f"field {field.name!r} (offset {field.offset}, {dtype.itemsize} bytes) "
                         f"does not fit in point_step {point_step}")
    return dtype


def read_fields(msg: PointCloud2, required: dict[str, tuple[int, ...]], optional: dict[str, tuple[int, ...]],
                max_points: int) -> dict[str, np.ndarray]:
    """Copy the named fields out of ``msg`` as 1-D arrays of ``height * width`` values.

    ``required``/``optional`` map a field name to the PointField datatypes accepted for it.
    Optional fields are returned only when present. Raises ``ValueError`` on any problem.
    """
    num = _point_count(msg, max_points)
    table = _field_table(msg)
    missing = [name for name in required if name not in table]
    if missing:
        raise ValueError(f"missing field(s) {missing}; the message has {sorted(table)}")
    wanted = {**required, **{k: v for k, v in optional.items() if k in table}}
    big = bool(msg.is_bigendian)
    point_step = int(msg.point_step)
    dtypes = {name: _field_dtype(table[name], point_step, big, allowed) for name, allowed in wanted.items()}
    if num == 0:
        return {name: np.zeros(0, dtype=dt.newbyteorder("=")) for name, dt in dtypes.items()}
    record = np.dtype({"names": list(dtypes), "formats": list(dtypes.values()),
                       "offsets": [int(table[n].offset) for n in dtypes], "itemsize": point_step})
    buf = np.frombuffer(msg.data, dtype=np.uint8)  # a view: no copy of the whole message
    view = np.ndarray((int(msg.height), int(msg.width)), dtype=record, buffer=buf,
                      strides=(int(msg.row_step), point_step))  # sizes checked in _point_count
    return {name: view[name].reshape(-1).astype(dt.newbyteorder("="), copy=True) for name, dt in dtypes.items()}


def _stack(fields: dict[str, np.ndarray], names: tuple[str, ...]) -> np.ndarray:
    return np.stack([fields[n].astype(np.float64) for n in names], axis=1)  # [N, 3]


def _normals(fields: dict[str, np.ndarray]) -> np.ndarray | None:
    """``(N, 3)`` normals when all three fields are present, None when none is; partial is an error."""
    present = [n for n in NORMALS if n in fields]
    if not present:
        return None
    if len(present) < len(NORMALS):
        raise ValueError(f"normals are partial: found {present}, need all of {list(NORMALS)} or none")
    return _stack(fields, NORMALS)


def _unit(normals: np.ndarray, what: str) -> np.ndarray:
    """Finite ``normals`` ``(N, 3)`` normalised; ``ValueError`` unless each is unit length
    within ``NORMAL_LENGTH_TOLERANCE``."""
    length = np.linalg.norm(normals, axis=1)  # [N]
    bad = np.abs(length - 1.0) > NORMAL_LENGTH_TOLERANCE
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{what} normal {i} has length {length[i]:.4g}; normals must be unit vectors "
                         f"(tolerance {NORMAL_LENGTH_TOLERANCE})")
    return normals / length[:, None]


def decode_cloud(msg: PointCloud2, max_points: int) -> DecodedCloud:
    """Object cloud with optional normals. Non-finite points are dropped only when
    ``is_dense`` is false; a dense cloud with NaN/inf is a lie and is rejected."""
    optional = {n: FLOAT_TYPES for n in NORMALS}
    fields = read_fields(msg, {n: FLOAT_TYPES for n in XYZ}, optional, max_points)
    points = _stack(fields, XYZ)  # [N, 3]
    normals = _normals(fields)  # [N, 3] or None
    finite = np.isfinite(points).all(axis=1)
    if normals is not None:
        finite &= np.isfinite(normals).all(axis=1)
    num_bad = int((~finite).sum())
    if num_bad and msg.is_dense:
        raise ValueError(f"cloud says is_dense=true but has {num_bad} non-finite (NaN/inf) points")
    if num_bad and num_bad == len(points):
        raise ValueError(f"all {num_bad} points are non-finite (NaN/inf)")
    if num_bad:
        points = points[finite]
        normals = None if normals is None else normals[finite]
    if normals is not None:
        normals = _unit(normals, "cloud")
    return DecodedCloud(points, normals, num_bad)


def decode_contacts(msg: PointCloud2, max_points: int) -> DecodedContacts:
    """Contacts ``x, y, z`` (float) + ``grasp_id`` (integer), optional normals. Every
    contact must be finite: dropping one would silently change its grasp."""
    optional = {n: FLOAT_TYPES for n in NORMALS}
    required = {**{n: FLOAT_TYPES for n in XYZ}, "grasp_id": INT_TYPES + FLOAT_TYPES}
    fields = read_fields(msg, required, optional, max_points)
    points = _stack(fields, XYZ)  # [C, 3]
    normals = _normals(fields)  # [C, 3] or None
    bad = ~np.isfinite(points).all(axis=1)
    if bad.any():
        raise ValueError(f"{int(bad.sum())} contact(s) have non-finite (NaN/inf) coordinates, "
                         f"first at index {int(np.argmax(bad))}")
    if normals is not None:
        bad = ~np.isfinite(normals).all(axis=1)
        if bad.any():
            raise ValueError(f"{int(bad.sum())} contact normal(s) are non-finite (NaN/inf), "
                             f"first at index {int(np.argmax(bad))}")
        normals = _unit(normals, "contact")
    grasp_id = _grasp_ids(fields["grasp_id"])  # [C]
    return DecodedContacts(points, grasp_id, normals)


def _grasp_ids(raw: np.ndarray) -> np.ndarray:
    """``grasp_id`` values ``(C,)`` as int64: whole numbers in ``[0, MAX_GRASP_ID]`` (an integer
    field, or a float field holding whole numbers exactly); anything else is a ``ValueError``."""
    if raw.dtype.kind == "f":
        whole = np.isfinite(raw) & (raw >= 0) & (raw <= MAX_GRASP_ID)
        whole[whole] &= raw[whole] == np.floor(raw[whole])
        if not whole.all():
            i = int(np.argmax(~whole))
            raise ValueError(f"grasp_id {float(raw[i])!r} at index {i} is not a whole number in [0, {MAX_GRASP_ID}]")
    elif (raw < 0).any():
        raise ValueError("grasp_id must be >= 0")
    return raw.astype(np.int64)


def encode_cloud(header, columns: dict[str, np.ndarray], is_dense: bool = True) -> PointCloud2:
    """An unorganised (height 1) little-endian PointCloud2 from 1-D columns of equal length.

    Column dtypes must be one of the PointField types (float32/64, (u)int8/16/32).
    """
    from sensor_msgs.msg import PointCloud2
    from sensor_msgs.msg import PointField as PointFieldMsg

    lengths = {len(c) for c in columns.values()}
    if len(lengths) > 1:
        raise ValueError(f"columns have different lengths {sorted(lengths)}")
    num = lengths.pop() if lengths else 0
    to_datatype = {dt.newbyteorder("<"): code for code, dt in DATATYPES.items()}
    fields, formats, offsets, offset = [], [], [], 0
    for name, col in columns.items():
        dt = np.dtype(col.dtype).newbyteorder("<")
        if dt not in to_datatype:
            raise ValueError(f"column {name!r} has dtype {col.dtype}, which PointCloud2 cannot carry")
        fields.append(PointFieldMsg(name=name, offset=offset, datatype=to_datatype[dt], count=1))
        formats.append(dt)
        offsets.append(offset)
        offset += dt.itemsize
    record = np.dtype({"names": list(columns), "formats": formats, "offsets": offsets, "itemsize": offset})
    table = np.empty(num, dtype=record)  # [num] records
    for name, col in columns.items():
        table[name] = col
    msg = PointCloud2()
    msg.header = header
    msg.height, msg.width = 1, num
    msg.fields = fields
    msg.is_bigendian = False
    msg.point_step, msg.row_step = offset, offset * num
    msg.is_dense = is_dense
    msg.data = table.tobytes()
    return msg


def xyz_columns(points: np.ndarray) -> dict[str, np.ndarray]:
    """``{"x", "y", "z"}`` float32 columns from ``points`` ``(N, 3)``."""
    pts = np.asarray(points, dtype=np.float32)
    return {"x": pts[:, 0], "y": pts[:, 1], "z": pts[:, 2]}


def normal_columns(normals: np.ndarray) -> dict[str, np.ndarray]:
    nrm = np.asarray(normals, dtype=np.float32)
    return {"normal_x": nrm[:, 0], "normal_y": nrm[:, 1], "normal_z": nrm[:, 2]}


def cloud_message(header, points: np.ndarray, normals: np.ndarray | None = None) -> PointCloud2:
    """An object cloud message (float32 x, y, z and optional normals)."""
    cols = xyz_columns(points)
    if normals is not None:
        cols.update(normal_columns(normals))
    return encode_cloud(header, cols)


def contacts_message(header, contacts, normals: np.ndarray | None = None) -> PointCloud2:
    """A contacts request from ``(G, K, 3)`` contacts or a list of ``(K_i, 3)`` arrays;
    ``grasp_id`` is the grasp's index."""
    grasps = [np.asarray(g, dtype=np.float64).reshape(-1, 3) for g in contacts]
    points = np.concatenate(grasps) if grasps else np.zeros((0, 3))
    ids = np.repeat(np.arange(len(grasps), dtype=np.uint32), [len(g) for g in grasps])
    cols = {**xyz_columns(points), "grasp_id": ids}
    if normals is not None:
        cols.update(normal_columns(np.asarray(normals).reshape(-1, 3)))
    return encode_cloud(header, cols)
