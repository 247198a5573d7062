"""Route 53 traffic policies, their versions and instances (policy records), which moto answers with 404.

Wire shapes, paths and error codes follow botocore's route53 2013-04-01 model, so boto3 and the AWS CLI
work unchanged. What Route 53 does and the sandbox does too:

* Documents are validated as Route 53 does for what the tool uses (`validate_document`): JSON, format
  version, RecordType, StartRule or StartEndpoint, endpoint types, the structure of every rule type (latency
  and failover are also evaluated by `route53_dns`; geo, weighted, geoproximity and multivalue are checked
  for structure), references that resolve and do not loop, health checks that exist. A bad document is
  refused with InvalidTrafficPolicyDocument and a message naming the problem. The 102,400-character limit
  is a constraint of the API model, so it is refused as InvalidInput, the way AWS refuses model constraints.
* At most 1,000 versions per policy. `DeleteTrafficPolicy` deletes one version and refuses with
  TrafficPolicyInUse while an instance uses it; a deleted version is never listed again but can still be
  read with `GetTrafficPolicy`, as on AWS.
* `CreateTrafficPolicyInstance` is asynchronous: the instance is `Creating` (`Updating` after an update)
  for `duration("policy_instance_applied")` (see timing.py), then `Applied`; a change to an instance before then
  is refused with PriorRequestNotComplete. The policy record (the record of the policy's RecordType at the
  instance's name, with `TrafficPolicyInstanceId`) is in the hosted zone from the start, so
  `ListResourceRecordSets` shows it, as AWS lists it: no TTL (the instance has it) and a placeholder value
  (POLICY_RECORD_VALUE), since the answer depends on who asks. One instance per hosted zone and name.
* The policy record belongs to the instance: `ChangeResourceRecordSets` may delete it (Route 53 then keeps
  the instance, and its bill, with nothing to answer), but not create or replace a record there.
"""

from __future__ import annotations

import ipaddress
import json
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from werkzeug.wrappers import Response

from multiregion.regions import REGIONS
from multiregion.sandbox import moto_compat
from multiregion.sandbox.app import Extension, SandboxRequest
from multiregion.sandbox.moto_compat import HostedZone, RecordSet
from multiregion.sandbox.route53 import (
    LOCATION,
    XMLNS,
    Members,
    RecordChanges,
    Route53Error,
    dispatch,
    fqdn,
    integer,
    parse_xml,
    route,
    text,
    with_body,
    xml_response,
    zone_id_of,
)

MAX_DOCUMENT = 102_400
MAX_VERSIONS = 1000
FORMAT_VERSIONS = ("2015-10-01", "2023-05-09")
RECORD_TYPES = frozenset({"A", "AAAA", "CAA", "CNAME", "MX", "NAPTR", "PTR", "SPF", "SRV", "TXT"})
ENDPOINT_TYPES = frozenset({"value", "cloudfront", "elastic-load-balancer", "application-load-balancer",
                            "network-load-balancer", "elastic-beanstalk", "s3-website"})
ALIAS_ENDPOINTS = ENDPOINT_TYPES - {"value"}
RULE_LISTS = {"latency": "Regions", "geo": "Locations", "weighted": "Items", "geoproximity": "GeoproximityLocations",
              "multivalue": "Items"}
RULE_TYPES = frozenset(RULE_LISTS) | {"failover"}
# What ListResourceRecordSets shows for a policy record instead of its values (and without a TTL): the
# answers depend on the client, so Route 53 lists this placeholder and the TrafficPolicyInstanceId.
POLICY_RECORD_VALUE = ("This resource record set includes an attribute that is unsupported on this Route 53 "
                       "endpoint. Please consider using a newer endpoint or a tool that does so.")
_NAME_RE = re.compile(r"^(\*\.)?([a-z0-9_]([a-z0-9_-]*[a-z0-9_])?\.)*[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?\.?$", re.I)


# ---------------------------------------------------------------------------------------------- documents


def invalid(message: str) -> Route53Error:
    return Route53Error("InvalidTrafficPolicyDocument", message)


