"""How long AWS's own asynchronous work typically takes: one table, with the source of every figure.

Two users read it: the plan's estimate of `up`'s wall time (`multiregion.estimate`, through the `duration`
a `plan.Wait` names) and the sandbox's `aws` timing profile (`multiregion.sandbox.timing`, which divides
these seconds by its time scale). Keeping one table means the estimate and the sandbox cannot drift apart:
a benchmark on the sandbox measures against the very figures `plan` prints.

Each source starts with its kind: "AWS documentation" (the page and its words), "published measurement"
(who measured what), or "estimate" (no typical figure exists; the reason for the value, and any bound AWS
does give). The README's timing table lists the same rows (a test keeps them equal).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AwsDuration:
    what: str  # the asynchronous step, from the call that starts it to the state that ends it
    seconds: float  # what AWS typically takes, in AWS seconds
    label: str  # a few words for "dominated by: ..." lines
    source: str


DURATIONS: dict[str, AwsDuration] = {
    "table_active": AwsDuration(
        "CreateTable until the table is ACTIVE", 7.0, "table creation",
        "published measurement: a CREATING window of 6.8 s for an on-demand table without indexes, measured "
        "on AWS in 2026 in an 'ack-api-quirks' lab note for the ACK DynamoDB controller (DDB-TABLE-101); the "
        "DynamoDB API reference (CreateTable) only says the table is CREATING, then ACTIVE"),
    "replica_active": AwsDuration(
        "a new replica of an empty table until ACTIVE", 180.0, "replica creation",
        "AWS documentation: CloudFormation AWS::DynamoDB::GlobalTable, Replicas: 'Adding a replica might "
        "take a few minutes for an empty table, or up to several hours for large tables'; a few minutes = 3"),
    "replica_deleted": AwsDuration(
        "UpdateTable(ReplicaUpdates Delete) until the replica is gone", 120.0, "replica removal",
        "estimate: AWS gives no figure for DeleteTableReplica; taken a little shorter than adding a replica "
        "of an empty table, since nothing is copied"),
    "acm_validation": AwsDuration(
        "the validation record exists until the certificate is ISSUED", 120.0, "ACM validation",
        "estimate: the ACM User Guide (DNS validation) gives only an upper bound, the certificate 'might "
        "continue to display a status of Pending validation for up to 30 minutes'; two minutes is taken as "
        "the typical case once the CNAME is in a Route 53 public zone"),
    "domain_available": AwsDuration(
        "CreateDomainName (REGIONAL) until domainNameStatus is AVAILABLE", 0.0, "custom domain",
        "AWS documentation: API Gateway Developer Guide, 'Set up a regional custom domain name', shows the "
        "create call answering \"DomainNameStatus\": \"AVAILABLE\" at once; the API reference says the status "
        "is 'AVAILABLE and UPDATING' (UPDATING while a change to the domain is in progress). Only an "
        "edge-optimized domain waits, for its CloudFront distribution"),
    "route53_insync": AwsDuration(
        "a record change PENDING until GetChange says INSYNC", 60.0, "DNS propagation",
        "AWS documentation: Route 53 Developer Guide (creating a subdomain, and DNS best practices): 'Changes "
        "generally propagate to all Route 53 name servers within 60 seconds'; 'typically takes less than one "
        "minute globally'"),
    "policy_instance_applied": AwsDuration(
        "a traffic policy instance Creating/Updating until Applied", 60.0, "traffic policy record",
        "estimate: AWS gives no figure; an instance writes its records through the same propagation as a "
        "record change (within 60 seconds, see route53_insync)"),
    "lambda_pending": AwsDuration(
        "CreateFunction until State Active", 2.0, "Lambda function creation",
        "estimate: the Lambda Developer Guide (function states) names Pending but gives no duration; a "
        "function without VPC or EFS attachments is usually Active within a couple of seconds"),
    "lambda_update": AwsDuration(
        "an update until LastUpdateStatus Successful", 2.0, "Lambda function update",
        "estimate: the Lambda Developer Guide (function states) names InProgress but gives no duration; a "
        "code or environment change without VPC attachments usually completes within a couple of seconds"),
    "iam_role_assumable": AwsDuration(
        "CreateRole until Lambda can assume the role", 10.0, "IAM role propagation",
        "estimate: IAM documents its changes as eventually consistent without a figure; CreateFunction answers "
        "'The role defined for the function cannot be assumed by Lambda' for about ten seconds after "
        "CreateRole (the project's FACTS.md, the retry window deployers such as Chalice use)"),
    "health_check_first_verdict": AwsDuration(
        "CreateHealthCheck until the checkers start to report", 30.0, "health check start",
        "estimate: the Route 53 Developer Guide says a new check must 'propagate to Route 53 health "
        "checkers' before a status appears, and that Route 53 considers it healthy until there is enough "
        "data, without a figure; taken as one default request interval (30 s)"),
}


def seconds(name: str) -> float:
    """AWS's typical seconds for the step `name`; KeyError names the known steps."""
    try:
        return DURATIONS[name].seconds
    except KeyError:
        raise KeyError(f"no AWS duration {name!r} (known: {', '.join(DURATIONS)})") from None
