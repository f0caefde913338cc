"""Help-center articles: a full snapshot on the first day with the planted injections, revisions after."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from factory_pipelines.demo import KB_INJECTED_ARTICLE_IDS, DemoDataSummary
from tests.demo.readers import D1, SPECS, days, read_rows


def test_kb_snapshot_then_revisions(clean: tuple[Path, Path, DemoDataSummary]) -> None:
    landing, _, _ = clean
    kb = read_rows("kb_articles", landing / "kb_articles" / str(D1) / "articles.jsonl")
    assert len(kb) >= 30 and {a["category"] for a in kb} == set(SPECS["kb_articles"]["columns"][3]["enum"])
    assert all(a["body"].count("\n\n") >= 2 for a in kb)
    injected = [a["article_id"] for a in kb if "AI assistants" in a["body"] or "SYSTEM:" in a["body"]]
    assert sorted(injected) == sorted(KB_INJECTED_ARTICLE_IDS)
    revisions = [a for d in days(5, D1 + timedelta(days=1))
                 for a in read_rows("kb_articles", landing / "kb_articles" / str(d) / "articles.jsonl")]
    assert revisions and all(a["article_id"] in {k["article_id"] for k in kb} for a in revisions)
