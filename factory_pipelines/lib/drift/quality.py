"""Accuracy estimated without labels, as NannyML's CBPE does for classifiers.

On the reference window, where labels exist, the first pass's confidence (its max class probability) is
calibrated against whether it was right (isotonic regression: monotone, no shape assumed). On a day without
labels, each decision's calibrated confidence is the probability it is correct, so their mean is the expected
accuracy, with a standard error of sqrt(sum p(1-p)) / n (independent Bernoulli outcomes). The drop from the
reference's realized accuracy is the drift value. When the day has labels too, its realized accuracy gets a
record of its own, and the estimate's error is stated in the message, so the estimate is checked, not trusted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from factory_pipelines.lib.drift.config import DriftConfig, QualitySpec
from factory_pipelines.lib.drift.records import Distribution, DriftResult, insufficient, judge

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True, slots=True)
class QualityEstimate:
    estimated: float
    standard_error: float
    n: int
    realized: float | None = None  # when the window has labels
    n_labelled: int = 0


def fit_calibrator(confidence: Any, correct: Any) -> Any:
    """Isotonic map from confidence to P(correct), clipped to the fitted range."""
    import numpy as np
    from sklearn.isotonic import IsotonicRegression

    return IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(
        np.asarray(confidence, dtype=float), np.asarray(correct, dtype=float))


def estimate_accuracy(calibrator: Any, confidence: Any, correct: Any = None) -> QualityEstimate:
    """Expected accuracy of decisions with these confidences; realized too where `correct` is given (NaN =
    unlabelled)."""
    import numpy as np

    p = calibrator.predict(np.asarray(confidence, dtype=float))
    n = len(p)
    realized, labelled = None, 0
    if correct is not None:
        known = np.asarray(correct, dtype=float)
        known = known[~np.isnan(known)]
        labelled = len(known)
        realized = float(known.mean()) if labelled else None
    return QualityEstimate(float(p.mean()), float(math.sqrt(float((p * (1 - p)).sum())) / n), n, realized, labelled)


def quality_drift(reference: pd.DataFrame, current: pd.DataFrame, config: DriftConfig,
                  spec: QualitySpec | None = None) -> list[DriftResult]:
    """`estimated_accuracy` (CBPE: reference accuracy minus the estimate), and `realized_accuracy` when the
    current window has enough labels."""
    spec = spec or config.quality
    if spec is None:
        return []
    bound = spec.bound
    ref = reference[[spec.confidence, spec.correct]].dropna()
    cur_conf = current[spec.confidence].dropna()
    if len(ref) < spec.min_rows or len(cur_conf) < spec.min_rows:
        return [insufficient("estimated_accuracy", spec.confidence, "cbpe", bound.warn, bound.error, len(ref),
                             len(cur_conf), f"too few rows: labelled reference {len(ref)}, current {len(cur_conf)} "
                             f"(needs {spec.min_rows} each)")]
    calibrator = fit_calibrator(ref[spec.confidence], ref[spec.correct])
    baseline = float(ref[spec.correct].astype(float).mean())
    labels = current.loc[cur_conf.index, spec.correct] if spec.correct in current else None
    est = estimate_accuracy(calibrator, cur_conf, labels)
    drop = baseline - est.estimated
    message = f"estimated {est.estimated:.3f} ± {1.96 * est.standard_error:.3f} (95%) vs reference {baseline:.3f}"
    if est.realized is not None:
        message += f"; realized {est.realized:.3f} on {est.n_labelled} labelled (estimate off by {est.estimated - est.realized:+.3f})"
    shown = ("reference", "estimated", *(["realized"] if est.realized is not None else []))
    values = (baseline, est.estimated, *([est.realized] if est.realized is not None else []))
    plot = Distribution(shown, tuple(values), tuple(values))
    results = [DriftResult("estimated_accuracy", spec.confidence, "cbpe", drop, bound.warn, bound.error,
                           judge(drop, bound.warn, bound.error, True), len(ref), est.n, True, message, baseline,
                           est.estimated, plot)]
    if est.realized is not None and est.n_labelled >= spec.min_rows:
        real_drop = baseline - est.realized
        results.append(DriftResult("realized_accuracy", spec.correct, "labels", real_drop, bound.warn, bound.error,
                                   judge(real_drop, bound.warn, bound.error, True), len(ref), est.n_labelled, True,
                                   f"realized {est.realized:.3f} vs reference {baseline:.3f}", baseline, est.realized))
    return results
