"""The garbage collector (exporter/collectors/garbage.py) on a hand-built store: its reading, its
metrics, the top-K cut, the day-growth history and what `check --repositories` prints from it."""

from __future__ import annotations

import json
import os

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter import cli, config as cfg, report
from exporter.collectors import Context, Found, garbage
from exporter.garbage import OTHER, Reclaim
from exporter.sampler import Snapshot, Status
from tests.unit.test_garbage import Store


def collector(**settings) -> garbage.GarbageCollector:
    config = cfg.Config()
    for name, value in settings.items():
        setattr(config, name, value)
    return garbage.GarbageCollector(Context(config=config))


def samples(reading) -> dict[tuple, float]:
    class One:
        def collect(self):
            return garbage.families(reading)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(One())
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


@pytest.fixture
def store(tmp_path):
    """team/app: a tagged image and an untagged one; team/web shares a layer; a stray layer nobody uses."""
    s = Store(tmp_path / "store")
    shared = s.layer("team/app", 3000)
    s.image("team/app", [shared, s.layer("team/app", 1000)], tag="v1")
    s.image("team/app", [s.layer("team/app", 500)])  # untagged: --delete-untagged frees it and its layer
    (s.v2 / "repositories/team/web/_layers").mkdir(parents=True)  # makes team/web a repository
    s.blob(shared.encode())  # a blob no manifest references
    s.image("team/web", [shared], tag="latest")
    return s


def test_reading_counts_both_modes_and_owners(store):
    reading = collector().collect(Found(storage_path=store.v2.parent.parent.parent))
    assert reading.storage and reading.detail == ""
    assert reading.unreferenced.blobs == 1
    assert reading.untagged.blobs > reading.unreferenced.blobs  # the untagged manifest, its config and layer
    by_repo = {o.repository: o for o in reading.top_repositories}
    assert set(by_repo) == {"team/app", "team/web"}
    assert by_repo["team/app"].unique_bytes < by_repo["team/app"].bytes  # the shared layer is not unique
    assert all(o.day_growth_bytes is None for o in reading.top_repositories)  # no day of history yet
    assert not reading.lower_bound


def test_metrics_carry_storage_mode_and_repository(store):
    reading = collector().collect(Found(storage_path=store.v2.parent.parent.parent))
    got = samples(reading)
    sid = reading.storage
    assert got[("dtr_storage_reclaimable_blobs", (("mode", "unreferenced"), ("storage", sid)))] == 1
    assert got[("dtr_storage_reclaimable_bytes", (("mode", "untagged"), ("storage", sid)))] == reading.untagged.bytes
    assert got[("dtr_storage_reclaimable_lower_bound", (("storage", sid),))] == 0
    assert got[("dtr_repository_bytes", (("repository", "team/web"), ("storage", sid)))] > 3000
    assert ("dtr_repository_unique_bytes", (("repository", "team/app"), ("storage", sid))) in got


def test_top_k_from_the_setting_sums_the_rest_as_other(store):
    reading = collector(top_repositories=1).collect(Found(storage_path=store.v2.parent.parent.parent))
    assert [o.repository for o in reading.top_repositories] == ["team/app", OTHER]


def test_the_setting_is_declared_once_with_a_flag_and_checked():
    _, config = cli.load_config(["check", "--garbage.top-repositories", "5"])
    assert config.top_repositories == 5
    assert cfg.Config().top_repositories == 20
    with pytest.raises(cfg.ConfigError, match="garbage.top_repositories: 0 is not a count from 1 to 1000"):
        cfg.apply_mapping(cfg.Config(), {"garbage": {"top_repositories": 0}})


def test_a_damaged_manifest_makes_the_figures_a_lower_bound(store):
    data = store.v2 / "blobs/sha256"
    d = store.image("team/app", [store.layer("team/app", 10)], tag="v2")
    path = data / d[7:9] / d[7:] / "data"
    path.write_bytes(path.read_bytes()[:30])
    reading = collector().collect(Found(storage_path=store.v2.parent.parent.parent))
    assert reading.garbage_errors == 1 and reading.lower_bound
    assert samples(reading)[("dtr_storage_reclaimable_lower_bound", (("storage", reading.storage),))] == 1


def test_no_store_publishes_nothing():
    reading = garbage.GarbageCollector(Context()).collect(Found())
    assert reading.storage is None and "no storage path" in reading.detail
    assert list(garbage.families(reading)) == []


