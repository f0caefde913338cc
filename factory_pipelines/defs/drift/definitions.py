"""The drift domain: `drift/<agent>` per agent in the graph with a `drift/<agent>.yaml`, `drift_job`, and one
nightly schedule per agent (schedules.py)."""

import dagster as dg

from factory_pipelines.defs.drift.assets import build_drift_asset
from factory_pipelines.defs.drift.schedules import drift_job, nightly_schedule
from factory_pipelines.defs.partitions import daily_partitions
from factory_pipelines.defs.resources import build_executor
from factory_pipelines.defs.upstream import names
from factory_pipelines.settings import Settings


def build(settings: Settings, upstream: dg.Definitions) -> dg.Definitions:
    """Drift for each agent asset upstream whose drift configuration exists (a bad file fails loading, named)."""
    from factory_pipelines.lib.agents.manifests import load_manifests
    from factory_pipelines.lib.drift.config import config_path, load_config

    agents = names(upstream, "agents")
    manifests = [m for name, m in load_manifests(settings.manifests_dir).items() if name in agents]
    configured = [(m, config_path(settings.drift_config_dir, m.name)) for m in manifests]
    configured = [(m, load_config(path)) for m, path in configured if path.is_file()]
    if not configured:
        return dg.Definitions()
    partitions = daily_partitions(settings)
    assets = {m.name: [build_drift_asset(settings, m, config, partitions)] for m, config in configured}
    job = drift_job(build_executor(settings), [a.key for built in assets.values() for a in built])
    schedules = [nightly_schedule(agent, job, [a.key for a in built], settings.drift_schedule_cron,
                                  settings.drift_schedule_timezone, settings.start_date.isoformat())
                 for agent, built in assets.items()]
    return dg.Definitions(assets=[a for built in assets.values() for a in built], jobs=[job], schedules=schedules)
