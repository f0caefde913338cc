"""The registry domain: prompt files synced to the MLflow Prompt Registry as versioned prompts."""

import hashlib
from pathlib import Path

import dagster as dg

from factory_pipelines.lib.agents.models.prompts import load_prompts, sync_prompts
from factory_pipelines.resources.tracking import TrackingResource
from factory_pipelines.resources.warehouse import WarehouseResource

PROMPTS_DIR = Path(__file__).with_name("prompts")


def build_registry_assets() -> list[dg.AssetsDefinition]:
    files = sorted(PROMPTS_DIR.glob("*.yaml"))
    content_hash = hashlib.sha256(b"".join(p.read_bytes() for p in files)).hexdigest()[:12]

    @dg.asset(
        key=["registry", "prompt_versions"],
        group_name="registry",
        kinds={"mlflow"},
        owners=["team:ml-platform"],
        tags={"layer": "registry"},
        code_version=content_hash,
        description=(
            "Prompt files of defs/registry/prompts synced to the MLflow Prompt Registry: a changed file "
            "becomes exactly one new version (alias challenger; the first version is champion), an unchanged "
            "one creates nothing."
        ),
    )
    def prompt_versions(context: dg.AssetExecutionContext, tracking: TrackingResource,
                        warehouse: WarehouseResource) -> dg.MaterializeResult:
        from factory_pipelines.lib.governance.audit.chain import record_alias_moves

        synced = sync_prompts(tracking.client(), load_prompts(PROMPTS_DIR), commit=f"prompt files {content_hash}")
        moves = [{"kind": "prompt", "name": n, "alias": v["alias"], "version": v["version"]}
                 for n, v in synced.items() if v["created"]]
        if moves:
            with warehouse.connect() as con:
                record_alias_moves(con, f"run:{context.run.run_id[:8]}", moves)
        rows = "\n".join(f"| {n} | {v['version']} | {'new' if v['created'] else 'unchanged'} |" for n, v in synced.items())
        return dg.MaterializeResult(metadata={
            "prompts": dg.MetadataValue.json(synced),
            "new_versions": sum(v["created"] for v in synced.values()),
            "summary": dg.MetadataValue.md("| prompt | version | |\n|---|---|---|\n" + rows),
        })

    return [prompt_versions]
