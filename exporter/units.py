"""Parsing and printing of the sizes, durations and ratios people write.

Sizes follow IEC/SI: ``GB`` is 10**9 bytes, ``GiB`` is 2**30 bytes, a bare
number is bytes. Durations use Prometheus' units (``ms s m h d w y``).
Ratios accept ``0.9`` or ``90%``.
"""

from __future__ import annotations

import math
import re

_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
    "t": 10**12, "tb": 10**12, "p": 10**15, "pb": 10**15,
    "ki": 2**10, "kib": 2**10, "mi": 2**20, "mib": 2**20, "gi": 2**30, "gib": 2**30,
    "ti": 2**40, "tib": 2**40, "pi": 2**50, "pib": 2**50,
}
_SIZE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_DURATION_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d|w|y)")


def parse_size(value: object) -> int:
    """Bytes from ``4GB``, ``4 GiB``, ``512MiB`` or a plain number of bytes."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 4GB, 4GiB or a number of bytes")
    if isinstance(value, (int, float)):
        if value < 0 or not math.isfinite(value):
            raise ValueError("a size cannot be negative")
        return int(value)
    if isinstance(value, str):
        match = _SIZE_RE.match(value)
        if match and match.group(2).lower() in _SIZE_UNITS:
            return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])
    raise ValueError(f"{value!r} is not a size: write e.g. 4GB (10^9), 4GiB (2^30) or bytes")


def parse_duration(value: object) -> float:
    """Seconds from ``15s``, ``5m``, ``1h30m``, ``7d`` or a plain number of seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 15s, 5m or 7d")
    if isinstance(value, (int, float)):
        if value < 0 or not math.isfinite(value):
            raise ValueError("a duration cannot be negative")
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        parts = _DURATION_RE.findall(text)
        if parts and "".join(n + u for n, u in parts) == text:
            return sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
    raise ValueError(f"{value!r} is not a duration: write e.g. 15s, 5m, 1h or 7d")


def parse_ratio(value: object) -> float:
    """A ratio in 0..1 from ``0.9`` or ``90%``."""
    if isinstance(value, bool):
        raise ValueError("expected a ratio such as 0.9 or 90%")
    number: float | None = None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            number = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            number = None
    if number is None or not 0 <= number <= 1:
        raise ValueError(f"{value!r} is not a ratio: write a number from 0 to 1 or a percentage")
    return number


def format_bytes(value: float) -> str:
    """``3.8 GiB`` style, for people."""
    if value is None or not math.isfinite(value):
        return str(value)
    for unit, scale in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6)):
        if abs(value) >= scale and value % (scale // 10) == 0:  # a round SI size, as configured
            return f"{value / scale:g} {unit}"
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(value) >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value:.0f} B"


def format_duration(seconds: float) -> str:
    """``12.5 days`` style, for people."""
    if seconds is None or math.isinf(seconds):
        return "never"
    for unit, scale in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if abs(seconds) >= scale:
            return f"{seconds / scale:.1f} {unit}"
    return f"{seconds:.0f} s"
