"""The status page at / in a real headless Chromium, on an exporter with a failing check.

The exporter runs with a memory minimum above this machine's RAM, so the page must show that
failure in its banner and its table. The DOM Chromium built is compared with the exporter's own
/metrics; the screenshot is kept in the test's tmp dir (its path is printed) for a person to look at.
"""

from __future__ import annotations

import math
import re
import struct
import subprocess
from html.parser import HTMLParser

import pytest
import requests

from tests.support import Exporter, require

HEADLESS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


class Rows(HTMLParser):
    """Rows with data-* attributes: their attributes and the text of their cells."""

    def __init__(self):
        super().__init__()
        self.rows: list[tuple[dict, list[str]]] = []
        self.summary: list[str] = []
        self._row = self._cell = None
        self._in_summary = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr" and any(k.startswith("data-") for k in attrs):
            self._row = (attrs, [])
        elif tag in ("td",) and self._row is not None:
            self._cell = []
        if "summary" in (attrs.get("class") or "").split():
            self._in_summary += 1

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self._row[1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._in_summary:
            self.summary.append(data)


def chromium(tmp_path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([require("chromium"), *HEADLESS, f"--user-data-dir={tmp_path / 'profile'}", *args],
                          capture_output=True, text=True, timeout=120)


def mem_total_bytes() -> int:
    with open("/proc/meminfo") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemTotal:"))


@pytest.fixture(scope="module")
def exporter(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("statuspage")
    config = tmp / "exporter.yml"
    config.write_text(f"thresholds:\n  memory_total: {math.ceil(mem_total_bytes() / 2**30) * 2}GiB\n")
    with Exporter("--config.file", str(config)) as exporter:
        yield exporter


def test_status_page_dom_shows_every_verdict_with_values(exporter, tmp_path):
    result = chromium(tmp_path, "--dump-dom", exporter.url + "/")
    assert result.returncode == 0, result.stderr[-2000:]
    page = Rows()
    page.feed(result.stdout)
    checks = {(a["data-check"], a["data-severity"]): (a["data-state"], cells) for a, cells in page.rows
              if "data-check" in a}
    metrics = requests.get(exporter.url + "/metrics", timeout=5).text
    # every check and severity has state series; a threshold scaled by a reading not yet measured has none
    published = set(re.findall(r'dtr_sizing_check_state\{check="(\w+)",severity="(\w+)",state="ok"\}', metrics))
    assert set(checks) == published, "the page and /metrics disagree on the checks in force"

    state, cells = checks[("memory_total", "critical")]
    assert state == "fail"
    check, severity, requirement, observed, threshold, verdict = cells
    assert re.fullmatch(r"\d+(\.\d)? GiB", observed) and re.fullmatch(r"\d+(\.\d)? GiB", threshold)
    assert float(threshold.split()[0]) > float(observed.split()[0])
    assert verdict == "FAIL" and requirement == f"RAM at least {threshold}"
    summary = " ".join("".join(page.summary).split())
    assert "1 sizing check(s) failing" in summary
    assert f"memory_total (critical): {observed}, needs RAM at least {threshold}" in summary

    for (name, sev), (state, cells) in checks.items():
        assert cells[5] == {"ok": "ok", "fail": "FAIL", "unknown": "unknown", "not_applicable": "n/a"}[state]
        assert cells[4] != "-", f"{name} {sev} shows no threshold"
        if state in ("ok", "fail"):
            assert cells[3] != "-", f"{name} {sev} is judged but shows no observed value"
    collectors = {a["data-collector"]: a["data-state"] for a, _ in page.rows if "data-collector" in a}
    assert collectors and set(collectors) == set(re.findall(r'dtr_exporter_collector_success\{collector="(\w+)"\}',
                                                            metrics))


def test_status_page_screenshot(exporter, tmp_path):
    shot = tmp_path / "statuspage.png"
    result = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,1000", exporter.url + "/")
    assert result.returncode == 0, result.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1280, 1000)
    print(f"status page screenshot: {shot}")
