"""The report opened in headless Chromium from a file: the verdict shows, every plot is drawn with a size,
and the page asks the network for nothing."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from factory_pipelines.lib.drift.report import write_report
from tests.browser import chromium
from tests.lib.drift.test_report import _run


@pytest.mark.slow
def test_the_report_renders_its_plots_offline_in_chromium(tmp_path: Path) -> None:
    night = date(2026, 11, 6)
    history = [_run(night - timedelta(days=d), 0.05 + 0.01 * d, "ok") for d in range(1, 8)]
    path = write_report(_run(night, 0.34), tmp_path / "report.html", history)
    requests: list[str] = []
    with chromium(tmp_path / "profile") as browser:
        page = browser.new_page()
        page.on("request", lambda request: requests.append(request.url))
        page.goto(path.as_uri())
        assert "ERROR" in page.locator("#verdict").inner_text()
        plots = page.locator("svg")
        assert plots.count() == 4  # two distributions, two trends (the insufficient record has neither)
        for i in range(plots.count()):
            box = plots.nth(i).bounding_box()
            assert box and box["width"] > 100 and box["height"] > 100
        assert page.locator("svg rect").count() > 4 and page.locator("svg polyline").count() == 2
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        assert (tmp_path / "report.png").stat().st_size > 10_000
    assert requests == [path.as_uri()], requests
