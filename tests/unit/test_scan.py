"""The storage scanner on synthetic stores: full walks, incremental rescans, faults."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from exporter.scan import Scanner, Throttle, resolve_v2
from tests.support import unavailable

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
    scanner.close()  # as on NFS or with no inotify watches left
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
    for prefix in scanner._prefixes.values():
        records = [prefix.keys[i:i + 8] for i in range(0, len(prefix.keys), 8)]
        assert records == sorted(records) and len(records) == prefix.blobs
    # nothing new: nothing examined
    assert scanner.scan().files_examined == 0
