"""Writes the landing files the way the source systems do: CSV, Parquet and JSONL per source and day.

pyarrow is imported where the Parquet files are written, so importing the package stays cheap.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from factory_pipelines.demo.context import Ctx
from factory_pipelines.demo.defects import DefectRecord, apply_table_defects, break_ticket, chosen_defects
from factory_pipelines.demo.kb import kb_rows
from factory_pipelines.demo.shop import customer_rows, order_rows
from factory_pipelines.demo.tickets import TICKET_COLUMNS, ticket, ticket_times

if TYPE_CHECKING:
    import pyarrow as pa

SOURCES = ("tickets", "customers", "orders", "kb_articles")


@dataclass(frozen=True)
class DemoDataSummary:
    """What a run wrote, so callers and tests can check volumes and the defects they must catch."""

    days: list[date]
    files: list[Path]
    rows: dict[str, int]
    defects: dict[str, dict[str, int]]
    defect_records: list[DefectRecord] = field(default_factory=list)
    truth_files: list[Path] = field(default_factory=list)

    @property
    def total_defects(self) -> int:
        return sum(sum(kinds.values()) for kinds in self.defects.values())


@cache
def _schemas() -> dict[str, pa.Schema]:
    import pyarrow as pa

    utc = pa.timestamp("us", tz="UTC")
    return {
        "customers": pa.schema([("customer_id", pa.string()), ("name", pa.string()), ("email", pa.string()),
                                ("plan", pa.string()), ("region", pa.string()), ("signup_date", pa.date32()),
                                ("lifetime_spend", pa.float64()), ("updated_at", utc)]),
        "orders": pa.schema([("order_id", pa.string()), ("customer_id", pa.string()),
                             ("product", pa.string()), ("amount", pa.float64()), ("currency", pa.string()),
                             ("status", pa.string()), ("refund_amount", pa.float64()), ("ordered_at", utc),
                             ("updated_at", utc)]),
    }


def _csv_line(fields: list[str]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf).writerow(fields)
    return buf.getvalue().encode("utf-8")


def _tickets_file(ctx: Ctx, day: date, rate: float,
                  log: list[DefectRecord]) -> tuple[bytes, list[dict[str, Any]], int]:
    """CSV bytes written row by row in binary, so a latin-1 body leaves the rest of the file UTF-8."""
    tickets = [ticket(ctx, day, n) for n in range(len(ticket_times(ctx, day)))]
    rng = ctx.rng("ticket-defect-values", day)
    out, truths, rows = [_csv_line(list(TICKET_COLUMNS))], [], 0
    chosen = chosen_defects(ctx, "tickets", day, len(tickets), rate)
    for i, t in enumerate(tickets):
        fields, kind = list(t.row), chosen.get(i)
        word = break_ticket(rng, fields, kind)
        data = _csv_line(fields)
        if word:  # only this row's bytes become latin-1
            data = data.replace(word.encode("utf-8"), word.encode("latin-1"))
        out.append(data)
        rows += 1
        if kind == "duplicate_row":
            out.append(data)
            rows += 1
        if kind:
            log.append(DefectRecord("tickets", day, kind, fields[0] or None))
        if fields[0]:
            truths.append(t.truth)
    return b"".join(out), truths, rows


def _parquet(source: str, rows: list[dict[str, Any]]) -> tuple[bytes, int]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(rows, schema=_schemas()[source])
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue(), table.num_rows


def _jsonl(articles: list[dict[str, Any]]) -> bytes:
    """One article per line; a row marked `_malformed` is cut in half, as a broken export would."""
    lines = []
    for art in articles:
        text = json.dumps({k: v for k, v in art.items() if k != "_malformed"}, ensure_ascii=False)
        lines.append(text[: len(text) // 2] if art.get("_malformed") else text)
    return "".join(f"{line}\n" for line in lines).encode()


def _put(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _write_day(ctx: Ctx, day: date, start: date, rate: float, landing: Path, truth_dir: Path | None,
               summary: DemoDataSummary) -> None:
    """All four sources' files of one day (plus its ticket labels), added to `summary` as they are written."""
    log = summary.defect_records
    csv_bytes, truths, n = _tickets_file(ctx, day, rate, log)
    summary.files.append(_put(landing / "tickets" / day.isoformat() / "tickets.csv", csv_bytes))
    summary.rows["tickets"] += n
    if truth_dir is not None:
        text = "".join(json.dumps(t, ensure_ascii=False) + "\n" for t in truths)
        summary.truth_files.append(_put(truth_dir / "tickets" / f"{day.isoformat()}.jsonl", text.encode()))
    for source, rows in (("customers", customer_rows(ctx, day, start)), ("orders", order_rows(ctx, day))):
        data, n = _parquet(source, apply_table_defects(ctx, source, day, rows, rate, log))
        summary.files.append(_put(landing / source / day.isoformat() / f"{source}.parquet", data))
        summary.rows[source] += n
    articles = apply_table_defects(ctx, "kb_articles", day, kb_rows(ctx, day, start), rate, log)
    summary.files.append(_put(landing / "kb_articles" / day.isoformat() / "articles.jsonl", _jsonl(articles)))
    summary.rows["kb_articles"] += len(articles)


def write_demo_data(landing_dir: Path, start: date, end: date, *, seed: int = 7, defect_rate: float = 0.02,
                    drift_date: date | None = None, truth_dir: Path | None = None,
                    tickets_per_day: int = 150, customers: int = 400) -> DemoDataSummary:
    """Write every source's landing files for each day from start to end inclusive (see package doc)."""
    if end < start or not 0 <= defect_rate <= 1 or tickets_per_day < 1 or not 1 <= customers <= 89999:
        raise ValueError("need start <= end, 0 <= defect_rate <= 1, tickets_per_day >= 1 and "
                         "1 <= customers <= 89999")
    ctx = Ctx(seed, tickets_per_day, customers, drift_date)
    days = [start + timedelta(days=k) for k in range((end - start).days + 1)]
    summary = DemoDataSummary(days, [], dict.fromkeys(SOURCES, 0), {s: {} for s in SOURCES})
    for day in days:
        _write_day(ctx, day, start, defect_rate, Path(landing_dir),
                   None if truth_dir is None else Path(truth_dir), summary)
    for rec in summary.defect_records:
        summary.defects[rec.source][rec.kind] = summary.defects[rec.source].get(rec.kind, 0) + 1
    return summary
