"""The inotify journal: names of created entries, read as they come, within a bound."""

from __future__ import annotations

import gc
import os
import threading
import time
import pytest

from exporter import inotify
from tests.support import inotify_queue

DIGEST = "0123456789abcdef" * 4


@pytest.fixture
def journal():
    j = inotify.Journal()
    yield j
    j.close()


def wait_for(condition, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_created_entries_are_named_with_their_directory(journal, tmp_path):
    assert journal.watch(str(tmp_path))
    (tmp_path / DIGEST).mkdir()
    (tmp_path / DIGEST.upper()).mkdir()  # not a digest's name: kept as it is
    (tmp_path / "file").write_bytes(b"")
    batch = journal.take()
    assert batch.created(str(tmp_path)) == {DIGEST: True, DIGEST.upper(): True, "file": False}
    assert not batch.relist(str(tmp_path)) and batch.count == 3
    assert journal.take().created(str(tmp_path)) == {}


def test_a_removal_or_chmod_makes_the_directory_listed(journal, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for sub in "ab":
        assert journal.watch(str(tmp_path / sub))
    (tmp_path / "a" / "x").mkdir()
    (tmp_path / "a" / "x").rmdir()
    (tmp_path / "b").chmod(0o700)
    (tmp_path / "c").mkdir()  # not watched: not heard
    batch = journal.take()
    assert batch.relist(str(tmp_path / "a")) and batch.relist(str(tmp_path / "b"))
    assert not batch.relist(str(tmp_path / "c")) and batch.created(str(tmp_path / "c")) == {}


def test_a_push_bigger_than_the_kernels_queue_is_not_lost(journal, tmp_path):
    """The kernel drops what is past fs.inotify.max_queued_events (16,384 by default; a 1 % push at 10M
    blobs is 100,000): read as they come, all are named."""
    queue = inotify_queue()
    journal.watch(str(tmp_path))
    names = {f"{i:064x}" for i in range(queue + 2000)}
    for name in names:
        (tmp_path / name).mkdir()
    batch = journal.take()
    assert not batch.overflow
    assert batch.created(str(tmp_path)) == dict.fromkeys(names, True)


def test_take_includes_events_the_thread_has_not_read(journal, tmp_path, monkeypatch):
    monkeypatch.setattr(inotify, "PAUSE", 30.0)  # the thread, once it has read "first", waits 30 s
    journal.watch(str(tmp_path))
    (tmp_path / "first").mkdir()
    wait_for(lambda: journal._reader.batch.count == 1)
    (tmp_path / "second").mkdir()
    assert set(journal.take().created(str(tmp_path))) == {"first", "second"}


def test_more_names_than_the_limit_is_an_overflow_and_frees_them(tmp_path):
    """Past the limit, listing each directory again costs less than holding the names."""
    journal = inotify.Journal(limit=20)
    try:
        journal.watch(str(tmp_path))
        for i in range(50):
            (tmp_path / f"d{i}").mkdir()
        batch = journal.take()
        assert batch.overflow and batch.relist(str(tmp_path)) and batch.created(str(tmp_path)) == {}
        (tmp_path / "later").mkdir()
        batch = journal.take()
        assert not batch.overflow and batch.created(str(tmp_path)) == {"later": True}
    finally:
        journal.close()


def test_the_default_limit_is_the_modules(journal, tmp_path, monkeypatch):
    monkeypatch.setattr(inotify, "MAX_NAMES", 3)
    journal.watch(str(tmp_path))
    for i in range(4):
        (tmp_path / f"d{i}").mkdir()
    assert journal.take().overflow


def readers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "inotify"]


def test_close_or_collection_ends_the_thread_and_frees_the_instance(tmp_path):
    before = set(readers())
    closed, dropped = inotify.Journal(), inotify.Journal()
    reader = closed._reader
    assert len(set(readers()) - before) == 2
    closed.close()
    del dropped
    gc.collect()
    wait_for(lambda: set(readers()) <= before)
    assert reader.watcher.fd == -1 and reader.dead
    batch = closed.take()  # nothing is heard any more: every directory must be listed
    assert batch.overflow and not closed.watch(str(tmp_path))


def test_a_watch_that_cannot_be_made_is_false(journal, tmp_path):
    (tmp_path / "file").write_bytes(b"")
    assert not journal.watch(str(tmp_path / "file"))  # not a directory
    assert not journal.watch(str(tmp_path / "missing"))


def test_names_past_spill_go_to_files_removed_with_their_batch(tmp_path, monkeypatch):
    """Memory holds a few KiB a directory whatever the push; the files go with the batch, and the
    directory with the journal."""
    monkeypatch.setattr(inotify, "SPILL", 64)  # two names
    names = tmp_path / "names"
    names.mkdir()
    (names / "stale").write_bytes(b"")  # left by an earlier process: a cache, emptied
    journal = inotify.Journal(names)
    try:
        assert not (names / "stale").exists()
        pushed = {}
        for sub in "ab":
            (tmp_path / sub).mkdir()
            journal.watch(str(tmp_path / sub))
            pushed[sub] = [f"{sub}{i:063x}".replace(sub, "0" if sub == "a" else "1", 1) for i in range(25)]
            for name in pushed[sub]:
                (tmp_path / sub / name).mkdir()
        batch = journal.take()
        assert all(len(held) < 64 for held in batch._digests.values())
        assert len(list(names.iterdir())) == 2
        for sub in "ab":
            assert list(batch.created(str(tmp_path / sub))) == pushed[sub]  # in the order they came
        del batch
        assert list(names.iterdir()) == []
    finally:
        journal.close()
    assert not names.exists()


def test_a_lost_names_file_makes_its_directory_listed(tmp_path, monkeypatch):
    monkeypatch.setattr(inotify, "SPILL", 32)
    journal = inotify.Journal(tmp_path / "names")
    journal.watch(str(tmp_path))
    (tmp_path / DIGEST).mkdir()
    batch = journal.take()
    for file in (tmp_path / "names").iterdir():
        file.unlink()
    assert batch.created(str(tmp_path)) is None
    journal.close()


def test_without_a_directory_for_the_files_names_stay_in_memory_within_max_held(tmp_path, monkeypatch):
    (tmp_path / "file").write_bytes(b"")
    monkeypatch.setattr(inotify, "MAX_HELD", 3)
    journal = inotify.Journal(tmp_path / "file" / "names")  # cannot be made
    journal.watch(str(tmp_path))
    for i in range(3):
        (tmp_path / f"{i:064x}").mkdir()
    assert len(journal.take().created(str(tmp_path))) == 3
    for i in range(4):
        (tmp_path / f"1{i:063x}").mkdir()
    assert journal.take().overflow
    journal.close()


def test_memory_stays_small_for_a_big_push(tmp_path):
    """20,000 new digests are 640 kB as 32-byte names; past SPILL bytes a directory they are in files."""
    import tracemalloc
    journal = inotify.Journal(tmp_path / "names")
    for sub in "abcd":
        (tmp_path / sub).mkdir()
        journal.watch(str(tmp_path / sub))
    tracemalloc.start()
    try:
        for i in range(20000):  # os.mkdir: pathlib interns each part of a path it makes
            os.mkdir(f"{tmp_path}/{'abcd'[i % 4]}/{i:064x}")
        batch = journal.take()
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert sum(len(batch.created(str(tmp_path / sub))) for sub in "abcd") == 20000
    assert held < 100_000, held
    journal.close()