def validate_document(raw: str, health_check_exists: Any = lambda _id: True) -> dict[str, Any]:
    """The parsed document, or InvalidTrafficPolicyDocument naming the first problem found."""
    if len(raw) > MAX_DOCUMENT:
        raise Route53Error("InvalidInput", f"1 validation error detected: Value at 'document' failed to satisfy "
                                           f"constraint: Member must have length less than or equal to {MAX_DOCUMENT}")
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise invalid(f"The traffic policy document is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise invalid("The traffic policy document must be a JSON object")
    if doc.get("AWSPolicyFormatVersion") not in FORMAT_VERSIONS:
        raise invalid(f"AWSPolicyFormatVersion must be one of {', '.join(FORMAT_VERSIONS)}, not "
                      f"{doc.get('AWSPolicyFormatVersion')!r}")
    rtype = doc.get("RecordType")
    if rtype not in RECORD_TYPES:
        raise invalid(f"RecordType {rtype!r} is not supported in traffic policies ({', '.join(sorted(RECORD_TYPES))})")
    endpoints, rules = doc.get("Endpoints", {}), doc.get("Rules", {})
    if not isinstance(endpoints, dict) or not isinstance(rules, dict):
        raise invalid("Endpoints and Rules must be JSON objects keyed by the ids you assign")
    for endpoint_id, endpoint in endpoints.items():
        _check_endpoint(endpoint_id, endpoint, rtype)
    for rule_id, rule in rules.items():
        for ref in _rule_refs(rule_id, rule):
            _check_ref(rule_id, ref, endpoints, rules, health_check_exists)
    _check_start(doc, endpoints, rules)
    _check_cycles(rules)
    return doc


def _check_endpoint(endpoint_id: str, endpoint: Any, rtype: str) -> None:
    if not isinstance(endpoint, dict):
        raise invalid(f"Endpoint {endpoint_id!r} must be a JSON object")
    kind, value = endpoint.get("Type"), endpoint.get("Value")
    if kind not in ENDPOINT_TYPES:
        raise invalid(f"Endpoint {endpoint_id!r} has Type {kind!r}; valid types: {', '.join(sorted(ENDPOINT_TYPES))}")
    if not isinstance(value, str) or not value:
        raise invalid(f"Endpoint {endpoint_id!r} needs a Value")
    if kind in ALIAS_ENDPOINTS and rtype not in ("A", "AAAA"):
        raise invalid(f"Endpoint {endpoint_id!r} of Type {kind} can be used only when RecordType is A or AAAA")
    if kind == "value" and rtype in ("A", "AAAA"):
        version = 4 if rtype == "A" else 6
        try:
            ok = ipaddress.ip_address(value).version == version
        except ValueError:
            ok = False
        if not ok:
            raise invalid(f"Endpoint {endpoint_id!r}: {value!r} is not an IPv{version} address for a {rtype} record")
    if kind == "value" and rtype == "CNAME" and not _NAME_RE.match(value):
        raise invalid(f"Endpoint {endpoint_id!r}: {value!r} is not a domain name for a CNAME record")


def _rule_refs(rule_id: str, rule: Any) -> list[dict[str, Any]]:
    """The references a rule makes, after checking the rule's own structure."""
    if not isinstance(rule, dict):
        raise invalid(f"Rule {rule_id!r} must be a JSON object")
    kind = rule.get("RuleType")
    if kind not in RULE_TYPES:
        raise invalid(f"Rule {rule_id!r} has RuleType {kind!r}; valid types: {', '.join(sorted(RULE_TYPES))}")
    if kind == "failover":
        for side in ("Primary", "Secondary"):
            if not isinstance(rule.get(side), dict):
                raise invalid(f"Failover rule {rule_id!r} needs a {side} object")
        return [rule["Primary"], rule["Secondary"]]
    items = rule.get(RULE_LISTS[kind])
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
        raise invalid(f"{kind.capitalize()} rule {rule_id!r} needs a non-empty {RULE_LISTS[kind]} list of objects")
    for item in items:
        _check_item(rule_id, kind, item)
    if kind == "latency":
        regions = [i["Region"] for i in items]
        if len(set(regions)) != len(regions):
            raise invalid(f"Latency rule {rule_id!r} lists a region more than once")
    if kind == "geo" and sum(1 for i in items if i.get("IsDefault")) > 1:
        raise invalid(f"Geo rule {rule_id!r} has more than one default location")
    return items


def _check_item(rule_id: str, kind: str, item: dict[str, Any]) -> None:
    if kind == "latency" and item.get("Region") not in REGIONS:
        raise invalid(f"Latency rule {rule_id!r}: {item.get('Region')!r} is not an AWS region the sandbox knows")
    if kind == "weighted":
        weight = item.get("Weight")
        if not str(weight).isdigit() or not 0 <= int(str(weight)) <= 255:
            raise invalid(f"Weighted rule {rule_id!r}: Weight must be a number from 0 to 255, not {weight!r}")
    if kind == "geo" and not item.get("IsDefault") and not any(k in item for k in ("Continent", "Country",
                                                                                  "Subdivision")):
        raise invalid(f"Geo rule {rule_id!r}: each location needs Continent, Country, Subdivision or IsDefault")
    if kind == "geoproximity":
        has_point = "Latitude" in item and "Longitude" in item
        if not (item.get("Region") or has_point or item.get("LocalZoneGroup")):
            raise invalid(f"Geoproximity rule {rule_id!r}: each location needs Region, Latitude and Longitude, or "
                          "LocalZoneGroup")
    if kind == "multivalue" and "RuleReference" in item:
        raise invalid(f"Multivalue rule {rule_id!r} can refer to endpoints only")


def _check_ref(rule_id: str, ref: dict[str, Any], endpoints: dict[str, Any], rules: dict[str, Any],
               health_check_exists: Any) -> None:
    has_endpoint, has_rule = "EndpointReference" in ref, "RuleReference" in ref
    if has_endpoint == has_rule:
        raise invalid(f"Rule {rule_id!r}: each choice needs exactly one of EndpointReference or RuleReference")
    if has_endpoint and ref["EndpointReference"] not in endpoints:
        raise invalid(f"Rule {rule_id!r} refers to endpoint {ref['EndpointReference']!r}, which is not defined")
    if has_rule and ref["RuleReference"] not in rules:
        raise invalid(f"Rule {rule_id!r} refers to rule {ref['RuleReference']!r}, which is not defined")
    if "EvaluateTargetHealth" in ref and not isinstance(ref["EvaluateTargetHealth"], bool):
        raise invalid(f"Rule {rule_id!r}: EvaluateTargetHealth must be true or false")
    check = ref.get("HealthCheck")
    if check is not None and (not isinstance(check, str) or not health_check_exists(check)):
        raise invalid(f"Rule {rule_id!r} refers to health check {check!r}, which does not exist")


def _check_start(doc: dict[str, Any], endpoints: dict[str, Any], rules: dict[str, Any]) -> None:
    if ("StartRule" in doc) == ("StartEndpoint" in doc):
        raise invalid("The document needs exactly one of StartRule or StartEndpoint")
    if "StartRule" in doc and doc["StartRule"] not in rules:
        raise invalid(f"StartRule {doc['StartRule']!r} is not defined in Rules")
    if "StartEndpoint" in doc and doc["StartEndpoint"] not in endpoints:
        raise invalid(f"StartEndpoint {doc['StartEndpoint']!r} is not defined in Endpoints")


def _check_cycles(rules: dict[str, Any]) -> None:
    done: set[str] = set()

    def visit(rule_id: str, path: tuple[str, ...]) -> None:
        if rule_id in path:
            raise invalid(f"Rules refer to each other in a loop: {' -> '.join(path + (rule_id,))}")
        if rule_id in done:
            return
        for ref in _rule_refs(rule_id, rules[rule_id]):
            if "RuleReference" in ref:
                visit(ref["RuleReference"], path + (rule_id,))
        done.add(rule_id)

    for rule_id in rules:
        visit(rule_id, ())


# ---------------------------------------------------------------------------------------------- model


@dataclass
class PolicyVersion:
    id: str
    version: int
    name: str
    type: str
    document: str
    comment: str | None = None
    deleted: bool = False

    def to_xml(self) -> dict[str, Any]:
        return {"Id": self.id, "Version": self.version, "Name": self.name, "Type": self.type,
                "Document": self.document, "Comment": self.comment}


@dataclass
class Instance:
    id: str
    zone_id: str
    name: str
    ttl: int
    policy_id: str
    version: int
    type: str
    ready_at: float  # sandbox clock time at which the instance is Applied
    clock: Callable[[], float] = field(repr=False)
    state: str = "Creating"

    def current_state(self) -> str:
        if self.state in ("Creating", "Updating") and self.clock() >= self.ready_at:
            self.state = "Applied"
        return self.state

    def to_xml(self) -> dict[str, Any]:
        return {"Id": self.id, "HostedZoneId": self.zone_id, "Name": self.name, "TTL": self.ttl,
                "State": self.current_state(), "Message": "", "TrafficPolicyId": self.policy_id,
                "TrafficPolicyVersion": self.version, "TrafficPolicyType": self.type}

    def sort_key(self) -> tuple[str, str, str]:
        return self.zone_id, self.name, self.type


# ---------------------------------------------------------------------------------------------- extension


class TrafficPolicies(Extension):
    """Traffic policies and instances. All state is guarded by sandbox.lock, like moto's backends."""

    def __init__(self, sandbox: Any):
        super().__init__(sandbox)
        self.policies: dict[str, dict[int, PolicyVersion]] = {}  # id -> version -> policy version
        self.instances: dict[str, Instance] = {}
        self.routes = [
            route("POST", "/trafficpolicy", self._create_policy),
            route("GET", "/trafficpolicies", self._list_policies),
            route("POST", "/trafficpolicy/([^/]+)", self._create_version),
            route("GET", "/trafficpolicies/([^/]+)/versions", self._list_versions),
            route("GET", r"/trafficpolicy/([^/]+)/(\d+)", self._get_policy),
            route("POST", r"/trafficpolicy/([^/]+)/(\d+)", self._update_comment),
            route("DELETE", r"/trafficpolicy/([^/]+)/(\d+)", self._delete_policy),
            route("POST", "/trafficpolicyinstance", self._create_instance),
            route("GET", "/trafficpolicyinstance/([^/]+)", self._get_instance),
            route("POST", "/trafficpolicyinstance/([^/]+)", self._update_instance),
            route("DELETE", "/trafficpolicyinstance/([^/]+)", self._delete_instance),
            route("GET", "/trafficpolicyinstances", self._list_instances),
            route("GET", "/trafficpolicyinstances/hostedzone", self._list_by_zone),
            route("GET", "/trafficpolicyinstances/trafficpolicy", self._list_by_policy),
            route("GET", "/trafficpolicyinstancecount", self._count_instances),
            route("POST", "/hostedzone/([^/]+)/rrset/?", self._change_records),
        ]

    def handle(self, req: SandboxRequest) -> Response | None:
        return dispatch(req, self.routes)

    def reset(self) -> None:
        self.policies.clear()
        self.instances.clear()

    # ------------------------------------------------------------------ Python API (hold sandbox.lock)

    def instance_at(self, zone_id: str, name: str) -> Instance | None:
        """The instance whose policy record answers for `name` in the zone, if its record still exists."""
        wanted = fqdn(name)
        for inst in self.instances.values():
            if inst.zone_id == zone_id_of(zone_id) and inst.name == wanted and self._record_of(inst) is not None:
                return inst
        return None

    def document(self, inst: Instance) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.policies[inst.policy_id][inst.version].document)
        return document

    # ------------------------------------------------------------------ policies

    def _create_policy(self, req: SandboxRequest) -> Response:
        root = parse_xml(req.body)
        name = text(root, "Name", required=True) or ""
        raw = text(root, "Document", required=True, strip=False) or ""
        with self.sandbox.lock:
            doc = validate_document(raw, self._health_check_exists)
            if any(self._live(versions) and versions[1].name == name for versions in self.policies.values()):
                raise Route53Error("TrafficPolicyAlreadyExists", f"A traffic policy named {name!r} already exists", 409)
            policy_id = str(uuid.uuid4())
            created = PolicyVersion(policy_id, 1, name, doc["RecordType"], raw, text(root, "Comment"))
            self.policies[policy_id] = {1: created}
        return xml_response("CreateTrafficPolicyResponse", {"TrafficPolicy": created.to_xml()}, status=201,
                            headers={"Location": f"{LOCATION}/trafficpolicy/{policy_id}/1"})

    def _create_version(self, req: SandboxRequest, policy_id: str) -> Response:
        root = parse_xml(req.body)
        raw = text(root, "Document", required=True, strip=False) or ""
        with self.sandbox.lock:
            versions = self.policies.get(policy_id)
            if not versions or not self._live(versions):
                raise self._no_policy(policy_id)
            doc = validate_document(raw, self._health_check_exists)
            if len(versions) >= MAX_VERSIONS:
                raise Route53Error("TooManyTrafficPolicyVersionsForCurrentPolicy",
                                   f"Traffic policy {policy_id} already has {MAX_VERSIONS} versions; create a new "
                                   "traffic policy from the document of the latest one")
            number = max(versions) + 1
            created = PolicyVersion(policy_id, number, versions[1].name, doc["RecordType"], raw, text(root, "Comment"))
            versions[number] = created
        return xml_response("CreateTrafficPolicyVersionResponse", {"TrafficPolicy": created.to_xml()}, status=201,
                            headers={"Location": f"{LOCATION}/trafficpolicy/{policy_id}/{number}"})

    def _get_policy(self, req: SandboxRequest, policy_id: str, version: str) -> Response:
        with self.sandbox.lock:
            found = self._version(policy_id, int(version), include_deleted=True)
            return xml_response("GetTrafficPolicyResponse", {"TrafficPolicy": found.to_xml()})

    def _update_comment(self, req: SandboxRequest, policy_id: str, version: str) -> Response:
        comment = text(parse_xml(req.body), "Comment", required=True)
        with self.sandbox.lock:
            found = self._version(policy_id, int(version))
            found.comment = comment
            return xml_response("UpdateTrafficPolicyCommentResponse", {"TrafficPolicy": found.to_xml()})

    def _delete_policy(self, req: SandboxRequest, policy_id: str, version: str) -> Response:
        with self.sandbox.lock:
            found = self._version(policy_id, int(version))
            users = [i.id for i in self.instances.values() if i.policy_id == policy_id and i.version == found.version]
            if users:
                raise Route53Error("TrafficPolicyInUse", f"Traffic policy {policy_id} version {version} is in use by "
                                   f"traffic policy instance(s) {', '.join(users)}; delete or update them first")
            found.deleted = True
        return xml_response("DeleteTrafficPolicyResponse", {})

    def _list_policies(self, req: SandboxRequest) -> Response:
        max_items = _max_items(req)
        marker = req.raw.args.get("trafficpolicyid")
        with self.sandbox.lock:
            # Listed in the order they were created in; a policy all of whose versions are deleted is not,
            # but it keeps its place, so a marker naming it (deleted between two pages) still resumes there.
            created = list(self.policies)
            if marker and marker not in self.policies:
                # Not checked against AWS: a marker Route 53 never gave is refused rather than read as "from the
                # start", which would hand a paging client the first page again.
                raise Route53Error("InvalidInput", f"TrafficPolicyIdMarker {marker!r} is not the id of a traffic "
                                                   "policy")
            start = created.index(marker) if marker else 0
            summaries = [_summary(self.policies[i]) for i in created[start:] if self._live(self.policies[i])]
        page, rest = summaries[:max_items], summaries[max_items:]
        # As on AWS, the last page carries no marker (the model calls it required; the API reference says it is
        # omitted when IsTruncated is false).
        return xml_response("ListTrafficPoliciesResponse", {
            "TrafficPolicySummaries": Members("TrafficPolicySummary", page), "IsTruncated": bool(rest),
            "TrafficPolicyIdMarker": rest[0]["Id"] if rest else None, "MaxItems": max_items})

    def _list_versions(self, req: SandboxRequest, policy_id: str) -> Response:
        max_items = _max_items(req)
        marker_arg = req.raw.args.get("trafficpolicyversion") or "1"
        if not marker_arg.isdigit():
            raise Route53Error("InvalidInput", f"trafficpolicyversion must be a number, not {marker_arg!r}")
        marker = int(marker_arg)
        with self.sandbox.lock:
            versions = self.policies.get(policy_id)
            if not versions:
                raise self._no_policy(policy_id)
            live = [v for n, v in sorted(versions.items()) if not v.deleted and n >= marker]
        page, rest = live[:max_items], live[max_items:]
        return xml_response("ListTrafficPolicyVersionsResponse", {
            "TrafficPolicies": Members("TrafficPolicy", [v.to_xml() for v in page]), "IsTruncated": bool(rest),
            "TrafficPolicyVersionMarker": str(rest[0].version) if rest else None, "MaxItems": max_items})

    # ------------------------------------------------------------------ instances

    @staticmethod
    def _instance_target(root: ET.Element) -> tuple[int, str, int]:
        """What Create and UpdateTrafficPolicyInstance both carry: TTL, policy id and version."""
        return (integer(root, "TTL", 0, 2_147_483_647), text(root, "TrafficPolicyId", required=True) or "",
                integer(root, "TrafficPolicyVersion", 1, MAX_VERSIONS))

    def _create_instance(self, req: SandboxRequest) -> Response:
        root = parse_xml(req.body)
        zone_id = zone_id_of(text(root, "HostedZoneId", required=True) or "")
        name = fqdn(text(root, "Name", required=True) or "")
        ttl, policy_id, version = self._instance_target(root)
        with self.sandbox.lock:
            zone = self._zone(zone_id)
            policy = self._version(policy_id, version)
            if not (name == zone.name or name.endswith("." + zone.name)):
                raise Route53Error("InvalidInput", f"The name {name} is not permitted in zone {zone.name}")
            self._check_free(zone, name, policy.type)
            inst = Instance(str(uuid.uuid4()), zone_id, name, ttl, policy_id, version, policy.type,
                            ready_at=self._ready_at(), clock=self.sandbox.now)
            self.instances[inst.id] = inst
            self._write_record(zone, inst)
            body = inst.to_xml()
        return xml_response("CreateTrafficPolicyInstanceResponse", {"TrafficPolicyInstance": body}, status=201,
                            headers={"Location": f"{LOCATION}/trafficpolicyinstance/{inst.id}"})

    def _get_instance(self, req: SandboxRequest, instance_id: str) -> Response:
        with self.sandbox.lock:
            body = self._instance(instance_id).to_xml()
        return xml_response("GetTrafficPolicyInstanceResponse", {"TrafficPolicyInstance": body})

    def _update_instance(self, req: SandboxRequest, instance_id: str) -> Response:
        ttl, policy_id, version = self._instance_target(parse_xml(req.body))
        with self.sandbox.lock:
            inst = self._instance(instance_id)
            policy = self._version(policy_id, version)
            self._settled(inst)
            if policy.type != inst.type:
                raise Route53Error("ConflictingTypes", f"Traffic policy {policy_id} version {version} creates "
                                   f"{policy.type} records; instance {instance_id} has {inst.type} records")
            inst.ttl, inst.policy_id, inst.version = ttl, policy_id, version
            inst.state, inst.ready_at = "Updating", self._ready_at()
            self._write_record(self._zone(inst.zone_id), inst)
            body = inst.to_xml()
        return xml_response("UpdateTrafficPolicyInstanceResponse", {"TrafficPolicyInstance": body})

    def _delete_instance(self, req: SandboxRequest, instance_id: str) -> Response:
        with self.sandbox.lock:
            inst = self._instance(instance_id)
            self._settled(inst)
            zone = moto_compat.hosted_zone(inst.zone_id)
            if zone is not None:
                moto_compat.replace_records(zone, [r for r in zone.rrsets
                                                   if moto_compat.policy_instance_of(r) != inst.id])
            del self.instances[instance_id]
        return xml_response("DeleteTrafficPolicyInstanceResponse", {})

    def _list_instances(self, req: SandboxRequest) -> Response:
        with self.sandbox.lock:
            found = list(self.instances.values())
        return self._instance_page(req, "ListTrafficPolicyInstancesResponse", found, with_zone_marker=True)

    def _list_by_zone(self, req: SandboxRequest) -> Response:
        zone_id = zone_id_of(req.raw.args.get("id") or "")
        with self.sandbox.lock:
            self._zone(zone_id)
            found = [i for i in self.instances.values() if i.zone_id == zone_id]
        return self._instance_page(req, "ListTrafficPolicyInstancesByHostedZoneResponse", found, with_zone_marker=False)

    def _list_by_policy(self, req: SandboxRequest) -> Response:
        policy_id = req.raw.args.get("id") or ""
        try:
            version = int(req.raw.args.get("version") or "")
        except ValueError:
            raise Route53Error("InvalidInput", "version must be a number") from None
        with self.sandbox.lock:
            self._version(policy_id, version, include_deleted=True)
            found = [i for i in self.instances.values() if i.policy_id == policy_id and i.version == version]
        return self._instance_page(req, "ListTrafficPolicyInstancesByPolicyResponse", found, with_zone_marker=True)

    def _count_instances(self, req: SandboxRequest) -> Response:
        with self.sandbox.lock:
            count = len(self.instances)
        return xml_response("GetTrafficPolicyInstanceCountResponse", {"TrafficPolicyInstanceCount": count})

    def _instance_page(self, req: SandboxRequest, root: str, found: list[Instance], with_zone_marker: bool) -> Response:
        args = req.raw.args
        max_items = _max_items(req)
        ordered = sorted(found, key=Instance.sort_key)
        name, rtype = args.get("trafficpolicyinstancename"), args.get("trafficpolicyinstancetype")
        marker = (args.get("hostedzoneid") or "", fqdn(name) if name else "", rtype or "")
        if any(marker):
            start = marker if with_zone_marker else marker[1:]
            ordered = [i for i in ordered if (i.sort_key() if with_zone_marker else i.sort_key()[1:]) >= start]
        with self.sandbox.lock:
            page = [i.to_xml() for i in ordered[:max_items]]
        rest = ordered[max_items:]
        content: dict[str, Any] = {"TrafficPolicyInstances": Members("TrafficPolicyInstance", page)}
        if rest and with_zone_marker:
            content["HostedZoneIdMarker"] = rest[0].zone_id
        if rest:
            content["TrafficPolicyInstanceNameMarker"] = rest[0].name
            content["TrafficPolicyInstanceTypeMarker"] = rest[0].type
        content.update({"IsTruncated": bool(rest), "MaxItems": max_items})
        return xml_response(root, content)

    # ------------------------------------------------------------------ the policy record

    def _change_records(self, req: SandboxRequest, zone_id: str) -> Response | None:
        """Keep policy records the instance's: deletions are allowed, creating or replacing one is not. The
        answer's ChangeInfo is the change registry's (PENDING under strict, see route53.RecordChanges)."""
        return self.sandbox.extension(RecordChanges).submitted(self._changed_records(req, zone_id))

    def _changed_records(self, req: SandboxRequest, zone_id: str) -> Response:
        root = parse_xml(req.body)
        changes = root.findall("ChangeBatch/Changes/Change")
        with self.sandbox.lock:
            zone = moto_compat.hosted_zone(zone_id_of(zone_id))
            if zone is None:
                return self.forward(req).response()
            policy_records = {(fqdn(r.name), r.type): r for r in zone.rrsets if moto_compat.policy_instance_of(r)}
            if not policy_records:
                return self.forward(req).response()
            ours = [c for c in changes if self._policy_record(c, policy_records) is not None]
            if not ours:
                return self.forward(req).response()
            for change in ours:
                self._check_change(change, policy_records)
            removed = [r for r in (self._policy_record(c, policy_records) for c in ours) if r is not None]
            moto_compat.replace_records(zone, [r for r in zone.rrsets if r not in removed])
            batch = root.find("ChangeBatch/Changes")
            assert batch is not None
            for change in ours:
                batch.remove(change)
            if not batch.findall("Change"):
                return _change_info_response()
            answer = self.forward(with_body(req, _reserialize(root)))
            if answer.status != 200:
                moto_compat.replace_records(zone, [*zone.rrsets, *removed])
            return answer.response()

    @staticmethod
    def _policy_record(change: Any, policy_records: dict[tuple[str, str], RecordSet]) -> RecordSet | None:
        rrset = change.find("ResourceRecordSet")
        if rrset is None:
            return None
        name, rtype = fqdn(rrset.findtext("Name") or ""), rrset.findtext("Type") or ""
        if (name, rtype) in policy_records:
            return policy_records[(name, rtype)]
        # A CNAME shares its name with nothing, so it collides with a policy record of any type and back.
        return next((r for (n, t), r in policy_records.items() if n == name and "CNAME" in (t, rtype)), None)

    def _check_change(self, change: Any, policy_records: dict[tuple[str, str], RecordSet]) -> None:
        record = self._policy_record(change, policy_records)
        assert record is not None, "only changes to policy records are checked"
        instance_id = moto_compat.policy_instance_of(record)
        action = change.findtext("Action")
        rrset = change.find("ResourceRecordSet")
        name, rtype = rrset.findtext("Name"), rrset.findtext("Type")
        if action != "DELETE" or rtype != record.type:
            raise Route53Error("InvalidChangeBatch", f"[RRSet with DNS name {name} and type {rtype} cannot be "
                               f"changed: it is the policy record of traffic policy instance "
                               f"{instance_id}; use UpdateTrafficPolicyInstance or "
                               "DeleteTrafficPolicyInstance]")
        if rrset.findtext("TrafficPolicyInstanceId") != instance_id:
            raise Route53Error("InvalidInput", f"Invalid request: Expected exactly one of [AliasTarget, all of [TTL, "
                               f"and ResourceRecords], or TrafficPolicyInstanceId], but found none in Change with "
                               f"[Action=DELETE, Name={name}, Type={rtype}, SetIdentifier=null]")

    def _write_record(self, zone: HostedZone, inst: Instance) -> None:
        moto_compat.replace_records(zone, [r for r in zone.rrsets if moto_compat.policy_instance_of(r) != inst.id])
        record = moto_compat.add_record(zone, {"Name": inst.name, "Type": inst.type,
                                               "ResourceRecords": [POLICY_RECORD_VALUE]})
        moto_compat.mark_policy_record(record, inst.id)

    def _record_of(self, inst: Instance) -> RecordSet | None:
        zone = moto_compat.hosted_zone(inst.zone_id)
        if zone is None:
            return None
        return next((r for r in zone.rrsets if moto_compat.policy_instance_of(r) == inst.id), None)

    def _check_free(self, zone: HostedZone, name: str, rtype: str) -> None:
        for inst in self.instances.values():
            if inst.zone_id == zone_id_of(zone.id) and inst.name == name:
                raise Route53Error("TrafficPolicyInstanceAlreadyExists", f"Traffic policy instance {inst.id} already "
                                   f"answers for {name} in hosted zone {inst.zone_id}", 409)
        for record in zone.rrsets:
            if fqdn(record.name) == name and (record.type == rtype or "CNAME" in (record.type, rtype)):
                raise Route53Error("InvalidInput", f"Tried to create resource record set [name='{name}', "
                                   f"type='{rtype}'] but a {record.type} record set with that name already exists")

    # ------------------------------------------------------------------ lookups (hold sandbox.lock)

    def _ready_at(self) -> float:
        return self.sandbox.now() + self.sandbox.duration("policy_instance_applied")

    @staticmethod
    def _live(versions: dict[int, PolicyVersion]) -> bool:
        return any(not v.deleted for v in versions.values())

    def _version(self, policy_id: str, version: int, include_deleted: bool = False) -> PolicyVersion:
        found = self.policies.get(policy_id, {}).get(version)
        if found is None or (found.deleted and not include_deleted):
            raise Route53Error("NoSuchTrafficPolicy", f"No traffic policy found with ID {policy_id} and version "
                                                      f"{version}", 404)
        return found

    @staticmethod
    def _no_policy(policy_id: str) -> Route53Error:
        return Route53Error("NoSuchTrafficPolicy", f"No traffic policy found with ID {policy_id}", 404)

    def _instance(self, instance_id: str) -> Instance:
        inst = self.instances.get(instance_id)
        if inst is None:
            raise Route53Error("NoSuchTrafficPolicyInstance", f"No traffic policy instance found with ID "
                                                              f"{instance_id}", 404)
        return inst

    @staticmethod
    def _settled(inst: Instance) -> None:
        if inst.current_state() in ("Creating", "Updating"):
            raise Route53Error("PriorRequestNotComplete", f"Traffic policy instance {inst.id} is still "
                               f"{inst.state.lower()}; retry when its State is Applied")

    @staticmethod
    def _zone(zone_id: str) -> HostedZone:
        zone = moto_compat.hosted_zone(zone_id)
        if zone is None:
            raise Route53Error("NoSuchHostedZone", f"No hosted zone found with ID: {zone_id}", 404)
        return zone

    @staticmethod
    def _health_check_exists(check_id: str) -> bool:
        return moto_compat.health_check(check_id) is not None


def _summary(versions: dict[int, PolicyVersion]) -> dict[str, Any]:
    latest = versions[max(versions)]
    return {"Id": latest.id, "Name": latest.name, "Type": latest.type, "LatestVersion": latest.version,
            "TrafficPolicyCount": sum(1 for v in versions.values() if not v.deleted)}


def _max_items(req: SandboxRequest) -> int:
    raw = req.raw.args.get("maxitems") or "100"
    if not raw.isdigit() or not 1 <= int(raw) <= 100:
        raise Route53Error("InvalidInput", f"maxitems must be a number from 1 to 100, not {raw!r}")
    return int(raw)


def _reserialize(root: ET.Element) -> bytes:
    root.set("xmlns", XMLNS)
    body: bytes = ET.tostring(root, encoding="utf-8")
    return body


def _change_info_response() -> Response:
    now = datetime.now(timezone.utc)
    return xml_response("ChangeResourceRecordSetsResponse", {"ChangeInfo": {
        "Id": f"/change/C{uuid.uuid4().hex[:12].upper()}", "Status": "INSYNC", "SubmittedAt": now}})

