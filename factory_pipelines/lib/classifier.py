"""The ticket classifier: the cheap, measured first pass of the support agent.

One scikit-learn pipeline per target (category, priority, action): TF-IDF over subject and body (words
and character n-grams, so typos and shouting still match), one-hot channel and plan, and the numeric
Feast features, into a logistic regression. Training is deterministic (fixed seeds, a time split: train
on earlier days, test on later ones, as the model will be used). Scikit-learn is imported inside the
functions: loading the code location must not pay for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TARGETS = ("category", "priority", "action")
TEXT = "text"
CATEGORICAL = ["channel", "plan"]
NUMERIC = [
    "body_chars", "exclamations", "uppercase_ratio", "sentiment", "mentions_refund", "mentions_amount",
    "has_order_ref", "is_follow_up", "tenure_days", "spend_30d", "refunds_90d", "tickets_7d",
]


@dataclass
class TicketClassifier:
    """A fitted pipeline per target; `predict` returns one dict per ticket with label and confidence."""

    pipelines: dict[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)

    def predict(self, frame: Any) -> list[dict[str, Any]]:
        features = prepare(frame)
        out: list[dict[str, Any]] = [{} for _ in range(len(features))]
        for target, pipeline in self.pipelines.items():
            probabilities = pipeline.predict_proba(features)
            labels = pipeline.classes_[probabilities.argmax(axis=1)]
            for row, label, p in zip(out, labels, probabilities.max(axis=1), strict=True):
                row[target] = str(label)
                row[f"{target}_confidence"] = round(float(p), 4)
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


def _pipeline(seed: int) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_union
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    text = make_union(
        TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True, lowercase=True),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), min_df=2, sublinear_tf=True),
    )
    columns = ColumnTransformer([
        ("text", text, TEXT),
        ("categorical", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
        ("numeric", StandardScaler(), NUMERIC),
    ])
    return Pipeline([("features", columns), ("model", LogisticRegression(max_iter=2000, C=8.0, random_state=seed))])


def train(frame: Any, *, seed: int = 7) -> TicketClassifier:
    """Fit one pipeline per target on labelled tickets (columns: TARGETS plus ticket text and features)."""
    features = prepare(frame)
    pipelines = {}
    for target in TARGETS:
        pipeline = _pipeline(seed)
        pipeline.fit(features, frame[target].astype(str))
        pipelines[target] = pipeline
    return TicketClassifier(pipelines)


def evaluate(classifier: TicketClassifier, frame: Any) -> dict[str, float]:
    """Accuracy per target on labelled tickets; also stored on the classifier."""
    predictions = classifier.predict(frame)
    metrics = {
        f"{target}_accuracy": round(
            sum(p[target] == str(t) for p, t in zip(predictions, frame[target], strict=True)) / max(len(frame), 1), 4
        )
        for target in TARGETS
    }
    metrics["test_rows"] = float(len(frame))
    classifier.metrics = metrics
    return metrics
