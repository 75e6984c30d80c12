"""The status page at ``/``: every check's verdict for people without Grafana."""

from __future__ import annotations

import html
import time

from .readings import Readings
from .report import LABELS, NO_GARBAGE, growth_text, requirement
from .sampler import Snapshot
from .units import format_bytes
from .sizing import Verdict, needs

STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:70em;padding:0 1em;color:#1d2330}
h1{font-size:1.5em;margin-bottom:.2em} .sub{color:#5a6275;margin-top:0}
table{border-collapse:collapse;width:100%;margin:1em 0}
th,td{text-align:left;padding:.45em .7em;border-bottom:1px solid #e3e6ee;vertical-align:top}
th{background:#f4f6fa;font-weight:600} td.v{font-weight:700;white-space:nowrap}
.ok{color:#1a7f37} .fail{color:#c62828} .unknown{color:#9a6700} .not_applicable{color:#6e7781}
.summary{padding:.7em 1em;border-radius:6px;font-weight:600} .summary p{margin:0} .summary ul{margin:.4em 0 0}
.summary.good{background:#e6f4ea;color:#1a7f37} .summary.bad{background:#fdecea;color:#c62828}
.detail{color:#5a6275;font-size:.9em} a{color:#0b57d0}
"""


REFRESH_SECONDS = 30  # about two sampling intervals: the page follows the node without reloading by hand


def _summary(verdicts: list[Verdict]) -> str:
    """A banner that names what fails, so a failing node says what to fix above the fold."""
    esc = html.escape
    fails = [v for v in verdicts if v.state == "fail"]
    unknown = sum(v.state == "unknown" for v in verdicts)
    pending = f" ({unknown} not measured yet)" if unknown else ""
    if not fails:
        return f'<p class="summary good">This node meets every sizing check it could measure{pending}</p>'
    items = "".join(f"<li>{esc(v.check)} ({esc(v.severity)}): {esc(v.spec.show(v.observed))}, "
                    f"needs {esc(requirement(v))}</li>" for v in fails)
    return (f'<div class="summary bad"><p>{len(fails)} sizing check(s) failing{pending}</p>'
            f"<ul>{items}</ul></div>")


def _garbage(snapshot: Snapshot) -> str:
    """What garbage collection would free and the top repositories (``check --repositories``'s figures)."""
    esc = html.escape
    g = Readings(snapshot.readings).garbage()
    if g is None:
        return f'<p class="detail" data-garbage="none">{esc(NO_GARBAGE)}</p>'
    bound = " (at least: a manifest could not be read)" if g.lower_bound else ""
    freed = "".join(f'<tr data-mode="{esc(mode)}"><td>{esc(mode)}</td><td>{blobs}</td><td>{esc(format_bytes(n))}</td>'
                    f"</tr>" for mode, (blobs, n) in g.reclaimable.items())
    owners = "".join(f'<tr data-repository="{esc(s.repository)}"><td>{esc(s.repository)}</td>'
                     f"<td>{esc(format_bytes(s.bytes))}</td><td>{esc(format_bytes(s.unique_bytes))}</td>"
                     f"<td>{esc(growth_text(s.day_growth))}</td></tr>" for s in g.repositories)
    return (f'<p class="detail">Storage {esc(g.storage)}{esc(bound)}. unreferenced: what <code>registry '
            f"garbage-collect</code> frees; untagged: with <code>--delete-untagged</code>.</p>"
            f"<table><thead><tr><th>Mode</th><th>Blobs</th><th>Bytes</th></tr></thead><tbody>{freed}</tbody></table>"
            f"<table><thead><tr><th>Repository</th><th>Bytes</th><th>Unique bytes</th><th>Growth (last day)</th></tr>"
            f"</thead><tbody>{owners}</tbody></table>")


def render(snapshot: Snapshot, verdicts: list[Verdict], version: str) -> str:
    esc = html.escape
    rows = []
    for v in verdicts:
        detail = f'<div class="detail">{esc(v.detail)}</div>' if v.detail else ""
        rows.append(
            f'<tr data-check="{esc(v.check)}" data-severity="{esc(v.severity)}" data-state="{v.state}">'
            f'<td>{esc(v.check)}</td><td>{esc(v.severity)}</td><td>{esc(requirement(v))}</td>'
            f'<td>{esc(v.spec.show(v.observed))}{detail}</td><td>{esc(v.threshold_text())}</td>'
            f'<td class="v {v.state}">{esc(LABELS[v.state])}</td></tr>')
    wanted = "".join(
        f'<tr data-need="{esc(n.resource)}"><td>{esc(n.resource)}</td><td>{esc(n.show(n.value))}</td>'
        f'<td>{esc(n.show(n.installed))}</td><td>{esc(n.show(n.kb_minimum))}</td><td>{esc(n.reasoning)}</td></tr>'
        for n in needs(snapshot.readings))
    collectors = []
    for name, s in sorted(snapshot.statuses.items()):
        state = "ok" if s.ok else "fail"
        seen = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(s.last_success)) if s.last_success else "never"
        collectors.append(f'<tr data-collector="{esc(name)}" data-state="{state}"><td>{esc(name)}</td>'
                          f'<td class="v {state}">{"ok" if s.ok else "failing"}</td>'
                          f'<td>{s.duration:.3f} s</td><td>{seen}</td><td>{esc(s.error)}</td></tr>')
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>DTR sizing exporter</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="{REFRESH_SECONDS}"><style>{STYLE}</style></head>
<body><h1>DTR sizing exporter</h1>
<p class="sub">version {esc(version)} &middot; <a href="/metrics">metrics</a> &middot;
<a href="/-/healthy">health</a> &middot; <a href="/-/ready">readiness</a></p>
{_summary(verdicts)}
<h2>Sizing checks</h2>
<table><thead><tr><th>Check</th><th>Severity</th><th>KB requirement</th><th>This node</th><th>Threshold</th>
<th>Verdict</th></tr></thead><tbody>
{''.join(rows)}
</tbody></table>
<h2>This node needs</h2>
<table><thead><tr><th>Resource</th><th>Recommended</th><th>Installed</th><th>KB minimum</th><th>Why</th></tr>
</thead><tbody>{wanted}</tbody></table>
<h2>Garbage and the top repositories</h2>
{_garbage(snapshot)}
<h2>Collectors</h2>
<table><thead><tr><th>Collector</th><th>State</th><th>Last run</th><th>Last success</th><th>Error</th></tr></thead>
<tbody>{''.join(collectors)}</tbody></table>
<p class="detail">Thresholds come from the Docker KB article "What are the minimum requirements for Docker
Trusted Registry (DTR)?"; unknown means the input is not measured yet, n/a that the check does not apply here.</p>
</body></html>
"""
