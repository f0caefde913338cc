"""The contracts domain: the blocking checks on every raw and staging table (no assets of its own)."""

import dagster as dg

from factory_pipelines.defs.contracts.checks import contract_check, quarantine_rate_check
from factory_pipelines.defs.partitions import daily_partitions
from factory_pipelines.defs.upstream import names
from factory_pipelines.lib.data.sources import find_suite, load_sources
from factory_pipelines.settings import Settings


def build(settings: Settings, upstream: dg.Definitions) -> dg.Definitions:
    """For each `raw/<source>`: `contract_<contract>` (its suite plus the declared row rules) and
    `quarantine_rate_within_bound`; for each `staging/<source>`: `contract_staging_<source>_v1`."""
    partitions = daily_partitions(settings)
    sources = load_sources(settings.source_dirs, settings.suite_dirs)
    checks = []
    for name in names(upstream, "raw"):
        spec = sources[name]
        suite = find_suite(spec.contract, settings.suite_dirs)
        checks.append(contract_check(dg.AssetKey(["raw", name]), spec.table, suite, spec.primary_key, partitions, spec))
        checks.append(quarantine_rate_check(spec, partitions))
    for name in names(upstream, "staging"):
        suite = find_suite(f"staging_{name}_v1", settings.suite_dirs)
        checks.append(contract_check(dg.AssetKey(["staging", name]), f"staging.{name}", suite,
                                     sources[name].primary_key, partitions, follows=sources[name]))
    return dg.Definitions(asset_checks=checks)
