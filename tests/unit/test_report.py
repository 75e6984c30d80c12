"""The check report: a table a person reads at a glance, and JSON for scripts."""

from __future__ import annotations

import json

from exporter import report
from exporter.sampler import Snapshot, Status
from exporter.sizing import CHECKS, Verdict

GiB = 2**30
SNAPSHOT = Snapshot(3, {"memory": Status(None, True, "", 0.0012),
                        "filesystem": Status(None, False, "docker /x: Permission denied", 0.5)}, True)
VERDICTS = [
    Verdict("memory_total", "critical", "ok", 3.8 * GiB, 3.6 * GiB),
    Verdict("disk_free", "warning", "fail", 25 * GiB, 30e9, "docker /"),
    Verdict("cpu_busy", "warning", "unknown", None, 0.8, "needs two CPU samples"),
    Verdict("storage_io", "warning", "not_applicable", None, 0.9, "storage on nfs4, a network filesystem"),
    Verdict("storage_forecast", "critical", "ok", float("inf"), 7 * 86400),
]


def test_table_rows():
    lines = report.as_table(SNAPSHOT, VERDICTS).splitlines()
    assert lines[0].split() == ["CHECK", "SEVERITY", "KB", "REQUIREMENT", "THIS", "HOST", "VERDICT"]
    rows = {line.split()[0]: line for line in lines[1:6]}
    assert rows["memory_total"].split("  ")[0] == "memory_total"
    assert "RAM at least 3.6 GiB" in rows["memory_total"] and "3.8 GiB" in rows["memory_total"]
    assert rows["memory_total"].endswith("ok")
    assert "at least 30 GB available" in rows["disk_free"] and "25.0 GiB (docker /)" in rows["disk_free"]
    assert rows["disk_free"].endswith("FAIL")
    assert "- (needs two CPU samples)" in rows["cpu_busy"] and rows["cpu_busy"].endswith("unknown")
    assert rows["storage_io"].endswith("n/a")
    assert "never" in rows["storage_forecast"]


def test_table_columns_line_up():
    lines = report.as_table(SNAPSHOT, VERDICTS).splitlines()[:6]
    column = lines[0].index("VERDICT")
    assert all(line[column:].strip() in ("VERDICT", "ok", "FAIL", "unknown", "n/a") for line in lines)


def test_table_names_failed_collectors_and_sums_up():
    text = report.as_table(SNAPSHOT, VERDICTS)
    assert "collector filesystem: docker /x: Permission denied" in text
    assert text.endswith("\n1 failing check(s); 1 could not be measured\n")
    passing = report.as_table(Snapshot(1, {}, True), VERDICTS[:1])
    assert passing.endswith("this node meets every sizing check it could measure\n")


def test_table_colour_only_when_asked():
    assert "\033[" not in report.as_table(SNAPSHOT, VERDICTS)
    coloured = report.as_table(SNAPSHOT, VERDICTS, color=True)
    assert "\033[31mFAIL" in coloured and "\033[32mok" in coloured and "\033[33munknown" in coloured


def test_json_schema():
    data = json.loads(report.as_json(SNAPSHOT, VERDICTS))
    assert set(data) == {"ok", "judged", "checks", "collectors", "needs"}
    assert set(data["needs"]) == {"memory", "disk", "cpu"}
    assert set(data["needs"]["memory"]) == {"unit", "recommended", "installed", "kb_minimum", "reasoning"}
    assert data["ok"] is False and data["judged"] is True
    first = data["checks"][0]
    assert set(first) == {"check", "severity", "state", "unit", "observed", "threshold", "requirement",
                          "observed_text", "detail", "source", "collector_error"}
    assert first["collector_error"] is None
    assert (first["check"], first["state"], first["unit"]) == ("memory_total", "ok", "bytes")
    assert first["requirement"] == "RAM at least 3.6 GiB" and first["observed_text"] == "3.8 GiB"
    assert "4GB is considered sufficient" in first["source"]
    by_check = {c["check"]: c for c in data["checks"]}
    assert by_check["cpu_busy"]["observed"] is None
    assert by_check["storage_forecast"]["observed"] is None  # infinity is not JSON
    assert data["collectors"] == {
        "filesystem": {"ok": False, "error": "docker /x: Permission denied", "duration_seconds": 0.5},
        "memory": {"ok": True, "error": "", "duration_seconds": 0.0012}}


