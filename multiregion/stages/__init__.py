"""The stages, in the order `up` lists them. Each is one module; the engine orders them by dependency.

This registry is the only place that imports the stage modules; no stage imports another."""

from __future__ import annotations

from typing import Any

from multiregion.engine import Stage
from multiregion.stages.api import ApiStage
from multiregion.stages.api_keys import ApiKeysStage
from multiregion.stages.certificates import CertificatesStage
from multiregion.stages.domains import DomainsStage
from multiregion.stages.functions import FunctionsStage
from multiregion.stages.global_table import GlobalTableStage
from multiregion.stages.health_checks import HealthChecksStage
from multiregion.stages.roles import RolesStage
from multiregion.stages.routing import RoutingStage
from multiregion.stages.tables import TablesStage
from multiregion.stages.zone import HostedZoneStage

STAGES: tuple[Stage[Any], ...] = (
    TablesStage(),
    GlobalTableStage(),
    RolesStage(),
    FunctionsStage(),
    ApiStage(),
    ApiKeysStage(),
    HostedZoneStage(),
    CertificatesStage(),
    DomainsStage(),
    HealthChecksStage(),
    RoutingStage(),
)

STAGE_NAMES = tuple(s.name for s in STAGES)
BY_NAME = {s.name: s for s in STAGES}
