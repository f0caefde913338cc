"""One agent's drift inputs read from the warehouse, the labels folder and (through a callable) Feast.

Every family compares what the agent saw or did, over both windows at once: the features of the tickets it
decided (read point-in-time from the feature service it reads, at each ticket's own time), the day's ticket
texts, its decisions with the escalated/denied/refunded flags of their tool calls, and the first pass's
confidence with, where a labels file covers the ticket, whether the first pass was right. A table that does
not exist yet gives None, so the window check names it (`DriftWindowError`) instead of a SQL error.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from factory_pipelines.lib.drift.config import DriftConfig
from factory_pipelines.lib.drift.decisions import decision_flags
from factory_pipelines.lib.drift.evaluate import DriftInputs
from factory_pipelines.lib.sql import table_exists

if TYPE_CHECKING:
    import pandas as pd

# (entities with ticket_id, customer_id, event_timestamp) -> the same rows with the service's feature columns
FeatureReader = Callable[["pd.DataFrame"], "pd.DataFrame"]

DECIDED_TICKETS_SQL = """
SELECT d.partition, d.ticket_id, t.customer_id, t.created_at
FROM agents.decisions d JOIN staging.tickets t ON t.ticket_id = d.ticket_id AND t._partition = d.partition
WHERE d.agent = ? AND d.partition BETWEEN ? AND ? ORDER BY d.partition, d.ticket_id
"""
DECISIONS_SQL = """
SELECT partition, ticket_id, category, priority, action, cost_usd, CAST(first_pass AS VARCHAR) AS first_pass
FROM agents.decisions WHERE agent = ? AND partition BETWEEN ? AND ? ORDER BY partition, ticket_id
"""
TOOL_CALLS_SQL = """
SELECT ticket_id, tool, verdict, executed FROM agents.tool_calls WHERE agent = ? AND partition BETWEEN ? AND ?
"""


def _frame(con: Any, schema: str, table: str, sql: str, params: list[Any]) -> pd.DataFrame | None:
    return con.execute(sql, params).df() if table_exists(con, schema, table) else None


def feature_rows(con: Any, agent: str, start: date, end: date, read: FeatureReader) -> pd.DataFrame | None:
    """The features of every ticket the agent decided in [start, end], as of the ticket's time."""
    import pandas as pd

    if not (table_exists(con, "agents", "decisions") and table_exists(con, "staging", "tickets")):
        return None
    tickets = con.execute(DECIDED_TICKETS_SQL, [agent, start, end]).df()
    if tickets.empty:
        return tickets
    entities = pd.DataFrame({"ticket_id": tickets["ticket_id"].astype(str),
                             "customer_id": tickets["customer_id"].astype(str),
                             "event_timestamp": pd.to_datetime(tickets["created_at"], utc=True)})
    features = read(entities).drop(columns=["event_timestamp"], errors="ignore")
    days = tickets[["ticket_id", "partition"]].drop_duplicates("ticket_id")
    return features.drop(columns=["partition"], errors="ignore").merge(days, on="ticket_id", how="left")


def text_rows(con: Any, columns: list[str], start: date, end: date) -> pd.DataFrame | None:
    """The ticket texts of [start, end] (every ticket of those days, decided or not)."""
    listed = ", ".join(f'"{c}"' for c in columns)
    return _frame(con, "staging", "tickets", f"SELECT _partition AS partition, {listed} FROM staging.tickets "
                  "WHERE _partition BETWEEN ? AND ?", [start, end])


def decision_rows(con: Any, agent: str, start: date, end: date) -> pd.DataFrame | None:
    """The agent's decisions of [start, end] with their `escalated`, `denied` and `refunded` flags."""
    decisions = _frame(con, "agents", "decisions", DECISIONS_SQL, [agent, start, end])
    if decisions is None:
        return None
    calls = _frame(con, "agents", "tool_calls", TOOL_CALLS_SQL, [agent, start, end])
    return decision_flags(decisions, calls)


def quality_rows(decisions: pd.DataFrame | None, labels: dict[str, dict[str, Any]], field: str) -> pd.DataFrame | None:
    """Per decision the first pass's confidence for `field` and, where labelled, 1/0 for right/wrong (NaN
    elsewhere). Decisions recorded before the first pass was kept have no confidence and are left out."""
    import json

    import numpy as np

    if decisions is None:
        return None
    confidence, correct = [], []
    for ticket_id, first_pass in zip(decisions["ticket_id"], decisions["first_pass"], strict=True):
        guess = (json.loads(first_pass) if isinstance(first_pass, str) else first_pass or {}).get(field) or {}
        confidence.append(guess.get("confidence", np.nan))
        truth = labels.get(str(ticket_id), {}).get(field)
        correct.append(np.nan if truth is None or "label" not in guess else float(guess["label"] == truth))
    return decisions[["partition", "ticket_id"]].assign(confidence=confidence, correct=correct)


def load_inputs(con: Any, config: DriftConfig, start: date, end: date, *, labels: dict[str, dict[str, Any]],
                read_features: FeatureReader | None) -> DriftInputs:
    """Every configured family's rows over [start, end] (the reference window's start to the night's day)."""
    decisions = decision_rows(con, config.agent, start, end) if config.decisions or config.quality else None
    features = None
    if config.features is not None:
        if read_features is None:
            raise ValueError(f"drift/{config.agent}.yaml has features: a feature reader is needed")
        features = feature_rows(con, config.agent, start, end, read_features)
    quality = None
    if config.quality is not None:
        quality = quality_rows(decisions, labels, config.quality.field)
        if quality is not None:
            quality = quality.rename(columns={"confidence": config.quality.confidence,
                                              "correct": config.quality.correct})
    return DriftInputs(features=features,
                       text=text_rows(con, config.text.columns, start, end) if config.text else None,
                       decisions=decisions if config.decisions else None, quality=quality)


def label_days(labels_dir: Path, start: date, end: date) -> dict[str, dict[str, Any]]:
    """The labels of [start, end] (one `<day>.jsonl` per day), by ticket id; no folder: none."""
    from datetime import timedelta

    from factory_pipelines.lib.agents.models.classifier import read_labels

    if not Path(labels_dir).is_dir():
        return {}
    days = [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]
    return read_labels(Path(labels_dir), days)
