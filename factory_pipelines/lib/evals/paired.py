"""Champion vs challenger on the same golden cases, compared case by case (paired), for one metric.

Both sides were scored on the same cases, so each case is its own control: the case-to-case spread of
difficulty cancels out of the per-case difference, and the interval of the mean difference is much
narrower than comparing two unpaired means would give. A non-deterministic configuration runs K trials
per case; its trials share the case's difficulty, so they are not independent observations. The unit
of resampling is therefore the case (a cluster bootstrap): trials are averaged per case once, then the
per-case differences are resampled, each case's trials staying together. Trial noise widens the
interval through the spread of the case means; K copies of the same trial add no information and leave
it as it was with K=1 (where a bootstrap over trials would shrink it by sqrt(K)).

Inputs are per-case scores shaped (cases, trials), one array per side (K may differ between the sides:
a deterministic champion with K=1 against a challenger at temperature > 0 with K=5; a 1-D array is
K=1). `kind="binary"` is a per-case pass/fail metric (0/1: the accuracy of a field, policy compliance),
`kind="continuous"` anything else (latency, cost). The difference is always challenger - champion;
`higher_is_better=False` (latency, cost) turns the gate around.

Degenerate inputs, decided once here:
- a ValueError naming the metric (and the case, for a bad value): fewer than 2 cases, a side that is not
  1-D or 2-D or has no trials, sides with different numbers of cases, case ids of another length or
  with duplicates, NaN or infinite scores, a binary score other than 0 or 1, a confidence outside (0, 1),
  a negative or non-finite tolerance, fewer than 1 resample;
- a well-defined result: when every case has the same difference c (identical sides: c = 0; every value
  equal on each side) every resample gives c, so the interval is [c, c] (method "constant", standard
  error 0) without running the bootstrap; identical sides have no flips and McNemar's p-value 1. A
  zero-width interval says no case-to-case variation was observed, not that the gain is certain.
  With no discordant case at all McNemar's p-value is 1.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

MetricKind = Literal["binary", "continuous"]
IntervalMethod = Literal["percentile", "BCa"]

DEFAULT_RESAMPLES = 9999  # SciPy's default; Monte Carlo error of a 95% endpoint well below the metric's own
DEFAULT_SEED = 0  # a fixed default: the same inputs give the same interval, so the gate's verdict is reproducible
# Resampled case means per batch: 1 M float64 values and their int64 indices, 16 MB, which stay in cache
# (0.6 s at 10,000 cases x 9,999 resamples; 1.0-1.8 s with batches of 10 M). SciPy's default, the whole
# bootstrap in one batch, needs 1.6 GB there. The interval does not depend on the batch size.
BATCH_VALUES = 1_000_000


@dataclass(frozen=True, slots=True)
class PairedComparison:
    """One metric of champion and challenger on the same cases; `difference`, `low`, `high` are
    challenger - champion. `fixed` (champion failed, challenger passed) and `broken` (the reverse) are
    case ids by per-case majority; empty, like `p_value` (None), for a continuous metric."""

    metric: str
    kind: MetricKind
    cases: int
    trials: tuple[int, int]  # (champion K, challenger K)
    champion_mean: float
    challenger_mean: float
    difference: float
    low: float
    high: float
    standard_error: float  # of the bootstrap distribution
    confidence: float
    method: str  # "percentile", "BCa", or "constant" (every case has the same difference; no bootstrap)
    n_resamples: int
    seed: int
    tolerance: float
    higher_is_better: bool
    p_value: float | None  # McNemar's exact test on the discordant cases (binary metrics only)
    fixed: tuple[str, ...]
    broken: tuple[str, ...]

    @property
    def interval(self) -> tuple[float, float]:
        return self.low, self.high

    @property
    def significant(self) -> bool:
        """Whether the interval excludes 0: the difference is more than noise at this confidence."""
        return self.low > 0 or self.high < 0

    def passes(self, tolerance: float | None = None) -> bool:
        """The gate: the challenger is not worse by more than `tolerance` (default: the one compared with),
        judged on the interval's pessimistic end, not on the mean: the lower bound above -tolerance, or
        for a lower-is-better metric the upper bound at most +tolerance. Not strict: tolerance 0 means "no
        regression at all", which a challenger equal to the champion on every case meets (policy compliance
        at 100% on both sides passes), while one case broken and none fixed does not."""
        tol = self.tolerance if tolerance is None else _tolerance(tolerance, self.metric)
        return self.low >= -tol if self.higher_is_better else self.high <= tol

    def describe(self) -> str:
        """One line for a report: means, difference with its interval, McNemar and flips, the verdict."""
        text = (f"{self.metric}: champion {self.champion_mean:.4g}, challenger {self.challenger_mean:.4g}, "
                f"difference {self.difference:+.4g} [{self.low:+.4g}, {self.high:+.4g}] "
                f"({self.confidence:.0%} {self.method}, {self.cases:,} cases x {self.trials[0]}/{self.trials[1]} "
                f"trials)")
        if self.p_value is not None:
            text += f"; McNemar p={self.p_value:.3g}, {len(self.fixed)} fixed, {len(self.broken)} broken"
        verdict = "passes" if self.passes() else "fails"
        return f"{text}; {verdict} at tolerance {self.tolerance:g}"


def compare(
    metric: str,
    champion: ArrayLike,
    challenger: ArrayLike,
    case_ids: Sequence[str],
    tolerance: float,
    *,
    kind: MetricKind = "binary",
    higher_is_better: bool = True,
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    method: IntervalMethod = "percentile",
) -> PairedComparison:
    """Compare the sides' per-case scores (cases x trials each, rows in the order of `case_ids`).

    The interval is `scipy.stats.bootstrap` over the per-case differences of trial means, with a
    Generator seeded by `seed`. It is given the differences d_i as one sample rather than both sides'
    case means with `paired=True`: paired resampling draws the same case indices for both arrays, which
    for a difference of means is exactly resampling d_i, at twice the work (and, for BCa, two jackknifes).

    Percentile by default, not SciPy's BCa, because: the statistic is a mean over cases, whose bootstrap
    distribution is close to symmetric at golden-set sizes, so BCa's bias and skew corrections are second
    order; BCa is undefined (NaN) for degenerate distributions and unstable for the lumpy ones of
    pass/fail metrics where few cases disagree, while the percentile interval always lies within the
    resampled means; and SciPy's BCa jackknife is O(cases^2): 2 s alone at 10,000 cases on 2 cores,
    the gate's whole budget. `method="BCa"` is there for small suites; a NaN interval is a ValueError.

    McNemar (binary metrics): a case passes on a side when more than half of its trials pass (with an
    even K, a tie fails); the exact test is `scipy.stats.binomtest` of the fixed count among the
    discordant cases at p = 1/2, two-sided.
    """
    if kind not in ("binary", "continuous"):
        raise ValueError(f"{metric}: kind must be 'binary' or 'continuous', got {kind!r}")
    ids = _case_ids(case_ids, metric)
    a = _scores(champion, "champion", metric, kind, ids)
    b = _scores(challenger, "challenger", metric, kind, ids)
    tol = _tolerance(tolerance, metric)
    if not 0 < confidence < 1:
        raise ValueError(f"{metric}: confidence must lie in (0, 1), got {confidence}")
    if int(n_resamples) != n_resamples or n_resamples < 1:
        raise ValueError(f"{metric}: n_resamples must be a positive integer, got {n_resamples}")
    if method not in ("percentile", "BCa"):
        raise ValueError(f"{metric}: method must be 'percentile' or 'BCa', got {method!r}")

    champion_cases, challenger_cases = a.mean(axis=1), b.mean(axis=1)  # trials averaged once per case
    d = challenger_cases - champion_cases
    difference = float(d.mean())
    if np.ptp(d) == 0:
        low = high = difference
        standard_error, used = 0.0, "constant"
    else:
        n = d.shape[0]
        result = stats.bootstrap((d,), np.mean, n_resamples=int(n_resamples), vectorized=True,
                                 batch=max(1, min(int(n_resamples), BATCH_VALUES // n)),
                                 confidence_level=confidence, method=method, rng=np.random.default_rng(seed))
        low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
        standard_error, used = float(result.standard_error), method
        if not (np.isfinite(low) and np.isfinite(high)):
            raise ValueError(f"{metric}: the {method} interval is undefined for these scores "
                             "(degenerate bootstrap distribution); use method='percentile'")

    p_value: float | None = None
    fixed: tuple[str, ...] = ()
    broken: tuple[str, ...] = ()
    if kind == "binary":
        champion_pass, challenger_pass = champion_cases > 0.5, challenger_cases > 0.5
        fixed = tuple(ids[i] for i in np.flatnonzero(~champion_pass & challenger_pass))
        broken = tuple(ids[i] for i in np.flatnonzero(champion_pass & ~challenger_pass))
        discordant = len(fixed) + len(broken)
        p_value = float(stats.binomtest(len(fixed), discordant, 0.5).pvalue) if discordant else 1.0

    return PairedComparison(
        metric=metric, kind=kind, cases=len(ids), trials=(a.shape[1], b.shape[1]),
        champion_mean=float(champion_cases.mean()), challenger_mean=float(challenger_cases.mean()),
        difference=difference, low=low, high=high, standard_error=standard_error, confidence=confidence,
        method=used, n_resamples=int(n_resamples), seed=seed, tolerance=tol, higher_is_better=higher_is_better,
        p_value=p_value, fixed=fixed, broken=broken,
    )


def _case_ids(case_ids: Sequence[str], metric: str) -> tuple[str, ...]:
    ids = tuple(str(c) for c in case_ids)
    if len(ids) < 2:
        raise ValueError(f"{metric}: a paired comparison needs at least 2 cases, got {len(ids)}")
    dupes = sorted(c for c, count in Counter(ids).items() if count > 1)
    if dupes:
        raise ValueError(f"{metric}: duplicate case ids {dupes[:5]}")
    return ids


def _scores(values: ArrayLike, side: str, metric: str, kind: MetricKind, ids: tuple[str, ...]) -> NDArray[np.float64]:
    """One side as a float (cases, trials) array, checked against the case ids and the metric's kind."""
    try:
        s = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{metric}: {side} scores are not numbers ({exc})") from None
    if s.ndim == 1:
        s = s[:, None]
    if s.ndim != 2:
        raise ValueError(f"{metric}: {side} scores must be (cases, trials), got shape {s.shape}")
    if s.shape[0] != len(ids):
        raise ValueError(f"{metric}: {side} has {s.shape[0]} cases, the case ids {len(ids)}")
    if s.shape[1] == 0:
        raise ValueError(f"{metric}: {side} has no trials")
    bad = ~np.isfinite(s)
    if bad.any():
        i, k = np.argwhere(bad)[0]
        raise ValueError(f"{metric}: {side} score of case {ids[i]!r}, trial {k}, is {s[i, k]} (NaN or infinite)")
    if kind == "binary":
        bad = (s != 0) & (s != 1)
        if bad.any():
            i, k = np.argwhere(bad)[0]
            raise ValueError(f"{metric}: {side} score of case {ids[i]!r}, trial {k}, is {s[i, k]}; a binary "
                             "metric takes 0 or 1 (kind='continuous' for latency, cost and other measures)")
    return s


def _tolerance(tolerance: float, metric: str) -> float:
    tol = float(tolerance)
    if not np.isfinite(tol) or tol < 0:
        raise ValueError(f"{metric}: tolerance must be a finite number >= 0, got {tolerance}")
    return tol
