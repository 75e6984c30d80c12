"""Faults injected under a running exporter: it keeps answering, says which collector is sick, recovers.

The exporter reads a copied procfs tree (--path.procfs) and a small registry
store, with its growth history on a 64 KiB tmpfs, so every fault is made and
cleared by the test. For each one: /metrics answers within a second, the
affected collector's success reads 0 (or, where the source is optional, its
series go away), the others stay 1, and it recovers when the fault clears.
The hung collector and the clock going backwards are unit-level (sampler,
history, forecast).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from exporter.collectors import PartialReading
from exporter.forecast import Sample, forecast
from exporter.history import History
from exporter.sampler import Job, Sampler
from tests.integration.web_harness import LoggedExporter
from tests.standin_dtr import StandinDtr
from tests.support import require, unavailable, wait_for

PROC_FILES = ("meminfo", "vmstat", "stat", "diskstats", "pressure/cpu", "pressure/memory", "pressure/io",
              "self/mountinfo", "self/cgroup")
FAST = ("memory", "cpu", "filesystem", "diskio")


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    start = time.perf_counter()
    answer = requests.get(url + "/metrics", timeout=5)
    elapsed = time.perf_counter() - start
    assert answer.status_code == 200
    assert elapsed < 1.0, f"/metrics took {elapsed:.2f}s"
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(answer.text) for s in family.samples}


def success(metrics: dict, collector: str) -> float | None:
    return metrics.get(("dtr_exporter_collector_success", (("collector", collector),)))


def names(metrics: dict) -> set[str]:
    return {name for name, _ in metrics}


def make_store(root: Path, blobs: int = 5) -> None:
    v2 = root / "docker" / "registry" / "v2"
    for i in range(blobs):
        digest = f"{i:02x}" + "0" * 62
        (v2 / "blobs" / "sha256" / digest[:2] / digest).mkdir(parents=True)
        (v2 / "blobs" / "sha256" / digest[:2] / digest / "data").write_bytes(b"x" * (1000 + i))
    (v2 / "repositories" / "library" / "app" / "_layers").mkdir(parents=True)


def copy_proc(target: Path) -> None:
    for name in PROC_FILES:
        dest = target / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(Path("/proc", name).read_bytes())


@pytest.fixture(scope="module")
def tmpfs(tmp_path_factory):
    """A 4 MiB tmpfs for the state directory: small enough to fill, remountable read-only. Room for the
    scan's index (a page per prefix file: 1 MiB for a small store) and the garbage estimate's database."""
    require("mount")
    where = tmp_path_factory.mktemp("state")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        unavailable(f"cannot mount a tmpfs (the fault suite runs as root): {done.stderr.strip()}")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.fixture(scope="module")
def host(tmp_path_factory, tmpfs):
    base = tmp_path_factory.mktemp("host")
    proc, store = base / "proc", base / "store"
    make_store(store)
    copy_proc(proc)
    config = base / "exporter.yml"
    config.write_text("collectors:\n" + "".join(
        f"  {name}: {{interval: 200ms, timeout: 2s}}\n" for name in FAST) +
        "  storage: {interval: 300ms, timeout: 5s}\n")
    exporter = LoggedExporter("--config.file", str(config), "--path.procfs", str(proc), "--storage.path", str(store),
                              "--storage.state-dir", str(tmpfs), "--no-collector.pagecache", "--no-collector.traffic",
                              # its database, open for writing in the state directory, would make the read-only
                              # remount below fail as busy; the garbage estimate's own faults are in test_garbage.py
                              "--no-collector.garbage", log_path=base / "log")
    with exporter:
        wait_for(lambda: all(success(scrape(exporter.url), c) == 1 for c in (*FAST, "storage")),
                 timeout=15, what="every collector healthy")
        exporter.proc_root, exporter.store, exporter.state = proc, store, tmpfs
        yield exporter


def healthy_except(metrics: dict, *sick: str) -> None:
    for name in (*FAST, "storage"):
        if name not in sick:
            assert success(metrics, name) == 1, f"{name} was hurt by a fault in {sick}"


def fault_and_recover(host, collector: str, inject, clear, also: tuple[str, ...] = ()) -> dict:
    """Inject, wait for the collector (and those in ``also``, which read the same source) to read 0
    with the rest intact, clear, wait for all to read 1. Returns the sick scrape."""
    sick_ones = (collector, *also)
    inject()
    try:
        sick = wait_for(lambda: (m := scrape(host.url)) and all(success(m, c) == 0 for c in sick_ones) and m,
                        timeout=10, what=f"{sick_ones} success 0")
        healthy_except(sick, *sick_ones)
    finally:
        clear()
    wait_for(lambda: all(success(scrape(host.url), c) == 1 for c in sick_ones), timeout=10,
             what=f"{sick_ones} recovered")
    assert host.proc.poll() is None
    return sick


@pytest.mark.parametrize("name,collector,also,series", [
    ("meminfo", "memory", (), "dtr_memory_total_bytes"), ("vmstat", "memory", (), "dtr_memory_major_faults_total"),
    ("stat", "cpu", (), "dtr_cpu_seconds_total"), ("diskstats", "diskio", (), None),
    ("self/mountinfo", "filesystem", ("diskio", "storage"), "dtr_filesystem_size_bytes")])
def test_proc_file_in_an_unexpected_format(host, name, collector, also, series):
    path = host.proc_root / name
    original = path.read_bytes()
    sick = fault_and_recover(host, collector, lambda: path.write_text("what\tis this\n: format 12 kB kB\n"),
                             lambda: path.write_bytes(original), also)
    if series:
        assert series not in names(sick), "a file we could not parse must not give a number"
    assert series is None or series in names(scrape(host.url))


def test_pressure_absent_drops_pressure_series_not_the_collectors(host):
    """No /proc/pressure is a kernel without PSI (CONFIG_PSI=n or psi=0): a fact, not a fault."""
    pressure, gone = host.proc_root / "pressure", host.proc_root / "pressure.gone"
    assert "dtr_memory_pressure_seconds_total" in names(scrape(host.url))
    pressure.rename(gone)
    try:
        metrics = wait_for(lambda: (m := scrape(host.url)) and "dtr_memory_pressure_seconds_total" not in names(m)
                           and "dtr_cpu_pressure_seconds_total" not in names(m) and m, timeout=10,
                           what="pressure series gone")
        healthy_except(metrics)
        assert "dtr_memory_total_bytes" in names(metrics)
    finally:
        gone.rename(pressure)
    wait_for(lambda: "dtr_memory_pressure_seconds_total" in names(scrape(host.url)), timeout=10, what="PSI back")


def test_storage_path_removed(host):
    before = scrape(host.url)
    blobs = [v for (n, _), v in before.items() if n == "dtr_storage_blobs"]
    moved = host.store.with_name("store.moved")
    # filesystem and diskio measure the store's filesystem and device, so they lose it too
    sick = fault_and_recover(host, "storage", lambda: host.store.rename(moved), lambda: moved.rename(host.store),
                             also=("filesystem", "diskio"))
    docker_fs = [k for k in sick if k[0] == "dtr_filesystem_avail_bytes" and ("role", "docker") in k[1]]
    assert docker_fs, "the docker filesystem is still measured while the store is gone"
    after = scrape(host.url)
    assert [v for (n, _), v in after.items() if n == "dtr_storage_blobs"] == blobs


def test_symlink_loops_are_not_followed(host):
    prefix = host.store / "docker/registry/v2/blobs/sha256/00"
    loops = [prefix / "loop", host.store / "docker/registry/v2/repositories/library/app/self"]
    loops[0].symlink_to(prefix)
    loops[1].symlink_to("..")
    (prefix / "a").symlink_to(prefix / "b")
    (prefix / "b").symlink_to(prefix / "a")
    try:
        os.utime(prefix)
        for _ in range(10):
            metrics = scrape(host.url)
            healthy_except(metrics)
            assert [v for (n, _), v in metrics.items() if n == "dtr_storage_blobs"] == [5.0]
            time.sleep(0.1)
    finally:
        for link in (*loops, prefix / "a", prefix / "b"):
            link.unlink()


def test_thousands_of_entries_changing_during_scans(host):
    prefix = host.store / "docker/registry/v2/blobs/sha256/ff"
    stop = threading.Event()

    def churn():
        n = 0
        while not stop.is_set():
            digest = prefix / ("ff" + hashlib.sha256(str(n % 2000).encode()).hexdigest()[2:])  # real-looking
            if digest.exists():
                shutil.rmtree(digest, ignore_errors=True)
            else:
                digest.mkdir(parents=True, exist_ok=True)
                (digest / "data").write_bytes(b"y")
            n += 1
    worker = threading.Thread(target=churn)
    worker.start()
    try:
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            healthy_except(scrape(host.url))
            time.sleep(0.1)
    finally:
        stop.set()
        worker.join()
    expected = 5 + sum(1 for _ in prefix.glob("*/data"))
    wait_for(lambda: [v for (n, _), v in scrape(host.url).items() if n == "dtr_storage_blobs"] == [expected],
             timeout=20, what="blob count settles")
    shutil.rmtree(prefix)


def test_state_directory_full(host):
    filler = host.state / "filler"
    stop = threading.Event()

    def keep_full():
        """Fill the tmpfs, then take every page anything else frees (the scan index rewrites its files) until
        cleared, so that the history's next save cannot find one."""
        with open(filler, "wb", buffering=0) as f:
            while not stop.is_set():
                try:
                    f.write(b"\0" * 4096)
                except OSError:  # ENOSPC: full, as wanted; look again for freed pages shortly
                    stop.wait(0.005)

    keeper = threading.Thread(target=keep_full, daemon=True)

    def fill():
        for state in host.state.glob("storage-history-*.json"):
            state.unlink()
        keeper.start()

    def clear():
        stop.set()
        keeper.join()
        filler.unlink()

    sick = fault_and_recover(host, "storage", fill, clear)
    assert "dtr_storage_blobs" in names(sick), "the scan's numbers stand while the history cannot be saved"
    assert "cannot save storage history" in host.log()
    assert list(host.state.glob("storage-history-*.json"))


