"""Feast behind one resource: apply the repo, materialize a window, and the reads of agents and training.

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
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from factory_pipelines.lib.data.features import EVENT_TIME_SUFFIX, ViewTimes, event_times_sql, online_is_as_of

DEFAULT_SERVICE = "support_agent_v1"
SERVICE_REFRESH_SECONDS = 60.0
ROW_ID = "__row"  # entity_df column that keeps each entity row's position through a historical read


@dataclass(frozen=True)
class _Service:
    """A feature service and what reads through it need, resolved from the registry once."""

    service: Any  # feast.FeatureService
    names: list[str]  # the features it returns (without view prefixes), in order
    views: tuple[ViewTimes, ...]
    online_until: float  # epoch seconds: end of the latest window materialized online (inf: a view never was)
    fetched: float


_services: dict[tuple[int, str], _Service] = {}
_SCALARS = frozenset({"string_val", "int64_val", "int32_val", "double_val", "float_val", "bool_val", "bytes_val"})


def _columns(response: Any, timestamps: bool) -> dict[str, list[Any]]:
    """`OnlineResponse.to_dict(include_event_timestamps=timestamps)`, the same keys, values and types, about four
    times faster: Feast converts every value through its generic converter (a quarter of a 100-entity read), a
    scalar is read straight from its proto field here; other types still go through Feast's converter."""
    from feast.type_map import feast_value_type_to_python_type

    hints = getattr(response, "_feature_types", None) or {}
    out: dict[str, list[Any]] = {}
    for name, vector in zip(response.proto.metadata.feature_names.val, response.proto.results, strict=True):
        values = []
        for value in vector.values:
            field = value.WhichOneof("val")
            values.append(None if field is None else getattr(value, field) if field in _SCALARS
                          else feast_value_type_to_python_type(value, hints.get(name)))
        out[name] = values
        if timestamps:
            out[name + EVENT_TIME_SUFFIX] = [ts.seconds for ts in vector.event_timestamps]
    return out


def _resolve(store: Any, name: str) -> _Service:
    """A feature service with its views' sources, keys and TTLs, kept per process for a minute: rebuilding them
    from the registry costs ~1-5 ms per object, more than the online read itself."""
    key = (id(store), name)
    cached = _services.get(key)
    now = time.monotonic()
    if cached is None or now - cached.fetched > SERVICE_REFRESH_SECONDS:
        service = store.get_feature_service(name, allow_cache=True)
        views, ends = [], []
        for projection in service.feature_view_projections:
            view = store.get_feature_view(projection.name)
            ends.append(max((end.timestamp() for _, end in view.materialization_intervals), default=float("inf")))
            source = view.batch_source
            mapping = {feast_name: column for column, feast_name in (source.field_mapping or {}).items()}
            join_keys = projection.join_key_map or {c.name: c.name for c in view.entity_columns}
            views.append(ViewTimes(
                name=projection.name, features=tuple(f.name for f in projection.features),
                keys=tuple((mapping.get(k, k), column) for k, column in join_keys.items()),
                source_path=getattr(source, "path", ""), timestamp_field=mapping.get(source.timestamp_field, source.timestamp_field),
                ttl_seconds=int(view.ttl.total_seconds()) if view.ttl else 0))
        names = [f.name for p in service.feature_view_projections for f in p.features]
        cached = _services[key] = _Service(service, names, tuple(views), max(ends, default=float("inf")), now)
    return cached


