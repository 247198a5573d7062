"""The estimate of `up`'s wall time on AWS: AWS's waits per node, the longest chain through the graph."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from multiregion import durations
from multiregion.aws import ClientProvider
from multiregion.config import parse_config
from multiregion.engine import GLOBAL, Context, Env, Inputs, NodePlan, Reader, Runner, Stage
from multiregion.estimate import Estimate, NodeTime, estimate, human_seconds, node_time
from multiregion.plan import Builtin, Call, Change, Ref, Retry, Wait

CONFIG = parse_config({"service": "svc", "regions": ["eu-west-1", "us-east-1", "ap-southeast-2"],
                       "domain": {"name": "api.example.com", "hosted_zone": "example.com"}})
SECONDS = {name: d.seconds for name, d in durations.DURATIONS.items()}


def call(method: str, **params: Any) -> Call:
    return Call("dynamodb", "eu-west-1", method, params)


def wait(duration: str, service: str = "dynamodb", **params: Any) -> Wait:
    return Wait(f"{duration} over", service, "eu-west-1", "describe_table", params, "Table.TableStatus",
                ("ACTIVE",), duration=duration)


def change(*ops: Any, action: str = "create") -> Change:
    return Change("s", "eu-west-1", action, "thing", "test", tuple(ops))


# ------------------------------------------------------------------------------------------------ a node


def test_a_wait_right_after_its_call_adds_its_whole_duration() -> None:
    t = node_time(("tables", "eu-west-1"), [change(call("create_table", TableName="t"),
                                                  wait("table_active", TableName="t"))])
    assert t.seconds == SECONDS["table_active"] and t.waits == {"table_active": SECONDS["table_active"]}


def test_replicas_added_one_after_another_add_up() -> None:
    replica = [change(call("update_table", TableName="t", ReplicaUpdates=[{"Create": {"RegionName": r}}]),
                      wait("replica_active", TableName="t")) for r in ("us-east-1", "ap-southeast-2")]
    assert node_time(("global-table", GLOBAL), replica).seconds == 2 * SECONDS["replica_active"]


def test_waits_for_changes_submitted_together_overlap() -> None:
    # Two record changes, each output a change id, then both waited for after: they propagate side by side.
    calls = [change(Call("route53", "us-east-1", "change_resource_record_sets", {"HostedZoneId": "Z"},
                         outputs={f"change:{r}": "ChangeInfo.Id"})) for r in ("a", "b")]
    settle = [Wait("in sync", "route53", "us-east-1", "get_change", {"Id": Ref("routing/global", f"change:{r}", "x")},
                   "ChangeInfo.Status", ("INSYNC",), duration="route53_insync") for r in ("a", "b")]
    t = node_time(("routing", GLOBAL), calls, settle)
    assert t.seconds == SECONDS["route53_insync"]


def test_a_wait_on_a_value_made_by_a_builtin_starts_at_the_builtin() -> None:
    create = Builtin("health-checks.create", "us-east-1", {}, outputs={"check_id": "check_id"})
    reporting = Wait("reporting", "route53", "us-east-1", "get_health_check_status",
                     {"HealthCheckId": Ref("health-checks/eu-west-1", "check_id", "x")}, "s", ("reporting",),
                     duration="health_check_first_verdict")
    tag = Call("route53", "us-east-1", "change_tags_for_resource", {"ResourceId": "x"})
    assert node_time(("health-checks", "eu-west-1"), [change(create, tag, reporting)]).seconds == \
        SECONDS["health_check_first_verdict"]


def test_a_settling_wait_no_call_of_the_node_started_counts_from_the_node_start() -> None:
    t = node_time(("certificates", "eu-west-1"), [], [wait("acm_validation", service="acm", CertificateArn="arn")])
    assert t.seconds == SECONDS["acm_validation"]


def test_a_refusal_with_a_duration_is_waited_out_once_per_node_and_only_when_creating() -> None:
    propagation = Retry(("InvalidParameterValueException",), "IAM", duration="iam_role_assumable")
    create = [change(Call("lambda", "eu-west-1", "create_function", {"FunctionName": f"f{i}"}, retry=(propagation,)),
                     Wait("ready", "lambda", "eu-west-1", "get_function_configuration", {"FunctionName": f"f{i}"},
                          "State", ("Active",), duration="lambda_pending")) for i in range(3)]
    t = node_time(("functions", "eu-west-1"), create)
    assert t.seconds == SECONDS["iam_role_assumable"] + 3 * SECONDS["lambda_pending"]
    assert t.waits == {"iam_role_assumable": SECONDS["iam_role_assumable"],
                       "lambda_pending": 3 * SECONDS["lambda_pending"]}
    update = change(Call("lambda", "eu-west-1", "update_function_configuration", {"FunctionName": "f0"},
                         retry=(propagation,)), action="update")
    assert node_time(("functions", "eu-west-1"), [update]).seconds == 0


def test_waits_without_a_duration_and_calls_cost_nothing() -> None:
    plain = Wait("domain", "apigateway", "eu-west-1", "get_domain_name", {}, "s", ("AVAILABLE",))
    assert node_time(("domains", "eu-west-1"), [change(call("create_domain_name"), plain)]).seconds == 0


def test_an_unknown_duration_is_refused_when_the_plan_is_made() -> None:
    with pytest.raises(ValueError, match="unknown AWS duration 'replica_ready'"):
        wait("replica_ready")
    with pytest.raises(ValueError, match="unknown AWS duration"):
        Retry(("X",), "why", duration="soon")


# ----------------------------------------------------------------------------------------------- a graph


def own(node: tuple[str, str], seconds: float, name: str = "replica_active") -> NodeTime:
    return NodeTime(node, seconds, {name: seconds} if seconds else {})


def test_the_estimate_is_the_longest_chain_and_names_its_waits() -> None:
    tables, replicas = ("tables", "eu-west-1"), ("global-table", GLOBAL)
    certs = [("certificates", r) for r in CONFIG.regions]
    routing = ("routing", GLOBAL)
    graph = {tables: set(), replicas: {tables}, **{c: set() for c in certs}, routing: set(certs)}
    times = {tables: own(tables, 7, "table_active"), replicas: own(replicas, 360),
             **{c: own(c, 120, "acm_validation") for c in certs}, routing: own(routing, 60, "policy_instance_applied")}
    result = estimate(graph, times)
    assert result.seconds == 367
    assert [s.node for s in result.path] == [tables, replicas]
    assert result.starts[replicas] == 7
    # The certificate chain (180 s) is under 90% of the critical path: only the replicas dominate.
    assert result.dominated_by == ("replica_active",)
    assert result.text() == "about 6 minutes, dominated by: replica creation"


def test_a_chain_nearly_as_long_as_the_critical_one_is_named_too() -> None:
    a, b, c = ("a", "x"), ("b", "x"), ("c", "x")
    graph = {a: set(), b: set(), c: {b}}
    times = {a: own(a, 187), b: own(b, 120, "acm_validation"), c: own(c, 60, "policy_instance_applied")}
    result = estimate(graph, times)
    assert result.seconds == 187
    assert result.dominated_by == ("replica_active", "acm_validation", "policy_instance_applied")


def test_regions_side_by_side_cost_one_region_and_dependencies_add_up() -> None:
    regions = [(stage, r) for stage in ("api", "health-checks") for r in CONFIG.regions]
    graph = {n: ({("api", n[1])} if n[0] == "health-checks" else set()) for n in regions}
    times = {n: own(n, 30, "health_check_first_verdict") if n[0] == "health-checks" else own(n, 0) for n in regions}
    assert estimate(graph, times).seconds == 30


def test_nothing_to_wait_for_reads_as_such() -> None:
    assert estimate({}, {}).seconds == 0
    assert Estimate(0.0).text() == "no wait for AWS"
    assert [human_seconds(s) for s in (0.4, 45, 187, 1267, 7200)] == \
        ["1 second", "45 seconds", "3 minutes", "21 minutes", "2.0 hours"]


def test_the_json_form_carries_seconds_labels_and_the_path() -> None:
    a = ("tables", "eu-west-1")
    data = estimate({a: set()}, {a: own(a, 7, "table_active")}).to_dict()
    assert data == {"seconds": 7.0, "text": "about 7 seconds, dominated by: table creation",
                    "dominated_by": ["table creation"], "dominated_by_durations": ["table_active"],
                    "critical_path": [{"node": "tables/eu-west-1", "starts_at": 0.0, "seconds": 7.0,
                                       "waits": {"table_active": 7.0}}]}


# ------------------------------------------------------------------------------------- through the runner


class Waiting(Stage[None]):
    """A stage whose diff plans one change with one wait of a given duration."""

    duration: ClassVar[str] = ""

    def read(self, aws: Reader, region: str) -> None:
        return None

    def diff(self, env: Env, region: str, snapshot: None, inputs: Inputs) -> NodePlan:
        op = Wait("it", "dynamodb", "eu-west-1", "describe_table", {"TableName": region}, "s", ("x",),
                  duration=self.duration)
        return NodePlan(changes=(self.change(region, "create", "thing", "test", op),))


def waiting(name: str, duration: str, scope: str = "region", depends_on: tuple[str, ...] = ()) -> Stage[Any]:
    made = type(name, (Waiting,), {"name": name, "help": name, "scope": scope, "depends_on": depends_on,
                                   "duration": duration})
    return made()  # type: ignore[no-any-return]


def test_a_plan_run_gives_the_estimate_of_its_graph() -> None:
    ctx = Context(config=CONFIG, clients=ClientProvider("http://127.0.0.1:9"), identity=("123456789012", "aws"),
                  packages={})
    stages = [waiting("table", "table_active", "primary"), waiting("replicas", "replica_active", "global", ("table",)),
              waiting("certs", "acm_validation")]
    result = Runner(ctx, stages, "plan").run()
    assert result.estimate().seconds == SECONDS["table_active"] + SECONDS["replica_active"]
    assert [s.node for s in result.estimate().path] == [("table", "eu-west-1"), ("replicas", GLOBAL)]


# ------------------------------------------------------------------------------------------ on the sandbox


def named_durations(plan: dict[str, Any]) -> set[str]:
    return {op["typically"]["duration"] for c in plan["changes"] for op in c["operations"] if "typically" in op}


def test_a_fresh_plan_names_every_aws_wait_and_estimates_the_replica_chain(write_config: Any) -> None:
    from tests.conftest import Cli

    cli = Cli(write_config(regions=["eu-west-1", "us-east-1", "ap-southeast-2"]))
    code, plan = cli.json("plan", "--detail")
    assert code == 0, plan["errors"]
    assert named_durations(plan) == {"table_active", "replica_active", "acm_validation", "domain_available",
                                     "lambda_pending", "health_check_first_verdict", "policy_instance_applied"}
    # Replicas are added one at a time (AWS refuses two Creates in one UpdateTable): the table, then two.
    estimate = plan["estimate"]
    assert estimate["seconds"] == SECONDS["table_active"] + 2 * SECONDS["replica_active"]
    assert [s["node"] for s in estimate["critical_path"]] == ["tables/eu-west-1", "global-table/global"]
    assert estimate["dominated_by"] == ["replica creation"]


def test_latency_records_wait_for_dns_propagation_side_by_side(write_config: Any) -> None:
    from tests.conftest import Cli

    code, plan = Cli(write_config(routing__mode="latency-records")).json("plan")
    assert code == 0, plan["errors"]
    # Two regions: the replica chain (187 s) and, within 10% of it, validation then the records' propagation
    # (120 + 60 s: the two regions' records propagate side by side, not one after the other).
    assert plan["estimate"]["seconds"] == SECONDS["table_active"] + SECONDS["replica_active"]
    assert plan["estimate"]["dominated_by"] == ["replica creation", "ACM validation", "DNS propagation"]


def test_up_reports_its_wall_time_and_the_estimate_of_what_it_did(cli: Any) -> None:
    code, plan = cli.json("plan")
    code, applied = cli.json("up")
    assert code == 0, applied["errors"]
    assert applied["estimate"] == plan["estimate"] and applied["seconds"] > 0
    code, again = cli.json("up")
    assert again["estimate"]["seconds"] == 0 and again["estimate"]["critical_path"] == []
