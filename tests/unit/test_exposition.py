"""The exporter's own process_* families: fresh at each scrape, while the rest stays cached per snapshot."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from exporter.exposition import Renderer
from exporter.sampler import Snapshot, Status


def samples(text: bytes) -> dict[str, float]:
    return {s.name: s.value for f in text_string_to_metric_families(text.decode()) for s in f.samples if not s.labels}


def test_process_families_are_read_at_each_scrape_of_one_cached_snapshot(tmp_path):
    renderer = Renderer({})
    snapshot = Snapshot(1, {"memory": Status(None, False, "unreadable")}, True)
    _, first = renderer.render(snapshot)
    files = [open(tmp_path / f"f{i}", "w") for i in range(5)]  # noqa: SIM115: held open on purpose
    try:
        _, second = renderer.render(snapshot)
    finally:
        for f in files:
            f.close()
    before, after = samples(first), samples(second)
    assert {"process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds"} <= set(after)
    assert after["process_open_fds"] >= before["process_open_fds"] + 5  # read afresh, not cached
    assert after["process_start_time_seconds"] > 0 and after["process_max_fds"] > 0
    cached = first.split(b"# HELP process_")[0]
    assert second.startswith(cached) and b"dtr_exporter_collector_success" in cached
