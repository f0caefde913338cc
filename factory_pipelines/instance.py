"""The Dagster instance of the factory: `$DAGSTER_HOME/dagster.yaml` written from the settings.

Embedded profile: SQLite storage under `<home>/dagster`, telemetry off. Production: Postgres storage
when `dagster_postgres_url` is set. The CLI, the UI command and the tests all use this one instance,
so a run started from `factory run` shows in the Dagster UI. `latest_check_statuses` reads back the
latest evaluation of a partitioned check per day.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from factory_pipelines.settings import Settings, export_dagster_home

if TYPE_CHECKING:
    import dagster as dg


def instance_config(settings: Settings) -> dict[str, Any]:
    config: dict[str, Any] = {
        "telemetry": {"enabled": False},
        # runs the daemon launched whose process died are failed (and their pool slots freed)
        "run_monitoring": {"enabled": True, "poll_interval_seconds": 30},
        "concurrency": {
            "runs": {"max_concurrent_runs": settings.max_concurrent_runs},
            # the only pool is model_slots (agent steps calling a model): its limit is the setting
            "pools": {"default_limit": settings.model_slots},
        },
    }
    if settings.dagster_postgres_url:
        config["storage"] = {"postgres": {"postgres_url": settings.dagster_postgres_url}}
    return config


def prepare_instance(settings: Settings) -> Path:
    """Create the state folders and the instance config; point DAGSTER_HOME at it."""
    settings.ensure_dirs()
    home = Path(settings.dagster_home)
    config_file = home / "dagster.yaml"
    wanted = yaml.safe_dump(instance_config(settings), sort_keys=True)
    if not config_file.exists() or config_file.read_text() != wanted:
        config_file.write_text(wanted)
    export_dagster_home(settings)
    return home


def latest_check_statuses(instance: dg.DagsterInstance, key: dg.AssetCheckKey, partitions: Iterable[str],
                          page: int = 100) -> dict[str, str]:
    """The status of the latest execution of check `key` for each of `partitions` that has one (`SUCCEEDED`,
    `FAILED`, `PLANNED`, `SKIPPED`); days the check never ran for are left out.

    Dagster 1.13 has no public instance method for check executions by partition: this pages through the
    check's execution history, newest first, until every day asked for is found (no private import)."""
    wanted, found, cursor = set(partitions), {}, None
    while wanted - found.keys():
        records = instance.event_log_storage.get_asset_check_execution_history(key, limit=page, cursor=cursor)
        for record in records:
            if record.partition in wanted and record.partition not in found:
                found[record.partition] = record.status.value
        if len(records) < page:
            break
        cursor = records[-1].id
    return found
