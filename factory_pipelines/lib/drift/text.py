"""Ticket-text drift as Evidently measures it: a domain classifier.

Reference texts are labelled 0 and current ones 1, split in half (seeded), and Evidently's pipeline (TF-IDF,
then an L1 SGD classifier) is fitted on one half and scored on the other. If the two windows' texts cannot be
told apart, its ROC AUC stays near 0.5; the further above, the more the wording moved. Like Evidently, a
reference of at most 1,000 rows is judged against chance instead of a fixed level: the warn bound is then
never below the 95th percentile of a random classifier's AUC on the same split (Evidently's bootstrap), so
a small sample's noise does not read as drift.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from factory_pipelines.lib.drift.config import TextSpec
from factory_pipelines.lib.drift.engine import evidently
from factory_pipelines.lib.drift.records import Distribution, DriftResult, insufficient, judge

if TYPE_CHECKING:
    import pandas as pd

METHOD = "domain_classifier_roc_auc"
SEED = 42  # Evidently's split seed
SMALL_REFERENCE = 1000  # at or below, Evidently judges the AUC against chance (bootstrap)


def texts(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    """One text per row: the columns joined by a blank line, missing values as empty strings."""
    missing = [c for c in columns if c not in frame]
    if missing:
        raise KeyError(f"text columns {missing} are not in the rows")
    joined = frame[columns[0]].fillna("").astype(str)
    for column in columns[1:]:
        joined = joined + "\n\n" + frame[column].fillna("").astype(str)
    return joined[joined.str.strip() != ""].reset_index(drop=True)


def text_drift(reference: pd.DataFrame, current: pd.DataFrame, spec: TextSpec) -> list[DriftResult]:
    """One record: the domain classifier's ROC AUC on held-out rows, with the plot of its scores per side."""
    ref, cur = texts(reference, spec.columns), texts(current, spec.columns)
    column, bound = "+".join(spec.columns), spec.bound
    if len(ref) < spec.min_rows or len(cur) < spec.min_rows:
        return [insufficient("text", column, METHOD, bound.warn, bound.error, len(ref), len(cur),
                             f"too few texts: reference {len(ref)}, current {len(cur)} (needs {spec.min_rows} each)")]
    n_ref, n_cur = len(ref), len(cur)
    ref = ref.sample(spec.max_rows, random_state=SEED) if n_ref > spec.max_rows else ref
    cur = cur.sample(spec.max_rows, random_state=SEED) if n_cur > spec.max_rows else cur
    try:
        auc, scores, labels = _domain_classifier(ref, cur)
    except ValueError as exc:  # e.g. no word survives the vectorizer (only stop words)
        return [insufficient("text", column, METHOD, bound.warn, bound.error, n_ref, n_cur,
                             f"the domain classifier could not be fitted: {exc}")]
    warn, message = bound.warn, ""
    if n_ref <= SMALL_REFERENCE:
        chance = float(evidently().text.roc_auc_random_classifier_percentile(labels, p_value=0.05))
        if chance > warn:
            warn, message = chance, f"warn bound raised to chance level {chance:.3f} (reference <= 1,000 rows)"
    error = max(bound.error, warn)
    return [DriftResult("text", column, METHOD, auc, warn, error, judge(auc, warn, error, True), n_ref, n_cur,
                        True, message, distribution=_score_shares(scores, labels))]


def _domain_classifier(reference: pd.Series, current: pd.Series) -> tuple[float, object, object]:
    """Evidently's split and pipeline: (ROC AUC, held-out scores, held-out labels)."""
    import pandas as pd
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split

    domain = pd.concat([pd.DataFrame({"text": reference, "target": 0}),
                        pd.DataFrame({"text": current, "target": 1})])
    x_train, x_test, y_train, y_test = train_test_split(domain["text"], domain["target"], test_size=0.5,
                                                        random_state=SEED, shuffle=True)
    if y_train.nunique() < 2 or y_test.nunique() < 2:
        raise ValueError("a half of the split holds texts of one window only")
    with warnings.catch_warnings():  # its SGD stops at 50 iterations by design; the AUC is what counts
        warnings.simplefilter("ignore", ConvergenceWarning)
        auc, scores, _ = evidently().text.roc_auc_domain_classifier(x_train, x_test, y_train, y_test)
    return float(auc), scores, y_test.to_numpy()


def _score_shares(scores: object, labels: object, bins: int = 10) -> Distribution:
    """Share of each side's held-out texts per band of the classifier's "current" score: overlapping
    histograms mean the windows read alike."""
    import numpy as np

    s, y = np.asarray(scores, dtype=float), np.asarray(labels)
    edges = np.linspace(0.0, 1.0, bins + 1)
    ref = np.histogram(s[y == 0], edges)[0] / max(int((y == 0).sum()), 1)
    cur = np.histogram(s[y == 1], edges)[0] / max(int((y == 1).sum()), 1)
    return Distribution(tuple(f"{e:.1f}" for e in edges[:-1]), tuple(map(float, ref)), tuple(map(float, cur)))
