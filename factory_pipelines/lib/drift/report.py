"""One self-contained HTML page per agent per night: the verdict at the top, a table of every record, then
per record its reference-vs-current plot, its value against its bounds and its trend over the last nights.

Everything is inline (CSS and SVG, no script, no font or CDN link), so the page opens from an MLflow
artifact, a mail attachment or a laptop without network, and renders the same in a headless browser.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape
from pathlib import Path

from factory_pipelines.lib.drift import svg
from factory_pipelines.lib.drift.records import SEVERITY, DriftResult, DriftRun

TREND_NIGHTS = 30
COLORS = {"ok": "#2e7d32", "warn": "#d08c00", "error": "#c62828", "insufficient": "#6d4c8d"}
STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#1c2430;max-width:1100px}
.verdict{padding:14px 18px;border-radius:6px;color:#fff;font-size:20px;margin-bottom:8px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-size:12px}
table{border-collapse:collapse;font-size:13px}td,th{padding:3px 8px;border-bottom:1px solid #e3e7ec;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
section{border-top:1px solid #d5dbe2;margin-top:18px;padding-top:8px}
.note{color:#56606b;font-size:13px}
"""


def write_report(run: DriftRun, path: Path, history: Sequence[DriftRun] = ()) -> Path:
    """Render `run` (with the trend over `history`, earlier nights of the same agent) to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(run, history), encoding="utf-8")
    return path


def render_report(run: DriftRun, history: Sequence[DriftRun] = ()) -> str:
    nights = sorted([h for h in history if h.day < run.day], key=lambda h: h.day)[-(TREND_NIGHTS - 1):] + [run]
    ordered = sorted(run.results, key=lambda r: (-SEVERITY[r.status], r.metric, r.column, r.method))
    body = [_header(run), _summary_table(ordered), *(_section(r, nights) for r in ordered)]
    title = f"Drift {run.agent} {run.day}: {run.verdict}"
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>")


def _badge(status: str) -> str:
    return f'<span class="badge" style="background:{COLORS[status]}">{escape(status)}</span>'


def _header(run: DriftRun) -> str:
    counts = {s: len(run.by_status(s)) for s in ("error", "warn", "insufficient", "ok")}
    said = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    drifted = run.drifted_slices()
    lines = [f'<div class="verdict" id="verdict" data-verdict="{run.verdict}" style="background:{COLORS[run.verdict]}">'
             f"{escape(run.agent)} on {run.day}: <b>{run.verdict.upper()}</b></div>",
             f'<p class="note">Current window {run.current} against reference {run.reference}; {len(run.results)} '
             f"records: {escape(said) or 'none'}. Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.</p>"]
    if drifted:
        lines.append(f"<p>Error-level drift: {escape(', '.join(drifted))}</p>")
    insufficient = run.by_status("insufficient")
    if insufficient:
        lines.append(f"<p>Not judged (too few rows): {escape(', '.join(r.key for r in insufficient))}</p>")
    return "".join(lines)


def _value(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def _summary_table(results: Sequence[DriftResult]) -> str:
    head = "".join(f"<th>{h}</th>" for h in ("status", "metric", "column", "method", "value", "warn", "error",
                                              "reference rows", "current rows"))
    rows = []
    for r in results:
        rows.append(f'<tr><td>{_badge(r.status)}</td><td>{escape(r.metric)}</td><td><a href="#{_anchor(r)}">'
                    f"{escape(r.column)}</a></td><td>{escape(r.method)}</td><td class=num>{_value(r.value)}</td>"
                    f"<td class=num>{_value(r.warn)}</td><td class=num>{_value(r.error)}</td>"
                    f"<td class=num>{r.n_reference:,}</td><td class=num>{r.n_current:,}</td></tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _anchor(result: DriftResult) -> str:
    return "m-" + "".join(ch if ch.isalnum() else "-" for ch in result.key)


def _section(result: DriftResult, nights: Sequence[DriftRun]) -> str:
    direction = "higher is worse" if result.higher_is_worse else "a p-value: lower is worse"
    parts = [f'<section id="{_anchor(result)}"><h3>{escape(result.key)} {_badge(result.status)}</h3>',
             f"<p>value <b>{_value(result.value)}</b>; warn at {_value(result.warn)}, error at "
             f"{_value(result.error)} ({direction}); {result.n_reference:,} reference and {result.n_current:,} "
             "current rows</p>"]
    if result.message:
        parts.append(f'<p class="note">{escape(result.message)}</p>')
    if result.distribution is not None:
        parts.append(svg.bars(result.distribution))
    days, values = [], []
    for night in nights:
        match = next((r for r in night.results if r.key == result.key), None)
        days.append(night.day.isoformat())
        values.append(match.value if match else None)
    if sum(v is not None for v in values) > 1:  # a line needs two judged nights
        parts.append(f'<p class="note">Trend over the last {len(days)} nights</p>')
        parts.append(svg.trend(days, values, result.warn, result.error))
    parts.append("</section>")
    return "".join(parts)
