"""Feast behind one resource: apply the repo, materialize a window, and the two reads agents need.

Feast takes seconds to import, so it is imported inside the methods. The repo configuration is built
from the factory settings (SQLite or Redis online store, file or SQL registry), so switching profile
never touches `feature_repo/`. One `FeatureStore` is kept per process: online reads cost a fraction of
a millisecond and must not pay for a rebuilt store.
"""

from __future__ import annotations

import io
import sys
import time
from contextlib import redirect_stderr, redirect_stdout
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

DEFAULT_SERVICE = "support_agent_v1"
SERVICE_REFRESH_SECONDS = 60.0
_services: dict[tuple[int, str], tuple[Any, float]] = {}


def _service(store: Any, name: str) -> Any:
    """A feature service, kept per process for a minute: rebuilding it from the registry costs ~1-5 ms,
    more than the online read itself."""
    key = (id(store), name)
    cached = _services.get(key)
    if cached is None or time.monotonic() - cached[1] > SERVICE_REFRESH_SECONDS:
        cached = (store.get_feature_service(name, allow_cache=True), time.monotonic())
        _services[key] = cached
    return cached[0]


@cache
def _store(repo_path: str, registry: str, online_store: str, online_path: str, redis_url: str) -> Any:
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

    online: dict[str, Any] = (
        {"type": "redis", "connection_string": redis_url}
        if online_store == "redis"
        else {"type": "sqlite", "path": online_path}
    )
    registry_config: dict[str, Any] = (
        {"registry_type": "sql", "path": registry, "cache_ttl_seconds": 60}
        if "://" in registry
        else {"registry_type": "file", "path": registry, "cache_ttl_seconds": 60}
    )
    config = RepoConfig(
        project="ai_factory",
        provider="local",
        registry=registry_config,
        online_store=online,
        offline_store={"type": "duckdb"},
        entity_key_serialization_version=3,
        repo_path=Path(repo_path),
    )
    return FeatureStore(config=config)


def _repo_objects(repo_path: Path) -> list[Any]:
    """The Feast objects defined in the repo's modules, imported fresh (paths in them come from settings).

    The modules import each other by bare name (`from entities import customer`), as under `feast apply`,
    so the repo folder goes on sys.path and each module is imported under its bare name once.
    """
    import importlib

    from feast import Entity, FeatureService, FeatureView, Project
    from feast.data_source import DataSource

    repo = repo_path.resolve()
    modules = sorted(p.stem for p in repo.glob("*.py") if not p.name.startswith("_"))
    for name in modules:
        sys.modules.pop(name, None)
    if str(repo) not in sys.path:
        sys.path.insert(0, str(repo))
    found: dict[tuple[type, str], Any] = {}
    for name in modules:
        for value in vars(importlib.import_module(name)).values():
            for kind in (Project, Entity, DataSource, FeatureView, FeatureService):
                if isinstance(value, kind):
                    found.setdefault((kind, value.name), value)
    return list(found.values())


class FeatureStoreResource(dg.ConfigurableResource):
    """The Feast feature store of the factory: offline Parquet via DuckDB, online SQLite or Redis."""

    repo_path: str = Field(description="The Feast repository (feature definitions).")
    registry: str = Field(description="Registry file path or SQL URL.")
    online_store: str = Field("sqlite", description="sqlite or redis.")
    online_path: str = Field("", description="SQLite online store file.")
    redis_url: str = Field("", description="Redis connection string.")

    @property
    def store(self) -> Any:
        return _store(self.repo_path, self.registry, self.online_store, self.online_path, self.redis_url)

    def apply(self) -> dict[str, list[str]]:
        """Register every object of the repo; returns the names applied per kind."""
        from feast import Entity, FeatureService, FeatureView

        objects = _repo_objects(Path(self.repo_path))
        self.store.apply(objects)
        kinds = {"entities": Entity, "feature_views": FeatureView, "feature_services": FeatureService}
        return {kind: sorted(o.name for o in objects if isinstance(o, cls)) for kind, cls in kinds.items()}

    def materialize(self, start: datetime, end: datetime, views: list[str] | None = None) -> str:
        """Load the offline rows stamped in [start, end) into the online store; returns Feast's report."""
        report = io.StringIO()
        with redirect_stdout(report), redirect_stderr(report):  # Feast prints progress bars
            self.store.materialize(start_date=start, end_date=end, feature_views=views)
        return report.getvalue()

    def materialized_until(self, view: str) -> datetime | None:
        """End of the latest window materialized for a feature view, if any."""
        intervals = self.store.get_feature_view(view).materialization_intervals
        return max((end for _, end in intervals), default=None)

    def online_features(
        self, entity_rows: list[dict[str, Any]], service: str = DEFAULT_SERVICE, timestamps: bool = False
    ) -> dict[str, list[Any]]:
        """Features for one or many entities at agent run time, from the online store (with `timestamps`, each
        feature's event time in epoch seconds as `<feature>__ts`, for freshness)."""
        store = self.store
        response = store.get_online_features(features=_service(store, service), entity_rows=entity_rows)
        return response.to_dict(include_event_timestamps=timestamps)

    def feature_names(self, service: str = DEFAULT_SERVICE) -> list[str]:
        """The names a service returns (without view prefixes), in order."""
        projections = _service(self.store, service).feature_view_projections
        return [feature.name for projection in projections for feature in projection.features]

    def historical_features(self, entity_df: Any, service: str = DEFAULT_SERVICE) -> Any:
        """Point-in-time-correct features for training: one row per entity row and its timestamp."""
        store = self.store
        return store.get_historical_features(entity_df=entity_df, features=_service(store, service)).to_df()
