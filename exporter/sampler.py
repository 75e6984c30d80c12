"""The sampler: runs each collector on its own interval and keeps the latest reading.

Every run happens on the collector's own worker thread and is waited for at
most ``timeout`` seconds. A run that raises or overruns marks the collector
failed; a run still hung is not started again until it returns (the way
node_exporter skips a stuck mount), so one bad source never piles up threads.
A scrape reads ``snapshot()``, which is a dictionary copy and nothing more.

Order in ``start()``: the discoverers (collectors.DISCOVERERS) run first;
every other collector starts when their first runs have ended (read or
failed), so its first reading already sees the store and the DTR processes
Docker or DTR name, as ``check``'s single pass does.

What they found reaches the others as one immutable ``collectors.Found``:
each run gets ``found()``, the configured value over each discoverer's latest
finding (lower rank first, so the DTR API's driver wins over Docker's); a
discoverer is handed what the others found, not its own last finding. A
failed discoverer run leaves its last finding standing. When a discoverer's
run changes ``Found.store()``, each store-facing collector
(collectors.STORE_FACING) is woken to run again right away (after its
current run, if one is going), not an interval later. The snapshot is ready
once every collector has a first status: read, partly read or failed.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable

from . import procfs
from .collectors import DISCOVERERS, NOTHING, STORE_FACING, Found, PartialReading

log = logging.getLogger(__name__)
TRIM_AFTER = 1.0  # seconds: a run this long leaves freed heap worth returning


def _trim_heap() -> None:
    """Give freed heap back to the system (glibc keeps it otherwise): a full scan's
    temporaries would stay in the resident size for the life of the process."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to do
        pass


def worth_trimming(name: str, duration: float) -> bool:
    """After a long run, or any run of a store-facing collector: those free what they held per change (names,
    rows, log lines) however short the run, and it would linger until the next long run. A trim costs well
    under a millisecond."""
    return duration >= TRIM_AFTER or name in STORE_FACING


@dataclass(frozen=True)
class Status:
    # None until a run succeeds, and after a run fails outright (timeout, exception) unless
    # the collector sets ``keep_last_reading``: then the last reading stands and its own
    # timestamps age, which is what a staleness alert needs
    reading: Any
    ok: bool
    error: str = ""
    duration: float = 0.0
    last_success: float | None = None  # wall-clock seconds


@dataclass(frozen=True)
class Snapshot:
    generation: int
    statuses: dict[str, Status]
    ready: bool
    pending: tuple[str, ...] = ()  # enabled collectors without a first status yet
    parse_errors: dict[str, int] = field(default_factory=dict)  # file -> lines skipped since start

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
    def __init__(self, jobs: dict[str, Job], clock: Callable[[], float] = time.time, given: Found = NOTHING):
        """``given``: what configuration says before any discovery (the storage path)."""
        self.jobs = jobs
        self.clock = clock
        self._given = given
        self._found_by: dict[str, Found] = {}  # discoverer -> its latest finding
        self._lock = threading.Lock()
        self._statuses: dict[str, Status] = {}
        self._generation = 0
        self._pending: dict[str, Any] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._wake = {name: threading.Event() for name in jobs}
        self._seen_store = given.store()
        self._undiscovered = {name for name in DISCOVERERS if name in jobs}  # first runs still to come
        self._discovered = threading.Event()
        if not self._undiscovered:
            self._discovered.set()

    def snapshot(self) -> Snapshot:
        with self._lock:
            statuses = dict(self._statuses)
            pending = tuple(n for n in self.jobs if n not in statuses)
            return Snapshot(self._generation, statuses, not pending, pending, procfs.PARSE_ERRORS.counts())

    def found(self, exclude: str | None = None) -> Found:
        """What is known: the configured value over the discoverers' findings (but ``exclude``'s)."""
        with self._lock:
            return self._given.over(*(self._found_by[n] for n in DISCOVERERS if n in self._found_by and n != exclude))

    def _record(self, name: str, status: Status) -> None:
        with self._lock:
            self._statuses[name] = status
            self._generation += 1

    def run(self, name: str) -> Status:
        """One run of collector ``name``, bounded by its timeout; records and returns the status."""
        job = self.jobs[name]
        previous = self._statuses.get(name)
        status = self._attempt(name, job, previous.last_success if previous else None)
        if status.reading is None and previous is not None and getattr(job.collector, "keep_last_reading", False):
            status = replace(status, reading=previous.reading)
        if not status.ok:
            log.warning("collector failed", extra={"collector": name, "err": status.error})
        self._record(name, status)
        if name in DISCOVERERS:
            self._discovery_ran(name, getattr(status.reading, "found", None))
        if worth_trimming(name, status.duration):
            _trim_heap()
        return status

    def _attempt(self, name: str, job: Job, last_success: float | None) -> Status:
        pending = self._pending.get(name)
        if pending is not None and not pending.done():
            return Status(None, False, "previous run still hung", 0.0, last_success)
        start = time.monotonic()
        found = self.found(exclude=name)
        future = _start(name, lambda: job.collector.collect(found))
        self._pending[name] = future
        try:
            reading = future.result(timeout=job.timeout)
            return Status(reading, True, "", time.monotonic() - start, self.clock())
        except FutureTimeout:
            return Status(None, False, f"timed out after {job.timeout:g}s", job.timeout, last_success)
        except PartialReading as partial:
            return Status(partial.reading, False, str(partial), time.monotonic() - start, last_success)
        except Exception as err:  # a collector's fault must never reach the server
            return Status(None, False, f"{type(err).__name__}: {err}", time.monotonic() - start, last_success)

    def _discovery_ran(self, name: str, found: Found | None) -> None:
        """After a discoverer's run: keep what it found; wake the store-facing collectors if the store changed."""
        if found is not None:
            with self._lock:
                self._found_by[name] = found
        store = self.found().store()
        with self._lock:
            self._undiscovered.discard(name)
            changed, self._seen_store = store != self._seen_store, store
            first_pass_done = not self._undiscovered
        if changed:
            followers = sorted(n for n in self.jobs if n in STORE_FACING)
            log.info("store changed: its collectors run now", extra={"found_by": name, "rerun": ",".join(followers)})
            for follower in followers:
                self._wake[follower].set()
        if first_pass_done:
            self._discovered.set()

    def run_all(self, names: Iterable[str] | None = None) -> None:
        """Every collector (or those ``names``) once, concurrently; returns when all have finished or timed out."""
        threads = [threading.Thread(target=self.run, args=(n,), daemon=True)
                   for n in (self.jobs if names is None else names)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def _loop(self, name: str) -> None:
        if name not in DISCOVERERS:
            self._discovered.wait()  # a first reading should see what discovery finds
        wake = self._wake[name]
        while not self._stop.is_set():
            started = time.monotonic()
            wake.clear()  # from here on a wake-up (the store changed mid-run) means one more run at once
            self.run(name)
            wake.wait(max(0.0, self.jobs[name].interval - (time.monotonic() - started)))

    def start(self) -> None:
        for name in self.jobs:
            thread = threading.Thread(target=self._loop, args=(name,), name=f"sampler-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        self._discovered.set()
        for wake in self._wake.values():
            wake.set()
