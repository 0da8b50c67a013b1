"""argparse ``type=`` checkers shared by the subcommands (standard library only, so ``--help`` is fast).

Each raises ``argparse.ArgumentTypeError`` with a short reason; argparse prefixes the option's
name and exits with status 2 after printing the subcommand's usage.
"""

from __future__ import annotations

import argparse
import re

_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")


def device(text: str) -> str:
    """``auto | cpu | cuda | cuda:N | mps``; anything else is refused before torch is loaded."""
    value = text.strip().lower()
    if not _DEVICE.match(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device (use auto, cpu, cuda or cuda:N)")
    return value


def _number(kind, text: str, low: float, inclusive: bool):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    if value < low or (value == low and not inclusive):
        raise argparse.ArgumentTypeError(f"must be {'>=' if inclusive else '>'} {low:g}; got {text}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1."""
    return _number(int, text, 1, True)


def nonneg_int(text: str) -> int:
    """An integer >= 0."""
    return _number(int, text, 0, True)


def positive_float(text: str) -> float:
    """A finite number > 0."""
    return _number(float, text, 0.0, False)


def nonneg_float(text: str) -> float:
    """A finite number >= 0."""
    return _number(float, text, 0.0, True)


def unit_fraction(text: str) -> float:
    """A number in [0, 1]."""
    value = nonneg_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1; got {text}")
    return value
