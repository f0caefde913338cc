"""The Dagster instance of the factory: `$DAGSTER_HOME/dagster.yaml` written from the settings.

Embedded profile: SQLite storage under `<home>/dagster`, telemetry off. Production: Postgres storage
when `dagster_postgres_url` is set. The CLI, the UI command and the tests all use this one instance,
so a run started from `factory run` shows in the Dagster UI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from factory_pipelines.settings import Settings, export_dagster_home


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
