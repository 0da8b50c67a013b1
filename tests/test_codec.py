"""PointCloud2 codec: layouts, validation, and fuzzing (no DDS needed; real message classes)."""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("sensor_msgs.msg", reason="ROS 2 message packages (ros-sensor-msgs) not installed")
from sensor_msgs.msg import PointCloud2, PointField  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from grasp_equi.ros.codec import (DATATYPES, cloud_message, contacts_message, decode_cloud,  # noqa: E402
                                  decode_contacts, encode_cloud)

BIG = 10**9


def layout_message(columns: dict[str, tuple[int, np.ndarray]], height: int, width: int, point_step: int,
                   row_step: int, big_endian: bool, offsets: dict[str, int], is_dense=True) -> PointCloud2:
    """Reference writer: put each column (datatype, values [height*width]) at its offset."""
    order = ">" if big_endian else "<"
    data = np.zeros(row_step * height, dtype=np.uint8)
    for name, (datatype, values) in columns.items():
        dt = DATATYPES[datatype].newbyteorder(order)
        raw = np.frombuffer(np.asarray(values).astype(dt).tobytes(), dtype=np.uint8)  # keeps byte order
        raw = raw.reshape(height, width, dt.itemsize)
        for r in range(height):
            for c in range(width):
                start = r * row_step + c * point_step + offsets[name]
                data[start:start + dt.itemsize] = raw[r, c]
    msg = PointCloud2()
    msg.header = Header(frame_id="obj")
    msg.height, msg.width, msg.point_step, msg.row_step = height, width, point_step, row_step
    msg.is_bigendian, msg.is_dense = big_endian, is_dense
    msg.fields = [PointField(name=n, offset=offsets[n], datatype=dt, count=1) for n, (dt, _) in columns.items()]
    msg.data = data.tobytes()
    return msg


def test_roundtrip_with_normals_and_contacts(rng):
    header = Header(frame_id="cam")
    pts, nrm = rng.normal(size=(50, 3)), rng.normal(size=(50, 3))
    nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)  # normal fields must be unit vectors
    cloud = decode_cloud(cloud_message(header, pts, nrm), BIG)
    np.testing.assert_allclose(cloud.points, pts.astype(np.float32))
    np.testing.assert_allclose(cloud.normals, nrm.astype(np.float32), atol=1e-6)
    contacts = rng.normal(size=(4, 3, 3))
    dec = decode_contacts(contacts_message(header, contacts), BIG)
    ids, groups = dec.grasps()
    assert ids.tolist() == [0, 1, 2, 3]
    np.testing.assert_allclose(np.stack(groups), contacts.astype(np.float32))


