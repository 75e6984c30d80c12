"""The human view: verdicts as a terminal table or as JSON for scripts."""

from __future__ import annotations

import json
import math

from .sampler import Snapshot
from .sizing import FAIL, NOT_APPLICABLE, OK, UNKNOWN, Verdict

LABELS = {OK: "ok", FAIL: "FAIL", UNKNOWN: "unknown", NOT_APPLICABLE: "n/a"}


def requirement(v: Verdict) -> str:
    return v.spec.requirement.format(v.spec.show(v.threshold))


def as_dict(snapshot: Snapshot, verdicts: list[Verdict]) -> dict:
    def number(x):
        return None if x is None or (isinstance(x, float) and math.isinf(x)) else x
    return {
        "ok": not any(v.state == FAIL for v in verdicts),
        "checks": [{
            "check": v.check, "severity": v.severity, "state": v.state, "unit": v.spec.unit,
            "observed": number(v.observed), "threshold": v.threshold, "requirement": requirement(v),
            "observed_text": v.spec.show(v.observed), "detail": v.detail, "source": v.spec.source,
        } for v in verdicts],
        "collectors": {name: {"ok": s.ok, "error": s.error, "duration_seconds": round(s.duration, 6)}
                       for name, s in sorted(snapshot.statuses.items())},
    }


def as_json(snapshot: Snapshot, verdicts: list[Verdict]) -> str:
    return json.dumps(as_dict(snapshot, verdicts), indent=2)


def as_table(snapshot: Snapshot, verdicts: list[Verdict], color: bool = False) -> str:
    rows = [("CHECK", "SEVERITY", "KB REQUIREMENT", "THIS HOST", "VERDICT")]
    for v in verdicts:
        host = v.spec.show(v.observed) + (f" ({v.detail})" if v.detail else "")
        rows.append((v.check, v.severity, requirement(v), host, LABELS[v.state]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    paint = {"FAIL": "\033[31m", "ok": "\033[32m", "unknown": "\033[33m"} if color else {}
    lines = []
    for row in rows:
        cells = [cell.ljust(w) for cell, w in zip(row, widths)]
        if row[-1] in paint:
            cells[-1] = f"{paint[row[-1]]}{cells[-1]}\033[0m"
        lines.append("  ".join(cells).rstrip())
    failed = [f"{n}: {s.error}" for n, s in sorted(snapshot.statuses.items()) if not s.ok]
    if failed:
        lines.append("")
        lines.extend(f"collector {f}" for f in failed)
    fails = sum(v.state == FAIL for v in verdicts)
    lines.append("")
    unknown = sum(v.state == UNKNOWN for v in verdicts)
    summary = f"{fails} failing check(s)" if fails else "this node meets every sizing check it could measure"
    # say how much went unmeasured, so a run whose collectors all failed does not read as a pass
    lines.append(summary + (f"; {unknown} could not be measured" if unknown else ""))
    return "\n".join(lines) + "\n"
