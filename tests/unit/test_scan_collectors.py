"""The storage-facing collectors' edges: no path, a wrong path, ids, traffic parsing, progress, exposition."""

from __future__ import annotations

import io
import os
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from exporter import progress
from exporter.collectors import DEFAULTS, Context, Found
from exporter.collectors.pagecache import PagecacheCollector
from exporter.collectors.storage import StorageCollector
from exporter.collectors.traffic import TrafficCollector, parse_net_dev, parse_registry_metrics
from exporter.config import Config
from exporter.exposition import to_text
from exporter.sampler import Job, Sampler
from exporter.sizing import UNKNOWN, evaluate
from exporter.storage_id import storage_id
from tests.registry import disk_tmp  # noqa: F401 (the fixture: tmpfs pages cannot be dropped)
from tests.support import require, wait_for


def ctx(**settings) -> Context:
    return Context(config=Config(**settings))


def at(path) -> Found:
    """What the sampler hands a collector when the store is at ``path``."""
    return Found(storage_path=Path(path))


def test_no_storage_path_is_a_reading_that_says_so():
    reading = StorageCollector(ctx()).collect()
    assert reading.storage is None and "no storage path" in reading.detail
    cache = PagecacheCollector(ctx(registry_process_names=[])).collect()
    assert cache.resident_bytes is None
    verdicts = evaluate({"storage": reading, "pagecache": cache}, Config().thresholds_in_force())
    assert {v.state for v in verdicts if v.check in ("storage_forecast", "page_cache_hit_ratio")} == {UNKNOWN}


def test_path_set_later_by_discovery_is_followed(tmp_path):
    context = ctx()
    storage = StorageCollector(context)
    assert storage.collect().storage is None
    (tmp_path / "docker/registry/v2/blobs/sha256/ab/abcdef0123456789").mkdir(parents=True)
    (tmp_path / "docker/registry/v2/blobs/sha256/ab/abcdef0123456789/data").write_bytes(b"12345")
    assert storage.collect(at(tmp_path)).blob_bytes == 5


def test_a_directory_that_is_not_a_store_fails_the_collector(tmp_path):
    (tmp_path / "something-else").write_text("x")
    sampler = Sampler({"storage": Job(StorageCollector(ctx()), 60, 10)}, given=at(tmp_path))
    status = sampler.run("storage")
    assert not status.ok and "no docker/registry/v2" in status.error


