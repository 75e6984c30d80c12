"""End to end: exporter -> Prometheus with the rules -> Alertmanager -> a webhook in this test.

The exporter is started with a memory minimum above this machine's RAM; the memory alert must
reach the webhook with its labels and humanised annotations, and resolve once the exporter runs
with the default threshold again. For speed the test loads a copy of the rules in which
DTRMemoryBelowMinimum has ``for: 0s`` instead of 5m; every other rule is unchanged.
"""

from __future__ import annotations

import math

import yaml

from mixin.config import load
from tests.prom import Alertmanager, Prometheus, Webhook, fast_exporter_config
from tests.support import ROOT, Exporter, wait_for

RULES = ROOT / "alerts" / "dtr-sizing.rules.yml"
ALERT = "DTRMemoryBelowMinimum"
TOLERANCE = 0.10  # the exporter's default memory tolerance, applied to the published threshold


def humanize1024(v: float) -> str:
    """Prometheus' template function humanize1024 (Go's %.4g with binary prefixes)."""
    prefix = ""
    for p in ("ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"):
        if abs(v) < 1024:
            break
        prefix, v = p, v / 1024
    return f"{v:.4g}{prefix}"


def mem_total_bytes() -> int:
    with open("/proc/meminfo") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemTotal:"))


def test_memory_alert_reaches_alertmanager_and_resolves(tmp_path):
    groups = yaml.safe_load(RULES.read_text())
    rule = next(r for g in groups["groups"] for r in g["rules"] if r.get("alert") == ALERT)
    rule["for"] = "0s"
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump(groups))

    ram = mem_total_bytes()
    minimum_gib = math.ceil(ram / 2**30) * 2  # twice this machine's RAM: it must fail
    failing = fast_exporter_config(tmp_path / "failing.yml", {"memory_total": f"{minimum_gib}GiB"})
    restored = fast_exporter_config(tmp_path / "restored.yml")

    exporter = Exporter("--config.file", str(failing))
    instance = f"127.0.0.1:{exporter.port}"
    with Webhook() as webhook, Alertmanager(tmp_path, webhook.url) as am, exporter, \
            Prometheus(tmp_path, targets=[exporter.url], rule_files=[rules], alertmanager=am.url) as prom:
        prom.wait_targets_up()
        firing = wait_for(lambda: webhook.alerts("firing"), timeout=60, what=f"{ALERT} at the webhook")
        assert {a["labels"]["alertname"] for a in firing} == {ALERT}
        alert = firing[0]
        assert alert["labels"] == {"alertname": ALERT, "severity": "critical", "check": "memory_total",
                                   "instance": instance, "job": "dtr-sizing-exporter"}
        threshold = minimum_gib * 2**30 * (1 - TOLERANCE)
        assert alert["annotations"] == {
            "summary": f"{instance} has less RAM than the DTR sizing minimum.",
            "description": f"{instance} has {humanize1024(ram)}B of RAM; the critical minimum is "
                           f"{humanize1024(threshold)}B (KB: 4GB is sufficient for smaller production installations).",
            "runbook_url": load().runbook(ALERT),
        }
        assert [a["labels"]["alertname"] for a in am.alerts() if a["status"]["state"] == "active"] == [ALERT]

        # restore the default threshold: the same exporter address, started with the default config
        exporter.stop()
        exporter.args[exporter.args.index("--config.file") + 1] = str(restored)
        exporter.start()
        default = 4 * 2**30 * (1 - TOLERANCE)
        wait_for(lambda: prom.value('dtr_sizing_threshold{check="memory_total"}') == default,
                 timeout=30, what="the restored threshold scraped")
        resolved = wait_for(lambda: webhook.alerts("resolved"), timeout=60, what=f"{ALERT} resolved at the webhook")
        assert resolved[0]["labels"] == alert["labels"]
        # with for: 0s it would fire again at the first evaluation if the old threshold still held
        start = prom.evaluations()
        wait_for(lambda: prom.evaluations() >= start + 5 * len(prom.rule_groups()[0]["rules"]),
                 timeout=30, what="five more rule evaluations")
        assert prom.alerts(ALERT) == []
        assert not [a for a in am.alerts() if a["status"]["state"] == "active"]
