"""The ticket classifier: the cheap, measured first pass of the support agent.

One feature transform (TF-IDF over subject and body, words and character n-grams so typos and shouting
still match; one-hot channel and plan; the numeric Feast features, scaled) shared by one logistic
regression per target (category, priority, action, tone). Training is deterministic (fixed seeds, a
time split: train on earlier days, test on later ones, as the model will be used). Scikit-learn is
imported inside the functions: loading the code location must not pay for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from factory_pipelines.lib.config_files import SnakeName, read_mapping, validate_named

TARGETS = ("category", "priority", "action")
TEXT = "text"
CATEGORICAL = ["channel", "plan"]
NUMERIC = [
    "body_chars", "exclamations", "uppercase_ratio", "sentiment", "mentions_refund", "mentions_amount",
    "has_order_ref", "is_follow_up", "tenure_days", "spend_30d", "refunds_90d", "tickets_7d",
]


@dataclass
class TicketClassifier:
    """One fitted feature transform shared by a logistic regression per target (the text is vectorized
    once per ticket, not once per target); `predict` returns one dict per ticket."""

    features: Any
    heads: dict[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)

    def predict(self, frame: Any) -> list[dict[str, Any]]:
        """Per ticket and target: the label, its probability, and the two likeliest labels (`<target>_top`)."""
        matrix = self.features.transform(prepare(frame))
        out: list[dict[str, Any]] = [{} for _ in range(matrix.shape[0])]
        for target, head in self.heads.items():
            probabilities = head.predict_proba(matrix)
            order = (-probabilities).argsort(axis=1, kind="stable")
            for row, ranks, p in zip(out, order, probabilities, strict=True):
                row[target] = str(head.classes_[ranks[0]])
                row[f"{target}_confidence"] = round(float(p[ranks[0]]), 4)
                row[f"{target}_top"] = [str(head.classes_[i]) for i in ranks[:2]]
        return out


def prepare(frame: Any) -> Any:
    """The model's input columns from tickets joined to their features (missing features are neutral)."""
    import pandas as pd

    data = pd.DataFrame(index=frame.index)
    data[TEXT] = frame["subject"].fillna("") + " \n " + frame["body"].fillna("")
    for column in CATEGORICAL:
        data[column] = frame[column].fillna("unknown").astype(str) if column in frame else "unknown"
    for column in NUMERIC:
        data[column] = pd.to_numeric(frame[column], errors="coerce").astype(float) if column in frame else 0.0
    data[NUMERIC] = data[NUMERIC].fillna(0.0)
    return data


def _features() -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_union
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    text = make_union(
        TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True, lowercase=True),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), min_df=2, sublinear_tf=True),
    )
    return ColumnTransformer([
        ("text", text, TEXT),
        ("categorical", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
        ("numeric", StandardScaler(), NUMERIC),
    ])


def train(frame: Any, *, targets: tuple[str, ...] = TARGETS, seed: int = 7,
          exclude: dict[str, Any] | None = None) -> TicketClassifier:
    """Fit one pipeline per target on labelled tickets (columns: the targets plus ticket text and features).

    `exclude` maps a target to a boolean mask of rows left out of its training (labels a rule explains).
    """
    from sklearn.linear_model import LogisticRegression

    features = _features()
    matrix = features.fit_transform(prepare(frame))
    heads = {}
    for target in targets:
        keep = (~exclude[target] if exclude and target in exclude else frame[target].notna()).to_numpy()
        head = LogisticRegression(max_iter=2000, C=8.0, random_state=seed)
        head.fit(matrix[keep], frame[target][keep].astype(str))
        heads[target] = head
    return TicketClassifier(features, heads)


def evaluate(classifier: TicketClassifier, frame: Any) -> dict[str, float]:
    """Accuracy per target on labelled tickets; also stored on the classifier."""
    predictions = classifier.predict(frame)
    metrics = {
        f"{target}_accuracy": round(
            sum(p[target] == str(t) for p, t in zip(predictions, frame[target], strict=True)) / max(len(frame), 1), 4
        )
        for target in classifier.heads
    }
    metrics["test_rows"] = float(len(frame))
    classifier.metrics = metrics
    return metrics


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


class ClassifierSpec(BaseModel):
    """The classifier's configuration file (defs/models/<name>.yaml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: SnakeName
    description: str = Field(min_length=10)
    feature_service: str
    targets: dict[str, str] = Field(min_length=1, description="Model output -> label column.")
    holdout_days: int = Field(3, ge=1)
    explained_by_rules: str | None = None
    promote_on: str = "action_accuracy"
    seed: int = 7


def load_spec(path: Path) -> ClassifierSpec:
    return validate_named(path, read_mapping(path, "classifier", ValueError), ClassifierSpec, "classifier", ValueError)


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

    def predict_many(self, tickets: list[dict[str, Any]], features: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One batch for a day of tickets: the text is vectorized in one go, about 100x faster than per row."""
        import pandas as pd

        return self.model.predict(pd.DataFrame([{**f, **t} for t, f in zip(tickets, features, strict=True)]))
