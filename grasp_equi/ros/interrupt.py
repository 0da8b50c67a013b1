"""Stop a ROS process on Ctrl-C once, cleanly: exit code 0, no traceback.

Under ``ros2 launch`` a node often receives SIGINT twice: launch forwards one to each
process, and a terminal's Ctrl-C reaches the whole process group as well. The first one
ends ``spin()``; a second one used to raise ``KeyboardInterrupt`` inside the clean-up
(``worker.join``, ``destroy_node``) and the process exited with -2 and a traceback.
Console scripts therefore wrap ``main`` in ``exits_quietly_on_interrupt`` and call
``ignore_sigint()`` as their clean-up begins.
"""

from __future__ import annotations

import functools
import signal
from typing import Callable


def ignore_sigint() -> None:
    """Ignore SIGINT from here on (the process is already shutting down). SIGTERM still works."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def exits_quietly_on_interrupt(main: Callable[..., int]) -> Callable[..., int]:
    """Wrap a console script's ``main``: a ``KeyboardInterrupt`` that escapes it (one that
    lands before its clean-up ignores SIGINT) returns 0, and SIGINT stays ignored until the
    interpreter exits."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> int:
        try:
            return main(*args, **kwargs)
        except KeyboardInterrupt:
            return 0
        finally:
            ignore_sigint()

    return wrapper
