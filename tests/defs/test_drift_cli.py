"""`factory drift` on a factory with no data yet: the night is judged as nothing to judge, every check of the
agent fails at WARN naming the table and the window (the golden suite's too: no champion is registered), the
report is still written, and the command exits 1."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from factory_pipelines.cli import app
from factory_pipelines.lib.drift.store import scores_of
from factory_pipelines.resources.warehouse import WarehouseResource
from factory_pipelines.settings import get_settings
from tests.conftest import use_home


def test_a_day_without_rows_says_which_table_and_window_and_exits_1(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    settings = use_home(monkeypatch, tmp_path / "home")
    try:
        result = CliRunner().invoke(app, ["drift", "--agent", "knowledge_gap", "--date", "2026-11-03"])
        text = " ".join(result.output.split())
        assert result.exit_code == 1, result.output
        assert "knowledge_gap 2026-11-03: nothing to judge: staging.tickets: reference window " \
               "2026-10-20..2026-11-02: the table is missing" in text
        assert "drift/knowledge_gap:text_drift" in text and "drift/knowledge_gap:decision_drift" in text
        # no champion registered yet: the golden suite's night is unjudged too, and says why
        assert "drift/eval_scores/knowledge_gap:eval_score_drift" in text and "eval_score.suite.run" in text
        with WarehouseResource(database=settings.warehouse).connect(read_only=True) as con:
            (unjudged,) = scores_of(con, "knowledge_gap", date(2026, 11, 3))
        assert unjudged.status == "insufficient" and unjudged.message.startswith(
            "the golden suite did not run: nightly: prompt prompts:/knowledge_gap@champion is not in the MLflow "
            "Prompt Registry")
        assert (Path(settings.drift_dir) / "knowledge_gap" / "2026-11-03.html").is_file()
        unknown = CliRunner().invoke(app, ["drift", "--agent", "nobody", "--date", "2026-11-03"])
        assert unknown.exit_code == 2 and "no drift asset for ['nobody']" in " ".join(unknown.output.split())
    finally:
        get_settings.cache_clear()
