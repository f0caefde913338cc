"""The code location: composes the domain definitions under `defs/` from the settings. Nothing else."""

from __future__ import annotations

import warnings

import dagster as dg

from factory_pipelines.defs.agents.assets import build_agent_asset, missing_feeds
from factory_pipelines.defs.contracts.checks import contract_check, quarantine_rate_check
from factory_pipelines.defs.features.assets import build_feature_assets
from factory_pipelines.defs.governance.assets import build_governance_assets, build_review_sensor
from factory_pipelines.defs.ingestion.assets import build_raw_asset
from factory_pipelines.defs.jobs import REVIEW_JOB, build_jobs
from factory_pipelines.defs.models.assets import build_model_assets
from factory_pipelines.defs.partitions import daily_partitions
from factory_pipelines.defs.registry.assets import build_registry_assets
from factory_pipelines.defs.resources import build_resources
from factory_pipelines.defs.staging.assets import build_staging_asset
from factory_pipelines.lib.agents.manifests import load_manifests
from factory_pipelines.lib.data.conform import STAGING_DDL
from factory_pipelines.lib.data.sources import find_suite, load_sources
from factory_pipelines.settings import Settings, get_settings, turn_off_telemetry


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    """All assets, checks, jobs, schedules and resources for one set of settings."""
    settings = settings or get_settings()
    partitions = daily_partitions(settings)
    sources = load_sources(settings.source_dirs, settings.suite_dirs)
    staged = [name for name in STAGING_DDL if name in sources]

    assets = [build_raw_asset(spec, partitions, str(settings.landing_dir)) for spec in sources.values()]
    assets += [build_staging_asset(name, partitions) for name in staged]
    assets += build_feature_assets(partitions, settings.feature_data_dir, settings.feature_repo, set(staged))
    assets += build_registry_assets()

    checks = []
    for spec in sources.values():
        suite = find_suite(spec.contract, settings.suite_dirs)
        checks.append(
            contract_check(dg.AssetKey(["raw", spec.name]), spec.table, suite, spec.primary_key, partitions, spec)
        )
        checks.append(quarantine_rate_check(spec, partitions))
    for name in staged:
        suite = find_suite(f"staging_{name}_v1", settings.suite_dirs)
        checks.append(
            contract_check(dg.AssetKey(["staging", name]), f"staging.{name}", suite, sources[name].primary_key, partitions)
        )

    check_keys = [key for check in checks for key in check.check_keys]
    agents = {}
    if "tickets" in staged:  # agents read tickets; a code location without them has data assets only
        assets += build_model_assets(settings.labels_dir, settings.manifests_dir.parent / "rules")
        agents = {n: m for n, m in load_manifests(settings.manifests_dir).items()
                  if m.stage != "retired" and not missing_feeds(m, set(staged))}
        assets += [build_agent_asset(m, settings.manifests_dir / f"{n}.yaml", partitions, set(staged), check_keys,
                                     settings.labels_dir, settings.response_cache, settings.policies_dir)
                   for n, m in agents.items()]
    governance = build_governance_assets(settings.manifests_dir) if agents else []
    assets += governance[:1]
    checks += governance[1:]
    jobs, schedules = build_jobs(settings.executor, [n for n, m in agents.items() if m.runs_on_schedule],
                                 governance=bool(governance))
    review_jobs = [j for j in jobs if j.name == REVIEW_JOB]
    return dg.Definitions(
        assets=assets,
        asset_checks=checks,
        jobs=jobs,
        schedules=schedules,
        sensors=[build_review_sensor(j) for j in review_jobs],
        resources=build_resources(settings),
    )


warnings.filterwarnings("ignore", category=dg.PreviewWarning)
turn_off_telemetry()
defs = build_definitions()
