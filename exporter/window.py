"""A sliding window over counter samples, for ratios such as CPU busy."""

from __future__ import annotations

from collections import deque


class Window:
    """Keeps ``(time, counters)`` samples spanning at most ``span`` seconds.

    ``delta()`` gives the elapsed time and the counters' increase across the
    window. A counter that goes down (a reset) or a time that does not move
    forward starts the window afresh, so a ratio is never negative.
    """

    def __init__(self, span: float):
        self.span = span
        self._samples: deque[tuple[float, tuple[float, ...]]] = deque()

    def add(self, now: float, counters: tuple[float, ...]) -> None:
        if self._samples:
            last_time, last = self._samples[-1]
            if now <= last_time or len(last) != len(counters) or any(c < p for c, p in zip(counters, last)):
                self._samples.clear()
        self._samples.append((now, counters))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.span:
            self._samples.popleft()

    def delta(self) -> tuple[float, tuple[float, ...]] | None:
        if len(self._samples) < 2:
            return None
        (t0, first), (t1, last) = self._samples[0], self._samples[-1]
        return t1 - t0, tuple(b - a for a, b in zip(first, last))
