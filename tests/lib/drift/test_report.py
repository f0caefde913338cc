"""The nightly HTML page: verdict first, a plot and bounds per record, the trend over earlier nights, and
nothing it would have to fetch."""

from __future__ import annotations

import dataclasses
import re
from datetime import date, timedelta
from pathlib import Path

from factory_pipelines.lib.drift.records import Distribution, DriftResult, DriftRun, Window
from factory_pipelines.lib.drift.report import render_report, write_report

PLOT = Distribution(("free", "pro"), (0.7, 0.3), (0.2, 0.8))


def _run(day: date, value: float, status: str = "error") -> DriftRun:
    results = (
        DriftResult("feature", "plan", "jensenshannon", value, 0.1, 0.2, status, 2100, 150,  # type: ignore[arg-type]
                    distribution=PLOT),
        DriftResult("feature", "body_chars", "ks", None, 0.05, 0.01, "insufficient", 2100, 12, False,
                    "too few rows to test: <current 12>"),
        DriftResult("rate", "escalated", "abs_change", 0.01, 0.05, 0.1, "ok", 2100, 150, message="20% -> 21%",
                    distribution=Distribution(("escalated",), (0.2,), (0.21,))),
    )
    return DriftRun("support_triage", day, Window(day - timedelta(days=14), day - timedelta(days=1)),
                    Window(day, day), results)


def test_the_page_has_the_verdict_first_then_plots_bounds_and_trend(tmp_path: Path) -> None:
    night = date(2026, 11, 6)
    history = [_run(night - timedelta(days=d), 0.03, "ok") for d in range(1, 6)]
    history = [dataclasses.replace(h, results=h.results[:1] + h.results[2:]) for h in history]
    path = write_report(_run(night, 0.34), tmp_path / "reports" / "support_triage" / "2026-11-06.html", history)
    html = path.read_text()
    body = html.split("<body>", 1)[1]
    assert body.startswith('<div class="verdict" id="verdict" data-verdict="error"')
    assert "support_triage on 2026-11-06: <b>ERROR</b>" in body
    assert "Error-level drift: feature.plan.jensenshannon" in body
    assert "Not judged (too few rows): feature.body_chars.ks" in body
    assert "value <b>0.34</b>; warn at 0.1, error at 0.2 (higher is worse)" in body
    assert "a p-value: lower is worse" in body and "&lt;current 12&gt;" in body  # escaped
    assert body.count('<svg class="plot"') == 2 and body.count('<svg class="trend"') == 2
    assert "Trend over the last 6 nights" in body
    assert body.index("feature.plan.jensenshannon <span") < body.index("rate.escalated.abs_change <span")


def test_the_page_needs_no_network() -> None:
    html = render_report(_run(date(2026, 11, 6), 0.05, "ok"))
    assert not re.search(r"https?://", html)
    assert not re.search(r"<(script|link|img|iframe)\b", html) and "@import" not in html and "url(" not in html
    assert 'data-verdict="insufficient"' in html  # an unjudged record keeps an otherwise quiet night from "ok"


def test_a_night_gives_mlflow_safe_metric_names() -> None:
    run = _run(date(2026, 11, 6), 0.34)
    run = dataclasses.replace(run, results=(*run.results, dataclasses.replace(run.results[0], metric="text",
                                                                              column="subject+body")))
    assert run.mlflow_metrics() == {"feature.plan.jensenshannon": 0.34, "rate.escalated.abs_change": 0.01,
                                    "text.subject_body.jensenshannon": 0.34, "verdict": 3.0}
