"""The inotify reader: names of created entries, and a bounded read."""

from __future__ import annotations

import pytest

from exporter import inotify


@pytest.fixture
def watcher():
    w = inotify.Watcher()
    yield w
    w.close()


def test_created_entries_are_named_with_their_directory(watcher, tmp_path):
    watcher.watch(str(tmp_path))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").write_bytes(b"")
    events = watcher.read()
    assert [(p, name, bool(mask & inotify.IN_ISDIR)) for p, mask, name in events if mask & inotify.IN_CREATE] == [
        (str(tmp_path), "a", True), (str(tmp_path), "b", False)]
    assert watcher.read() == []


def test_more_events_than_the_limit_is_an_overflow_and_the_queue_is_drained(watcher, tmp_path):
    """A push of 1 % of 10M blobs is 100,000 creations: past the limit the names would cost more memory
    than listing the directories again."""
    watcher.watch(str(tmp_path))
    for i in range(50):
        (tmp_path / f"d{i}").mkdir()
    with pytest.raises(inotify.Overflow):
        watcher.read(limit=20)
    assert watcher.read() == []  # drained: the next scan starts from a clean queue
    (tmp_path / "later").mkdir()
    assert [name for _, _, name in watcher.read(limit=20)] == ["later"]


def test_the_default_limit_is_the_modules(watcher, tmp_path, monkeypatch):
    monkeypatch.setattr(inotify, "MAX_EVENTS", 3)
    watcher.watch(str(tmp_path))
    for i in range(4):
        (tmp_path / f"d{i}").mkdir()
    with pytest.raises(inotify.Overflow):
        watcher.read()
