"""The human view: verdicts as a terminal table or as JSON for scripts, and check's exit status.

A check that reads ``unknown`` because a collector it reads failed is not a
pass: it is "unjudged", shown with the collector's error, and makes ``check``
exit 3 when nothing fails outright (ARCHITECTURE.md's contract).
"""

from __future__ import annotations

import json
import math

from .units import format_bytes

from .readings import Readings
from .sampler import Snapshot
from .sizing import FAIL, NOT_APPLICABLE, OK, UNKNOWN, Need, Verdict, needs

LABELS = {OK: "ok", FAIL: "FAIL", UNKNOWN: "unknown", NOT_APPLICABLE: "n/a"}
EXIT_OK, EXIT_FAIL, EXIT_UNJUDGED = 0, 1, 3
WHY_WIDTH = 100  # characters of a collector's error shown in the table's THIS HOST cell
# check -> the collectors whose readings exporter.sizing's observer for it reads
INPUTS: dict[str, tuple[str, ...]] = {
    "memory_total": ("memory",),
    "disk_free": ("filesystem",),
    "cpu_cores": ("cpu",),
    "cpu_busy": ("cpu",),
    "page_cache_hit_ratio": ("pagecache",),
    "storage_forecast": ("storage",),
    "storage_forecast_after_gc": ("storage", "garbage"),
    "storage_io": ("diskio",),
    "inodes_free": ("filesystem",),
    "memory_hot_set": ("workload",),
}


def requirement(v: Verdict) -> str:
    return v.spec.requirement.format(v.threshold_text())


def unjudged_because(v: Verdict, snapshot: Snapshot) -> str:
    """Why an unknown verdict is a fault, not a gap: the errors of the failed collectors it reads ("" if none)."""
    if v.state != UNKNOWN:
        return ""
    return "; ".join(f"collector {name} failed: {snapshot.statuses[name].error}"
                     for name in INPUTS.get(v.check, ())
                     if name in snapshot.statuses and not snapshot.statuses[name].ok)


def exit_status(snapshot: Snapshot, verdicts: list[Verdict]) -> int:
    """1 when a check fails; else 3 when a failed collector left a check unjudged; else 0."""
    if any(v.state == FAIL for v in verdicts):
        return EXIT_FAIL
    if any(unjudged_because(v, snapshot) for v in verdicts):
        return EXIT_UNJUDGED
    return EXIT_OK


def as_dict(snapshot: Snapshot, verdicts: list[Verdict]) -> dict:
    def number(x):
        return None if x is None or (isinstance(x, float) and math.isinf(x)) else x
    return {
        "ok": not any(v.state == FAIL for v in verdicts),
        "judged": not any(unjudged_because(v, snapshot) for v in verdicts),
        "checks": [{
            "check": v.check, "severity": v.severity, "state": v.state, "unit": v.spec.unit,
            "observed": number(v.observed), "threshold": v.threshold, "requirement": requirement(v),
            "observed_text": v.spec.show(v.observed), "detail": v.detail, "source": v.spec.source,
            "collector_error": unjudged_because(v, snapshot) or None,
        } for v in verdicts],
        "collectors": {name: {"ok": s.ok, "error": s.error, "duration_seconds": round(s.duration, 6)}
                       for name, s in sorted(snapshot.statuses.items())},
        "needs": {n.resource: {"unit": n.unit, "recommended": n.value, "installed": n.installed,
                               "kb_minimum": n.kb_minimum, "reasoning": n.reasoning}
                  for n in needs(snapshot.readings)},
    }


def as_json(snapshot: Snapshot, verdicts: list[Verdict], repositories: bool = False) -> str:
    """``repositories``: add "garbage", what garbage collection frees and the top repositories (null: unknown)."""
    extra = {"garbage": repositories_dict(snapshot)} if repositories else {}
    return json.dumps({**as_dict(snapshot, verdicts), **extra}, indent=2)


def need_line(n: Need) -> str:
    """One resource of "this node needs": the figure, what is installed, the KB's minimum, the reasoning."""
    return (f"{n.resource}: {n.show(n.value)} (installed {n.show(n.installed)}, KB minimum {n.show(n.kb_minimum)}): "
            f"{n.reasoning}")


def as_table(snapshot: Snapshot, verdicts: list[Verdict], color: bool = False) -> str:
    rows = [("CHECK", "SEVERITY", "KB REQUIREMENT", "THIS HOST", "VERDICT")]
    unjudged = 0
    for v in verdicts:
        why = unjudged_because(v, snapshot)
        unjudged += bool(why)
        if len(why) > WHY_WIDTH:  # the whole error is listed under the table
            why = why[:WHY_WIDTH - 3] + "..."
        detail = "; ".join(d for d in (v.detail, why) if d)
        host = v.spec.show(v.observed) + (f" ({detail})" if detail else "")
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
    lines += ["", "this node needs, for its own workload:"]
    lines += [f"  {need_line(n)}" for n in needs(snapshot.readings)]
    fails = sum(v.state == FAIL for v in verdicts)
    lines.append("")
    unknown = sum(v.state == UNKNOWN for v in verdicts)
    if fails:
        summary = f"{fails} failing check(s)"
    elif unjudged:
        summary = f"no failing check, but {unjudged} could not be judged because a collector failed"
    else:
        summary = "this node meets every sizing check it could measure"
    # say how much went unmeasured, so a run whose collectors all failed does not read as a pass
    lines.append(summary + (f"; {unknown} could not be measured" if unknown else ""))
    return "\n".join(lines) + "\n"


NO_GARBAGE = "no garbage estimate: the garbage collector is off, has not run or has no store"


def growth_text(day_growth: int | None) -> str:
    if day_growth is None:
        return "n/a until a day of history"
    return ("+" if day_growth >= 0 else "-") + format_bytes(abs(day_growth))


def repositories_dict(snapshot: Snapshot) -> dict | None:
    """What garbage collection would free and the top repositories, for ``check --repositories --output json``."""
    g = Readings(snapshot.readings).garbage()
    if g is None:
        return None
    return {"storage": g.storage, "lower_bound": g.lower_bound,
            "reclaimable": {mode: {"blobs": blobs, "bytes": size} for mode, (blobs, size) in g.reclaimable.items()},
            "repositories": [{"repository": s.repository, "bytes": s.bytes, "unique_bytes": s.unique_bytes,
                              "day_growth_bytes": s.day_growth} for s in g.repositories]}


def repositories_table(snapshot: Snapshot) -> str:
    """``check --repositories``: the top repositories by bytes, with what garbage collection would free."""
    g = Readings(snapshot.readings).garbage()
    if g is None:
        return NO_GARBAGE + "\n"
    rows = [("REPOSITORY", "BYTES", "UNIQUE BYTES", "GROWTH (LAST DAY)")]
    rows += [(s.repository, format_bytes(s.bytes), format_bytes(s.unique_bytes), growth_text(s.day_growth))
             for s in g.repositories]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    (_, unreferenced), (_, untagged) = g.reclaimable["unreferenced"], g.reclaimable["untagged"]
    bound = " at least" if g.lower_bound else ""
    lines += ["", f"garbage collection would free{bound} {format_bytes(unreferenced)} "
                  f"({format_bytes(untagged)} with --delete-untagged) on storage {g.storage}"]
    if g.lower_bound:
        lines.append("a manifest or link could not be read: Distribution's garbage collector stops on it until it is "
                     "removed (docs/garbage.md)")
    return "\n".join(lines) + "\n"
