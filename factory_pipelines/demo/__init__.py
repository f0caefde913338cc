"""The demo source: seeded landing files for a customer-support platform, written the way source systems
write them.

Each day gets a helpdesk CSV export (tickets), CRM and shop parquet exports (customers, orders) and a
help-center JSONL export (kb_articles), plus optional truth labels for the tickets so a triage agent can
be scored. Everything comes from string-seeded `random.Random` streams per (seed, source, day): no wall
clock, no uuid4, stable ordering, so a re-run rewrites identical bytes and a day's files do not depend on
which other days are generated. Only the first day's full CRM and KB snapshots depend on `start`.

Modules, by what they produce: `vocabulary` (the words and weights in `data/*.yaml`), `shop` (customers
and orders), `tickets` (tickets and their truth labels), `kb` (help-center articles), `defects` (broken
rows for the contracts to catch) and `writer` (the files and the summary).
"""

from factory_pipelines.demo.defects import DEFECT_KINDS, DefectRecord
from factory_pipelines.demo.tickets import HIGH_VALUE, REFUND_LIMIT, TICKET_COLUMNS
from factory_pipelines.demo.vocabulary import KB_INJECTED_ARTICLE_IDS
from factory_pipelines.demo.writer import SOURCES, DemoDataSummary, write_demo_data

__all__ = ["DEFECT_KINDS", "HIGH_VALUE", "KB_INJECTED_ARTICLE_IDS", "REFUND_LIMIT", "SOURCES",
           "TICKET_COLUMNS", "DefectRecord", "DemoDataSummary", "write_demo_data"]
