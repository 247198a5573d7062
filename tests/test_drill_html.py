"""The drill's HTML report: self-contained, one band per client, markers, escaping, and what a browser shows."""

from __future__ import annotations

import os
import re
import struct
import subprocess
import xml.etree.ElementTree as ET
import zlib
from collections import Counter
from pathlib import Path

import pytest

from multiregion.drill.budgets import Budgets
from multiregion.drill.html import OUTCOME_COLOURS, REGION_TINTS, render_html
from multiregion.drill.measures import conflicts, replication_lag, rpo
from multiregion.drill.records import EVENT_NAMES, Event, Request, Resolution
from multiregion.drill.report import DrillReport, build_report

CHROMIUM = "/usr/bin/chromium"
WINDOW = (1400, 900)
EU, US = "eu-west-1", "us-east-1"
HOSTILE = '<img src=x onerror="alert(1)">&'


def drill(clients: dict[str, str] | None = None) -> DrillReport:
    """Two clients for 20 s at 5 requests per second; eu-west-1 fails from 5 s to 9 s (500s, then no
    answer, a few 404s), the eu client is answered us-east-1 from 9 s to 16 s, then eu-west-1 again."""
    clients = clients or {"eu-client": EU, "us-client": US}
    requests, lookups = [], []
    for name, home in clients.items():
        for i in range(100):
            t = i * 0.2
            kind = "write" if i % 2 == 0 else "read"
            region, status = home, 201 if kind == "write" else 200
            if home == EU and 9.0 <= t < 16.0:
                region = US
            elif home == EU and 5.0 <= t < 9.0:
                status = 500 if t < 7.0 else (0 if t < 8.0 else 404)
            requests.append(Request(t, name, kind, region, region if status else None, status, 15.0 + i % 5,
                                    f"drill-{name}-{i}", f"tok-{name}-{i}" if kind == "write" else None,
                                    None if 200 <= status < 300 else f"boom {HOSTILE}"))
            if i % 10 == 0:
                lookups.append(Resolution(t, name, f"d-{region}", region, False))
    requests.append(Request(3.0, "eu-client", "conflict", EU, EU, 201, 20.0, "drill-conflict-1", "k-eu"))
    events = [Event(5.0, "inject", "STATUS=404"), Event(6.0, "detected"), Event(8.6, "rerouted"),
              Event(15.0, "restore"), Event(16.0, "restored", HOSTILE)]
    acked = [r for r in requests if r.ok and r.kind == "write"]
    final = {EU: {r.item_id or "": r.token for r in acked[:-2]}, US: {r.item_id or "": r.token for r in acked}}
    return build_report(stack=f"items {HOSTILE}", regions=[EU, US], fault="outage of eu-west-1",
                        requests=requests, resolutions=lookups, events=events,
                        budgets=Budgets(max_rto=2.0, min_availability=99.0), client_regions=clients,
                        steps=[("preflight", True, 0.7, "converged"), ("detect", False, 3.0, f"timeout {HOSTILE}")],
                        failed_region=EU, rpo_final=rpo(acked, final, [EU, US]),
                        conflicts=conflicts([r for r in requests if r.kind == "conflict"], final, [EU, US]),
                        lag=replication_lag([0.04, 0.05, 0.2]), notes=[f"note {HOSTILE}"])


def svg_of(page: str) -> ET.Element:
    match = re.search(r"<svg .*?</svg>", page, re.S)
    assert match, "no inline SVG"
    return ET.fromstring(match.group(0))  # the timeline is well-formed XML


def test_the_page_is_self_contained() -> None:
    page = render_html(drill())
    assert page.startswith("<!DOCTYPE html>")
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page.lower()
    assert "<link" not in page.lower() and "@import" not in page and "url(" not in page
    assert "<style>" in page and "<svg " in page


def test_one_band_per_client_with_a_mark_per_request() -> None:
    report = drill({"eu-client": EU, "us-client": US, "ap-client": "ap-southeast-1"})
    svg = svg_of(render_html(report))

    bands = [g for g in svg.iter("g") if g.get("class") == "client-band"]

    assert [b.get("data-client") for b in bands] == ["eu-client", "us-client", "ap-client"]
    for band in bands:
        name = band.get("data-client")
        mine = [r for r in report.requests if r.client == name]
        marks = [e for e in band.iter() if (e.get("class") or "").startswith("mark ")]
        assert len(marks) == len(mine)
        expected = Counter("2xx" if r.ok else "none" if r.status == 0 else f"{str(r.status)[0]}xx" for r in mine)
        assert Counter(m.get("class", "").split()[1].removeprefix("mark-") for m in marks) == expected
    eu = bands[0]
    segments = [(s.get("data-region")) for s in eu.iter("rect") if s.get("class") == "region-segment"]
    assert segments == [EU, US, EU]  # the serving region over time, merged while it stays