@cache
def _duckdb() -> Any:
    """An in-memory DuckDB kept per process (opening one costs ~15 ms); each read takes its own cursor."""
    import duckdb

    return duckdb.connect()


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
        """Features for one or many entities from the online store: each one's latest materialized values (with
        `timestamps`, each feature's event time in epoch seconds as `<feature>__ts`, for freshness)."""
        store = self.store
        return _columns(store.get_online_features(features=_resolve(store, service).service, entity_rows=entity_rows),
                        timestamps)

    def features_as_of(
        self, entity_rows: list[dict[str, Any]], as_of: list[datetime], service: str = DEFAULT_SERVICE
    ) -> list[dict[str, Any]]:
        """Each entity's features as they were at its own time (`as_of[i]`, timezone-aware), with their event times
        (`<feature>__ts`, epoch seconds; 0 where no row was found): one row per entity, in order, in the shape of
        `online_features(..., timestamps=True)`.

        From the online store when it cannot hold anything newer (the latest window materialized for every view
        ended by then: the live day) and its row agrees (no value newer, none past its TTL); else from one
        point-in-time historical read of the same service for all the other entities (a backfill, or a day the
        online store has moved past). The windows are the registry's of up to a minute ago: they only grow, so a
        stale view sends a read to the row check, never past it."""
        store = self.store
        resolved = _resolve(store, service)
        rows: list[dict[str, Any] | None] = [None] * len(entity_rows)
        live = [i for i, at in enumerate(as_of) if at.timestamp() >= resolved.online_until]
        if live:
            entities = entity_rows if len(live) == len(entity_rows) else [entity_rows[i] for i in live]
            columns = _columns(store.get_online_features(features=resolved.service, entity_rows=entities), True)
            names = list(columns)
            for i, values in zip(live, zip(*columns.values(), strict=True), strict=True):
                row = dict(zip(names, values, strict=True))
                if online_is_as_of(row, int(as_of[i].timestamp()), resolved.views):
                    rows[i] = row
        stale = [i for i, row in enumerate(rows) if row is None]
        if stale:
            past = self._historical_rows(resolved, [entity_rows[i] for i in stale], [as_of[i] for i in stale])
            for i, row in zip(stale, past, strict=True):
                rows[i] = row
        return rows  # type: ignore[return-value]

    def _historical_rows(self, resolved: _Service, entity_rows: list[dict[str, Any]],
                         as_of: list[datetime]) -> list[dict[str, Any]]:
        """Point-in-time rows in the online response's shape: values from Feast's historical read, event times of
        the source rows that read joined (Feast does not return them) from the same Parquet files."""
        import pandas as pd

        keys = list(entity_rows[0])
        entities = pd.DataFrame(entity_rows, columns=keys).assign(
            event_timestamp=pd.to_datetime(as_of, utc=True), **{ROW_ID: range(len(entity_rows))})
        table = self.store.get_historical_features(entity_df=entities, features=resolved.service).to_arrow()
        values = {row[ROW_ID]: row for row in table.to_pylist()}
        with _duckdb().cursor() as con:  # a view whose source is not a file gets no event times (0: unknown)
            con.register("entities", entities)
            times = {view.name: dict(con.execute(event_times_sql(view, row_id=ROW_ID)).fetchall())
                     if view.source_path else {} for view in resolved.views}
        rows = []
        for i, entity in enumerate(entity_rows):
            row = {k: entity[k] for k in keys} | {k + EVENT_TIME_SUFFIX: 0 for k in keys}
            for view in resolved.views:
                ts = times[view.name].get(i) or 0
                for name in view.features:
                    row[name], row[name + EVENT_TIME_SUFFIX] = values[i].get(name), ts
            rows.append(row)
        return rows

    def feature_names(self, service: str = DEFAULT_SERVICE) -> list[str]:
        """The names a service returns (without view prefixes), in order."""
        return list(_resolve(self.store, service).names)

    def historical_features(self, entity_df: Any, service: str = DEFAULT_SERVICE, views: list[str] | None = None) -> Any:
        """Point-in-time-correct features for training: one row per entity row and its timestamp. `views`: only
        these views of the service (a view whose feed is not fed has no table to read)."""
        store = self.store
        features = _resolve(store, service).service
        if views is not None:
            features = [f"{p.name}:{f.name}" for p in features.feature_view_projections if p.name in views
                        for f in p.features]
        return store.get_historical_features(entity_df=entity_df, features=features).to_df()
