"""The one door to Evidently: its statistical tests and its text domain classifier, imported on first use.

Evidently (0.7.x) is a heavy import (seconds: its package imports every metric, preset and descriptor), so
loading the code location must not pay for it; everything here imports it inside a function, once. Its
telemetry (the UI service and collector send events unless `DO_NOT_TRACK` is set; the legacy module reads
`EVIDENTLY_DISABLE_TELEMETRY`) is switched off before that import by the factory's own opt-out list
(`settings.turn_off_telemetry`, which leaves an operator's explicit value alone). Only the report-free parts are used
(the stattests and `calculate_text_drift_score`'s classifier): nothing of Evidently's UI or cloud runs.
"""

from __future__ import annotations

import warnings
from functools import cache
from types import SimpleNamespace
from typing import Any, Literal

Kind = Literal["numeric", "categorical", "text"]
# Evidently's test names (its registry) mapped to how their value reads: a distance (higher is worse) or
# a p-value (lower is worse).
DISTANCES = ("wasserstein", "jensenshannon", "psi", "hellinger", "kl_div", "ed")
P_VALUES = ("ks", "chisquare", "z", "anderson", "cramer_von_mises", "mannw", "t_test", "g_test")


@cache
def evidently() -> SimpleNamespace:
    """Evidently's stattests module, its ColumnType, default test choice and text drift helpers."""
    from factory_pipelines.settings import turn_off_telemetry

    turn_off_telemetry()
    with warnings.catch_warnings():  # its import warns about its own dependencies (litestar, numpy.core)
        warnings.simplefilter("ignore", DeprecationWarning)
        from evidently.legacy.calculations import stattests
        from evidently.legacy.calculations.stattests.registry import get_stattest
        from evidently.legacy.core import ColumnType
        from evidently.legacy.utils import data_drift_utils

    return SimpleNamespace(stattests=stattests, ColumnType=ColumnType, get_stattest=get_stattest,
                           text=data_drift_utils)


def column_type(kind: Kind) -> Any:
    types = evidently().ColumnType
    return {"numeric": types.Numerical, "categorical": types.Categorical, "text": types.Text}[kind]


def stattest(name: str | None, reference: Any, current: Any, kind: Kind) -> Any:
    """Evidently's StatTest: the named one, or its default for this column (None) -- Wasserstein (normed) or
    Jensen-Shannon above 1,000 reference rows, KS, chi-square or a z-test at or below."""
    ev = evidently()
    return ev.get_stattest(reference, current, column_type(kind), name)


def higher_is_worse(method: str) -> bool:
    if method in DISTANCES:
        return True
    if method in P_VALUES:
        return False
    raise ValueError(f"unknown drift method {method!r}; known: {sorted(DISTANCES + P_VALUES)}")
