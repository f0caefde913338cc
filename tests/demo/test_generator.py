"""Demo landing data: deterministic bytes, days independent of each other, clean files obey the declared
source rules, injected defects are really in the files, drift is measurable and truth labels match tickets."""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from factory_pipelines.demo import generator as demo_data
from factory_pipelines.demo.generator import KB_INJECTED_ARTICLE_IDS, DemoDataSummary, write_demo_data

SOURCES_DIR = Path(demo_data.__file__).resolve().parents[1] / "defs" / "ingestion" / "sources"
SPECS = {p.stem: yaml.safe_load(p.read_text()) for p in SOURCES_DIR.glob("*.yaml")}
KEYS = {"tickets": "ticket_id", "customers": "customer_id", "orders": "order_id", "kb_articles": "article_id"}
FILES = {"tickets": "tickets.csv", "customers": "customers.parquet", "orders": "orders.parquet",
         "kb_articles": "articles.jsonl"}
D1 = date(2026, 11, 1)
SMALL = {"tickets_per_day": 60, "customers": 120}
INJECTION_CUES = re.compile(r"(?i)ignore|i g n o r e|1gn0re|system:|assistant instructions|decode and follow|"
                            r"admin override")


def days(n: int, start: date = D1) -> list[date]:
    return [start + timedelta(days=k) for k in range(n)]


def violations(source: str, row: dict[str, Any]) -> list[str]:
    """Every declared rule the row breaks, as 'column:rule' (empty CSV fields count as null)."""
    out = []
    for col in SPECS[source]["columns"]:
        name, value = col["name"], row.get(col["name"])
        if value is None or value == "":
            if col.get("required"):
                out.append(f"{name}:required")
            continue
        kind = col["type"]
        if kind == "VARCHAR" and not isinstance(value, str):
            out.append(f"{name}:type")
            continue
        if kind == "DOUBLE" and (isinstance(value, bool) or not isinstance(value, int | float)):
            out.append(f"{name}:type")
            continue
        if kind == "DATE" and (isinstance(value, datetime) or not isinstance(value, date)):
            out.append(f"{name}:type")
        if kind == "TIMESTAMP":
            if isinstance(value, str):
                try:
                    datetime.fromisoformat(value)
                except ValueError:
                    out.append(f"{name}:type")
            elif not (isinstance(value, datetime) and value.utcoffset() == timedelta(0)):
                out.append(f"{name}:type")
        if kind == "VARCHAR[]" and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            out.append(f"{name}:type")
        if "enum" in col and value not in col["enum"]:
            out.append(f"{name}:enum")
        if "min" in col and isinstance(value, int | float) and value < col["min"]:
            out.append(f"{name}:min")
        if "max" in col and isinstance(value, int | float) and value > col["max"]:
            out.append(f"{name}:max")
        if "pattern" in col and isinstance(value, str) and not re.search(col["pattern"], value):
            out.append(f"{name}:pattern")
        if "max_length" in col and isinstance(value, str) and len(value) > col["max_length"]:
            out.append(f"{name}:max_length")
    return out


def read_tickets(path: Path, strict: bool = False) -> tuple[list[str], list[list[str]]]:
    """CSV records; non-UTF-8 bytes become surrogates (\\udcXX) unless strict."""
    text = path.read_bytes().decode("utf-8", "strict" if strict else "surrogateescape")
    header, *records = list(csv.reader(io.StringIO(text, newline="")))
    return header, records


def read_rows(source: str, path: Path) -> list[dict[str, Any]]:
    if source == "tickets":
        header, records = read_tickets(path, strict=True)
        assert all(len(r) == len(header) for r in records)
        return [dict(zip(header, r, strict=True)) for r in records]
    if source == "kb_articles":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return pq.read_table(path).to_pylist()


def parse_json(line: str) -> dict[str, Any] | None:
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return None


