"""Requests, clouds and how they are matched (``sync: exact`` or ``latest``); no rclpy here.

Clouds and requests travel on different topics, so either may arrive first. A request that
finds no cloud yet waits (``sync_timeout``) and is retried whenever a cloud arrives.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

import numpy as np

MAX_FRAMES = 64  # distinct frame ids remembered for `latest` (bounded memory)
MAX_PENDING = 256  # requests waiting for their cloud


def stamp_key(header) -> tuple[int, int]:
    return int(header.stamp.sec), int(header.stamp.nanosec)


def describe_stamp(key: tuple[int, int]) -> str:
    return f"{key[0]}.{key[1]:09d}"


class _Stamped:
    """``key`` (header stamp) and ``frame`` of a record that holds a message ``header``."""

    @property
    def key(self) -> tuple[int, int]:
        return stamp_key(self.header)

    @property
    def frame(self) -> str:
        return self.header.frame_id


@dataclass
class CloudEntry(_Stamped):
    """A decoded object cloud; ``encoded`` is filled by the worker (the encoder runs once)."""

    header: object
    points: np.ndarray  # [N, 3] float64
    normals: np.ndarray | None  # [N, 3] float64
    encoded: object = None
    encoded_for: int = -1  # the sample_points value ``encoded`` was made with


@dataclass
class Request(_Stamped):
    """A scoring request (from ``contacts`` or ``grasp_poses``) waiting for or holding its cloud."""

    kind: str  # "contacts" | "poses" | "propose" (a propose_cloud message: the cloud is the request)
    header: object
    received: float  # time.monotonic() at the callback
    grasp_ids: np.ndarray | None = None  # [G] contacts: sorted unique ids
    grasps: list[np.ndarray] | None = None  # contacts: G arrays (K_i, 3)
    columns: dict[str, np.ndarray] | None = None  # contacts: the input's fields, message order
    contact_grasp: np.ndarray | None = None  # contacts: [C] index into grasps for each input row
    positions: np.ndarray | None = None  # poses: [P, 3]
    quats: np.ndarray | None = None  # poses: [P, 4] (x, y, z, w)
    stage_ms: dict[str, float] = field(default_factory=dict)


class CloudStore:
    """Recent clouds by stamp (``exact``) and the latest cloud per frame (``latest``)."""

    def __init__(self, capacity: int):
        self.recent: deque[CloudEntry] = deque(maxlen=capacity)
        self.latest: OrderedDict[str, CloudEntry] = OrderedDict()
        # clouds refused by the node: ((stamp, frame), reason), so their requests hear why
        self.rejected: deque[tuple[tuple[tuple[int, int], str], str]] = deque(maxlen=capacity)

    def resize(self, capacity: int) -> None:
        self.recent = deque(self.recent, maxlen=capacity)
        self.rejected = deque(self.rejected, maxlen=capacity)

    def reject(self, header, reason: str) -> None:
        """Remember that the cloud with ``header`` was refused (and why)."""
        self.rejected.append(((stamp_key(header), header.frame_id), reason))

    def _rejection(self, key: tuple[int, int], frame: str) -> str | None:
        for (k, f), reason in reversed(self.rejected):
            if k == key and f == frame:
                return reason
        return None

    def add(self, cloud: CloudEntry) -> None:
        self.recent.append(cloud)
        self.latest[cloud.frame] = cloud
        self.latest.move_to_end(cloud.frame)
        while len(self.latest) > MAX_FRAMES:
            self.latest.popitem(last=False)

    def match(self, request: Request, sync: str) -> CloudEntry | None:
        """The cloud for ``request``, or None to keep waiting; ``ValueError`` if it can never match."""
        if sync == "latest":
            return self.latest.get(request.frame)
        same_stamp = [c for c in self.recent if c.key == request.key]
        for cloud in reversed(same_stamp):
            if cloud.frame == request.frame:
                return cloud
        rejected = self._rejection(request.key, request.frame)
        if rejected is not None:
            raise ValueError(f"the cloud with stamp {describe_stamp(request.key)} arrived but was rejected: {rejected}")
        if same_stamp:
            raise ValueError(f"frame mismatch: request in frame {request.frame!r}, the cloud with stamp "
                             f"{describe_stamp(request.key)} is in frame {same_stamp[-1].frame!r}")
        return None

    def why_unmatched(self, request: Request, sync: str) -> str:
        if sync == "latest":
            refused = [reason for (_, frame), reason in self.rejected if frame == request.frame]
            if refused and request.frame not in self.latest:
                return f"the latest cloud in frame {request.frame!r} was rejected: {refused[-1]}"
            frames = list(self.latest)[-5:]
            return (f"no cloud in frame {request.frame!r} (sync=latest); latest clouds are in frames {frames}"
                    if frames else "no cloud received yet")
        stamps = [describe_stamp(c.key) for c in list(self.recent)[-3:]]
        return (f"no cloud with stamp {describe_stamp(request.key)} (sync=exact); "
                f"recent cloud stamps {stamps}")


class PendingRequests:
    """Requests waiting for their cloud, oldest first, bounded."""

    def __init__(self):
        self.items: deque[Request] = deque()

    def add(self, request: Request) -> Request | None:
        """Queue ``request``; returns the oldest request if it had to make room for it."""
        evicted = self.items.popleft() if len(self.items) >= MAX_PENDING else None
        self.items.append(request)
        return evicted

    def take_matched(self, store: CloudStore, sync: str) -> tuple[list, list]:
        """Remove and return ``([(request, cloud)], [(request, reason)])`` for requests that now
        match or can never match."""
        matched, failed, keep = [], [], deque()
        for request in self.items:
            try:
                cloud = store.match(request, sync)
            except ValueError as err:
                failed.append((request, str(err)))
                continue
            if cloud is None:
                keep.append(request)
            else:
                matched.append((request, cloud))
        self.items = keep
        return matched, failed

    def take_expired(self, timeout: float, now: float | None = None) -> list[Request]:
        now = time.monotonic() if now is None else now
        expired = [r for r in self.items if now - r.received > timeout]
        if expired:
            self.items = deque(r for r in self.items if now - r.received <= timeout)
        return expired
