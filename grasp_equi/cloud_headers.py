"""What a PLY, PCD or XYZ cloud file declares, read from its header before open3d reads the data.

open3d's readers allocate what the header declares before reading (a 1 kB file declaring 10^8
points costs gigabytes), and they pad a truncated file with (0, 0, 0) points without an error, so
half a cloud would be scored as if the object had points at its centre. ``check_cloud_file``
therefore reads the header only, checks the declared count against the limits, and checks that the
data the header promises is in the file; ``check_points_read`` compares what open3d returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from grasp_equi.files import FileFormatError
from grasp_equi.limits import Limits

MAX_HEADER_BYTES = 1 << 20  # comments included; a longer header is not a cloud anyone meant to give

# bytes per value of each PLY / PCD scalar type
PLY_TYPE_BYTES = {"char": 1, "uchar": 1, "int8": 1, "uint8": 1, "short": 2, "ushort": 2, "int16": 2, "uint16": 2,
                  "int": 4, "uint": 4, "int32": 4, "uint32": 4, "float": 4, "float32": 4, "double": 8, "float64": 8}


@dataclass(frozen=True)
class CloudHeader:
    """``points``: the points the file declares; ``faces``: faces it declares (PLY meshes; else 0);
    ``data_bytes``: bytes the point data needs (None when it cannot be known from the header:
    ASCII, compressed, list properties); ``ascii``: text data (one point per line)."""

    points: int
    faces: int
    data_bytes: int | None
    ascii: bool
    header_bytes: int


def _header_lines(path: Path, magic: bytes | None, stop) -> tuple[list[list[bytes]], int]:
    """The split header lines up to (and including) the line for which ``stop(words)`` holds, and the
    header's length in bytes. ``FileFormatError`` without such a line in the first MAX_HEADER_BYTES."""
    lines, read = [], 0
    with open(path, "rb") as handle:
        if magic is not None and handle.readline(16).strip() != magic:
            raise FileFormatError(f"{path}: not a {magic.decode().upper()} file (it does not start with "
                                  f"{magic.decode()!r})")
        read = handle.tell()
        while read < MAX_HEADER_BYTES:
            line = handle.readline(MAX_HEADER_BYTES - read)
            if not line:
                break
            read += len(line)
            words = line.split()
            lines.append(words)
            if stop(words):
                return lines, read
    raise FileFormatError(f"{path}: no end of header in its first {MAX_HEADER_BYTES} bytes (a truncated or "
                          f"malformed file)")


def _count(path: Path, word: bytes, what: str) -> int:
    try:
        value = int(word)
    except ValueError:
        raise FileFormatError(f"{path}: {what} {word[:20]!r} is not a number") from None
    if value < 0:
        raise FileFormatError(f"{path}: {what} {value} is negative")
    return value


def ply_header(path) -> CloudHeader:
    """The header of a PLY file (``element vertex N``, ``element face N``, the vertex properties)."""
    path = Path(path)
    lines, size = _header_lines(path, b"ply", lambda words: words == [b"end_header"])
    points = faces = 0
    vertex_bytes: int | None = 0
    ascii, element = True, None
    for words in lines:
        if words[:1] == [b"format"] and len(words) >= 2:
            ascii = words[1] == b"ascii"
        elif words[:1] == [b"element"] and len(words) == 3:
            element = words[1]
            if element == b"vertex":
                points = _count(path, words[2], "PLY vertex count")
            elif element == b"face":
                faces = _count(path, words[2], "PLY face count")
        elif words[:1] == [b"property"] and element == b"vertex" and vertex_bytes is not None:
            kind = words[1].decode(errors="replace") if len(words) >= 3 else "?"
            vertex_bytes = None if kind == "list" else vertex_bytes + PLY_TYPE_BYTES.get(kind, 0)
    data = None if ascii or not vertex_bytes else points * vertex_bytes
    return CloudHeader(points, faces, data, ascii, size)


def pcd_header(path) -> CloudHeader:
    """The header of a PCD file (``POINTS`` or ``WIDTH`` x ``HEIGHT``, ``SIZE``, ``COUNT``, ``DATA``)."""
    path = Path(path)
    lines, size = _header_lines(path, None, lambda words: words[:1] == [b"DATA"])
    fields = {words[0].upper(): words[1:] for words in lines if words and not words[0].startswith(b"#")}
    if b"POINTS" in fields and fields[b"POINTS"]:
        points = _count(path, fields[b"POINTS"][0], "PCD POINTS")
    else:
        width, height = (fields.get(k, [b"0"]) for k in (b"WIDTH", b"HEIGHT"))
        points = _count(path, width[0], "PCD WIDTH") * _count(path, height[0], "PCD HEIGHT")
    kind = fields[b"DATA"][0].lower() if fields[b"DATA"] else b"ascii"
    sizes = [_count(path, w, "PCD SIZE") for w in fields.get(b"SIZE", [])]
    counts = [_count(path, w, "PCD COUNT") for w in fields.get(b"COUNT", [])] or [1] * len(sizes)
    point_bytes = sum(s * c for s, c in zip(sizes, counts)) if len(counts) == len(sizes) else 0
    data = points * point_bytes if kind == b"binary" and point_bytes else None
    return CloudHeader(points, 0, data, kind == b"ascii", size)


def _text_rows(path: Path, start: int) -> int:
    """Non-empty, non-comment lines after byte ``start`` (the data rows of a text cloud file)."""
    rows = 0
    with open(path, "rb") as handle:
        handle.seek(start)
        for line in handle:
            stripped = line.strip()
            rows += bool(stripped) and not stripped.startswith(b"#")
    return rows


def check_cloud_file(path, limits: Limits) -> CloudHeader | None:
    """Check a ``.ply``/``.pcd``/``.xyz`` cloud file before it is read: the point count it declares
    against ``limits`` and the data it promises against the file's size (binary) or its lines (text).
    Returns the header (None for ``.xyz``, which has none). ``FileFormatError``/``ValueError`` name the file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".xyz":
        return None
    header = ply_header(path) if suffix == ".ply" else pcd_header(path)
    limits.check_points(header.points, f"cloud file {path}")
    if header.data_bytes is not None:
        available = path.stat().st_size - header.header_bytes
        if available < header.data_bytes:
            raise FileFormatError(f"cloud file {path}: truncated: its header declares {header.points} points "
                                  f"({header.data_bytes} bytes), the file holds {max(available, 0)} bytes of data")
    elif header.ascii and not header.faces:
        rows = _text_rows(path, header.header_bytes)
        if rows < header.points:
            raise FileFormatError(f"cloud file {path}: truncated: its header declares {header.points} points, "
                                  f"the file has {rows} data lines")
    return header


def check_points_read(path, header: CloudHeader | None, read: int) -> None:
    """After open3d: ``read`` points against what the file declares (``.xyz``: its data lines)."""
    path = Path(path)
    expected = _text_rows(path, 0) if header is None else header.points
    if read != expected:
        what = "data lines" if header is None else "points its header declares"
        raise FileFormatError(f"cloud file {path}: {read} points could be read of the {expected} {what} "
                              f"(malformed or truncated data)")
