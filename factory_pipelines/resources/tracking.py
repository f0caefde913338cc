"""MLflow behind one resource: a client on the configured tracking and registry URI.

Embedded profile: SQLite under `<home>/mlflow`; production: an MLflow server URL. MLflow takes seconds
to import, so it is imported when a client is first needed, with its telemetry off.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from factory_pipelines.settings import turn_off_telemetry


class TrackingResource(dg.ConfigurableResource):
    """The MLflow tracking server and model/prompt registry of the factory."""

    tracking_uri: str = Field(description="MLflow tracking and registry URI.")
    artifact_root: str = Field(description="Where experiments created here keep their artifacts.")

    def client(self) -> Any:
        turn_off_telemetry()
        if self.tracking_uri.startswith("sqlite:///"):
            Path(self.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def activate(self, experiment: str) -> str:
        """Point the process's MLflow (runs, traces) at this server and an experiment; returns its id.

        Traces are exported as each ticket ends, not by a background thread: nothing queued is lost when the
        process dies, and no thread competes with the local model for the CPU (measured: async export made
        model calls 12% slower on 2 cores; see benchmarks/README.md).
        """
        os.environ.setdefault("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
        client = self.client()
        import mlflow

        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        found = client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else client.create_experiment(
            experiment, artifact_location=f"{self.artifact_root.rstrip('/')}/{experiment.replace('/', '_')}")
        mlflow.set_experiment(experiment_id=experiment_id)
        return experiment_id
