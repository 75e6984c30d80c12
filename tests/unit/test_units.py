"""Sizes, durations and ratios as people write them, and as the report prints them."""

from __future__ import annotations

import math

import pytest

from exporter import units


@pytest.mark.parametrize("text, size", [
    ("4GB", 4 * 10**9), ("4 GB", 4 * 10**9), ("4gb", 4 * 10**9), ("4G", 4 * 10**9), ("4GiB", 4 * 2**30),
    ("4 GiB", 4 * 2**30), ("512MiB", 512 * 2**20), ("1.5GB", 1_500_000_000), ("2TB", 2 * 10**12),
    ("1Ki", 1024), ("100", 100), (" 7 b ", 7), (4096, 4096), (30e9, 30 * 10**9), (0, 0)])
def test_parse_size(text, size):
    assert units.parse_size(text) == size


@pytest.mark.parametrize("bad", ["-4GB", "4XB", "GB", "4 G B", "", "1e9", True, None, [4], -1, math.inf, math.nan])
def test_parse_size_refuses(bad):
    with pytest.raises(ValueError):
        units.parse_size(bad)


def test_parse_size_message_says_what_is_accepted():
    with pytest.raises(ValueError, match=r"4GB \(10\^9\), 4GiB \(2\^30\)"):
        units.parse_size("four gigs")


@pytest.mark.parametrize("text, seconds", [
    ("15s", 15), ("5m", 300), ("1h30m", 5400), ("7d", 604800), ("100ms", 0.1), ("1w", 604800), (" 2h ", 7200),
    (90, 90.0), (0.5, 0.5)])
def test_parse_duration(text, seconds):
    assert units.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["1h 30m", "5x", "m", "", "-5s", -1, True, None, math.inf])
def test_parse_duration_refuses(bad):
    with pytest.raises(ValueError):
        units.parse_duration(bad)


@pytest.mark.parametrize("text, ratio", [("90%", 0.9), ("0.9", 0.9), (0.1, 0.1), (1, 1.0), ("0%", 0.0), (" 5% ", 0.05)])
def test_parse_ratio(text, ratio):
    assert units.parse_ratio(text) == pytest.approx(ratio)


@pytest.mark.parametrize("bad", ["150%", "1.5", -0.1, "-10%", "ninety", True, None])
def test_parse_ratio_refuses(bad):
    with pytest.raises(ValueError):
        units.parse_ratio(bad)


@pytest.mark.parametrize("value, text", [
    (30 * 10**9, "30 GB"), (2 * 10**12, "2 TB"), (3.8 * 2**30, "3.8 GiB"), (25 * 2**30, "25.0 GiB"),
    (4 * 2**30 * 0.9, "3.6 GiB"), (1536, "1.5 KiB"), (512, "512 B"), (None, "None"), (math.inf, "inf")])
def test_format_bytes(value, text):
    assert units.format_bytes(value) == text


@pytest.mark.parametrize("value, text", [
    (math.inf, "never"), (None, "never"), (12.5 * 86400, "12.5 days"), (7200, "2.0 hours"), (90, "1.5 minutes"),
    (30, "30 s")])
def test_format_duration(value, text):
    assert units.format_duration(value) == text
