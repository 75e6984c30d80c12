"""The sliding window behind the busy ratios."""

from __future__ import annotations

from exporter.window import Window


def test_one_sample_gives_no_delta():
    w = Window(60)
    w.add(0, (10.0,))
    assert w.delta() is None


def test_delta_spans_first_to_last_sample():
    w = Window(60)
    for t, c in ((0, (10.0, 1.0)), (15, (25.0, 4.0)), (30, (40.0, 9.0))):
        w.add(t, c)
    assert w.delta() == (30, (30.0, 8.0))


def test_old_samples_fall_out_of_the_span():
    w = Window(10)
    for t in (0, 5, 10, 15):
        w.add(t, (float(t),))
    # the oldest kept sample is the newest one at least ``span`` old: t=5, 10 s before t=15
    assert w.delta() == (10, (10.0,))


def test_counter_reset_starts_afresh():
    w = Window(60)
    w.add(0, (100.0,))
    w.add(10, (110.0,))
    w.add(20, (5.0,))  # the counter went down: a reboot or a replaced device
    assert w.delta() is None
    w.add(30, (8.0,))
    assert w.delta() == (10, (3.0,))


def test_time_that_does_not_move_forward_starts_afresh():
    w = Window(60)
    w.add(10, (1.0,))
    w.add(10, (2.0,))
    assert w.delta() is None


def test_a_change_in_the_number_of_counters_starts_afresh():
    w = Window(60)
    w.add(0, (1.0,))
    w.add(5, (2.0, 3.0))
    assert w.delta() is None
