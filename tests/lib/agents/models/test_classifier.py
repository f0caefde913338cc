"""Training from a classifier file on demo tickets: data that arrives in one day (a stratified holdout), a
skewed 90/10 target of the user's own, macro-F1 beside the baseline's, deterministic."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from factory_pipelines.demo import write_demo_data
from factory_pipelines.lib.agents.models.classifier_spec import (
    ClassifierSpec,
    FeatureSet,
    ModelChoice,
    Search,
)
from factory_pipelines.lib.agents.models.training import comparison, holdout_split, report, train_and_compare

SEARCH = Search(folds=3, features=(FeatureSet(), FeatureSet(char_ngrams=(3, 5))), models=(
    ModelChoice(kind="logistic", C=4.0), ModelChoice(kind="logistic", C=4.0, class_weight="none"),
    ModelChoice(kind="calibrated_svm", C=0.5), ModelChoice(kind="boosted_trees", max_iter=10)))


def one_day(root: Path, tickets: int = 600) -> pd.DataFrame:
    """A day of demo tickets with their text features and two targets of the user's: `area` and `human`."""
    write_demo_data(root / "landing", date(2026, 11, 1), date(2026, 11, 1), truth_dir=root / "truth",
                    defect_rate=0.0, tickets_per_day=tickets)
    frame = pd.read_csv(root / "landing" / "tickets" / "2026-11-01" / "tickets.csv", dtype=str, keep_default_na=False)
    truth = pd.DataFrame([json.loads(line) for line in (root / "truth" / "tickets" / "2026-11-01.jsonl").read_text().splitlines()])
    frame = frame.merge(truth, on="ticket_id")
    frame["day"] = "2026-11-01"
    frame["body_chars"] = frame["body"].str.len()
    frame["is_follow_up"] = (frame["in_reply_to"] != "").astype(int)
    frame["area"] = frame["category"].map({"billing": "money", "refund": "money"}).fillna("other")
    frame["human"] = ((frame["action"] == "escalate") | (frame["priority"] == "urgent")).map({True: "yes", False: "no"})
    return frame


def spec(**changes: object) -> ClassifierSpec:
    return ClassifierSpec(name="triage", description="A user's classifier in a test.", targets={"area": "area",
                          "human": "human"}, holdout={"fraction": 0.3, "seed": 3}, search=SEARCH, **changes)


@pytest.mark.slow
def test_one_day_skewed_target_macro_f1_beside_the_baseline(tmp_path: Path) -> None:
    frame = one_day(tmp_path)
    labels = {t: frame[t].astype(object) for t in ("area", "human")}
    assert 0.04 < (labels["human"] == "yes").mean() < 0.2, "about 90/10"
    result = train_and_compare(frame, labels, ["channel", "body_chars", "is_follow_up"], spec())

    assert result["holdout"] == "30% of the rows, stratified by human (seed 3)"
    test = result["test"]
    assert len(test) == pytest.approx(0.3 * len(frame), abs=2)
    assert (result["test_labels"]["human"] == "yes").sum() >= 3, "the stratified holdout keeps the rare class"
    metrics, base = result["metrics"], result["baseline"]
    assert set(metrics) == set(base) == {f"{t}_{m}" for t in ("area", "human") for m in ("accuracy", "macro_f1")}
    assert metrics["area_macro_f1"] >= 0.9, metrics
    rows = result["classifier"].predict(test)
    assert any(r["human"] == "yes" for r in rows), "the minority class is predicted"
    assert "balanced" in result["classifier"].choices["human"], result["chosen"]["human"]
    assert result["classifier"].columns.numeric == ("body_chars", "is_follow_up")
    ratios, short = comparison(metrics, base, 1.1)
    text = report(spec(), result, ratios, short)
    assert "| human | no " in text and all(line in text for line in short)
    again = train_and_compare(frame, labels, ["channel", "body_chars", "is_follow_up"], spec())
    assert again["metrics"] == metrics and again["baseline"] == base, "deterministic"
    assert set(rows[0]) == {f"{t}{s}" for t in ("area", "human") for s in ("", "_confidence", "_top")}


def test_the_last_days_are_held_out_and_too_few_days_say_what_to_do() -> None:
    frame = pd.DataFrame({"day": ["d1", "d1", "d2", "d3"]})
    labels = {"t": pd.Series(["a", "b", "a", "b"], dtype=object)}
    mask, how = holdout_split(frame, labels, spec().holdout.model_copy(update={"last_days": 1, "fraction": None}))
    assert mask.tolist() == [False, False, False, True] and how == "the last 1 day(s): d3"
    with pytest.raises(ValueError, match=r"holdout.last_days=3 leaves no day to train on.*fraction: 0.2"):
        holdout_split(frame, labels, spec().holdout.model_copy(update={"last_days": 3, "fraction": None}))


def test_comparison_names_each_target_short_of_the_goal() -> None:
    ratios, short = comparison({"a_macro_f1": 0.9, "b_macro_f1": 0.5}, {"a_macro_f1": 0.6, "b_macro_f1": 0.95}, 1.1)
    assert ratios == {"a": 1.5, "b": pytest.approx(0.5263, abs=1e-4)}
    assert short == ["falls short of 1.1x the baseline on b: macro-F1 0.500 vs 0.950 (0.53x) (unreachable: the "
                     "baseline is above 1/goal)"]