def test_json_ok_without_failures():
    assert json.loads(report.as_json(SNAPSHOT, VERDICTS[:1] + VERDICTS[2:]))["ok"] is True


# ---- a check left unknown by a failed collector is not a pass

BROKEN = Snapshot(4, {"memory": Status(None, False, "IsADirectoryError: [Errno 21] Is a directory: '/proc/meminfo'"),
                      "cpu": Status(None, True), "filesystem": Status(None, True)}, True)
UNJUDGED = [
    Verdict("memory_total", "critical", "unknown", None, 3.6 * GiB),
    Verdict("cpu_cores", "warning", "ok", 2, 2),
    Verdict("cpu_busy", "warning", "unknown", None, 0.8, "needs two CPU samples"),  # cpu is fine: a gap
    Verdict("disk_free", "warning", "ok", 40 * GiB, 30e9),
]


def test_exit_status_says_what_could_not_be_judged():
    assert report.exit_status(BROKEN, UNJUDGED) == 3
    failing = UNJUDGED + [Verdict("disk_free", "critical", "fail", 1 * GiB, 20e9)]
    assert report.exit_status(BROKEN, failing) == 1  # a failing check wins
    healthy = Snapshot(5, {**BROKEN.statuses, "memory": Status(None, True)}, True)
    assert report.exit_status(healthy, UNJUDGED) == 0  # unknown for want of a second sample is a gap, not a fault
    disabled = Snapshot(6, {n: s for n, s in BROKEN.statuses.items() if n != "memory"}, True)
    assert report.exit_status(disabled, UNJUDGED) == 0  # a collector switched off did not fail
    partial = Snapshot(7, {**healthy.statuses, "cpu": Status(None, False, "pressure/cpu: I/O error")}, True)
    assert report.exit_status(partial, UNJUDGED) == 3  # a partial reading that left cpu_busy unknown


def test_table_and_json_name_the_failed_collector_next_to_the_unknown_verdict():
    text = report.as_table(BROKEN, UNJUDGED)
    row = next(line for line in text.splitlines() if line.startswith("memory_total"))
    assert "- (collector memory failed: IsADirectoryError: [Errno 21] Is a directory: '/proc/meminfo')" in row
    assert row.endswith("unknown")
    cpu_busy = next(line for line in text.splitlines() if line.startswith("cpu_busy"))
    assert "failed" not in cpu_busy
    assert text.endswith("\nno failing check, but 1 could not be judged because a collector failed; "
                         "2 could not be measured\n")
    data = json.loads(report.as_json(BROKEN, UNJUDGED))
    assert data["ok"] is True and data["judged"] is False
    by_check = {c["check"]: c for c in data["checks"]}
    assert by_check["memory_total"]["collector_error"] == ("collector memory failed: IsADirectoryError: "
                                                           "[Errno 21] Is a directory: '/proc/meminfo'")
    assert by_check["cpu_busy"]["collector_error"] is None


def test_a_long_error_is_cut_in_the_table_and_whole_below_it():
    error = "OSError: " + "x" * 200
    snapshot = Snapshot(1, {"memory": Status(None, False, error)}, True)
    text = report.as_table(snapshot, UNJUDGED[:1])
    row = text.splitlines()[1]
    assert row.count("x") < 100 and "...)" in row
    assert f"collector memory: {error}" in text


def test_every_check_names_the_collectors_it_reads():
    assert set(report.INPUTS) == set(CHECKS)
