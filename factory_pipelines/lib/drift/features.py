"""Per-feature drift of the columns an agent reads, with Evidently's statistical tests.

For each column the test is Evidently's default for its size unless the configuration names one: above
1,000 reference rows Wasserstein distance (normed by the reference's standard deviation) for numeric columns
and Jensen-Shannon distance for categorical ones; at or below, KS for numeric and chi-square (a z-test for
two categories) for categorical. Numeric columns also get PSI (Evidently's, over its Sturges bins), the
figure risk teams usually quote. Missing values are dropped per column before testing; a side with fewer
rows than `min_rows` gets an `insufficient` record rather than a test on noise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from factory_pipelines.lib.drift.config import DriftConfig, FeatureSpec
from factory_pipelines.lib.drift.engine import Kind, column_type, higher_is_worse, stattest
from factory_pipelines.lib.drift.frames import category_shares, numeric_shares
from factory_pipelines.lib.drift.records import DriftResult, insufficient, judge

if TYPE_CHECKING:
    import pandas as pd


def feature_drift(reference: pd.DataFrame, current: pd.DataFrame, config: DriftConfig,
                  spec: FeatureSpec | None = None) -> list[DriftResult]:
    """One record per column and method (numeric: the main test, then PSI), in the spec's order."""
    spec = spec or config.features
    if spec is None:
        return []
    missing = [c for c in [*spec.numeric, *spec.categorical] if c not in reference or c not in current]
    if missing:
        raise KeyError(f"{spec.table}: feature columns {missing} are not in the reference or current rows")
    results: list[DriftResult] = []
    for column in spec.numeric:
        results += column_drift(reference[column], current[column], column, "numeric", config, spec)
    for column in spec.categorical:
        results += column_drift(reference[column], current[column], column, "categorical", config, spec)
    return results


def column_drift(reference: pd.Series, current: pd.Series, column: str, kind: Kind, config: DriftConfig,
                 spec: FeatureSpec) -> list[DriftResult]:
    """The records of one column: its main test (Evidently's default or the override), plus PSI if numeric."""
    ref, cur = reference.dropna(), current.dropna()
    if kind == "categorical" and not _labels(ref.dtype):
        ref, cur = ref.astype(str), cur.astype(str)  # booleans and codes become labels, as Evidently expects
    override = spec.columns.get(column)
    named = (override.method if override else None) or (spec.numeric_method if kind == "numeric"
                                                          else spec.categorical_method)
    methods: list[str | None] = [named]
    if kind == "numeric" and spec.psi and named != "psi":
        methods.append("psi")
    short = _too_few(len(ref), len(cur), config)
    if short:
        return [_insufficient(m or _default_name(len(ref), kind), column, config, len(ref), len(cur), short)
                for m in methods]
    plot = numeric_shares(ref.to_numpy(), cur.to_numpy()) if kind == "numeric" else category_shares(ref, cur)
    results = []
    for method in methods:
        test = stattest(method, ref, cur, kind)
        bound = config.bound(test.name, column)
        outcome = test(ref, cur, column_type(kind), bound.warn)
        value, higher = float(outcome.drift_score), higher_is_worse(test.name)
        results.append(DriftResult("feature", column, test.name, value, bound.warn, bound.error,
                                   judge(value, bound.warn, bound.error, higher), len(ref), len(cur), higher,
                                   distribution=plot))
    return results


def _labels(dtype: object) -> bool:
    """Whether a column already holds labels (strings or categories): no per-row conversion at 1 M rows."""
    from pandas.api.types import is_object_dtype, is_string_dtype

    return is_object_dtype(dtype) or is_string_dtype(dtype) or str(dtype) == "category"


def _too_few(n_reference: int, n_current: int, config: DriftConfig) -> str:
    need = config.min_rows
    if n_reference < need.reference or n_current < need.current:
        return (f"too few rows to test: reference {n_reference} (needs {need.reference}), current {n_current} "
                f"(needs {need.current})")
    return ""


def _default_name(n_reference: int, kind: Kind) -> str:
    """The test Evidently would pick, for naming an insufficient record (no data to ask it with)."""
    if kind == "numeric":
        return "wasserstein" if n_reference > 1000 else "ks"
    return "jensenshannon" if n_reference > 1000 else "chisquare"


def _insufficient(method: str, column: str, config: DriftConfig, n_reference: int, n_current: int,
                  message: str) -> DriftResult:
    bound = config.bound(method, column)
    return insufficient("feature", column, method, bound.warn, bound.error, n_reference, n_current, message,
                        higher_is_worse(method))
