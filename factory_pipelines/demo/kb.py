"""Help-center articles (the kb_articles export): a full snapshot on the first day, revisions after."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from factory_pipelines.demo.context import Ctx, at
from factory_pipelines.demo.vocabulary import knowledge_base


def _picks(ctx: Ctx, day: date, start: date) -> list[tuple[int, datetime, str]]:
    """(article index, updated_at, revision note): every article on the start day, then 0-3 a day."""
    kb = knowledge_base()
    if day == start:
        rng = ctx.rng("kb-snapshot", day)
        return [(k, at(day - timedelta(days=rng.randint(1, 400)), rng.randrange(86400)), "")
                for k in range(len(kb.articles))]
    rng = ctx.rng("kb", day)
    chosen = sorted(rng.sample(range(len(kb.articles)), rng.choices((0, 1, 2, 3), (30, 35, 25, 10))[0]))
    return [(k, at(day, rng.randrange(86400)),
             f"Updated {day:%b %d, %Y}: {rng.choice(kb.updates[kb.articles[k].category])}") for k in chosen]


def kb_rows(ctx: Ctx, day: date, start: date) -> list[dict[str, Any]]:
    """The day's article rows; a revision keeps the id and has a later updated_at."""
    kb, rows = knowledge_base(), []
    for k, updated, note in _picks(ctx, day, start):
        article = kb.articles[k]
        paragraphs = [article.text, *kb.policies[article.category], kb.injections.get(article.id, ""), note,
                      kb.closings[k % len(kb.closings)]]
        rows.append({"article_id": article.id, "title": article.title,
                     "body": "\n\n".join(p for p in paragraphs if p), "category": article.category,
                     "tags": list(article.tags), "updated_at": updated.strftime("%Y-%m-%dT%H:%M:%SZ")})
    return rows
