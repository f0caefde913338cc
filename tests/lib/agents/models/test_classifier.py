"""The ticket classifier on demo data: trained on earlier days, measured on a later one."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from factory_pipelines.demo import write_demo_data
from factory_pipelines.lib.agents.models.classifier import evaluate, train


def labelled(root: Path, day: str) -> pd.DataFrame:
    tickets = pd.read_csv(root / "landing" / "tickets" / day / "tickets.csv", dtype=str, keep_default_na=False)
    truth = pd.DataFrame([json.loads(line) for line in (root / "truth" / "tickets" / f"{day}.jsonl").read_text().splitlines()])
    frame = tickets.merge(truth[["ticket_id", "category", "priority", "action"]], on="ticket_id")
    frame["body_chars"] = frame["body"].str.len()
    frame["exclamations"] = (frame["subject"] + frame["body"]).str.count("!")
    frame["is_follow_up"] = (frame["in_reply_to"] != "").astype(int)
    frame["has_order_ref"] = (frame["order_id"] != "").astype(int)
    return frame


@pytest.mark.slow
def test_action_accuracy_on_a_later_day(tmp_path: Path) -> None:
    write_demo_data(tmp_path / "landing", date(2026, 11, 1), date(2026, 11, 5), truth_dir=tmp_path / "truth",
                    defect_rate=0.0, tickets_per_day=120)
    train_frame = pd.concat([labelled(tmp_path, f"2026-11-0{d}") for d in range(1, 5)], ignore_index=True)
    test_frame = labelled(tmp_path, "2026-11-05")
    classifier = train(train_frame)
    metrics = evaluate(classifier, test_frame)
    assert metrics["test_rows"] > 100
    assert metrics["category_accuracy"] >= 0.85, metrics
    assert metrics["action_accuracy"] >= 0.8, metrics
    again = evaluate(train(train_frame), test_frame)
    assert again == metrics, "training is deterministic"
    prediction = classifier.predict(test_frame.head(1))[0]
    assert set(prediction) == {f"{t}{suffix}" for t in ("category", "priority", "action")
                               for suffix in ("", "_confidence", "_top")}
    assert prediction["action_top"][0] == prediction["action"] and len(prediction["action_top"]) == 2