def test_event_markers_are_labelled_and_ordered_on_the_time_axis() -> None:
    svg = svg_of(render_html(drill()))
    markers = [g for g in svg.iter("g") if g.get("class") == "event-marker"]
    assert [m.get("data-event") for m in markers] == list(EVENT_NAMES)
    xs = [float(next(m.iter("line")).get("x1", "0")) for m in markers]
    assert xs == sorted(xs) and len(set(xs)) == len(xs)
    labels = ["".join(next(m.iter("text")).itertext()) for m in markers]
    assert labels[0] == "inject 5 s" and labels[-1] == "restored 16 s"
    ticks = [t.text for g in svg.iter("g") if g.get("class") == "axis" for t in g.iter("text")]
    assert ticks[0] == "0 s" and "10 s" in ticks


def test_every_string_from_outside_is_escaped() -> None:
    report = drill({f"eu {HOSTILE}": EU, "us-client": US})
    page = render_html(report)
    assert HOSTILE not in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;" in page
    assert page.count("<img") == 0
    svg_of(page)  # still well-formed with the hostile client name in attributes and text


def test_the_page_shows_title_measures_and_budgets() -> None:
    page = render_html(drill())
    assert "Failover drill: items" in page and "FAILED" in page
    assert "Regions eu-west-1, us-east-1; fault: outage of eu-west-1" in page
    assert "client-visible RTO" in page and "DNS-level RTO" in page and "TTL effect" in page
    assert "exceeds --max-rto 2 s" in page
    assert "availability" in page and "is below --min-availability 99%" in page
    assert "replication lag" in page and "p95 0.2 s" in page


# ---------------------------------------------------------------------------------- in a browser


def read_png(path: Path, max_rows: int) -> tuple[int, int, list[bytes]]:
    """Width, height and the first `max_rows` rows (RGB bytes) of an 8-bit RGB or RGBA PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    assert header is not None
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    channels = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * channels
    rows, previous = [], bytearray(stride)
    for y in range(min(height, max_rows)):
        start = y * (stride + 1)
        row = unfilter(raw[start], bytearray(raw[start + 1:start + 1 + stride]), previous, channels)
        rows.append(bytes(row) if channels == 3 else bytes(b for i, b in enumerate(row) if i % 4 != 3))
        previous = row
    return width, height, rows


def unfilter(kind: int, row: bytearray, prev: bytearray, bpp: int) -> bytearray:
    if kind == 1:
        for i in range(bpp, len(row)):
            row[i] = (row[i] + row[i - bpp]) & 0xFF
    elif kind == 2:
        row = bytearray((a + b) & 0xFF for a, b in zip(row, prev, strict=True))
    elif kind == 3:
        for i in range(len(row)):
            left = row[i - bpp] if i >= bpp else 0
            row[i] = (row[i] + ((left + prev[i]) >> 1)) & 0xFF
    elif kind == 4:
        for i in range(len(row)):
            a = row[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            row[i] = (row[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
    return row


def colour_count(rows: list[bytes], hex_colour: str) -> int:
    rgb = bytes.fromhex(hex_colour.lstrip("#"))
    return sum(1 for row in rows for i in range(0, len(row), 3) if row[i:i + 3] == rgb)


def test_a_headless_browser_shows_the_timeline(tmp_path: Path) -> None:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (as root it installs Debian's chromium package)")
    page, shot = tmp_path / "drill.html", tmp_path / "drill.png"
    page.write_text(render_html(drill()), encoding="utf-8")

    done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                           "--no-first-run", "--disable-background-networking", "--disable-component-update",
                           "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
                           f"--window-size={WINDOW[0]},{WINDOW[1]}", f"file://{page}"],
                          capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL)

    assert shot.exists(), f"no screenshot (exit {done.returncode}): {done.stderr[-2000:]}"
    width, height, rows = read_png(shot, max_rows=420)  # the timeline is drawn near the top of the page
    assert (width, height) == WINDOW
    for what, colour, at_least in (("2xx marks", OUTCOME_COLOURS["2xx"], 1000),
                                   ("4xx marks", OUTCOME_COLOURS["4xx"], 50),
                                   ("5xx marks", OUTCOME_COLOURS["5xx"], 150),
                                   ("eu-west-1 background", REGION_TINTS[0], 10000),
                                   ("us-east-1 background", REGION_TINTS[1], 10000)):
        assert colour_count(rows, colour) >= at_least, f"too few pixels of {what} ({colour}) in the screenshot"