@pytest.mark.parametrize("big_endian", [False, True])
def test_organised_padded_big_endian_float64(big_endian, rng):
    height, width, point_step, row_step = 3, 5, 40, 40 * 5 + 12  # padding inside points and rows
    xyz = rng.normal(size=(3, 15))
    cols = {"x": (PointField.FLOAT64, xyz[0]), "y": (PointField.FLOAT64, xyz[1]),
            "z": (PointField.FLOAT32, xyz[2]), "grasp_id": (PointField.UINT16, np.arange(15) // 3)}
    offsets = {"x": 16, "y": 0, "z": 8, "grasp_id": 30}
    msg = layout_message(cols, height, width, point_step, row_step, big_endian, offsets)
    dec = decode_contacts(msg, BIG)
    np.testing.assert_array_equal(dec.points[:, 0], xyz[0])
    np.testing.assert_array_equal(dec.points[:, 2], xyz[2].astype(np.float32))
    assert dec.grasp_id.tolist() == (np.arange(15) // 3).tolist()


def test_dense_flag_decides_about_nan(rng):
    pts = rng.normal(size=(10, 3))
    pts[3, 1] = np.nan
    msg = cloud_message(Header(frame_id="a"), pts)
    with pytest.raises(ValueError, match="is_dense=true but has 1 non-finite"):
        decode_cloud(msg, BIG)
    msg.is_dense = False
    cloud = decode_cloud(msg, BIG)
    assert cloud.points.shape == (9, 3) and cloud.num_dropped == 1
    bad = contacts_message(Header(), [pts[:2], pts[2:4]])
    bad.is_dense = False
    with pytest.raises(ValueError, match="non-finite"):  # contacts are never dropped silently
        decode_contacts(bad, BIG)


def base_contacts() -> PointCloud2:
    return contacts_message(Header(frame_id="a"), np.zeros((2, 2, 3)) + np.arange(3))


@pytest.mark.parametrize("mutate, reason", [
    (lambda m: setattr(m, "fields", m.fields[1:]), "missing field"),
    (lambda m: setattr(m.fields[0], "datatype", PointField.INT8), "expected one of"),
    (lambda m: setattr(m.fields[3], "datatype", PointField.FLOAT64), "grasp_id.*does not fit"),
    (lambda m: setattr(m.fields[0], "datatype", 42), "unknown datatype"),
    (lambda m: setattr(m.fields[1], "count", 3), "overlap"),  # 3 floats of y run into z
    (lambda m: setattr(m.fields[2], "offset", 1000), "does not fit"),
    (lambda m: setattr(m.fields[1], "name", "x"), "appears twice"),
    (lambda m: setattr(m, "data", m.data[:-1]), "truncated"),
    (lambda m: setattr(m, "row_step", 1), "row_step"),
    (lambda m: setattr(m, "point_step", 0), "point_step"),
    (lambda m: setattr(m, "width", 10**8), "more than max_points"),
])
def test_malformed_contacts_raise_with_reason(mutate, reason):
    msg = base_contacts()
    mutate(msg)
    with pytest.raises(ValueError, match=reason):
        decode_contacts(msg, max_points=10**6)


def test_lying_size_is_rejected_before_allocating():
    msg = base_contacts()
    msg.width, msg.height = 10**4, 10**4  # 10^8 points claimed, 64 bytes present
    msg.row_step = 10**4 * msg.point_step
    tracemalloc.start()
    start = time.perf_counter()
    with pytest.raises(ValueError, match="truncated"):
        decode_contacts(msg, max_points=10**12)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 1_000_000
    assert time.perf_counter() - start < 5  # generous; a real allocation of 10^8 points would swap


def test_empty_request_decodes_to_no_grasps():
    ids, groups = decode_contacts(contacts_message(Header(frame_id="a"), []), BIG).grasps()
    assert len(ids) == 0 and groups == []


def test_single_contact_grasp_is_rejected():
    msg = contacts_message(Header(frame_id="a"), [np.zeros((2, 3)), np.ones((1, 3))])
    with pytest.raises(ValueError, match="grasp_id 1 has 1 contact"):
        decode_contacts(msg, BIG).grasps()


def test_encode_rejects_ragged_and_unsupported_columns():
    with pytest.raises(ValueError, match="different lengths"):
        encode_cloud(Header(), {"x": np.zeros(2, np.float32), "y": np.zeros(3, np.float32)})
    with pytest.raises(ValueError, match="cannot carry"):
        encode_cloud(Header(), {"x": np.zeros(2, np.int64)})


# ----------------------------------------------------------------------------- fuzzing
FIELD_NAMES = ["x", "y", "z", "grasp_id", "normal_x", "normal_y", "normal_z", "rgb"]
u32 = st.integers(0, 2**32 - 1)
small = st.integers(0, 64)


@st.composite
def random_message(draw) -> PointCloud2:
    """Arbitrary (mostly inconsistent) headers, field tables and data lengths."""
    msg = PointCloud2()
    msg.height = draw(st.one_of(small, u32))
    msg.width = draw(st.one_of(small, u32))
    msg.point_step = draw(st.one_of(small, u32))
    msg.row_step = draw(st.one_of(st.integers(0, 4096), u32))
    msg.is_bigendian = draw(st.booleans())
    msg.is_dense = draw(st.booleans())
    names = draw(st.lists(st.sampled_from(FIELD_NAMES), max_size=8))
    msg.fields = [PointField(name=n, offset=draw(st.one_of(small, u32)), datatype=draw(st.integers(0, 255)),
                             count=draw(st.one_of(st.integers(0, 3), u32))) for n in names]
    msg.data = draw(st.binary(max_size=4096))
    return msg


@st.composite
def valid_layout(draw):
    """A consistent random layout with known values, possibly truncated or lying afterwards."""
    height, width = draw(st.integers(1, 4)), draw(st.integers(0, 6))
    types = {n: draw(st.sampled_from([PointField.FLOAT32, PointField.FLOAT64])) for n in "xyz"}
    types["grasp_id"] = draw(st.sampled_from([PointField.UINT8, PointField.INT32, PointField.UINT32]))
    offsets, cursor = {}, 0
    for name in draw(st.permutations(list(types))):
        cursor += draw(st.integers(0, 3))  # unaligned padding
        offsets[name] = cursor
        cursor += DATATYPES[types[name]].itemsize
    point_step = cursor + draw(st.integers(0, 8))
    row_step = width * point_step + draw(st.integers(0, 16))
    n = height * width
    values = {n_: draw(st.lists(st.floats(-1e3, 1e3, width=32), min_size=n, max_size=n)) for n_ in "xyz"}
    values["grasp_id"] = list(range(n))
    cols = {k: (types[k], np.asarray(values[k])) for k in types}
    return layout_message(cols, height, width, point_step, row_step, draw(st.booleans()), offsets), values


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(random_message())
def test_fuzz_random_messages_never_crash_or_allocate(msg):
    tracemalloc.start()
    try:
        for decode in (decode_cloud, decode_contacts):
            try:
                out = decode(msg, max_points=10**6)
            except ValueError:
                continue
            assert out.points.ndim == 2 and out.points.shape[1] == 3
            assert len(out.points) <= int(msg.height) * int(msg.width)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024 * 1024  # never more than a few copies of the 4 kB payload


@FUZZ
@given(valid_layout(), st.integers(0, 3), st.booleans())
def test_fuzz_layouts_decode_exactly_or_fail_cleanly(layout, damage, claim_more):
    msg, values = layout
    if damage == 1:
        msg.data = msg.data[: max(0, len(msg.data) - 1 - int(msg.point_step))]  # truncated
    elif damage == 2 and claim_more:
        msg.height = int(msg.height) * 1000 + 7  # lying size
    elif damage == 3:
        msg.fields[0].datatype = PointField.INT16  # wrong type for whichever field is first
    try:
        dec = decode_contacts(msg, max_points=10**6)
    except ValueError:
        assert damage != 0 or int(msg.width) == 0, "an intact layout must decode"
        return
    if damage == 0:
        for i, axis in enumerate("xyz"):
            np.testing.assert_array_equal(dec.points[:, i], np.asarray(values[axis], dtype=np.float32))
        assert dec.grasp_id.tolist() == values["grasp_id"]
