"""Every place the sandbox reaches into moto, in one module.

moto is the sandbox's control plane: its server application answers every request the sandbox's own layer
leaves alone. What the sandbox adds (see FACTS.md: replication, probing health checks, traffic policies, a
Lambda runtime, ...) needs more than moto's HTTP API: it reads state moto never reports over the wire (a
table's stream records, a hosted zone's records, a function's code bytes) and corrects state moto gets
wrong (an HTTPS health check's port, the lists UpdateHealthCheck clears). None of that is moto's public API,
and any moto release may change it. So no other module imports moto: they call the functions here, and hold
moto's objects only as the protocols below, which name every attribute of moto's models the sandbox reads,
each with the AWS behaviour that needs it. Whatever the sandbox writes into a model goes through a function.

When a moto release breaks the sandbox, this is the module to fix (`make test-moto-latest` runs the
sandbox's tests against the newest moto 5.x; tests/test_moto_compat.py holds the protocols to the objects
the installed moto makes). Call the backend and model functions holding `sandbox.lock`: moto's backends
have no locks.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

if TYPE_CHECKING:
    # moto's own classes, so that mypy holds what this module does with them to moto's annotations.
    from moto.apigateway.models import APIGatewayBackend
    from moto.apigateway.models import DomainName as MotoDomainName
    from moto.awslambda.models import LambdaFunction as MotoFunction
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import Item as MotoItem
    from moto.dynamodb.models.table import StreamRecord as MotoStreamRecord
    from moto.dynamodb.models.table import StreamShard as MotoStreamShard
    from moto.dynamodb.models.table import Table as MotoTable
    from moto.route53.models import FakeZone as MotoZone
    from moto.route53.models import HealthCheck as MotoHealthCheck
    from moto.route53.models import RecordSet as MotoRecordSet
    from moto.route53.models import Route53Backend

# moto keys every backend by account, and the sandbox serves one account.
ACCOUNT_ID = "123456789012"
# moto keeps the global services (Route 53, IAM) under the partition's name.
PARTITION = "aws"
# The attribute the sandbox sets on the stream records of writes the replicator made (see `mark_replicated`).
_ORIGIN = "_multiregion_origin"

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Any]


# ---------------------------------------------------------------------------------------------- moto itself


def installed() -> bool:
    """Whether moto (the `sandbox` extra) can be imported."""
    try:
        import moto  # noqa: F401
    except ImportError:
        return False
    return True


def version() -> str:
    from importlib.metadata import version as dist_version

    return dist_version("moto")


def server_app() -> WSGIApp:
    """moto's server mode as a WSGI application, in this process: what `moto_server` runs, without its socket,
    so the sandbox's layer sees each request first. moto.server re-exports these names; their home is
    werkzeug_app."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    app: WSGIApp = DomainDispatcherApplication(create_backend_app)
    return app


def reset() -> None:
    """Forget every resource in every backend: what POST /moto-api/reset does, without a request."""
    from moto.moto_api._internal.models import moto_api_backend

    moto_api_backend.reset()


class ClientError(Exception):
    """A refusal a moto backend raised, as the code, message and HTTP status AWS would answer with."""

    def __init__(self, code: str, message: str, status: int):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


# ---------------------------------------------------------------------------------------------- DynamoDB
# moto's tables are one region's; global table replicas and replication are the sandbox's (dynamodb.py). The
# replicator reads each replica's stream from moto's model and writes into the other replicas through the
# backend: a whole pass runs in one hold of sandbox.lock without a request, and a replicated write is an
# ordinary write there (it lands in that replica's stream, where the replicator marks it).


class DynamoTable(Protocol):
    """A moto table, opaque outside this module: use the functions below."""

    @property
    def name(self) -> str: ...


class StreamShard(Protocol):
    """A table's stream, opaque: a new one means the stream (or the table) was recreated."""


class StreamRecord(Protocol):
    """One record of a stream, opaque: see `record_body`."""


class DynamoItem(Protocol):
    """One item of a table, opaque: see `item_attributes` and `item_key`."""


def _dynamodb(region: str) -> DynamoDBBackend:
    from moto.dynamodb.models import dynamodb_backends

    return dynamodb_backends[ACCOUNT_ID][region]


def dynamodb_table(region: str, name: str) -> DynamoTable | None:
    table: DynamoTable | None = _dynamodb(region).tables.get(name)
    return table


