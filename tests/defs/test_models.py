"""The classifier as a new user trains it: a tickets-only export (no orders, customers or articles), labels of
their own (a team and a skewed 90/10 'needs a human' flag, classes the demo never had) and their own classifier
file in FACTORY_USER_MODELS_DIR. `models_job` trains, reports macro-F1 beside the TF-IDF baseline (a sibling
MLflow run), and registers the first version as champion, the next as challenger."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import duckdb
import pytest

from factory_pipelines.definitions import build_definitions
from factory_pipelines.demo import write_demo_data
from factory_pipelines.instance import prepare_instance
from factory_pipelines.runs import PartitionOutcome, run_partitions
from factory_pipelines.settings import get_settings
from tests.conftest import use_home

pytestmark = pytest.mark.slow
DAYS = [f"2026-11-0{d}" for d in range(1, 5)]
TEAMS = {"billing": "money", "refund": "money", "shipping": "delivery", "technical": "product_help",
         "product": "product_help", "account": "account_help"}
CLASSIFIER = """
name: ticket_classifier
description: Which team takes a ticket, and whether a person must look at it.
targets: {team: team, needs_human: human}
holdout: {last_days: 1}
"""


def own_labels(truth_dir: Path, labels_dir: Path) -> None:
    """The user's labels: a team per ticket, and `human` yes for escalations and urgent tickets (about 1 in 10)."""
    labels_dir.mkdir(parents=True)
    for path in sorted(truth_dir.glob("*.jsonl")):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        own = [{"ticket_id": r["ticket_id"], "team": TEAMS[r["category"]],
                "human": "yes" if r["action"] == "escalate" or r["priority"] == "urgent" else "no"} for r in rows]
        (labels_dir / path.name).write_text("".join(json.dumps(r) + "\n" for r in own))


@pytest.fixture(scope="module")
def user(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("own_classifier")
    sources, models = root / "my_sources", root / "my_models"
    sources.mkdir()
    models.mkdir()
    for source in ("customers", "orders", "kb_articles"):
        (sources / f"{source}.yaml").write_text(f"name: {source}\nenabled: false\n")
    (models / "ticket_classifier.yaml").write_text(CLASSIFIER)
    with pytest.MonkeyPatch.context() as monkeypatch:
        settings = use_home(monkeypatch, root / "home", user_sources_dir=str(sources), user_models_dir=str(models),
                            labels_dir=str(root / "my_labels"), start_date=DAYS[0], end_date=DAYS[-1])
        write_demo_data(Path(settings.landing_dir), date(2026, 11, 1), date(2026, 11, 4), tickets_per_day=70,
                        customers=60, defect_rate=0.0, truth_dir=root / "truth")
        own_labels(root / "truth" / "tickets", root / "my_labels")
        prepare_instance(settings)
        defs = build_definitions(settings)
        plane = run_partitions("data_plane_job", DAYS, definitions=defs)
        first = run_partitions("models_job", [None], definitions=defs)[0]
        second = run_partitions("models_job", [None], definitions=defs)[0]
        yield {"settings": settings, "plane": plane, "first": first, "second": second, "labels": root / "my_labels"}
    get_settings.cache_clear()


def test_tickets_only_with_own_labels_trains_and_reports_macro_f1(user: dict) -> None:
    assert all(o.success for o in user["plane"]), [(o.failed_steps, o.error) for o in user["plane"]]
    first: PartitionOutcome = user["first"]
    assert first.success, (first.failed_steps, first.error)
    meta = first.materialized["models/ticket_classifier"]
    assert meta["train_days"] == DAYS[:3] and meta["holdout_days"] == DAYS[3:]
    for target in ("team", "needs_human"):
        assert 0 < meta[f"holdout_{target}_macro_f1"] <= 1 and 0 < meta[f"baseline_{target}_macro_f1"] <= 1, meta
        assert target in meta["macro_f1_vs_baseline"] and f"| {target} |" in meta["training_report"]
    assert meta["holdout_team_macro_f1"] >= 0.8, meta["training_report"]
    assert "balanced" in meta["chosen"]["needs_human"], meta["chosen"]
    for line in meta["falls_short"]:
        assert line.startswith("falls short of 1.1x the baseline on ") and line in meta["training_report"]


def test_the_minority_class_is_predicted(user: dict) -> None:
    import mlflow.pyfunc

    settings = user["settings"]
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    classifier = mlflow.pyfunc.load_model("models:/ticket_classifier@champion").unwrap_python_model().classifier
    with duckdb.connect(settings.warehouse, read_only=True) as con:
        tickets = con.execute(f"SELECT * FROM staging.tickets WHERE _partition = '{DAYS[-1]}'").df()
    truth = {json.loads(line)["ticket_id"]: json.loads(line)["human"]
             for line in (user["labels"] / f"{DAYS[-1]}.jsonl").read_text().splitlines()}
    rows = classifier.predict(tickets)
    assert set(rows[0]) == {f"{t}{s}" for t in ("team", "needs_human") for s in ("", "_confidence", "_top")}
    assert {r["team"] for r in rows} <= set(TEAMS.values())
    shares = sum(v == "yes" for v in truth.values()) / len(truth)
    assert 0.04 < shares < 0.2, f"the flag is skewed about 90/10 ({shares:.0%} yes)"
    hits = sum(r["needs_human"] == "yes" and truth[t] == "yes" for r, t in zip(rows, tickets["ticket_id"], strict=True))
    assert hits >= 1, "the minority class is predicted, and right"


def test_baseline_is_a_sibling_run_and_a_retrained_version_is_only_challenger(user: dict) -> None:
    from mlflow import MlflowClient

    settings = user["settings"]
    client = MlflowClient(settings.mlflow_tracking_uri)
    first = user["first"].materialized["models/ticket_classifier"]
    second = user["second"].materialized["models/ticket_classifier"]
    assert (first["alias"], second["alias"]) == ("champion", "challenger")
    assert second["model_uri"] == "models:/ticket_classifier/2" and second["champion_version"] == "1"
    assert str(client.get_model_version_by_alias("ticket_classifier", "champion").version) == "1"
    assert str(client.get_model_version_by_alias("ticket_classifier", "challenger").version) == "2"
    run, baseline = client.get_run(first["mlflow_run_id"]), client.get_run(first["baseline_run_id"])
    assert run.data.tags["role"] == "model" and run.data.tags["baseline_run_id"] == baseline.info.run_id
    assert baseline.data.tags["role"] == "baseline" and baseline.data.tags["sibling_run_id"] == run.info.run_id
    assert run.data.tags["lineage.tables"] == "staging.tickets", "no orders feed, no orders table"
    assert baseline.data.metrics["needs_human_macro_f1"] == run.data.metrics["baseline_needs_human_macro_f1"]
    assert run.data.metrics["team_macro_f1"] == first["holdout_team_macro_f1"]
    assert second["holdout_team_macro_f1"] == first["holdout_team_macro_f1"], "training is deterministic"
    with duckdb.connect(settings.warehouse, read_only=True) as con:
        moves = con.execute("SELECT json_extract_string(payload, '$.alias'), json_extract_string(payload, '$.version') "
                            "FROM governance.audit_log WHERE kind = 'alias_moved' AND subject = "
                            "'model:ticket_classifier' ORDER BY seq").fetchall()
    assert moves == [("champion", "1"), ("challenger", "2")]
