"""The storage scanner on synthetic stores: full walks, incremental rescans, faults."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from exporter import scan
from exporter.scan import Scanner, Throttle, resolve_v2
from tests.support import inotify_queue, push_digests, unavailable

ROOT = Path(__file__).resolve().parents[2]


def add_blob(v2: Path, seed: str, size: int) -> Path:
    hexa = hashlib.sha256(seed.encode()).hexdigest()
    blob = v2 / "blobs" / "sha256" / hexa[:2] / hexa
    blob.mkdir(parents=True)
    (blob / "data").write_bytes(b"x" * size)
    return blob


@pytest.fixture
def v2(tmp_path) -> Path:
    root = tmp_path / "docker" / "registry" / "v2"
    for i in range(300):
        add_blob(root, f"blob{i}", i)
    for repo in ("a", "a/b/c", "lib/x"):  # "a" is a repository and holds the nested a/b/c
        (root / "repositories" / repo / "_manifests").mkdir(parents=True)
    return root


class LaterClock:
    """Scans run 'later' than the files were written, so no prefix counts as racily new."""

    def __init__(self):
        self.offset = 10.0

    def __call__(self) -> float:
        self.offset += 10.0
        return time.time() + self.offset


def fresh(v2: Path):
    return Scanner(v2).scan(full=True)


def same(a, b) -> bool:
    return (a.blobs, a.blob_bytes, a.repositories, a.errors) == (b.blobs, b.blob_bytes, b.repositories, b.errors)


def test_full_walk_counts(v2):
    result = fresh(v2)
    assert (result.blobs, result.blob_bytes, result.repositories) == (300, sum(range(300)), 3)
    assert result.errors == 0


def test_storage_path_forms(tmp_path, v2):
    assert resolve_v2(tmp_path) == v2
    assert resolve_v2(v2) == v2
    assert resolve_v2(tmp_path / "docker") is None  # neither the root nor v2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert Scanner(resolve_v2(empty)).scan().blobs == 0


def test_incremental_rescan_lists_only_changed_prefixes_and_agrees(v2):
    scanner = Scanner(v2, clock=LaterClock())
    first = scanner.scan()
    assert first.full and first.prefixes_changed == len(list((v2 / "blobs/sha256").iterdir()))
    again = scanner.scan()
    assert not again.full and again.prefixes_changed == 0 and again.files_examined == 0
    assert same(again, first)

    new = add_blob(v2, "added", 1000)  # add
    gone = next(p for p in (v2 / "blobs/sha256").glob("*/*") if p.parent != new.parent)
    shutil.rmtree(gone)  # delete, as garbage collection does
    rescan = scanner.scan()
    assert rescan.prefixes_changed == 2
    assert same(rescan, fresh(v2))
    assert rescan.blobs == 300
    # only the new digest and the prefix that lost one were examined, not the whole store
    assert rescan.files_examined <= 1 + len(list(gone.parent.iterdir()))

    added = [add_blob(v2, f"more{i}", 10) for i in range(20)]
    more = scanner.scan()
    assert more.files_examined == len(added)  # inotify named them: nothing else was stat-ed
    assert same(more, fresh(v2))

    # corrupt: a digest directory without data, a stray file, a symlink posing as a blob
    (v2 / "blobs/sha256/00/00deadbeef").mkdir(parents=True, exist_ok=True)
    (v2 / "blobs/sha256/01").mkdir(exist_ok=True)
    (v2 / "blobs/sha256/01/stray").write_bytes(b"junk")
    outside = v2.parent / "outside"
    outside.mkdir()
    (outside / "data").write_bytes(b"y" * 5000)
    (v2 / "blobs/sha256/02").mkdir(exist_ok=True)
    os.symlink(outside, v2 / "blobs/sha256/02/02linked")
    os.symlink(v2 / "blobs", v2 / "blobs/sha256/03loop")  # a symlink loop is not followed either
    corrupt = scanner.scan()
    assert same(corrupt, fresh(v2))
    assert corrupt.blobs == 320 and corrupt.errors == 0


def test_without_inotify_changed_prefixes_are_listed(v2):
    scanner = Scanner(v2, clock=LaterClock())
    scanner._journal.close()  # as on NFS or with no inotify watches left
    scanner._journal = None
    scanner.scan()
    for i in range(10):
        add_blob(v2, f"late{i}", 1)
    gone = next((v2 / "blobs/sha256").glob("*/*"))
    shutil.rmtree(gone)
    rescan = scanner.scan()
    assert same(rescan, fresh(v2)) and rescan.blobs == 309


def test_digest_directory_without_data_yet_is_counted_once_its_data_lands(v2):
    scanner = Scanner(v2, clock=LaterClock())
    scanner.scan()
    hexa = hashlib.sha256(b"in flight").hexdigest()
    flight = v2 / "blobs/sha256" / hexa[:2] / hexa
    flight.mkdir(parents=True)
    assert scanner.scan().blobs == 300
    (flight / "data").write_bytes(b"12345")  # the registry moves the data in after the mkdir
    landed = scanner.scan()
    assert landed.blobs == 301 and same(landed, fresh(v2))


def test_in_place_change_is_caught_by_the_periodic_full_walk(v2):
    clock = LaterClock()
    scanner = Scanner(v2, verify_every=15.0, clock=clock)  # each scan is 10 s after the last
    scanner.scan()
    data = next((v2 / "blobs/sha256").glob("*/*/data"))
    size = data.stat().st_size
    data.write_bytes(b"z" * (size + 7))  # the registry never does this; a disk fault might
    assert scanner.scan().blob_bytes == sum(range(300))  # the prefix did not change: not seen yet
    verified = scanner.scan()
    assert verified.full and verified.blob_bytes == sum(range(300)) + 7


def test_racy_prefix_is_listed_again(v2):
    scanner = Scanner(v2)  # real clock: everything was just written
    scanner.scan()
    add_blob(v2, "same tick", 3)
    assert scanner.scan().blobs == 301


def test_vanishing_files_mid_scan_are_not_errors(v2, monkeypatch):
    victims = sorted((v2 / "blobs/sha256").glob("*/*"))[:20]
    real_stat = os.stat

    def stat_then_vanish(path, *args, **kwargs):
        if str(path).endswith("/data") and victims and Path(path).parent == victims[0]:
            shutil.rmtree(victims.pop(0))  # the blob disappears between listing and stat
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat_then_vanish)
    result = Scanner(v2).scan()
    assert result.errors == 0
    monkeypatch.undo()
    assert same(result, fresh(v2))


def test_unreadable_subtree_is_counted_not_fatal(tmp_path, v2):
    """As an unprivileged user (root reads everything), two unreadable prefix directories."""
    if os.geteuid() != 0:
        unavailable("needs root to switch to the nobody user")
    os.chmod(tmp_path, 0o755)
    for parent in tmp_path.parents:
        if parent != Path("/") and parent.stat().st_mode & 0o005 != 0o005:
            os.chmod(parent, parent.stat().st_mode | 0o005)
    prefixes = sorted((v2 / "blobs/sha256").iterdir())
    for p in prefixes[:2]:
        p.chmod(0o000)
    hidden = sum(len(list(p.iterdir())) for p in prefixes[:2])
    script = ("import sys; from pathlib import Path; from exporter.scan import Scanner; "
              "r = Scanner(Path(sys.argv[1])).scan(); print(r.blobs, r.errors)")
    # the venv's interpreter may sit under /root; the system one runs the stdlib-only scanner
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    done = subprocess.run([python, "-c", script, str(v2)], user="nobody", group="nogroup", extra_groups=[],
                          cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={"PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"})
    assert done.returncode == 0, done.stderr
    blobs, errors = map(int, done.stdout.split())
    assert (blobs, errors) == (300 - hidden, 2)


def test_throttle_holds_the_rate():
    slept = []
    throttle = Throttle(1000.0, sleep=slept.append)
    throttle.tick(640)
    assert slept and slept[0] == pytest.approx(0.64, abs=0.05)
    unlimited = Throttle(0.0, sleep=slept.append)
    unlimited.tick(6400)
    assert len(slept) == 1


def test_throttled_scan_takes_at_least_files_over_rate(v2):
    started = time.monotonic()
    Scanner(v2, rate=1000.0).scan()
    assert time.monotonic() - started >= 0.25  # 300 blobs at 1000/s, checked every 64 files


def test_known_digests_stay_sorted_and_complete_across_rescans(v2):
    scanner = Scanner(v2, clock=LaterClock())
    scanner.scan()
    for round_ in range(5):
        for i in range(40):
            add_blob(v2, f"round{round_}-{i}", i)
        result = scanner.scan()
        assert same(result, fresh(v2))
    for path, prefix in scanner._prefixes.items():
        keys = scanner._index.read(path, prefix.check)
        records = [keys[i:i + 8] for i in range(0, len(keys), 8)]
        merged = records[:prefix.merged]  # the rest were appended by rescans, to be merged in later
        assert merged == sorted(merged) and len(set(records)) == len(records) == prefix.blobs
    # nothing new: nothing examined
    assert scanner.scan().files_examined == 0

    ab, merges = v2 / "blobs/sha256/ab", []
    for round_ in range(4):  # 120 more in one prefix: appended twice, then merged into one sorted file
        for i in range(30):
            name = "ab" + hashlib.sha256(f"ab{round_}-{i}".encode()).hexdigest()[2:]
            (ab / name).mkdir(parents=True)
            (ab / name / "data").write_bytes(b"q")
        result = scanner.scan()
        assert same(result, fresh(v2)) and result.files_examined == 30
        prefix = scanner._prefixes[str(ab)]
        keys = scanner._index.read(str(ab), prefix.check)
        records = [keys[i:i + 8] for i in range(0, len(keys), 8)]
        assert len(set(records)) == len(records) == prefix.blobs
        assert records[:prefix.merged] == sorted(records[:prefix.merged])
        merges.append(prefix.merged == prefix.blobs)
    assert merges[0] is False and True in merges  # appended first, merged once past 64 appended


def generated(root: Path, blobs: int) -> Path:
    """A store of ``blobs`` blobs, a few digest directories still without data and some stray entries."""
    v2 = root / "docker" / "registry" / "v2"
    for i in range(blobs):
        add_blob(v2, f"gen{i}", i % 97)
    for i in range(7):  # pushes in flight
        hexa = hashlib.sha256(f"flight{i}".encode()).hexdigest()
        (v2 / "blobs/sha256" / hexa[:2] / hexa).mkdir(parents=True, exist_ok=True)
    (v2 / "blobs/sha256/0a/stray").write_bytes(b"junk")
    (v2 / "repositories/lib/x/_manifests").mkdir(parents=True)
    return v2


def counts(result) -> tuple:
    return result.blobs, result.blob_bytes, result.repositories, result.errors


def test_concurrent_walk_counts_as_the_sequential_one(tmp_path, monkeypatch):
    v2 = generated(tmp_path, 3000)
    unreadable = sum(1 for p in (v2 / "blobs/sha256").glob("*/*/data") if p.parent.name[:3] in ("abc", "123", "fed"))
    real_stat = os.stat

    def flaky(path, *args, **kwargs):  # a few data files that cannot be read: errors, same in both walks
        if str(path).endswith("/data") and Path(path).parent.name[:3] in ("abc", "123", "fed"):
            raise PermissionError(13, "denied", str(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", flaky)
    threads = set()
    real_measure = Scanner._measure

    def measure(self, *args):
        threads.add(threading.current_thread().name)
        return real_measure(self, *args)

    monkeypatch.setattr(Scanner, "_measure", measure)
    one = Scanner(v2, concurrency=1).scan()
    alone = set(threads)
    many = Scanner(v2, concurrency=8).scan()
    assert len(threads - alone) > 1  # several workers did measure
    assert counts(many) == counts(one) and many.errors > 0 and many.files_examined == one.files_examined
    assert one.blobs == 3000 - unreadable and one.errors == unreadable


def test_a_walks_summaries_are_made_once_its_workers_are_done(tmp_path, monkeypatch):
    """Made on a worker, a summary lands among the walk's temporaries and keeps their heap resident once they
    are freed (about 2 MiB after a full scan of 1M blobs, docs/performance.md)."""
    v2 = generated(tmp_path, 2000)
    made, real = {}, scan.Prefix

    def traced(*args, **kwargs):
        prefix = real(*args, **kwargs)
        made[id(prefix)] = prefix, threading.current_thread().name  # kept: no id is reused
        return prefix

    monkeypatch.setattr(scan, "Prefix", traced)
    scanner = Scanner(v2, concurrency=4)
    assert scanner.scan().blobs == 2000
    assert any(name.startswith("scan") for _, name in made.values())  # the workers measured
    assert {made[id(p)][1] for p in scanner._prefixes.values()} == {threading.current_thread().name}


@pytest.mark.parametrize("prefix", [
    scan.Prefix((2**64 - 1, -1, 2**63 - 1), 7, 2**50, 2, 2**32 - 1, 5, ("abc", "def"), True),
    scan.Prefix(None, 0, 0, 1),
    scan.Prefix((1, 2, 3), 1, 1, 0, 0, 1),
    None,
])
def test_summaries_held_as_numbers_come_back_the_same(prefix):
    packed = scan._Packed(3)
    packed.put(1, prefix)
    assert packed.get(1) == prefix and packed.get(0) is None


def test_concurrent_rescans_agree_after_pushes_and_deletes(tmp_path):
    v2 = generated(tmp_path, 2000)
    scanner = Scanner(v2, clock=LaterClock(), concurrency=8)
    scanner.scan()
    for i in range(300):
        add_blob(v2, f"push{i}", 5)
    for gone in sorted((v2 / "blobs/sha256").glob("*/*"))[::97]:
        shutil.rmtree(gone)
    for landed in (v2 / "blobs/sha256").glob("*/*"):
        if not (landed / "data").exists() and landed.is_dir():
            (landed / "data").write_bytes(b"late")  # the pushes in flight land
    rescan = scanner.scan()
    assert counts(rescan) == counts(Scanner(v2, concurrency=1).scan(full=True))


class FakeTime:
    """A clock that moves only when slept, so a throttled walk's length is files / rate exactly."""

    def __init__(self):
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_rate_is_held_across_all_workers(tmp_path, monkeypatch):
    v2 = generated(tmp_path, 2000)
    fake, threads = FakeTime(), set()

    class Observed(Throttle):
        def tick(self, n: int = 1) -> None:
            threads.add(threading.current_thread().name)
            super().tick(n)

    monkeypatch.setattr(scan, "Throttle", lambda rate: Observed(rate, sleep=fake.sleep, clock=fake.clock))
    result = Scanner(v2, rate=500.0, concurrency=8).scan()
    assert len(threads) > 2
    # each check sleeps until files done / rate: at most 64 files are ahead of the schedule at the end
    assert (result.files_examined - 64) / 500.0 <= fake.now <= result.files_examined / 500.0


