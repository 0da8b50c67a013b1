"""Hostile PointCloud2 messages through the codec and the node's validation (no DDS needed).

Hypothesis builds messages that are *almost* right (overlapping fields, fields past
``point_step``, partial/NaN/non-unit normals, odd grasp_id types, huge K) and checks the
contract: each either decodes to exactly the values written, or raises ``ValueError``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("sensor_msgs.msg", reason="ROS 2 message packages (ros-sensor-msgs) not installed")
from sensor_msgs.msg import PointField  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from grasp_equi.limits import Limits  # noqa: E402
from grasp_equi.ros.codec import (DATATYPES, NORMALS, cloud_message, contacts_message, decode_cloud,  # noqa: E402
                                  decode_contacts, encode_cloud)
from grasp_equi.validation import check_cloud  # noqa: E402

BIG = 10**6
LIMITS = Limits()


def test_overlapping_fields_are_refused():
    msg = cloud_message(Header(frame_id="a"), np.random.default_rng(0).normal(size=(20, 3)) * 0.05)
    for f in msg.fields:
        f.offset = 0  # x, y, z all at offset 0: used to decode as a line and score 0.21
    with pytest.raises(ValueError, match="overlap"):
        decode_cloud(msg, BIG)
    msg = cloud_message(Header(frame_id="a"), np.zeros((4, 3)))
    msg.fields[2].offset = msg.point_step - 2  # z runs past the point
    with pytest.raises(ValueError, match="does not fit in point_step"):
        decode_cloud(msg, BIG)


@pytest.mark.parametrize("normals, reason", [
    (np.full((4, 3), np.nan), "non-finite"),
    (np.ones((4, 3)), "length 1.732"),
    (np.zeros((4, 3)), "length 0"),
])
def test_contact_normals_are_validated(normals, reason):
    contacts = np.random.default_rng(0).normal(size=(2, 2, 3))
    msg = contacts_message(Header(frame_id="a"), contacts, normals)
    with pytest.raises(ValueError, match=reason):
        decode_contacts(msg, BIG)


def test_partial_normals_are_refused_not_dropped():
    cols = {"x": np.zeros(4, np.float32), "y": np.ones(4, np.float32), "z": np.arange(4, dtype=np.float32),
            "grasp_id": np.array([0, 0, 1, 1], np.uint32), "normal_x": np.ones(4, np.float32)}
    with pytest.raises(ValueError, match="normals are partial"):
        decode_contacts(encode_cloud(Header(), cols), BIG)
    with pytest.raises(ValueError, match="normals are partial"):
        decode_cloud(encode_cloud(Header(), cols), BIG)


def test_nearly_unit_normals_are_normalised():
    n = np.array([[0.0, 0.0, 1.005]] * 4)
    dec = decode_contacts(contacts_message(Header(), np.zeros((2, 2, 3)), n), BIG)
    np.testing.assert_allclose(np.linalg.norm(dec.normals, axis=1), 1.0)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.float32,
                                   np.float64])
def test_grasp_id_of_every_representable_type(dtype):
    cols = {"x": np.arange(4, dtype=np.float32), "y": np.zeros(4, np.float32), "z": np.zeros(4, np.float32),
            "grasp_id": np.array([7, 7, 3, 3], dtype=dtype)}
    ids, groups = decode_contacts(encode_cloud(Header(), cols), BIG).grasps(LIMITS)
    assert ids.tolist() == [3, 7] and [g[:, 0].tolist() for g in groups] == [[2, 3], [0, 1]]


@pytest.mark.parametrize("value", [0.5, -1.0, np.nan, np.inf, 2.0**32])
def test_float_grasp_id_must_be_a_whole_uint32(value):
    cols = {"x": np.zeros(2, np.float32), "y": np.zeros(2, np.float32), "z": np.zeros(2, np.float32),
            "grasp_id": np.array([value, value])}
    with pytest.raises(ValueError, match="grasp_id"):
        decode_contacts(encode_cloud(Header(), cols), BIG)


def test_k_limit_is_checked_before_grouping():
    msg = contacts_message(Header(), np.zeros((1, 1000, 3)))
    with pytest.raises(ValueError, match="grasp_id 0 has 1000 contacts, more than max_contacts_per_grasp=16"):
        decode_contacts(msg, BIG).grasps(LIMITS)
    with pytest.raises(ValueError, match="max_grasps=2"):
        decode_contacts(contacts_message(Header(), np.zeros((3, 2, 3))), BIG).grasps(Limits(max_grasps=2))


def test_all_nan_cloud_is_reported_as_such():
    msg = cloud_message(Header(), np.full((50, 3), np.nan))
    msg.is_dense = False
    with pytest.raises(ValueError, match="all 50 points are non-finite"):
        decode_cloud(msg, BIG)


# ----------------------------------------------------------------------------- hypothesis
FLOATS = [PointField.FLOAT32, PointField.FLOAT64]
INTS = [PointField.INT8, PointField.UINT8, PointField.INT16, PointField.UINT16, PointField.INT32, PointField.UINT32]


@st.composite
def hostile_request(draw):
    """A contacts message laid out field by field, then possibly broken in one of several ways.
    Returns ``(msg, expected)``: expected ``(points, ids, normals)`` when it must decode, else None."""
    n_grasps, k = draw(st.integers(0, 4)), draw(st.sampled_from([2, 3, 16, 17]))
    n = n_grasps * k
    with_normals = draw(st.booleans())
    names = ["x", "y", "z", "grasp_id"] + (list(NORMALS) if with_normals else [])
    types = {name: draw(st.sampled_from(FLOATS)) for name in names}
    types["grasp_id"] = draw(st.sampled_from(INTS + FLOATS))
    offsets, cursor = {}, 0
    for name in draw(st.permutations(names)):
        cursor += draw(st.integers(0, 2))
        offsets[name] = cursor
        cursor += DATATYPES[types[name]].itemsize
    point_step = cursor + draw(st.integers(0, 4))
    pts = np.asarray(draw(st.lists(st.floats(-0.125, 0.125, width=32), min_size=3 * n, max_size=3 * n))).reshape(n, 3)
    ids = np.repeat(np.arange(n_grasps), k)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    nrm = rng.normal(size=(n, 3)) + 1e-3
    nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
    flaw = draw(st.sampled_from(["none", "overlap", "beyond", "partial_normals", "nan_normal", "long_normal",
                                 "nan_point", "negative_id"]))
    values = {"x": pts[:, 0], "y": pts[:, 1], "z": pts[:, 2], "grasp_id": ids,
              **({"normal_x": nrm[:, 0], "normal_y": nrm[:, 1], "normal_z": nrm[:, 2]} if with_normals else {})}
    broken = flaw in ("overlap", "beyond")  # the field table is checked even for empty messages
    if n and flaw in ("nan_normal", "long_normal") and with_normals:
        values["normal_y"] = values["normal_y"].copy()
        values["normal_y"][-1] = np.nan if flaw == "nan_normal" else 3.0
        broken = True
    if n and flaw == "nan_point":
        values["z"] = values["z"].copy()
        values["z"][0] = np.nan
        broken = True
    if n and flaw == "negative_id" and types["grasp_id"] not in (PointField.UINT8, PointField.UINT16,
                                                                 PointField.UINT32):
        values["grasp_id"] = ids - 1
        broken = True
    data = np.zeros(n * point_step, np.uint8)
    for name in names:
        dt = DATATYPES[types[name]].newbyteorder("<")
        raw = np.frombuffer(np.asarray(values[name]).astype(dt).tobytes(), np.uint8).reshape(n, dt.itemsize)
        for i in range(n):
            data[i * point_step + offsets[name]: i * point_step + offsets[name] + dt.itemsize] = raw[i]
    msg = encode_cloud(Header(frame_id="a"), {})
    msg.height, msg.width, msg.point_step, msg.row_step = 1, n, point_step, n * point_step
    msg.fields = [PointField(name=m, offset=offsets[m], datatype=types[m], count=1) for m in names]
    msg.data = data.tobytes()
    if flaw == "overlap":
        msg.fields[1].offset = msg.fields[0].offset  # y on top of x
    elif flaw == "beyond":
        msg.fields[2].offset = point_step - 1
    elif flaw == "partial_normals" and with_normals:
        msg.fields = msg.fields[:-1]
        broken = True
    expected = None if broken else (pts.astype(np.float32), ids, nrm.astype(np.float32) if with_normals else None)
    return msg, expected, k


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_request())
def test_fuzz_decode_exactly_or_refuse(case):
    msg, expected, k = case
    try:
        dec = decode_contacts(msg, BIG)
        ids, groups = dec.grasps(LIMITS)
    except ValueError:
        assert expected is None or k > LIMITS.max_contacts_per_grasp, "an intact request within limits must decode"
        return
    assert expected is not None, "a flawed message must not decode"
    points, want_ids, normals = expected
    np.testing.assert_array_equal(dec.points, points)
    np.testing.assert_array_equal(dec.grasp_id, want_ids)
    assert all(2 <= len(g) <= LIMITS.max_contacts_per_grasp for g in groups)
    if normals is not None:
        np.testing.assert_allclose(dec.normals, normals, atol=1e-5)
    else:
        assert dec.normals is None


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.floats(-40, 40), st.integers(4, 60), st.booleans(), st.integers(0, 2**16))
def test_fuzz_cloud_validation_refuses_implausible_clouds(log10_scale, n, spots, seed):
    """Decoded clouds pass the node's checks only when their size is plausible and they are
    not a line or a few spots; the refusal message gives the measured radius."""
    rng = np.random.default_rng(seed)
    pts = rng.normal(size=(n, 3))
    if spots:
        pts = pts[rng.integers(0, 2, n)]  # only two distinct points
    pts = pts * 10.0 ** (log10_scale / 4)
    msg = cloud_message(Header(frame_id="a"), pts)
    try:
        dec = decode_cloud(msg, BIG)
        checked, _ = check_cloud(dec.points)
        radius = LIMITS.check_object_size(checked)
    except ValueError as err:
        text = str(err)
        assert "object radius" in text or "line or a few spots" in text or "non-finite" in text \
            or "one location" in text or "overflow" in text, text
        return
    assert LIMITS.min_object_radius <= radius <= LIMITS.max_object_radius and not spots
