"""The governance domain: the review sweep downstream of the agent runs, its audit check, job and sensor."""

import dagster as dg

from factory_pipelines.defs.governance.assets import build_review_actions
from factory_pipelines.defs.governance.checks import build_audit_check
from factory_pipelines.defs.governance.sensors import review_actions_job, review_actions_sensor
from factory_pipelines.defs.upstream import asset_keys
from factory_pipelines.settings import Settings


def build(settings: Settings, upstream: dg.Definitions) -> dg.Definitions:
    """Nothing without agents (only they escalate into the queue); else the sweep over all of them."""
    agent_runs = asset_keys(upstream, "agents")
    if not agent_runs:
        return dg.Definitions()
    job = review_actions_job()
    return dg.Definitions(assets=[build_review_actions(settings.manifests_dir, agent_runs)],
                          asset_checks=[build_audit_check()], jobs=[job], sensors=[review_actions_sensor(job)])
