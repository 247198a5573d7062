"""The drill as a JUnit XML report, for CI systems' test views (GitLab, Jenkins, GitHub test reporters).

One `<testsuite name="multiregion failover drill">` as the document root, one `<testcase>` per timeline
step (classname `multiregion.drill.timeline`) and per budget (`multiregion.drill.budgets`), a
`<failure message=... type=...>` in each failed one, and the main measures as `<properties>`.

The shape is the strictest one commonly used, Jenkins' junit-4.xsd (Ant's XMLJUnitResultFormatter
output): the suite carries name, tests, failures, errors, time, timestamp (ISO 8601 without a zone) and
hostname; its children come in the order properties, testcase*, system-out, system-err; a testcase carries
name, classname and time and holds nothing but its failure (so step details go to the suite's
system-out); a failure carries a type. GitLab and GitHub's reporters read a subset of it.
"""

from __future__ import annotations

import re
import socket
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from multiregion.drill.budgets import BudgetResult
from multiregion.drill.records import TimelineStep
from multiregion.drill.report import DrillReport

SUITE_NAME = "multiregion failover drill"
STEP_CLASS, BUDGET_CLASS = "multiregion.drill.timeline", "multiregion.drill.budgets"
# XML 1.0 cannot carry most control characters, even escaped; an AWS error text may contain them.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _text(value: Any) -> str:
    return _NOT_XML.sub("?", str(value))


def _seconds(value: float) -> str:
    return f"{max(0.0, value):.3f}"


def junit_xml(steps: Sequence[TimelineStep | tuple[str, bool, float, str]], budgets: Sequence[BudgetResult],
              properties: Mapping[str, Any] | None = None, *, timestamp: datetime | None = None,
              hostname: str | None = None, system_out: str = "") -> str:
    cases = [TimelineStep(*s) for s in steps]
    failures = sum(1 for s in cases if not s.ok) + sum(1 for b in budgets if not b.ok)
    when = (timestamp or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(tzinfo=None)
    suite = ET.Element("testsuite", {
        "name": SUITE_NAME,
        "tests": str(len(cases) + len(budgets)),
        "failures": str(failures),
        "errors": "0",
        "skipped": "0",
        "time": _seconds(sum(s.seconds for s in cases)),
        "timestamp": when.isoformat(timespec="seconds"),
        "hostname": _text(hostname or socket.gethostname() or "localhost"),
    })
    props = ET.SubElement(suite, "properties")
    for name, value in (properties or {}).items():
        ET.SubElement(props, "property", {"name": _text(name), "value": _text("" if value is None else value)})
    for step in cases:
        _case(suite, STEP_CLASS, step.name, step.seconds, step.ok, step.detail, "StepFailed")
    for budget in budgets:
        _case(suite, BUDGET_CLASS, budget.name, 0.0, budget.ok, budget.message, "BudgetExceeded")
    ET.SubElement(suite, "system-out").text = _text(system_out)
    ET.SubElement(suite, "system-err").text = ""
    ET.indent(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


def _case(suite: ET.Element, classname: str, name: str, seconds: float, ok: bool, detail: str,
          failure_type: str) -> None:
    case = ET.SubElement(suite, "testcase", {"name": _text(name), "classname": classname, "time": _seconds(seconds)})
    if not ok:
        failure = ET.SubElement(case, "failure", {"message": _text(detail or f"{name} failed"), "type": failure_type})
        failure.text = _text(detail)


def report_junit(report: DrillReport) -> str:
    """The JUnit XML of a `DrillReport`, with its main measures as properties."""
    overall = report.measures.overall
    props: dict[str, Any] = {
        "stack": report.stack,
        "regions": " ".join(report.regions),
        "fault": report.fault,
        "failed_region": report.failed_region,
        "availability_percent": _num(overall.availability.percent),
        "client_rto_seconds": _num(overall.client_rto),
        "client_rto_note": overall.client_rto_note,
        "dns_rto_seconds": _num(overall.dns_rto),
        "detection_seconds": _num(overall.detection),
        "route53_reroute_seconds": _num(overall.route53_reroute),
    }
    if report.rpo_final is not None:
        props["rpo_seconds"] = _num(report.rpo_final.seconds)
        props["lost_writes"] = report.rpo_final.lost
    if report.rpo_isolation is not None:
        props["rpo_isolation_seconds"] = _num(report.rpo_isolation.seconds)
        props["writes_missing_during_isolation"] = report.rpo_isolation.lost
    if report.conflicts is not None:
        props["conflicts_converged"] = str(report.conflicts.converged).lower()
        props["conflict_writes_overwritten"] = report.conflicts.overwritten
    if report.lag is not None:
        props["replication_lag_p95_seconds"] = _num(report.lag.p95)
    # junit-4.xsd has no output inside a testcase: every step's detail goes to the suite's system-out.
    lines = [f"{'PASSED' if report.passed else 'FAILED'}: {SUITE_NAME} of {report.stack}"]
    lines += [f"{s.name}: {'ok' if s.ok else 'FAILED'} {s.seconds:.3f}s {s.detail}".rstrip() for s in report.steps]
    lines += [b.message for b in report.budgets] + list(report.notes)
    summary = "\n".join(lines)
    return junit_xml(report.steps, report.budgets, props, timestamp=report.started_at, system_out=summary)


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"
