"""Selecting a window's rows from a table, and the shares the report plots.

The window selection is where a missing or empty reference is caught: comparing a day with nothing would
report no drift, so it raises a `DriftWindowError` naming the table, the window and its dates instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from factory_pipelines.lib.drift.records import Distribution, DriftWindowError, Window

if TYPE_CHECKING:
    import pandas as pd

PLOT_BINS = 20
PLOT_CATEGORIES = 12  # the most frequent; the rest are summed as "(other)"


def window_rows(frame: pd.DataFrame | None, table: str, window: Window, role: str,
                column: str = "partition") -> pd.DataFrame:
    """The rows of `frame` whose daily partition `column` lies in `window` (inclusive); a DriftWindowError when
    the table is missing (None), has no such column, or has no row in the window."""
    import pandas as pd

    if frame is None:
        raise DriftWindowError(f"{table}: {role} window {window}: the table is missing")
    if column not in frame.columns:
        raise DriftWindowError(f"{table}: no {column!r} column to select the {role} window {window} by")
    days = pd.to_datetime(frame[column])
    rows = frame[(days >= pd.Timestamp(window.start)) & (days <= pd.Timestamp(window.end))]
    if rows.empty:
        present = f"partitions present {days.min().date()}..{days.max().date()}" if len(days) else "it is empty"
        raise DriftWindowError(f"{table}: {role} window {window} ({window.days()} day(s)) has no rows; {present}")
    return rows


def numeric_shares(reference: Any, current: Any, bins: int = PLOT_BINS) -> Distribution:
    """Equal-width bins over both samples' range; each side's share per bin."""
    import numpy as np

    ref, cur = np.asarray(reference, dtype=float), np.asarray(current, dtype=float)
    low, high = float(min(ref.min(), cur.min())), float(max(ref.max(), cur.max()))
    if high <= low:
        high = low + 1.0
    edges = np.linspace(low, high, bins + 1)
    r = np.histogram(ref, edges)[0] / max(len(ref), 1)
    c = np.histogram(cur, edges)[0] / max(len(cur), 1)
    labels = tuple(f"{edges[i]:.3g}" for i in range(bins))
    return Distribution(labels, tuple(float(v) for v in r), tuple(float(v) for v in c))


def category_shares(reference: pd.Series, current: pd.Series, top: int = PLOT_CATEGORIES) -> Distribution:
    """Each side's share per category, the `top` most frequent overall and the rest as "(other)"."""
    r = reference.value_counts(normalize=True)
    c = current.value_counts(normalize=True)
    order = (r.add(c, fill_value=0)).sort_values(ascending=False).index.tolist()
    keep, rest = order[:top], order[top:]
    labels, ref_shares, cur_shares = [str(k) for k in keep], [float(r.get(k, 0.0)) for k in keep], [float(c.get(k, 0.0)) for k in keep]
    if rest:
        labels.append("(other)")
        ref_shares.append(float(r.reindex(rest).fillna(0).sum()))
        cur_shares.append(float(c.reindex(rest).fillna(0).sum()))
    return Distribution(tuple(labels), tuple(ref_shares), tuple(cur_shares))