def test_unwritable_state_dir_is_partial_not_fatal(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("")
    (tmp_path / "store").mkdir()
    sampler = Sampler({"storage": Job(StorageCollector(ctx(state_dir=str(blocked / "x"))), 60, 10)},
                      given=at(tmp_path / "store"))
    status = sampler.run("storage")
    assert not status.ok and "cannot save" in status.error
    assert status.reading is not None and status.reading.blobs == 0  # the numbers still stand


def test_scan_index_lives_in_the_state_dir_and_concurrency_is_passed(tmp_path):
    for i in range(40):
        digest = f"{i:02x}" + "0" * 62
        (tmp_path / f"store/docker/registry/v2/blobs/sha256/{digest[:2]}/{digest}").mkdir(parents=True)
        (tmp_path / f"store/docker/registry/v2/blobs/sha256/{digest[:2]}/{digest}/data").write_bytes(b"ab")
    storage = StorageCollector(ctx(state_dir=str(tmp_path / "state"), scan_concurrency=3))
    reading = storage.collect(at(tmp_path / "store"))
    assert reading.blobs == 40 and storage._scanner.concurrency == 3
    history, = (tmp_path / "state").glob("storage-history-*.json")
    index = history.with_name(history.stem.replace("history", "index"))
    assert len(list(index.iterdir())) == 40
    assert index.with_name(index.name + ".inotify").is_dir()  # the new digests' names, beside it


def test_storage_id_of_nfs_and_bind_mounts(tmp_path):
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    store = tmp_path / "mnt" / "registry"
    store.mkdir(parents=True)
    (proc / "self" / "mountinfo").write_text(
        "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n"
        f"2 1 0:99 /exports/dtr {tmp_path}/mnt rw - nfs4 filer.example:/vol rw,vers=4.2\n")
    assert storage_id(store, proc) == "nfs:filer.example:/vol/exports/dtr/registry"
    # a second replica mounting the same export elsewhere reports the same id
    other = tmp_path / "elsewhere" / "registry"
    other.mkdir(parents=True)
    (proc / "self" / "mountinfo").write_text(
        "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n"
        f"2 1 0:98 /exports/dtr {tmp_path}/elsewhere rw - nfs4 filer.example:/vol/ rw\n")
    assert storage_id(other, proc) == "nfs:filer.example:/vol/exports/dtr/registry"


def test_storage_id_of_a_local_filesystem(tmp_path):
    sid = storage_id(tmp_path, Path("/proc"))
    assert sid.startswith(("uuid:", "dev:")) and sid.endswith(str(tmp_path))


def test_registry_metrics_and_net_dev_parsing():
    text = ('# TYPE registry_http_response_size_bytes histogram\n'
            'registry_http_response_size_bytes_bucket{handler="blob",le="+Inf"} 3\n'
            'registry_http_response_size_bytes_sum{handler="blob"} 1.5e+06\n'
            'registry_http_response_size_bytes_sum{handler="manifest"} 2000\n'
            'registry_http_request_size_bytes_sum{handler="blob_upload"} 4096\n')
    assert parse_registry_metrics(text) == (1_502_000.0, 4096.0)
    net = ("Inter-|   Receive |  Transmit\n face |bytes packets|bytes\n"
           "    lo: 100 1 0 0 0 0 0 0 100 1 0 0 0 0 0 0\n"
           "  eth0: 5000 10 0 0 0 0 0 0 9000 20 0 0 0 0 0 0\n")
    assert parse_net_dev(net) == (9000, 5000)
    with pytest.raises(ValueError):
        parse_net_dev(net + "  bad line\n")


def test_registry_metrics_with_timestamps_escapes_and_comments():
    """The exposition format allows a timestamp after the value and any text in a quoted label value."""
    text = ('# HELP registry_http_response_size_bytes The HTTP response sizes in bytes.\n'
            '# TYPE registry_http_response_size_bytes histogram\n'
            'registry_http_response_size_bytes_bucket{handler="blob",le="1024"} 1 1700000000000\n'
            'registry_http_response_size_bytes_bucket{handler="blob",le="+Inf"} 3 1700000000000\n'
            'registry_http_response_size_bytes_sum{handler="blob"} 1.5e+06 1700000000000\n'
            'registry_http_response_size_bytes_count{handler="blob"} 3 1700000000000\n'
            '# a comment that is neither HELP nor TYPE\n'
            'registry_http_response_size_bytes_sum{handler="odd \\"name\\" {x} \\\\ y",code="200"} 2000\n'
            '\n'
            '# TYPE registry_http_request_size_bytes summary\n'
            'registry_http_request_size_bytes{handler="blob_upload",quantile="0.5"} 9\n'
            'registry_http_request_size_bytes_sum{handler="blob_upload"}   4096   \n'
            'registry_http_request_size_bytes_count{handler="blob_upload"} 1\n'
            'go_goroutines 12\n')
    assert parse_registry_metrics(text) == (1_502_000.0, 4096.0)
    with pytest.raises(ValueError):
        parse_registry_metrics('registry_http_response_size_bytes_sum{handler="blob" 12\n')


def test_traffic_from_a_container_network_namespace(tmp_path):
    """A process in its own network namespace (unshare -n) has its own counters."""
    unshare = require("unshare")
    sleeper = subprocess.Popen([unshare, "-n", "sleep", "30"])
    try:
        pid = sleeper.pid
        ns = Path(f"/proc/{pid}/ns/net")
        deadline = time.monotonic() + 10
        while os.readlink(ns) == os.readlink("/proc/self/ns/net") and time.monotonic() < deadline:
            time.sleep(0.05)  # unshare has not switched yet
        reading = TrafficCollector(ctx(registry_process_names=[], registry_pids=[pid])).collect()
        assert reading.source == "netns" and reading.served_bytes == 0  # a fresh namespace: only lo
        none = TrafficCollector(ctx(registry_process_names=[], registry_pids=[os.getpid()])).collect()
        assert none.source == "none" and none.served_bytes is None
    finally:
        sleeper.kill()
        sleeper.wait()


class Slow:
    name = "storage"

    def __init__(self):
        self.progress = 0

    def collect(self, found):
        for _ in range(30):
            self.progress += 1000
            time.sleep(0.05)
        return None


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_progress_line_only_on_a_terminal(monkeypatch):
    monkeypatch.setattr(progress, "DELAY", 0.1)
    monkeypatch.setattr(progress, "EVERY", 0.1)
    sampler = Sampler({"storage": Job(Slow(), 60, 10)})
    tty, pipe = Tty(), io.StringIO()
    with progress.shown(sampler, tty):
        sampler.run("storage")
    assert "entries examined" in tty.getvalue() and tty.getvalue().endswith("\r\033[K")
    with progress.shown(sampler, pipe):
        sampler.run("storage")
    assert pipe.getvalue() == ""
    assert not [t for t in threading.enumerate() if t.name == "scan-progress"]


def test_exposition_passes_promtool(tmp_path):
    store = tmp_path / "docker/registry/v2/blobs/sha256/ab/abcdef0123456789"
    store.mkdir(parents=True)
    (store / "data").write_bytes(b"x" * 100)
    sampler = Sampler({"storage": Job(StorageCollector(ctx()), 60, 10),
                       "pagecache": Job(PagecacheCollector(ctx(registry_process_names=[])), 60, 10),
                       "traffic": Job(TrafficCollector(ctx(registry_process_names=[])), 60, 10)},
                      given=at(tmp_path))
    sampler.run_all()
    snapshot = sampler.snapshot()
    text = to_text(snapshot, evaluate(snapshot.readings, Config().thresholds_in_force()))
    assert b'dtr_storage_blob_bytes{storage="' in text and b"dtr_storage_page_cache_bytes" in text
    checked = subprocess.run([require("promtool"), "check", "metrics"], input=text, capture_output=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_page_cache_sample_draws_each_digest_alike_from_a_streamed_listing(tmp_path):
    """The files measured in a big prefix are drawn while it is listed (reservoir sampling): each equally
    likely, and never the whole listing in memory (40,000 paths, 8 MiB, at 10M blobs, every minute)."""
    import random
    import tracemalloc
    from collections import Counter

    from exporter.collectors.pagecache import PER_PREFIX
    small = tmp_path / "small"
    for i in range(PER_PREFIX // 16):
        (small / f"d{i}").mkdir(parents=True)
    (small / "a-file").write_bytes(b"")  # not a digest directory: neither drawn nor counted
    collector = PagecacheCollector(ctx(registry_process_names=[]))
    collector._random = random.Random(3)
    chosen, listed = collector._choose(str(small))
    assert listed == PER_PREFIX // 16 and sorted(chosen) == sorted(str(small / f"d{i}") for i in range(listed))
    assert collector._choose(str(tmp_path / "gone")) == ([], 0)
    big = tmp_path / "big"
    for i in range(8 * PER_PREFIX):
        (big / f"d{i}").mkdir(parents=True)
    drawn = Counter()
    for _ in range(200):
        chosen, listed = collector._choose(str(big))
        assert listed == 8 * PER_PREFIX and len(set(chosen)) == PER_PREFIX
        drawn.update(chosen)
    assert len(drawn) == 8 * PER_PREFIX  # 200 draws of an eighth: every one drawn (expected 25 times each)
    assert max(drawn.values()) < 60 and min(drawn.values()) > 5  # none favoured: 25 +- 5 binomial sd
    huge = tmp_path / "huge"
    for i in range(20000):
        (huge / f"{i:064x}").mkdir(parents=True)
    tracemalloc.start()
    try:
        chosen, listed = collector._choose(str(huge))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (len(chosen), listed) == (PER_PREFIX, 20000)
    assert peak < 300_000, peak  # the whole listing's paths: about 4 MB


def test_sampled_page_cache_estimate_is_within_its_error(disk_tmp, monkeypatch):
    """2000 blobs, a third of them read into the cache; a small sample must land within 4 standard errors."""
    import hashlib
    import random

    from exporter.collectors import pagecache
    monkeypatch.setattr(pagecache, "SAMPLE_FILES", 300)
    monkeypatch.setattr(pagecache, "PER_PREFIX", 4)
    cached = 0
    for i in range(2000):
        hexa = hashlib.sha256(str(i).encode()).hexdigest()
        blob = disk_tmp / "docker/registry/v2/blobs/sha256" / hexa[:2] / hexa
        blob.mkdir(parents=True)
        (blob / "data").write_bytes(b"x" * 8192)
        fd = os.open(blob / "data", os.O_RDONLY)
        os.fdatasync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
        if i % 3 == 0:
            (blob / "data").read_bytes()
            cached += 8192
    collector = PagecacheCollector(ctx(registry_process_names=[]))
    collector._random = random.Random(7)  # a fixed sample: the test cannot flake
    reading = collector.collect(at(disk_tmp))
    assert 0 < reading.sampled_ratio < 1
    assert reading.resident_error_bytes > 0
    assert abs(reading.resident_bytes - cached) <= 4 * reading.resident_error_bytes
    assert abs(reading.resident_bytes - cached) <= 0.3 * cached


# ---- the sampler: discovery first, the store followed at once, ready only when measured

class Finder:
    """A discoverer (named like the docker collector) that names a store from ``paths``, one per run."""

    def __init__(self, paths: list[Path], delay: float = 0.3):
        self.paths, self.delay, self.last = iter(paths), delay, None

    def collect(self, found):
        time.sleep(self.delay)  # a Docker listing and stats take about a second
        self.last = next(self.paths, self.last)
        return Discovered(at(self.last))


@dataclass(frozen=True)
class Discovered:
    found: Found


def one_blob_store(root: Path, size: int) -> Path:
    blob = root / "docker/registry/v2/blobs/sha256/ab/ab0123456789"
    blob.mkdir(parents=True)
    (blob / "data").write_bytes(b"x" * size)
    return root


def following(context: Context, finder, interval: float = 3600) -> Sampler:
    """storage on its default interval, docker on ``interval``, as cli.build wires them."""
    storage_interval, storage_timeout = DEFAULTS["storage"][1:3]
    return Sampler({"docker": Job(finder, interval, 10),
                    "storage": Job(StorageCollector(context), storage_interval, storage_timeout)})


def blob_bytes(sampler: Sampler) -> int | None:
    return getattr(sampler.snapshot().readings.get("storage"), "blob_bytes", None)


def test_a_store_found_after_start_is_walked_at_once_not_an_interval_later(tmp_path):
    context = ctx(state_dir=str(tmp_path / "state"))
    store = one_blob_store(tmp_path / "store", 5)
    sampler = following(context, Finder([store]))
    assert DEFAULTS["storage"][1] >= 300  # the interval the old first run waited out
    sampler.start()
    try:
        assert not sampler.snapshot().ready and "storage" in sampler.snapshot().pending
        wait_for(lambda: blob_bytes(sampler) == 5, timeout=3, what="the discovered store counted")
        assert sampler.snapshot().ready
    finally:
        sampler.stop()


def test_a_store_that_changes_is_walked_again_at_once(tmp_path):
    context = ctx(state_dir=str(tmp_path / "state"))
    first, second = one_blob_store(tmp_path / "a", 5), one_blob_store(tmp_path / "b", 7)
    sampler = following(context, Finder([first] * 4 + [second]), interval=0.5)
    sampler.start()
    try:
        wait_for(lambda: blob_bytes(sampler) == 5, timeout=3, what="the first store counted")
        # the store moves about 2 s after start; the storage interval is 300 s
        wait_for(lambda: blob_bytes(sampler) == 7, timeout=6, what="the second store counted after the move")
    finally:
        sampler.stop()


class Walk:
    """A first walk of a large store: returns when released."""

    def __init__(self):
        self.release = threading.Event()

    def collect(self, found):
        self.release.wait(10)
        return "walked"


class Quick:
    def collect(self, found):
        return "read"


def test_a_short_run_of_a_store_facing_collector_gives_freed_heap_back(monkeypatch):
    """A rescan's names or a garbage pass's rows would otherwise stay resident until the next long run."""
    from exporter import sampler as sampling
    trims = []
    monkeypatch.setattr(sampling, "_trim_heap", lambda: trims.append(1))
    sampler = Sampler({"storage": Job(Quick(), 300, 10), "memory": Job(Quick(), 300, 10)})
    sampler.run("memory")
    assert trims == []  # a quick host collector: nothing worth a trim
    sampler.run("storage")
    assert trims == [1]


def test_ready_waits_for_a_first_walk_still_running():
    walk = Walk()
    sampler = Sampler({"storage": Job(walk, 300, 60), "memory": Job(Quick(), 300, 10)})
    sampler.start()
    try:
        wait_for(lambda: "memory" in sampler.snapshot().statuses, timeout=3, what="the quick collector read")
        assert sampler.snapshot().pending == ("storage",) and not sampler.snapshot().ready
        walk.release.set()
        wait_for(lambda: sampler.snapshot().ready, timeout=3, what="ready once the walk ended")
    finally:
        sampler.stop()


def test_a_failed_scan_keeps_the_last_scan_published_so_its_age_shows(tmp_path):
    store = one_blob_store(tmp_path / "store", 5)
    sampler = Sampler({"storage": Job(StorageCollector(ctx(state_dir=str(tmp_path / "state"))), 300, 60)},
                      given=at(store))
    done = sampler.run("storage")
    assert done.ok and done.reading.scan_timestamp_seconds > 0
    os.rename(store, tmp_path / "moved")  # the volume went away under the exporter
    failed = sampler.run("storage")
    assert not failed.ok and "no docker/registry/v2" in failed.error
    assert failed.reading is done.reading and failed.last_success == done.last_success
    snapshot = sampler.snapshot()
    text = to_text(snapshot, evaluate(snapshot.readings, Config().thresholds_in_force())).decode()
    stamp = f'dtr_storage_scan_timestamp_seconds{{storage="{done.reading.storage}"}} '
    assert stamp in text and float(text.split(stamp)[1].split()[0]) == done.reading.scan_timestamp_seconds
    assert 'dtr_exporter_collector_success{collector="storage"} 0.0' in text


class Finding:
    """A discoverer that says ``says`` (or fails when it is None) and keeps what it was handed."""

    def __init__(self, says: Found | None):
        self.says, self.handed = says, []

    def collect(self, found):
        self.handed.append(found)
        if self.says is None:
            raise OSError("socket gone")
        return Discovered(self.says)


def test_found_merges_configuration_then_the_api_then_docker(tmp_path):
    api = Finding(Found(storage_driver="s3", replicas=("r1", "r2")))
    docker = Finding(Found(storage_path=tmp_path / "volume", storage_driver="filesystem", replica_id="r1"))
    follower = Finding(Found())
    sampler = Sampler({"dtr_api": Job(api, 60, 10), "docker": Job(docker, 60, 10), "cpu": Job(follower, 60, 10)},
                      given=at(tmp_path / "configured"))
    for name in ("dtr_api", "docker", "cpu"):
        sampler.run(name)
    assert follower.handed[-1] == Found(tmp_path / "configured", "s3", "r1", ("r1", "r2"))
    # a discoverer is handed what the others found, not its own last finding
    assert docker.handed[-1] == Found(tmp_path / "configured", "s3", None, ("r1", "r2"))
    docker.says = None  # a failed run leaves the last finding standing
    assert not sampler.run("docker").ok
    assert sampler.found() == follower.handed[-1]
