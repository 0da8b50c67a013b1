"""Inference off the executor thread, behind a bounded drop-oldest queue.

The DDS callbacks only decode, validate and enqueue; a single worker thread runs the
network. When the device is slower than the input rate the oldest waiting job is dropped
(and counted), so latency stays bounded by ``queue_size`` jobs and DDS never backs up.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class DropOldestQueue(Generic[T]):
    """A bounded FIFO: ``put`` on a full queue drops and returns the oldest item."""

    def __init__(self, capacity: int):
        self._items: deque[T] = deque()
        self._capacity = capacity
        self._cond = threading.Condition()
        self._closed = False

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    @property
    def capacity(self) -> int:
        return self._capacity

    def resize(self, capacity: int) -> list[T]:
        """Change the capacity; returns the oldest items dropped to fit."""
        with self._cond:
            self._capacity = capacity
            return [self._items.popleft() for _ in range(max(0, len(self._items) - capacity))]

    def put(self, item: T) -> T | None:
        with self._cond:
            dropped = self._items.popleft() if len(self._items) >= self._capacity else None
            self._items.append(item)
            self._cond.notify()
            return dropped

    def get(self, timeout: float | None = None) -> T | None:
        """The oldest item, or None when closed (or after ``timeout`` seconds)."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._items or self._closed, timeout):
                return None
            if self._closed:
                return None
            return self._items.popleft()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class Worker(threading.Thread):
    """Runs ``handle(job)`` for each queued job until ``stop()``; ``handle`` must not raise."""

    def __init__(self, queue: DropOldestQueue, handle: Callable[[object], None],
                 on_start: Callable[[], None] | None = None):
        super().__init__(name="grasp_equi-scoring", daemon=True)
        self.queue = queue
        self.handle = handle
        self.on_start = on_start  # per-thread set-up (OpenMP thread counts are per thread)

    def run(self) -> None:
        if self.on_start is not None:
            self.on_start()
        while True:
            job = self.queue.get()
            if job is None:
                return
            self.handle(job)

    def stop(self, timeout: float = 5.0) -> None:
        self.queue.close()
        self.join(timeout)