def test_missing_or_corrupt_index_files_make_that_prefix_measured_in_full(v2):
    scanner = Scanner(v2, clock=LaterClock())
    scanner.scan()
    prefixes = sorted(scanner._prefixes)
    lost, corrupt, stale = (scanner._index.path(p) for p in prefixes[:3])
    lost.unlink()
    corrupt.write_bytes(corrupt.read_bytes()[:-3])
    stale.write_bytes(bytes(len(stale.read_bytes())))  # the right length, the wrong keys
    added = []
    for i in range(2000):  # a new blob in each of the three prefixes
        hexa = hashlib.sha256(f"n{i}".encode()).hexdigest()
        if hexa[:2] in [Path(p).name for p in prefixes[:3]] and hexa[:2] not in [a.parent.name for a in added]:
            added.append(add_blob(v2, f"n{i}", 11))
    assert len(added) == 3
    sizes = {Path(p).name: len(list(Path(p).iterdir())) for p in prefixes[:3]}
    rescan = scanner.scan()
    assert same(rescan, fresh(v2)) and rescan.blobs == 303
    assert rescan.files_examined == sum(sizes.values())  # those three in full, nothing else
    for p in prefixes[:3]:  # written again, whole
        assert len(scanner._index.read(p, scanner._prefixes[p].check)) == 8 * scanner._prefixes[p].blobs