def truth(truth_dir: Path, day: date) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (truth_dir / "tickets" / f"{day}.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, DemoDataSummary]:
    root = tmp_path_factory.mktemp("clean")
    summary = write_demo_data(root / "landing", D1, D1 + timedelta(days=5), defect_rate=0.0,
                              truth_dir=root / "truth", **SMALL)
    return root / "landing", root / "truth", summary


def test_layout_and_summary(clean: tuple[Path, Path, DemoDataSummary]) -> None:
    landing, truth_dir, summary = clean
    assert summary.days == days(6)
    expected = {landing / s / str(d) / FILES[s] for d in days(6) for s in FILES}
    assert set(summary.files) == expected and all(p.is_file() for p in expected)
    assert summary.truth_files == [truth_dir / "tickets" / f"{d}.jsonl" for d in days(6)]
    assert summary.total_defects == 0 and summary.defect_records == []
    for source, name in FILES.items():
        written = sum(len(read_rows(source, landing / source / str(d) / name)) for d in days(6))
        assert summary.rows[source] == written > 0


def test_clean_files_satisfy_every_declared_rule(clean: tuple[Path, Path, DemoDataSummary]) -> None:
    landing, _, _ = clean
    for day in days(6):
        header, _ = read_tickets(landing / "tickets" / str(day) / "tickets.csv", strict=True)
        assert header == [c["name"] for c in SPECS["tickets"]["columns"]]
        for source, name in FILES.items():
            rows = read_rows(source, landing / source / str(day) / name)
            bad = [(row[KEYS[source]], v) for row in rows if (v := violations(source, row))]
            assert bad == [], (source, day, bad[:5])
            keys = [row[KEYS[source]] for row in rows]
            assert len(keys) == len(set(keys)), (source, day)
        for row in read_rows("tickets", landing / "tickets" / str(day) / "tickets.csv"):
            assert row["ticket_id"].startswith(f"T-{day:%Y%m%d}-")
            assert datetime.fromisoformat(row["created_at"]).date() == day
    orders = pq.read_table(landing / "orders" / str(D1) / "orders.parquet")
    customers = pq.read_table(landing / "customers" / str(D1) / "customers.parquet")
    assert orders.schema.field("updated_at").type == pa.timestamp("us", tz="UTC")
    assert orders.schema.field("ordered_at").type == pa.timestamp("us", tz="UTC")
    assert customers.schema.field("signup_date").type == pa.date32()
    assert orders.schema.metadata is None or b"pandas" not in orders.schema.metadata


def test_customers_orders_and_kb_change_over_days(clean: tuple[Path, Path, DemoDataSummary]) -> None:
    landing, _, _ = clean
    first = pq.read_table(landing / "customers" / str(D1) / "customers.parquet").to_pylist()
    assert len(first) == SMALL["customers"] and len({c["email"] for c in first}) == len(first)
    plans = {c["customer_id"]: c["plan"] for c in first}
    spend = {p: [c["lifetime_spend"] for c in first if c["plan"] == p] for p in ("free", "enterprise")}
    assert max(spend["free"]) < min(spend["enterprise"])  # spend consistent with plan
    for day in days(5, D1 + timedelta(days=1)):
        later = pq.read_table(landing / "customers" / str(day) / "customers.parquet").to_pylist()
        assert 1 <= len(later) <= 0.1 * SMALL["customers"]
        assert all(c["updated_at"].date() == day for c in later)
        assert all(c["customer_id"] in plans or c["signup_date"] == day for c in later)
    kb = read_rows("kb_articles", landing / "kb_articles" / str(D1) / "articles.jsonl")
    assert len(kb) >= 30 and {a["category"] for a in kb} == set(SPECS["kb_articles"]["columns"][3]["enum"])
    assert all(a["body"].count("\n\n") >= 2 for a in kb)
    injected = [a["article_id"] for a in kb if "AI assistants" in a["body"] or "SYSTEM:" in a["body"]]
    assert sorted(injected) == sorted(KB_INJECTED_ARTICLE_IDS)
    revisions = [a for d in days(5, D1 + timedelta(days=1))
                 for a in read_rows("kb_articles", landing / "kb_articles" / str(d) / "articles.jsonl")]
    assert revisions and all(a["article_id"] in {k["article_id"] for k in kb} for a in revisions)
    statuses = Counter()
    first_seen: dict[str, dict[str, Any]] = {}
    for day in days(6):
        for row in pq.read_table(landing / "orders" / str(day) / "orders.parquet").to_pylist():
            statuses[row["status"]] += 1
            assert (row["refund_amount"] is not None) == (row["status"] == "refunded")
            if row["order_id"] in first_seen:  # a status change keeps the order's facts, later timestamp
                prev = first_seen[row["order_id"]]
                assert (row["amount"], row["customer_id"]) == (prev["amount"], prev["customer_id"])
                assert row["updated_at"] > prev["updated_at"]
            first_seen[row["order_id"]] = row
    assert all(statuses[s] > 0 for s in ("placed", "shipped", "delivered", "refunded", "cancelled"))


def test_truth_matches_tickets(clean: tuple[Path, Path, DemoDataSummary]) -> None:
    landing, truth_dir, _ = clean
    orders = {r["order_id"]: r for d in days(6)
              for r in pq.read_table(landing / "orders" / str(d) / "orders.parquet").to_pylist()}
    seen: dict[str, dict[str, str]] = {}
    labels: Counter[str] = Counter()
    injections, refund_checked, order_checked = 0, 0, 0
    for day in days(6):
        rows = read_rows("tickets", landing / "tickets" / str(day) / "tickets.csv")
        tickets = {r["ticket_id"]: r for r in rows}
        labelled = truth(truth_dir, day)
        assert [t["ticket_id"] for t in labelled] == list(tickets)
        for t in labelled:
            row = tickets[t["ticket_id"]]
            labels[t["category"]] += 1
            assert t["priority"] in {"low", "medium", "high", "urgent"}
            assert t["action"] in {"reply", "refund", "lookup_order", "escalate"}
            assert t["sentiment"] in {"angry", "neutral", "polite"}
            assert bool(INJECTION_CUES.search(row["body"])) == t["is_injection"]
            if t["is_injection"]:
                injections += 1
                assert t["action"] == "escalate"
            if t["sentiment"] == "angry":
                assert "!" in row["body"] or re.search("[A-Z]{6,}", row["body"])
            if t["sentiment"] == "polite":
                assert re.search("(?i)thank|dear|hope|good morning|appreciate", row["body"])
            if t["is_duplicate_of"]:
                orig = seen[t["is_duplicate_of"]]
                assert (orig["customer_id"], orig["body"]) == (row["customer_id"], row["body"])
            if t["is_follow_up"]:
                assert row["in_reply_to"] and row["in_reply_to"] in row["body"]
                if row["in_reply_to"] in seen:
                    assert seen[row["in_reply_to"]]["customer_id"] == row["customer_id"]
            else:
                assert row["in_reply_to"] == ""
            if t["order_id"]:
                assert t["order_id"] in row["body"].upper() or row["order_id"] == t["order_id"]
                if t["order_id"] in orders:
                    order_checked += 1
                    assert orders[t["order_id"]]["customer_id"] == row["customer_id"]
            if t["action"] == "refund":
                refund_checked += 1
                assert t["amount"] is not None and f"{t['amount']:,.2f}" in row["body"]
                if t["order_id"] in orders:
                    assert t["amount"] == orders[t["order_id"]]["amount"]
            seen[t["ticket_id"]] = row
    total = sum(labels.values())
    assert set(labels) == {"billing", "refund", "shipping", "technical", "account", "product"}
    assert 0.005 < injections / total < 0.05
    assert refund_checked > 10 and order_checked > 50


def test_rerun_writes_identical_bytes(tmp_path: Path) -> None:
    args = {"seed": 11, "defect_rate": 0.05, "drift_date": D1 + timedelta(days=1), **SMALL}
    first = write_demo_data(tmp_path / "a", D1, D1 + timedelta(days=2), truth_dir=tmp_path / "ta", **args)
    before = {p: p.read_bytes() for p in first.files + first.truth_files}
    again = write_demo_data(tmp_path / "a", D1, D1 + timedelta(days=2), truth_dir=tmp_path / "ta", **args)
    other = write_demo_data(tmp_path / "b", D1, D1 + timedelta(days=2), truth_dir=tmp_path / "tb", **args)
    assert again == first and {p: p.read_bytes() for p in again.files + again.truth_files} == before
    assert other.rows == first.rows and other.defects == first.defects
    for p, data in before.items():
        twin = Path(str(p).replace(str(tmp_path / "a"), str(tmp_path / "b")).replace(
            str(tmp_path / "ta"), str(tmp_path / "tb")))
        assert twin.read_bytes() == data, p
    changed = write_demo_data(tmp_path / "c", D1, D1, **{**args, "seed": 12})
    assert changed.files[0].read_bytes() != before[first.files[0]]


def test_days_are_generated_independently(tmp_path: Path) -> None:
    args = {"defect_rate": 0.05, **SMALL}
    d3 = D1 + timedelta(days=2)
    write_demo_data(tmp_path / "all", D1, D1 + timedelta(days=4), truth_dir=tmp_path / "t_all", **args)
    write_demo_data(tmp_path / "one", d3, d3, truth_dir=tmp_path / "t_one", **args)
    write_demo_data(tmp_path / "mid", D1 + timedelta(days=1), D1 + timedelta(days=3), **args)
    for source in ("tickets", "orders"):
        rel = Path(source) / str(d3) / FILES[source]
        assert (tmp_path / "all" / rel).read_bytes() == (tmp_path / "one" / rel).read_bytes(), source
    rel = Path("tickets") / f"{d3}.jsonl"
    assert (tmp_path / "t_all" / rel).read_bytes() == (tmp_path / "t_one" / rel).read_bytes()
    for source in ("customers", "kb_articles"):  # not the first day: only changes, whatever the start
        rel = Path(source) / str(d3) / FILES[source]
        assert (tmp_path / "all" / rel).read_bytes() == (tmp_path / "mid" / rel).read_bytes(), source
    snapshot = pq.read_table(tmp_path / "one" / "customers" / str(d3) / "customers.parquet")
    assert len(set(snapshot.column("customer_id").to_pylist())) == SMALL["customers"]  # start: full table


def test_injected_defects_are_in_the_files(tmp_path: Path) -> None:
    summary = write_demo_data(tmp_path / "l", D1, D1 + timedelta(days=1), defect_rate=0.1,
                              truth_dir=tmp_path / "t", **SMALL)
    clean = write_demo_data(tmp_path / "c", D1, D1 + timedelta(days=1), defect_rate=0.0,
                            truth_dir=tmp_path / "tc", **SMALL)
    assert set(summary.defects["tickets"]) == set(demo_data.DEFECT_KINDS["tickets"])
    assert set(summary.defects["orders"]) == set(demo_data.DEFECT_KINDS["orders"])
    found: dict[str, Counter[str]] = {s: Counter() for s in FILES}
    width = len(SPECS["tickets"]["columns"])
    for day in days(2):
        raw = (tmp_path / "l" / "tickets" / str(day) / "tickets.csv").read_bytes()
        with pytest.raises(UnicodeDecodeError):
            raw.decode("utf-8")
        header, records = read_tickets(tmp_path / "l" / "tickets" / str(day) / "tickets.csv")
        ids = Counter(r[0] for r in records)
        found["tickets"]["duplicate_row"] += sum(1 for k, n in ids.items() if k and n == 2)
        for r in records:
            row = dict(zip(header, r, strict=False))
            v = violations("tickets", row)
            found["tickets"]["malformed_row"] += len(r) > width
            found["tickets"]["bad_encoding"] += bool(re.search("[\udc80-\udcff]", r[5]))
            found["tickets"]["null_required"] += any(x.endswith(":required") for x in v)
            found["tickets"]["invalid_enum"] += any(x.endswith(":enum") for x in v)
            found["tickets"]["wrong_type"] += any(x.endswith(":type") for x in v)
        for source in ("customers", "orders", "kb_articles"):
            path = tmp_path / "l" / source / str(day) / FILES[source]
            lines = path.read_text().splitlines() if source == "kb_articles" else []
            good = [row for x in lines if (row := parse_json(x)) is not None]
            found[source]["malformed_row"] += len(lines) - len(good)
            rows = good if source == "kb_articles" else pq.read_table(path).to_pylist()
            keys = Counter(r[KEYS[source]] for r in rows)
            found[source]["duplicate_row"] += sum(1 for n in keys.values() if n == 2)
            for row in rows:
                v = violations(source, row)
                found[source]["null_required"] += any(x.endswith(":required") for x in v)
                found[source]["invalid_enum"] += any(x.endswith(":enum") for x in v)
                found[source]["out_of_range"] += any(x.endswith((":min", ":max")) for x in v)
                found[source]["wrong_type"] += any(x.endswith(":type") for x in v)
    for source in FILES:
        assert dict(+found[source]) == summary.defects[source], source
    assert summary.total_defects == len(summary.defect_records) > 0
    assert summary.rows["tickets"] == clean.rows["tickets"] + summary.defects["tickets"]["duplicate_row"]
    # defects never change the content: truth is the same as for the clean run, minus nulled ids
    for day in days(2):
        dirty = {t["ticket_id"]: t for t in truth(tmp_path / "t", day)}
        pure = {t["ticket_id"]: t for t in truth(tmp_path / "tc", day)}
        records = [r for r in summary.defect_records if r.source == "tickets" and r.day == day]
        nulled = [r for r in records if r.key is None]
        assert dirty.items() <= pure.items() and len(pure) - len(dirty) == len(nulled)


def test_drift_shifts_distributions(tmp_path: Path) -> None:
    drift = D1 + timedelta(days=4)
    write_demo_data(tmp_path / "l", D1, D1 + timedelta(days=7), defect_rate=0.0, drift_date=drift,
                    truth_dir=tmp_path / "t", tickets_per_day=120, customers=200)

    def stats(period: list[date]) -> dict[str, float]:
        labels = [t for d in period for t in truth(tmp_path / "t", d)]
        rows = [r for d in period
                for r in read_rows("tickets", tmp_path / "l" / "tickets" / str(d) / "tickets.csv")]
        placed = [r["amount"] for d in period
                  for r in pq.read_table(tmp_path / "l" / "orders" / str(d) / "orders.parquet").to_pylist()
                  if r["status"] == "placed"]
        return {"refund_shipping": sum(t["category"] in ("refund", "shipping") for t in labels) / len(labels),
                "angry": sum(t["sentiment"] == "angry" for t in labels) / len(labels),
                "chat": sum(r["channel"] == "chat" for r in rows) / len(rows),
                "body": sum(len(r["body"]) for r in rows) / len(rows),
                "amount": sum(placed) / len(placed)}

    before, after = stats(days(4)), stats(days(4, drift))
    assert after["refund_shipping"] > before["refund_shipping"] + 0.1
    assert after["angry"] > before["angry"] + 0.1
    assert after["chat"] > before["chat"] + 0.1
    assert after["amount"] > 1.3 * before["amount"]
    assert after["body"] > before["body"]


def test_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_demo_data(tmp_path, D1, D1 - timedelta(days=1))
    with pytest.raises(ValueError):
        write_demo_data(tmp_path, D1, D1, defect_rate=1.5)
