"""Shared fixtures: every test gets its own FACTORY_HOME under tmp_path, with the real DuckDB, GX,
Feast and Dagster instance under it. Nothing touches the repo's `.factory/`."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from factory_pipelines.settings import Settings, get_settings, turn_off_telemetry

turn_off_telemetry()
warnings.filterwarnings("ignore", message=".*partitions_def on an AssetCheckSpec.*")


def use_home(monkeypatch: pytest.MonkeyPatch, home: Path, **env: str) -> Settings:
    """Point the settings at `home` (plus FACTORY_<KEY> overrides) and return them."""
    monkeypatch.setenv("FACTORY_HOME", str(home))
    monkeypatch.setenv("FACTORY_SETTINGS_FILE", str(home / "absent-settings.yaml"))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))  # restored after the test
    for key, value in env.items():
        monkeypatch.setenv(f"FACTORY_{key.upper()}", value)
    get_settings.cache_clear()
    settings = get_settings()
    settings.ensure_dirs()
    return settings


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    yield use_home(monkeypatch, tmp_path / "home")
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The local GGUF, assembled once per test session from its PyPI package."""
    import gc

    from factory_pipelines.lib.agents.models.providers import _local_server, local_model_path

    directory = tmp_path_factory.mktemp("models")
    local_model_path(directory)
    yield directory
    _local_server.cache_clear()  # free llama.cpp inside the test run: its shutdown logs stay captured
    gc.collect()


@pytest.fixture(scope="session")
def llama_server(model_dir: Path) -> Iterator[object]:
    """llama.cpp's OpenAI-compatible HTTP server over the shipped GGUF on a free loopback port, once per session
    (`.base_url` is what a manifest's `base_url` takes)."""
    from factory_pipelines.lib.agents.models.llama_server import serve_gguf
    from factory_pipelines.lib.agents.models.providers import local_model_path

    with serve_gguf(local_model_path(model_dir)) as server:
        yield server
