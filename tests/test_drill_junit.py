"""The drill's JUnit XML and JSON report: failing budgets fail testcases, and the XML has the junit-4.xsd shape."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from datetime import datetime, timezone

from multiregion.drill.budgets import BudgetResult, Budgets
from multiregion.drill.junit import SUITE_NAME, junit_xml, report_junit
from multiregion.drill.measures import rpo
from multiregion.drill.records import Event, Request, Resolution, TimelineStep
from multiregion.drill.report import DrillReport, build_report

STEPS = [TimelineStep("preflight", True, 0.76, "stack converged"), TimelineStep("inject", True, 0.06, "STATUS=404"),
         TimelineStep("detect", False, 30.0, "still healthy after 30 s"), ("restore", True, 1.38, "")]
BUDGETS = [BudgetResult("client-visible RTO", 10.0, 12.4, False, "client-visible RTO 12.4 s exceeds --max-rto 10 s"),
           BudgetResult("availability", 99.0, 99.5, True, "availability 99.5% meets --min-availability 99%")]

# junit-4.xsd (Jenkins; Ant's XMLJUnitResultFormatter), the strictest shape CI systems read.
SUITE_REQUIRED = {"name", "tests", "failures", "errors", "time", "timestamp", "hostname"}
SUITE_CHILD_ORDER = ["properties", "testcase", "system-out", "system-err"]
CASE_REQUIRED = {"name", "classname", "time"}
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")  # no zone, as the schema's pattern says
DECIMAL = re.compile(r"^\d+(\.\d+)?$")


def check_junit4_shape(suite: ET.Element) -> None:
    assert suite.tag == "testsuite"
    assert set(suite.attrib) >= SUITE_REQUIRED, SUITE_REQUIRED - set(suite.attrib)
    assert TIMESTAMP.match(suite.attrib["timestamp"])
    assert DECIMAL.match(suite.attrib["time"])
    for attr in ("tests", "failures", "errors", "skipped"):
        assert suite.attrib[attr].isdigit()
    order = [SUITE_CHILD_ORDER.index(child.tag) for child in suite]  # an unknown element raises here
    assert order == sorted(order), [child.tag for child in suite]
    assert [c.tag for c in suite].count("properties") == 1
    properties = suite.find("properties")
    assert properties is not None
    for prop in properties:
        assert prop.tag == "property" and {"name", "value"} <= set(prop.attrib)
    for case in suite.iter("testcase"):
        assert set(case.attrib) >= CASE_REQUIRED and DECIMAL.match(case.attrib["time"])
        children = list(case)
        assert len(children) <= 1 and all(c.tag in ("failure", "error", "skipped") for c in children)
        for failure in children:
            assert "type" in failure.attrib


def test_failed_steps_and_budgets_are_failing_testcases_with_the_right_counts() -> None:
    xml = junit_xml(STEPS, BUDGETS, {"availability_percent": "99.500"}, hostname="ci-runner",
                    timestamp=datetime(2026, 12, 1, 10, 5, 7, tzinfo=timezone.utc))

    suite = ET.fromstring(xml)
    check_junit4_shape(suite)
    assert suite.attrib["name"] == SUITE_NAME
    assert (suite.attrib["tests"], suite.attrib["failures"], suite.attrib["errors"]) == ("6", "2", "0")
    assert suite.attrib["timestamp"] == "2026-12-01T10:05:07"
    assert float(suite.attrib["time"]) == sum(s[2] for s in STEPS)
    cases = {c.attrib["name"]: c for c in suite.iter("testcase")}
    assert list(cases) == ["preflight", "inject", "detect", "restore", "client-visible RTO", "availability"]
    assert cases["detect"].attrib["classname"] == "multiregion.drill.timeline"
    assert cases["detect"].attrib["time"] == "30.000"
    failure = cases["client-visible RTO"].find("failure")
    assert failure is not None and failure.attrib["message"] == "client-visible RTO 12.4 s exceeds --max-rto 10 s"
    assert cases["client-visible RTO"].attrib["classname"] == "multiregion.drill.budgets"
    assert cases["availability"].find("failure") is None and cases["preflight"].find("failure") is None
    props = {p.attrib["name"]: p.attrib["value"] for p in suite.iter("property")}
    assert props == {"availability_percent": "99.500"}


def test_text_from_outside_is_escaped_and_control_characters_removed() -> None:
    step = TimelineStep("verify", False, 1.0, 'AWS said <Error> & "quote"\x1b[0m')
    suite = ET.fromstring(junit_xml([step], []))
    failure = suite.find("testcase/failure")
    assert failure is not None
    assert failure.attrib["message"] == 'AWS said <Error> & "quote"?[0m'


def drill_report(budgets: Budgets) -> DrillReport:
    requests = [Request(float(t), "eu", "write", "eu-west-1", "eu-west-1", 201 if t < 5 or t > 8 else 500, 12.0,
                        f"i{t}", f"tok{t}") for t in range(12)]
    events = [Event(5.0, "inject"), Event(6.0, "detected"), Event(7.0, "rerouted"), Event(10.0, "restore"),
              Event(10.5, "restored")]
    lookups = [Resolution(0.0, "eu", "d-eu", "eu-west-1", False)]
    final = {"eu-west-1": {r.item_id or "": r.token for r in requests if r.ok}}
    return build_report(stack="items", regions=["eu-west-1", "us-east-1"], fault="health check 404 in eu-west-1",
                        requests=requests, resolutions=lookups, events=events, budgets=budgets, steps=STEPS[:2],
                        client_regions={"eu": "eu-west-1"}, failed_region="eu-west-1",
                        rpo_final=rpo([r for r in requests if r.ok], final, ["eu-west-1"]),
                        started_at=datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc))


def test_a_report_with_a_failing_budget_gives_a_failing_testcase_and_its_measures_as_properties() -> None:
    report = drill_report(Budgets(max_rto=1.0, max_rpo=0.0, min_availability=50.0))

    suite = ET.fromstring(report_junit(report))

    check_junit4_shape(suite)
    failed = [c.attrib["name"] for c in suite.iter("testcase") if c.find("failure") is not None]
    assert failed == ["client-visible RTO"]
    assert suite.attrib["failures"] == "1" and suite.attrib["tests"] == "5"
    props = {p.attrib["name"]: p.attrib["value"] for p in suite.iter("property")}
    assert props["client_rto_seconds"] == "4.000"  # first failure at 5, recovered at 9
    assert props["availability_percent"] == "66.667"
    assert props["lost_writes"] == "0" and props["fault"] == "health check 404 in eu-west-1"
    out = suite.find("system-out")
    assert out is not None and "FAILED" in (out.text or "") and "exceeds --max-rto 1 s" in (out.text or "")


def test_the_json_report_has_stable_keys_relative_times_and_rounded_numbers() -> None:
    report = drill_report(Budgets(max_rto=10.0))
    data = report.to_dict()

    assert json.loads(json.dumps(data)) == data
    assert list(data) == ["passed", "stack", "regions", "fault", "failed_region", "started_at", "duration_seconds",
                          "clients", "overall", "recovery_run", "rpo_isolation", "rpo_final", "conflicts",
                          "replication_lag_seconds", "budgets", "timeline", "events", "records", "notes",
                          "consistency", "writes"]
    assert data["passed"] is True and data["started_at"] == "2026-12-01T10:00:00+00:00"
    eu = data["clients"]["eu"]
    assert eu["region"] == "eu-west-1" and eu["availability"]["percent"] == 66.667
    assert eu["rto"] == {"seconds": 4.0, "failed_at": 5.0, "recovered_at": 9.0, "failures": 4, "note": "recovered"}
    assert data["events"][0] == {"t": 5.0, "name": "inject", "detail": ""}
    assert data["duration_seconds"] == 11.012  # last answer at 11 + 12 ms
    assert data["rpo_final"]["lost"] == 0 and data["rpo_isolation"] is None
    assert data["records"]["clients"]["eu"]["by_status"] == {"201": 8, "500": 4}
    assert data["consistency"] == "eventual" and data["writes"]["acknowledged"] + data["writes"]["refused"] > 0
    assert "requests" not in data
    full = report.to_dict(include_records=True)
    assert len(full["requests"]) == 12 and full["requests"][0]["t"] == 0.0
