"""Data contracts: Great Expectations suites kept as JSON, validated against pandas frames.

Suites live as configuration (GX's own ExpectationSuite JSON) so data owners review rules, not code.
GX imports in seconds, so it is imported lazily inside the functions that need it, and one ephemeral
context per process is reused for every validation. Results are flattened into small pydantic models
that say which rule failed, on which rows (by index columns), and why the rule exists.
"""

from __future__ import annotations

import json
import math
import os
import threading
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from factory_pipelines.lib.config_files import ConfigError
from factory_pipelines.lib.data.declared_rules import Declaration, declared_expectations, follow_declaration

if TYPE_CHECKING:
    import pandas

__all__ = ["ContractError", "ContractResult", "Declaration", "FailedExpectation", "declared_expectations",
           "load_suite", "validate_frame"]

MAX_EXAMPLES = 5
SUITE_KEYS = {"name", "expectations", "meta", "notes", "id", "suite_parameters"}
EXPECTATION_KEYS = {"type", "kwargs", "meta", "notes", "id", "description", "severity", "rendered_content"}
_INDEX_KEY = "_contract_index"  # meta key used to match results back to suite order
_LOCK = threading.Lock()  # one shared GX context and asset: validate one frame at a time


class ContractError(ConfigError):
    """A suite file is missing or malformed; the message names the file."""


class FailedExpectation(BaseModel):
    """One rule the frame broke, with what was expected, what was seen, and offending rows."""

    expectation: str
    column: str | None
    kwargs: dict[str, Any]
    observed: Any
    unexpected_count: int | None
    unexpected_percent: float | None
    examples: list[dict[str, Any]]
    notes: str | None

    def line(self) -> str:
        """One human-readable line: what failed, how badly, an example, and what was expected."""
        head = f"{self.expectation}({self.column})" if self.column else self.expectation
        if self.unexpected_count is not None:
            text = f"{head}: {self.unexpected_count} unexpected"
            if self.unexpected_percent is not None:
                text += f" ({self.unexpected_percent:.1f}%)"
        else:
            text = f"{head}: observed {_short(self.observed)}"
        if self.examples:
            example = self.examples[0]
            parts = [f"{k}={v}" for k, v in example.items() if k != self.column]
            parts += [f"value={example[self.column]!r}"] if self.column in example else []
            text += ", e.g. " + " ".join(parts)
        expected = [f"{k}={_short(v)}" for k, v in self.kwargs.items() if k != "column" and v is not None]
        return text + (f"; expected {', '.join(expected)}" if expected else "")


class ContractResult(BaseModel):
    """The outcome of validating one frame against one suite."""

    suite: str
    success: bool
    evaluated: int
    rows: int
    failed: list[FailedExpectation]
    adjustments: list[str] = []  # what the source declaration dropped or relaxed in the suite, and why

    def summary(self) -> str:
        """One line per failed expectation, or one line saying all passed (and how many the declaration bent)."""
        if not self.failed:
            bent = f" ({len(self.adjustments)} adjusted by the source declaration)" if self.adjustments else ""
            return f"{self.suite}: all {self.evaluated} expectations passed on {self.rows} rows{bent}"
        return "\n".join(f.line() for f in self.failed)


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _plain(value: Any) -> Any:
    """Convert numpy/pandas scalars and containers into JSON-friendly Python values."""
    import numpy as np
    import pandas as pd

    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, np.datetime64):
        value = pd.Timestamp(value)
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value if isinstance(value, (str, int, float, bool)) else str(value)


def _notes(spec: dict) -> str | None:
    notes = (spec.get("meta") or {}).get("notes") or spec.get("notes")
    return "\n".join(map(str, notes)) if isinstance(notes, list) else notes


@lru_cache(maxsize=1)
def _gx() -> tuple[Any, Any]:
    """Import GX once, with analytics and progress bars off, and build the per-process batch definition."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.config.analytics_enabled = False
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = context.data_sources.add_pandas("contracts").add_dataframe_asset("frame")
    return gx, asset.add_batch_definition_whole_dataframe("whole_frame")


def _build(spec: dict, index: int, path: Path) -> Any:
    """Build one expectation tagged with its position; GX's suite constructor drops bad ones silently."""
    from great_expectations.exceptions import ExpectationNotFoundError
    from great_expectations.expectations.registry import get_expectation_impl

    kind = spec["type"]
    try:
        impl = get_expectation_impl(kind)
    except ExpectationNotFoundError:
        raise ContractError(f"{path}: expectation #{index} has unknown type {kind!r}") from None
    extra = {k: spec[k] for k in ("notes", "description", "severity") if spec.get(k) is not None}
    extra["meta"] = {**(spec.get("meta") or {}), _INDEX_KEY: index}
    try:
        return impl(**spec["kwargs"], **extra)
    except (ValueError, TypeError) as exc:
        raise ContractError(f"{path}: expectation #{index} ({kind}) has invalid kwargs: {exc}") from None


def load_suite(path: Path) -> dict:
    """Read a suite file and check its shape and every expectation against GX, naming the file on error."""
    return _parse(path)[0]


