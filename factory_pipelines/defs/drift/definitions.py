"""The drift domain: `drift/<agent>` per agent in the graph with a `drift/<agent>.yaml` (and
`drift/eval_scores/<agent>` where it turns `eval_scores` on), `drift_job`, and one nightly schedule per agent
(schedules.py)."""

from typing import Any

import dagster as dg

from factory_pipelines.defs.drift.assets import build_drift_asset, build_scores_asset, scores_key
from factory_pipelines.defs.drift.schedules import drift_job, nightly_schedule
from factory_pipelines.defs.partitions import daily_partitions
from factory_pipelines.defs.resources import build_executor
from factory_pipelines.defs.upstream import asset_keys, names
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
    after = asset_keys(upstream, "registry") + asset_keys(upstream, "models")
    assets = {m.name: agent_assets(settings, m, config, partitions, after) for m, config in configured}
    job = drift_job(build_executor(settings), [a.key for built in assets.values() for a in built])
    schedules = [nightly_schedule(agent, job, [a.key for a in built], settings.drift_schedule_cron,
                                  settings.drift_schedule_timezone, settings.start_date.isoformat())
                 for agent, built in assets.items()]
    return dg.Definitions(assets=[a for built in assets.values() for a in built], jobs=[job], schedules=schedules)


def agent_assets(settings: Settings, manifest: Any, config: Any, partitions: dg.PartitionsDefinition,
                 after: list[dg.AssetKey]) -> list[dg.AssetsDefinition]:
    """`drift/<agent>`, after `drift/eval_scores/<agent>` when the configuration turns eval scores on (which
    needs the manifest's evaluation suite)."""
    from factory_pipelines.lib.drift.config import DriftConfigError, config_path

    if config.eval_scores is None:
        return [build_drift_asset(settings, manifest, config, partitions)]
    if manifest.evaluation is None:
        raise DriftConfigError(f"{config_path(settings.drift_config_dir, manifest.name)}: eval_scores needs an "
                               f"evaluation suite, and manifest {manifest.name} names none (evaluation.suite)")
    scores = build_scores_asset(settings, manifest, config, partitions, after)
    return [scores, build_drift_asset(settings, manifest, config, partitions, scores_key(manifest.name))]