def test_scanner_memory_holds_no_per_blob_keys(tmp_path):
    v2 = generated(tmp_path, 20000)
    scanner = Scanner(v2, clock=LaterClock())
    scanner.scan()
    for i in range(200):
        add_blob(v2, f"grown{i}", 1)
    assert scanner.scan().blobs == 20200
    for prefix in scanner._prefixes.values():  # a summary is a few numbers, whatever the prefix holds
        assert all(not isinstance(v, (bytes, bytearray, list, set, dict)) or len(v) <= 8 for v in vars(prefix).values())
    held = sum(sys.getsizeof(v) for p in scanner._prefixes.values() for v in vars(p).values())
    assert held < 256 * 400  # bytes; 20k blobs of 8-byte keys alone would be 160 kB
    index = sum(f.stat().st_size for f in scanner._index.directory.iterdir())
    assert index == 8 * 20200  # the keys are on disk instead


def test_a_push_bigger_than_the_kernels_event_queue_is_named_not_listed(tmp_path, monkeypatch):
    """A 1 % push at 10M blobs is 100,000 new digests, past the kernel's queue (16,384 by default): read as
    they come, their names spare the listing of every prefix (33 s at 10M)."""
    queue = inotify_queue()
    v2 = tmp_path / "v2"
    push_digests(v2, 0, 256)  # every prefix known
    scanner = Scanner(v2, clock=LaterClock())
    assert scanner.scan().blobs == 256
    pushed = queue + 2000
    push_digests(v2, 256, pushed)

    def listed(*args):
        raise AssertionError("a prefix was listed")
    monkeypatch.setattr(scan, "_unknown", listed)
    monkeypatch.setattr(scanner, "_full", listed)
    rescan = scanner.scan()
    assert (rescan.blobs, rescan.files_examined, rescan.errors) == (256 + pushed, pushed, 0)
    monkeypatch.undo()
    assert same(rescan, fresh(v2))