def _parse(path: Path) -> tuple[dict, list[Any]]:
    """The suite as JSON plus its expectations built as GX objects (validated kwargs)."""
    path = Path(path)
    try:
        suite = json.loads(path.read_text())
    except OSError as exc:
        raise ContractError(f"{path}: cannot read suite: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ContractError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(suite, dict):
        raise ContractError(f"{path}: a suite must be a JSON object")
    if unknown := set(suite) - SUITE_KEYS:
        raise ContractError(f"{path}: unknown suite keys {sorted(unknown)}")
    if not isinstance(suite.get("name"), str) or not suite["name"]:
        raise ContractError(f"{path}: suite needs a non-empty string 'name'")
    expectations = suite.get("expectations")
    if not isinstance(expectations, list) or not expectations:
        raise ContractError(f"{path}: suite needs a non-empty 'expectations' list")
    built = []
    for i, spec in enumerate(expectations):
        if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
            raise ContractError(f"{path}: expectation #{i} needs a string 'type'")
        if not isinstance(spec.get("kwargs"), dict):
            raise ContractError(f"{path}: expectation #{i} ({spec['type']}) needs a 'kwargs' object")
        if unknown := set(spec) - EXPECTATION_KEYS:
            raise ContractError(f"{path}: expectation #{i} has unknown keys {sorted(unknown)}")
        built.append(_build(spec, i, path))
    return suite, built


def _exception_text(info: dict) -> str | None:
    """GX reports errors either flat or keyed by metric id; return the message(s) if anything raised."""
    infos = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    messages = [
        str(i.get("exception_message")).removeprefix("Error: ") for i in infos if i.get("raised_exception")
    ]
    return "; ".join(dict.fromkeys(messages)) or None


def _example(row: Any, value: Any, value_columns: list[str]) -> dict[str, Any]:
    """Index columns first, the offending value(s) last; the row position when no index columns exist."""
    if not isinstance(row, dict):
        values = value if len(value_columns) > 1 and isinstance(value, tuple) else (value,)
        return {"_row": row} | dict(zip(value_columns, values, strict=False))
    return {k: v for k, v in row.items() if k not in value_columns} | {
        k: row[k] for k in value_columns if k in row
    }


def _failure(spec: dict, result: Any) -> FailedExpectation | None:
    """Turn one GX result into a FailedExpectation, or None when it passed cleanly; no result is a failure."""
    if result is None:
        error: str | None = "no result returned by Great Expectations"
    elif (error := _exception_text(result.exception_info or {})) is None and result.success:
        return None
    res = (result.result if result is not None else None) or {}
    kwargs = spec["kwargs"]
    columns = (
        [kwargs["column"]]
        if kwargs.get("column")
        else kwargs.get("column_list") or [c for c in (kwargs.get("column_A"), kwargs.get("column_B")) if c]
    )
    rows, values = res.get("partial_unexpected_index_list") or [], res.get("partial_unexpected_list") or []
    examples = [_example(r, values[i] if i < len(values) else None, columns) for i, r in enumerate(rows)]
    count, percent = res.get("unexpected_count"), res.get("unexpected_percent")
    return FailedExpectation(
        expectation=spec["type"],
        column=",".join(columns) or None,
        kwargs=_plain(kwargs),
        observed=f"error: {error}" if error else _plain(res.get("observed_value")),
        unexpected_count=None if count is None else int(count),
        unexpected_percent=None if percent is None else float(percent),
        examples=_plain(examples[:MAX_EXAMPLES]),
        notes=_notes(spec),
    )


def validate_frame(
    df: pandas.DataFrame, suite_path: Path, index_columns: list[str], declared: list[dict[str, Any]] | None = None,
    follows: Declaration | None = None,
) -> ContractResult:
    """Validate a frame against a suite plus `declared` rules; an expectation that errors in GX counts as failed.

    With `follows`, the suite's expectations are first adapted to that source declaration (`follow_declaration`),
    and the result lists what was dropped or relaxed.
    """
    suite, _ = _parse(suite_path)
    gx, batch_definition = _gx()
    specs, adjustments = list(suite["expectations"]), []
    if follows is not None:
        empty = {str(c) for c in df.columns if df[c].isna().all()}
        specs, adjustments = follow_declaration(specs, follows, len(df), empty, {str(c) for c in df.columns})
    seen = {(e["type"], json.dumps(e["kwargs"], sort_keys=True)) for e in specs}
    for extra in declared or []:
        if (extra["type"], json.dumps(extra["kwargs"], sort_keys=True)) not in seen:
            specs.append(extra)
    built = [_build(spec, i, suite_path) for i, spec in enumerate(specs)]
    gx_suite = gx.ExpectationSuite(name=suite["name"], expectations=built)
    result_format: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": MAX_EXAMPLES}
    present = [c for c in index_columns if c in df.columns]
    if present:
        result_format["unexpected_index_column_names"] = present
    with _LOCK:
        batch = batch_definition.get_batch(batch_parameters={"dataframe": df})
        outcome = batch.validate(gx_suite, result_format=result_format)
    by_index = {r.expectation_config.meta[_INDEX_KEY]: r for r in outcome.results}
    failures = (_failure(spec, by_index.get(i)) for i, spec in enumerate(specs))
    failed = [f for f in failures if f is not None]
    return ContractResult(suite=suite["name"], success=not failed, evaluated=len(specs), rows=len(df), failed=failed,
                          adjustments=adjustments)
