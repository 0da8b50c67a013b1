"""Reading numeric arrays from ``.npy``/``.npz`` files that may be hostile.

Nothing is allocated before the header has been checked: the format version, the header
text (numpy parses it as a Python literal; a malformed one raises all kinds of errors), the
dtype (real numbers only: bool, complex, strings, dates and records are not coordinates),
the shape (``check_shape`` sees it first, e.g. against ``max_points``), the data size
against ``Limits.max_file_bytes`` and against what the file (or the zip member's declared
uncompressed size) can hold. A zip bomb is refused from its directory entry, before any
decompression; a member whose directory lies is read only up to the size it declares.
Every failure is a ``FileFormatError`` (a ``ValueError``) whose message names the file.
"""

from __future__ import annotations

import math
import tokenize
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from grasp_equi.limits import Limits

MAX_HEADER_BYTES = 10_000  # numpy's own default limit for .npy header text
NUMERIC_KINDS = "fiu"
_HEADER_ERRORS = (ValueError, SyntaxError, TypeError, KeyError, OverflowError, UnicodeDecodeError,
                  tokenize.TokenError, EOFError)


class FileFormatError(ValueError):
    """A file that cannot be read as the array it should hold; the message names the file."""


ShapeCheck = Callable[[tuple[int, ...]], None]


def _header(fp, what: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """``(shape, fortran_order, dtype)`` from an ``.npy`` stream positioned at its start."""
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp, max_header_size=MAX_HEADER_BYTES)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp, max_header_size=MAX_HEADER_BYTES)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except _HEADER_ERRORS as err:
        raise FileFormatError(f"{what}: not a readable .npy array (malformed header: {err})") from None
    if dtype.kind not in NUMERIC_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise FileFormatError(f"{what}: dtype {dtype} is not a real number type (float or integer)")
    return tuple(int(d) for d in shape), bool(fortran), dtype


def _read(fp, what: str, available: int, limits: Limits, check_shape: ShapeCheck | None) -> np.ndarray:
    """Read one array; ``available`` = bytes the stream can still hold after the header."""
    shape, fortran, dtype = _header(fp, what)
    if check_shape is not None:
        try:
            check_shape(shape)
        except ValueError as err:
            raise FileFormatError(f"{what}: {err}") from None
    nbytes = math.prod(shape) * dtype.itemsize  # exact Python int: no overflow
    _check_bytes(limits, nbytes, what)
    header_end = fp.tell()
    if nbytes > available - header_end:
        raise FileFormatError(f"{what}: the header claims shape {shape} ({nbytes} bytes) but the file holds "
                              f"only {max(available - header_end, 0)} bytes of data")
    data = fp.read(nbytes)
    if len(data) != nbytes:
        raise FileFormatError(f"{what}: truncated data ({len(data)} of {nbytes} bytes)")
    arr = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    return arr.astype(dtype.newbyteorder("="), copy=True)  # native order, writable


def _check_bytes(limits: Limits, nbytes: int, what: str) -> None:
    try:
        limits.check_file_bytes(nbytes, what)
    except ValueError as err:
        raise FileFormatError(str(err)) from None


def load_npy(path, what: str, limits: Limits, check_shape: ShapeCheck | None = None) -> np.ndarray:
    """The array in an ``.npy`` file, checked as the module docstring says."""
    path = Path(path)
    what = f"{what} {path}"
    size = path.stat().st_size
    with path.open("rb") as fp:
        return _read(fp, what, size, limits, check_shape)


def load_npz(path, what: str, names: tuple[str, ...], required: tuple[str, ...], limits: Limits,
             check_shape: Callable[[str], ShapeCheck | None] = lambda name: None) -> dict[str, np.ndarray]:
    """Arrays ``names`` (those present; ``required`` must be) from an ``.npz`` archive."""
    path = Path(path)
    what = f"{what} {path}"
    try:
        _check_bytes(limits, path.stat().st_size, what)
        with zipfile.ZipFile(path) as archive:
            members = {info.filename: info for info in archive.infolist()}
            missing = [n for n in required if n + ".npy" not in members]
            if missing:
                raise FileFormatError(f"{what}: no {missing[0]!r} array (found {sorted(members)[:5]})")
            out = {}
            for name in names:
                info = members.get(name + ".npy")
                if info is None:
                    continue
                _check_bytes(limits, info.file_size, f"{what}: {name!r} decompressed")
                with archive.open(info) as fp:
                    out[name] = _read(_Counting(fp), f"{what}: {name!r}", info.file_size, limits,
                                      check_shape(name))
            return out
    except FileFormatError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, OSError, ValueError) as err:
        raise FileFormatError(f"{what}: not a readable .npz archive ({err})") from None


class _Counting:
    """A read-only stream wrapper that knows its position (zip streams' ``tell`` is not
    reliable across Python versions for compressed members)."""

    def __init__(self, fp):
        self._fp = fp
        self._pos = 0

    def read(self, n: int = -1) -> bytes:
        data = self._fp.read(n)
        self._pos += len(data)
        return data

    def tell(self) -> int:
        return self._pos