def test_names_that_cannot_be_read_back_make_their_prefix_listed(v2, monkeypatch):
    scanner = Scanner(v2, clock=LaterClock())
    scanner.scan()
    for i in range(10):
        add_blob(v2, f"lost{i}", 3)
    monkeypatch.setattr(scan.inotify.Batch, "created", lambda self, path: None)  # its file gone
    rescan = scanner.scan()
    assert same(rescan, fresh(v2)) and rescan.blobs == 310


def test_a_push_past_the_inotify_limit_relists_each_prefix_streamed(tmp_path, monkeypatch):
    """More new blobs than inotify's limit (100,000 at 1 % of 10M) make every prefix listed again; the
    listing is compared name by name with the index, never held whole with a set of its keys."""
    import tracemalloc
    v2 = tmp_path / "v2"
    prefix = v2 / "blobs/sha256/00"
    for i in range(20000):  # one prefix as big as one of 5M blobs
        (prefix / f"00{i:014x}{'e' * 48}").mkdir(parents=True)
        (prefix / f"00{i:014x}{'e' * 48}" / "data").write_bytes(b"x")
    scanner = Scanner(v2, clock=LaterClock())
    assert scanner.scan().blobs == 20000
    monkeypatch.setattr(scan.inotify, "MAX_NAMES", 10)
    for i in range(30):
        (prefix / f"01{i:014x}{'e' * 48}").mkdir()
        (prefix / f"01{i:014x}{'e' * 48}" / "data").write_bytes(b"yy")
    tracemalloc.start()
    try:
        rescan = scanner.scan()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (rescan.blobs, rescan.blob_bytes, rescan.files_examined) == (20030, 20030 + 30, 30)
    assert peak < 1_000_000, peak  # a listing of 20,000 names and a set of their keys: about 4 MB
    for i in range(30):  # again: the index now ends in the 30 keys appended unsorted, still only 30 stat-ed
        (prefix / f"02{i:014x}{'e' * 48}").mkdir()
        (prefix / f"02{i:014x}{'e' * 48}" / "data").write_bytes(b"zzz")
    rescan = scanner.scan()
    assert (rescan.blobs, rescan.blob_bytes, rescan.files_examined) == (20060, 20000 + 2 * 30 + 3 * 30, 30)
    for i in range(30):  # and past the limit with a blob gone: that prefix is measured again in full
        (prefix / f"03{i:014x}{'e' * 48}").mkdir()
        (prefix / f"03{i:014x}{'e' * 48}" / "data").write_bytes(b"vvvv")
    shutil.rmtree(prefix / f"00{7:014x}{'e' * 48}")
    rescan = scanner.scan()
    assert (rescan.blobs, rescan.blob_bytes) == (20089, 19999 + 2 * 30 + 3 * 30 + 4 * 30)
    assert rescan.files_examined >= 20089
    assert same(rescan, fresh(v2))


def test_index_in_the_state_directory_and_private_one_removed(tmp_path, v2):
    state = tmp_path / "state" / "storage-index-x"
    scanner = Scanner(v2, index_dir=state)
    scanner.scan()
    assert len(list(state.iterdir())) == len(scanner._prefixes)
    private = Scanner(v2)
    private.scan()
    where = private._index.directory
    assert where.is_dir() and where.name.startswith("dtr-sizing-exporter-")
    private.close()
    assert not where.exists()
    blocked = tmp_path / "file"
    blocked.write_text("")
    fallback = Scanner(v2, index_dir=blocked / "index")
    assert "cannot create" in fallback.warning and same(fallback.scan(), fresh(v2))
    fallback.close()
