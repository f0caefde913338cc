"""What a source declaration says about its contract: the row rules it implies, and how it bends a suite.

`declared_expectations` turns the declaration's row rules into expectations (one place to edit a rule).
`follow_declaration` adapts a suite file to the declaration it is used with, so a user who makes a column
optional, leaves it out, fills it from a default or allows empty days does not have to copy and edit the
suites too: expectations over a column the declaration does not promise are dropped or relaxed, and every
change is returned as a note that the check puts in its metadata.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from factory_pipelines.lib.data.sources import SourceSpec

ROW_COUNT = "expect_table_row_count_to_be_between"
COLUMN_SET = "expect_table_columns_to_match_set"
NOT_NULL = "expect_column_values_to_not_be_null"
LENGTHS = "expect_column_value_lengths_to_be_between"
# Expectations judged value by value (nulls are skipped); any other `expect_column_*` judges the column as a
# whole (a mean, a share of distinct values), which a constant default, an empty day or no values at all break.
ROW_WISE_PREFIXES = ("expect_column_values_to_", "expect_column_value_lengths_to_", "expect_column_pair_values_",
                     "expect_multicolumn_", "expect_compound_columns_", "expect_select_column_values_")


def declared_expectations(spec: SourceSpec) -> list[dict[str, Any]]:
    """The row-level part of a source's contract, derived from its declaration (one place to edit).

    Columns present, required values, enums, ranges, patterns, lengths and the key's uniqueness; the
    suite file adds what a declaration cannot say (row counts, distributions, relations between columns).
    """
    origin = f"declared in sources/{spec.name}.yaml"

    def rule(kind: str, note: str, **kwargs: Any) -> dict[str, Any]:
        column = kwargs.get("column") or ", ".join(kwargs.get("column_list", []))
        return {"type": kind, "kwargs": kwargs, "meta": {"notes": f"{note}{f' of {column}' if column else ''} ({origin})"}}

    rules = [rule(COLUMN_SET, "Every declared column is present",
                  column_set=[c.name for c in spec.columns], exact_match=False)]
    for c in spec.columns:
        if c.required:
            rules.append(rule(NOT_NULL, "Required value", column=c.name))
        if c.enum is not None:
            rules.append(rule("expect_column_values_to_be_in_set", "Allowed values", column=c.name, value_set=c.enum))
        if c.min is not None or c.max is not None:
            rules.append(rule("expect_column_values_to_be_between", "Allowed range", column=c.name,
                              min_value=c.min, max_value=c.max))
        if c.pattern is not None:
            rules.append(rule("expect_column_values_to_match_regex", "Value format", column=c.name, regex=c.pattern))
        if c.max_length is not None:
            rules.append(rule(LENGTHS, "Length limit", column=c.name, min_value=1 if c.required else 0,
                              max_value=c.max_length))
    if len(spec.primary_key) == 1:
        rules.append(rule("expect_column_values_to_be_unique", "Primary key", column=spec.primary_key[0]))
    else:
        rules.append(rule("expect_compound_columns_to_be_unique", "Primary key", column_list=spec.primary_key))
    return rules


@dataclass
class Declaration:
    """A declaration as a table's contract sees it: `origin` maps a table column to the declared column it
    comes from (default: the same name); None marks a column the declaration does not describe (lineage, a
    flag computed in staging), whose rules are left alone.

    `rows_read`: the records the day's files held (loaded + quarantined), when the caller knows it. A day with
    no rows in the table but rows read is not a quiet day, every row was quarantined (a wrong encoding or a
    renamed header quarantines a whole file as `missing_column`): `allow_empty_days` does not excuse it.
    None: the table's rows are all there is to know."""

    spec: SourceSpec
    origin: dict[str, str | None] = field(default_factory=dict)
    rows_read: int | None = None

    def status(self, column: str) -> str:
        """lineage | absent | defaulted | optional | required, for a column of the validated table."""
        declared = self.origin.get(column, column)
        if declared is None or declared.startswith("_"):
            return "lineage"
        if not self.spec.has_column(declared):
            return "absent"
        spec = self.spec.column(declared)
        if spec.default is not None:
            return "defaulted"
        return "required" if spec.required else "optional"


def expectation_columns(expectation: dict[str, Any]) -> list[str]:
    kwargs = expectation["kwargs"]
    if kwargs.get("column"):
        return [kwargs["column"]]
    return list(kwargs.get("column_list") or []) + [c for c in (kwargs.get("column_A"), kwargs.get("column_B")) if c]


