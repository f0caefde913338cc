"""The ticket classifier: the cheap, measured first pass of the support agent.

A fitted classifier is a few feature transforms (TF-IDF word and character n-grams, money amounts named in
the text, the Feast features that exist, binned) and one model per target, each on the transform that
cross-validation chose for it (`training.py`); a transform several targets share is applied once per batch.
Targets and their classes come from the user's labels. Scikit-learn is imported inside the functions:
loading the code location must not pay for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TEXT = "text"
AMOUNT = "text_amount"
TICKET_CATEGORICAL = ("channel",)


@dataclass(frozen=True)
class Columns:
    """The model's input columns besides the text: categorical and numeric, as found in the training data."""

    categorical: tuple[str, ...] = ()
    numeric: tuple[str, ...] = ()


@dataclass
class TicketClassifier:
    """Fitted transforms and one fitted model per target (`heads[target] = (transform index, model)`);
    `choices` says which settings each target got, `metrics` its holdout scores."""

    transforms: list[Any]
    heads: dict[str, tuple[int, Any]]
    columns: Columns
    choices: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def targets(self) -> list[str]:
        return list(self.heads)

    @property
    def classes(self) -> dict[str, list[str]]:
        """Per target, the labels it was trained on: the user's label set, not the demo's."""
        return {target: [str(c) for c in head.classes_] for target, (_, head) in self.heads.items()}

    def predict(self, frame: Any) -> list[dict[str, Any]]:
        """Per ticket and target: the label, its probability, and the two likeliest labels (`<target>_top`)."""
        data = prepare(frame, self.columns)
        used = sorted({index for index, _ in self.heads.values()})
        matrices = {i: self.transforms[i].transform(data) for i in used}
        out: list[dict[str, Any]] = [{} for _ in range(len(data))]
        for target, (index, head) in self.heads.items():
            probabilities = head.predict_proba(matrices[index])
            order = (-probabilities).argsort(axis=1, kind="stable")
            for row, ranks, p in zip(out, order, probabilities, strict=True):
                row[target] = str(head.classes_[ranks[0]])
                row[f"{target}_confidence"] = round(float(p[ranks[0]]), 4)
                row[f"{target}_top"] = [str(head.classes_[i]) for i in ranks[:2]]
        return out


def ticket_text(frame: Any) -> Any:
    """Subject and body as one text (missing parts empty)."""
    subject = frame["subject"] if "subject" in frame else ""
    return subject.fillna("").astype(str) + " \n " + frame["body"].fillna("").astype(str)


def prepare(frame: Any, columns: Columns) -> Any:
    """The model's input columns from tickets joined to their features; a missing feature is neutral."""
    import pandas as pd

    from factory_pipelines.lib.agents.facts import parse_amount

    data = pd.DataFrame(index=frame.index)
    data[TEXT] = ticket_text(frame)
    data[AMOUNT] = data[TEXT].map(parse_amount).astype(float)
    for column in columns.categorical:
        data[column] = frame[column].fillna("unknown").astype(str) if column in frame else "unknown"
    for column in columns.numeric:
        data[column] = pd.to_numeric(frame[column], errors="coerce").astype(float) if column in frame else 0.0
    if columns.numeric:
        data[list(columns.numeric)] = data[list(columns.numeric)].fillna(0.0)
    return data.reset_index(drop=True)


def available_columns(frame: Any, features: list[str]) -> Columns:
    """Of the feature service's columns (plus the ticket's channel), those the training rows carry values of:
    with no customers or orders feed the customer features are NULL, and a column of one value teaches nothing."""
    import pandas as pd

    categorical, numeric = [], []
    for column in [*TICKET_CATEGORICAL, *features]:
        if column not in frame or column in categorical or column in numeric or frame[column].nunique() < 2:
            continue
        values = frame[column]
        if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
            numeric.append(column)
        elif pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values):
            categorical.append(column)
    return Columns(tuple(categorical), tuple(numeric))


def as_pyfunc(classifier: TicketClassifier) -> Any:
    """The classifier as an MLflow pyfunc model: a DataFrame of tickets in, labels and confidences out."""
    import mlflow.pyfunc
    import pandas as pd

    class TicketClassifierModel(mlflow.pyfunc.PythonModel):
        def __init__(self, fitted: TicketClassifier):
            self.classifier = fitted

        def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201 (MLflow reads the hints)
            rows = self.classifier.predict(model_input)
            return pd.DataFrame([{k: v for k, v in row.items() if not k.endswith("_top")} for row in rows])

    return TicketClassifierModel(classifier)


def read_labels(labels_dir: Path, days: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Labelled tickets by ticket id, from one JSONL file per day (`<day>.jsonl`); errors name file and line."""
    import json

    labels: dict[str, dict[str, Any]] = {}
    for path in sorted(Path(labels_dir).glob("*.jsonl")):
        if days is not None and path.stem not in days:
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                labels[str(row["ticket_id"])] = row | {"_day": path.stem}
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}: line {n}: not a JSON object with a ticket_id ({exc})") from exc
    return labels


@dataclass(frozen=True)
class FirstPass:
    """A registered classifier and the version the alias resolved to."""

    uri: str
    version: str
    model: TicketClassifier

    @property
    def classes(self) -> dict[str, list[str]]:
        return dict(self.model.classes)

    def predict_many(self, tickets: list[dict[str, Any]], features: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One batch for a day of tickets: the text is vectorized in one go, about 100x faster than per row."""
        import pandas as pd

        return self.model.predict(pd.DataFrame([{**f, **t} for t, f in zip(tickets, features, strict=True)]))
