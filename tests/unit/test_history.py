"""The growth history's state file: survives restarts, never crashes on a bad file or directory."""

from __future__ import annotations

import json
import os

from exporter.forecast import Sample
from exporter.history import MAX_SAMPLES, MIN_GAP, History


def test_survives_a_restart(tmp_path):
    h = History(tmp_path, "uuid:1234:/var/lib/registry")
    for i in range(5):
        h.add(Sample(1000.0 + 120 * i, i * 10, 500))
    again = History(tmp_path, "uuid:1234:/var/lib/registry")
    assert again.samples == h.samples and len(again.samples) == 5
    assert History(tmp_path, "uuid:other:/").samples == []  # one file per store
    assert [p.name for p in tmp_path.iterdir()] == [h.path.name]  # no temporary file left behind


def test_corrupt_file_is_a_warning(tmp_path):
    h = History(tmp_path, "s")
    for body in ("{not json", json.dumps({"version": 99, "samples": []}), json.dumps({"version": 1}),
                 json.dumps({"version": 1, "samples": [["x", 1, 2]]}), json.dumps([1, 2])):
        h.path.write_text(body)
        broken = History(tmp_path, "s")
        assert broken.samples == [] and broken.warning
        broken.add(Sample(5000.0, 1, 2))  # and the next save repairs it
        assert History(tmp_path, "s").samples == [Sample(5000.0, 1, 2)]


def test_unwritable_directory_keeps_the_history_in_memory(tmp_path):
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    h = History(blocked / "state", "s")
    h.add(Sample(1000.0, 1, 2))
    h.add(Sample(2000.0, 2, 2))
    assert len(h.samples) == 2 and "cannot save" in h.warning


def test_clock_going_backwards_drops_the_future(tmp_path):
    h = History(tmp_path, "s")
    for t in (1000.0, 2000.0, 3000.0):
        h.add(Sample(t, int(t), 0))
    h.add(Sample(1500.0, 7, 0))  # the clock was set back
    assert [s.time for s in h.samples] == [1000.0, 1500.0]


def test_bounded(tmp_path):
    h = History(None, "s")
    for i in range(MAX_SAMPLES + 500):
        h.add(Sample(i * (MIN_GAP + 1), i, 0))
    assert len(h.samples) <= MAX_SAMPLES
    assert h.samples[-1].data_bytes == MAX_SAMPLES + 499
    close = History(None, "s")
    close.add(Sample(0.0, 1, 0))
    close.add(Sample(1.0, 2, 0))  # within a minute: replaces
    assert close.samples == [Sample(1.0, 2, 0)]


def test_readonly_state_file_directory(tmp_path):
    if os.geteuid() == 0:
        return  # root writes anyway; the unwritable case above covers the path
    tmp_path.chmod(0o500)
    h = History(tmp_path, "s")
    h.add(Sample(1.0, 1, 1))
    assert h.warning