def describe_table(region: str, name: str) -> dict[str, Any]:
    """moto's TableDescription, as DescribeTable answers it (datetimes unconverted)."""
    description: dict[str, Any] = _dynamodb(region).describe_table(name)["Table"]
    return description


def create_table(region: str, name: str, key_schema: list[dict[str, str]], attributes: list[dict[str, str]],
                 global_indexes: list[dict[str, Any]] | None, stream: dict[str, Any]) -> DynamoTable:
    """A PAY_PER_REQUEST table with a stream: a new replica. The backend, not a request, since the replica is
    made by the source region's UpdateTable; moto's create_table grows a parameter with each table feature."""
    table: DynamoTable = _dynamodb(region).create_table(
        name, schema=key_schema, throughput=None, attr=attributes, global_indexes=global_indexes, indexes=None,
        streams=stream, billing_mode="PAY_PER_REQUEST", sse_specification=None, tags=[],
        deletion_protection_enabled=False, warm_throughput=None)
    return table


def delete_table(region: str, name: str) -> None:
    _dynamodb(region).delete_table(name)


def put_item(region: str, name: str, attributes: dict[str, Any]) -> None:
    _dynamodb(region).put_item(name, attributes)


def delete_item(region: str, name: str, keys: dict[str, Any]) -> None:
    _dynamodb(region).delete_item(name, keys)


def key_names(table: DynamoTable) -> tuple[str, ...]:
    """The table's key attribute names: hash key, then range key if any."""
    moto_table = cast("MotoTable", table)
    return tuple(k for k in (moto_table.hash_key_attr, moto_table.range_key_attr) if k)


def holds_items(table: DynamoTable) -> bool:
    return len(cast("MotoTable", table)) > 0  # moto counts a table's items with len()


def resource_policy(region: str, table: DynamoTable) -> str | None:
    """The table's resource policy document (JSON text), or None when it has none (moto raises its own
    PolicyNotFoundException then; any other error is the sandbox's bug and propagates)."""
    from moto.dynamodb.exceptions import PolicyNotFoundException

    try:
        policy = _dynamodb(region).get_resource_policy(cast("MotoTable", table).table_arn)
    except PolicyNotFoundException:
        return None
    document: str | None = getattr(policy, "policy_doc", None)
    return document


def stream_specification(table: DynamoTable) -> dict[str, Any]:
    """The table's StreamSpecification ({} when it never had one)."""
    return dict(cast("MotoTable", table).stream_specification or {})


def enable_stream(table: DynamoTable, spec: dict[str, Any]) -> None:
    """Turn the stream on, as AWS does when a replica is added (a request would count as the table's update)."""
    cast("MotoTable", table).set_stream_specification(spec)


def table_items(table: DynamoTable) -> list[DynamoItem]:
    """Every item of the table: what a new replica is backfilled with (moto has no export to read instead)."""
    return list(cast("MotoTable", table).all_items())


def item_attributes(item: DynamoItem) -> dict[str, Any]:
    """An item in DynamoDB's JSON (typed attribute values), as PutItem takes it."""
    attributes: dict[str, Any] = cast("MotoItem", item).to_json()["Attributes"]
    return attributes


def item_key(table: DynamoTable, item: DynamoItem) -> dict[str, Any]:
    """An item's key attributes, as a stream record of that item gives them (`Keys`)."""
    moto_table, moto_item = cast("MotoTable", table), cast("MotoItem", item)
    keys = {moto_table.hash_key_attr: moto_item.hash_key.to_json()}
    if moto_table.range_key_attr is not None and moto_item.range_key is not None:
        keys[moto_table.range_key_attr] = moto_item.range_key.to_json()
    return keys


def stream_shard(table: DynamoTable) -> StreamShard | None:
    """The table's one stream shard (moto keeps one per table), or None when its stream is off."""
    return cast("MotoTable", table).stream_shard


def shard_records(shard: StreamShard) -> list[StreamRecord]:
    """The shard's records, oldest first, as moto keeps them (the live list: index into it, do not edit it).
    moto keeps every record (it empties the list only after handing it to a Lambda event source mapping, which
    the sandbox does not use), so a position in it stays valid."""
    return cast("list[StreamRecord]", cast("MotoStreamShard", shard).items)


def record_body(record: StreamRecord) -> dict[str, Any]:
    """A record as GetRecords gives it: eventName, and dynamodb.Keys/NewImage/ApproximateCreationDateTime."""
    return cast("MotoStreamRecord", record).record


