"""End-to-end, the node_exporter way: the real CLI on each recorded profile, the whole
exposition diffed against tests/e2e/golden/<profile>.txt, and promtool's linter over it.

Only the volatile samples are dropped before the diff: how long each collector took and when
it last succeeded. Regenerate after an intended change with ``make golden``
(``UPDATE_GOLDEN=1 pytest tests/e2e``) and review the diff like code.
"""

from __future__ import annotations

import difflib
import os
import re
import subprocess

import pytest

from tests.conftest import PROFILES
from tests.support import ROOT, require

GOLDEN = ROOT / "tests" / "e2e" / "golden"
# samples that differ run to run: timings, and the exporter's own process_* (its memory, CPU, fds)
VOLATILE = re.compile(r"^(dtr_exporter_collector_(duration_seconds|last_success_timestamp_seconds)\{|process_)")


def stable(text: str) -> str:
    return "".join(line for line in text.splitlines(keepends=True) if not VOLATILE.match(line))


@pytest.mark.parametrize("profile", PROFILES)
def test_metrics_match_golden_file(profile, profile_run):
    done = profile_run(profile, "metrics")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    got = stable(done.stdout)
    golden = GOLDEN / f"{profile}.txt"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(got)
    want = golden.read_text()
    diff = "".join(difflib.unified_diff(want.splitlines(True), got.splitlines(True), str(golden), "exporter"))
    assert not diff, f"/metrics differs from the golden file (make golden regenerates it):\n{diff}"


@pytest.mark.parametrize("profile", PROFILES)
def test_promtool_finds_nothing_to_say(profile, profile_run):
    promtool = require("promtool")
    done = profile_run(profile, "metrics")
    assert done.returncode == 0, done.stderr
    lint = subprocess.run([promtool, "check", "metrics"], input=done.stdout, capture_output=True, text=True,
                          timeout=30)
    assert (lint.returncode, lint.stdout + lint.stderr) == (0, "")


def test_volatile_filter_drops_only_timing_samples():
    text = ("# HELP dtr_exporter_collector_duration_seconds x\n"
            'dtr_exporter_collector_duration_seconds{collector="cpu"} 0.01\n'
            'dtr_exporter_collector_last_success_timestamp_seconds{collector="cpu"} 1.7e9\n'
            'dtr_exporter_collector_success{collector="cpu"} 1.0\n')
    assert stable(text) == ("# HELP dtr_exporter_collector_duration_seconds x\n"
                            'dtr_exporter_collector_success{collector="cpu"} 1.0\n')
