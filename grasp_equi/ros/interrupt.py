"""Stop a ROS process on Ctrl-C once, cleanly: exit code 0, no traceback.

Under ``ros2 launch`` a node often receives SIGINT twice: launch forwards one to each
process, and a terminal's Ctrl-C reaches the whole process group as well. The first one
ends ``spin()``; a second one used to raise ``KeyboardInterrupt`` inside the clean-up
(``worker.join``, ``destroy_node``) and the process exited with -2 and a traceback. And an
interrupt that lands while rclpy's C++ code calls back into Python (taking a message) comes
out as a ``RuntimeError`` from pybind11, not as ``KeyboardInterrupt``.

Console scripts therefore wrap ``main`` in ``exits_quietly_on_interrupt`` (which records the
SIGINT and turns whatever it raised into exit code 0) and call ``ignore_sigint()`` as their
clean-up begins. An interrupt can also land inside rclpy's ``Task.__init__``: the half-built task's
``__del__`` then raises ``AttributeError`` when it is collected, which Python prints as "Exception
ignored" with a traceback (seen once in CI); after a SIGINT that one is silenced too.
"""

from __future__ import annotations

import functools
import signal
import sys
import threading
from typing import Callable

_interrupted = threading.Event()


def _on_sigint(_signum, _frame) -> None:
    _interrupted.set()
    raise KeyboardInterrupt


def _quiet_half_built_tasks(unraisable, default=sys.unraisablehook) -> None:
    """``sys.unraisablehook``: after a SIGINT, drop the ``AttributeError`` of a half-built rclpy task's
    ``__del__`` (the interrupt, not a failure); report everything else as Python would."""
    origin = getattr(getattr(unraisable, "object", None), "__module__", "") or ""
    if _interrupted.is_set() and issubclass(unraisable.exc_type, AttributeError) and origin.startswith("rclpy."):
        return
    default(unraisable)


def ignore_sigint() -> None:
    """Ignore SIGINT from here on (the process is already shutting down). SIGTERM still works."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def exits_quietly_on_interrupt(main: Callable[..., int]) -> Callable[..., int]:
    """Wrap a console script's ``main`` (run in the main thread): after a SIGINT, any exception
    that escapes it (``KeyboardInterrupt``, or the error an interrupted rclpy call raised) means
    "stopped" and returns 0; SIGINT stays ignored until the interpreter exits. Without a SIGINT,
    exceptions propagate unchanged."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> int:
        signal.signal(signal.SIGINT, _on_sigint)  # before rclpy.init, which chains to it
        sys.unraisablehook = _quiet_half_built_tasks
        try:
            return main(*args, **kwargs)
        except KeyboardInterrupt:
            return 0
        except Exception:
            if _interrupted.is_set():
                return 0
            raise
        finally:
            ignore_sigint()

    return wrapper
