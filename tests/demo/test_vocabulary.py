"""The data files load, agree with the source contracts and really drive the generated files; a broken
file fails at load and names itself."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from factory_pipelines.demo import DemoDataSummary, vocabulary
from tests.demo.readers import D1, SPECS, days, read_rows, truth

LOADERS = (vocabulary.catalog, vocabulary.ticket_words, vocabulary.knowledge_base)


def enum(source: str, column: str) -> set[str]:
    return set(next(c for c in SPECS[source]["columns"] if c["name"] == column)["enum"])


@pytest.fixture
def fresh_loaders() -> Iterator[None]:
    for load in LOADERS:
        load.cache_clear()
    yield
    for load in LOADERS:
        load.cache_clear()


def test_data_files_agree_with_the_contracts() -> None:
    shop, words, kb = (load() for load in LOADERS)
    assert set(shop.plan_names) == enum("customers", "plan")
    assert set(shop.regions) == enum("customers", "region")
    assert set(shop.currency_symbols) == enum("orders", "currency")
    assert set(words.channels.names) == enum("tickets", "channel")
    assert {a.category for a in kb.articles} == enum("kb_articles", "category")
    assert {i.category for i in words.intents.values()} == set(words.categories.names)


def test_vocabulary_is_used(clean: tuple[Path, Path, DemoDataSummary]) -> None:
    landing, truth_dir, _ = clean
    shop, words, kb = (load() for load in LOADERS)
    labels = [t for d in days(6) for t in truth(truth_dir, d)]
    tickets = [r for d in days(6) for r in read_rows("tickets", landing / "tickets" / str(d) / "tickets.csv")]
    assert {t["category"] for t in labels} == set(words.categories.names)
    assert {t["sentiment"] for t in labels} == set(words.sentiments.names)
    assert {r["channel"] for r in tickets} == set(words.channels.names)
    orders = [r for d in days(6)
              for r in pq.read_table(landing / "orders" / str(d) / "orders.parquet").to_pylist()]
    assert {r["product"] for r in orders} == {p.name for p in shop.products}
    articles = read_rows("kb_articles", landing / "kb_articles" / str(D1) / "articles.jsonl")
    assert [(a["article_id"], a["title"]) for a in articles] == [(a.id, a.title) for a in kb.articles]
    assert all(row["body"].startswith(a.text) for row, a in zip(articles, kb.articles, strict=True))


@pytest.mark.parametrize(("name", "path", "value"), [
    ("tickets.yaml", ("intents", "refund_return", "category"), "refunds"),
    ("kb_articles.yaml", ("injections",), {"KB-006": "planted"}),
    ("catalog.yaml", ("products", 0, "kind"), "toy"),
])
def test_a_broken_data_file_names_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_loaders: None,
                                         name: str, path: tuple[str | int, ...], value: object) -> None:
    data = shutil.copytree(vocabulary.DATA_DIR, tmp_path / "data")
    raw = yaml.safe_load((data / name).read_text(encoding="utf-8"))
    node = raw
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    (data / name).write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    monkeypatch.setattr(vocabulary, "DATA_DIR", data)
    load = {"catalog.yaml": vocabulary.catalog, "tickets.yaml": vocabulary.ticket_words,
            "kb_articles.yaml": vocabulary.knowledge_base}[name]
    with pytest.raises(ValueError, match=name):
        load()