def mark_replicated(record: StreamRecord, origin: str) -> None:
    """Mark the record of a write the replicator made, with the region it came from, so it is never sent back.
    AWS's own replication writes leave no such trace; a mark on moto's record keeps the item itself clean."""
    setattr(record, _ORIGIN, origin)


def replicated_from(record: StreamRecord) -> str | None:
    """The region a replicated write came from (see `mark_replicated`); None for the region's own writes."""
    origin: str | None = getattr(record, _ORIGIN, None)
    return origin


@contextlib.contextmanager
def dynamodb_clock(at: datetime.datetime) -> Iterator[None]:
    """moto stamps stream records (ApproximateCreationDateTime) at `at` (naive UTC, as moto keeps its times)
    while the block runs: for tests of simultaneous writes."""
    import moto.dynamodb.models.table as table_module

    # The table module's own binding of moto.core.utils.utcnow, which StreamRecord calls.
    saved = getattr(table_module, "utcnow")  # noqa: B009
    setattr(table_module, "utcnow", lambda: at)  # noqa: B010
    try:
        yield
    finally:
        setattr(table_module, "utcnow", saved)  # noqa: B010


# ---------------------------------------------------------------------------------------------- ACM
# moto issues certificates on a timer; the sandbox decides from DNS (acm.py) and only asks moto whether a
# certificate exists and what moto says of one the sandbox did not follow.


def certificate_status(region: str, arn: str) -> str | None:
    """moto's status of the certificate, or None when the region holds no such certificate."""
    from moto.acm.exceptions import CertificateNotFound
    from moto.acm.models import acm_backends

    try:
        return str(acm_backends[ACCOUNT_ID][region].get_certificate(arn).status)
    except CertificateNotFound:
        return None


# ---------------------------------------------------------------------------------------------- API Gateway
# The REST API data plane (apigateway.py) is the sandbox's: it routes requests by moto's APIs, stages,
# resources, methods and integrations, and by custom domains and their base path mappings.


class Integration(Protocol):
    @property
    def integration_type(self) -> str | None: ...  # AWS_PROXY is what the data plane serves

    @property
    def uri(self) -> str | None: ...  # the Lambda function to invoke

    @property
    def http_method(self) -> str | None: ...  # must be POST for Lambda

    @property
    def credentials(self) -> str | None: ...  # a role instead of the function's resource policy

    @property
    def request_templates(self) -> dict[str, str] | None: ...  # a MOCK's status comes from its template

    @property
    def passthrough_behaviour(self) -> str | None: ...  # moto's spelling: a 415 for an unmapped content type

    @property
    def integration_responses(self) -> Mapping[str, IntegrationResponse] | None: ...  # by status code


class IntegrationResponse(Protocol):
    @property
    def status_code(self) -> str | int: ...

    @property
    def selection_pattern(self) -> str | None: ...  # matched against the integration's status; None: default

    @property
    def response_parameters(self) -> dict[str, str] | None: ...  # method.response.header.X -> 'value'

    @property
    def response_templates(self) -> dict[str, str | None] | None: ...  # moto stores "" as None


class MethodResponse(Protocol):
    @property
    def status_code(self) -> str: ...

    @property
    def response_parameters(self) -> dict[str, Any] | None: ...  # the headers the method may answer


class Method(Protocol):
    @property
    def method_integration(self) -> Integration | None: ...

    @property
    def api_key_required(self) -> bool | None: ...

    @property
    def method_responses(self) -> Mapping[str, MethodResponse]: ...


