"""Feature drift with Evidently's tests on seeded data: detected when shifted, silent on stable days, and
`insufficient` (never a pass) on too few rows."""

from __future__ import annotations

import pandas as pd
import pytest

from factory_pipelines.lib.drift.features import feature_drift
from tests.lib.drift.conftest import config, tickets


def _by(results: list) -> dict[str, object]:
    return {f"{r.column}.{r.method}": r for r in results}


def test_large_reference_uses_wasserstein_psi_and_jensen_shannon_and_flags_the_shift() -> None:
    reference = tickets(5, 400, seed=1)
    shifted = tickets(1, 400, drift_from=pd.Timestamp("2026-01-01").date(), seed=2)
    found = _by(feature_drift(reference, shifted, config()))
    assert set(found) == {"body_chars.wasserstein", "body_chars.psi", "sentiment.wasserstein", "sentiment.psi",
                          "plan.jensenshannon", "is_follow_up.jensenshannon"}
    assert found["body_chars.wasserstein"].status == "error" and found["body_chars.psi"].status == "error"
    assert found["plan.jensenshannon"].status == "error"
    assert found["sentiment.wasserstein"].status == "ok" and found["is_follow_up.jensenshannon"].status == "ok"
    record = found["body_chars.wasserstein"]
    assert (record.n_reference, record.n_current, record.warn, record.error) == (2000, 400, 0.2, 0.3)
    assert record.distribution is not None and abs(sum(record.distribution.current) - 1) < 1e-9


def test_small_reference_uses_ks_and_chi_square_p_values() -> None:
    reference, stable = tickets(1, 800, seed=3), tickets(1, 300, seed=4)
    shifted = tickets(1, 300, drift_from=pd.Timestamp("2026-01-01").date(), seed=5)
    calm = _by(feature_drift(reference, stable, config()))
    moved = _by(feature_drift(reference, shifted, config()))
    assert calm["body_chars.ks"].higher_is_worse is False and calm["body_chars.ks"].warn == 0.05
    assert calm["plan.chisquare"].status == "ok" and calm["is_follow_up.z"].status == "ok"
    assert calm["body_chars.ks"].status == "ok"
    assert moved["body_chars.ks"].status == "error" and moved["body_chars.ks"].value < 0.01
    assert moved["plan.chisquare"].status == "error"


def test_too_few_rows_is_insufficient_with_a_message_not_a_pass() -> None:
    results = feature_drift(tickets(3, 200, seed=6), tickets(1, 12, seed=7), config())
    assert {r.status for r in results} == {"insufficient"}
    assert all(r.value is None and "current 12 (needs 30)" in r.message for r in results)


def test_a_column_override_picks_the_method_and_bound() -> None:
    cfg = config(features={"table": "t", "numeric": ["body_chars"],
                           "columns": {"body_chars": {"method": "ks", "bound": {"warn": 0.2, "error": 0.1}}}})
    (record,) = [r for r in feature_drift(tickets(3, 400, seed=8), tickets(1, 400, seed=9), cfg) if r.method == "ks"]
    assert (record.warn, record.error, record.higher_is_worse) == (0.2, 0.1, False)


def test_a_missing_feature_column_names_the_table() -> None:
    with pytest.raises(KeyError, match="features/support_agent_v1.*body_chars"):
        feature_drift(tickets(1, 50).drop(columns="body_chars"), tickets(1, 50), config())
