"""The prompt registry asset: materialized twice against the real MLflow, it creates versions once."""

from __future__ import annotations

import dagster as dg
import pytest

from factory_pipelines.definitions import build_definitions
from factory_pipelines.settings import Settings


@pytest.mark.slow
def test_prompt_versions_asset_syncs_once(settings: Settings) -> None:
    defs = build_definitions(settings)
    asset = next(a for a in defs.assets if dg.AssetKey(["registry", "prompt_versions"]) in a.keys)
    resources = {"tracking": defs.resources["tracking"], "warehouse": defs.resources["warehouse"]}
    first = dg.materialize([asset], resources=resources)
    second = dg.materialize([asset], resources=resources)

    def meta(result: dg.ExecuteInProcessResult) -> dict:
        return result.asset_materializations_for_node("registry__prompt_versions")[0].metadata

    assert meta(first)["new_versions"].value == 3
    assert meta(second)["new_versions"].value == 0
    import duckdb

    with duckdb.connect(settings.warehouse, read_only=True) as con:  # each alias set is an audit event
        moves = con.execute("SELECT subject, json_extract_string(payload, '$.alias') FROM governance.audit_log "
                            "WHERE kind = 'alias_moved' ORDER BY subject").fetchall()
    assert moves == [(f"prompt:{n}", "champion") for n in ("knowledge_gap", "support_reply", "support_triage")]
    assert meta(second)["prompts"].value == {name: {"version": 1, "created": False}
                                             for name in ("knowledge_gap", "support_reply", "support_triage")}
