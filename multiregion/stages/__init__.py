"""The stages, in the order `up` lists them. Each is one module; the engine orders them by dependency."""

from __future__ import annotations

from multiregion.engine import Stage
from multiregion.stages.api import ApiStage
from multiregion.stages.functions import FunctionsStage
from multiregion.stages.global_table import GlobalTableStage
from multiregion.stages.tables import TablesStage

STAGES: tuple[type[Stage], ...] = (
    TablesStage,
    GlobalTableStage,
    FunctionsStage,
    ApiStage,
)

STAGE_NAMES = tuple(s.name for s in STAGES)