def is_whole_column(kind: str) -> bool:
    """Whether an expectation judges a column as a whole (an aggregate), not value by value."""
    return kind.startswith("expect_column_") and not kind.startswith(ROW_WISE_PREFIXES)


def follow_declaration(expectations: list[dict[str, Any]], declaration: Declaration, rows: int,
                       columns_without_values: set[str], frame_columns: set[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """The suite's expectations as the declaration allows them on a day of `rows` rows, and what changed.

    - a column the declaration leaves out: its expectations are dropped (a column set loses it);
    - an optional column: not-null is dropped, a minimum length becomes 0, whole-column rules are skipped on
      a day it has no values;
    - a column with a default: whole-column rules are dropped (they would judge the constant);
    - `allow_empty_days`: an empty day skips the row-count and whole-column rules; without it, a row-count
      minimum below 1 becomes 1, so an empty day fails. A day whose files held rows (`rows_read`) that were
      all quarantined is not an empty day: it is judged as if empty days were not allowed.
    """
    spec, kept, notes = declaration.spec, [], []
    where = f"sources/{spec.name}.yaml"
    all_quarantined = rows == 0 and bool(declaration.rows_read)
    quiet_day_allowed = spec.allow_empty_days and not all_quarantined
    if spec.allow_empty_days and all_quarantined:
        notes.append(f"not a quiet day: {declaration.rows_read} rows read, none loaded (all quarantined), so "
                     f"allow_empty_days in {where} does not apply")
    for expectation in expectations:
        kind, columns = expectation["type"], expectation_columns(expectation)
        label = f"{kind}({', '.join(columns)})" if columns else kind
        statuses = {c: declaration.status(c) for c in columns}
        reason = _drop_reason(kind, statuses, rows, columns_without_values, quiet_day_allowed, where)
        if reason:
            notes.append(f"dropped {label}: {reason}")
            continue
        changed, note = _relaxed(expectation, declaration, frame_columns, where, quiet_day_allowed)
        if note:
            notes.append(f"relaxed {label}: {note}")
        kept.append(changed)
    return kept, notes


def _drop_reason(kind: str, statuses: dict[str, str], rows: int, without_values: set[str], allow_empty: bool,
                 where: str) -> str | None:
    if rows == 0 and allow_empty and (kind == ROW_COUNT or is_whole_column(kind)):
        return f"an empty day is allowed (allow_empty_days in {where})"
    for column, status in statuses.items():
        if status == "absent":
            return f"{column} is not declared in {where}"
        if status == "optional" and kind == NOT_NULL:
            return f"{column} is optional in {where}"
        if status == "defaulted" and is_whole_column(kind):
            return f"{column} may be filled by its declared default in {where}, a constant for a whole file"
        if status in ("optional", "defaulted") and is_whole_column(kind) and column in without_values:
            return f"{column} has no values on this day (optional in {where})"
    return None


def _relaxed(expectation: dict[str, Any], declaration: Declaration, frame_columns: set[str],
             where: str, quiet_day_allowed: bool) -> tuple[dict[str, Any], str | None]:
    kind, kwargs = expectation["type"], expectation["kwargs"]
    changed = copy.deepcopy(expectation)
    if kind == ROW_COUNT and not quiet_day_allowed and (kwargs.get("min_value") or 0) < 1:
        changed["kwargs"]["min_value"] = 1
        if declaration.spec.allow_empty_days:
            return changed, "min_value 1: every row read was quarantined, which is not a quiet day"
        return changed, f"min_value 1: a day needs rows unless allow_empty_days is true in {where}"
    if kind == LENGTHS and (kwargs.get("min_value") or 0) >= 1:
        column = kwargs["column"]
        if declaration.status(column) in ("optional", "defaulted") and not declaration.spec.column(
                declaration.origin.get(column, column) or column).required:
            changed["kwargs"]["min_value"] = 0
            return changed, f"min_value 0: {column} is optional in {where}, so it may be empty"
    if kind == COLUMN_SET:
        gone = [c for c in kwargs.get("column_set", []) if declaration.status(c) == "absent" and c not in frame_columns]
        if gone:
            changed["kwargs"]["column_set"] = [c for c in kwargs["column_set"] if c not in gone]
            return changed, f"without {', '.join(gone)}: not declared in {where}"
    return changed, None
