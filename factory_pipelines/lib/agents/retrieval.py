"""Knowledge-base retrieval: BM25 over article passages, with the ids a reply must cite.

Articles are split into paragraphs (passages keep their article id, title and position) and indexed
with `bm25s` in memory: no network, no model, deterministic. Only the latest revision of each article
is indexed. Passage text is untrusted data (a KB article can carry an injection): callers must treat
it as quoted material, never as instructions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_PASSAGE_CHARS = 1200


@dataclass(frozen=True)
class KbPassage:
    passage_id: str  # <article_id>#<n>
    article_id: str
    title: str
    text: str


def split_passages(article_id: str, title: str, body: str) -> list[KbPassage]:
    """Paragraphs of an article (long ones cut at MAX_PASSAGE_CHARS), each carrying its article's title."""
    paragraphs = [p.strip() for p in body.replace("\r\n", "\n").split("\n\n") if p.strip()] or [body.strip()]
    chunks = [p[i : i + MAX_PASSAGE_CHARS] for p in paragraphs for i in range(0, len(p), MAX_PASSAGE_CHARS)]
    return [KbPassage(f"{article_id}#{n}", article_id, title, text) for n, text in enumerate(chunks, start=1)]


class KbIndex:
    """An in-memory BM25 index of KB passages; `search` returns (passage, score) best first."""

    def __init__(self, articles: list[dict[str, Any]]):
        import bm25s

        latest: dict[str, dict[str, Any]] = {}
        for article in sorted(articles, key=lambda a: (a["article_id"], str(a.get("updated_at", "")))):
            latest[article["article_id"]] = article  # the last revision wins
        self.passages = [
            passage for a in latest.values() for passage in split_passages(a["article_id"], a["title"], a["body"])
        ]
        if not self.passages:
            raise ValueError("the knowledge base has no articles to index")
        self._bm25s = bm25s
        self._index = bm25s.BM25()
        self._index.index(self._tokens([f"{p.title}\n{p.text}" for p in self.passages]), show_progress=False)

    def _tokens(self, texts: list[str]) -> Any:
        return self._bm25s.tokenize(texts, stopwords="en", show_progress=False)

    def search(self, query: str, k: int = 3) -> list[tuple[KbPassage, float]]:
        k = min(k, len(self.passages))
        ids, scores = self._index.retrieve(self._tokens([query]), k=k, show_progress=False, n_threads=0)
        hits = [(self.passages[int(i)], float(s)) for i, s in zip(ids[0], scores[0], strict=True) if s > 0]
        return sorted(hits, key=lambda hit: (-hit[1], hit[0].passage_id))
