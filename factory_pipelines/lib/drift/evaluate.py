"""One agent's night: the windows of its configuration applied to its tables, every drift family evaluated,
one `DriftRun` back.

The caller (the `drift/<agent>` asset, `factory drift`) reads the tables and passes them in as DataFrames, each
with a daily `partition` column; this module selects the windows (a missing or empty one raises a
`DriftWindowError` naming it), so the same inputs give the same verdict in a test, the CLI and the asset.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from factory_pipelines.lib.drift.config import DriftConfig, windows
from factory_pipelines.lib.drift.decisions import decision_drift
from factory_pipelines.lib.drift.features import feature_drift
from factory_pipelines.lib.drift.frames import window_rows
from factory_pipelines.lib.drift.quality import quality_drift
from factory_pipelines.lib.drift.records import DriftResult, DriftRun, Window, combine
from factory_pipelines.lib.drift.text import text_drift

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class DriftInputs:
    """The tables of one agent over (at least) both windows; None where the configuration has no such
    family. `quality` holds the first pass's `confidence` and, where labels exist, `correct` (0/1)."""

    features: pd.DataFrame | None = None
    text: pd.DataFrame | None = None
    decisions: pd.DataFrame | None = None
    quality: pd.DataFrame | None = None


def evaluate_night(config: DriftConfig, day: date, inputs: DriftInputs,
                   partition_column: str = "partition") -> DriftRun:
    """Every configured family (features, text, decisions, quality) on the reference and current windows
    of `day`."""
    reference, current = windows(config, day)
    families: list[tuple[object, pd.DataFrame | None, Callable[..., list[DriftResult]]]] = [
        (config.features, inputs.features, lambda r, c, s: feature_drift(r, c, config, s)),
        (config.text, inputs.text, text_drift),
        (config.decisions, inputs.decisions, lambda r, c, s: decision_drift(r, c, config, s)),
        (config.quality, inputs.quality, lambda r, c, s: quality_drift(r, c, config, s)),
    ]
    parts = []
    for spec, frame, evaluate in families:
        if spec is None:
            continue
        table: str = spec.table  # type: ignore[attr-defined]
        ref, cur = _split(frame, table, reference, current, partition_column)
        parts.append(evaluate(ref, cur, spec))
    return combine(config.agent, day, reference, current, parts)


def _split(frame: pd.DataFrame | None, table: str, reference: Window, current: Window,
           column: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    return (window_rows(frame, table, reference, "reference", column),
            window_rows(frame, table, current, "current", column))
