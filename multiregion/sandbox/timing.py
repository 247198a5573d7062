"""How long the sandbox's asynchronous operations take: one table, two profiles.

Every duration AWS spends on its own (a table becoming ACTIVE, a certificate being validated, a Lambda
function leaving Pending...) is named here once. The sandbox asks `Sandbox.duration(name)` and gets seconds
of sandbox time:

* profile `fast` (the default): the short, fixed delays the sandbox always used, so tests and the demo
  stay quick; the time scale does not apply (they are already sandbox seconds). A duration the sandbox did
  not model before is 0 here: the state exists (under `SandboxOptions.strict`) but is left at once;
* profile `aws`: the duration AWS typically takes, divided by the time scale, so a benchmark shows the
  wall time a user would wait for on AWS (at time scale 1) or a proportional fraction of it.

Each AWS duration carries its source, starting with its kind: "AWS documentation" (the page and its words),
"published measurement" (who measured what), or "estimate" (no typical figure exists; the reason for the
value, and any bound AWS does give).
"""

from __future__ import annotations

from dataclasses import dataclass

PROFILES = ("fast", "aws")


@dataclass(frozen=True)
class Duration:
    what: str
    fast_seconds: float  # sandbox seconds in the `fast` profile (not time-scaled)
    aws_seconds: float  # AWS seconds in the `aws` profile (divided by the time scale)
    source: str


DURATIONS: dict[str, Duration] = {
    "table_active": Duration(
        "CreateTable until the table is ACTIVE", 0.0, 7.0,
        "published measurement: a CREATING window of 6.8 s for an on-demand table without indexes, measured "
        "on AWS in 2026 in an 'ack-api-quirks' lab note for the ACK DynamoDB controller (DDB-TABLE-101); the "
        "DynamoDB API reference (CreateTable) only says the table is CREATING, then ACTIVE"),
    "replica_active": Duration(
        "a new replica of an empty table until ACTIVE", 0.5, 180.0,
        "AWS documentation: CloudFormation AWS::DynamoDB::GlobalTable, Replicas: 'Adding a replica might "
        "take a few minutes for an empty table, or up to several hours for large tables'; a few minutes = 3"),
    "replica_deleted": Duration(
        "UpdateTable(ReplicaUpdates Delete) until the replica is gone", 0.0, 120.0,
        "estimate: AWS gives no figure for DeleteTableReplica; taken a little shorter than adding a replica "
        "of an empty table, since nothing is copied"),
    "acm_validation": Duration(
        "the validation record exists until the certificate is ISSUED", 1.0, 120.0,
        "estimate: the ACM User Guide (DNS validation) gives only an upper bound, the certificate 'might "
        "continue to display a status of Pending validation for up to 30 minutes'; two minutes is taken as "
        "the typical case once the CNAME is in a Route 53 public zone"),
    "domain_available": Duration(
        "CreateDomainName (REGIONAL) until domainNameStatus is AVAILABLE", 0.0, 0.0,
        "AWS documentation: API Gateway Developer Guide, 'Set up a regional custom domain name', shows the "
        "create call answering \"DomainNameStatus\": \"AVAILABLE\" at once; the API reference says the status "
        "is 'AVAILABLE and UPDATING' (UPDATING while a change to the domain is in progress). Only an "
        "edge-optimized domain waits, for its CloudFront distribution"),
    "route53_insync": Duration(
        "a record change PENDING until GetChange says INSYNC", 0.0, 60.0,
        "AWS documentation: Route 53 Developer Guide (creating a subdomain, and DNS best practices): 'Changes "
        "generally propagate to all Route 53 name servers within 60 seconds'; 'typically takes less than one "
        "minute globally'"),
    "policy_instance_applied": Duration(
        "a traffic policy instance Creating/Updating until Applied", 0.5, 60.0,
        "estimate: AWS gives no figure; an instance writes its records through the same propagation as a "
        "record change (within 60 seconds, see route53_insync). The fast value is the sandbox's former 5 AWS "
        "seconds at the default time scale of 10"),
    "lambda_pending": Duration(
        "CreateFunction until State Active", 0.0, 2.0,
        "estimate: the Lambda Developer Guide (function states) names Pending but gives no duration; a "
        "function without VPC or EFS attachments is usually Active within a couple of seconds"),
    "lambda_update": Duration(
        "an update until LastUpdateStatus Successful", 0.0, 2.0,
        "estimate: the Lambda Developer Guide (function states) names InProgress but gives no duration; a "
        "code or environment change without VPC attachments usually completes within a couple of seconds"),
    "iam_role_assumable": Duration(
        "CreateRole until Lambda can assume the role", 0.0, 10.0,
        "estimate: IAM documents its changes as eventually consistent without a figure; CreateFunction answers "
        "'The role defined for the function cannot be assumed by Lambda' for about ten seconds after "
        "CreateRole (the project's FACTS.md, the retry window deployers such as Chalice use)"),
    "health_check_first_verdict": Duration(
        "CreateHealthCheck until the checkers start to report", 0.0, 30.0,
        "estimate: the Route 53 Developer Guide says a new check must 'propagate to Route 53 health "
        "checkers' before a status appears, and that Route 53 considers it healthy until there is enough "
        "data, without a figure; taken as one default request interval (30 s)"),
}


def sandbox_seconds(name: str, profile: str, time_scale: float) -> float:
    """The duration `name` in sandbox seconds under `profile` (see the module docstring)."""
    duration = DURATIONS[name]
    if profile == "fast":
        return duration.fast_seconds
    if profile == "aws":
        return duration.aws_seconds / time_scale
    raise ValueError(f"unknown timing profile {profile!r}; known: {', '.join(PROFILES)}")