def test_state_directory_read_only(host):
    remount = lambda mode: subprocess.run(["mount", "-o", f"remount,{mode}", str(host.state)], check=True)  # noqa
    sick = fault_and_recover(host, "storage", lambda: remount("ro"), lambda: remount("rw"))
    assert "dtr_storage_blobs" in names(sick)


def test_corrupt_state_file_is_a_warning_and_is_replaced(tmp_path):
    store, state = tmp_path / "store", tmp_path / "state"
    make_store(store)
    state.mkdir()
    exporter_args = ("--storage.path", str(store), "--storage.state-dir", str(state), "--no-collector.pagecache",
                     "--no-collector.traffic")
    with LoggedExporter(*exporter_args, log_path=tmp_path / "log1") as first:
        wait_for(lambda: list(state.glob("storage-history-*.json")), timeout=15, what="a state file")
        assert success(scrape(first.url), "storage") == 1
    (state_file,) = state.glob("storage-history-*.json")
    state_file.write_bytes(b"{\"version\": 1, \"samples\": [[1, 2\x00\xff")
    with LoggedExporter(*exporter_args, log_path=tmp_path / "log2") as second:
        wait_for(lambda: success(scrape(second.url), "storage") == 1, timeout=15, what="storage healthy")
        assert "ignoring unreadable storage history" in second.log()
        wait_for(lambda: json.loads(state_file.read_text())["version"] == 1, timeout=15, what="state rewritten")


