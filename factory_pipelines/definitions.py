"""The code location: the domains under `defs/` composed in layer order, plus the resources. Nothing else.

Each domain's `defs/<domain>/definitions.py` has `build(settings, upstream) -> dg.Definitions`, where
`upstream` is what the domains before it defined; each decides from the settings and from `upstream` what
it defines (see `defs/upstream.py`). `defs` at the bottom is what Dagster loads.
"""

from __future__ import annotations

import warnings

import dagster as dg

from factory_pipelines.defs.agents import definitions as agents
from factory_pipelines.defs.alerts import definitions as alerts
from factory_pipelines.defs.contracts import definitions as contracts
from factory_pipelines.defs.drift import definitions as drift
from factory_pipelines.defs.evals import definitions as evals
from factory_pipelines.defs.features import definitions as features
from factory_pipelines.defs.governance import definitions as governance
from factory_pipelines.defs.ingestion import definitions as ingestion
from factory_pipelines.defs.models import definitions as models
from factory_pipelines.defs.registry import definitions as registry
from factory_pipelines.defs.resources import build_resources
from factory_pipelines.defs.retention import definitions as retention
from factory_pipelines.defs.staging import definitions as staging
from factory_pipelines.settings import Settings, get_settings, turn_off_telemetry

DOMAINS = {  # in layer order: a domain sees what the ones before it defined
    "ingestion": ingestion.build, "staging": staging.build, "contracts": contracts.build,
    "features": features.build, "registry": registry.build, "models": models.build,
    "agents": agents.build, "governance": governance.build, "evals": evals.build,
    "drift": drift.build, "retention": retention.build,
    "alerts": alerts.build,  # last: it watches every check the domains before it define
}


def build_domains(settings: Settings) -> dict[str, dg.Definitions]:
    """Each domain's own definitions, by domain folder name."""
    built: dict[str, dg.Definitions] = {}
    upstream = dg.Definitions()
    for name, build in DOMAINS.items():
        built[name] = build(settings, upstream)
        upstream = dg.Definitions.merge(upstream, built[name])
    return built


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    """All assets, checks, jobs, schedules, sensors and resources for one set of settings."""
    settings = settings or get_settings()
    return dg.Definitions.merge(*build_domains(settings).values(), dg.Definitions(resources=build_resources(settings)))


warnings.filterwarnings("ignore", category=dg.PreviewWarning)
turn_off_telemetry()
defs = build_definitions()