def test_day_growth_from_the_state_dir_survives_a_restart(store, tmp_path, monkeypatch):
    state = tmp_path / "state"
    root = store.v2.parent.parent.parent
    clock = [1_000_000.0]
    monkeypatch.setattr(garbage.time, "time", lambda: clock[0])
    first = collector(state_dir=str(state)).collect(Found(storage_path=root))
    app = {o.repository: o.bytes for o in first.top_repositories}["team/app"]
    store.image("team/app", [store.layer("team/app", 4096)], tag="v3")
    clock[0] += garbage.DAY + 60
    again = collector(state_dir=str(state)).collect(Found(storage_path=root))  # a new process
    growth = {o.repository: o for o in again.top_repositories}["team/app"]
    assert growth.day_growth_bytes == growth.bytes - app > 4096
    assert json.loads(next(state.glob("storage-owners-*.json")).read_text())["samples"]


def test_the_estimate_keeps_its_database_in_the_state_dir(store, tmp_path):
    state = tmp_path / "state"
    c = collector(state_dir=str(state))
    c.collect(Found(storage_path=store.v2.parent.parent.parent))
    assert len(list(state.glob("garbage-*.sqlite"))) == 1  # what grows with the store, out of the heap
    c._estimator.close()


def test_history_keeps_one_sample_an_hour_and_a_day_of_them(tmp_path):
    history = garbage.OwnerHistory(None, "x")
    for minute in range(0, 30 * 60, 5):
        history.add(minute * 60.0, {"a": minute})
    assert len(history.samples) <= 30  # about one an hour over 26 hours
    now = history.samples[-1][0]
    assert history.day_growth(now, "a") == pytest.approx(24 * 60, abs=60)
    assert history.day_growth(now, "b") is None


def test_an_unreadable_history_is_ignored(tmp_path):
    (tmp_path / "storage-owners-x.json").write_text("{not json")
    history = garbage.OwnerHistory(tmp_path, "x")
    assert history.samples == []
    history.add(1.0, {"a": 1})
    assert json.loads((tmp_path / "storage-owners-x.json").read_text())["samples"] == [[1.0, {"a": 1}]]


def snapshot(reading) -> Snapshot:
    return Snapshot(1, {"garbage": Status(reading, True)}, True)


def test_check_repositories_lists_bytes_unique_and_growth(store):
    reading = collector().collect(Found(storage_path=store.v2.parent.parent.parent))
    text = report.repositories_table(snapshot(reading))
    lines = text.splitlines()
    assert lines[0].split() == ["REPOSITORY", "BYTES", "UNIQUE", "BYTES", "GROWTH", "(LAST", "DAY)"]
    assert lines[1].startswith("team/app") and "n/a until a day of history" in lines[1]
    assert "garbage collection would free" in text and "with --delete-untagged" in text
    data = json.loads(report.as_json(snapshot(reading), [], repositories=True))["garbage"]
    assert data["reclaimable"]["unreferenced"] == {"blobs": 1, "bytes": reading.unreferenced.bytes}
    assert [r["repository"] for r in data["repositories"]] == ["team/app", "team/web"]
    assert report.repositories_table(Snapshot(1, {}, True)) == report.NO_GARBAGE + "\n"


def test_check_repositories_is_for_check_only():
    with pytest.raises(cli.UsageError, match="--repositories: applies to the check command only"):
        cli.load_config(["metrics", "--repositories"])


def test_check_repositories_on_the_command_line(store, capsys):
    root = str(store.v2.parent.parent.parent)
    only = [f"--no-collector.{n}" for n in ("memory", "cpu", "filesystem", "diskio", "storage", "pagecache",
                                           "docker", "dtr_api", "traffic") if n in cli.collectors.DEFAULTS]
    cli.main(["check", "--storage.path", root, "--repositories", *only])
    out = capsys.readouterr().out
    assert "team/web" in out and "garbage collection would free" in out
    assert os.path.isdir(root)


def test_reclaim_default_is_zero():
    assert garbage.GarbageReading().unreferenced == Reclaim(0, 0)


def test_the_status_page_shows_reclaimable_bytes_and_top_repositories(store):
    from exporter import statuspage
    reading = collector().collect(Found(storage_path=store.v2.parent.parent.parent))
    page = statuspage.render(snapshot(reading), [], "test")
    assert '<tr data-mode="untagged"><td>untagged</td><td>' in page
    assert '<tr data-repository="team/web">' in page and "n/a until a day of history" in page
    assert report.NO_GARBAGE in statuspage.render(Snapshot(1, {}, True), [], "test")