@pytest.mark.parametrize("mode", ["timeout", "500", "html", "huge", "wrong_json", "redirect_loop"])
def test_dtr_api_faults_under_a_running_exporter(tmp_path, mode):
    """The dtr_api collector measures the API: a broken API reads dtr_api_up 0 (the collector itself
    succeeded in finding that out), the scrape stays fast, the password never shows, it comes back."""
    with StandinDtr({"a1b2c3d4e5f6": "OK"}) as standin:
        config = tmp_path / "exporter.yml"
        config.write_text(json.dumps({"dtr": {"timeout": "1s"}, "collectors": {"dtr_api": {"interval": "300ms"}}}))
        env = {"DTR_PASSWORD": standin.password}
        with LoggedExporter("--config.file", str(config), "--dtr.url", standin.url, "--dtr.username",
                            standin.username, "--no-collector.docker", "--no-collector.storage",
                            "--no-collector.pagecache", "--no-collector.traffic", log_path=tmp_path / "log",
                            env=env) as exporter:
            up = lambda m: m.get(("dtr_api_up", ()))  # noqa: E731
            wait_for(lambda: up(scrape(exporter.url)) == 1, timeout=15, what="DTR API up")
            standin.mode = mode
            down = wait_for(lambda: (m := scrape(exporter.url)) and up(m) == 0 and m, timeout=15,
                            what=f"dtr_api_up 0 on {mode}")
            healthy_except(down, "storage")
            for _ in range(5):  # a hostile API never slows /metrics (scrape() asserts under a second)
                scrape(exporter.url)
            standin.mode = "ok"
            wait_for(lambda: up(scrape(exporter.url)) == 1, timeout=15, what="DTR API back")
            assert standin.password not in exporter.log() + requests.get(exporter.url + "/", timeout=5).text


