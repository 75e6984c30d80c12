"""Growth and time-to-full on synthetic histories. Tolerance: 2 % on rates and times unless stated."""

from __future__ import annotations

import math
import random
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.forecast import Sample, _median, forecast, growth, segments

DAY = 86400.0
GB = 10**9
NOW = 1_800_000_000.0
CRITICAL = 20 * GB


def history(rate: float, days: float = 3, step: float = 600, start_bytes: int = 100 * GB,
            avail_now: int = 120 * GB, noise: float = 0.0, seed: int = 1):
    """Samples every ``step`` seconds up to NOW; available space falls as data grows."""
    rnd = random.Random(seed)
    n = int(days * DAY / step)
    out = []
    for i in range(n + 1):
        t = NOW - (n - i) * step
        data = start_bytes + rate * (t - (NOW - n * step)) + rnd.gauss(0, noise)
        out.append(Sample(t, int(data), int(avail_now - (data - (start_bytes + rate * n * step)))))
    return out


def test_linear_growth():
    rate = 5 * GB / DAY
    fc = forecast(history(rate), NOW, CRITICAL)
    assert fc.growth_bytes_per_second == pytest.approx(rate, rel=0.02)
    assert fc.seconds_to_full == pytest.approx(100 * GB / rate, rel=0.02)  # 20 days


def test_linear_growth_with_noise_and_a_burst():
    rate = 5 * GB / DAY
    samples = history(rate, noise=50e6)
    burst = len(samples) // 2  # one 30 GB push half-way: counted at its average over the window
    samples = samples[:burst] + [Sample(s.time, s.data_bytes + 30 * GB, s.avail_bytes) for s in samples[burst:]]
    got = growth(samples, NOW)
    assert rate < got < rate + 2 * 30 * GB / (3 * DAY)  # not extrapolated from the burst's own rate
    assert growth(history(rate, noise=50e6), NOW) == pytest.approx(rate, rel=0.02)


def test_growth_with_a_gc_drop():
    rate = 5 * GB / DAY
    samples = history(rate)
    cut = len(samples) * 2 // 3  # GC reclaims 40 GB two days in
    samples = samples[:cut] + [Sample(s.time, s.data_bytes - 40 * GB, s.avail_bytes + 40 * GB)
                               for s in samples[cut:]]
    assert len(segments(samples)) == 2
    fc = forecast(samples, NOW, CRITICAL)
    assert fc.growth_bytes_per_second == pytest.approx(rate, rel=0.02)
    assert fc.seconds_to_full == pytest.approx(140 * GB / rate, rel=0.02)
    # a plain Theil-Sen over the whole window would read a GC every day as no growth at all
    daily = [Sample(s.time, s.data_bytes - int((s.time - samples[0].time) // DAY) * 5 * GB, s.avail_bytes)
             for s in history(rate)]
    assert len(segments(daily)) == 4  # days 0, 1, 2 and the sample at the third midnight
    assert growth(daily, NOW) == pytest.approx(rate, rel=0.02)
    pairs = [(b.data_bytes - a.data_bytes) / (b.time - a.time)
             for i, a in enumerate(daily[::8]) for b in daily[::8][i + 1:]]
    assert sorted(pairs)[len(pairs) // 2] < 0.5 * rate


def test_flat_store_is_not_growing():
    fc = forecast(history(0.0), NOW, CRITICAL)
    assert fc.growth_bytes_per_second == 0
    assert fc.seconds_to_full == math.inf


def test_shrinking_store_is_not_growing():
    fc = forecast(history(-GB / DAY), NOW, CRITICAL)
    assert fc.growth_bytes_per_second <= 0
    assert fc.seconds_to_full == math.inf


def test_already_below_the_threshold_is_zero():
    fc = forecast(history(GB / DAY, avail_now=10 * GB), NOW, CRITICAL)
    assert fc.seconds_to_full == 0


def test_too_little_history_is_unknown():
    assert forecast([], NOW, CRITICAL).seconds_to_full is None
    short = [Sample(NOW - 60 * i, 100 * GB + i, 50 * GB) for i in range(5)]  # four minutes
    assert forecast(short, NOW, CRITICAL) == forecast(short, NOW, CRITICAL)
    assert forecast(short, NOW, CRITICAL).growth_bytes_per_second is None


def test_clock_going_backwards():
    rate = 5 * GB / DAY
    samples = history(rate)
    # the clock was set back a day: samples "from the future" are ignored, the rest still answer
    earlier = NOW - DAY
    fc = forecast(samples, earlier, CRITICAL)
    assert fc.growth_bytes_per_second == pytest.approx(rate, rel=0.02)
    assert fc.seconds_to_full is not None and fc.seconds_to_full > 0
    # duplicate and out-of-order times do not divide by zero
    jumbled = samples[::-1] + samples[:10]
    assert forecast(jumbled, NOW, CRITICAL).growth_bytes_per_second == pytest.approx(rate, rel=0.02)


@given(st.lists(st.floats(-1e12, 1e12), min_size=1, max_size=40))
def test_the_median_of_slopes_is_the_textbook_median(values):
    assert _median(values) == statistics.median(values)
