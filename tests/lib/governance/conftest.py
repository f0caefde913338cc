"""Fixtures of the governance tests: one MLflow store per module (the toolbox opens spans), a fresh warehouse,
kill-switch journal and toolbox per test (see world.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from factory_pipelines.lib.agents.toolbox import Toolbox
from factory_pipelines.lib.governance.kill_switches import KillSwitches
from tests.lib.governance.world import make_toolbox, make_warehouse


@pytest.fixture(scope="module", autouse=True)
def tracking(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Toolbox.call opens MLflow spans: one sqlite store and experiment for the module."""
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}")
    mlflow.set_experiment("tests/gate")
    yield
    mlflow.flush_trace_async_logging()


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = make_warehouse(tmp_path / "warehouse.duckdb")
    yield connection
    connection.close()


@pytest.fixture
def switches(tmp_path: Path) -> KillSwitches:
    return KillSwitches(tmp_path / "home" / "kill_switches.jsonl")


@pytest.fixture
def tb(con: duckdb.DuckDBPyConnection, switches: KillSwitches) -> Toolbox:
    return make_toolbox(con, switches)
