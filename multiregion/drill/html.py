"""The drill as one self-contained HTML page: an SVG timeline, then the measures and the budgets.

No external asset and no script: inline CSS and SVG only, so the file opens anywhere, from a CI
artifact or an e-mail. The timeline has one band per client (`<g class="client-band" data-client=...>`):
the region that served the client's traffic as coloured background segments (named in the legend, and
written in the segment where it fits), every request as a small mark, writes on the upper row and reads on
the lower, and vertical markers for the drill's events. Outcome is told by colour and by shape, from the
Okabe-Ito palette, which people with the common colour-vision deficiencies can tell apart: 2xx a green
circle, 4xx an orange triangle, 5xx a vermillion square, no answer a black cross. Every string that comes
from outside is escaped.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence

from multiregion.drill.budgets import number
from multiregion.drill.measures import PHASES, ClientRto, DnsRto, LagStats, Percentiles
from multiregion.drill.records import Request
from multiregion.drill.report import DrillReport

# Outcome colours (Okabe-Ito) and the light region tints drawn behind the marks.
OUTCOME_COLOURS = {"2xx": "#009E73", "4xx": "#E69F00", "5xx": "#D55E00", "none": "#000000"}
OUTCOME_LABELS = {"2xx": "2xx answer", "4xx": "4xx answer", "5xx": "5xx answer", "none": "no answer"}
REGION_TINTS = ("#C6DBEF", "#FBF3B0", "#F2D0E3", "#D9D9D9", "#CDEBE0", "#FDDCC2")
REGION_STROKES = ("#0072B2", "#B8A800", "#CC79A7", "#666666", "#009E73", "#E69F00")
BAND_FILL = "#F7F7F7"

WIDTH, LEFT, RIGHT = 1320, 190, 24
TOP = 58  # room for the event labels
BAND_H, BAND_GAP = 48, 10
AXIS_H, LEGEND_H = 34, 54
MARK = 3.6
NICE_STEPS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600)

CSS = """
body { font-family: "DejaVu Sans", "Helvetica Neue", Arial, sans-serif; color: #1a1a1a; margin: 24px 32px;
       background: #ffffff; font-size: 14px; line-height: 1.4; }
h1 { font-size: 22px; margin: 0 0 4px 0; }
h2 { font-size: 17px; margin: 28px 0 8px 0; }
.subtitle { color: #444; margin: 0 0 14px 0; }
.verdict { display: inline-block; padding: 2px 10px; border-radius: 4px; font-weight: bold; color: #fff; }
.verdict.pass { background: #006d4f; } .verdict.fail { background: #b03a00; }
table { border-collapse: collapse; margin: 4px 0 8px 0; }
th, td { border: 1px solid #c8c8c8; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #efefef; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.overall td { font-weight: 600; background: #fafafa; }
.ok { color: #006d4f; font-weight: 600; } .bad { color: #b03a00; font-weight: 600; }
.note { color: #555; font-size: 12px; }
svg text { font-family: "DejaVu Sans", Arial, sans-serif; }
"""


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def render_html(report: DrillReport) -> str:
    title = f"Failover drill: {report.stack}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title>",
        f"<style>{CSS}</style></head><body>",
        _header(report, title),
        '<h2>Timeline</h2>',
        timeline_svg(report),
        _steps_table(report),
        _measures_table(report),
        _data_section(report),
        _budgets_table(report),
        _notes(report),
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p) + "\n"


# ------------------------------------------------------------------------------------------- header


def _header(report: DrillReport, title: str) -> str:
    verdict = ('<span class="verdict pass">PASSED</span>' if report.passed
               else '<span class="verdict fail">FAILED</span>')
    when = report.started_at.strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    failed = f", failed region {esc(report.failed_region)}" if report.failed_region else ""
    return (f"<h1>{esc(title)} {verdict}</h1>"
            f'<p class="subtitle">Regions {esc(", ".join(report.regions))}; fault: {esc(report.fault)}{failed}; '
            f"{esc(when)}; {len(report.requests)} requests from {len(report.measures.clients)} clients over "
            f"{number(report.t_end - report.t0, 1)} s.</p>")


# ----------------------------------------------------------------------------------------- timeline


class _Scale:
    def __init__(self, t0: float, t1: float):
        self.t0, self.span = t0, max(t1 - t0, 1e-6)
        self.width = WIDTH - LEFT - RIGHT

    def x(self, t: float) -> float:
        return LEFT + (t - self.t0) / self.span * self.width


def timeline_svg(report: DrillReport) -> str:
    clients = list(report.measures.clients) or sorted({r.client for r in report.requests})
    scale = _Scale(report.t0, report.t_end)
    region_index = {r: i for i, r in enumerate(_regions_seen(report))}
    bands_h = len(clients) * (BAND_H + BAND_GAP)
    height = TOP + bands_h + AXIS_H + LEGEND_H
    body = [
        f'<svg class="timeline" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="timeline of the drill, one band per client">',
        f'<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#ffffff"/>',
    ]
    for index, client in enumerate(clients):
        y = TOP + index * (BAND_H + BAND_GAP)
        requests = [r for r in report.requests if r.client == client]
        body.append(_band(client, report.client_regions.get(client), requests, y, scale, region_index))
    bottom = TOP + bands_h
    body.append(_axis(scale, bottom))
    body.append(_event_markers(report, scale, bottom))
    body.append(_legend(region_index, bottom + AXIS_H))
    body.append("</svg>")
    return "\n".join(body)


def _regions_seen(report: DrillReport) -> list[str]:
    seen = list(report.regions)
    for request in report.requests:
        region = request.served_region or request.answered_region
        if region and region not in seen:
            seen.append(region)
    return seen


def _tint(region_index: dict[str, int], region: str) -> tuple[str, str]:
    i = region_index.get(region, len(region_index)) % len(REGION_TINTS)
    return REGION_TINTS[i], REGION_STROKES[i]


def _band(client: str, region: str | None, requests: Sequence[Request], y: float, scale: _Scale,
          region_index: dict[str, int]) -> str:
    label = esc(client)
    where = f'<tspan x="{LEFT - 22}" dy="15" class="note" fill="#555" font-size="11">in {esc(region)}</tspan>' \
        if region else ""
    parts = [f'<g class="client-band" data-client="{label}">',
             f'<text x="{LEFT - 22}" y="{y + BAND_H / 2 - 3}" text-anchor="end" font-size="13" '
             f'font-weight="600">{label}{where}</text>',
             f'<rect class="band" x="{LEFT}" y="{y}" width="{scale.width:.1f}" height="{BAND_H}" fill="{BAND_FILL}" '
             'stroke="#bdbdbd"/>']
    parts.extend(_segments(requests, y, scale, region_index))
    rows = {"write": y + BAND_H * 0.3, "read": y + BAND_H * 0.72}
    for letter, row in (("W", rows["write"]), ("R", rows["read"])):
        parts.append(f'<text x="{LEFT - 5}" y="{row + 3:.1f}" text-anchor="end" font-size="9" '
                     f'fill="#555">{letter}</text>')
    # Conflict writes share the writes' row: they are writes, and their outcome is what matters.
    parts.extend(_mark(r, scale.x(r.t), rows.get(r.kind, rows["write"])) for r in requests)
    parts.append("</g>")
    return "\n".join(parts)


def serving_runs(requests: Sequence[Request]) -> list[tuple[str | None, float, float]]:
    """The serving region over time as (region, start, end): from each request to the next, merged while
    the region stays; the served region when known, else the one DNS answered."""
    ordered = sorted(requests, key=lambda r: r.t)
    runs: list[tuple[str | None, float, float]] = []
    for i, request in enumerate(ordered):
        region = request.served_region or request.answered_region
        end = ordered[i + 1].t if i + 1 < len(ordered) else request.done
        if runs and runs[-1][0] == region:
            runs[-1] = (region, runs[-1][1], end)
        else:
            runs.append((region, request.t, end))
    return runs


def _segments(requests: Sequence[Request], y: float, scale: _Scale, region_index: dict[str, int]) -> Iterable[str]:
    for region, start, end in serving_runs(requests):
        if not region:
            continue
        x0, x1 = scale.x(start), scale.x(end)
        fill, stroke = _tint(region_index, region)
        width = max(x1 - x0, 1.0)
        yield (f'<rect class="region-segment" data-region="{esc(region)}" x="{x0:.1f}" y="{y + 1}" '
               f'width="{width:.1f}" height="{BAND_H - 2}" fill="{fill}"/>'
               f'<rect x="{x0:.1f}" y="{y + BAND_H - 4}" width="{width:.1f}" height="3" fill="{stroke}"/>')
        if width > 90:
            yield (f'<text x="{x0 + width / 2:.1f}" y="{y + BAND_H / 2 + 4}" text-anchor="middle" font-size="10" '
                   f'fill="#333" opacity="0.75">{esc(region)}</text>')


def outcome(status: int) -> str:
    if status == 0:
        return "none"
    if 200 <= status < 300:
        return "2xx"
    return "4xx" if 400 <= status < 500 else "5xx"


def _mark(request: Request, x: float, y: float) -> str:
    kind = outcome(request.status)
    colour = OUTCOME_COLOURS[kind]
    tip = f"<title>{esc(request.kind)} {esc(request.item_id)}: {request.status or 'no answer'}" \
          f"{' ' + esc(request.error) if request.error else ''}</title>"
    cls = f'class="mark mark-{kind}" data-kind="{esc(request.kind)}"'
    if kind == "2xx":
        return f'<circle {cls} cx="{x:.1f}" cy="{y:.1f}" r="{MARK}" fill="{colour}">{tip}</circle>'
    if kind == "4xx":
        s = MARK + 1
        pts = f"{x:.1f},{y - s:.1f} {x + s:.1f},{y + s * 0.8:.1f} {x - s:.1f},{y + s * 0.8:.1f}"
        return f'<polygon {cls} points="{pts}" fill="{colour}">{tip}</polygon>'
    if kind == "5xx":
        s = MARK
        return f'<rect {cls} x="{x - s:.1f}" y="{y - s:.1f}" width="{2 * s:.1f}" height="{2 * s:.1f}" ' \
               f'fill="{colour}">{tip}</rect>'
    s = MARK
    return (f'<path {cls} d="M{x - s:.1f},{y - s:.1f}L{x + s:.1f},{y + s:.1f}M{x - s:.1f},{y + s:.1f}'
            f'L{x + s:.1f},{y - s:.1f}" stroke="{colour}" stroke-width="2" fill="none">{tip}</path>')


def tick_step(span: float, max_ticks: int = 12) -> float:
    return next((s for s in NICE_STEPS if span / s <= max_ticks), NICE_STEPS[-1] * math.ceil(span / 3600 / max_ticks))


def _axis(scale: _Scale, y: float) -> str:
    step = tick_step(scale.span)
    parts = [f'<g class="axis"><line x1="{LEFT}" y1="{y + 4}" x2="{LEFT + scale.width:.1f}" y2="{y + 4}" '
             'stroke="#333"/>']
    for i in range(int(scale.span / step + 1e-9) + 1):
        t = i * step
        x = scale.x(scale.t0 + t)
        parts.append(f'<line x1="{x:.1f}" y1="{y + 4}" x2="{x:.1f}" y2="{y + 9}" stroke="#333"/>'
                     f'<text x="{x:.1f}" y="{y + 22}" text-anchor="middle" font-size="11">{number(t, 1)} s</text>')
    parts.append("</g>")
    return "\n".join(parts)


def _event_markers(report: DrillReport, scale: _Scale, bottom: float) -> str:
    parts = ['<g class="events">']
    for i, event in enumerate(sorted(report.events, key=lambda e: e.t)):
        x = scale.x(event.t)
        label_y = 18 if i % 2 == 0 else 36  # staggered: events close in time must not overwrite each other
        anchor = "end" if x > LEFT + scale.width - 80 else "start"
        dx = -4 if anchor == "end" else 4
        detail = f"<title>{esc(event.name)} at {number(event.t - report.t0, 2)} s {esc(event.detail)}</title>"
        parts.append(f'<g class="event-marker" data-event="{esc(event.name)}">{detail}'
                     f'<line x1="{x:.1f}" y1="{label_y + 4}" x2="{x:.1f}" y2="{bottom}" stroke="#222" '
                     'stroke-width="1.5" stroke-dasharray="5 3"/>'
                     f'<text x="{x + dx:.1f}" y="{label_y}" text-anchor="{anchor}" font-size="12" '
                     f'font-weight="600">{esc(event.name)} {number(event.t - report.t0, 1)} s</text></g>')
    parts.append("</g>")
    return "\n".join(parts)


def _legend(region_index: dict[str, int], y: float) -> str:
    parts = ['<g class="legend">']
    x = LEFT
    for region in region_index:
        fill, stroke = _tint(region_index, region)
        parts.append(f'<rect x="{x}" y="{y + 6}" width="22" height="14" fill="{fill}" stroke="{stroke}"/>'
                     f'<text x="{x + 28}" y="{y + 17}" font-size="12">served by {esc(region)}</text>')
        x += 40 + 8 * len(f"served by {region}")
    y2, x = y + 34, LEFT
    for kind, label in OUTCOME_LABELS.items():
        fake = Request(0.0, "", "write", None, None, {"2xx": 200, "4xx": 404, "5xx": 500, "none": 0}[kind], 0.0)
        parts.append(_mark(fake, x + 6, y2 - 4).replace('class="mark ', 'class="legend-mark '))
        parts.append(f'<text x="{x + 16}" y="{y2}" font-size="12">{esc(label)}</text>')
        x += 120
    parts.append(f'<line x1="{x}" y1="{y2 - 10}" x2="{x}" y2="{y2 + 2}" stroke="#222" stroke-width="1.5" '
                 f'stroke-dasharray="5 3"/><text x="{x + 8}" y="{y2}" font-size="12">drill event</text>'
                 f'<text x="{x + 110}" y="{y2}" font-size="12">W: writes, R: reads</text>')
    parts.append("</g>")
    return "\n".join(parts)


# ------------------------------------------------------------------------------------------- tables


def _table(headers: Sequence[str], rows: Iterable[str], caption: str = "") -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    cap = f"<caption class=\"note\">{esc(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _cell(value: object, num: bool = False, cls: str = "") -> str:
    classes = " ".join(c for c in ("num" if num else "", cls) if c)
    attr = f' class="{classes}"' if classes else ""
    return f"<td{attr}>{esc(value)}</td>"


def _seconds(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{number(value, digits)} s"


def _steps_table(report: DrillReport) -> str:
    if not report.steps:
        return ""
    rows = (f"<tr>{_cell(s.name)}{_cell('ok' if s.ok else 'FAILED', cls='ok' if s.ok else 'bad')}"
            f"{_cell(number(s.seconds, 2), num=True)}{_cell(s.detail)}</tr>" for s in report.steps)
    return "<h2>Steps</h2>" + _table(("step", "result", "seconds", "detail"), rows)


def _rto_text(rto: ClientRto) -> str:
    if rto.seconds is None:
        return rto.note or "-"
    return f"{_seconds(rto.seconds)} ({rto.note})" if rto.note else _seconds(rto.seconds)


def _dns_text(dns: DnsRto) -> str:
    if dns.seconds is None:
        return dns.note or "-"
    return f"{_seconds(dns.seconds)} ({dns.before} -> {dns.after}, seen by {dns.source})"


def _latency_text(p: Percentiles) -> str:
    if not p.count:
        return "-"
    return f"{number(p.p50 or 0, 1)} / {number(p.p95 or 0, 1)} / {number(p.p99 or 0, 1)}"


def _errors_text(errors: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in errors.items()) or "none"


def _availability_text(percent: float | None) -> str:
    return "-" if percent is None else f"{number(percent, 3)}%"


def _measures_table(report: DrillReport) -> str:
    headers = ["client", "region", "requests", "availability", "client-visible RTO", "DNS-level RTO",
               "TTL effect", "errors"] + [f"latency {p} ms (p50/p95/p99)" for p in PHASES]
    rows = []
    for name, m in report.measures.clients.items():
        rows.append("<tr>" + "".join([
            _cell(name), _cell(report.client_regions.get(name, "-")), _cell(m.availability.requests, True),
            _cell(_availability_text(m.availability.percent), True), _cell(_rto_text(m.rto)),
            _cell(_dns_text(m.dns)), _cell(_seconds(m.ttl_effect), True), _cell(_errors_text(m.errors)),
            *(_cell(_latency_text(m.latency[p]), True) for p in PHASES)]) + "</tr>")
    o = report.measures.overall
    rto = _seconds(o.client_rto) + (f" ({o.client_rto_note})" if o.client_rto_note else "") \
        if o.client_rto is not None else o.client_rto_note
    rows.append('<tr class="overall">' + "".join([
        _cell("overall"), _cell("-"), _cell(o.availability.requests, True),
        _cell(_availability_text(o.availability.percent), True), _cell(rto), _cell(_seconds(o.dns_rto)),
        _cell("-"), _cell(_errors_text(o.errors)), *(_cell(_latency_text(o.latency[p]), True) for p in PHASES)])
        + "</tr>")
    caption = (f"RTO ends at the first of {report.measures.recovery_run} consecutive 2xx answers; latency "
               "percentiles by nearest rank over answered requests; phases: before inject, inject to restored, "
               "after restored.")
    extra = (f"<p class=\"note\">Detection (inject to detected) {_seconds(o.detection)}; Route 53 reroute "
             f"(inject to rerouted) {_seconds(o.route53_reroute)}; restore {_seconds(o.restore)}.</p>")
    return "<h2>Measures</h2>" + _table(headers, rows, caption) + extra


def _data_section(report: DrillReport) -> str:
    rows = []
    for label, value in (("RPO during isolation (before restore)", report.rpo_isolation),
                         ("RPO after replication settled", report.rpo_final)):
        if value is None:
            rows.append(f"<tr>{_cell(label)}{_cell('not measured')}</tr>")
            continue
        where = "; ".join(f"{r}: {n}" for r, n in value.by_region.items() if n) or "every region holds every write"
        text = (f"{value.lost} of {value.checked} acknowledged items missing ({where}); window "
                f"{_seconds(value.seconds, 3)}; {value.overwritten} overwritten by a later write")
        if value.unread_regions:
            text += f"; not read: {', '.join(value.unread_regions)}"
        rows.append(f"<tr>{_cell(label)}{_cell(text)}</tr>")
    c = report.conflicts
    if c is not None:
        text = (f"{c.ids} ids, {c.writes} writes ({c.acked} acknowledged); regions "
                f"{'identical' if c.converged else 'DIVERGED on ' + ', '.join(c.diverged_ids)}; "
                f"{c.overwritten} acknowledged writes overwritten; kept per region: "
                f"{', '.join(f'{r}: {n}' for r, n in c.winners.items()) or '-'}")
        rows.append(f"<tr>{_cell('conflicting writes')}{_cell(text)}</tr>")
    rows.append(f"<tr>{_cell('replication lag')}{_cell(_lag_text(report.lag))}</tr>")
    return "<h2>Data</h2>" + _table(("measure", "result"), rows)


def _lag_text(lag: LagStats | None) -> str:
    if lag is None or not lag.count:
        return "not measured"
    return (f"p50 {_seconds(lag.p50, 3)}, p95 {_seconds(lag.p95, 3)}, max {_seconds(lag.max, 3)} "
            f"({lag.count} measured)")


def _budgets_table(report: DrillReport) -> str:
    if not report.budgets:
        return "<h2>Budgets</h2><p class=\"note\">No budget was set.</p>"
    rows = (f"<tr>{_cell(b.name)}{_cell('ok' if b.ok else 'FAILED', cls='ok' if b.ok else 'bad')}"
            f"{_cell(b.message)}</tr>" for b in report.budgets)
    return "<h2>Budgets</h2>" + _table(("budget", "result", "detail"), rows)


def _notes(report: DrillReport) -> str:
    if not report.notes:
        return ""
    return "<h2>Notes</h2><ul>" + "".join(f"<li>{esc(n)}</li>" for n in report.notes) + "</ul>"