class Resource(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def parent_id(self) -> str | None: ...

    @property
    def path_part(self) -> str: ...  # a literal, {param} or {greedy+}: how API Gateway matches a path

    @property
    def resource_methods(self) -> Mapping[str, Method]: ...


class Stage(Protocol):
    @property
    def name(self) -> str | None: ...

    @property
    def deployment_id(self) -> str | None: ...  # which frozen resource tree the stage serves

    @property
    def variables(self) -> dict[str, str] | None: ...  # ${stageVariables.x} in integration URIs

    @property
    def method_settings(self) -> dict[str, dict[str, Any]]: ...  # "*/*" or "{path}/{verb}": stage throttling


class RestApi(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def resources(self) -> Mapping[str, Resource]: ...

    @property
    def root_resource_id(self) -> str: ...

    @property
    def stages(self) -> Mapping[str, Stage]: ...

    @property
    def disableExecuteApiEndpoint(self) -> bool | None: ...  # noqa: N802 (moto's name): a 403 on execute-api

    @property
    def binaryMediaTypes(self) -> list[str] | None: ...  # noqa: N802 (moto's name): how bodies cross the proxy

    @property
    def api_key_source(self) -> str | None: ...  # HEADER: x-api-key; AUTHORIZER: from a Lambda authorizer


class DomainName(Protocol):
    @property
    def domain_name(self) -> str: ...

    @property
    def regional_domain_name(self) -> str | None: ...  # the host a regional custom domain answers at

    @property
    def regional_certificate_arn(self) -> str | None: ...  # ACM's InUseBy, and DeleteCertificate's refusal

    @property
    def certificate_arn(self) -> str | None: ...


class BasePathMapping(Protocol):
    @property
    def base_path(self) -> str: ...

    @property
    def rest_api_id(self) -> str: ...

    @property
    def stage(self) -> str | None: ...


def _apigateway(region: str) -> APIGatewayBackend:
    from moto.apigateway.models import apigateway_backends

    return apigateway_backends[ACCOUNT_ID][region]


_T = TypeVar("_T")


def _read_apigateway(region: str, read: Callable[[APIGatewayBackend], _T], empty: _T) -> _T:
    """`read` of the region's backend, or `empty` in a region moto does not know."""
    try:
        backend = _apigateway(region)
    except KeyError:
        return empty
    return read(backend)


def apigateway_regions() -> list[str]:
    """The regions where moto has an API Gateway backend: those something was asked of."""
    from moto.apigateway.models import apigateway_backends

    return [region for region, _ in list(apigateway_backends[ACCOUNT_ID].items())]


def rest_apis(region: str) -> dict[str, RestApi]:
    """The region's REST APIs by id (a copy)."""
    return _read_apigateway(region, lambda backend: dict(backend.apis), {})


def set_binary_media_types(region: str, api_id: str, types: list[str]) -> None:
    """moto drops CreateRestApi's binaryMediaTypes; they decide how bodies cross the proxy integration."""
    _apigateway(region).apis[api_id].binaryMediaTypes = list(types)


def domain_names(region: str) -> dict[str, DomainName]:
    """The region's custom domain names by name (a copy)."""
    return _read_apigateway(region, lambda backend: dict(backend.domain_names), {})


def domain_json(domain: DomainName) -> dict[str, Any]:
    """A domain as moto's GetDomainName answers it."""
    return cast("MotoDomainName", domain).to_json()


# UpdateDomainName's patch paths and the attributes of moto's domain that hold them (moto has no update).
DOMAIN_PATCH_ATTRIBUTES = {"/regionalCertificateArn": "regional_certificate_arn",
                           "/certificateArn": "certificate_arn", "/securityPolicy": "security_policy"}


def patch_domain(domain: DomainName, path: str, value: Any) -> None:
    """Apply one `replace` of UpdateDomainName (path one of DOMAIN_PATCH_ATTRIBUTES)."""
    setattr(domain, DOMAIN_PATCH_ATTRIBUTES[path], value)


def base_path_mappings(region: str, domain: str) -> dict[str, BasePathMapping]:
    """A domain's mappings by base path ("(none)" for the empty one), a copy."""
    return _read_apigateway(region, lambda backend: dict(backend.base_path_mappings.get(domain, {})), {})


def drop_base_path_mappings(region: str, domain: str) -> None:
    """On AWS a deleted domain's mappings go with it; moto keeps them for the next domain of that name."""
    _apigateway(region).base_path_mappings.pop(domain, None)


class ApiKey(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def value(self) -> str: ...  # what a client sends in x-api-key

    @property
    def enabled(self) -> bool: ...


class UsagePlan(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def api_stages(self) -> list[dict[str, Any]]: ...  # [{"apiId", "stage", "throttle": {"/path/VERB": ...}}]

    @property
    def throttle(self) -> dict[str, Any]: ...  # {"rateLimit", "burstLimit"} per key, or {}


def api_keys(region: str) -> dict[str, ApiKey]:
    """The region's API keys by id (a copy)."""
    return _read_apigateway(region, lambda backend: dict(backend.keys), {})


def usage_plans(region: str) -> dict[str, UsagePlan]:
    """The region's usage plans by id (a copy)."""
    return _read_apigateway(region, lambda backend: dict(backend.usage_plans), {})


def usage_plan_key_ids(region: str, plan_id: str) -> set[str]:
    """The ids of the API keys associated with a usage plan (moto keeps the entry of a deleted key: callers
    look the key up in `api_keys` too)."""
    return _read_apigateway(region, lambda backend: set(backend.usage_plan_keys.get(plan_id, {})), set())


# ---------------------------------------------------------------------------------------------- Lambda
# moto stores functions but runs none without Docker: the sandbox's runtime runs the code moto holds.


class Function(Protocol):
    """A moto function (one version of it); hashable, so per-function state can be keyed by it."""

    @property
    def function_arn(self) -> str: ...

    @property
    def function_name(self) -> str: ...

    @property
    def version(self) -> Any: ...  # "$LATEST" or a number: only $LATEST changes (states, updates)

    @property
    def handler(self) -> str | None: ...

    @property
    def run_time(self) -> str | None: ...

    @property
    def code_bytes(self) -> bytes | None: ...  # the deployed zip, which the runtime extracts and runs

    @property
    def code_sha_256(self) -> str: ...

    @property
    def environment_vars(self) -> dict[str, str] | None: ...

    @property
    def timeout(self) -> Any: ...  # enforced by the runtime

    @property
    def memory_size(self) -> Any: ...

    @property
    def reserved_concurrency(self) -> Any: ...  # stored by moto, never enforced: the runtime throttles


def function(region: str, name: str, qualifier: str | None = None) -> Function:
    """The function a name, ARN or qualified ARN names; ClientError as Lambda refuses an unknown one."""
    from moto.awslambda.exceptions import LambdaClientError
    from moto.awslambda.models import lambda_backends

    try:
        fn: Function = lambda_backends[ACCOUNT_ID][region].get_function(name, qualifier)
    except LambdaClientError as exc:
        raise ClientError(exc.error_type, exc.message, exc.code) from None
    return fn


def policy_statements(fn: Function) -> list[dict[str, Any]]:
    """The statements of the function's resource policy (lambda:AddPermission), copies: whether an API may
    invoke it through a proxy integration."""
    return [dict(s) for s in cast("MotoFunction", fn).policy.statements]


# ---------------------------------------------------------------------------------------------- IAM
# Lambda refuses a role IAM has not propagated yet; the sandbox needs each role's creation time for that.


class Role(Protocol):
    """A moto role; hashable."""

    @property
    def create_date(self) -> datetime.datetime: ...  # naive UTC: when the role was made


def role(name: str) -> Role:
    from moto.iam.models import iam_backends

    found: Role = iam_backends[ACCOUNT_ID][PARTITION].get_role(name)
    return found


def role_by_arn(arn: str) -> Role | None:
    from moto.iam.exceptions import NotFoundException
    from moto.iam.models import iam_backends

    try:
        found: Role = iam_backends[ACCOUNT_ID][PARTITION].get_role_by_arn(arn)
    except NotFoundException:
        return None
    return found


# ---------------------------------------------------------------------------------------------- CloudWatch Logs


def put_log_events(region: str, group: str, stream: str, events: list[dict[str, Any]]) -> None:
    """What Lambda writes for an invocation: the group and stream made when missing, then the events in order.
    The backend, not a request: Lambda writes these itself, not through the function's credentials."""
    from moto.logs.models import logs_backends

    backend = logs_backends[ACCOUNT_ID][region]
    backend.ensure_log_group(group)
    backend.ensure_log_stream(group, stream)
    backend.put_log_events(group, stream, events)


# ---------------------------------------------------------------------------------------------- Route 53
# Health checks that probe, traffic policy records, TestDNSAnswer and ACM's DNS validation read moto's zones,
# records and health checks; moto's Route 53 is global (one backend per partition).


class RecordSet(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def type(self) -> Any: ...  # a str: Route 53 requires it (moto types it Any | None)

    @property
    def records(self) -> list[Any] | None: ...  # values: strings, or {"Value": ...}

    @property
    def set_identifier(self) -> str | None: ...

    @property
    def region(self) -> str | None: ...  # latency routing

    @property
    def failover(self) -> str | None: ...  # PRIMARY or SECONDARY

    @property
    def weight(self) -> Any: ...

    @property
    def multi_value_answer(self) -> Any: ...

    @property
    def geo_location(self) -> dict[str, str] | None: ...

    @property
    def health_check_id(self) -> str | None: ...  # what decides whether the record is answered

    @property
    def alias_target(self) -> dict[str, Any] | None: ...  # followed to the target's own answer


class HostedZone(Protocol):
    @property
    def id(self) -> str: ...  # "/hostedzone/Z..." in moto: use zone_id_of for the bare id

    @property
    def name(self) -> str: ...

    @property
    def private_zone(self) -> bool: ...  # TestDNSAnswer and ACM validation read public zones only

    @property
    def rrsets(self) -> Sequence[RecordSet]: ...  # read only: change them with the functions below

    @property
    def delegation_set(self) -> Any: ...  # the zone's name servers, for NS answers


class HealthCheck(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def type_(self) -> str | None: ...

    @property
    def ip_address(self) -> str | None: ...

    @property
    def port(self) -> Any: ...

    @property
    def fqdn(self) -> str | None: ...

    @property
    def resource_path(self) -> str | None: ...

    @property
    def search_string(self) -> str | None: ...

    @property
    def request_interval(self) -> Any: ...  # the prober's schedule

    @property
    def failure_threshold(self) -> Any: ...  # the prober's streak to flip a checker

    @property
    def inverted(self) -> Any: ...

    @property
    def disabled(self) -> Any: ...

    @property
    def regions(self) -> list[str] | None: ...  # the checker regions probed from

    @property
    def children(self) -> list[str] | None: ...  # a CALCULATED check's children

    @property
    def health_threshold(self) -> Any: ...

    @property
    def health_check_version(self) -> int: ...  # UpdateHealthCheck's optimistic lock


def _route53() -> Route53Backend:
    from moto.route53.models import route53_backends

    return route53_backends[ACCOUNT_ID][PARTITION]


def hosted_zones() -> list[HostedZone]:
    return list(_route53().zones.values())


def hosted_zone(zone_id: str) -> HostedZone | None:
    """A zone by its bare id (moto's `zones` is keyed by it)."""
    zone: HostedZone | None = _route53().zones.get(zone_id)
    return zone


def name_server(zone: HostedZone) -> str | None:
    """The zone's first name server, which TestDNSAnswer names as the one that answered."""
    delegation = zone.delegation_set
    servers: list[str] = list(getattr(delegation, "name_servers", None) or [])
    return servers[0] if servers else None


def replace_records(zone: HostedZone, records: list[RecordSet]) -> None:
    """Set the zone's records to `records`: a traffic policy record is the instance's (removed with it, never by
    ChangeResourceRecordSets), which moto's changes know nothing of."""
    cast("MotoZone", zone).rrsets = cast("list[MotoRecordSet]", list(records))


def add_record(zone: HostedZone, record: dict[str, Any]) -> RecordSet:
    """Add a record (ResourceRecordSet members: Name, Type, ResourceRecords, ...) without a change batch."""
    return cast("MotoZone", zone).add_rrset(record)


def policy_instance_of(record: RecordSet) -> str | None:
    """The traffic policy instance whose policy record this is; None for every other record."""
    instance: str | None = getattr(record, "traffic_policy_instance_id", None)
    return instance


def mark_policy_record(record: RecordSet, instance_id: str) -> None:
    """Make the record the policy record of an instance. moto's RecordSet has no such member; the sandbox's
    attribute rides on it (see `policy_instance_of`)."""
    setattr(record, "traffic_policy_instance_id", instance_id)  # noqa: B010


def health_checks() -> list[HealthCheck]:
    return list(_route53().health_checks.values())


def health_check(check_id: str) -> HealthCheck | None:
    check: HealthCheck | None = _route53().health_checks.get(check_id)
    return check


def set_health_check_port(check: HealthCheck, port: int) -> None:
    """moto defaults every type to port 80; AWS uses 443 for HTTPS."""
    cast("MotoHealthCheck", check).port = port


def keep_health_check_lists(check: HealthCheck, regions: list[str] | None, children: list[str] | None) -> None:
    """Put back the checker regions and children that moto's UpdateHealthCheck cleared when the request did not
    name them (AWS keeps a setting the request leaves out)."""
    moto_check = cast("MotoHealthCheck", check)
    moto_check.regions, moto_check.children = regions, children


# UpdateHealthCheck's ResettableElementName values and the attributes of moto's health check that hold them.
RESETTABLE_HEALTH_CHECK_ELEMENTS = {"FullyQualifiedDomainName": "fqdn", "Regions": "regions",
                                    "ResourcePath": "resource_path", "ChildHealthChecks": "children"}


def reset_health_check_element(check: HealthCheck, element: str) -> None:
    """ResetElements: the element back to its default (moto ignores ResetElements)."""
    setattr(check, RESETTABLE_HEALTH_CHECK_ELEMENTS[element], None)


def bump_health_check_version(check: HealthCheck) -> None:
    """Each update increments HealthCheckVersion on AWS; moto's stays 1."""
    cast("MotoHealthCheck", check).health_check_version += 1
