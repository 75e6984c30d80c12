"""The sampler: runs each collector on its own interval and keeps the latest reading.

Every run happens on the collector's own worker thread and is waited for at
most ``timeout`` seconds. A run that raises or overruns marks the collector
failed; a run still hung is not started again until it returns (the way
node_exporter skips a stuck mount), so one bad source never piles up threads.
A scrape reads ``snapshot()``, which is a dictionary copy and nothing more.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from .collectors import PartialReading

log = logging.getLogger(__name__)
TRIM_AFTER = 1.0  # seconds: a run this long (a storage walk) leaves freed heap worth returning


def _trim_heap() -> None:
    """Give freed heap back to the system (glibc keeps it otherwise): a full scan's
    temporaries would stay in the resident size for the life of the process."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to do
        pass


@dataclass(frozen=True)
class Status:
    reading: Any  # None until a run succeeds, and after a run fails outright
    ok: bool
    error: str = ""
    duration: float = 0.0
    last_success: float | None = None  # wall-clock seconds


@dataclass(frozen=True)
class Snapshot:
    generation: int
    statuses: dict[str, Status]
    ready: bool

    @property
    def readings(self) -> dict[str, Any]:
        return {name: s.reading for name, s in self.statuses.items() if s.reading is not None}


def _start(name: str, collect: Callable[[], Any]) -> Future:
    """``collect()`` on a daemon thread: one hung on a dead mount must not keep the process from exiting
    (a ThreadPoolExecutor's workers are joined at interpreter exit, so SIGTERM would hang)."""
    future: Future = Future()

    def work() -> None:
        try:
            future.set_result(collect())
        except BaseException as err:  # handed to the waiting run(), which judges it
            future.set_exception(err)
    threading.Thread(target=work, name=f"collector-{name}", daemon=True).start()
    return future


@dataclass
class Job:
    collector: Any
    interval: float
    timeout: float


class Sampler:
    def __init__(self, jobs: dict[str, Job], clock: Callable[[], float] = time.time):
        self.jobs = jobs
        self.clock = clock
        self._lock = threading.Lock()
        self._statuses: dict[str, Status] = {}
        self._generation = 0
        self._pending: dict[str, Any] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def snapshot(self) -> Snapshot:
        with self._lock:
            statuses = dict(self._statuses)
            return Snapshot(self._generation, statuses, all(n in statuses for n in self.jobs))

    def _record(self, name: str, status: Status) -> None:
        with self._lock:
            self._statuses[name] = status
            self._generation += 1

    def run(self, name: str) -> Status:
        """One run of collector ``name``, bounded by its timeout; records and returns the status."""
        job = self.jobs[name]
        previous = self._statuses.get(name)
        last_success = previous.last_success if previous else None
        pending = self._pending.get(name)
        if pending is not None and not pending.done():
            status = Status(None, False, "previous run still hung", 0.0, last_success)
            self._record(name, status)
            return status
        start = time.monotonic()
        future = _start(name, job.collector.collect)
        self._pending[name] = future
        try:
            reading = future.result(timeout=job.timeout)
            status = Status(reading, True, "", time.monotonic() - start, self.clock())
        except FutureTimeout:
            status = Status(None, False, f"timed out after {job.timeout:g}s", job.timeout, last_success)
        except PartialReading as partial:
            status = Status(partial.reading, False, str(partial), time.monotonic() - start, last_success)
        except Exception as err:  # a collector's fault must never reach the server
            status = Status(None, False, f"{type(err).__name__}: {err}", time.monotonic() - start, last_success)
        if not status.ok:
            log.warning("collector failed", extra={"collector": name, "err": status.error})
        self._record(name, status)
        if status.duration >= TRIM_AFTER:
            _trim_heap()
        return status

    def run_all(self, names: Iterable[str] | None = None) -> None:
        """Every collector (or those ``names``) once, concurrently; returns when all have finished or timed out."""
        threads = [threading.Thread(target=self.run, args=(n,), daemon=True)
                   for n in (self.jobs if names is None else names)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def _loop(self, name: str) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.run(name)
            self._stop.wait(max(0.0, self.jobs[name].interval - (time.monotonic() - started)))

    def start(self) -> None:
        for name in self.jobs:
            thread = threading.Thread(target=self._loop, args=(name,), name=f"sampler-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
