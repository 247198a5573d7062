"""Stage `api-keys`: with `api.auth: api-key`, one API key and a usage plan for the API in every region.

A client of the global name may be answered by any region, so every region's key carries the same value:
the first region's key is created with a value API Gateway requires to be at least 20 characters, drawn
at random once (a builtin, so the plan shows a placeholder), and the other regions' keys get the value
their region's key must match. A key whose value differs is replaced (API Gateway cannot change a key's
value). `status` shows the value: it is what clients send in `x-api-key`.

Without `api.auth: api-key`, keys and usage plans the stack made are removed.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from multiregion.engine import GLOBAL, Change, Env, Inputs, NodePlan, Reader, Stage
from multiregion.executor import BuiltinContext, builtin
from multiregion.lookups.api_keys import plan_key_ids, stack_keys, stack_usage_plans
from multiregion.plan import Builtin, Call


@dataclass(frozen=True)
class RegionKeys:
    key: dict[str, Any] | None = None  # GetApiKeys item (with its value)
    plan: dict[str, Any] | None = None  # GetUsagePlans item
    plan_key_ids: tuple[str, ...] = ()  # the keys associated with the plan


@dataclass(frozen=True)
class ApiKeysSnapshot:
    regions: dict[str, RegionKeys] = field(default_factory=dict)


@dataclass(frozen=True)
class ApiKeysStatus:
    auth: str
    keys: dict[str, str | None] = field(default_factory=dict)  # region -> key value

    def to_dict(self) -> dict[str, Any]:
        values = {v for v in self.keys.values() if v}
        return {"auth": self.auth, "api_key": values.pop() if len(values) == 1 else None,
                "keys": dict(self.keys)}


def read_region(aws: Reader, region: str) -> RegionKeys:
    keys, plans = stack_keys(aws, region), stack_usage_plans(aws, region)
    plan = plans[0] if plans else None
    plan_keys = plan_key_ids(aws, region, plan["id"]) if plan is not None else ()
    return RegionKeys(keys[0] if keys else None, plan, plan_keys)


class ApiKeysStage(Stage[ApiKeysSnapshot]):
    name = "api-keys"
    help = "With api.auth: api-key, one API key (the same value in every region) and a usage plan per region."
    scope = "global"
    depends_on = ("api",)

    def read(self, aws: Reader, region: str) -> ApiKeysSnapshot:
        return ApiKeysSnapshot({r: read_region(aws, r) for r in aws.config.regions})

    def diff(self, env: Env, region: str, snapshot: ApiKeysSnapshot, inputs: Inputs) -> NodePlan:
        if env.config.api.auth != "api-key":
            return self._remove(env, snapshot, "api.auth is not api-key")
        values = [k.key["value"] for k in snapshot.regions.values() if k.key and k.key.get("value")]
        changes: list[Change] = []
        value: Any
        if values:
            value = values[0]
        else:
            value = self.ref(GLOBAL, "value", "a new random key")
            changes.append(self.change(GLOBAL, "create", "api key value", "drawn at random, the same in every region",
                                       Builtin("api-keys.generate", GLOBAL, outputs={"value": "value"})))
        for target in env.config.regions:
            changes += self._plan_region(env, target, snapshot.regions.get(target, RegionKeys()), value,
                                         inputs.get("api", target, "api_id"))
        return NodePlan(changes=tuple(changes))

    def _plan_region(self, env: Env, region: str, current: RegionKeys, value: Any, api_id: Any) -> list[Change]:
        service, stage = env.config.service, env.config.api.stage
        changes = []
        key_id: Any = current.key["id"] if current.key else None
        if current.key is None or current.key.get("value") != value:
            ops: list[Any] = []
            if current.key is not None:
                ops.append(Call("apigateway", region, "delete_api_key", {"apiKey": current.key["id"]},
                                done_if=("NotFoundException",)))
            output = f"key:{region}"
            ops.append(Call("apigateway", region, "create_api_key", {
                "name": service, "enabled": True, "value": value, "tags": env.tags(region),
                "description": f"multiregion {service}: the key every region accepts"}, outputs={output: "id"}))
            key_id = self.ref(GLOBAL, output, f"the {region} key created above")
            changes.append(self.change(region, "create" if current.key is None else "replace", f"api key {service}",
                                       "the same value as the other regions'", *ops))
        stages = [{"apiId": api_id, "stage": stage}]
        plan_id: Any = current.plan["id"] if current.plan else None
        if current.plan is None:
            output = f"plan:{region}"
            changes.append(self.change(region, "create", f"usage plan {service}", f"for {stage} of the region's API",
                                       Call("apigateway", region, "create_usage_plan", {
                                           "name": service, "apiStages": stages, "tags": env.tags(region)},
                                           outputs={output: "id"})))
            plan_id = self.ref(GLOBAL, output, f"the {region} usage plan created above")
        else:
            have = [{"apiId": s.get("apiId"), "stage": s.get("stage")} for s in current.plan.get("apiStages") or []]
            if have != stages:
                patch = [{"op": "remove", "path": "/apiStages", "value": f"{s['apiId']}:{s['stage']}"} for s in have]
                patch.append({"op": "add", "path": "/apiStages", "value": f"{api_id}:{stage}"})
                changes.append(self.change(region, "update", f"usage plan {service}",
                                           f"stages {have} -> {api_id}/{stage}",
                                           Call("apigateway", region, "update_usage_plan",
                                                {"usagePlanId": plan_id, "patchOperations": patch})))
        if current.plan is None or current.key is None or key_id not in current.plan_key_ids:
            changes.append(self.change(region, "create", f"usage plan key {service}", "the key may use the plan",
                                       Call("apigateway", region, "create_usage_plan_key", {
                                           "usagePlanId": plan_id, "keyId": key_id, "keyType": "API_KEY"})))
        return changes

    def destroy(self, env: Env, region: str, snapshot: ApiKeysSnapshot) -> NodePlan:
        return self._remove(env, snapshot, "down")

    def _remove(self, env: Env, snapshot: ApiKeysSnapshot, why: str) -> NodePlan:
        changes = []
        for target, current in snapshot.regions.items():
            if current.plan is not None:
                stages = [f"{s.get('apiId')}:{s.get('stage')}" for s in current.plan.get("apiStages") or []]
                ops: list[Any] = []
                if stages:  # a usage plan is deleted only once no stage uses it
                    ops.append(Call("apigateway", target, "update_usage_plan", {
                        "usagePlanId": current.plan["id"],
                        "patchOperations": [{"op": "remove", "path": "/apiStages", "value": s} for s in stages]}))
                ops.append(Call("apigateway", target, "delete_usage_plan", {"usagePlanId": current.plan["id"]},
                                done_if=("NotFoundException",)))
                changes.append(self.change(target, "delete", f"usage plan {env.config.service}", why, *ops))
            if current.key is not None:
                changes.append(self.change(target, "delete", f"api key {env.config.service}", why,
                                           Call("apigateway", target, "delete_api_key", {"apiKey": current.key["id"]},
                                                done_if=("NotFoundException",))))
        return NodePlan(changes=tuple(changes))

    def status(self, aws: Reader, region: str) -> ApiKeysStatus:
        snapshot = self.read(aws, region)
        return ApiKeysStatus(aws.config.api.auth, {r: (k.key or {}).get("value") for r, k in snapshot.regions.items()})


@builtin("api-keys.generate")
def generate_key(ctx: BuiltinContext, region: str) -> dict[str, Any]:
    """A new key value: 40 URL-safe characters (API Gateway wants at least 20)."""
    return {"value": secrets.token_urlsafe(30)}