@pytest.mark.parametrize("fault", ["socket missing", "dockerd silent"])
def test_docker_faults_under_a_running_exporter(tmp_path, fault):
    """An explicitly configured Docker socket that is missing, or a daemon that accepts and never answers
    (a hung dockerd): docker reads 0 within its timeout, the scrape stays fast, the rest intact. Killing
    and restarting a real dockerd, and the recovery, is in test_docker_dtr.py."""
    sock_path = tmp_path / "docker.sock"
    held: list[socket.socket] = []
    listener = None
    if fault == "dockerd silent":
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(str(sock_path))
        listener.listen(64)
        threading.Thread(target=lambda: [held.append(listener.accept()[0]) for _ in range(64)], daemon=True).start()
    config = tmp_path / "exporter.yml"
    config.write_text(json.dumps({"collectors": {"docker": {"interval": "500ms", "timeout": "2s"}}}))
    try:
        with LoggedExporter("--config.file", str(config), "--collector.docker", "--docker.host",
                            f"unix://{sock_path}", "--no-collector.storage", "--no-collector.pagecache",
                            "--no-collector.traffic", log_path=tmp_path / "log") as exporter:
            # the others start once discovery's first run has ended: wait for their first status too
            sick = wait_for(lambda: (m := scrape(exporter.url)) and success(m, "docker") == 0
                            and all(success(m, c) is not None for c in FAST) and m,
                            timeout=15, what="docker success 0 and a first status from the others")
            healthy_except(sick, "storage")
            for _ in range(10):
                healthy_except(scrape(exporter.url), "storage", "docker")
                time.sleep(0.1)
            assert "dtr_container_up" not in names(sick)
    finally:
        for conn in held:
            conn.close()
        if listener:
            listener.close()


# --- unit level: a hung collector, the clock going backwards ---------------------------------------

class Hanging:
    name = "hanging"

    def __init__(self):
        self.release = threading.Event()
        self.calls = 0

    def collect(self, found):
        self.calls += 1
        self.release.wait(30)
        return "late"


class Quick:
    name = "quick"

    def collect(self, found):
        return "fine"


def test_hung_collector_times_out_and_is_not_stacked():
    hanging = Hanging()
    sampler = Sampler({"hanging": Job(hanging, 0.1, 0.3), "quick": Job(Quick(), 0.1, 0.3)})
    try:
        start = time.monotonic()
        sampler.run_all()
        assert time.monotonic() - start < 1.0
        snap = sampler.snapshot()
        assert not snap.statuses["hanging"].ok and "timed out" in snap.statuses["hanging"].error
        assert snap.statuses["quick"].ok and snap.readings["quick"] == "fine"
        again = sampler.run("hanging")
        assert not again.ok and "still hung" in again.error and hanging.calls == 1  # no second thread piled on
        hanging.release.set()
        wait_for(lambda: sampler.run("hanging").ok, timeout=5, what="recovery once the source answers")
        assert sampler.snapshot().readings["hanging"] == "late"
    finally:
        hanging.release.set()
        sampler.stop()


def test_partial_reading_keeps_data_and_reads_failed():
    class Partly:
        def collect(self, found):
            raise PartialReading("half", "one mount unreadable")
    sampler = Sampler({"partly": Job(Partly(), 1, 1)})
    status = sampler.run("partly")
    sampler.stop()
    assert not status.ok and status.reading == "half" and "unreadable" in status.error


def test_clock_jumping_backwards_in_the_sampler():
    times = iter([1_000_000.0, 999_000.0, 999_500.0])
    sampler = Sampler({"quick": Job(Quick(), 1, 1)}, clock=lambda: next(times))
    try:
        stamps = [sampler.run("quick").last_success for _ in range(3)]
    finally:
        sampler.stop()
    assert stamps == [1_000_000.0, 999_000.0, 999_500.0]  # reported as the clock says, never a crash
    assert sampler.snapshot().statuses["quick"].ok


def test_clock_jumping_backwards_in_history_and_forecast(tmp_path):
    history = History(tmp_path, "store")
    for i in range(10):
        history.add(Sample(1_000_000.0 + i * 3600, 10**9 + i * 10**6, 50 * 10**9 - i * 10**6))
    history.add(Sample(1_000_000.0 + 5.5 * 3600, 10**9 + 6 * 10**6, 50 * 10**9 - 6 * 10**6))  # back 4.5 hours
    times = [s.time for s in history.samples]
    assert times == sorted(times) and times[-1] == 1_000_000.0 + 5.5 * 3600
    assert len(times) >= 6, "samples before the jump are kept"
    reloaded = History(tmp_path, "store")
    assert [s.time for s in reloaded.samples] == times
    fc = forecast(history.samples, 1_000_000.0 + 5.5 * 3600, 20 * 10**9)
    assert fc.growth_bytes_per_second is None or fc.growth_bytes_per_second >= 0
    assert fc.seconds_to_full is None or fc.seconds_to_full >= 0
    earlier = forecast(history.samples, 900_000.0, 20 * 10**9)  # "now" before every sample
    assert earlier.seconds_to_full is None or earlier.seconds_to_full >= 0
