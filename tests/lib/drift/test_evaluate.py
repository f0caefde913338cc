"""A night end to end: windows selected from the tables, every family judged. Stable nights before the drift
date raise nothing (no false alarm), nights after it fail; a missing or empty window is an error naming it."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from factory_pipelines.lib.drift.evaluate import DriftInputs, evaluate_night
from factory_pipelines.lib.drift.records import DriftWindowError
from tests.lib.drift.conftest import config

STABLE_NIGHTS = [date(2026, 10, d) for d in (15, 16, 17)]


def _inputs(frame: pd.DataFrame) -> DriftInputs:
    return DriftInputs(features=frame, text=frame, decisions=frame, quality=frame)


@pytest.fixture(scope="module")
def nights(history: pd.DataFrame) -> dict[date, object]:
    cfg = config(windows={"current": {"days": 1}, "reference": {"days": 14}})
    stable = history[history["partition"] < pd.Timestamp("2026-10-18")]
    out = {day: evaluate_night(cfg, day, _inputs(history)) for day in [*STABLE_NIGHTS, date(2026, 10, 18)]}
    # two more stable nights: the same stable days, judged against a 10-day reference
    short = config(windows={"current": {"days": 1}, "reference": {"days": 10}})
    out |= {day: evaluate_night(short, day, _inputs(stable)) for day in (date(2026, 10, 12), date(2026, 10, 13))}
    return out


def test_no_false_alarm_over_five_stable_nights(nights: dict[date, object]) -> None:
    stable = {day: run for day, run in nights.items() if day < date(2026, 10, 18)}
    assert len(stable) >= 5
    for day, run in stable.items():
        loud = [(r.key, r.value, r.status) for r in run.results if r.status != "ok"]  # type: ignore[attr-defined]
        assert loud == [], (day, loud)


def test_the_night_after_the_drift_date_fails_on_the_shifted_families(nights: dict[date, object]) -> None:
    run = nights[date(2026, 10, 18)]
    assert run.verdict == "error"  # type: ignore[attr-defined]
    drifted = set(run.drifted_slices())  # type: ignore[attr-defined]
    assert {"feature.body_chars.wasserstein", "feature.plan.jensenshannon", "text.subject+body.domain_classifier_roc_auc",
            "rate.escalated.abs_change", "estimated_accuracy.confidence.cbpe"} <= drifted
    assert not any(k.startswith(("feature.sentiment", "decision.category")) for k in drifted)
    assert str(run.reference) == "2026-10-04..2026-10-17" and str(run.current) == "2026-10-18"  # type: ignore[attr-defined]


def test_a_reference_window_before_the_data_names_the_table_and_its_dates(history: pd.DataFrame) -> None:
    with pytest.raises(DriftWindowError, match=r"features/support_agent_v1: reference window "
                       r"2026-09-17\.\.2026-09-30 \(14 day\(s\)\) has no rows; partitions present 2026-10-01\.\.2026-10-20"):
        evaluate_night(config(), date(2026, 10, 1), _inputs(history))


def test_a_missing_or_empty_table_names_it() -> None:
    with pytest.raises(DriftWindowError, match=r"staging.tickets: reference window 2026-10-04..2026-10-17: the table is missing"):
        evaluate_night(config(features=None), date(2026, 10, 18), DriftInputs(text=None))
    empty = pd.DataFrame({"partition": pd.Series([], dtype="datetime64[ns]")})
    with pytest.raises(DriftWindowError, match="features/support_agent_v1: reference window .* it is empty"):
        evaluate_night(config(), date(2026, 10, 18), _inputs(empty))


def test_an_empty_current_window_is_an_error_too(history: pd.DataFrame) -> None:
    with pytest.raises(DriftWindowError, match=r"current window 2026-10-25 \(1 day\(s\)\) has no rows"):
        evaluate_night(config(), date(2026, 10, 25), _inputs(history))
