"""The scikit-learn pieces a classifier file names: a feature transform per `FeatureSet`, a model per
`ModelChoice`, and the bare baseline every training is compared with (word 1-2-gram TF-IDF and a
class-balanced logistic regression, nothing else). All seeded; all imported inside the functions."""

from __future__ import annotations

from typing import Any

import numpy as np

from factory_pipelines.lib.agents.models.classifier import AMOUNT, TEXT, Columns
from factory_pipelines.lib.agents.models.classifier_spec import FeatureSet, ModelChoice

TREE_TEXT_COMPONENTS = 32  # boosted trees see the text through this many SVD components (they need dense input)


def amount_indicators(values: Any, edges: tuple[float, ...] = ()) -> Any:
    """Per row: the text names an amount, and one 0/1 column per edge (`amount >= edge`)."""
    amounts = np.asarray(values, dtype=float).reshape(-1)
    named = ~np.isnan(amounts)
    filled = np.where(named, amounts, 0.0)
    return np.column_stack([named, *[(filled >= edge) & named for edge in edges]]).astype(float)


def feature_transform(features: FeatureSet, columns: Columns) -> Any:
    """A ColumnTransformer for one feature set: text first (its columns are the leading ones), then the
    amount indicators, then the Feast features (one-hot categories, quantile bins) weighted by `feast_weight`."""
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_union
    from sklearn.preprocessing import FunctionTransformer, KBinsDiscretizer, OneHotEncoder

    text = [TfidfVectorizer(ngram_range=features.word_ngrams, sublinear_tf=True)]
    if features.char_ngrams:
        text.append(TfidfVectorizer(analyzer="char_wb", ngram_range=features.char_ngrams, min_df=2, sublinear_tf=True))
    parts: list[tuple[str, Any, Any]] = [
        ("text", make_union(*text), TEXT),
        ("amounts", FunctionTransformer(amount_indicators, kw_args={"edges": features.amount_edges}), [AMOUNT])]
    weights = {"text": 1.0, "amounts": 1.0}
    if features.feast_weight > 0 and columns.categorical:
        parts.append(("categorical", OneHotEncoder(handle_unknown="ignore"), list(columns.categorical)))
        weights["categorical"] = features.feast_weight
    if features.feast_weight > 0 and columns.numeric:
        bins = KBinsDiscretizer(n_bins=5, encode="onehot", strategy="quantile", quantile_method="averaged_inverted_cdf")
        parts.append(("numeric", bins, list(columns.numeric)))
        weights["numeric"] = features.feast_weight
    return ColumnTransformer(parts, transformer_weights=weights, sparse_threshold=1.0)


def text_width(transform: Any) -> int:
    """How many leading columns of a fitted `feature_transform` are text."""
    return int(transform.output_indices_["text"].stop)


class BoostedTrees:
    """Gradient-boosted trees over the same features: the text columns reduced by a truncated SVD (trees need
    dense input), the other columns as they are."""

    def __init__(self, text_columns: int, choice: ModelChoice, seed: int):
        self.text_columns, self.choice, self.seed = text_columns, choice, seed

    def _dense(self, matrix: Any, fit: bool) -> Any:
        text, rest = matrix[:, : self.text_columns], matrix[:, self.text_columns:]
        reduced = self.svd.fit_transform(text) if fit else self.svd.transform(text)
        return np.hstack([reduced, rest.toarray() if hasattr(rest, "toarray") else np.asarray(rest)])

    def fit(self, matrix: Any, y: Any) -> BoostedTrees:
        from sklearn.decomposition import TruncatedSVD
        from sklearn.ensemble import HistGradientBoostingClassifier

        components = max(1, min(TREE_TEXT_COMPONENTS, self.text_columns - 1, matrix.shape[0] - 1))
        self.svd = TruncatedSVD(components, random_state=self.seed)
        self.model = HistGradientBoostingClassifier(
            max_iter=self.choice.max_iter, learning_rate=0.2, max_leaf_nodes=8, max_bins=32, early_stopping=False,
            class_weight=None if self.choice.class_weight == "none" else "balanced", random_state=self.seed)
        self.model.fit(self._dense(matrix, fit=True), y)
        self.classes_ = self.model.classes_
        return self

    def predict_proba(self, matrix: Any) -> Any:
        return self.model.predict_proba(self._dense(matrix, fit=False))

    def predict(self, matrix: Any) -> Any:
        return self.classes_[self.predict_proba(matrix).argmax(axis=1)]


def model(choice: ModelChoice, y: Any, text_columns: int, seed: int, calibrated: bool = True) -> Any:
    """An unfitted model for `choice`; a ValueError when the labels cannot support it (a calibrated SVM needs
    two examples of every class for its internal folds). `calibrated=False`: the SVM alone (for scoring)."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    weight = None if choice.class_weight == "none" else "balanced"
    if choice.kind == "logistic":
        return LogisticRegression(C=choice.C, class_weight=weight, max_iter=3000, tol=1e-3, random_state=seed)
    if choice.kind == "calibrated_svm" and not calibrated:
        return LinearSVC(C=choice.C, class_weight=weight, random_state=seed)
    if choice.kind == "calibrated_svm":
        smallest = int(np.unique(np.asarray(y), return_counts=True)[1].min())
        if smallest < 2:
            raise ValueError("a calibrated SVM needs two examples of every class")
        svm = LinearSVC(C=choice.C, class_weight=weight, random_state=seed)
        return CalibratedClassifierCV(svm, cv=min(3, smallest), method="sigmoid")
    return BoostedTrees(text_columns, choice, seed)


def baseline(seed: int) -> Any:
    """The bare baseline: TF-IDF of word 1-2-grams and a class-balanced logistic regression, on the text only."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(TfidfVectorizer(ngram_range=(1, 2)),
                         LogisticRegression(class_weight="balanced", max_iter=3000, random_state=seed))
