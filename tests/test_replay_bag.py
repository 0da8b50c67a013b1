"""The README's bag-replay recipe (``scripts/replay_bag.py``) on small bags written here with
``rosbags`` (both rosbag2 storages: MCAP and SQLite ``.db3``), in a real process."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ellipsoid_cloud

rosbags = pytest.importorskip("rosbags")
from rosbags.rosbag2 import StoragePlugin, Writer  # noqa: E402
from rosbags.typesys import Stores, get_typestore  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "replay_bag.py"
STORE = get_typestore(Stores.ROS2_JAZZY)
PC2 = "sensor_msgs/msg/PointCloud2"


def _cloud_msg(columns: dict[str, np.ndarray], sec: int, frame: str = "camera"):
    """A PointCloud2 (rosbags' own message class) from equal-length float32/uint32 columns."""
    T = STORE.types
    codes = {np.dtype(np.float32): 7, np.dtype(np.uint32): 6}
    fields, offset = [], 0
    for name, col in columns.items():
        fields.append(T["sensor_msgs/msg/PointField"](name=name, offset=offset, datatype=codes[col.dtype], count=1))
        offset += col.dtype.itemsize
    n = len(next(iter(columns.values())))
    table = np.empty(n, dtype=np.dtype({"names": list(columns), "formats": [c.dtype for c in columns.values()],
                                         "offsets": [f.offset for f in fields], "itemsize": offset}))
    for name, col in columns.items():
        table[name] = col
    header = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=sec, nanosec=5), frame_id=frame)
    return T[PC2](header=header, height=1, width=n, fields=fields, is_bigendian=False, point_step=offset,
                  row_step=offset * n, data=np.frombuffer(table.tobytes(), dtype=np.uint8), is_dense=True)


def _write_bag(path: Path, plugin, with_contacts: bool, rng) -> list[np.ndarray]:
    """Three clouds at t = 1, 2, 3 s (contacts written before their cloud at t = 2, as a
    recorder may interleave them); returns the contacts written, per cloud."""
    written = []
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        cloud_conn = writer.add_connection("/object/points", PC2, typestore=STORE)
        contact_conn = writer.add_connection("/grasp_candidates", PC2, typestore=STORE) if with_contacts else None
        for sec in (1, 2, 3):
            pts, _ = ellipsoid_cloud(1500, rng=rng)
            pts = pts.astype(np.float32) + np.float32(0.5)
            cloud = _cloud_msg({"x": pts[:, 0], "y": pts[:, 1], "z": pts[:, 2]}, sec)
            messages = [(cloud_conn, cloud)]
            if with_contacts:
                contacts = pts[rng.choice(len(pts), size=(6, 2))]  # (G=6, K=2, 3)
                flat = contacts.reshape(-1, 3)
                ids = np.repeat(np.arange(6, dtype=np.uint32), 2)
                msg = _cloud_msg({"x": flat[:, 0], "y": flat[:, 1], "z": flat[:, 2], "grasp_id": ids}, sec)
                messages = [(contact_conn, msg)] + messages if sec == 2 else messages + [(contact_conn, msg)]
                written.append(contacts)
            for i, (conn, msg) in enumerate(messages):
                writer.write(conn, sec * 10**9 + i, STORE.serialize_cdr(msg, PC2))
    return written


def _replay(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args, "--device", "cpu"], capture_output=True,
                          text=True, timeout=300)


def test_replay_scores_contacts_from_an_mcap_bag_like_the_api(tmp_path, rng):
    from grasp_equi import GraspScorer

    bag = tmp_path / "run_mcap"
    contacts = _write_bag(bag, StoragePlugin.MCAP, True, rng)
    assert list(bag.glob("*.mcap"))
    out = tmp_path / "scores.json"
    proc = _replay(str(bag), "--cloud", "/object/points", "--contacts", "/grasp_candidates", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 4 and lines[-1].startswith("3 message(s) scored")
    assert lines[0].startswith("1.000000005  camera") and "grasps    6" in lines[0]
    records = json.loads(out.read_text())
    assert [r["stamp"] for r in records] == ["1.000000005", "2.000000005", "3.000000005"]
    # the same scores as the Python API on the same arrays (the bag held float32 copies)
    with _open_first_cloud(bag) as points:
        expected = GraspScorer.from_checkpoint(device="cpu").score(points, contacts[0])
    np.testing.assert_allclose(records[0]["scores"], expected, atol=1e-5)
    assert _replay(str(bag), "--cloud", "/object/points", "--json", str(out)).returncode == 1  # never overwrites


class _open_first_cloud:
    def __init__(self, bag):
        sys.path.insert(0, str(SCRIPT.parent))
        import replay_bag  # noqa: PLC0415

        self.reader = replay_bag.open_reader(bag)

    def __enter__(self):
        from grasp_equi.ros.codec import decode_cloud

        reader = self.reader.__enter__()
        conn = next(c for c in reader.connections if c.topic == "/object/points")
        _, _, raw = next(iter(reader.messages(connections=[conn])))
        return decode_cloud(reader.deserialize(raw, conn.msgtype), 10**6).points

    def __exit__(self, *exc):
        self.reader.__exit__(*exc)


def test_replay_proposes_grasps_on_a_db3_bag_without_contacts(tmp_path, rng):
    bag = tmp_path / "run_db3"
    _write_bag(bag, StoragePlugin.SQLITE3, False, rng)
    db3 = next(bag.glob("*.db3"))
    proc = _replay(str(db3), "--cloud", "/object/points", "--top", "3")  # the .db3 file itself also works
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    # up to --top 3 collision-free proposals per cloud (a 10 x 6 x 4 cm ellipsoid leaves few), best one printed
    counts = [int(re.search(r"grasps +(\d+)", line).group(1)) for line in lines[:3]]
    assert len(lines) == 4 and all(1 <= c <= 3 for c in counts) and all("best 0." in line for line in lines[:3])


def test_replay_bad_bag_or_topic_is_one_line(tmp_path, rng):
    proc = _replay(str(tmp_path / "nope.mcap"), "--cloud", "/x")
    assert proc.returncode == 1 and proc.stderr.strip().count("\n") == 0 and "nope.mcap" in proc.stderr
    bag = tmp_path / "b"
    _write_bag(bag, StoragePlugin.MCAP, False, rng)
    proc = _replay(str(bag), "--cloud", "/camera/points")
    assert proc.returncode == 1 and "no topic '/camera/points'" in proc.stderr and "/object/points" in proc.stderr
    assert "Traceback" not in proc.stderr
