"""Growth of the image store and the time until its filesystem runs short. Pure.

Method: a Theil-Sen slope (the median of the slopes between every pair of
samples) taken only over pairs that lie in the same *segment*, where the
history is cut into segments at every fall in the store's data bytes.

Why:
- A fall in data bytes only happens when something is deleted (garbage
  collection, a purged upload). A slope fitted across it would read the
  reclaimed space as "shrinking" and push the forecast out to infinity the
  day after every GC. Cutting at the fall keeps only the growth between
  collections, which is what fills the disk until the next one.
- A burst (one large push) is a step up. The median of pairwise slopes
  counts it at its average over the window instead of extrapolating its
  peak rate, and a single outlying sample moves a median very little.
- Small falls (under DROP of the store) do not cut: the median absorbs them.
- With a regular GC that reclaims part of each period's growth, the result is
  the gross growth between collections, not the net: the forecast is then
  conservative (when the disk fills if collections stopped reclaiming), which
  is the right bias for a warning.

The forecast divides the space left above the critical ``disk_free``
threshold by that growth: ``+Inf`` when the store is not growing, 0 when the
filesystem is already below the threshold. Samples later than ``now`` (the
clock went backwards) are ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

WINDOW = 7 * 86400.0  # growth is measured over the last week
MIN_SPAN = 600.0  # fewer than ten minutes of history says nothing about growth
MAX_POINTS = 240  # Theil-Sen is O(n^2): thin the window to this many samples
DROP = 0.002  # a smaller fall (a deleted tag, a purged upload) is noise for the median, not a cut


@dataclass(frozen=True)
class Sample:
    time: float  # Unix seconds
    data_bytes: int
    avail_bytes: int


@dataclass(frozen=True)
class Forecast:
    growth_bytes_per_second: float | None  # None: too little history
    seconds_to_full: float | None  # None: unknown; math.inf: not growing


def _thin(samples: list[Sample]) -> list[Sample]:
    if len(samples) <= MAX_POINTS:
        return samples
    step = (len(samples) - 1) / (MAX_POINTS - 1)
    return [samples[round(i * step)] for i in range(MAX_POINTS)]


def segments(samples: Sequence[Sample]) -> list[list[Sample]]:
    """Runs of samples in which the data bytes never fall by more than DROP of their level."""
    runs: list[list[Sample]] = []
    for s in samples:
        if runs and s.data_bytes >= runs[-1][-1].data_bytes * (1 - DROP):
            runs[-1].append(s)
        else:
            runs.append([s])
    return runs


def growth(samples: Sequence[Sample], now: float, window: float = WINDOW) -> float | None:
    """Bytes per second the store grows, or None with too little history."""
    recent = sorted((s for s in samples if now - window <= s.time <= now), key=lambda s: s.time)
    if len(recent) < 3 or recent[-1].time - recent[0].time < MIN_SPAN:
        return None
    slopes = []
    for run in segments(_thin(recent)):
        for i, a in enumerate(run):
            for b in run[i + 1:]:
                if b.time > a.time:
                    slopes.append((b.data_bytes - a.data_bytes) / (b.time - a.time))
    return _median(slopes) if slopes else 0.0


def _median(values: list[float]) -> float:
    # not statistics.median: its module brings decimal and fractions, 0.6 MiB resident for one sort
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def forecast(samples: Sequence[Sample], now: float, critical_free_bytes: float,
             window: float = WINDOW) -> Forecast:
    rate = growth(samples, now, window)
    current = [s for s in samples if s.time <= now]
    if rate is None or not current:
        return Forecast(rate, None)
    left = max(current, key=lambda s: s.time).avail_bytes - critical_free_bytes
    if left <= 0:
        return Forecast(rate, 0.0)
    if rate <= 0:
        return Forecast(rate, math.inf)
    return Forecast(rate, left / rate)
